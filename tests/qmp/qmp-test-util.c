/*
 * qmp-test-util.c: drive the framing layer the way QEMU's monitor does
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp-test-util.h"

#include "qmp/json-streamer.h"
#include "qmp/qmp-request.h"

typedef struct {
    GString *out;
    gboolean oob;
} ReplyState;

/* What QEMU's monitor sends back for one streamer callback. */
static void
reply_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    ReplyState *st = opaque;
    g_auto(QmpRequest) req = {0};
    g_autofree char *error = NULL;
    g_autofree char *id = NULL;
    g_autofree char *desc = NULL;
    g_autofree char *reply = NULL;

    if (error_text) {
        reply = qmp_reply_error("GenericError", error_text, NULL);
    } else if (!qmp_request_check(msg, st->oob, &req, &error)) {
        id = req.id ? qmp_request_format_id(msg, req.id) : NULL;
        reply = qmp_reply_error("GenericError", error, id);
    } else {
        id = req.id ? qmp_request_format_id(msg, req.id) : NULL;
        desc = g_strdup_printf("The command %s has not been found",
                               req.command);
        reply = qmp_reply_error("CommandNotFound", desc, id);
    }
    g_string_append(st->out, reply);
}

static void
feed_pieces(QmpStreamer *s, const char *data, gsize len, gsize split,
            gsize chunk)
{
    gsize pos = MIN(split, len);

    qmp_streamer_feed(s, data, pos);
    while (pos < len) {
        gsize n = chunk ? MIN(chunk, len - pos) : len - pos;

        qmp_streamer_feed(s, data + pos, n);
        pos += n;
    }
}

char *
qmp_test_replies(const char *data, gsize len, gsize split, gsize chunk,
                 gboolean oob)
{
    ReplyState st = {g_string_new(NULL), oob};
    g_autoptr(QmpStreamer) s = qmp_streamer_new(reply_emit, &st);

    feed_pieces(s, data, len, split, chunk);
    return g_string_free(st.out, FALSE);
}

static const char *const type_names[] = {
    "null", "bool", "int", "uint", "double", "string", "object", "array",
};

static void
trace_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    GString *out = opaque;

    if (error_text) {
        g_string_append_printf(out, "error: %s\n", error_text);
        return;
    }
    g_string_append_printf(out, "message %s: %.*s\n", type_names[msg->type],
                           (int)msg->len, msg->data);
    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        g_string_append_printf(out, "  %s@%zu = %.*s (%s)\n", m->key,
                               m->key_offset, (int)m->value_len,
                               msg->data + m->value_offset,
                               type_names[m->value_type]);
    }
}

char *
qmp_test_trace(const char *data, gsize len, gsize split, gsize chunk)
{
    GString *out = g_string_new(NULL);
    g_autoptr(QmpStreamer) s = qmp_streamer_new(trace_emit, out);

    feed_pieces(s, data, len, split, chunk);
    return g_string_free(out, FALSE);
}
