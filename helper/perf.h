/*
 * perf.h: one perf event counted on a set of threads
 *
 * A QphPerfEvent is a name turned into a perf_event_attr by libpfm4 (a
 * catalog name such as "task_clock", or any string libpfm4 encodes:
 * "perf::PAGE-FAULTS", "cycles:u", "INST_RETIRED:ANY_P") plus one counting
 * fd per attached thread, opened with perf's inherit flag so that threads
 * created later count into their creator's fd.  Software events may be
 * members of a group under a leader that counts nothing
 * (qph_perf_group_leader_new()), read with one read() per thread.  It knows
 * nothing of QMP beyond its error domain and nothing of which threads a VM
 * has: perf-set.h decides that.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <linux/perf_event.h>
#include <sys/types.h>

typedef struct _QphPerfEvent QphPerfEvent;

/*
 * One fd's reading: the thread it was opened on, plus every thread that
 * thread created after the event was enabled (perf inherit).
 */
typedef struct {
    pid_t tid;
    guint64 value;        /* raw, or scaled when @scaled */
    guint64 raw;          /* what the kernel counted */
    guint64 time_enabled; /* ns the event was enabled (descendants summed) */
    guint64 time_running; /* ns it was actually on a counter */
    gboolean scaled;      /* running < enabled: value = raw*enabled/running */
    gboolean exited;      /* the thread itself is gone */
    gboolean unscheduled; /* enabled but never on a counter: not a zero */
} QphPerfThreadValue;

/* An event's reading over all its fds. */
typedef struct {
    guint64 value;        /* sum of every fd's value (saturating) */
    guint64 exited_value; /* the part of @value in fds of exited threads */
    guint64 time_enabled; /* sums over fds */
    guint64 time_running;
    guint n_exited;      /* fds whose thread is gone */
    guint n_unscheduled; /* fds enabled but never on a counter */
    gboolean scaled;     /* any fd's value scaled */
    gboolean overflow;   /* a sum passed 2^64 - 1 and was saturated */
} QphPerfEventValue;

/* Members of one PERF_FORMAT_GROUP, at most (its leader not counted). */
#define QPH_PERF_GROUP_MAX 16

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
void qph_perf_event_mark_exited(QphPerfEvent *ev, pid_t tid);
gboolean qph_perf_event_thread_exited(const QphPerfEvent *ev, guint i);
guint qph_perf_event_get_n_threads(const QphPerfEvent *ev);
pid_t qph_perf_event_get_thread(const QphPerfEvent *ev, guint i);

gboolean qph_perf_event_read(QphPerfEvent *ev, QphPerfEventValue *value,
                             QphPerfThreadValue *threads, guint n_threads,
                             GError **error);

QphPerfEvent *qph_perf_group_leader_new(const char *name);
gboolean qph_perf_event_join_group(QphPerfEvent *ev, QphPerfEvent *leader);
gboolean qph_perf_event_is_leader(const QphPerfEvent *ev);
QphPerfEvent *qph_perf_event_get_leader(const QphPerfEvent *ev);
guint qph_perf_group_get_n_fallbacks(const QphPerfEvent *leader);
gboolean qph_perf_group_read(QphPerfEvent *leader, QphPerfEvent *const *evs,
                             guint n, QphPerfEventValue *values,
                             QphPerfThreadValue *const *threads,
                             GError **error);
