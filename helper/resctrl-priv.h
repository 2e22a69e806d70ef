/*
 * resctrl-priv.h: resctrl backend internals exposed to tests/resctrl only
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#ifndef QPH_RESCTRL_ALLOW_PRIV
#error "resctrl-priv.h is for helper/resctrl.c and tests/resctrl only"
#endif

#include "helper/resctrl.h"

/* Our monitoring groups are mon_groups/qemu-perf-helper-<QEMU pid>. */
#define QPH_RESCTRL_GROUP_PREFIX "qemu-perf-helper-"

QphResctrlValueStatus qph_resctrl_parse_value(const char *text,
                                              guint64 *value);
QphResctrlValueStatus qph_resctrl_status_from_errno(int err);
