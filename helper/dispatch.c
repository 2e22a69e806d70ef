/*
 * dispatch.c: the helper's own QMP commands
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/dispatch.h"
#include "helper/proxy.h"
#include "qmp/qmp-error.h"

static const char *const own_commands[] = { NULL };

gboolean
qph_dispatch_has(const char *command)
{
    return g_strv_contains(own_commands, command);
}

const char *const *
qph_dispatch_command_names(void)
{
    return own_commands;
}

void
qph_dispatch_run(QphProxy *proxy, const char *command, QmpJson *args,
                 QphDispatchDone done, gpointer data)
{
    g_autoptr(QmpJson) owned = args;

    done(data, NULL,
         g_error_new(QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                     "The command %s has not been found", command));
}
