/*
 * splice.c: the helper's id on a client's exec-oob request, and its scheme
 *
 * An in-band request goes to QEMU byte for byte as the client sent it:
 * QEMU answers in-band requests strictly in the order it reads them
 * (monitor/qmp.c queues every one, and every JSON or limit error, on the
 * monitor's one in-band queue, and one dispatcher answers them in turn),
 * so upstream.c matches those answers by order, and the answer, with the
 * client's id as QEMU echoed it, goes back as QEMU wrote it.  One
 * exception: an id longer than QPH_SPLICE_INBAND_ID_MAX bytes is left
 * out, and the client's put back into the answer (reply.c) as QEMU would
 * have echoed it, since QEMU reads its monitor one byte per main-loop
 * turn and a client's 20 MB id would hold every client's commands for
 * minutes (no real client sends an id that long).  Only exec-oob answers
 * come in any order: an exec-oob request carries the
 * helper's id in place of the client's (or added), a JSON string
 * "qph-oob-N" with N the request's handle, unless that would take the
 * message past QEMU's framing limits: then it goes without an id.  The way
 * back, the client's id put in place of the helper's, is
 * qph_reply_rewrite() (reply.c).
 *
 * Why an exec-oob answer cannot be taken for an in-band one, or the other
 * way round: an answer is an exec-oob answer only if its id is exactly
 * the string "qph-oob-N" (N in canonical decimal) of an exec-oob request
 * in QEMU.  QEMU echoes an in-band request's id as it parsed it, so an
 * in-band answer's id is that string only if its request's id was a
 * string denoting exactly "qph-oob-N" (qph_splice_id_is_reserved(),
 * however the client escaped or quoted it).  upstream.c never has both in
 * QEMU at once: such an in-band request waits while the exec-oob request N
 * is in QEMU, and that exec-oob request waits while such an in-band one
 * is.  A client has to guess a live N for either to wait at all.  The
 * helper's own calls carry no id.  Pure text work on a framed message
 * (qmp/), so tests/fuzz drive it directly.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/splice.h"
#include "qmp/json-value.h"

#include <string.h>

/* The reserved prefix of the helper's ids, inside the JSON string. */
#define OOB_ID_PREFIX "qph-oob-"

/* The helper's id for handle @n as JSON text, in @buf; its length. */
static int
oob_id_text(char *buf, gsize size, guint64 n)
{
    return g_snprintf(buf, size, "\"" OOB_ID_PREFIX "%" G_GUINT64_FORMAT "\"",
                      n);
}

/* Whether @s (@len bytes, not NUL-terminated) is exactly "qph-oob-N"
 * with N in canonical decimal (no sign, no leading zero) and in 64 bits;
 * N in @n. */
static gboolean
parse_oob_name(const char *s, gsize len, guint64 *n)
{
    static const char prefix[] = OOB_ID_PREFIX;
    gsize plen = sizeof(prefix) - 1;
    guint64 v = 0;

    if (len <= plen || memcmp(s, prefix, plen) != 0 ||
        (s[plen] == '0' && len > plen + 1)) {
        return FALSE;
    }
    for (gsize i = plen; i < len; i++) {
        guint d = s[i] - '0';

        if (!g_ascii_isdigit(s[i]) || v > (G_MAXUINT64 - d) / 10) {
            return FALSE;
        }
        v = v * 10 + d;
    }
    *n = v;
    return TRUE;
}

/**
 * qph_splice_parse_oob_id:
 * Whether the id text @text (@len bytes, as QEMU printed it) is one of the
 * helper's exec-oob ids; if so, its handle in @n.  QEMU prints a string
 * in double quotes and leaves printable ASCII other than '"' and '\\'
 * unescaped, so the helper's ids come back exactly as it sent them.
 */
gboolean
qph_splice_parse_oob_id(const char *text, gsize len, guint64 *n)
{
    return len >= 2 && text[0] == '"' && text[len - 1] == '"' &&
           parse_oob_name(text + 1, len - 2, n);
}

/**
 * qph_splice_id_is_reserved:
 * Whether the client's id member @id of @msg is a string that QEMU would
 * echo as the helper's exec-oob id for handle @n (so that its answer
 * might be taken for that exec-oob request's).  Exact: an id written with
 * escapes ("\u0071ph-oob-1") or single quotes counts by the string it
 * denotes.
 */
gboolean
qph_splice_id_is_reserved(const QmpMessage *msg, const QmpMessageMember *id,
                          guint64 *n)
{
    const char *raw = msg->data + id->value_offset;
    g_autoptr(QmpJson) v = NULL;
    g_autofree char *error = NULL;

    if (id->value_type != QMP_JSON_STRING || id->value_len < 2) {
        return FALSE;
    }
    /* Without escapes, the text between the quotes is the string. */
    if (!memchr(raw + 1, '\\', id->value_len - 2)) {
        return parse_oob_name(raw + 1, id->value_len - 2, n);
    }
    v = qmp_json_parse_value(raw, id->value_len, &error);
    return v && v->type == QMP_JSON_STRING &&
           parse_oob_name(v->s, strlen(v->s), n);
}

/**
 * qph_splice_inband_keeps_id:
 * Whether an in-band request with the id member @id (or none) goes to
 * QEMU as the client sent it; if not, qph_splice_without_id().
 */
gboolean
qph_splice_inband_keeps_id(const QmpMessageMember *id)
{
    return !id || id->value_len <= QPH_SPLICE_INBAND_ID_MAX;
}

/**
 * qph_splice_id:
 * Append to @out the client's message @msg with the value at
 * [@id_offset, @id_offset + @id_len) replaced by the helper's exec-oob id
 * for handle @n, or, when @id_len is 0, with "id" added as its first
 * member (@msg is an object with at least one member, as
 * qmp_request_check() guarantees).
 */
void
qph_splice_id(GString *out, const char *msg, gsize len, gsize id_offset,
              gsize id_len, guint64 n)
{
    char idbuf[48];
    int idlen = oob_id_text(idbuf, sizeof(idbuf), n);

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
 * qph_splice_without_id:
 * Append to @out the client's message @msg without its id member @id:
 * QEMU then answers without an id, and the client's is put back into the
 * answer (qph_reply_rewrite()).
 */
void
qph_splice_without_id(GString *out, const QmpMessage *msg,
                      const QmpMessageMember *id)
{
    remove_member(out, msg, id);
}

/**
 * qph_splice_prepare_oob:
 * Append to @out what carries the client's exec-oob request @msg (whose
 * id member is @id, or NULL) to QEMU: the message with the helper's id
 * for handle @n spliced in, if QEMU's framing would still take it whole
 * under @limits (the splice adds up to 4 tokens and a few bytes of
 * tokens); else the message without any id, which QEMU takes exactly as
 * the client sent it (or with fewer tokens) and answers without an id.
 * Returns TRUE when the helper's id was spliced in.
 */
gboolean
qph_splice_prepare_oob(GString *out, const QmpMessage *msg,
                       const QmpMessageMember *id, guint64 n,
                       const QmpJsonLimits *limits)
{
    char idbuf[48];
    guint64 idlen = oob_id_text(idbuf, sizeof(idbuf), n);
    guint64 tokens, size;

    if (id) {
        /* The id's tokens (at least one, of at least value_len bytes for
         * a scalar, of at least "{}" for a compound) become one. */
        gboolean scalar = id->value_type != QMP_JSON_OBJECT &&
                          id->value_type != QMP_JSON_ARRAY;

        tokens = msg->n_tokens;
        size = msg->token_size - (scalar ? id->value_len : 2) + idlen;
    } else {
        /* "id" : "qph-oob-N" , */
        tokens = (guint64)msg->n_tokens + 4;
        size = msg->token_size + 4 + 1 + idlen + 1;
    }
    if (tokens <= limits->token_count && size < limits->token_size) {
        qph_splice_id(out, msg->data, msg->len, id ? id->value_offset : 0,
                      id ? id->value_len : 0, n);
        return TRUE;
    }
    if (id) {
        remove_member(out, msg, id);
    } else {
        g_string_append_len(out, msg->data, msg->len);
    }
    return FALSE;
}
