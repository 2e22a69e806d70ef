/*
 * seccomp.h: the system-call filter the helper runs under after start-up
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/* Install the filter (helper/seccomp.c explains the policy).  FALSE with
 * @error when it could not be installed; the caller logs it and goes on. */
gboolean qph_seccomp_install(GError **error);

/* Test hook (--seccomp-selftest): make one call the filter refuses and log
 * what happened. */
void qph_seccomp_selftest(void);
