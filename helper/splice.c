/*
 * splice.c: a client's request as it goes to QEMU, with the helper's id
 *
 * The helper forwards the client's own bytes with only the value of "id"
 * replaced by its integer id (or an id added), unless that would take the
 * message past QEMU's framing limits: then it goes without an id.  Pure
 * text work on a framed message (qmp/), so tests/fuzz drive it directly;
 * the way back, QEMU's reply with the client's id, is qph_reply_rewrite()
 * (reply.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/splice.h"

/**
 * qph_splice_id:
 * Append to @out the client's message @msg with the value at
 * [@id_offset, @id_offset + @id_len) replaced by @id, or, when @id_len is
 * 0, with "id" added as its first member (@msg is an object with at least
 * one member, as qmp_request_check() guarantees).
 */
void
qph_splice_id(GString *out, const char *msg, gsize len,
              gsize id_offset, gsize id_len, guint64 id)
{
    char idbuf[32];
    int idlen = g_snprintf(idbuf, sizeof(idbuf), "%" G_GUINT64_FORMAT, id);

    if (id_len > 0) {
        g_string_append_len(out, msg, id_offset);
        g_string_append_len(out, idbuf, idlen);
        g_string_append_len(out, msg + id_offset + id_len,
                            len - id_offset - id_len);
    } else {
        g_string_append(out, "{\"id\": ");
        g_string_append_len(out, idbuf, idlen);
        g_string_append(out, ", ");
        g_string_append_len(out, msg + 1, len - 1);
    }
}

/* @msg without its member @id (and the comma that separated it). */
static void
remove_member(GString *out, const QmpMessage *msg, const QmpMessageMember *id)
{
    gsize start = id->key_offset, end = id->value_offset + id->value_len;

    for (guint i = 0; i < msg->n_members; i++) {
        if (&msg->members[i] != id) {
            continue;
        }
        if (i > 0) {
            const QmpMessageMember *prev = &msg->members[i - 1];

            start = prev->value_offset + prev->value_len;
        } else if (msg->n_members > 1) {
            end = msg->members[1].key_offset;
        }
        break;
    }
    g_string_append_len(out, msg->data, start);
    g_string_append_len(out, msg->data + end, msg->len - end);
}

/**
 * qph_splice_prepare_forward:
 * Append to @out what carries the client's request @msg (whose id member
 * is @id, or NULL) to QEMU: the message with the helper's id @helper_id
 * spliced in, if QEMU's framing would still take it whole under @limits
 * (the splice adds up to 4 tokens and a few bytes of tokens); else the
 * message without any id, which QEMU takes exactly as the client sent it
 * (or with fewer tokens) and answers without an id.
 * Returns TRUE when the helper's id was spliced in.
 */
gboolean
qph_splice_prepare_forward(GString *out, const QmpMessage *msg,
                           const QmpMessageMember *id, guint64 helper_id,
                           const QmpJsonLimits *limits)
{
    char idbuf[32];
    guint64 digits = g_snprintf(idbuf, sizeof(idbuf), "%" G_GUINT64_FORMAT,
                                helper_id);
    guint64 tokens, size;

    if (id) {
        /* The id's tokens (at least one, of at least value_len bytes for
         * a scalar, of at least "{}" for a compound) become one. */
        gboolean scalar = id->value_type != QMP_JSON_OBJECT &&
                          id->value_type != QMP_JSON_ARRAY;

        tokens = msg->n_tokens;
        size = msg->token_size - (scalar ? id->value_len : 2) + digits;
    } else {
        /* "id" : N , */
        tokens = (guint64)msg->n_tokens + 4;
        size = msg->token_size + 4 + 1 + digits + 1;
    }
    if (tokens <= limits->token_count && size < limits->token_size) {
        qph_splice_id(out, msg->data, msg->len, id ? id->value_offset : 0,
                      id ? id->value_len : 0, helper_id);
        return TRUE;
    }
    if (id) {
        remove_member(out, msg, id);
    } else {
        g_string_append_len(out, msg->data, msg->len);
    }
    return FALSE;
}
