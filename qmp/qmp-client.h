/*
 * qmp-client.h: a blocking QMP client connection, for command-line tools
 *
 * The helper itself never blocks; the programs beside it (qemu-perf-stat,
 * the exporter) are ordinary QMP clients that ask one question at a time.
 * This is that client: connect to a unix socket, read the greeting,
 * negotiate capabilities, then execute commands one by one and get their
 * "return" value as a QmpJson tree.  Events that arrive meanwhile are
 * skipped.  Every wait is bounded by the timeout given at connect time.
 *
 * It reuses the framing layer (streamer and parser) for replies, so a
 * client reads QEMU's numbers exactly as QEMU wrote them (uint64 values
 * stay exact).  Errors:
 *   - G_FILE_ERROR (from errno) when the socket cannot be reached,
 *     e.g. G_FILE_ERROR_ACCES for a socket the user may not open;
 *   - QMP_ERROR with the class of an error reply (CommandNotFound, ...)
 *     and its desc as the message;
 *   - QMP_CLIENT_ERROR when the peer closes, is silent too long, or does
 *     not speak QMP.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-value.h"

typedef enum {
    QMP_CLIENT_ERROR_CLOSED,      /* the peer closed the connection */
    QMP_CLIENT_ERROR_TIMEOUT,     /* no reply within the timeout */
    QMP_CLIENT_ERROR_PROTOCOL,    /* not QMP: bad JSON, no greeting, ... */
    QMP_CLIENT_ERROR_NO_GREETING, /* connected, but no greeting in time:
                                   * QEMU's monitor busy with another
                                   * client looks like this */
} QmpClientError;

#define QMP_CLIENT_ERROR (qmp_client_error_quark())
GQuark qmp_client_error_quark(void);

typedef struct QmpClient QmpClient;

/**
 * qmp_client_connect - connect to a QMP server and negotiate
 * @path: the unix socket
 * @timeout_ms: bound on every later wait (connect, each reply)
 * @error: set on failure
 *
 * Reads the greeting and runs qmp_capabilities (no optional capability).
 * Returns the client, or NULL with @error set.
 */
QmpClient *qmp_client_connect(const char *path, guint timeout_ms,
                              GError **error);

/* Change the bound on later waits (e.g. a short one for the greeting at
 * connect, a longer one for replies). */
void qmp_client_set_timeout(QmpClient *c, guint timeout_ms);

/* The connection's socket, to poll() for the peer going away (POLLRDHUP)
 * between commands; reading from it is the client's business. */
int qmp_client_get_fd(const QmpClient *c);

/* The greeting's "QMP" object (version, capabilities); owned by @c. */
const QmpJson *qmp_client_greeting(const QmpClient *c);

/**
 * qmp_client_execute - run one command and wait for its reply
 * @c: the client
 * @command: the command name
 * @arguments: an object, or NULL for none; taken
 * @error: set on failure
 *
 * Returns the reply's "return" value (owned by the caller), or NULL with
 * @error set.  After a QMP_ERROR the connection is still usable; after
 * any other error it is not.
 */
QmpJson *qmp_client_execute(QmpClient *c, const char *command,
                            QmpJson *arguments, GError **error);

void qmp_client_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

/* Reading replies: the number in @v as guint64 (INT >= 0 or UINT), or
 * @fallback when @v is absent or not such a number. */
guint64 qmp_json_get_u64(const QmpJson *v, guint64 fallback);

/* The string in @v, or NULL when @v is absent or not a string. */
const char *qmp_json_get_string(const QmpJson *v);

/* The boolean in @v, or @fallback. */
gboolean qmp_json_get_bool(const QmpJson *v, gboolean fallback);
