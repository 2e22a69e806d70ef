/*
 * state.h: what a restarted helper needs to know, kept in a small file
 *
 * In attach mode the helper may be restarted (systemd Restart=on-failure,
 * an operator) while the same QEMU keeps running.  So that the events
 * enabled before come back on, the helper keeps their names in a file of
 * its runtime directory, one file per QEMU, named after QEMU's pid and its
 * start time (field 22 of /proc/PID/stat), so a recycled pid never picks
 * up another VM's events.  Files whose QEMU is gone are removed by the
 * next helper that starts.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct QphState QphState;

/**
 * qph_state_get_start_time:
 * The start time of process @pid (field 22 of /proc/PID/stat: clock
 * ticks since boot), which with the pid names one process for ever.
 */
gboolean qph_state_get_start_time(pid_t pid, guint64 *start_time,
                                  GError **error);

/**
 * qph_state_new:
 * The state file of QEMU @pid in @dir (which must exist).  Reads QEMU's
 * start time; fails when the process cannot be read.  Touches no file.
 */
QphState *qph_state_new(const char *dir, pid_t pid, GError **error);
void qph_state_free(QphState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphState, qph_state_free)

const char *qph_state_get_path(const QphState *state);

/**
 * qph_state_load:
 * The events a previous helper of this QEMU had enabled.  Returns TRUE
 * with *@events NULL when there is no file, TRUE with a (maybe empty)
 * list when there is one, FALSE when it cannot be read or makes no sense.
 */
gboolean qph_state_load(QphState *state, GStrv *events, GError **error);

/**
 * qph_state_save:
 * Replace the file with @events (the enabled events, in order): written
 * beside it and renamed over it, so a helper killed half-way leaves the
 * old file or the new one, never a part.  No fsync: the file only has to
 * outlive the helper, not the machine (QEMU does not survive a reboot).
 */
gboolean qph_state_save(QphState *state, const char *const *events,
                        GError **error);

/* Remove the file (QEMU is gone).  A missing file is not an error. */
gboolean qph_state_remove(QphState *state, GError **error);

/**
 * qph_state_remove_stale:
 * Remove every state file in @dir (and every half-written one) whose
 * QEMU is gone: no such pid, a pid with another start time, or a zombie.
 * Files not named like state files are left alone.  Returns how many
 * were removed.
 */
guint qph_state_remove_stale(const char *dir);
