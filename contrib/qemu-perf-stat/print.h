/*
 * print.h: perf stat's three output formats for a StatReport
 *
 * Plain columns (perf stat's default), CSV with -x SEP (perf stat's field
 * order: [time,][thread,]value,unit,event,run,percent,metric,metric-unit)
 * and JSON lines with --json (perf stat -j's keys), each with the derived
 * column perf prints and, with -I, the time stamp of the interval.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <stdio.h>
#include <glib.h>
#include "sample.h"

typedef enum {
    STAT_OUTPUT_STD,
    STAT_OUTPUT_CSV,
    STAT_OUTPUT_JSON,
} StatOutputMode;

typedef struct {
    StatOutputMode mode;
    const char *sep;     /* CSV separator */
    gboolean interval;   /* -I: time stamp first, no summary header */
    gboolean per_thread; /* a row per vCPU, iothread, main loop, others */
    FILE *out;
    const char *target; /* "VM 'vm1'": for the summary header */
    guint lines;        /* interval blocks printed (header every 25) */
} StatPrinter;

/**
 * stat_print_report - print one interval, or the summary of a run
 * @p: how
 * @r: the differences
 * @names: StatEventName *, as r's events
 * @supported: per event: FALSE when the helper refused to count it
 */
void stat_print_report(StatPrinter *p, const StatReport *r,
                       const GPtrArray *names, const gboolean *supported);
