/*
 * test-print.c: qemu-perf-stat's output against perf stat's layout
 *
 * The functional tests check the plain, CSV and JSON output of software
 * events against a real VM; this machine has no PMU, so the columns perf
 * stat derives from hardware events (GHz, insn per cycle, % of all cache
 * refs), multiplexing "(50.00%)" and the resctrl units are checked here on
 * a report made up by hand.  The expected lines follow perf stat 6.1's
 * widths (value 18, unit 4, event 32 or 25, metric 35) and formats
 * ("%8.3f", "%7.2f " for insn per cycle, "%7.2f%%"), which the functional
 * tests confirmed against Debian's perf for the software events.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "print.h"
#include "sample.h"

typedef struct {
    const char *name;
    const char *unit;
    double value;
    guint64 run, ena;
    gboolean counted;
    gboolean supported;
} Fake;

static const Fake fakes[] = {
    {"task-clock", "ns", 1e9, 1000000000, 1000000000, TRUE, TRUE},
    {"cycles", "count", 3e9, 1000000000, 2000000000, TRUE, TRUE},
    {"instructions", "count", 6e9, 1000000000, 1000000000, TRUE, TRUE},
    {"cache-references", "count", 2e6, 1000000000, 1000000000, TRUE, TRUE},
    {"cache-misses", "count", 90000, 1000000000, 1000000000, TRUE, TRUE},
    {"mbmt", "bytes", 2.5e9, 0, 0, TRUE, TRUE},
    {"cmt", "bytes", 8388608, 0, 0, TRUE, TRUE},
    {"page-faults", "count", 0, 0, 0, FALSE, TRUE},
    {"branches", "count", 0, 0, 0, FALSE, FALSE},
};

static char *
print_fakes(StatOutputMode mode)
{
    g_autoptr(GPtrArray) names =
        g_ptr_array_new_with_free_func((GDestroyNotify)stat_event_name_free);
    g_autoptr(StatReport) r = g_new0(StatReport, 1);
    gboolean supported[G_N_ELEMENTS(fakes)];
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    StatPrinter p = {.mode = mode, .sep = ",", .out = out, .target = "VM 't'"};

    r->n = G_N_ELEMENTS(fakes);
    r->deltas = g_new0(StatDelta, r->n);
    r->rows = g_ptr_array_new();
    r->wall_ns = 2e9;
    r->since_ns = 2e9;
    for (guint i = 0; i < r->n; i++) {
        g_assert_true(stat_event_names_parse(fakes[i].name, names, NULL));
        r->deltas[i] = (StatDelta){
            .counted = fakes[i].counted,
            .gauge = strcmp(fakes[i].name, "cmt") == 0,
            .value = fakes[i].value,
            .run = fakes[i].run,
            .ena = fakes[i].ena,
            .unit = fakes[i].unit,
        };
        supported[i] = fakes[i].supported;
    }
    stat_print_report(&p, r, names, supported);
    fclose(out);
    return buf;
}

static void
test_std(void)
{
    g_autofree char *got = print_fakes(STAT_OUTPUT_STD);
    const char *want =
        "\n Performance counter stats for VM 't':\n\n"
        "           1000.00 msec task-clock                       #    "
        "0.500 CPUs utilized          \n"
        "        3000000000      cycles                           #    "
        "3.000 GHz                      (50.00%)\n"
        "        6000000000      instructions                     #    "
        "2.00  insn per cycle         \n"
        "           2000000      cache-references                 #    "
        "2.000 M/sec                  \n"
        "             90000      cache-misses                     #    "
        "4.50% of all cache refs      \n"
        "           2384.19 MiB  mbmt                             #    "
        "1.250 GB/s                   \n"
        "              8.00 MiB  cmt                              "
        "                                  \n"
        "     <not counted>      page-faults                      "
        "                           \n"
        "   <not supported>      branches                         "
        "                           \n"
        "\n       2.000000000 seconds time elapsed\n\n";

    g_assert_cmpstr(got, ==, want);
}

static void
test_csv(void)
{
    g_autofree char *got = print_fakes(STAT_OUTPUT_CSV);
    const char *want =
        "1000.00,msec,task-clock,1000000000,100.00,0.500,CPUs utilized\n"
        "3000000000,,cycles,1000000000,50.00,3.000,GHz\n"
        "6000000000,,instructions,1000000000,100.00,2.00,insn per cycle\n"
        "2000000,,cache-references,1000000000,100.00,2.000,M/sec\n"
        "90000,,cache-misses,1000000000,100.00,4.50,of all cache refs\n"
        "2384.19,MiB,mbmt,0,100.00,1.250,GB/s\n"
        "8.00,MiB,cmt,0,100.00,,\n"
        "<not counted>,,page-faults,0,100.00,,\n"
        "<not supported>,,branches,0,100.00,,\n";

    g_assert_cmpstr(got, ==, want);
}

static void
test_json(void)
{
    g_autofree char *got = print_fakes(STAT_OUTPUT_JSON);
    g_auto(GStrv) lines = g_strsplit(got, "\n", -1);

    g_assert_cmpuint(g_strv_length(lines), ==, G_N_ELEMENTS(fakes) + 1);
    g_assert_cmpstr(lines[1], ==,
                    "{\"counter-value\" : \"3000000000.000000\", \"unit\" : "
                    "\"\", \"event\" : \"cycles\", \"event-runtime\" : "
                    "1000000000, \"pcnt-running\" : 50.00, \"metric-value\" "
                    ": 3.000000, \"metric-unit\" : \"GHz\"}");
    g_assert_cmpstr(lines[8], ==,
                    "{\"counter-value\" : \"<not supported>\", \"unit\" : "
                    "\"\", \"event\" : \"branches\", \"event-runtime\" : 0, "
                    "\"pcnt-running\" : 100.00, \"metric-value\" : 0.000000, "
                    "\"metric-unit\" : \"\"}");
}

static void
test_names(void)
{
    g_autoptr(GPtrArray) names =
        g_ptr_array_new_with_free_func((GDestroyNotify)stat_event_name_free);
    const StatEventName *e;

    g_assert_true(stat_event_names_parse(
        "task-clock,cs,task_clock,INST_RETIRED:ANY_P:u,pmu/a=1,b=2/,cycles",
        names, NULL));
    g_assert_cmpuint(names->len, ==, 5); /* task_clock twice: once */
    e = g_ptr_array_index(names, 0);
    g_assert_cmpstr(e->display, ==, "task-clock");
    g_assert_cmpstr(e->request, ==, "task_clock");
    e = g_ptr_array_index(names, 1);
    g_assert_cmpstr(e->request, ==, "context_switches");
    e = g_ptr_array_index(names, 2);
    g_assert_null(e->kind);
    g_assert_cmpstr(e->request, ==, "INST_RETIRED:ANY_P:u");
    e = g_ptr_array_index(names, 3);
    g_assert_cmpstr(e->request, ==, "pmu/a=1,b=2/");
    e = g_ptr_array_index(names, 4);
    g_assert_cmpstr(e->request, ==, "cpu_cycles");
    g_assert_false(stat_event_names_parse("a,,b", names, NULL));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/perf-stat/print/std", test_std);
    g_test_add_func("/perf-stat/print/csv", test_csv);
    g_test_add_func("/perf-stat/print/json", test_json);
    g_test_add_func("/perf-stat/names", test_names);
    return g_test_run();
}
