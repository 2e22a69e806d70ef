/*
 * perf-catalog.c: libvirt's 22 perf event names and what they map to
 *
 * The libpfm4 strings use libpfm4's generic "perf" PMU, whose names follow
 * perf(1) (perf::CYCLES is PERF_TYPE_HARDWARE/PERF_COUNT_HW_CPU_CYCLES).
 * libpfm4 encodes the hardware ones even on a host whose kernel has no PMU;
 * perf_event_open is what refuses them there.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/perf-catalog.h"

#include <linux/perf_event.h>
#include <string.h>

#define HW(id_, name_, pfm_, desc_)                                            \
    [id_] = {.id = id_,                                                        \
             .name = name_,                                                    \
             .pfm_name = pfm_,                                                 \
             .unit = "count",                                                  \
             .description = desc_}
#define SW(id_, name_, pfm_, unit_, desc_)                                     \
    [id_] = {.id = id_,                                                        \
             .name = name_,                                                    \
             .pfm_name = pfm_,                                                 \
             .unit = unit_,                                                    \
             .description = desc_}
#define SW_FALLBACK(id_, name_, pfm_, config_, desc_)                          \
    [id_] = {.id = id_,                                                        \
             .name = name_,                                                    \
             .pfm_name = pfm_,                                                 \
             .unit = "count",                                                  \
             .description = desc_,                                             \
             .has_fallback = TRUE,                                             \
             .fallback_type = PERF_TYPE_SOFTWARE,                              \
             .fallback_config = config_}
#define RESCTRL(id_, name_, file_, gauge_, desc_)                              \
    RESCTRL_UNIT(id_, name_, file_, "bytes", gauge_, desc_)
#define RESCTRL_UNIT(id_, name_, file_, unit_, gauge_, desc_)                  \
    [id_] = {.id = id_,                                                        \
             .name = name_,                                                    \
             .unit = unit_,                                                    \
             .description = desc_,                                             \
             .resctrl = TRUE,                                                  \
             .resctrl_file = file_,                                            \
             .gauge = gauge_}

static const QphPerfCatalogEntry qph_perf_catalog[] = {
    RESCTRL(QPH_PERF_CATALOG_CMT, "cmt", "llc_occupancy", TRUE,
            "Last level cache occupancy of the VM's threads"),
    RESCTRL(QPH_PERF_CATALOG_MBMT, "mbmt", "mbm_total_bytes", FALSE,
            "Total memory bandwidth used by the VM's threads"),
    RESCTRL(QPH_PERF_CATALOG_MBML, "mbml", "mbm_local_bytes", FALSE,
            "Local memory bandwidth used by the VM's threads"),
    HW(QPH_PERF_CATALOG_CPU_CYCLES, "cpu_cycles", "perf::CYCLES", "CPU cycles"),
    HW(QPH_PERF_CATALOG_INSTRUCTIONS, "instructions", "perf::INSTRUCTIONS",
       "Instructions retired"),
    HW(QPH_PERF_CATALOG_CACHE_REFERENCES, "cache_references",
       "perf::CACHE-REFERENCES", "Cache accesses"),
    HW(QPH_PERF_CATALOG_CACHE_MISSES, "cache_misses", "perf::CACHE-MISSES",
       "Cache misses"),
    HW(QPH_PERF_CATALOG_BRANCH_INSTRUCTIONS, "branch_instructions",
       "perf::BRANCH-INSTRUCTIONS", "Branch instructions retired"),
    HW(QPH_PERF_CATALOG_BRANCH_MISSES, "branch_misses", "perf::BRANCH-MISSES",
       "Mispredicted branch instructions"),
    HW(QPH_PERF_CATALOG_BUS_CYCLES, "bus_cycles", "perf::BUS-CYCLES",
       "Bus cycles"),
    HW(QPH_PERF_CATALOG_STALLED_CYCLES_FRONTEND, "stalled_cycles_frontend",
       "perf::STALLED-CYCLES-FRONTEND",
       "Cycles stalled in the instruction fetch frontend"),
    HW(QPH_PERF_CATALOG_STALLED_CYCLES_BACKEND, "stalled_cycles_backend",
       "perf::STALLED-CYCLES-BACKEND",
       "Cycles stalled in the execution backend"),
    HW(QPH_PERF_CATALOG_REF_CPU_CYCLES, "ref_cpu_cycles", "perf::REF-CYCLES",
       "Reference cycles, not affected by frequency scaling"),
    SW(QPH_PERF_CATALOG_CPU_CLOCK, "cpu_clock", "perf::CPU-CLOCK", "ns",
       "CPU clock time while the threads were scheduled"),
    SW(QPH_PERF_CATALOG_TASK_CLOCK, "task_clock", "perf::TASK-CLOCK", "ns",
       "Time the threads spent running on a CPU"),
    SW(QPH_PERF_CATALOG_PAGE_FAULTS, "page_faults", "perf::PAGE-FAULTS",
       "count", "Page faults"),
    SW(QPH_PERF_CATALOG_CONTEXT_SWITCHES, "context_switches",
       "perf::CONTEXT-SWITCHES", "count", "Context switches"),
    SW(QPH_PERF_CATALOG_CPU_MIGRATIONS, "cpu_migrations",
       "perf::CPU-MIGRATIONS", "count",
       "Migrations of a thread from one CPU to another"),
    SW(QPH_PERF_CATALOG_PAGE_FAULTS_MIN, "page_faults_min",
       "perf::MINOR-FAULTS", "count", "Minor page faults (no disk I/O)"),
    SW(QPH_PERF_CATALOG_PAGE_FAULTS_MAJ, "page_faults_maj",
       "perf::MAJOR-FAULTS", "count", "Major page faults (disk I/O)"),
    SW_FALLBACK(QPH_PERF_CATALOG_ALIGNMENT_FAULTS, "alignment_faults",
                "perf::ALIGNMENT-FAULTS", PERF_COUNT_SW_ALIGNMENT_FAULTS,
                "Unaligned accesses the kernel fixed up"),
    SW_FALLBACK(QPH_PERF_CATALOG_EMULATION_FAULTS, "emulation_faults",
                "perf::EMULATION-FAULTS", PERF_COUNT_SW_EMULATION_FAULTS,
                "Instructions the kernel emulated"),
    /* resctrl PERF_PKG telemetry: the kernel prints Joules and Farads with
     * decimals; the helper reports integer nano-units. */
    RESCTRL_UNIT(QPH_PERF_CATALOG_CORE_ENERGY, "core_energy", "core_energy",
                 "nanojoules", FALSE,
                 "Energy the CPU cores used running the VM's threads"),
    RESCTRL_UNIT(QPH_PERF_CATALOG_ACTIVITY, "activity", "activity",
                 "nanofarads", FALSE,
                 "Core activity of the VM's threads, independent of CPU "
                 "frequency"),
};
G_STATIC_ASSERT(G_N_ELEMENTS(qph_perf_catalog) == QPH_PERF_CATALOG_LAST);

/**
 * qph_perf_catalog_get: the entry for @id, or NULL when @id is out of range.
 */
const QphPerfCatalogEntry *
qph_perf_catalog_get(QphPerfCatalogId id)
{
    if ((guint)id >= QPH_PERF_CATALOG_LAST) {
        return NULL;
    }
    return &qph_perf_catalog[id];
}

/**
 * qph_perf_catalog_lookup: the entry named @name (exact, case-sensitive
 * match, as libvirt), or NULL when @name is not a catalog name.
 */
const QphPerfCatalogEntry *
qph_perf_catalog_lookup(const char *name)
{
    if (!name) {
        return NULL;
    }
    for (guint i = 0; i < QPH_PERF_CATALOG_LAST; i++) {
        if (strcmp(qph_perf_catalog[i].name, name) == 0) {
            return &qph_perf_catalog[i];
        }
    }
    return NULL;
}
