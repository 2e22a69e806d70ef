/*
 * exposition.c: metric families, labels and the two text formats
 *
 * See exposition.h.  The two formats differ only in the metadata lines:
 * OpenMetrics names a counter family without `_total` and adds `# UNIT`
 * and `# EOF`; the 0.0.4 format names the family as its samples are
 * named.  Samples are formatted once, without their metric name, into
 * their family's buffer, and the name is put in front at render time.
 *
 * Values are written exactly: counts as integers, nanoseconds as seconds
 * with nine decimals from integer arithmetic (a double would lose
 * nanoseconds after 104 days of CPU time).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/exposition.h"

#include <string.h>

typedef enum {
    TYPE_COUNTER,
    TYPE_GAUGE,
} MetricType;

typedef enum {
    UNIT_NONE,
    UNIT_SECONDS, /* the helper reports ns */
    UNIT_BYTES,
} MetricUnit;

static const char *const unit_names[] = {
    [UNIT_NONE] = NULL,
    [UNIT_SECONDS] = "seconds",
    [UNIT_BYTES] = "bytes",
};

/* The helper's unit names for the units above. */
static const char *const unit_reply_names[] = {
    [UNIT_NONE] = "count",
    [UNIT_SECONDS] = "ns",
    [UNIT_BYTES] = "bytes",
};

/*
 * libvirt's perf event names (the helper's built-in catalog), each with
 * its family.  Any other event (a libpfm4 string) goes to
 * qemu_perf_raw_total{event="..."}.
 */
static const struct {
    const char *event;
    MetricType type;
    MetricUnit unit;
    const char *help;
} event_families[] = {
    {"cmt", TYPE_GAUGE, UNIT_BYTES, "L3 cache occupied by the VM (resctrl llc_occupancy)."},
    {"mbmt", TYPE_COUNTER, UNIT_BYTES, "Memory traffic of the VM, total (resctrl mbm_total_bytes)."},
    {"mbml", TYPE_COUNTER, UNIT_BYTES, "Memory traffic of the VM, local NUMA node (resctrl mbm_local_bytes)."},
    {"cpu_cycles", TYPE_COUNTER, UNIT_NONE, "CPU cycles."},
    {"instructions", TYPE_COUNTER, UNIT_NONE, "Instructions retired."},
    {"cache_references", TYPE_COUNTER, UNIT_NONE, "Cache references."},
    {"cache_misses", TYPE_COUNTER, UNIT_NONE, "Cache misses."},
    {"branch_instructions", TYPE_COUNTER, UNIT_NONE, "Branch instructions retired."},
    {"branch_misses", TYPE_COUNTER, UNIT_NONE, "Branch mispredictions."},
    {"bus_cycles", TYPE_COUNTER, UNIT_NONE, "Bus cycles."},
    {"stalled_cycles_frontend", TYPE_COUNTER, UNIT_NONE, "Cycles stalled in the front end."},
    {"stalled_cycles_backend", TYPE_COUNTER, UNIT_NONE, "Cycles stalled in the back end."},
    {"ref_cpu_cycles", TYPE_COUNTER, UNIT_NONE, "Reference CPU cycles (not scaled by frequency)."},
    {"cpu_clock", TYPE_COUNTER, UNIT_SECONDS, "CPU time by the cpu-clock software event."},
    {"task_clock", TYPE_COUNTER, UNIT_SECONDS, "CPU time by the task-clock software event."},
    {"page_faults", TYPE_COUNTER, UNIT_NONE, "Page faults."},
    {"context_switches", TYPE_COUNTER, UNIT_NONE, "Context switches."},
    {"cpu_migrations", TYPE_COUNTER, UNIT_NONE, "Migrations to another CPU."},
    {"page_faults_min", TYPE_COUNTER, UNIT_NONE, "Minor page faults."},
    {"page_faults_maj", TYPE_COUNTER, UNIT_NONE, "Major page faults."},
    {"alignment_faults", TYPE_COUNTER, UNIT_NONE, "Alignment faults."},
    {"emulation_faults", TYPE_COUNTER, UNIT_NONE, "Emulation faults."},
};

/* The families that are not events, in the order they are written. */
typedef enum {
    FAM_UP,
    FAM_SCRAPE_DURATION,
    FAM_SCRAPE_ERRORS,
    FAM_TIME_ENABLED,
    FAM_TIME_RUNNING,
    FAM_ENABLED_AT,
    FAM_RAW,
    FAM_EXPORTER_SOCKETS,
    FAM_EXPORTER_SCRAPES,
    FAM_EXPORTER_DURATION,
    FAM__LAST,
} FixedFamily;

static const struct {
    const char *name; /* without _total */
    MetricType type;
    MetricUnit unit;
    const char *help;
} fixed_families[] = {
    [FAM_UP] = {"qemu_perf_up", TYPE_GAUGE, UNIT_NONE,
                "1 if the VM's helper answered query-perf-events in time, else 0."},
    [FAM_SCRAPE_DURATION] = {"qemu_perf_scrape_duration_seconds", TYPE_GAUGE, UNIT_SECONDS,
                             "Time the VM's helper took to answer this scrape (or until the exporter gave up)."},
    [FAM_SCRAPE_ERRORS] = {"qemu_perf_scrape_errors", TYPE_COUNTER, UNIT_NONE,
                           "Scrapes of this socket that failed (timeout, connection or error reply)."},
    [FAM_TIME_ENABLED] = {"qemu_perf_time_enabled_seconds", TYPE_COUNTER, UNIT_SECONDS,
                          "Time the event's counters were enabled, summed over threads."},
    [FAM_TIME_RUNNING] = {"qemu_perf_time_running_seconds", TYPE_COUNTER, UNIT_SECONDS,
                          "Time the event's counters were on the PMU, summed over threads; below time enabled when multiplexed."},
    [FAM_ENABLED_AT] = {"qemu_perf_enabled_timestamp_seconds", TYPE_GAUGE, UNIT_SECONDS,
                        "When the event's counters started counting (Unix time); a change means they were reset."},
    [FAM_RAW] = {"qemu_perf_raw", TYPE_COUNTER, UNIT_NONE,
                 "Count of a libpfm4 event, by its event string."},
    [FAM_EXPORTER_SOCKETS] = {"qemu_perf_exporter_sockets", TYPE_GAUGE, UNIT_NONE,
                              "Helper sockets matched by the --socket globs at this scrape."},
    [FAM_EXPORTER_SCRAPES] = {"qemu_perf_exporter_scrapes", TYPE_COUNTER, UNIT_NONE,
                              "Scrapes served since the exporter started, by exposition format."},
    [FAM_EXPORTER_DURATION] = {"qemu_perf_exporter_scrape_duration_seconds", TYPE_GAUGE, UNIT_SECONDS,
                               "Time this scrape took, from the request to the response."},
};
G_STATIC_ASSERT(G_N_ELEMENTS(fixed_families) == FAM__LAST);

#define N_EVENT_FAMILIES G_N_ELEMENTS(event_families)

typedef struct {
    char *name; /* family name, without _total */
    MetricType type;
    MetricUnit unit;
    const char *help;
    GString *samples; /* "{labels} value\n" lines */
} Family;

struct QpeExposition {
    Family fixed[FAM__LAST];
    Family events[N_EVENT_FAMILIES];
    GHashTable *identities; /* "domain\nuuid" of the VMs added */
};

static void
family_init(Family *f, const char *name, MetricType type, MetricUnit unit,
            const char *help)
{
    f->name = g_strdup(name);
    f->type = type;
    f->unit = unit;
    f->help = help;
    f->samples = g_string_new(NULL);
}

QpeExposition *
qpe_exposition_new(void)
{
    QpeExposition *e = g_new0(QpeExposition, 1);

    for (guint i = 0; i < FAM__LAST; i++) {
        family_init(&e->fixed[i], fixed_families[i].name,
                    fixed_families[i].type, fixed_families[i].unit,
                    fixed_families[i].help);
    }
    for (guint i = 0; i < N_EVENT_FAMILIES; i++) {
        const char *unit = unit_names[event_families[i].unit];
        g_autofree char *name =
            g_strconcat("qemu_perf_", event_families[i].event,
                        unit != NULL ? "_" : "", unit, NULL);
        family_init(&e->events[i], name, event_families[i].type,
                    event_families[i].unit, event_families[i].help);
    }
    e->identities = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          NULL);
    return e;
}

void
qpe_exposition_free(QpeExposition *e)
{
    if (e == NULL) {
        return;
    }
    for (guint i = 0; i < FAM__LAST; i++) {
        g_free(e->fixed[i].name);
        g_string_free(e->fixed[i].samples, TRUE);
    }
    for (guint i = 0; i < N_EVENT_FAMILIES; i++) {
        g_free(e->events[i].name);
        g_string_free(e->events[i].samples, TRUE);
    }
    g_hash_table_unref(e->identities);
    g_free(e);
}

/* A label value: valid UTF-8 (QEMU's modified UTF-8 and anything a guest
 * name holds included), with \ " and newline escaped. */
static void
append_label(GString *out, gboolean first, const char *name,
             const char *value)
{
    g_autofree char *valid = g_utf8_make_valid(value, -1);

    g_string_append(out, first ? "{" : ",");
    g_string_append(out, name);
    g_string_append(out, "=\"");
    for (const char *p = valid; *p != '\0'; p++) {
        switch (*p) {
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        default:
            g_string_append_c(out, *p);
        }
    }
    g_string_append_c(out, '"');
}

static void
append_vm_labels(GString *out, const QpeVmReport *vm)
{
    append_label(out, TRUE, "domain", vm->domain);
    append_label(out, FALSE, "uuid", vm->uuid);
}

static void
end_u64(GString *out, guint64 v)
{
    g_string_append_printf(out, "} %" G_GUINT64_FORMAT "\n", v);
}

static void
end_ns_as_seconds(GString *out, guint64 ns)
{
    g_string_append_printf(out, "} %" G_GUINT64_FORMAT ".%09u\n",
                           ns / G_GUINT64_CONSTANT(1000000000),
                           (guint)(ns % G_GUINT64_CONSTANT(1000000000)));
}

static void
end_us_as_seconds(GString *out, gint64 us)
{
    if (us < 0) {
        us = 0;
    }
    g_string_append_printf(out, "} %" G_GINT64_FORMAT ".%06u\n",
                           us / G_USEC_PER_SEC, (guint)(us % G_USEC_PER_SEC));
}

static void
end_value(GString *out, MetricUnit unit, guint64 v)
{
    if (unit == UNIT_SECONDS) {
        end_ns_as_seconds(out, v);
    } else {
        end_u64(out, v);
    }
}

static gint
event_family_index(const char *event)
{
    for (guint i = 0; i < N_EVENT_FAMILIES; i++) {
        if (strcmp(event_families[i].event, event) == 0) {
            return (gint)i;
        }
    }
    return -1;
}

/* One event of one VM: a series per part, or one for the whole VM. */
static void
add_event(QpeExposition *e, const QpeVmReport *vm, const QpeEvent *ev)
{
    gint idx = event_family_index(ev->name);
    MetricUnit unit = UNIT_NONE;
    Family *f;

    if (idx >= 0 &&
        strcmp(unit_reply_names[event_families[idx].unit], ev->unit) == 0) {
        f = &e->events[idx];
        unit = f->unit;
    } else {
        /* A libpfm4 event, or a known name in a unit this exporter does
         * not expect: exported as it comes, under its own name. */
        f = &e->fixed[FAM_RAW];
    }

    if (ev->parts->len == 0) {
        append_vm_labels(f->samples, vm);
        if (f == &e->fixed[FAM_RAW]) {
            append_label(f->samples, FALSE, "event", ev->name);
        }
        end_value(f->samples, unit, ev->value);
    }
    for (guint i = 0; i < ev->parts->len; i++) {
        const QpePart *p = &g_array_index(ev->parts, QpePart, i);

        append_vm_labels(f->samples, vm);
        if (f == &e->fixed[FAM_RAW]) {
            append_label(f->samples, FALSE, "event", ev->name);
        }
        append_label(f->samples, FALSE, "kind", qpe_thread_kind_name(p->kind));
        if (p->kind == QPE_KIND_VCPU) {
            append_label(f->samples, FALSE, "vcpu", p->key);
        } else if (p->kind == QPE_KIND_IOTHREAD) {
            append_label(f->samples, FALSE, "iothread", p->key);
        }
        end_value(f->samples, unit, p->value);
    }

    if (ev->has_times) {
        GString *en = e->fixed[FAM_TIME_ENABLED].samples;
        GString *run = e->fixed[FAM_TIME_RUNNING].samples;

        append_vm_labels(en, vm);
        append_label(en, FALSE, "event", ev->name);
        end_ns_as_seconds(en, ev->time_enabled);
        append_vm_labels(run, vm);
        append_label(run, FALSE, "event", ev->name);
        end_ns_as_seconds(run, ev->time_running);
    }
    if (ev->has_enabled_at) {
        GString *at = e->fixed[FAM_ENABLED_AT].samples;

        append_vm_labels(at, vm);
        append_label(at, FALSE, "event", ev->name);
        end_us_as_seconds(at, ev->enabled_at_us);
    }
}

gboolean
qpe_exposition_add_vm(QpeExposition *e, const QpeVmReport *vm)
{
    g_autofree char *identity = g_strconcat(vm->domain, "\n", vm->uuid, NULL);
    /* Only a VM that answered claims its identity: a stale socket that
     * still carries a VM's name must not hide the VM's live one. */
    gboolean up = vm->up && vm->reading != NULL;
    gboolean unique = !up || !g_hash_table_contains(e->identities, identity);
    GString *s;

    s = e->fixed[FAM_UP].samples;
    append_vm_labels(s, vm);
    append_label(s, FALSE, "socket", vm->socket);
    end_u64(s, up && unique ? 1 : 0);

    s = e->fixed[FAM_SCRAPE_DURATION].samples;
    append_vm_labels(s, vm);
    append_label(s, FALSE, "socket", vm->socket);
    end_us_as_seconds(s, vm->duration_us);

    s = e->fixed[FAM_SCRAPE_ERRORS].samples;
    append_vm_labels(s, vm);
    append_label(s, FALSE, "socket", vm->socket);
    end_u64(s, vm->errors_total);

    if (!up || !unique) {
        return unique;
    }
    g_hash_table_add(e->identities, g_steal_pointer(&identity));
    for (guint i = 0; i < vm->reading->events->len; i++) {
        add_event(e, vm, vm->reading->events->pdata[i]);
    }
    return TRUE;
}

void
qpe_exposition_add_exporter(QpeExposition *e, guint n_sockets,
                            const guint64 *scrapes_total, gint64 duration_us)
{
    g_string_append_printf(e->fixed[FAM_EXPORTER_SOCKETS].samples, " %u\n",
                           n_sockets);
    for (guint f = 0; f < QPE_FORMAT__LAST; f++) {
        GString *s = e->fixed[FAM_EXPORTER_SCRAPES].samples;
        append_label(s, TRUE, "format", qpe_format_name(f));
        end_u64(s, scrapes_total[f]);
    }
    if (duration_us < 0) {
        duration_us = 0;
    }
    g_string_append_printf(e->fixed[FAM_EXPORTER_DURATION].samples,
                           " %" G_GINT64_FORMAT ".%06u\n",
                           duration_us / G_USEC_PER_SEC,
                           (guint)(duration_us % G_USEC_PER_SEC));
}

static const char *const content_types[] = {
    [QPE_FORMAT_PROMETHEUS] = "text/plain; version=0.0.4; charset=utf-8",
    [QPE_FORMAT_OPENMETRICS] =
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
};
G_STATIC_ASSERT(G_N_ELEMENTS(content_types) == QPE_FORMAT__LAST);

static const char *const format_names[] = {
    [QPE_FORMAT_PROMETHEUS] = "prometheus-0.0.4",
    [QPE_FORMAT_OPENMETRICS] = "openmetrics-1.0.0",
};
G_STATIC_ASSERT(G_N_ELEMENTS(format_names) == QPE_FORMAT__LAST);

const char *
qpe_format_name(QpeFormat format)
{
    return format_names[format < QPE_FORMAT__LAST ? format
                                                  : QPE_FORMAT_PROMETHEUS];
}

const char *
qpe_format_content_type(QpeFormat format)
{
    return content_types[format < QPE_FORMAT__LAST ? format
                                                   : QPE_FORMAT_PROMETHEUS];
}

static void
render_family(GString *out, const Family *f, QpeFormat format)
{
    const char *unit = unit_names[f->unit];
    const char *type = f->type == TYPE_COUNTER ? "counter" : "gauge";
    const char *suffix = f->type == TYPE_COUNTER ? "_total" : "";
    const char *meta_suffix = format == QPE_FORMAT_OPENMETRICS ? "" : suffix;
    const char *line = f->samples->str;

    if (f->samples->len == 0) {
        return;
    }
    g_string_append_printf(out, "# HELP %s%s %s\n", f->name, meta_suffix,
                           f->help);
    g_string_append_printf(out, "# TYPE %s%s %s\n", f->name, meta_suffix,
                           type);
    if (format == QPE_FORMAT_OPENMETRICS && unit != NULL) {
        g_string_append_printf(out, "# UNIT %s %s\n", f->name, unit);
    }
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        gsize len = nl != NULL ? (gsize)(nl - line) + 1 : strlen(line);

        g_string_append(out, f->name);
        g_string_append(out, suffix);
        g_string_append_len(out, line, (gssize)len);
        line += len;
    }
}

GString *
qpe_exposition_render(const QpeExposition *e, QpeFormat format)
{
    GString *out = g_string_sized_new(4096);

    for (guint i = 0; i < N_EVENT_FAMILIES; i++) {
        render_family(out, &e->events[i], format);
    }
    for (guint i = 0; i < FAM__LAST; i++) {
        render_family(out, &e->fixed[i], format);
    }
    if (format == QPE_FORMAT_OPENMETRICS) {
        g_string_append(out, "# EOF\n");
    }
    return out;
}

/* ------------------------------------------------------------ Accept */

typedef struct {
    const char *type; /* media type, lower case */
    const char *version; /* the one version this exporter writes */
    QpeFormat format;
} MediaType;

static const MediaType media_types[] = {
    {"application/openmetrics-text", "1.0.0", QPE_FORMAT_OPENMETRICS},
    {"text/plain", "0.0.4", QPE_FORMAT_PROMETHEUS},
    {"text/*", NULL, QPE_FORMAT_PROMETHEUS},
    {"*/*", NULL, QPE_FORMAT_PROMETHEUS},
};

/* The q of one media range for @format, or -1 if it names no format this
 * exporter writes. */
static double
media_range_quality(const char *range, QpeFormat *format)
{
    g_auto(GStrv) params = g_strsplit(range, ";", 16);
    g_autofree char *type = NULL;
    const char *version = NULL;
    double q = 1.0;

    if (params[0] == NULL) { /* an empty range: "a,,b" */
        return -1;
    }
    type = g_ascii_strdown(g_strstrip(params[0]), -1);

    for (guint i = 1; params[i] != NULL; i++) {
        char *p = g_strstrip(params[i]);
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        g_strstrip(p);
        char *value = g_strstrip(eq + 1);
        if (g_ascii_strcasecmp(p, "q") == 0) {
            q = g_ascii_strtod(value, NULL);
        } else if (g_ascii_strcasecmp(p, "version") == 0) {
            version = value;
        }
    }
    for (guint i = 0; i < G_N_ELEMENTS(media_types); i++) {
        const MediaType *m = &media_types[i];
        if (strcmp(m->type, type) != 0) {
            continue;
        }
        if (version != NULL && m->version != NULL &&
            strcmp(version, m->version) != 0) {
            return -1;
        }
        *format = m->format;
        return q;
    }
    return -1;
}

QpeFormat
qpe_format_from_accept(const char *accept)
{
    QpeFormat best = QPE_FORMAT_PROMETHEUS;
    double best_q = 0;

    if (accept == NULL) {
        return best;
    }
    g_auto(GStrv) ranges = g_strsplit(accept, ",", 64);
    for (guint i = 0; ranges[i] != NULL; i++) {
        QpeFormat f = QPE_FORMAT_PROMETHEUS;
        double q = media_range_quality(ranges[i], &f);
        if (q > best_q) {
            best_q = q;
            best = f;
        }
    }
    return best;
}
