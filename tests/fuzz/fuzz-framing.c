/*
 * fuzz-framing.c: the one framer, both kinds, fed arbitrary bytes in
 * arbitrary chunks
 *
 * Strict (a client's input): the input goes through two framers, once in
 * one piece and once cut into chunks whose sizes come from the input's
 * first bytes, with a descriptor set given at one of the cuts.
 * Properties: nothing crashes or leaks; both feeds give the same messages
 * and errors in the same order (a read boundary never changes what QEMU
 * would see); the descriptors go with the first message framed from
 * their feed on, and with nothing else; member spans lie inside the
 * message; every message the framer accepts parses on its own
 * (qmp_json_parse_value); qmp_request_check and qmp_request_format_id
 * hold on every message, with and without oob; a request's id always
 * formats.
 *
 * Trusted (QEMU's output): the same bytes, whole, in chunks, and in chunks
 * with part of each message in progress passed on as the upstream does
 * for a large answer.  Properties: the same messages and stray-byte
 * reports every way (a passed-on message's bytes, put back together, are
 * the whole message's); member spans lie inside the message, in order,
 * keys NUL-terminated; and every object the strict framer accepted,
 * printed as QEMU prints it, frames as one message whose members are the
 * object's, each value span exactly the value as printed.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "qmp/qmp-framer.h"
#include "qmp/qmp-request.h"

#include <string.h>

typedef struct {
    GString *transcript;
    QmpFds *expect_fds; /* given, and not yet seen on a message */
    gboolean fds_seen;
} Ctx;

/* QEMU's printing of @tree (members in QDict order) frames with the
 * trusted kind as one message whose members are the tree's, each span
 * exactly the member's value as printed. */
static void
check_trusted_members(const QmpJson *tree)
{
    g_autoptr(GString) text = g_string_new(NULL);
    g_autoptr(QmpMessage) m = NULL;

    qmp_json_write(text, tree);
    m = fuzz_frame_qemu(text->str, text->len);
    FUZZ_CHECK(m != NULL && m->len == text->len);
    FUZZ_CHECK(m->n_members ==
               MIN(tree->members->len, QMP_FRAMER_MAX_MEMBERS));
    for (guint i = 0; i < m->n_members; i++) {
        const QmpMessageMember *mm = &m->members[i];
        gboolean found = FALSE;

        for (guint j = 0; j < tree->members->len && !found; j++) {
            const QmpJsonMember *tm = g_ptr_array_index(tree->members, j);
            g_autoptr(GString) key = g_string_new(NULL);
            g_autoptr(GString) value = NULL;

            /* The key as printed, without its quotes. */
            qmp_json_write_string(key, tm->key);
            if (mm->key_len != key->len - 2 ||
                memcmp(mm->key, key->str + 1, key->len - 2) != 0) {
                continue;
            }
            found = TRUE;
            value = g_string_new(NULL);
            qmp_json_write(value, tm->value);
            FUZZ_CHECK(mm->value_len == value->len);
            FUZZ_CHECK(memcmp(m->data + mm->value_offset, value->str,
                              value->len) == 0);
        }
        FUZZ_CHECK(found);
    }
}

static void
check_message(const QmpMessage *msg, GString *transcript)
{
    g_autofree char *error_text = NULL;
    g_autoptr(QmpJson) tree = NULL;

    FUZZ_CHECK(msg->len > 0);
    tree = qmp_json_parse_value(msg->data, msg->len, &error_text);
    FUZZ_CHECK(tree != NULL);
    FUZZ_CHECK(tree->type == msg->type);
    FUZZ_CHECK(msg->n_members == 0 || msg->type == QMP_JSON_OBJECT);
    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];
        g_autoptr(QmpJson) v = NULL;
        g_autofree char *err = NULL;

        FUZZ_CHECK(m->key_offset < m->value_offset);
        FUZZ_CHECK(m->value_offset + m->value_len <= msg->len);
        FUZZ_CHECK(m->key[m->key_len] == '\0');
        v = qmp_json_parse_value(msg->data + m->value_offset, m->value_len,
                                 &err);
        FUZZ_CHECK(v != NULL);
        FUZZ_CHECK(v->type == m->value_type);
    }
    if (msg->type == QMP_JSON_OBJECT) {
        check_trusted_members(tree);
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
    if (ctx->expect_fds && !ctx->fds_seen) {
        FUZZ_CHECK(msg->fds == ctx->expect_fds);
        ctx->fds_seen = TRUE;
    } else {
        FUZZ_CHECK(msg->fds == NULL);
    }
    g_string_append_printf(ctx->transcript, "message %zu ", msg->len);
    g_string_append_len(ctx->transcript, msg->data, msg->len);
    g_string_append_c(ctx->transcript, '\n');
    check_message(msg, ctx->transcript);
}

/* ---- QEMU's side ------------------------------------------------------ */

typedef struct {
    GString *transcript;
    GString *passed; /* of the message in progress, passed on */
} TrustedCtx;

static void
trusted_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    TrustedCtx *ctx = opaque;

    if (error_text) {
        g_string_append_printf(ctx->transcript, "error %s\n", error_text);
        return;
    }
    FUZZ_CHECK(msg->len > 0 && (msg->data[msg->len - 1] == '}' ||
                                msg->data[msg->len - 1] == ']'));
    FUZZ_CHECK(msg->passed_on == ctx->passed->len);
    FUZZ_CHECK(msg->n_members <= QMP_FRAMER_MAX_MEMBERS);
    FUZZ_CHECK(msg->passed_on == 0 || msg->n_members == 0);
    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        FUZZ_CHECK(m->key_offset < m->value_offset);
        FUZZ_CHECK(m->value_offset + m->value_len <= msg->len);
        FUZZ_CHECK(m->key_offset + m->key_len < msg->len);
        FUZZ_CHECK(m->key[m->key_len] == '\0');
        FUZZ_CHECK(i == 0 || m->key_offset >= msg->members[i - 1].value_offset
                                                  + msg->members[i - 1]
                                                        .value_len);
    }
    g_string_append_printf(ctx->transcript, "message %zu ",
                           msg->passed_on + msg->len);
    g_string_append_len(ctx->transcript, ctx->passed->str, ctx->passed->len);
    g_string_append_len(ctx->transcript, msg->data, msg->len);
    g_string_append_c(ctx->transcript, '\n');
    g_string_truncate(ctx->passed, 0);
}

/* Frame @data as QEMU's output: whole (@state 0), or in chunks, passing
 * on part of the message in progress after each when @pass_on. */
static char *
trusted_transcript(const uint8_t *data, size_t size, guint32 state,
                   gboolean pass_on)
{
    TrustedCtx ctx = { g_string_new(NULL), g_string_new(NULL) };
    g_autoptr(QmpFramer) f =
        qmp_framer_new(QMP_FRAMER_TRUSTED, trusted_emit, &ctx);
    gsize pos = 0;

    while (pos < size) {
        gsize n = state ? 1 + fuzz_next(&state) % 17 : size;
        const char *start;
        gsize pending;

        n = MIN(n, size - pos);
        qmp_framer_feed(f, (const char *)data + pos, n, NULL);
        pos += n;
        start = qmp_framer_peek(f, &pending);
        FUZZ_CHECK(pending == qmp_framer_get_buffered(f));
        if (pass_on && pending > 0) {
            gsize k = fuzz_next(&state) % (pending + 1);

            g_string_append_len(ctx.passed, start, k);
            qmp_framer_pass_on(f, k);
        }
        qmp_framer_release(f, 16);
    }
    g_string_free(ctx.passed, TRUE);
    return g_string_free(ctx.transcript, FALSE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Ctx whole = { g_string_new(NULL) };
    Ctx chunked = { g_string_new(NULL) };
    guint32 state = 0x9e3779b9;
    gsize pos = 0;
    guint cut = 0, fds_at;
    g_autofree char *t_whole = NULL;
    g_autofree char *t_chunked = NULL;
    g_autofree char *t_passed = NULL;

    if (size >= 4) {
        memcpy(&state, data, 4);
        state |= 1;
    }
    fds_at = fuzz_next(&state) % 8;
    {
        g_autoptr(QmpFramer) f =
            qmp_framer_new(QMP_FRAMER_STRICT, emit, &whole);

        qmp_framer_feed(f, (const char *)data, size, NULL);
        qmp_framer_flush(f);
    }
    {
        g_autoptr(QmpFramer) f =
            qmp_framer_new(QMP_FRAMER_STRICT, emit, &chunked);

        while (pos < size) {
            gsize n = 1 + fuzz_next(&state) % 17;
            g_autoptr(QmpFds) fds = NULL;

            if (cut++ == fds_at) {
                /* No real descriptors: closing -1 is harmless. */
                fds = qmp_fds_new((int[]){ -1 }, 1);
                chunked.expect_fds = fds;
                chunked.fds_seen = FALSE;
            }
            n = MIN(n, size - pos);
            qmp_framer_feed(f, (const char *)data + pos, n, fds);
            pos += n;
        }
        qmp_framer_flush(f);
    }
    FUZZ_CHECK(g_str_equal(whole.transcript->str, chunked.transcript->str));
    g_string_free(whole.transcript, TRUE);
    g_string_free(chunked.transcript, TRUE);

    t_whole = trusted_transcript(data, size, 0, FALSE);
    t_chunked = trusted_transcript(data, size, state, FALSE);
    t_passed = trusted_transcript(data, size, state, TRUE);
    FUZZ_CHECK(g_str_equal(t_whole, t_chunked));
    FUZZ_CHECK(g_str_equal(t_whole, t_passed));
    return 0;
}
