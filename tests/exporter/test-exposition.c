/*
 * test-exposition.c: qemu-perf-exporter's reply parsing and text formats
 *
 * The pure part of the exporter, without sockets: a query-perf-events
 * reply (as the helper writes it, and as a newer helper may) becomes
 * series whose parts add up to the total; values are written exactly;
 * label values are escaped; the Accept header picks the format the way
 * Prometheus expects.  The functional test (tests/functional/
 * test_exporter.py) checks the same output against promtool and a real
 * Prometheus.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <gio/gio.h>
#include <string.h>

#include "contrib/qemu-perf-exporter/exposition.h"
#include "contrib/qemu-perf-exporter/reading.h"
#include "qmp/json-streamer.h"

static QpeReading *
reading_from_text(const char *json)
{
    g_autofree char *err = NULL;
    g_autoptr(QmpJson) reply = qmp_json_parse_value(json, strlen(json), &err);
    g_autoptr(GError) error = NULL;
    QpeReading *r;

    g_assert_nonnull(reply);
    r = qpe_reading_from_reply(qmp_json_object_get(reply, "return"), &error);
    g_assert_no_error(error);
    return r;
}

static char *
render(const QpeReading *r, QpeFormat format, const char *domain)
{
    g_autoptr(QpeExposition) e = qpe_exposition_new();
    QpeVmReport vm = {domain, "u-1", "/run/x.sock", TRUE, 1500, 0, r};
    guint64 scrapes[QPE_FORMAT__LAST] = {0};

    g_assert_true(qpe_exposition_add_vm(e, &vm));
    qpe_exposition_add_exporter(e, 1, scrapes, 2000);
    return g_string_free(qpe_exposition_render(e, format), FALSE);
}

/* A reply as the helper writes it: two vCPUs, the main loop, two other
 * threads and a share from threads that exited. */
static const char helper_reply[] =
    "{\"return\": [{\"name\": \"task_clock\", \"enabled\": true, "
    "\"value\": 10000000123, \"unit\": \"ns\", \"source\": \"perf\", "
    "\"time-enabled\": 12000000000, \"time-running\": 6000000000, "
    "\"scaled\": true, \"user-only\": false, \"exited-value\": 100, "
    "\"threads\": ["
    "{\"thread-id\": 10, \"name\": \"qemu\", \"kind\": \"main-loop\", "
    "\"value\": 1000000000, \"scaled\": false},"
    "{\"thread-id\": 12, \"name\": \"CPU 1/KVM\", \"kind\": \"vcpu\", "
    "\"value\": 3000000000, \"scaled\": false, \"cpu-index\": 1, "
    "\"qom-path\": \"/machine/unattached/device[1]\"},"
    "{\"thread-id\": 11, \"name\": \"CPU 0/KVM\", \"kind\": \"vcpu\", "
    "\"value\": 6000000000, \"scaled\": false, \"cpu-index\": 0},"
    "{\"thread-id\": 13, \"name\": \"worker\", \"kind\": \"other\", "
    "\"value\": 20, \"scaled\": false},"
    "{\"thread-id\": 14, \"name\": \"rcu\", \"kind\": \"other\", "
    "\"value\": 3, \"scaled\": false}]},"
    "{\"name\": \"cmt\", \"enabled\": true, \"value\": 7340032, "
    "\"unit\": \"bytes\", \"source\": \"resctrl\", \"domains\": ["
    "{\"domain\": 0, \"value\": 7340032, \"status\": \"ok\"}]},"
    "{\"name\": \"page_faults\", \"enabled\": false, \"unit\": \"count\", "
    "\"source\": \"perf\"}]}";

static void
test_parts_add_up(void)
{
    g_autoptr(QpeReading) r = reading_from_text(helper_reply);
    const QpeEvent *ev;
    guint64 sum = 0;

    /* Disabled events are not exported. */
    g_assert_cmpuint(r->events->len, ==, 2);
    ev = r->events->pdata[0];
    g_assert_cmpstr(ev->name, ==, "task_clock");
    /* vcpu 0, vcpu 1, main-loop, other (sorted by kind then index). */
    g_assert_cmpuint(ev->parts->len, ==, 4);
    g_assert_cmpstr(g_array_index(ev->parts, QpePart, 0).key, ==, "0");
    g_assert_cmpstr(g_array_index(ev->parts, QpePart, 1).key, ==, "1");
    g_assert_cmpint(g_array_index(ev->parts, QpePart, 2).kind, ==,
                    QPE_KIND_MAIN_LOOP);
    /* other = 20 + 3 live + 100 exited: the total minus the named parts. */
    g_assert_cmpint(g_array_index(ev->parts, QpePart, 3).kind, ==,
                    QPE_KIND_OTHER);
    g_assert_cmpuint(g_array_index(ev->parts, QpePart, 3).value, ==, 123);
    for (guint i = 0; i < ev->parts->len; i++) {
        sum += g_array_index(ev->parts, QpePart, i).value;
    }
    g_assert_cmpuint(sum, ==, ev->value);
    /* resctrl: one value per VM, no parts. */
    ev = r->events->pdata[1];
    g_assert_cmpuint(ev->parts->len, ==, 0);
}

/* A newer helper: unknown members everywhere, an enabled-at timestamp,
 * children folded into their creator with a field of their own, and
 * entries of a shape this exporter does not know. */
static void
test_tolerant(void)
{
    g_autoptr(QpeReading) r = reading_from_text(
        "{\"return\": [{\"name\": \"task_clock\", \"enabled\": true, "
        "\"enabled-at\": {\"seconds\": 1, \"microseconds\": 2}, "
        "\"value\": 100, \"unit\": \"ns\", \"source\": \"perf\", "
        "\"future\": [1, 2, {\"x\": null}], \"threads\": ["
        "{\"thread-id\": 1, \"kind\": \"vcpu\", \"cpu-index\": 0, "
        "\"value\": 70, \"folded-threads\": 3, \"new\": \"x\"},"
        "{\"thread-id\": 2, \"kind\": \"hyperthread\", \"value\": 5},"
        "{\"thread-id\": 3, \"kind\": \"vcpu\", \"value\": 5},"
        "\"not an object\", {\"kind\": \"vcpu\", \"cpu-index\": 0, "
        "\"value\": -4}]},"
        "{\"name\": \"instructions\", \"enabled\": true, "
        "\"value\": 18446744073709551615, \"unit\": \"count\"},"
        "{\"name\": \"bad\", \"enabled\": true, \"value\": \"7\"}, 42,"
        /* Never on a PMU: no measurement, not a zero. */
        "{\"name\": \"cpu_cycles\", \"enabled\": true, \"value\": 0, "
        "\"unit\": \"count\", \"time-enabled\": 5, \"time-running\": 0, "
        "\"unscheduled\": true, \"overflow\": false, "
        "\"inherited-threads\": [{\"thread-id\": 9}]}]}");
    const QpeEvent *ev = r->events->pdata[0];
    g_autofree char *text = NULL;

    g_assert_cmpuint(r->events->len, ==, 2);
    g_assert_cmpuint(ev->parts->len, ==, 2);
    g_assert_cmpuint(g_array_index(ev->parts, QpePart, 0).value, ==, 70);
    /* Unknown kinds and unlabelled vCPUs go to other. */
    g_assert_cmpuint(g_array_index(ev->parts, QpePart, 1).value, ==, 30);
    g_assert_true(ev->has_enabled_at);
    g_assert_cmpint(ev->enabled_at_us, ==, 1000002);
    ev = r->events->pdata[1];
    g_assert_cmpuint(ev->value, ==, G_MAXUINT64);
    g_assert_false(ev->has_enabled_at);
    text = render(r, QPE_FORMAT_PROMETHEUS, "vm");
    g_assert_nonnull(strstr(text, "qemu_perf_instructions_total{domain=\"vm\","
                                  "uuid=\"u-1\"} 18446744073709551615\n"));
    g_assert_nonnull(strstr(text,
        "# TYPE qemu_perf_enabled_timestamp_seconds gauge\n"
        "qemu_perf_enabled_timestamp_seconds{domain=\"vm\",uuid=\"u-1\","
        "event=\"task_clock\"} 1.000002\n"));
}

/* A libpfm4 event, and a known name in an unexpected unit, go to
 * qemu_perf_raw_total with the event string as a label. */
static void
test_raw(void)
{
    g_autoptr(QpeReading) r = reading_from_text(
        "{\"return\": [{\"name\": \"perf::PAGE-FAULTS\", \"enabled\": true, "
        "\"value\": 9, \"unit\": \"count\", \"threads\": ["
        "{\"kind\": \"vcpu\", \"cpu-index\": 0, \"value\": 4}]},"
        "{\"name\": \"task_clock\", \"enabled\": true, \"value\": 5, "
        "\"unit\": \"count\"}]}");
    g_autofree char *text = render(r, QPE_FORMAT_OPENMETRICS, "vm");

    g_assert_nonnull(strstr(text,
        "# TYPE qemu_perf_raw counter\n"
        "qemu_perf_raw_total{domain=\"vm\",uuid=\"u-1\","
        "event=\"perf::PAGE-FAULTS\",kind=\"vcpu\",vcpu=\"0\"} 4\n"
        "qemu_perf_raw_total{domain=\"vm\",uuid=\"u-1\","
        "event=\"perf::PAGE-FAULTS\",kind=\"other\"} 5\n"
        "qemu_perf_raw_total{domain=\"vm\",uuid=\"u-1\","
        "event=\"task_clock\"} 5\n"));
    g_assert_null(strstr(text, "qemu_perf_task_clock_seconds"));
}

static void
test_openmetrics(void)
{
    g_autoptr(QpeReading) r = reading_from_text(helper_reply);
    g_autofree char *text = render(r, QPE_FORMAT_OPENMETRICS, "vm");

    g_assert_nonnull(strstr(text,
        "# TYPE qemu_perf_task_clock_seconds counter\n"
        "# UNIT qemu_perf_task_clock_seconds seconds\n"
        "qemu_perf_task_clock_seconds_total{domain=\"vm\",uuid=\"u-1\","
        "kind=\"vcpu\",vcpu=\"0\"} 6.000000000\n"));
    /* Nanoseconds exactly, no float rounding. */
    g_assert_nonnull(strstr(text, "kind=\"other\"} 0.000000123\n"));
    g_assert_nonnull(strstr(text,
        "# TYPE qemu_perf_cmt_bytes gauge\n"
        "# UNIT qemu_perf_cmt_bytes bytes\n"
        "qemu_perf_cmt_bytes{domain=\"vm\",uuid=\"u-1\"} 7340032\n"));
    g_assert_nonnull(strstr(text,
        "qemu_perf_time_running_seconds_total{domain=\"vm\",uuid=\"u-1\","
        "event=\"task_clock\"} 6.000000000\n"));
    g_assert_nonnull(strstr(text,
        "qemu_perf_up{domain=\"vm\",uuid=\"u-1\",socket=\"/run/x.sock\"} 1\n"));
    g_assert_nonnull(strstr(text, "qemu_perf_scrape_duration_seconds{domain="
                                  "\"vm\",uuid=\"u-1\",socket=\"/run/x.sock\"}"
                                  " 0.001500\n"));
    g_assert_null(strstr(text, "page_faults"));
    g_assert_true(g_str_has_suffix(text, "\n# EOF\n"));
}

static void
test_prometheus_text(void)
{
    g_autoptr(QpeReading) r = reading_from_text(helper_reply);
    g_autofree char *text = render(r, QPE_FORMAT_PROMETHEUS, "vm");

    g_assert_nonnull(strstr(text,
        "# HELP qemu_perf_task_clock_seconds_total "));
    g_assert_nonnull(strstr(text,
        "# TYPE qemu_perf_task_clock_seconds_total counter\n"
        "qemu_perf_task_clock_seconds_total{"));
    g_assert_null(strstr(text, "# UNIT"));
    g_assert_null(strstr(text, "# EOF"));
}

static void
test_label_escaping(void)
{
    g_autoptr(QpeReading) r = reading_from_text(helper_reply);
    g_autofree char *text =
        render(r, QPE_FORMAT_OPENMETRICS, "a\"b\\c\nd\xff");

    g_assert_nonnull(strstr(text, "{domain=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\","));
}

static void
test_duplicate_identity(void)
{
    g_autoptr(QpeReading) r = reading_from_text(helper_reply);
    g_autoptr(QpeExposition) e = qpe_exposition_new();
    QpeVmReport down = {"vm", "u-1", "/run/stale.sock", FALSE, 0, 3, NULL};
    QpeVmReport a = {"vm", "u-1", "/run/a.sock", TRUE, 0, 0, r};
    QpeVmReport b = {"vm", "u-1", "/run/b.sock", TRUE, 0, 0, r};
    g_autofree char *text = NULL;

    /* A socket that did not answer does not claim the identity. */
    g_assert_true(qpe_exposition_add_vm(e, &down));
    g_assert_true(qpe_exposition_add_vm(e, &a));
    g_assert_false(qpe_exposition_add_vm(e, &b));
    text = g_string_free(qpe_exposition_render(e, QPE_FORMAT_PROMETHEUS),
                         FALSE);
    g_assert_nonnull(strstr(text, "socket=\"/run/a.sock\"} 1\n"));
    g_assert_nonnull(strstr(text, "socket=\"/run/b.sock\"} 0\n"));
    g_assert_nonnull(strstr(text, "socket=\"/run/stale.sock\"} 0\n"));
    /* One vCPU 0 series, not two. */
    g_assert_null(strstr(strstr(text, "vcpu=\"0\"}") + 1, "vcpu=\"0\"}"));
}

static void
test_accept(void)
{
    static const struct {
        const char *accept;
        QpeFormat format;
    } cases[] = {
        /* What Prometheus 2.42 sends. */
        {"application/openmetrics-text;version=1.0.0,application/"
         "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;"
         "q=0.5,*/*;q=0.1", QPE_FORMAT_OPENMETRICS},
        {"application/openmetrics-text", QPE_FORMAT_OPENMETRICS},
        {"text/plain;version=0.0.4;q=0.9, application/openmetrics-text;"
         "q=0.5", QPE_FORMAT_PROMETHEUS},
        /* Only a version this exporter does not write. */
        {"application/openmetrics-text;version=0.0.1", QPE_FORMAT_PROMETHEUS},
        {"APPLICATION/OpenMetrics-Text; Version=1.0.0", QPE_FORMAT_OPENMETRICS},
        {"application/openmetrics-text;q=0, */*", QPE_FORMAT_PROMETHEUS},
        {"*/*", QPE_FORMAT_PROMETHEUS},
        {"", QPE_FORMAT_PROMETHEUS},
        {NULL, QPE_FORMAT_PROMETHEUS},
        {";;;,,,=q", QPE_FORMAT_PROMETHEUS},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_assert_cmpint(qpe_format_from_accept(cases[i].accept), ==,
                        cases[i].format);
    }
}

static void
test_not_an_array(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QmpJson) obj = qmp_json_new(QMP_JSON_OBJECT);

    g_assert_null(qpe_reading_from_reply(obj, &error));
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
    g_clear_error(&error);
    g_assert_null(qpe_reading_from_reply(NULL, &error));
    g_assert_nonnull(error);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/exporter/reading/parts-add-up", test_parts_add_up);
    g_test_add_func("/exporter/reading/tolerant", test_tolerant);
    g_test_add_func("/exporter/reading/not-an-array", test_not_an_array);
    g_test_add_func("/exporter/exposition/openmetrics", test_openmetrics);
    g_test_add_func("/exporter/exposition/raw", test_raw);
    g_test_add_func("/exporter/exposition/prometheus-text",
                    test_prometheus_text);
    g_test_add_func("/exporter/exposition/label-escaping",
                    test_label_escaping);
    g_test_add_func("/exporter/exposition/duplicate-identity",
                    test_duplicate_identity);
    g_test_add_func("/exporter/accept", test_accept);
    return g_test_run();
}
