/*
 * test-perf-catalog.c: libvirt's 22 names, and how each one encodes
 *
 * Each catalog name gets its own encoding test so a wrong libpfm4 string
 * shows up by name.  Expected type/config values come from
 * linux/perf_event.h, not from the code under test.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/perf-catalog.h"
#include "helper/perf.h"
#include "qmp/qmp-error.h"

#include <linux/perf_event.h>

typedef struct {
    const char *name;
    gboolean resctrl;
    guint32 type;
    guint64 config;
    const char *unit;
} Expected;

#define HW(n, c)                                                               \
    {                                                                          \
        n, FALSE, PERF_TYPE_HARDWARE, c, "count"                               \
    }
#define SW(n, c, u)                                                            \
    {                                                                          \
        n, FALSE, PERF_TYPE_SOFTWARE, c, u                                     \
    }
#define RC(n)                                                                  \
    {                                                                          \
        n, TRUE, 0, 0, "bytes"                                                 \
    }

/* libvirt's order (virPerfEventType). */
static const Expected expected[] = {
    RC("cmt"),
    RC("mbmt"),
    RC("mbml"),
    HW("cpu_cycles", PERF_COUNT_HW_CPU_CYCLES),
    HW("instructions", PERF_COUNT_HW_INSTRUCTIONS),
    HW("cache_references", PERF_COUNT_HW_CACHE_REFERENCES),
    HW("cache_misses", PERF_COUNT_HW_CACHE_MISSES),
    HW("branch_instructions", PERF_COUNT_HW_BRANCH_INSTRUCTIONS),
    HW("branch_misses", PERF_COUNT_HW_BRANCH_MISSES),
    HW("bus_cycles", PERF_COUNT_HW_BUS_CYCLES),
    HW("stalled_cycles_frontend", PERF_COUNT_HW_STALLED_CYCLES_FRONTEND),
    HW("stalled_cycles_backend", PERF_COUNT_HW_STALLED_CYCLES_BACKEND),
    HW("ref_cpu_cycles", PERF_COUNT_HW_REF_CPU_CYCLES),
    SW("cpu_clock", PERF_COUNT_SW_CPU_CLOCK, "ns"),
    SW("task_clock", PERF_COUNT_SW_TASK_CLOCK, "ns"),
    SW("page_faults", PERF_COUNT_SW_PAGE_FAULTS, "count"),
    SW("context_switches", PERF_COUNT_SW_CONTEXT_SWITCHES, "count"),
    SW("cpu_migrations", PERF_COUNT_SW_CPU_MIGRATIONS, "count"),
    SW("page_faults_min", PERF_COUNT_SW_PAGE_FAULTS_MIN, "count"),
    SW("page_faults_maj", PERF_COUNT_SW_PAGE_FAULTS_MAJ, "count"),
    SW("alignment_faults", PERF_COUNT_SW_ALIGNMENT_FAULTS, "count"),
    SW("emulation_faults", PERF_COUNT_SW_EMULATION_FAULTS, "count"),
    /* resctrl package telemetry, after libvirt's names. */
    {"core_energy", TRUE, 0, 0, "nanojoules"},
    {"activity", TRUE, 0, 0, "nanofarads"},
};
G_STATIC_ASSERT(G_N_ELEMENTS(expected) == QPH_PERF_CATALOG_LAST);

/* Every slot is filled, in order, with a coherent entry. */
static void
test_catalog_complete(void)
{
    for (guint i = 0; i < QPH_PERF_CATALOG_LAST; i++) {
        const QphPerfCatalogEntry *e = qph_perf_catalog_get(i);

        g_assert_nonnull(e);
        g_assert_cmpint(e->id, ==, i);
        g_assert_cmpstr(e->name, ==, expected[i].name);
        g_assert_cmpstr(e->unit, ==, expected[i].unit);
        g_assert_nonnull(e->description);
        g_assert_cmpuint(strlen(e->description), >, 5);
        g_assert_cmpint(e->resctrl, ==, expected[i].resctrl);
        if (e->resctrl) {
            g_assert_null(e->pfm_name);
            g_assert_nonnull(e->resctrl_file);
        } else {
            g_assert_nonnull(e->pfm_name);
            g_assert_true(g_str_has_prefix(e->pfm_name, "perf::"));
            g_assert_null(e->resctrl_file);
        }
        g_assert_true(qph_perf_catalog_lookup(e->name) == e);
    }
    g_assert_null(qph_perf_catalog_get(QPH_PERF_CATALOG_LAST));
}

static void
test_catalog_resctrl_files(void)
{
    const QphPerfCatalogEntry *cmt = qph_perf_catalog_lookup("cmt");
    const QphPerfCatalogEntry *mbmt = qph_perf_catalog_lookup("mbmt");
    const QphPerfCatalogEntry *mbml = qph_perf_catalog_lookup("mbml");

    g_assert_cmpstr(cmt->resctrl_file, ==, "llc_occupancy");
    g_assert_true(cmt->gauge);
    g_assert_cmpstr(mbmt->resctrl_file, ==, "mbm_total_bytes");
    g_assert_false(mbmt->gauge);
    g_assert_cmpstr(mbml->resctrl_file, ==, "mbm_local_bytes");
    g_assert_false(mbml->gauge);
}

static void
test_catalog_lookup_unknown(void)
{
    g_assert_null(qph_perf_catalog_lookup("TASK_CLOCK"));
    g_assert_null(qph_perf_catalog_lookup("task-clock"));
    g_assert_null(qph_perf_catalog_lookup(""));
    g_assert_null(qph_perf_catalog_lookup(NULL));
}

/* One catalog name through libpfm4: the attr perf_event_open will get. */
static void
test_catalog_encode(gconstpointer data)
{
    const Expected *x = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(QphPerfEvent) ev = qph_perf_event_new(x->name, &error);
    const struct perf_event_attr *attr;

    g_assert_no_error(error);
    g_assert_nonnull(ev);
    attr = qph_perf_event_get_attr(ev);
    g_assert_cmpuint(attr->type, ==, x->type);
    g_assert_cmpuint(attr->config, ==, x->config);
    g_assert_cmpuint(attr->size, ==, sizeof(*attr));
    g_assert_cmpuint(attr->read_format, ==,
                     PERF_FORMAT_TOTAL_TIME_ENABLED |
                         PERF_FORMAT_TOTAL_TIME_RUNNING);
    g_assert_false(attr->disabled);
    g_assert_true(attr->inherit);        /* threads created later count too */
    g_assert_true(attr->inherit_thread); /* forked processes do not */
    g_assert_false(attr->exclude_user);
    g_assert_false(attr->exclude_kernel);
    g_assert_cmpuint(attr->sample_period, ==, 0);
    g_assert_cmpstr(qph_perf_event_get_name(ev), ==, x->name);
    g_assert_cmpstr(qph_perf_event_get_unit(ev), ==, x->unit);
    g_assert_nonnull(qph_perf_event_get_encoding(ev));
    g_assert_false(qph_perf_event_get_user_only(ev));
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 0);
    g_test_message("%s -> %s", x->name, qph_perf_event_get_encoding(ev));
}

/* cmt, mbmt, mbml are refused until the resctrl backend exists. */
static void
test_catalog_resctrl_refused(gconstpointer data)
{
    const Expected *x = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(QphPerfEvent) ev = qph_perf_event_new(x->name, &error);
    g_autofree char *msg = g_strdup_printf(
        "Event '%s' is served by resctrl, which this helper does not "
        "support yet.",
        x->name);

    g_assert_null(ev);
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_assert_cmpstr(error->message, ==, msg);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/perf/catalog/complete", test_catalog_complete);
    g_test_add_func("/perf/catalog/resctrl-files", test_catalog_resctrl_files);
    g_test_add_func("/perf/catalog/lookup-unknown",
                    test_catalog_lookup_unknown);
    for (guint i = 0; i < G_N_ELEMENTS(expected); i++) {
        g_autofree char *path = NULL;

        if (expected[i].resctrl) {
            path = g_strdup_printf("/perf/catalog/resctrl-refused/%s",
                                   expected[i].name);
            g_test_add_data_func(path, &expected[i],
                                 test_catalog_resctrl_refused);
        } else {
            path = g_strdup_printf("/perf/catalog/encode/%s", expected[i].name);
            g_test_add_data_func(path, &expected[i], test_catalog_encode);
        }
    }
    return g_test_run();
}
