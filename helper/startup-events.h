/*
 * startup-events.h: events on from the start, and again after a restart
 *
 * "--enable EVENT,..." turns events on as soon as the helper knows QEMU's
 * threads, before any client can connect, with the rules and error texts
 * of set-perf-events; a failure is logged and the helper serves anyway
 * (the VM must start).  In attach mode the enabled set is also kept in a
 * state file (state.h), and a helper restarted in front of the same QEMU
 * enables what its predecessor had on instead.
 *
 * main.c creates this from the options; the proxy calls it when the VM
 * is known and when QEMU's monitor has closed.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

#include "helper/vm.h"

typedef struct QphStartupEvents QphStartupEvents;

/**
 * qph_startup_events_split:
 * The event names in @enable (each element "A,B,..."), in order, with
 * blanks around names and empty names dropped.  Never NULL.
 */
GStrv qph_startup_events_split(const char *const *enable);

/**
 * qph_startup_events_new:
 * @enable: the --enable values, or NULL
 * @restartable: attach mode, where a helper may be restarted in front of
 *     the same QEMU: keep a state file
 * @state_dir: where (NULL: $RUNTIME_DIRECTORY, as systemd sets it; if
 *     that is unset too, no state file is kept)
 */
QphStartupEvents *qph_startup_events_new(const char *const *enable,
                                         gboolean restartable,
                                         const char *state_dir);
void qph_startup_events_free(QphStartupEvents *se);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphStartupEvents, qph_startup_events_free)

/* QEMU's pid is known and its monitor negotiated: enable the events. */
void qph_startup_events_vm_ready(QphStartupEvents *se, QphVm *vm);

/* QEMU's monitor closed: QEMU is gone, so is the reason for its state. */
void qph_startup_events_qemu_gone(QphStartupEvents *se);
