/*
 * json-streamer.h: find QMP messages in a client's byte stream, as QEMU does
 *
 * A client's input is a stream of JSON values, not lines.  The streamer is
 * fed whatever a read() returned and calls back once per top-level value
 * (a "message") or once per error, in stream order, with exactly the
 * messages and errors QEMU 7.2's json-lexer/json-streamer/json-parser would
 * produce for the same bytes: the same limits (token size 64 MiB, token
 * count 2 Mi, nesting 1024), the same error texts, the same recovery.
 *
 * A message carries its bytes as the client sent them (from the first byte
 * of its first token to the last byte of its last token; whitespace runs
 * inside it are kept up to a bound, which never changes the value) and, for
 * an object, the byte spans of its top-level members, so the proxy can
 * forward it without re-serializing and splice a different `id` in.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-value.h"
#include "qmp/qmp-message.h"

#define QMP_JSON_MAX_TOKEN_SIZE (64ULL << 20)
#define QMP_JSON_MAX_TOKEN_COUNT (2ULL << 20)
#define QMP_JSON_MAX_NESTING (1 << 10)


/**
 * QmpStreamerEmit:
 * @msg: the message, or NULL when @error_text is set
 * @error_text: QEMU's error description (e.g. "JSON parse error, stray 'x'"),
 *     or NULL when @msg is set.  The reply QEMU sends for it is a
 *     GenericError with this desc and no id.
 */
typedef void (*QmpStreamerEmit)(gpointer opaque, const QmpMessage *msg,
                                const char *error_text);

typedef struct QmpStreamer QmpStreamer;

/* What one message may cost (QEMU's MAX_TOKEN_SIZE, MAX_TOKEN_COUNT,
 * MAX_NESTING); a token is refused once the total would reach @token_size,
 * or once the count would exceed @token_count. */
typedef struct {
    guint64 token_size;
    guint64 token_count;
    gint64 nesting;
} QmpJsonLimits;

extern const QmpJsonLimits qmp_json_qemu_limits;

QmpStreamer *qmp_streamer_new(QmpStreamerEmit emit, gpointer opaque);
void qmp_streamer_free(QmpStreamer *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpStreamer, qmp_streamer_free)

/* Feed @len bytes; calls emit zero or more times before returning. */
void qmp_streamer_feed(QmpStreamer *s, const char *buf, gsize len);

/* Other limits than QEMU's, for fuzzing: small ones are reached by small
 * inputs.  @limits must outlive the streamer. */
void qmp_streamer_set_limits(QmpStreamer *s, const QmpJsonLimits *limits);

/* Bytes currently buffered for an incomplete message (for memory bounds). */
gsize qmp_streamer_get_buffered(const QmpStreamer *s);

/**
 * qmp_json_parse_value:
 * Build a tree from the bytes of one complete JSON value that the streamer
 * already accepted (e.g. a member's value span).  Returns NULL (and sets
 * @error_text) only for input the streamer would have rejected.
 */
QmpJson *qmp_json_parse_value(const char *data, gsize len, char **error_text);

/**
 * qmp_streamer_flush:
 * End of input: finish a pending number or keyword and parse what is left,
 * as QEMU's json_message_parser_flush() does.  QEMU's monitor never calls
 * it (an incomplete message at disconnect is simply dropped); it is for
 * parsing self-contained text.
 */
void qmp_streamer_flush(QmpStreamer *s);
