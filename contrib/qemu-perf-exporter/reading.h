/*
 * reading.h: one VM's counters, as the exporter learnt them from a
 * query-perf-events reply
 *
 * The helper answers query-perf-events with per-thread values; the
 * exporter keeps only what it exports: per event its total, the times it
 * was enabled and running (multiplexing), and the total split into the
 * parts Prometheus sees as series: one per vCPU index, one per iothread
 * id, the main loop, and everything else summed as "other".  Thread ids
 * are dropped here: a label per thread would make a new series for every
 * thread QEMU starts.  Parsing is tolerant: unknown members are ignored
 * (the reply grows new fields), an entry that cannot be understood is
 * skipped, and only the shape of the reply itself can fail.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-value.h"

typedef enum {
    QPE_KIND_VCPU,
    QPE_KIND_IOTHREAD,
    QPE_KIND_MAIN_LOOP,
    QPE_KIND_OTHER,
    QPE_KIND__LAST,
} QpeThreadKind;

/* The label value of @kind ("vcpu", "iothread", "main-loop", "other"). */
const char *qpe_thread_kind_name(QpeThreadKind kind);

/* One series of an event: a vCPU, an iothread, the main loop, or the
 * rest of the process. */
typedef struct {
    QpeThreadKind kind;
    char *key; /* the vCPU index or iothread id; NULL otherwise */
    guint64 value;
} QpePart;

typedef struct {
    char *name;   /* as the helper reports it: "task_clock", a libpfm4 string */
    char *unit;   /* "count", "ns", "bytes", or whatever a newer helper says */
    char *source; /* "perf", "resctrl" */
    guint64 value;
    gboolean has_times;
    guint64 time_enabled; /* ns, summed over threads */
    guint64 time_running;
    gboolean has_enabled_at; /* a newer helper's "enabled-at" */
    gint64 enabled_at_us;    /* when counting started, Unix time in µs */
    /* QpePart, sorted by kind then key; empty when the helper gave no
     * per-thread values (resctrl events: one group holds every thread). */
    GArray *parts;
} QpeEvent;

/* Reference-counted: several scrapes waiting on one VM share a reading. */
typedef struct {
    GPtrArray *events; /* QpeEvent *, enabled events with a value only */
} QpeReading;

/**
 * qpe_reading_from_reply - the counters in a query-perf-events reply
 * @ret: the reply's "return" member
 * @error: set when @ret is not an array
 *
 * Returns: a new reading (release with qpe_reading_unref()), or NULL.
 */
QpeReading *qpe_reading_from_reply(const QmpJson *ret, GError **error);

QpeReading *qpe_reading_ref(QpeReading *r);
void qpe_reading_unref(QpeReading *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpeReading, qpe_reading_unref)
