/*
 * print.c: perf stat's output formats, column for column
 *
 * The layout is perf stat 6.1's (tools/perf/util/stat-display.c), checked
 * against Debian's linux-perf on this project's machines: an 18-wide value,
 * a 4-wide unit, a 32-wide event name, then " # " and the derived metric
 * in a 35-wide column, "  (50.00%)" when the counter was multiplexed;
 * "<not supported>" and "<not counted>" in the value column with a 25-wide
 * name.  Interval output starts each line with "%6lu.%09lu", --per-thread
 * with perf's "%16s-%-8s" comm-pid column (here the helper's label and the
 * thread id).  CSV and JSON carry the same fields in perf's order and
 * spelling, with the unrounded metric in JSON.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "print.h"

#include <ctype.h>
#include <string.h>

#include "qmp/json-value.h"

#define VALUE_LEN 18
#define UNIT_LEN 4
#define EVENT_LEN 32
#define EVENT_LEN_NOT_COUNTED 25
#define METRIC_LEN 35
/* perf repeats the interval header every 25 intervals */
#define HEADER_EVERY 25

#define NOT_SUPPORTED "<not supported>"
#define NOT_COUNTED "<not counted>"

/* What a metric is computed from: one event on one row of a report. */
typedef struct {
    const StatReport *r;
    const GPtrArray *names;
    guint index;     /* the event */
    const char *row; /* the row key, NULL for the total */
    double value;    /* the event's value on that row */
} MetricCtx;

typedef gboolean (*MetricFn)(const MetricCtx *m, double *out);

/* The value of the counted event @request on the context's row. */
static gboolean
other_value(const MetricCtx *m, const char *request, double *out)
{
    for (guint i = 0; i < m->names->len; i++) {
        const StatEventName *e = g_ptr_array_index(m->names, i);

        if (strcmp(e->request, request) == 0 && m->r->deltas[i].counted) {
            *out = stat_report_row_value(m->r, i, m->row);
            return *out > 0;
        }
    }
    return FALSE;
}

static gboolean
metric_rate(const MetricCtx *m, double *out)
{
    double task_ns;

    if (!other_value(m, "task_clock", &task_ns)) {
        return FALSE;
    }
    *out = 1e9 * m->value / task_ns;
    return TRUE;
}

static gboolean
metric_cpus_utilized(const MetricCtx *m, double *out)
{
    if (m->r->wall_ns <= 0) {
        return FALSE;
    }
    *out = m->value / m->r->wall_ns;
    return TRUE;
}

static gboolean
metric_ghz(const MetricCtx *m, double *out)
{
    double task_ns;

    if (!other_value(m, "task_clock", &task_ns)) {
        return FALSE;
    }
    *out = m->value / task_ns;
    return TRUE;
}

static const StatEventKind *
kind_of(const MetricCtx *m)
{
    const StatEventName *e = g_ptr_array_index(m->names, m->index);

    return e->kind;
}

static gboolean
metric_per_other(const MetricCtx *m, double *out)
{
    double other;

    if (!other_value(m, kind_of(m)->other, &other)) {
        return FALSE;
    }
    *out = m->value / other;
    return TRUE;
}

static gboolean
metric_percent_of(const MetricCtx *m, double *out)
{
    double other;

    if (!other_value(m, kind_of(m)->other, &other)) {
        return FALSE;
    }
    *out = 100.0 * m->value / other;
    return TRUE;
}

static gboolean
metric_bytes_per_sec(const MetricCtx *m, double *out)
{
    if (m->r->wall_ns <= 0) {
        return FALSE;
    }
    *out = 1e9 * m->value / m->r->wall_ns;
    return TRUE;
}

/* perf's formats: "%8.3f", "%7.2f " (insn per cycle), "%7.2f%%" */
typedef struct {
    int width;
    int precision;
    const char *suffix;
} MetricFormat;

static const struct {
    MetricFn fn;
    MetricFormat fmt;
    gboolean si_prefix; /* "K/sec", "MB/s", as perf's convert_unit_double */
} metric_table[] = {
    [STAT_METRIC_RATE] = {metric_rate, {8, 3, ""}, TRUE},
    [STAT_METRIC_CPUS_UTILIZED] = {metric_cpus_utilized, {8, 3, ""}, FALSE},
    [STAT_METRIC_GHZ] = {metric_ghz, {8, 3, ""}, FALSE},
    [STAT_METRIC_PER_OTHER] = {metric_per_other, {7, 2, " "}, FALSE},
    [STAT_METRIC_PERCENT_OF] = {metric_percent_of, {7, 2, "%"}, FALSE},
    [STAT_METRIC_BYTES_PER_SEC] = {metric_bytes_per_sec, {8, 3, ""}, TRUE},
    [STAT_METRIC_NONE] = {NULL, {0, 0, ""}, FALSE},
};
G_STATIC_ASSERT(G_N_ELEMENTS(metric_table) == STAT_METRIC__LAST);

typedef struct {
    gboolean has;
    double value;
    MetricFormat fmt;
    char unit[48];
} Metric;

/* The metric and unit of events the catalog does not know (libpfm4). */
static StatMetric
metric_of(const StatEventName *e, const StatDelta *d, const char **unit)
{
    if (e->kind) {
        *unit = e->kind->metric_unit;
        return e->kind->metric;
    }
    if (strcmp(d->unit, "ns") == 0) {
        *unit = "CPUs utilized";
        return STAT_METRIC_CPUS_UTILIZED;
    }
    *unit = "/sec";
    return STAT_METRIC_RATE;
}

static Metric
metric_compute(const StatReport *r, const GPtrArray *names, guint i,
               const char *row, double value)
{
    const StatEventName *e = g_ptr_array_index(names, i);
    MetricCtx ctx = {
        .r = r, .names = names, .index = i, .row = row, .value = value};
    const char *unit;
    StatMetric which = metric_of(e, &r->deltas[i], &unit);
    Metric m = {0};

    if (!metric_table[which].fn || !metric_table[which].fn(&ctx, &m.value)) {
        return m;
    }
    m.has = TRUE;
    m.fmt = metric_table[which].fmt;
    if (metric_table[which].si_prefix) {
        const char *prefix = "";

        if (m.value > 1000.0) {
            m.value /= 1000.0, prefix = "K";
        }
        if (m.value > 1000.0) {
            m.value /= 1000.0, prefix = "M";
        }
        if (m.value > 1000.0) {
            m.value /= 1000.0, prefix = "G";
        }
        g_snprintf(m.unit, sizeof m.unit, "%s%s", prefix, unit);
    } else {
        g_strlcpy(m.unit, unit, sizeof m.unit);
    }
    return m;
}

/* How a value in the helper's unit is shown: perf prints task-clock in
 * msec with two decimals, counts as integers; bytes become MiB. */
typedef struct {
    const char *unit;
    double scale;
    gboolean decimals;
} Shown;

static Shown
shown_of(const StatDelta *d)
{
    if (strcmp(d->unit, "ns") == 0) {
        return (Shown){"msec", 1e-6, TRUE};
    }
    if (strcmp(d->unit, "bytes") == 0) {
        return (Shown){"MiB", 1.0 / (1024.0 * 1024.0), TRUE};
    }
    return (Shown){"", 1.0, FALSE};
}

static void
print_prefix(StatPrinter *p, const StatReport *r, const StatRow *row)
{
    if (p->interval) {
        guint64 ns = (guint64)MAX(0.0, r->since_ns);

        if (p->mode == STAT_OUTPUT_JSON) {
            fprintf(p->out, "\"interval\" : %lu.%09lu, ",
                    (unsigned long)(ns / 1000000000u),
                    (unsigned long)(ns % 1000000000u));
        } else {
            fprintf(p->out, "%6lu.%09lu%s", (unsigned long)(ns / 1000000000u),
                    (unsigned long)(ns % 1000000000u),
                    p->mode == STAT_OUTPUT_CSV ? p->sep : " ");
        }
    }
    if (!row) {
        return;
    }
    if (p->mode == STAT_OUTPUT_JSON) {
        g_autoptr(GString) s = g_string_new(NULL);

        qmp_json_write_string(s, row->key);
        fprintf(p->out, "\"thread\" : %s, ", s->str);
    } else if (p->mode == STAT_OUTPUT_CSV) {
        fprintf(p->out, "%s%s", row->key, p->sep);
    } else {
        fprintf(p->out, "%16s%s%-8s ", row->name, row->tid[0] ? "-" : " ",
                row->tid);
    }
}

static double
percent_running(const StatDelta *d)
{
    return d->run != d->ena && d->ena ? 100.0 * (double)d->run / d->ena : 100.0;
}

static void
print_std(StatPrinter *p, const StatEventName *e, const StatDelta *d,
          const char *missing, double value, const Metric *m)
{
    Shown s = shown_of(d);

    if (missing) {
        fprintf(p->out, "%*s %-*s %-*s%*s", VALUE_LEN, missing, UNIT_LEN,
                s.unit, EVENT_LEN_NOT_COUNTED, e->display, METRIC_LEN, "");
    } else {
        fprintf(p->out, s.decimals ? "%*.2f" : "%*.0f", VALUE_LEN,
                value * s.scale);
        fprintf(p->out, " %-*s %-*s", UNIT_LEN, s.unit, EVENT_LEN, e->display);
        if (m->has) {
            int n = fprintf(p->out, " # ");

            n += fprintf(p->out, "%*.*f%s", m->fmt.width, m->fmt.precision,
                         m->value, m->fmt.suffix);
            fprintf(p->out, " %-*s", MAX(0, METRIC_LEN - n - 1), m->unit);
        } else {
            fprintf(p->out, "%-*s", METRIC_LEN, "");
        }
    }
    if (d->run != d->ena && d->ena) {
        fprintf(p->out, "  (%.2f%%)", percent_running(d));
    }
    fputc('\n', p->out);
}

/* perf's CSV metric: the number as the format prints it, spaces and the
 * trailing '%' dropped. */
static void
csv_metric(char *buf, gsize size, const Metric *m)
{
    char tmp[64];
    char *v = tmp;
    char *end;

    g_snprintf(tmp, sizeof tmp, "%*.*f", m->fmt.width, m->fmt.precision,
               m->value);
    while (*v == ' ') {
        v++;
    }
    for (end = v; isdigit((unsigned char)*end) || *end == '.'; end++) {
    }
    *end = '\0';
    g_strlcpy(buf, v, size);
}

static void
print_csv(StatPrinter *p, const StatEventName *e, const StatDelta *d,
          const char *missing, double value, const Metric *m)
{
    Shown s = shown_of(d);
    const char *sep = p->sep;
    char metric[64] = "";

    if (missing) {
        fprintf(p->out, "%s%s", missing, sep);
    } else {
        fprintf(p->out, s.decimals ? "%.2f%s" : "%.0f%s", value * s.scale, sep);
    }
    fprintf(p->out, "%s%s%s%s", s.unit, sep, e->display, sep);
    fprintf(p->out, "%" G_GUINT64_FORMAT "%s%.2f", missing ? 0 : d->run, sep,
            missing ? 100.0 : percent_running(d));
    if (!missing && m->has) {
        csv_metric(metric, sizeof metric, m);
    }
    fprintf(p->out, "%s%s%s%s\n", sep, metric, sep,
            !missing && m->has ? m->unit : "");
}

static void
print_json(StatPrinter *p, const StatEventName *e, const StatDelta *d,
           const char *missing, double value, const Metric *m)
{
    Shown s = shown_of(d);
    g_autoptr(GString) name = g_string_new(NULL);

    qmp_json_write_string(name, e->display);
    if (missing) {
        fprintf(p->out, "\"counter-value\" : \"%s\", ", missing);
    } else {
        fprintf(p->out, "\"counter-value\" : \"%f\", ", value * s.scale);
    }
    fprintf(p->out,
            "\"unit\" : \"%s\", \"event\" : %s, \"event-runtime\" : "
            "%" G_GUINT64_FORMAT ", \"pcnt-running\" : %.2f, "
            "\"metric-value\" : %f, \"metric-unit\" : \"%s\"}\n",
            s.unit, name->str, missing ? 0 : d->run,
            missing ? 100.0 : percent_running(d),
            !missing && m->has ? m->value : 0.0,
            !missing && m->has ? m->unit : "");
}

static void
print_line(StatPrinter *p, const StatReport *r, const GPtrArray *names, guint i,
           gboolean supported, const StatRow *row)
{
    const StatEventName *e = g_ptr_array_index(names, i);
    const StatDelta *d = &r->deltas[i];
    const char *missing = NULL;
    double value = 0;
    Metric m = {0};

    if (!supported) {
        missing = NOT_SUPPORTED;
    } else if (!d->counted) {
        missing = NOT_COUNTED;
    } else {
        value = stat_report_row_value(r, i, row ? row->key : NULL);
        if (value < 0) {
            value = 0;
        }
        m = metric_compute(r, names, i, row ? row->key : NULL, value);
    }
    if (p->mode == STAT_OUTPUT_JSON) {
        fputc('{', p->out);
    }
    print_prefix(p, r, row);
    if (p->mode == STAT_OUTPUT_JSON) {
        print_json(p, e, d, missing, value, &m);
    } else if (p->mode == STAT_OUTPUT_CSV) {
        print_csv(p, e, d, missing, value, &m);
    } else {
        print_std(p, e, d, missing, value, &m);
    }
}

typedef struct {
    const StatReport *r;
    guint index;
} RowOrder;

/* perf --per-thread lists an event's threads by count, largest first. */
static gint
row_compare(gconstpointer a, gconstpointer b, gpointer opaque)
{
    const RowOrder *o = opaque;
    const StatRow *ra = *(StatRow *const *)a;
    const StatRow *rb = *(StatRow *const *)b;
    double va = stat_report_row_value(o->r, o->index, ra->key);
    double vb = stat_report_row_value(o->r, o->index, rb->key);

    return va < vb ? 1 : va > vb ? -1 : 0;
}

static void
print_event_rows(StatPrinter *p, const StatReport *r, const GPtrArray *names,
                 guint i, gboolean supported)
{
    const StatDelta *d = &r->deltas[i];
    g_autoptr(GPtrArray) rows = g_ptr_array_new();
    RowOrder order = {r, i};
    StatRow all = {.key = STAT_ROW_ALL, .name = STAT_ROW_ALL, .tid = ""};

    for (guint k = 0; k < r->rows->len; k++) {
        StatRow *row = g_ptr_array_index(r->rows, k);

        /* an event with rows shows its own; one without shows every row */
        if (!d->rows || !supported || !d->counted ||
            g_hash_table_contains(d->rows, row->key)) {
            g_ptr_array_add(rows, row);
        }
    }
    if (rows->len == 0) {
        g_ptr_array_add(rows, &all);
    }
    if (supported && d->counted) {
        g_ptr_array_sort_with_data(rows, row_compare, &order);
    }
    for (guint k = 0; k < rows->len; k++) {
        print_line(p, r, names, i, supported, g_ptr_array_index(rows, k));
    }
}

void
stat_print_report(StatPrinter *p, const StatReport *r, const GPtrArray *names,
                  const gboolean *supported)
{
    gboolean std = p->mode == STAT_OUTPUT_STD;

    if (std && p->interval && p->lines % HEADER_EVERY == 0) {
        fprintf(p->out, p->per_thread
                            ? "#           time             comm-pid      "
                              "            counts unit events\n"
                            : "#           time             counts unit "
                              "events\n");
    }
    if (std && !p->interval) {
        fprintf(p->out, "\n Performance counter stats for %s:\n\n", p->target);
    }
    for (guint i = 0; i < r->n; i++) {
        if (p->per_thread) {
            print_event_rows(p, r, names, i, supported[i]);
        } else {
            print_line(p, r, names, i, supported[i], NULL);
        }
    }
    if (std && !p->interval) {
        fprintf(p->out, "\n %17.9f seconds time elapsed\n\n", r->wall_ns / 1e9);
    }
    p->lines++;
    fflush(p->out);
}
