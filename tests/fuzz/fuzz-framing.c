/*
 * fuzz-framing.c: the framing layer fed arbitrary bytes in arbitrary chunks
 *
 * The input goes through two streamers: once in one piece and once cut
 * into chunks whose sizes come from the input's first bytes.  Properties:
 * nothing crashes or leaks; both feeds give the same messages and errors
 * in the same order (a read boundary never changes what QEMU would see);
 * member spans lie inside the message; every message the streamer accepts
 * parses on its own (qmp_json_parse_value); qmp_request_check and
 * qmp_request_format_id hold on every message, with and without oob; a
 * request's id always formats.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "qmp/json-streamer.h"
#include "qmp/qmp-request.h"

#include <string.h>

typedef struct {
    GString *transcript;
} Ctx;

static void
check_message(const QmpMessage *msg, GString *transcript)
{
    g_autofree char *error_text = NULL;
    g_autoptr(QmpJson) tree = NULL;

    FUZZ_CHECK(msg->len > 0);
    tree = qmp_json_parse_value(msg->data, msg->len, &error_text);
    FUZZ_CHECK(tree != NULL);
    FUZZ_CHECK(tree->type == msg->type);
    if (msg->n_members) {
        FUZZ_CHECK(msg->type == QMP_JSON_OBJECT);
        for (guint i = 0; i < msg->n_members; i++) {
            const QmpMessageMember *m = &msg->members[i];
            g_autoptr(QmpJson) v = NULL;
            g_autofree char *err = NULL;

            FUZZ_CHECK(m->key_offset < m->value_offset);
            FUZZ_CHECK(m->value_offset + m->value_len <= msg->len);
            v = qmp_json_parse_value(msg->data + m->value_offset,
                                     m->value_len, &err);
            FUZZ_CHECK(v != NULL);
            FUZZ_CHECK(v->type == m->value_type);
        }
    }
    for (int oob = 0; oob < 2; oob++) {
        g_auto(QmpRequest) req = { 0 };
        g_autofree char *err = NULL;
        gboolean ok = qmp_request_check(msg, oob, &req, &err);

        FUZZ_CHECK(ok ? req.command != NULL : err != NULL);
        if (req.id) {
            g_autofree char *id = qmp_request_format_id(msg, req.id);
            g_autofree char *reply = NULL;

            FUZZ_CHECK(id != NULL);
            reply = qmp_reply_error("GenericError", err ? err : "ok", id);
            FUZZ_CHECK(reply != NULL);
        }
        if (oob == 0) {
            g_string_append_printf(transcript, "check %d %s\n", ok,
                                   ok ? req.command : err);
        }
    }
}

static void
emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    Ctx *ctx = opaque;

    if (error_text) {
        g_string_append_printf(ctx->transcript, "error %s\n", error_text);
        return;
    }
    g_string_append_printf(ctx->transcript, "message %zu ", msg->len);
    g_string_append_len(ctx->transcript, msg->data, msg->len);
    g_string_append_c(ctx->transcript, '\n');
    check_message(msg, ctx->transcript);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ctx whole = { g_string_new(NULL) };
    Ctx chunked = { g_string_new(NULL) };
    guint32 state = 0x9e3779b9;
    gsize pos = 0;

    if (size >= 4) {
        memcpy(&state, data, 4);
        state |= 1;
    }
    {
        g_autoptr(QmpStreamer) s = qmp_streamer_new(emit, &whole);

        qmp_streamer_feed(s, (const char *)data, size);
        qmp_streamer_flush(s);
    }
    {
        g_autoptr(QmpStreamer) s = qmp_streamer_new(emit, &chunked);

        while (pos < size) {
            gsize n = 1 + fuzz_next(&state) % 17;

            n = MIN(n, size - pos);
            qmp_streamer_feed(s, (const char *)data + pos, n);
            pos += n;
        }
        qmp_streamer_flush(s);
    }
    FUZZ_CHECK(g_str_equal(whole.transcript->str, chunked.transcript->str));
    g_string_free(whole.transcript, TRUE);
    g_string_free(chunked.transcript, TRUE);
    return 0;
}
