/*
 * qmp-error.h: the GError domain for QMP error replies
 *
 * A function that fails sets a GError in this domain; its code is the QAPI
 * ErrorClass QEMU would put in the reply.  Exactly one place (the proxy's
 * reply writer) turns such a GError into {"error": {"class", "desc"}}.
 * GErrors of other domains become GenericError.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef enum {
    QMP_ERROR_GENERIC_ERROR,
    QMP_ERROR_COMMAND_NOT_FOUND,
    QMP_ERROR_DEVICE_NOT_ACTIVE,
    QMP_ERROR_DEVICE_NOT_FOUND,
    QMP_ERROR_KVM_MISSING_CAP,
    QMP_ERROR__LAST,
} QmpErrorClass;

#define QMP_ERROR (qmp_error_quark())
GQuark qmp_error_quark(void);

/* "GenericError", "CommandNotFound", ...; GenericError for foreign errors. */
const char *qmp_error_class_name(const GError *error);

/* The class named @name ("CommandNotFound", ...); GenericError for a name
 * not in the table (QEMU may grow classes a reader does not know). */
QmpErrorClass qmp_error_class_from_name(const char *name);
