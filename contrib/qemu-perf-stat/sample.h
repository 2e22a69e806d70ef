/*
 * sample.h: readings of the VM's counters, and deltas between two of them
 *
 * A sample is one query-perf-events answer for the events qemu-perf-stat
 * shows, with the monotonic time it was taken.  The helper reports totals
 * since an event was enabled, by whoever enabled it; what is printed is
 * always the difference between two samples, so events that were counting
 * long before qemu-perf-stat started still give the right numbers for the
 * interval.  Per thread, rows are the helper's labels: each vCPU, each
 * iothread, the main loop, and "others" (every other thread, including
 * threads that exited during the interval, so the rows add up to the
 * total).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/qmp-client.h"
#include "events.h"

/* The row of the threads the helper does not label, and of resctrl. */
#define STAT_ROW_OTHERS "others"
#define STAT_ROW_ALL "all threads"

/* A row of --per-thread output: name and thread id, perf's "comm-pid". */
typedef struct {
    char *key;  /* "vCPU 0-4715", "others": the CSV/JSON thread field */
    char *name; /* "vCPU 0", "main loop", "iothread io0", "others" */
    char *tid;  /* "4715", or "" */
} StatRow;

typedef struct {
    gboolean listed; /* the reply had an entry for the event */
    gboolean enabled;
    gboolean has_times; /* perf events: time-enabled / time-running */
    guint64 value;
    guint64 time_enabled;
    guint64 time_running;
    char *unit;       /* "ns", "count", "bytes" */
    GHashTable *rows; /* per-thread: row key -> guint64 * (labelled only) */
} StatReading;

typedef struct {
    gint64 t_ns; /* CLOCK_MONOTONIC, middle of the query's round trip */
    guint n;
    StatReading *readings; /* one per event, in the order of -e */
    GHashTable *row_info;  /* row key -> StatRow *, rows seen in it */
} StatSample;

typedef struct {
    gboolean counted; /* enabled, listed, and ran during the interval */
    gboolean gauge;   /* value is a level (cmt), not a difference */
    double value;     /* in the helper's unit (ns, count, bytes) */
    guint64 run;      /* time-running during the interval, ns */
    guint64 ena;      /* time-enabled during the interval, ns */
    const char *unit;
    GHashTable *rows; /* per-thread: row key -> double * */
} StatDelta;

typedef struct {
    double wall_ns;  /* between the two samples */
    double since_ns; /* from the first sample to the second one */
    guint n;
    StatDelta *deltas; /* one per event */
    GPtrArray *rows;   /* StatRow *, every row key any event has */
} StatReport;

/**
 * stat_sample_take - ask the helper for the current values
 * @c: the connection
 * @names: StatEventName *, what to read
 * @per_thread: also read per-thread values
 * @error: set when the query fails
 */
StatSample *stat_sample_take(QmpClient *c, const GPtrArray *names,
                             gboolean per_thread, GError **error);
void stat_sample_free(StatSample *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StatSample, stat_sample_free)

/* The differences from @prev to @cur; @first is the run's first sample
 * (for the time stamp of interval output). */
StatReport *stat_report_new(const StatSample *first, const StatSample *prev,
                            const StatSample *cur, const GPtrArray *names);
void stat_report_free(StatReport *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StatReport, stat_report_free)

/* The delta of @event_index on row @key, or -1 when the row is absent. */
double stat_report_row_value(const StatReport *r, guint event_index,
                             const char *key);
