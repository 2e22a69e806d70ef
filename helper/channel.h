/*
 * channel.h: one non-blocking unix stream socket with an output queue
 *
 * Both sides of the proxy (each client, and the one upstream connection to
 * QEMU) are channels.  A channel reads with recvmsg() so that descriptors
 * sent with SCM_RIGHTS arrive together with the bytes they came with, and
 * writes with sendmsg() so that descriptors queued with a chunk of output
 * leave in the same call as that chunk's first byte, as QEMU requires for
 * getfd and add-fd.  Output that the peer does not read is queued up to a
 * bound; the owner decides what to do past it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

#define QPH_CHANNEL_MAX_FDS 16 /* per recvmsg, as QEMU's own limit */

typedef struct QphChannel QphChannel;

/**
 * QphChannelReadFunc:
 * Called with the bytes of one recvmsg and the descriptors that came with
 * them (@fds is NULL when none; ownership of the descriptors passes to the
 * callee, who must close what it does not keep).  @buf is valid only
 * during the call: every channel reads into the same buffer.
 */
typedef void (*QphChannelReadFunc)(QphChannel *ch, const char *buf, gsize len,
                                   int *fds, guint n_fds, gpointer opaque);
/* Called once when the peer hung up or the socket failed; the channel is
 * closed by then, and the owner frees it. */
typedef void (*QphChannelClosedFunc)(QphChannel *ch, gpointer opaque);
/* Called when the output queue has drained below the low-water mark. */
typedef void (*QphChannelDrainedFunc)(QphChannel *ch, gpointer opaque);

QphChannel *qph_channel_new(int fd, QphChannelReadFunc read_cb,
                            QphChannelClosedFunc closed_cb,
                            QphChannelDrainedFunc drained_cb, gpointer opaque);
void qph_channel_free(QphChannel *ch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphChannel, qph_channel_free)

int qph_channel_get_fd(QphChannel *ch);

/* Queue @len bytes (copied) and optionally descriptors (ownership taken,
 * closed once sent or when the channel goes away). */
void qph_channel_write(QphChannel *ch, const char *buf, gsize len, int *fds,
                       guint n_fds);
void qph_channel_write_bytes(QphChannel *ch, GBytes *bytes);
/* Both: @bytes referenced, not copied (a large request is not doubled). */
void qph_channel_write_bytes_fds(QphChannel *ch, GBytes *bytes, int *fds,
                                 guint n_fds);

/* Bytes queued and not yet accepted by the kernel. */
gsize qph_channel_get_queued(const QphChannel *ch);
/* Bytes the kernel has taken since the channel was created (progress). */
guint64 qph_channel_get_sent(const QphChannel *ch);

/* Stop or resume reading (flow control); reading starts enabled. */
void qph_channel_set_reading(QphChannel *ch, gboolean reading);

/* Drop queued output and close from the next dispatch, even if the peer
 * never reads again (qph_channel_shutdown() waits for it to drain). */
void qph_channel_abort(QphChannel *ch);

/* Write what can be written without blocking, then close. */
void qph_channel_shutdown(QphChannel *ch);

gboolean qph_channel_is_closed(const QphChannel *ch);
