/*
 * qmp-request.h: QEMU's checks on a QMP request, and QEMU-shaped replies
 *
 * After the streamer has found a message, QEMU's monitor decides whether
 * it is a well-formed request before it looks the command up (monitor/qmp.c
 * and qapi/qmp-dispatch.c).  The proxy must reject exactly what QEMU
 * rejects, with the same text, and must build the replies it makes up
 * itself exactly as QEMU would print them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-streamer.h"

typedef struct {
    char *command;                     /* unescaped; NULL if the check failed */
    gboolean oob;                      /* "exec-oob" rather than "execute" */
    const QmpMessageMember *id;        /* NULL when absent */
    const QmpMessageMember *arguments; /* NULL when absent */
} QmpRequest;

/**
 * qmp_request_check - QEMU's qmp_dispatch() checks on a request
 * @msg: a message from the streamer
 * @allow_oob: whether the client negotiated the "oob" capability
 * @req: filled in; its pointers point into @msg
 * @error_text: on failure, QEMU's desc for the GenericError reply
 *
 * Members are looked at in QDict order, as QEMU does, so which error is
 * reported for a request with several problems matches QEMU.  QEMU echoes
 * the id on these errors, so @req->id is set even on failure (for an
 * object).  Clear @req with qmp_request_clear().
 *
 * Returns TRUE when @msg is a request QEMU would go on to dispatch.
 */
gboolean qmp_request_check(const QmpMessage *msg, gboolean allow_oob,
                           QmpRequest *req, char **error_text);

/**
 * qmp_request_clear - free what qmp_request_check() allocated
 * @req: the request
 */
void qmp_request_clear(QmpRequest *req);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QmpRequest, qmp_request_clear)

/**
 * qmp_request_format_id - the id as QEMU echoes it
 * @msg: the message
 * @id: its id member
 *
 * QEMU parses the id and prints it again: `1.50` comes back as `1.5`,
 * `"\u00e9"` stays `"\u00E9"`, object keys are reordered.
 *
 * Returns the JSON text (free with g_free()), or NULL if the id does not
 * parse (impossible for a member of a message the streamer accepted).
 */
char *qmp_request_format_id(const QmpMessage *msg,
                            const QmpMessageMember *id);

/**
 * qmp_reply_error - an error reply as QEMU prints it, CRLF included
 * @class_name: "GenericError", "CommandNotFound", ...
 * @desc: the description (modified UTF-8; escaped QEMU's way)
 * @id_json: the id's JSON text (see qmp_request_format_id()) or NULL
 *
 * Returns `{"error": {"class": ..., "desc": ...}}` or, with an id, the
 * members in QDict order: `{"id": ..., "error": {...}}`.  Free with
 * g_free().
 */
char *qmp_reply_error(const char *class_name, const char *desc,
                      const char *id_json);

/**
 * qmp_reply_return - a success reply as QEMU prints it, CRLF included
 * @return_json: the value's JSON text, inserted verbatim
 * @id_json: the id's JSON text or NULL
 *
 * Returns `{"return": ...}` or `{"return": ..., "id": ...}` (QDict order).
 * Free with g_free().
 */
char *qmp_reply_return(const char *return_json, const char *id_json);
