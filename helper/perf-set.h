/*
 * perf-set.h: the perf events enabled for one VM
 *
 * The set belongs to the VM (the QEMU process @pid), not to a client: what
 * one client enables, every client reads.  It holds one QphPerfEvent per
 * enabled name, opened with inherit on every thread the process had when
 * it was enabled, which makes it follow every thread created later.  Enabling
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
    guint64 value;        /* sum of threads[].value (saturating) */
    guint64 exited_value; /* the part of it in threads[] marked exited */
    guint64 time_enabled; /* sum over threads[] */
    guint64 time_running;
    guint n_exited;
    guint n_unscheduled; /* threads[] enabled but never on a counter */
    gboolean scaled;     /* some value was scaled for multiplexing */
    gboolean overflow;   /* a sum passed 2^64 - 1 and was saturated */
    gboolean user_only;  /* kernel code not counted (no privilege for it) */
    guint n_threads;
    const QphPerfThreadValue *threads; /* ascending tid, one per fd */
} QphPerfSetEventValue;

/* Everything a read returns, in one allocation: free with g_free(). */
typedef struct {
    guint n_events;
    QphPerfSetEventValue *events; /* in the order they were enabled */
} QphPerfSetReading;

/* Raise the soft RLIMIT_NOFILE to the hard one (once, at start-up,
 * after QEMU is launched so it keeps its own limit). */
void qph_perf_set_raise_fd_limit(void);

QphPerfSet *qph_perf_set_new(pid_t pid);
void qph_perf_set_free(QphPerfSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphPerfSet, qph_perf_set_free)

pid_t qph_perf_set_get_pid(const QphPerfSet *set);
guint qph_perf_set_get_n_events(const QphPerfSet *set);
const QphPerfEvent *qph_perf_set_get_event(const QphPerfSet *set, guint i);
gboolean qph_perf_set_is_enabled(const QphPerfSet *set, const char *name);
guint qph_perf_set_count_fds(const QphPerfSet *set);
guint qph_perf_set_count_group_fallbacks(const QphPerfSet *set);

gboolean qph_perf_set_update(QphPerfSet *set, const QphPerfChange *changes,
                             guint n, GError **error);
gboolean qph_perf_set_rescan(QphPerfSet *set, GError **error);
gboolean qph_perf_set_rescan_tids(QphPerfSet *set, GArray *tids,
                                  GError **error);
gboolean qph_perf_set_is_counted(const QphPerfSet *set, pid_t tid);
QphPerfSetReading *qph_perf_set_read(QphPerfSet *set, GError **error);

void qph_perf_set_reading_free(QphPerfSetReading *reading);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphPerfSetReading, qph_perf_set_reading_free)
