/*
 * fuzz-json.c: argument values through the parser and QEMU's writer
 *
 * The helper builds a tree only for what it must understand itself: the
 * arguments of its own commands and the id it echoes.  This target covers
 * the layer under the generated visitors (fuzz-args.c covers those):
 * every value the framing accepts is parsed
 * with qmp_json_parse_value and printed with qmp_json_write, as the
 * helper prints its replies.  Properties: the printed text is one valid
 * message; after one round (which turns invalid UTF-8 into U+FFFD)
 * another round gives the same value: same members, same numbers, same
 * strings (a double with an integral value may read back as an integer,
 * as it does when QEMU prints it).  The text itself need not repeat: QEMU's QDict iterates keys
 * of one bucket newest first, so keys that share a bucket swap places on
 * every round, exactly as they do when QEMU re-prints a value.  QDict
 * ordering of any key set is a permutation.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "qmp/json-streamer.h"

#include <math.h>
#include <string.h>

static void
check_keys(const QmpJson *v)
{
    g_autofree const char **keys = NULL;
    g_autofree guint *order = NULL;
    g_autofree gboolean *seen = NULL;
    guint n;

    if (v->type == QMP_JSON_ARRAY) {
        for (guint i = 0; i < v->elements->len; i++) {
            check_keys(v->elements->pdata[i]);
        }
        return;
    }
    if (v->type != QMP_JSON_OBJECT) {
        return;
    }
    n = v->members->len;
    keys = g_new0(const char *, n + 1);
    for (guint i = 0; i < n; i++) {
        QmpJsonMember *m = v->members->pdata[i];

        keys[i] = m->key;
        check_keys(m->value);
    }
    order = qmp_qdict_order(keys, n);
    seen = g_new0(gboolean, n + 1);
    for (guint i = 0; i < n; i++) {
        FUZZ_CHECK(order[i] < n && !seen[order[i]]);
        seen[order[i]] = TRUE;
    }
}

static gboolean
json_equal(const QmpJson *a, const QmpJson *b)
{
    if (a->type != b->type) {
        return FALSE;
    }
    switch (a->type) {
    case QMP_JSON_NULL:
        return TRUE;
    case QMP_JSON_BOOL:
        return a->b == b->b;
    case QMP_JSON_INT:
        return a->i == b->i;
    case QMP_JSON_UINT:
        return a->u == b->u;
    case QMP_JSON_DOUBLE:
        return memcmp(&a->d, &b->d, sizeof(double)) == 0 ||
               (a->d != a->d && b->d != b->d);
    case QMP_JSON_STRING:
        return g_str_equal(a->s, b->s);
    case QMP_JSON_ARRAY:
        if (a->elements->len != b->elements->len) {
            return FALSE;
        }
        for (guint i = 0; i < a->elements->len; i++) {
            if (!json_equal(a->elements->pdata[i], b->elements->pdata[i])) {
                return FALSE;
            }
        }
        return TRUE;
    case QMP_JSON_OBJECT:
        if (a->members->len != b->members->len) {
            return FALSE;
        }
        for (guint i = 0; i < a->members->len; i++) {
            QmpJsonMember *m = a->members->pdata[i];
            QmpJson *other = qmp_json_object_get(b, m->key);

            if (!other || !json_equal(m->value, other)) {
                return FALSE;
            }
        }
        return TRUE;
    }
    return FALSE;
}

/* QEMU prints an overflowing number (1e999) as inf: not JSON, so such a
 * value cannot make the round trip, in QEMU either. */
static gboolean
json_has_nonfinite(const QmpJson *v)
{
    if (v->type == QMP_JSON_DOUBLE) {
        return !isfinite(v->d);
    }
    for (guint i = 0; v->type == QMP_JSON_ARRAY && i < v->elements->len; i++) {
        if (json_has_nonfinite(v->elements->pdata[i])) {
            return TRUE;
        }
    }
    for (guint i = 0; v->type == QMP_JSON_OBJECT && i < v->members->len; i++) {
        if (json_has_nonfinite(((QmpJsonMember *)v->members->pdata[i])->value)) {
            return TRUE;
        }
    }
    return FALSE;
}

static void
emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    g_autofree char *err = NULL;
    g_autofree char *err2 = NULL;
    g_autoptr(QmpJson) v = NULL;
    g_autoptr(QmpJson) v2 = NULL;
    g_autoptr(GString) once = g_string_new(NULL);
    g_autoptr(GString) twice = g_string_new(NULL);
    g_autoptr(GString) thrice = g_string_new(NULL);
    g_autoptr(QmpJson) v3 = NULL;

    if (!msg) {
        return;
    }
    v = qmp_json_parse_value(msg->data, msg->len, &err);
    FUZZ_CHECK(v != NULL);
    check_keys(v);
    qmp_json_write(once, v);
    if (json_has_nonfinite(v)) {
        return;
    }
    v2 = qmp_json_parse_value(once->str, once->len, &err2);
    if (!v2) {
        fprintf(stderr, "written text does not parse: %s\n%s\n", err2,
                once->str);
    }
    FUZZ_CHECK(v2 != NULL);
    /* QEMU prints 3e7 as 30000000, which reads back as an integer. */
    FUZZ_CHECK(v2->type == v->type || v->type == QMP_JSON_DOUBLE);
    qmp_json_write(twice, v2);
    g_clear_pointer(&err2, g_free);
    v3 = qmp_json_parse_value(twice->str, twice->len, &err2);
    FUZZ_CHECK(v3 != NULL);
    qmp_json_write(thrice, v3);
    if (!json_equal(v2, v3)) {
        fprintf(stderr, "round trip changed the value:\n%s\n%s\n",
                twice->str, thrice->str);
    }
    FUZZ_CHECK(json_equal(v2, v3));
    FUZZ_CHECK(twice->len == thrice->len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(emit, NULL);

    qmp_streamer_feed(s, (const char *)data, size);
    qmp_streamer_flush(s);
    return 0;
}
