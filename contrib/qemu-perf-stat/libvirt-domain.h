/*
 * libvirt-domain.h: find a libvirt domain's monitor socket by its name
 *
 * libvirt's QEMU driver keeps each running domain's monitor at
 * LIBDIR/domain-ID-SHORTNAME/monitor.sock, where LIBDIR is
 * /var/lib/libvirt/qemu for qemu:///system (and
 * $XDG_CONFIG_HOME/libvirt/qemu/lib for qemu:///session), ID the domain's
 * run-time id and SHORTNAME the first 20 characters of its name
 * (virDomainDefGetShortName()).  With qemu-perf-wrapper as the domain's
 * <emulator>, that socket is the helper's.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/* libvirt truncates names in directory names to this many characters. */
#define STAT_LIBVIRT_SHORT_NAME_MAX 20

/**
 * stat_libvirt_monitor_socket - the monitor socket of running domain @name
 * @name: the domain's name, as virsh shows it
 * @error: set when none or several match, or the directory is unreadable
 *
 * Looks in the session directory (for a user other than root), then in
 * libvirt's system one.  Returns the path.
 */
char *stat_libvirt_monitor_socket(const char *name, GError **error);

/* Where stat_libvirt_monitor_socket() looks, for messages; NULL-ended. */
char **stat_libvirt_dirs(void);
