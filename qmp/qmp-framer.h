/*
 * qmp-framer.h: the one framer of QMP messages, for both directions
 *
 * Fed whatever a read() returned, a framer calls back once per message
 * (a QmpMessage: its bytes, its top-level member spans, the descriptors
 * of the read that brought it) or once per framing error, in stream
 * order.  It has two kinds, for the two sides of a monitor:
 *
 * QMP_FRAMER_STRICT  what a client sends (and what a client of the helper
 *     reads, qmp-client.c): exactly the messages and errors QEMU 7.2's
 *     json-lexer, json-streamer and json-parser produce for the same
 *     bytes, with their limits and error texts (json-streamer.c).
 *     Descriptors given with a feed go with the first message framed from
 *     that feed on (as QEMU's monitor, which keeps those of its latest
 *     recvmsg() for the command that takes them); a framing error does
 *     not take them.
 * QMP_FRAMER_TRUSTED  what QEMU sends: trusted JSON, so only its structure
 *     is followed (strings, escapes, nesting) to find where an object ends
 *     and where its first QMP_FRAMER_MAX_MEMBERS members lie.  Whatever
 *     the bytes, it never reads out of bounds, never loops and holds no
 *     more than the message in progress.  Bytes between messages other
 *     than whitespace are reported, once per run, as an error
 *     ("QMP stream: stray byte 'x' between messages").  A large message
 *     in progress can be passed on while it comes (qmp_framer_peek(),
 *     qmp_framer_pass_on()), the framer keeping its place in it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-streamer.h"
#include "qmp/qmp-message.h"

#define QMP_FRAMER_MAX_MEMBERS 8

typedef enum {
    QMP_FRAMER_STRICT,
    QMP_FRAMER_TRUSTED,
} QmpFramerKind;

typedef struct QmpFramer QmpFramer;

/* @emit is as for the streamer: a message, or an error text.  The
 * framer may be freed from it. */
QmpFramer *qmp_framer_new(QmpFramerKind kind, QmpStreamerEmit emit,
                          gpointer opaque);
void qmp_framer_free(QmpFramer *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpFramer, qmp_framer_free)

/* Feed @len bytes and the descriptors that came with them (@fds may be
 * NULL; a reference is taken while they wait for a message). */
void qmp_framer_feed(QmpFramer *f, const char *buf, gsize len, QmpFds *fds);

/* QMP_FRAMER_STRICT: end of input (qmp_streamer_flush()); other limits
 * than QEMU's, for fuzzing. */
void qmp_framer_flush(QmpFramer *f);
void qmp_framer_set_limits(QmpFramer *f, const QmpJsonLimits *limits);

/* Bytes held for the message in progress. */
gsize qmp_framer_get_buffered(const QmpFramer *f);

/* QMP_FRAMER_TRUSTED: the bytes of the message in progress not yet passed
 * on (NULL and 0 between messages), valid until the next feed. */
const char *qmp_framer_peek(const QmpFramer *f, gsize *len);
/* The first @n bytes qmp_framer_peek() gave have gone elsewhere: drop
 * them.  The message goes on; when it ends, its QmpMessage holds only
 * the rest, and passed_on says how much went before. */
void qmp_framer_pass_on(QmpFramer *f, gsize n);
/* Drop the message in progress (the stream is to be closed). */
void qmp_framer_reset(QmpFramer *f);
/* Between messages: if the buffer ever held more than @keep bytes since
 * it was last released, free it (its size is its high-water, not what it
 * holds now).  TRUE when it did, so the caller can give memory back. */
gboolean qmp_framer_release(QmpFramer *f, gsize keep);
