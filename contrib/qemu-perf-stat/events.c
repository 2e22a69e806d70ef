/*
 * events.c: the event catalog as qemu-perf-stat prints it
 *
 * One row per libvirt name, in the helper's catalog order, with perf's
 * spellings and the derived column perf stat 6.1 prints for the same
 * event (util/stat-shadow.c): "CPUs utilized" for the clocks, "GHz" for
 * cycles, "insn per cycle", a percentage for misses and stalls, "/sec" of
 * task-clock for other counts.  The resctrl events have no perf stat
 * equivalent any more (the intel_cqm PMU was removed in Linux 4.14):
 * bandwidth is shown per second of wall time, occupancy as a level.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "events.h"

#include <string.h>

static const StatEventKind stat_catalog[] = {
    {"cmt", "llc_occupancy", STAT_METRIC_NONE, NULL, "", TRUE},
    {"mbmt", "mbm_total_bytes", STAT_METRIC_BYTES_PER_SEC, NULL, "B/s", FALSE},
    {"mbml", "mbm_local_bytes", STAT_METRIC_BYTES_PER_SEC, NULL, "B/s", FALSE},
    {"cpu_cycles", "cycles,cpu-cycles", STAT_METRIC_GHZ, NULL, "GHz", FALSE},
    {"instructions", "instructions", STAT_METRIC_PER_OTHER, "cpu_cycles",
     "insn per cycle", FALSE},
    {"cache_references", "cache-references", STAT_METRIC_RATE, NULL, "/sec",
     FALSE},
    {"cache_misses", "cache-misses", STAT_METRIC_PERCENT_OF, "cache_references",
     "of all cache refs", FALSE},
    {"branch_instructions", "branches,branch-instructions", STAT_METRIC_RATE,
     NULL, "/sec", FALSE},
    {"branch_misses", "branch-misses", STAT_METRIC_PERCENT_OF,
     "branch_instructions", "of all branches", FALSE},
    {"bus_cycles", "bus-cycles", STAT_METRIC_RATE, NULL, "/sec", FALSE},
    {"stalled_cycles_frontend", "stalled-cycles-frontend,idle-cycles-frontend",
     STAT_METRIC_PERCENT_OF, "cpu_cycles", "frontend cycles idle", FALSE},
    {"stalled_cycles_backend", "stalled-cycles-backend,idle-cycles-backend",
     STAT_METRIC_PERCENT_OF, "cpu_cycles", "backend cycles idle", FALSE},
    {"ref_cpu_cycles", "ref-cycles", STAT_METRIC_RATE, NULL, "/sec", FALSE},
    {"cpu_clock", "cpu-clock", STAT_METRIC_CPUS_UTILIZED, NULL, "CPUs utilized",
     FALSE},
    {"task_clock", "task-clock", STAT_METRIC_CPUS_UTILIZED, NULL,
     "CPUs utilized", FALSE},
    {"page_faults", "page-faults,faults", STAT_METRIC_RATE, NULL, "/sec",
     FALSE},
    {"context_switches", "context-switches,cs", STAT_METRIC_RATE, NULL, "/sec",
     FALSE},
    {"cpu_migrations", "cpu-migrations,migrations", STAT_METRIC_RATE, NULL,
     "/sec", FALSE},
    {"page_faults_min", "minor-faults", STAT_METRIC_RATE, NULL, "/sec", FALSE},
    {"page_faults_maj", "major-faults", STAT_METRIC_RATE, NULL, "/sec", FALSE},
    {"alignment_faults", "alignment-faults", STAT_METRIC_RATE, NULL, "/sec",
     FALSE},
    {"emulation_faults", "emulation-faults", STAT_METRIC_RATE, NULL, "/sec",
     FALSE},
};
/* libvirt's 22 names, no more, no fewer. */
G_STATIC_ASSERT(G_N_ELEMENTS(stat_catalog) == 22);

const char *const stat_default_events[] = {
    "task_clock",          "context_switches", "cpu_migrations",
    "page_faults",         "cpu_cycles",       "instructions",
    "branch_instructions", "branch_misses",    NULL,
};

static gboolean
in_list(const char *list, const char *name)
{
    g_auto(GStrv) names = NULL;

    if (!list) {
        return FALSE;
    }
    names = g_strsplit(list, ",", -1);
    return g_strv_contains((const char *const *)names, name);
}

const StatEventKind *
stat_event_kind_lookup(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(stat_catalog); i++) {
        if (strcmp(stat_catalog[i].name, name) == 0 ||
            in_list(stat_catalog[i].perf_names, name)) {
            return &stat_catalog[i];
        }
    }
    return NULL;
}

void
stat_event_name_free(StatEventName *e)
{
    if (!e) {
        return;
    }
    g_free(e->display);
    g_free(e->request);
    g_free(e);
}

static gboolean
already_listed(const GPtrArray *out, const char *request)
{
    for (guint i = 0; i < out->len; i++) {
        const StatEventName *e = g_ptr_array_index(out, i);

        if (strcmp(e->request, request) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean
add_name(const char *start, gsize len, GPtrArray *out, GError **error)
{
    g_autoptr(StatEventName) e = g_new0(StatEventName, 1);

    e->display = g_strndup(start, len);
    g_strstrip(e->display);
    if (!e->display[0]) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "An empty event name in -e.");
        return FALSE;
    }
    e->kind = stat_event_kind_lookup(e->display);
    e->request = g_strdup(e->kind ? e->kind->name : e->display);
    if (!already_listed(out, e->request)) {
        g_ptr_array_add(out, g_steal_pointer(&e));
    }
    return TRUE;
}

gboolean
stat_event_names_parse(const char *list, GPtrArray *out, GError **error)
{
    const char *start = list;
    gboolean in_pmu = FALSE;

    for (const char *p = list;; p++) {
        if (*p == '/') {
            in_pmu = !in_pmu;
        }
        if (*p == '\0' || (*p == ',' && !in_pmu)) {
            if (!add_name(start, (gsize)(p - start), out, error)) {
                return FALSE;
            }
            if (*p == '\0') {
                return TRUE;
            }
            start = p + 1;
        }
    }
}
