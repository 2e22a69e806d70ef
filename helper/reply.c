/*
 * reply.c: the replies the helper writes itself, in QEMU's exact format
 *
 * The formatting (QDict key order, separators, CRLF) is the framing
 * layer's (qmp/qmp-request.c); this file adapts it to GError and GBytes.
 * A forwarded answer is QEMU's own bytes: as they are for an in-band
 * request, which went as the client sent it (qph_reply_forward()); with
 * the client's id put back for an exec-oob one, the way back of
 * helper/splice.c (qph_reply_rewrite()).
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

/* The text @extra_func returns for a returned list, as an edit that
 * inserts it before the list's closing ']'; NULL text for none. */
static char *
extra_edit(const QmpMessage *msg, QphReplyExtraFunc extra_func,
           gpointer extra_data, Edit *edit)
{
    const QmpMessageMember *ret = qmp_message_get(msg, "return");
    gboolean empty = TRUE;
    char *extra;

    if (!extra_func || !ret || ret->value_len < 2 ||
        msg->data[ret->value_offset] != '[') {
        return NULL;
    }
    for (gsize i = ret->value_offset + 1;
         i < ret->value_offset + ret->value_len - 1; i++) {
        if (!g_ascii_isspace(msg->data[i])) {
            empty = FALSE;
            break;
        }
    }
    extra = extra_func(!empty, extra_data);
    if (extra) {
        *edit = (Edit){ ret->value_offset + ret->value_len - 1, 0, extra,
                        strlen(extra) };
    }
    return extra;
}

/* @msg with @edits applied (any order), and CRLF. */
static GBytes *
apply_edits(const QmpMessage *msg, Edit *edits, guint n_edits)
{
    gsize size = msg->len + 2, pos = 0;
    char *out, *o;

    if (n_edits > 1) {
        qsort(edits, n_edits, sizeof(Edit), edit_compare);
    }
    for (guint i = 0; i < n_edits; i++) {
        size += edits[i].insert_len - edits[i].remove;
    }
    o = out = g_malloc(size);
    for (guint i = 0; i < n_edits; i++) {
        memcpy(o, msg->data + pos, edits[i].offset - pos);
        o += edits[i].offset - pos;
        if (edits[i].insert_len > 0) { /* a removal has no text */
            memcpy(o, edits[i].insert, edits[i].insert_len);
            o += edits[i].insert_len;
        }
        pos = edits[i].offset + edits[i].remove;
    }
    memcpy(o, msg->data + pos, msg->len - pos);
    o += msg->len - pos;
    memcpy(o, "\r\n", 2);
    return g_bytes_new_take(out, size);
}

/**
 * qph_reply_forward:
 * QEMU's answer @msg to an in-band request, for the client: QEMU's bytes
 * as they are (the request went as the client sent it, so the id in it is
 * the client's, as QEMU echoes it) with CRLF and, when @extra_func gives
 * one, the text it returns inserted before the closing ']' of the
 * returned list (the helper's own introspection entries).
 */
GBytes *
qph_reply_forward(const QmpMessage *msg, QphReplyExtraFunc extra_func,
                  gpointer extra_data)
{
    Edit edit;
    g_autofree char *extra = extra_edit(msg, extra_func, extra_data, &edit);

    return apply_edits(msg, &edit, extra ? 1 : 0);
}

/**
 * qph_reply_rewrite:
 * QEMU's answer @msg to an exec-oob request, which went with the helper's
 * id (helper/splice.c): that id turned back into the client's @id_json
 * (or removed, when the client sent none; or put where QEMU would print
 * it, when the request went without an id), and the introspection text of
 * @extra_func as in qph_reply_forward().  Pure: no session state, so
 * tests/fuzz can drive it with any framed message.
 */
GBytes *
qph_reply_rewrite(const QmpMessage *msg, const char *id_json,
                  QphReplyExtraFunc extra_func, gpointer extra_data)
{
    const QmpMessageMember *id = qmp_message_get(msg, "id");
    g_autofree char *extra = NULL;
    g_autofree char *id_insert = NULL;
    Edit edits[2];
    guint n_edits = 0;

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
        /* Sent without an id (qph_splice_prepare_oob): put the client's
         * where QEMU prints it, by QDict order. */
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
    extra = extra_edit(msg, extra_func, extra_data, &edits[n_edits]);
    if (extra) {
        n_edits++;
    }
    return apply_edits(msg, edits, n_edits);
}
