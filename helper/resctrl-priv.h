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
QphResctrlValueStatus qph_resctrl_parse_scaled(const char *text,
                                               guint decimals,
                                               guint64 *value);
QphResctrlAssignMode qph_resctrl_parse_assign_mode(const char *text);
gboolean qph_resctrl_parse_domain_list(const char *text, guint domain,
                                       guint *value);

/* Shared by resctrl.c and resctrl-assign.c. */
char *qph_resctrl_read_small(const char *path);
int qph_resctrl_lock_root(const char *root, GError **error);
void qph_resctrl_unlock_root(int fd);
void qph_resctrl_set_write_error(GError **error, const char *root,
                                 const char *what, const char *path, int err);
const char *qph_resctrl_mon_get_root(const QphResctrlMon *mon);
gboolean qph_resctrl_read_assigned(const char *group, QphResctrlFeature f,
                                   GArray **assigned);
QphResctrlValueStatus qph_resctrl_status_from_errno(int err);
