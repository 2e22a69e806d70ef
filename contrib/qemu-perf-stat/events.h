/*
 * events.h: what qemu-perf-stat knows about an event name
 *
 * The helper accepts libvirt's 22 names and any libpfm4 string.  People
 * type perf's spellings ("task-clock", "cycles"), so each catalog entry
 * also lists perf's names for it.  The entry says how perf stat shows the
 * event: its unit and scale, and the derived column perf prints beside it
 * (CPUs utilized, GHz, insn per cycle, a percentage of another event, a
 * rate per second of task-clock) or, for the resctrl events, bytes per
 * second of wall time and occupancy in MiB.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef enum {
    STAT_METRIC_RATE,          /* count per second of task-clock */
    STAT_METRIC_CPUS_UTILIZED, /* ns of clock per ns of wall time */
    STAT_METRIC_GHZ,           /* cycles per ns of task-clock */
    STAT_METRIC_PER_OTHER,     /* this / other (insn per cycle) */
    STAT_METRIC_PERCENT_OF,    /* 100 * this / other */
    STAT_METRIC_BYTES_PER_SEC, /* bytes per second of wall time */
    STAT_METRIC_NONE,          /* a gauge: no derived column */
    STAT_METRIC__LAST,
} StatMetric;

typedef struct {
    const char *name;       /* the helper's (libvirt's) name */
    const char *perf_names; /* perf's spellings, ','-separated, or NULL */
    StatMetric metric;
    const char *other;       /* PER_OTHER / PERCENT_OF: the other event */
    const char *metric_unit; /* the text after the number */
    gboolean gauge;          /* a level now (cmt), not a count to diff */
} StatEventKind;

/* An event as given with -e: what to ask the helper, what to print. */
typedef struct {
    char *display;             /* as the user typed it */
    char *request;             /* the helper's name for it */
    const StatEventKind *kind; /* NULL for a libpfm4 string */
} StatEventName;

/* The catalog entry for @name (libvirt's or perf's spelling), or NULL. */
const StatEventKind *stat_event_kind_lookup(const char *name);

/* The default set when no -e is given, perf stat's defaults in libvirt's
 * names; NULL-terminated. */
extern const char *const stat_default_events[];

/* Split "a,b,c" as -e takes it (a ',' between '/' is part of a name, as
 * in perf's "pmu/a=1,b=2/"), resolve each name and append a
 * StatEventName * per new name (duplicates are dropped). */
gboolean stat_event_names_parse(const char *list, GPtrArray *out,
                                GError **error);

void stat_event_name_free(StatEventName *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StatEventName, stat_event_name_free)
