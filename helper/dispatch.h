/*
 * dispatch.h: the helper's own QMP commands
 *
 * A command name found here is answered by the helper; every other name is
 * forwarded to QEMU.  Dispatch is a function from a request (command and
 * arguments) to a reply (the "return" value's text, or an error), as in
 * QEMU's qapi/qmp-dispatch.c: it knows the VM it was given and nothing of
 * sessions or sockets, and never waits on QEMU.  The reply comes through a
 * callback because a set-perf-events that meets another resctrl user's
 * lock is retried on a timer, and the helper's later commands wait behind
 * it so that they still run in order (dispatch.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-value.h"

typedef struct QphVm QphVm;

/* Entries accepted in set-perf-events' "events" and in query-perf-events'
 * "names": every request's work and reply stay bounded (docs/security.md). */
#define QPH_DISPATCH_MAX_ENTRIES 1024

/* @ret_json (the "return" value's JSON text, as QEMU would print it) and
 * @error are passed to the callee, which owns them (free with g_free()). */
typedef void (*QphDispatchDone)(gpointer data, char *ret_json, GError *error);

gboolean qph_dispatch_has(const char *command);

/* Run @command with @args (owned; NULL when the client sent none) on @vm
 * (NULL before QEMU's monitor is ready: "not found"). */
void qph_dispatch_run(QphVm *vm, const char *command, QmpJson *args,
                      QphDispatchDone done, gpointer data);

/* Names of the helper's own commands, NULL-terminated. */
const char *const *qph_dispatch_command_names(void);
