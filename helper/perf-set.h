/*
 * perf-set.h: the perf events enabled for one VM
 *
 * The set belongs to the VM (the QEMU process @pid), not to a client: what
 * one client enables, every client reads.  It holds one QphPerfEvent per
 * enabled name, each attached to every thread of the process.  Enabling
 * is all-or-nothing; with nothing enabled the set holds no fd at all.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "helper/perf.h"

typedef struct _QphPerfSet QphPerfSet;

/* Perf events one set counts at once (docs/security.md). */
#define QPH_PERF_SET_MAX_EVENTS 1024

/* One entry of a set-perf-events request. */
typedef struct {
    const char *name; /* catalog name or libpfm4 string */
    gboolean enable;
} QphPerfChange;

/* One enabled event's reading.  Strings and threads live in the reading. */
typedef struct {
    const char *name;
    const char *unit;     /* "count", "ns", "bytes" */
    guint64 value;        /* sum of threads[].value + exited_value */
    guint64 exited_value; /* final values of threads that exited */
    guint64 time_enabled; /* sum over threads, exited ones included */
    guint64 time_running;
    guint n_exited;
    gboolean scaled;    /* some value was scaled for multiplexing */
    gboolean user_only; /* kernel code not counted (no privilege for it) */
    guint n_threads;
    const QphPerfThreadValue *threads; /* ascending tid */
} QphPerfSetEventValue;

/* Everything a read returns, in one allocation: free with g_free(). */
typedef struct {
    guint n_events;
    QphPerfSetEventValue *events; /* in the order they were enabled */
} QphPerfSetReading;

QphPerfSet *qph_perf_set_new(pid_t pid);
void qph_perf_set_free(QphPerfSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphPerfSet, qph_perf_set_free)

pid_t qph_perf_set_get_pid(const QphPerfSet *set);
guint qph_perf_set_get_n_events(const QphPerfSet *set);
const QphPerfEvent *qph_perf_set_get_event(const QphPerfSet *set, guint i);
gboolean qph_perf_set_is_enabled(const QphPerfSet *set, const char *name);
guint qph_perf_set_count_fds(const QphPerfSet *set);

gboolean qph_perf_set_update(QphPerfSet *set, const QphPerfChange *changes,
                             guint n, GError **error);
gboolean qph_perf_set_rescan(QphPerfSet *set, GError **error);
gboolean qph_perf_set_rescan_tids(QphPerfSet *set, GArray *tids,
                                  GError **error);
QphPerfSetReading *qph_perf_set_read(QphPerfSet *set, GError **error);

void qph_perf_set_reading_free(QphPerfSetReading *reading);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphPerfSetReading, qph_perf_set_reading_free)
