/*
 * reply.c: the replies the helper writes itself, in QEMU's exact format
 *
 * The formatting (QDict key order, separators, CRLF) is the framing
 * layer's (qmp/qmp-request.c); this file adapts it to GError and GBytes.
 * A forwarded reply is QEMU's own bytes with the client's id put back
 * (qph_reply_rewrite()), the way back of helper/splice.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/reply.h"
#include "qmp/json-value.h"

#include <string.h>
#include "qmp/json-streamer.h"
#include "qmp/qmp-error.h"
#include "qmp/qmp-request.h"

static GBytes *
bytes_take_string(char *s)
{
    return g_bytes_new_take(s, strlen(s));
}

GBytes *
qph_reply_error_text(const char *id_json, const char *error_class,
                     const char *desc)
{
    return bytes_take_string(qmp_reply_error(error_class, desc, id_json));
}

GBytes *
qph_reply_error(const char *id_json, const GError *error)
{
    return qph_reply_error_text(id_json, qmp_error_class_name(error),
                                error->message);
}

GBytes *
qph_reply_return(const char *id_json, const QmpJson *ret)
{
    g_autoptr(GString) value = g_string_new(NULL);

    qmp_json_write(value, ret);
    return qph_reply_return_text(id_json, value->str);
}

GBytes *
qph_reply_return_text(const char *id_json, const char *ret_json)
{
    return bytes_take_string(qmp_reply_return(ret_json, id_json));
}

/* ---- QEMU's replies, for a client ------------------------------------ */

typedef struct {
    gsize offset;
    gsize remove;
    const char *insert;
    gsize insert_len;
} Edit;

static gint
edit_compare(gconstpointer a, gconstpointer b)
{
    const Edit *x = a, *y = b;

    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/**
 * qph_reply_rewrite:
 * QEMU's reply @msg with the helper's id turned back into the client's
 * @id_json (or removed, when the client sent none; or put where QEMU would
 * print it, when the request went without an id) and, when @extra is
 * given, the text it returns inserted before the closing ']' of the
 * returned list (the helper's own introspection entries).  Pure: no
 * session state, so tests/fuzz can drive it with any framed message.
 */
GBytes *
qph_reply_rewrite(const QmpMessage *msg, const char *id_json,
                  QphReplyExtraFunc extra_func, gpointer extra_data)
{
    const QmpMessageMember *id = qmp_message_get(msg, "id");
    const QmpMessageMember *ret = qmp_message_get(msg, "return");
    g_autofree char *extra = NULL;
    g_autofree char *id_insert = NULL;
    Edit edits[2];
    guint n_edits = 0;
    GString *out = g_string_sized_new(msg->len + 64);
    gsize pos = 0;

    if (id && id_json) {
        edits[n_edits++] = (Edit){ id->value_offset, id->value_len,
                                   id_json, strlen(id_json) };
    } else if (id) {
        guint idx = id - msg->members;
        gsize start, end;

        if (idx > 0) {
            const QmpMessageMember *prev = &msg->members[idx - 1];

            start = prev->value_offset + prev->value_len;
            end = id->value_offset + id->value_len;
        } else if (msg->n_members > 1) {
            start = id->key_offset;
            end = msg->members[1].key_offset;
        } else {
            start = id->key_offset;
            end = id->value_offset + id->value_len;
        }
        edits[n_edits++] = (Edit){ start, end - start, NULL, 0 };
    } else if (id_json && msg->n_members > 0) {
        /* Sent without an id (qph_splice_prepare_forward): put the
         * client's where QEMU prints it, by QDict order. */
        g_autofree char *first = g_strndup(msg->members[0].key,
                                           msg->members[0].key_len);
        const char *keys[] = { first, "id" };
        const QmpMessageMember *last = &msg->members[msg->n_members - 1];
        guint order[2];

        qmp_qdict_order_into(keys, 2, order);
        id_insert = order[0] == 1
                        ? g_strdup_printf("\"id\": %s, ", id_json)
                        : g_strdup_printf(", \"id\": %s", id_json);
        edits[n_edits++] =
            (Edit){ order[0] == 1 ? msg->members[0].key_offset
                                  : last->value_offset + last->value_len,
                    0, id_insert, strlen(id_insert) };
    }
    if (extra_func && ret && ret->value_len >= 2 &&
        msg->data[ret->value_offset] == '[') {
        gboolean empty = TRUE;

        for (gsize i = ret->value_offset + 1;
             i < ret->value_offset + ret->value_len - 1; i++) {
            if (!g_ascii_isspace(msg->data[i])) {
                empty = FALSE;
                break;
            }
        }
        extra = extra_func(!empty, extra_data);
        if (extra) {
            edits[n_edits++] =
                (Edit){ ret->value_offset + ret->value_len - 1, 0, extra,
                        strlen(extra) };
        }
    }
    qsort(edits, n_edits, sizeof(Edit), edit_compare);
    for (guint i = 0; i < n_edits; i++) {
        g_string_append_len(out, msg->data + pos, edits[i].offset - pos);
        g_string_append_len(out, edits[i].insert, edits[i].insert_len);
        pos = edits[i].offset + edits[i].remove;
    }
    g_string_append_len(out, msg->data + pos, msg->len - pos);
    g_string_append(out, "\r\n");
    return g_string_free_to_bytes(out);
}
