/*
 * qmp-client.h: an asynchronous QMP client on the GLib main loop
 *
 * One connection to one helper socket.  It connects, checks the greeting,
 * negotiates capabilities and then runs commands, several in flight at
 * once (QMP answers in-band commands in order; every command carries an
 * id and its reply is matched on it).  Nothing here blocks: connecting,
 * reading and writing are GIO asynchronous calls, so a helper that stops
 * answering holds up only its own commands.  Input is one message per
 * line, as QEMU and the helper write it, parsed by the project's
 * QEMU-compatible parser (qmp/), and bounded in size.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <gio/gio.h>
#include "qmp/json-value.h"

typedef struct QpeQmpClient QpeQmpClient;

/**
 * QpeQmpReplyFunc:
 * @reply: the reply object ({"return": ...} or {"error": ...}), valid
 *     during the call only; NULL when @error is set
 * @error: why no reply will come (the connection failed or was closed)
 *
 * Called exactly once per command.
 */
typedef void (*QpeQmpReplyFunc)(QpeQmpClient *client, const QmpJson *reply,
                                const GError *error, gpointer data);

/* Called once when the connection fails or the peer closes it, after the
 * replies still expected were failed. */
typedef void (*QpeQmpClosedFunc)(QpeQmpClient *client, const GError *error,
                                 gpointer data);

/**
 * qpe_qmp_client_new - start connecting to @path
 * @max_message: the largest message accepted from the peer, in bytes
 *
 * Commands may be queued at once; they are sent after qmp_capabilities.
 */
QpeQmpClient *qpe_qmp_client_new(const char *path, gsize max_message,
                                  QpeQmpClosedFunc closed, gpointer data);

/**
 * qpe_qmp_client_execute - run one command
 * @name: the command
 * @arguments: the JSON text of its arguments object, or NULL
 *
 * @func is called with the reply, or with an error if the connection is
 * lost first (possibly before this function returns).
 */
void qpe_qmp_client_execute(QpeQmpClient *c, const char *name,
                            const char *arguments, QpeQmpReplyFunc func,
                            gpointer data);

/* Commands sent or queued whose reply has not come yet. */
guint qpe_qmp_client_pending(const QpeQmpClient *c);

/**
 * qpe_qmp_client_close - drop the connection and release @c
 *
 * Outstanding commands are failed (their callbacks run, with
 * G_IO_ERROR_CLOSED); the closed callback is not called.
 */
void qpe_qmp_client_close(QpeQmpClient *c);

/* The text of a QMP error reply: "CLASS: DESC". */
char *qpe_qmp_error_text(const QmpJson *reply);
