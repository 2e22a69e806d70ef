/*
 * upstream.h: the helper's one connection to QEMU's QMP monitor
 *
 * The upstream reads QEMU's greeting, negotiates (with "oob" when QEMU
 * offers it, so that exec-oob from clients can pass), and then carries
 * requests: in-band ones as the client sent them, answered in order;
 * exec-oob ones with the helper's id (helper/splice.c).  Every answer is
 * matched to its request and handed to whoever sent it: a client session,
 * or the helper itself (query-cpus-fast and the like), whose answers never
 * reach a client.  Messages without "return" or "error" are events.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "qmp/qmp-message.h"

typedef struct QphUpstream QphUpstream;

/**
 * QphUpstreamReplyFunc:
 * @msg: the reply, or NULL when the upstream went away before it came
 */
typedef void (*QphUpstreamReplyFunc)(QphUpstream *up,
                                     const QmpMessage *msg,
                                     gpointer user_data);

/**
 * QphUpstreamStreamFunc:
 * Part of a large answer as it arrives (qph_upstream_set_stream): @data is
 * @len bytes of it, in order, from its first byte.  Return FALSE from the
 * first call to decline: the answer then comes whole to the reply
 * callback.  With @final, @data is the rest, up to the closing brace
 * (an in-band answer: with the client's id as QEMU echoed it, if any),
 * and the reply callback is not called.
 */
typedef gboolean (*QphUpstreamStreamFunc)(QphUpstream *up, const char *data,
                                          gsize len, gboolean final,
                                          gpointer user_data);

typedef struct {
    void (*ready)(QphUpstream *up, gpointer opaque);
    /* The peer is not a QMP monitor, refused negotiation, or sent no
     * greeting within QPH_UPSTREAM_GREETING_S; @error says what it
     * answered.  Nothing more is read from it. */
    void (*failed)(QphUpstream *up, const GError *error, gpointer opaque);
    void (*event)(QphUpstream *up, const QmpMessage *msg,
                  gpointer opaque);
    void (*closed)(QphUpstream *up, gpointer opaque);
} QphUpstreamCallbacks;

/* How long QEMU's monitor may take to greet and negotiate. */
#define QPH_UPSTREAM_GREETING_S 10

/* Take ownership of the connected socket @fd (non-blocking is set here). */
QphUpstream *qph_upstream_new(int fd, const QphUpstreamCallbacks *cb,
                              gpointer opaque);
void qph_upstream_free(QphUpstream *up);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphUpstream, qph_upstream_free)

/* QEMU's greeting line, byte for byte, CRLF included; NULL before ready. */
GBytes *qph_upstream_get_greeting(QphUpstream *up);
/* Whether QEMU offered the capability @name in its greeting. */
gboolean qph_upstream_offers(QphUpstream *up, const char *name);
/* The QEMU process id from SO_PEERCRED, or 0 if unknown. */
pid_t qph_upstream_get_peer_pid(QphUpstream *up);

/* Client in-band requests in QEMU at once: QEMU runs one at a time; a
 * second keeps its queue busy while the helper handles the reply. */
#define QPH_UPSTREAM_FAIR_WINDOW 2

/**
 * qph_upstream_forward:
 * Send a client's message @msg: in-band byte for byte as the client sent
 * it; exec-oob with its id replaced by the helper's (see
 * qph_splice_prepare_oob() for when it goes without one).
 * @owner: the client session for an in-band request, which then waits for
 * its turn: at most QPH_UPSTREAM_FAIR_WINDOW of them are in QEMU at once,
 * and the next one is taken round-robin from the owners with one waiting.
 * NULL for exec-oob, which goes at once.
 * @id: the client's id member, or NULL when the client sent none.
 * @fds: descriptors to send with the message, or NULL (a reference is
 * held until they have gone, or the request is dropped).
 * The answer given to @cb is QEMU's: for exec-oob with the helper's id
 * (or none), for in-band with the client's id as QEMU echoed it.
 * Returns a handle for qph_upstream_cancel().
 */
guint64 qph_upstream_forward(QphUpstream *up, gpointer owner,
                             const QmpMessage *msg, const QmpMessageMember *id,
                             QmpFds *fds, QphUpstreamReplyFunc cb,
                             gpointer user_data);

/* @owner has gone (call this for every owner that forwarded): its requests
 * still waiting for their turn are dropped (their descriptors closed, their
 * callbacks never called) and its place in the rotation freed.  Those
 * already sent keep their place in the window until QEMU answers; cancel
 * them. */
void qph_upstream_drop_owner(QphUpstream *up, gpointer owner);

/**
 * qph_upstream_call:
 * Send the helper's own command, in-band and without an id (its answer
 * comes by order).  @arguments is a JSON object text or NULL.
 */
guint64 qph_upstream_call(QphUpstream *up, const char *command,
                          const char *arguments, QphUpstreamReplyFunc cb,
                          gpointer user_data);

/* The reply of @handle is dropped when it comes; its callback is not
 * called. */
void qph_upstream_cancel(QphUpstream *up, guint64 handle);

/* A peer that takes more than QPH_UPSTREAM_GREETING_S to greet is only
 * warned about (a QEMU of the libvirt wrapper may be slow to start). */
void qph_upstream_set_patient(QphUpstream *up, gboolean patient);
/* After a failure: the monitor socket for a plain relay (relay.c). */
int qph_upstream_take_fd(QphUpstream *up, GBytes **replay);

/* A large answer to the request @handle may be passed on as it comes. */
void qph_upstream_set_stream(QphUpstream *up, guint64 handle,
                             QphUpstreamStreamFunc stream);

/* Requests sent and not yet answered. */
guint qph_upstream_get_pending(QphUpstream *up);
