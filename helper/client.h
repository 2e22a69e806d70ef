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

#include "helper/dispatch.h"
#include "helper/introspect.h"
#include "helper/upstream.h"
#include "qmp/json-value.h"

typedef struct QphClient QphClient;

/*
 * What a session needs from the helper beyond the upstream, given at
 * creation (proxy.c fills it in); a session never calls up otherwise.
 * Each hook gets the @data given to qph_client_new().
 */
typedef struct {
    /* The client's connection closed: free the session later, not from
     * inside this call. */
    void (*closed)(QphClient *client, gpointer data);
    /* Whether the helper answers @command itself. */
    gboolean (*owns_command)(const char *command, gpointer data);
    /* Run one of the helper's own commands (@args owned, may be NULL);
     * @done gets @done_data, exactly once, now or later. */
    void (*dispatch)(const char *command, QmpJson *args,
                     QphDispatchDone done, gpointer done_data, gpointer data);
    /* The helper's entries for a forwarded introspection answer
     * (qph_introspect_extra()). */
    char *(*introspect_extra)(QphIntrospectKind kind, gboolean after_elements,
                              gpointer data);
    /* A reply from QEMU to a forwarded @command, before it is written. */
    void (*note_reply)(const char *command, const QmpMessage *reply,
                       gpointer data);
} QphClientHooks;

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

/* A session on the accepted socket @fd, forwarding to @upstream (which
 * outlives it); @hooks (static) and @data as above. */
QphClient *qph_client_new(QphUpstream *upstream, const QphClientHooks *hooks,
                          gpointer data, int fd, guint serial);
void qph_client_free(QphClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphClient, qph_client_free)

/* Send QEMU's greeting; the session starts negotiating. */
void qph_client_start(QphClient *client, GBytes *greeting);

/* An event from QEMU: sent only once this client has negotiated. */
void qph_client_send_event(QphClient *client, GBytes *line);

guint qph_client_get_serial(const QphClient *client);
uid_t qph_client_get_uid(const QphClient *client);
