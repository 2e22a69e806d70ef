/*
 * perf-catalog.h: the built-in perf event names (libvirt's 22)
 *
 * libvirt's `virsh perf` names (cmt, cpu_cycles, task_clock, ...) are the
 * vocabulary management stacks already speak.  This table maps each one to
 * the libpfm4 string that encodes it, its unit and a one-line description.
 * Three of them (cmt, mbmt, mbml) are not perf events at all on current
 * kernels: they are served by resctrl monitoring groups and flagged so.
 * After libvirt's names come the resctrl package telemetry events
 * (core_energy, activity; Linux 7.0), named as the kernel's files.
 * Any name not in this table is handed to libpfm4 as is (see perf.h).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef enum {
    QPH_PERF_CATALOG_CMT,
    QPH_PERF_CATALOG_MBMT,
    QPH_PERF_CATALOG_MBML,
    QPH_PERF_CATALOG_CPU_CYCLES,
    QPH_PERF_CATALOG_INSTRUCTIONS,
    QPH_PERF_CATALOG_CACHE_REFERENCES,
    QPH_PERF_CATALOG_CACHE_MISSES,
    QPH_PERF_CATALOG_BRANCH_INSTRUCTIONS,
    QPH_PERF_CATALOG_BRANCH_MISSES,
    QPH_PERF_CATALOG_BUS_CYCLES,
    QPH_PERF_CATALOG_STALLED_CYCLES_FRONTEND,
    QPH_PERF_CATALOG_STALLED_CYCLES_BACKEND,
    QPH_PERF_CATALOG_REF_CPU_CYCLES,
    QPH_PERF_CATALOG_CPU_CLOCK,
    QPH_PERF_CATALOG_TASK_CLOCK,
    QPH_PERF_CATALOG_PAGE_FAULTS,
    QPH_PERF_CATALOG_CONTEXT_SWITCHES,
    QPH_PERF_CATALOG_CPU_MIGRATIONS,
    QPH_PERF_CATALOG_PAGE_FAULTS_MIN,
    QPH_PERF_CATALOG_PAGE_FAULTS_MAJ,
    QPH_PERF_CATALOG_ALIGNMENT_FAULTS,
    QPH_PERF_CATALOG_EMULATION_FAULTS,
    /* Not libvirt's: listed by query-perf-events only when enabled. */
    QPH_PERF_CATALOG_CORE_ENERGY,
    QPH_PERF_CATALOG_ACTIVITY,
    QPH_PERF_CATALOG_LAST,
} QphPerfCatalogId;

/* libvirt's names are the catalog's first entries. */
#define QPH_PERF_CATALOG_N_LIBVIRT (QPH_PERF_CATALOG_EMULATION_FAULTS + 1)

typedef struct {
    QphPerfCatalogId id;
    const char *name;        /* libvirt's name: "task_clock" */
    const char *pfm_name;    /* libpfm4 string; NULL for resctrl entries */
    const char *unit; /* "count", "ns", "bytes", "nanojoules", "nanofarads" */
    const char *description; /* one line, no final period */
    /* Served by resctrl, not perf_event_open: cmt, mbmt, mbml and the
     * package telemetry events. */
    gboolean resctrl;
    /* The resctrl mon_data file: "llc_occupancy", "mbm_total_bytes", ... */
    const char *resctrl_file;
    /* TRUE when the value is a level (cmt), not a running total. */
    gboolean gauge;
    /*
     * Software events libpfm4 4.13 (Debian 12) has no name for: used only
     * when libpfm4 answers "event not found" for pfm_name, so a libpfm4
     * that learns the name takes over.  has_fallback is FALSE elsewhere.
     */
    gboolean has_fallback;
    guint32 fallback_type;
    guint64 fallback_config;
} QphPerfCatalogEntry;

/*
 * The refusal for resctrl-served names until the resctrl backend exists.
 * One place, so replacing it is a one-line change.  Argument: the name.
 */
#define QPH_PERF_CATALOG_RESCTRL_UNSUPPORTED                                   \
    "Event '%s' is served by resctrl, which this helper does not support yet."

const QphPerfCatalogEntry *qph_perf_catalog_get(QphPerfCatalogId id);
const QphPerfCatalogEntry *qph_perf_catalog_lookup(const char *name);
