/*
 * qmp-error.c: names of the QAPI error classes
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-error.h"

G_DEFINE_QUARK(qmp-error-quark, qmp_error)

static const char *const qmp_error_class_names[] = {
    [QMP_ERROR_GENERIC_ERROR] = "GenericError",
    [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
};
G_STATIC_ASSERT(G_N_ELEMENTS(qmp_error_class_names) == QMP_ERROR__LAST);

const char *
qmp_error_class_name(const GError *error)
{
    if (error->domain != QMP_ERROR || error->code < 0 ||
        error->code >= QMP_ERROR__LAST) {
        return qmp_error_class_names[QMP_ERROR_GENERIC_ERROR];
    }
    return qmp_error_class_names[error->code];
}

QmpErrorClass
qmp_error_class_from_name(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(qmp_error_class_names); i++) {
        if (g_strcmp0(name, qmp_error_class_names[i]) == 0) {
            return (QmpErrorClass)i;
        }
    }
    return QMP_ERROR_GENERIC_ERROR;
}
