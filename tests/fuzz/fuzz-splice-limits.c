/*
 * fuzz-splice-limits.c: what the proxy forwards still fits QEMU's limits
 *
 * A request within QEMU's limits as the client sent it must stay whole as
 * the helper forwards it.  In-band it goes as the client sent it, so
 * QEMU's limits see exactly what the client's framing checked.  exec-oob
 * carries the helper's id in place of the client's: that splice adds up to
 * 4 tokens and a few token bytes, and a request 3 tokens under QEMU's 2 Mi
 * once went over, was answered with an id-less "JSON token count limit
 * exceeded", and wedged forwarding for everyone (issue 11, item 1, when
 * every request was spliced).  The real limits need megabytes to reach,
 * so this target takes small ones from the input's first bytes and runs
 * both sides with them: the client's framing, what the helper forwards
 * (the client's bytes; qph_splice_prepare_oob()), and "QEMU" (a second
 * streamer with the same limits) reading what would be sent.
 *
 * Properties, for both paths: QEMU's side frames exactly one message and
 * no error, and QEMU's request checks accept it with the same command.
 * In-band: every member is the client's, byte for byte, id included; QEMU's
 * answers (a return and an error with the client's id as QEMU echoes it,
 * or none) reach the client byte for byte (qph_reply_forward); without an
 * id longer than QPH_SPLICE_INBAND_ID_MAX (qph_splice_without_id), the
 * rest is byte for byte and QEMU's id-less answer gets the client's id.  exec-oob:
 * it carries the helper's id when prepare_oob says so and no id at all
 * otherwise; its other members are byte for byte the client's; QEMU's
 * answers to it, with the id it was sent or none, rewritten for the client
 * (qph_reply_rewrite) carry exactly the client's id as QEMU would have
 * echoed it, or none.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "helper/reply.h"
#include "helper/splice.h"
#include "qmp/json-streamer.h"
#include "qmp/qmp-request.h"

#include <string.h>

typedef struct {
    const QmpJsonLimits *limits;
    guint64 helper_n;
} Ctx;

typedef struct {
    guint n_messages;
    guint n_errors;
    GString *data;
    GPtrArray *members; /* QmpMessageMember copies */
    gboolean has_id;
    char *id_text;
    char *command;
} Seen;

static void
seen_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    Seen *seen = opaque;

    if (error_text) {
        seen->n_errors++;
        return;
    }
    if (seen->n_messages++ > 0) {
        return;
    }
    g_string_append_len(seen->data, msg->data, msg->len);
    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        g_ptr_array_add(seen->members, g_strdup(m->key));
        g_ptr_array_add(seen->members,
                        g_strndup(msg->data + m->value_offset, m->value_len));
        if (g_str_equal(m->key, "id")) {
            seen->has_id = TRUE;
            seen->id_text = g_strndup(msg->data + m->value_offset,
                                      m->value_len);
        }
    }
    {
        g_auto(QmpRequest) req = { 0 };
        g_autofree char *err = NULL;

        if (qmp_request_check(msg, TRUE, &req, &err)) {
            seen->command = g_strdup(req.command);
        }
    }
}

/* Frame @text with @limits, as QEMU would read it. */
static void
qemu_reads(const char *text, gsize len, const QmpJsonLimits *limits,
           Seen *seen)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(seen_emit, seen);

    qmp_streamer_set_limits(s, limits);
    seen->data = g_string_new(NULL);
    seen->members = g_ptr_array_new_with_free_func(g_free);
    qmp_streamer_feed(s, text, len);
    qmp_streamer_flush(s);
}

static void
seen_clear(Seen *seen)
{
    g_string_free(seen->data, TRUE);
    g_ptr_array_unref(seen->members);
    g_free(seen->id_text);
    g_free(seen->command);
}

/* QEMU's answer @reply (CRLF-terminated), rewritten for the client. */
static void
check_reply(const char *reply, const char *client_id)
{
    g_autoptr(QmpMessage) scanned = fuzz_frame_qemu(reply, strlen(reply) - 2);
    g_autoptr(GBytes) out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(QmpJson) tree = NULL;
    gsize len;
    const char *data;
    QmpJson *id;

    FUZZ_CHECK(scanned != NULL && scanned->len == strlen(reply) - 2);
    out = qph_reply_rewrite(scanned, client_id, NULL, NULL);
    data = g_bytes_get_data(out, &len);
    FUZZ_CHECK(len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n');
    if (client_id) {
        g_autofree char *id_err = NULL;
        g_autoptr(QmpJson) id_tree =
            qmp_json_parse_value(client_id, strlen(client_id), &id_err);

        if (!id_tree) {
            /* An id QEMU prints as inf is not JSON: echoed as printed. */
            FUZZ_CHECK(g_strstr_len(data, len, client_id) != NULL);
            return;
        }
    }
    tree = qmp_json_parse_value(data, len - 2, &err);
    FUZZ_CHECK(tree != NULL);
    FUZZ_CHECK(tree->members->len == (client_id ? 2 : 1));
    id = qmp_json_object_get(tree, "id");
    if (client_id) {
        g_autoptr(GString) printed = g_string_new(NULL);

        FUZZ_CHECK(id != NULL);
        qmp_json_write(printed, id);
        FUZZ_CHECK(g_str_equal(printed->str, client_id));
    } else {
        FUZZ_CHECK(id == NULL);
    }
}

/* Every member of the client's @msg except "id" in @seen's, byte for
 * byte, in order; "id" too when @with_id. */
static void
check_members(const QmpMessage *msg, const Seen *seen, gboolean with_id)
{
    guint j = 0;

    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        if (!with_id && g_str_equal(m->key, "id")) {
            continue;
        }
        while (!with_id && j < seen->members->len &&
               g_str_equal(seen->members->pdata[j], "id")) {
            j += 2;
        }
        FUZZ_CHECK(j + 1 < seen->members->len);
        FUZZ_CHECK(g_str_equal(seen->members->pdata[j], m->key));
        FUZZ_CHECK(strlen(seen->members->pdata[j + 1]) == m->value_len &&
                   memcmp(seen->members->pdata[j + 1],
                          msg->data + m->value_offset, m->value_len) == 0);
        j += 2;
    }
    FUZZ_CHECK(!with_id || j == seen->members->len);
}

/* QEMU's answer @reply (CRLF-terminated) to an in-band request reaches
 * the client as it is. */
static void
check_inband_reply(const char *reply)
{
    g_autoptr(QmpMessage) scanned = fuzz_frame_qemu(reply, strlen(reply) - 2);
    g_autoptr(GBytes) out = NULL;
    gsize len;
    const char *data;

    FUZZ_CHECK(scanned != NULL && scanned->len == strlen(reply) - 2);
    out = qph_reply_forward(scanned, NULL, NULL);
    data = g_bytes_get_data(out, &len);
    FUZZ_CHECK(len == strlen(reply) && memcmp(data, reply, len) == 0);
}

static void
check_request(const Ctx *ctx, const QmpMessage *msg)
{
    g_auto(QmpRequest) req = { 0 };
    g_autofree char *err = NULL;
    g_autofree char *client_id = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    char helper_text[48];
    Seen seen = { 0 }, inband = { 0 };
    gboolean spliced;

    if (!qmp_request_check(msg, TRUE, &req, &err)) {
        return;
    }
    if (req.id) {
        client_id = qmp_request_format_id(msg, req.id);
        FUZZ_CHECK(client_id != NULL);
    }

    /* In-band: the client's bytes (without a huge id). */
    if (!qph_splice_inband_keeps_id(req.id)) {
        g_autoptr(GString) without = g_string_new(NULL);

        qph_splice_without_id(without, msg, req.id);
        qemu_reads(without->str, without->len, ctx->limits, &inband);
        FUZZ_CHECK(inband.n_errors == 0);
        FUZZ_CHECK(inband.n_messages == 1);
        FUZZ_CHECK(inband.command && g_str_equal(inband.command, req.command));
        FUZZ_CHECK(!inband.has_id);
        check_members(msg, &inband, FALSE);
        {
            g_autofree char *ok = qmp_reply_return("{}", NULL);

            check_reply(ok, client_id);
        }
        seen_clear(&inband);
        inband = (Seen){ 0 };
    }
    qemu_reads(msg->data, msg->len, ctx->limits, &inband);
    FUZZ_CHECK(inband.n_errors == 0);
    FUZZ_CHECK(inband.n_messages == 1);
    FUZZ_CHECK(inband.command && g_str_equal(inband.command, req.command));
    check_members(msg, &inband, TRUE);
    {
        g_autofree char *ok = qmp_reply_return("{}", client_id);
        g_autofree char *bad = qmp_reply_error(
            "GenericError", "Parameter 'a' is unexpected", client_id);

        check_inband_reply(ok);
        check_inband_reply(bad);
    }
    seen_clear(&inband);

    /* exec-oob: with the helper's id, if it fits. */
    g_snprintf(helper_text, sizeof(helper_text),
               "\"qph-oob-%" G_GUINT64_FORMAT "\"", ctx->helper_n);
    spliced = qph_splice_prepare_oob(out, msg, req.id, ctx->helper_n,
                                     ctx->limits);

    qemu_reads(out->str, out->len, ctx->limits, &seen);
    FUZZ_CHECK(seen.n_errors == 0);
    FUZZ_CHECK(seen.n_messages == 1);
    FUZZ_CHECK(seen.command && g_str_equal(seen.command, req.command));
    FUZZ_CHECK(seen.has_id == spliced);
    if (spliced) {
        guint64 n = 0;

        FUZZ_CHECK(g_str_equal(seen.id_text, helper_text));
        FUZZ_CHECK(qph_splice_parse_oob_id(seen.id_text,
                                           strlen(seen.id_text), &n));
        FUZZ_CHECK(n == ctx->helper_n);
    }
    check_members(msg, &seen, FALSE);

    /* QEMU answers with the id it was sent, or none. */
    {
        g_autofree char *ok = qmp_reply_return(
            "{}", spliced ? helper_text : NULL);
        g_autofree char *bad = qmp_reply_error(
            "GenericError", "Parameter 'a' is unexpected",
            spliced ? helper_text : NULL);

        check_reply(ok, client_id);
        check_reply(bad, client_id);
    }
    seen_clear(&seen);
}

static void
emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    if (msg && msg->type == QMP_JSON_OBJECT) {
        check_request(opaque, msg);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    QmpJsonLimits limits;
    Ctx ctx = { .limits = &limits };
    g_autoptr(QmpStreamer) s = NULL;
    static const guint64 ids[] = { 1, 42, 65536, 4294967301ULL,
                                   G_MAXUINT64 };

    if (size < 3) {
        return 0;
    }
    /* Limits small enough for short inputs to reach. */
    limits.token_count = 6 + data[0] % 64;
    limits.token_size = 16 + data[1] % 256;
    limits.nesting = 2 + data[2] % 8;
    ctx.helper_n = ids[(data[0] >> 6) % G_N_ELEMENTS(ids)];
    s = qmp_streamer_new(emit, &ctx);
    qmp_streamer_set_limits(s, &limits);
    qmp_streamer_feed(s, (const char *)data + 3, size - 3);
    qmp_streamer_flush(s);
    return 0;
}
