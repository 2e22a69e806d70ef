/*
 * client.h: one QMP client of the helper (a "session")
 *
 * A session turns a client's byte stream into requests (qmp/ framing),
 * answers what the helper answers itself, forwards the rest upstream with
 * the helper's id, and writes replies back in the order QEMU would have:
 * in-band replies in request order, exec-oob replies as soon as they come.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct QphProxy QphProxy;
typedef struct QphClient QphClient;

/* Per-client bounds.  Past QPH_CLIENT_MAX_INFLIGHT requests or
 * QPH_CLIENT_MAX_QUEUED bytes of output the client is not read until it
 * catches up.  With more than QPH_CLIENT_MAX_QUEUED bytes queued, a client
 * that takes none of them for QPH_CLIENT_STALL_S seconds is disconnected;
 * one that reads, however slowly, is not (a reply may be as large as
 * QEMU's, QPH_UPSTREAM_MAX_MESSAGE).  QPH_CLIENT_HARD_QUEUED is a last
 * bound on its queue whatever it does. */
#define QPH_CLIENT_MAX_INFLIGHT 8 /* QEMU's own QMP_REQ_QUEUE_LEN_MAX */
#define QPH_CLIENT_MAX_QUEUED (1u << 20)
#define QPH_CLIENT_STALL_S 10
#define QPH_CLIENT_HARD_QUEUED (512u << 20)

QphClient *qph_client_new(QphProxy *proxy, int fd, guint serial);
void qph_client_free(QphClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphClient, qph_client_free)

/* Send QEMU's greeting; the session starts negotiating. */
void qph_client_start(QphClient *client, GBytes *greeting);

/* An event from QEMU: sent only once this client has negotiated. */
void qph_client_send_event(QphClient *client, GBytes *line);

guint qph_client_get_serial(const QphClient *client);
uid_t qph_client_get_uid(const QphClient *client);
