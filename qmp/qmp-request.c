/*
 * qmp-request.c: QEMU's checks on a QMP request, and QEMU-shaped replies
 *
 * The request checks follow qmp_dispatch_check_obj() of QEMU 7.2: members
 * are visited in QDict (hash) order, not input order, and the first
 * offending member decides the error, so `{"foo": 1, "bar": 2, ...}`
 * complains about 'bar'.  The reply builders print objects the way QEMU's
 * JSON writer does, which also means QDict order for the top-level keys.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-request.h"

#include <string.h>

#include "qmp/json-parser.h"

/* A member's value as a decoded string; @m must be a string member. */
static char *
member_string(const QmpMessage *msg, const QmpMessageMember *m)
{
    const char *body = msg->data + m->value_offset + 1;
    gsize body_len = m->value_len - 2;
    g_autoptr(GString) out = NULL;
    g_autofree char *unused = NULL;
    gsize i;

    /* Printable ASCII without escapes (every command name) decodes to
     * itself: qmp_json_unescape_string() would copy it byte by byte. */
    for (i = 0; i < body_len; i++) {
        guint8 c = (guint8)body[i];

        if (c < 0x20 || c >= 0x80 || c == '\\') {
            break;
        }
    }
    if (i == body_len) {
        return g_strndup(body, body_len);
    }
    out = g_string_new(NULL);
    qmp_json_unescape_string(msg->data + m->value_offset, m->value_len, out,
                             &unused);
    return g_string_free(g_steal_pointer(&out), FALSE);
}

void
qmp_request_clear(QmpRequest *req)
{
    g_clear_pointer(&req->command, g_free);
    req->oob = FALSE;
    req->id = NULL;
    req->arguments = NULL;
}

gboolean
qmp_request_check(const QmpMessage *msg, gboolean allow_oob, QmpRequest *req,
                  char **error_text)
{
    const QmpMessageMember *exec = NULL;
    const char *keys_small[8] = {NULL};
    guint order_small[8];
    g_autofree const char **keys_big = NULL;
    g_autofree guint *order_big = NULL;
    const char **keys = keys_small;
    guint *order = order_small;
    guint n;

    memset(req, 0, sizeof(*req));
    if (msg->type != QMP_JSON_OBJECT) {
        *error_text = g_strdup("QMP input must be a JSON object");
        return FALSE;
    }

    n = msg->n_members;
    if (n > G_N_ELEMENTS(keys_small)) {
        keys = keys_big = g_new(const char *, n);
        order = order_big = g_new(guint, n);
    }
    for (guint i = 0; i < n; i++) {
        const QmpMessageMember *m = &msg->members[i];

        keys[i] = m->key;
        if (strcmp(m->key, "id") == 0) {
            req->id = m; /* QEMU takes the id before any check */
        }
    }
    qmp_qdict_order_into(keys, n, order);

    for (guint i = 0; i < n; i++) {
        const QmpMessageMember *m = &msg->members[order[i]];

        if (strcmp(m->key, "execute") == 0 ||
            (allow_oob && strcmp(m->key, "exec-oob") == 0)) {
            if (m->value_type != QMP_JSON_STRING) {
                *error_text = g_strdup_printf(
                    "QMP input member '%s' must be a string", m->key);
                return FALSE;
            }
            if (exec) {
                *error_text = g_strdup_printf(
                    "QMP input member '%s' clashes with '%s'", m->key,
                    exec->key);
                return FALSE;
            }
            exec = m;
        } else if (strcmp(m->key, "arguments") == 0) {
            if (m->value_type != QMP_JSON_OBJECT) {
                *error_text = g_strdup(
                    "QMP input member 'arguments' must be an object");
                return FALSE;
            }
            req->arguments = m;
        } else if (strcmp(m->key, "id") != 0) {
            *error_text = g_strdup_printf(
                "QMP input member '%s' is unexpected", m->key);
            return FALSE;
        }
    }
    if (!exec) {
        *error_text = g_strdup("QMP input lacks member 'execute'");
        return FALSE;
    }
    req->command = member_string(msg, exec);
    req->oob = strcmp(exec->key, "exec-oob") == 0;
    return TRUE;
}

char *
qmp_request_format_id(const QmpMessage *msg, const QmpMessageMember *id)
{
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = qmp_json_parse_value(msg->data + id->value_offset,
                                                id->value_len, &error);
    GString *out;

    if (!v) {
        return NULL;
    }
    out = g_string_new(NULL);
    qmp_json_write(out, v);
    return g_string_free(out, FALSE);
}

/*
 * Print an object whose member values are already JSON text, in QDict
 * order, followed by CRLF.
 */
static char *
reply_object(const char *const *keys, const char *const *values, guint n)
{
    g_autofree guint *order = qmp_qdict_order(keys, n);
    GString *out = g_string_new("{");

    for (guint i = 0; i < n; i++) {
        if (i) {
            g_string_append(out, ", ");
        }
        qmp_json_write_string(out, keys[order[i]]);
        g_string_append(out, ": ");
        g_string_append(out, values[order[i]]);
    }
    g_string_append(out, "}\r\n");
    return g_string_free(out, FALSE);
}

char *
qmp_reply_error(const char *class_name, const char *desc, const char *id_json)
{
    g_autoptr(QmpJson) error = qmp_json_new(QMP_JSON_OBJECT);
    g_autoptr(GString) error_json = g_string_new(NULL);
    const char *keys[] = {"error", "id"};
    const char *values[2];

    /* qmp_error_response(): {'error': {'class': %s, 'desc': %s}} */
    qmp_json_object_set(error, "class", qmp_json_new_string(class_name));
    qmp_json_object_set(error, "desc", qmp_json_new_string(desc));
    qmp_json_write(error_json, error);
    values[0] = error_json->str;
    values[1] = id_json;
    return reply_object(keys, values, id_json ? 2 : 1);
}

char *
qmp_reply_return(const char *return_json, const char *id_json)
{
    const char *keys[] = {"return", "id"};
    const char *values[] = {return_json, id_json};

    return reply_object(keys, values, id_json ? 2 : 1);
}
