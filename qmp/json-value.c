/*
 * json-value.c: a small JSON tree and QEMU's way of printing it
 *
 * The tree (QmpJson) is what the helper builds for the few values it must
 * understand.  Printing reproduces QEMU 7.2's qobject/json-writer.c in
 * compact mode, including two things a client can see: object members
 * come out in QDict hash-bucket order rather than input order, and strings
 * are re-escaped (non-ASCII becomes \uXXXX).  A reply the helper makes up
 * must be indistinguishable from one QEMU would have sent.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/json-value.h"

#include <string.h>

#include "qmp/unicode.h"

/* QEMU's QDICT_BUCKET_MAX. */
#define QDICT_BUCKETS 512

static const char *const qmp_json_type_names[] = {
    [QMP_JSON_NULL] = "null",     [QMP_JSON_BOOL] = "boolean",
    [QMP_JSON_INT] = "number",    [QMP_JSON_UINT] = "number",
    [QMP_JSON_DOUBLE] = "number", [QMP_JSON_STRING] = "string",
    [QMP_JSON_OBJECT] = "object", [QMP_JSON_ARRAY] = "array",
};
G_STATIC_ASSERT(G_N_ELEMENTS(qmp_json_type_names) == QMP_JSON_ARRAY + 1);

static void
member_free(gpointer p)
{
    QmpJsonMember *m = p;

    g_free(m->key);
    qmp_json_free(m->value);
    g_free(m);
}

/**
 * qmp_json_new - a new value of @type (zero, empty string/object/array)
 * @type: the type
 */
QmpJson *
qmp_json_new(QmpJsonType type)
{
    QmpJson *v = g_new0(QmpJson, 1);

    v->type = type;
    if (type == QMP_JSON_STRING) {
        v->s = g_strdup("");
    } else if (type == QMP_JSON_OBJECT) {
        v->members = g_ptr_array_new_with_free_func(member_free);
    } else if (type == QMP_JSON_ARRAY) {
        v->elements = g_ptr_array_new_with_free_func(
            (GDestroyNotify)qmp_json_free);
    }
    return v;
}

/**
 * qmp_json_new_string - a string value holding a copy of @s
 * @s: modified UTF-8, NUL-terminated
 */
QmpJson *
qmp_json_new_string(const char *s)
{
    QmpJson *v = g_new0(QmpJson, 1);

    v->type = QMP_JSON_STRING;
    v->s = g_strdup(s);
    return v;
}

/**
 * qmp_json_new_int - an integer value
 * @i: the value
 */
QmpJson *
qmp_json_new_int(gint64 i)
{
    QmpJson *v = qmp_json_new(QMP_JSON_INT);

    v->i = i;
    return v;
}

/**
 * qmp_json_new_bool - a boolean value
 * @b: the value
 */
QmpJson *
qmp_json_new_bool(gboolean b)
{
    QmpJson *v = qmp_json_new(QMP_JSON_BOOL);

    v->b = !!b;
    return v;
}

/**
 * qmp_json_free - free @v and everything below it; NULL is fine
 * @v: the value
 */
void
qmp_json_free(QmpJson *v)
{
    if (!v) {
        return;
    }
    if (v->type == QMP_JSON_STRING) {
        g_free(v->s);
    }
    if (v->members) {
        g_ptr_array_unref(v->members);
    }
    if (v->elements) {
        g_ptr_array_unref(v->elements);
    }
    g_free(v);
}

/**
 * qmp_json_object_set - add @key: @value to @obj, taking @value
 * @obj: an object
 * @key: the key
 * @value: the value (owned by @obj afterwards)
 *
 * As qdict_put() does, an existing member of that key gets the new value
 * and keeps its place; otherwise the member is appended.
 */
void
qmp_json_object_set(QmpJson *obj, const char *key, QmpJson *value)
{
    QmpJsonMember *m;

    g_return_if_fail(obj && obj->type == QMP_JSON_OBJECT);
    for (guint i = 0; i < obj->members->len; i++) {
        m = g_ptr_array_index(obj->members, i);
        if (strcmp(m->key, key) == 0) {
            qmp_json_free(m->value);
            m->value = value;
            return;
        }
    }
    m = g_new0(QmpJsonMember, 1);
    m->key = g_strdup(key);
    m->value = value;
    g_ptr_array_add(obj->members, m);
}

/**
 * qmp_json_object_get - the value of member @key of @obj, or NULL
 * @obj: an object (anything else gives NULL)
 * @key: the key
 */
QmpJson *
qmp_json_object_get(const QmpJson *obj, const char *key)
{
    if (!obj || obj->type != QMP_JSON_OBJECT) {
        return NULL;
    }
    for (guint i = 0; i < obj->members->len; i++) {
        QmpJsonMember *m = g_ptr_array_index(obj->members, i);

        if (strcmp(m->key, key) == 0) {
            return m->value;
        }
    }
    return NULL;
}

/**
 * qmp_json_array_append - append @value to @arr, taking it
 * @arr: an array
 * @value: the element
 */
void
qmp_json_array_append(QmpJson *arr, QmpJson *value)
{
    g_return_if_fail(arr && arr->type == QMP_JSON_ARRAY);
    g_ptr_array_add(arr->elements, value);
}

const char *
qmp_json_type_name(QmpJsonType type)
{
    if ((guint)type >= G_N_ELEMENTS(qmp_json_type_names)) {
        return "unknown";
    }
    return qmp_json_type_names[type];
}

guint
qmp_qdict_hash(const char *key)
{
    const unsigned char *p = (const unsigned char *)key;
    guint32 value = 0x238F13AFu * (guint32)strlen(key);

    for (guint32 i = 0; p[i]; i++) {
        value = value + ((guint32)p[i] << (i * 5 % 24));
    }
    return 1103515243u * value + 12345u;
}

typedef struct {
    guint index;
    guint bucket;
} OrderEntry;

static int
order_compare(gconstpointer a, gconstpointer b)
{
    const OrderEntry *x = a, *y = b;

    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    /* Newest first within a bucket: QLIST_INSERT_HEAD. */
    return x->index > y->index ? -1 : (x->index < y->index ? 1 : 0);
}

void
qmp_qdict_order_into(const char *const *keys, guint n, guint *order)
{
    OrderEntry small[16];
    g_autofree OrderEntry *big = NULL;
    OrderEntry *entries = small;

    if (n > G_N_ELEMENTS(small)) {
        entries = big = g_new(OrderEntry, n);
    }
    for (guint i = 0; i < n; i++) {
        entries[i].index = i;
        entries[i].bucket = qmp_qdict_hash(keys[i]) % QDICT_BUCKETS;
    }
    if (n <= G_N_ELEMENTS(small)) {
        /* Few keys (every request): an insertion sort, no qsort calls. */
        for (guint i = 1; i < n; i++) {
            OrderEntry e = entries[i];
            guint j = i;

            while (j > 0 && order_compare(&entries[j - 1], &e) > 0) {
                entries[j] = entries[j - 1];
                j--;
            }
            entries[j] = e;
        }
    } else {
        qsort(entries, n, sizeof(*entries), order_compare);
    }
    for (guint i = 0; i < n; i++) {
        order[i] = entries[i].index;
    }
}

guint *
qmp_qdict_order(const char *const *keys, guint n)
{
    guint *order = g_new(guint, n ? n : 1);

    qmp_qdict_order_into(keys, n, order);
    return order;
}

void
qmp_json_write_string(GString *out, const char *s)
{
    const char *ptr, *end;

    g_string_append_c(out, '"');
    for (ptr = s; *ptr; ptr = end) {
        int cp;
        const char *run = ptr;

        /* Printable ASCII other than '"' and '\\' is copied as it is: one
         * append per run instead of a decode per character. */
        while (*run >= 0x20 && *run < 0x7F && *run != '"' && *run != '\\') {
            run++;
        }
        if (run != ptr) {
            g_string_append_len(out, ptr, run - ptr);
            end = run;
            continue;
        }
        cp = qmp_utf8_codepoint(ptr, 6, &end);

        if (end == ptr) {
            end = ptr + 1; /* cannot happen for *ptr != 0; stay safe */
        }
        switch (cp) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (cp < 0) {
                cp = 0xFFFD; /* replacement character */
            }
            if (cp > 0xFFFF) {
                g_string_append_printf(out, "\\u%04X\\u%04X",
                                       0xD800 + ((cp - 0x10000) >> 10),
                                       0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04X", cp);
            } else {
                g_string_append_c(out, (char)cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

static void
write_double(GString *out, double d)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    /* qnum_to_string(): "17 digits suffice for IEEE double". */
    g_ascii_formatd(buf, sizeof(buf), "%.17g", d);
    g_string_append(out, buf);
}

void
qmp_json_write(GString *out, const QmpJson *v)
{
    switch (v->type) {
    case QMP_JSON_NULL:
        g_string_append(out, "null");
        break;
    case QMP_JSON_BOOL:
        g_string_append(out, v->b ? "true" : "false");
        break;
    case QMP_JSON_INT:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, v->i);
        break;
    case QMP_JSON_UINT:
        g_string_append_printf(out, "%" G_GUINT64_FORMAT, v->u);
        break;
    case QMP_JSON_DOUBLE:
        write_double(out, v->d);
        break;
    case QMP_JSON_STRING:
        qmp_json_write_string(out, v->s);
        break;
    case QMP_JSON_OBJECT: {
        guint n = v->members->len;
        g_autofree const char **keys = g_new(const char *, n ? n : 1);
        g_autofree guint *order = NULL;

        for (guint i = 0; i < n; i++) {
            keys[i] = ((QmpJsonMember *)g_ptr_array_index(v->members, i))->key;
        }
        order = qmp_qdict_order(keys, n);
        g_string_append_c(out, '{');
        for (guint i = 0; i < n; i++) {
            QmpJsonMember *m = g_ptr_array_index(v->members, order[i]);

            if (i) {
                g_string_append(out, ", ");
            }
            qmp_json_write_string(out, m->key);
            g_string_append(out, ": ");
            qmp_json_write(out, m->value);
        }
        g_string_append_c(out, '}');
        break;
    }
    case QMP_JSON_ARRAY:
        g_string_append_c(out, '[');
        for (guint i = 0; i < v->elements->len; i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            qmp_json_write(out, g_ptr_array_index(v->elements, i));
        }
        g_string_append_c(out, ']');
        break;
    }
}
