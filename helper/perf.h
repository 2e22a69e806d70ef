/*
 * perf.h: one perf event counted on a set of threads
 *
 * A QphPerfEvent is a name turned into a perf_event_attr by libpfm4 (a
 * catalog name such as "task_clock", or any string libpfm4 encodes:
 * "perf::PAGE-FAULTS", "cycles:u", "INST_RETIRED:ANY_P") plus one counting
 * fd per attached thread.  It knows nothing of QMP beyond its error domain
 * and nothing of which threads a VM has: perf-set.h decides that.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <linux/perf_event.h>
#include <sys/types.h>

typedef struct _QphPerfEvent QphPerfEvent;

/* One thread's reading. */
typedef struct {
    pid_t tid;
    guint64 value;        /* raw, or scaled when @scaled */
    guint64 raw;          /* what the kernel counted */
    guint64 time_enabled; /* ns the event was enabled on this thread */
    guint64 time_running; /* ns it was actually on a counter */
    gboolean scaled;      /* running < enabled: value = raw*enabled/running */
} QphPerfThreadValue;

/* An event's reading over all its threads. */
typedef struct {
    guint64 value;        /* sum of the threads' values + exited_value */
    guint64 exited_value; /* final values of retired threads */
    guint64 time_enabled; /* sum over threads, retired ones included */
    guint64 time_running; /* sum over threads, retired ones included */
    guint n_exited;       /* number of retired threads */
    gboolean scaled;      /* any thread's value (or a retired one) scaled */
} QphPerfEventValue;

QphPerfEvent *qph_perf_event_new(const char *name, GError **error);
void qph_perf_event_free(QphPerfEvent *ev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphPerfEvent, qph_perf_event_free)

const char *qph_perf_event_get_name(const QphPerfEvent *ev);
const char *qph_perf_event_get_unit(const QphPerfEvent *ev);
const char *qph_perf_event_get_encoding(const QphPerfEvent *ev);
const struct perf_event_attr *qph_perf_event_get_attr(const QphPerfEvent *ev);
gboolean qph_perf_event_get_user_only(const QphPerfEvent *ev);

gboolean qph_perf_event_attach(QphPerfEvent *ev, pid_t tid, GError **error);
gboolean qph_perf_event_has_thread(const QphPerfEvent *ev, pid_t tid);
gboolean qph_perf_event_retire(QphPerfEvent *ev, pid_t tid, GError **error);
guint qph_perf_event_get_n_threads(const QphPerfEvent *ev);
pid_t qph_perf_event_get_thread(const QphPerfEvent *ev, guint i);

gboolean qph_perf_event_read(QphPerfEvent *ev, QphPerfEventValue *value,
                             QphPerfThreadValue *threads, guint n_threads,
                             GError **error);
