/*
 * sample.c: read query-perf-events, and subtract two readings
 *
 * Only the fields qemu-perf-stat needs are read (name, enabled, value,
 * unit, time-enabled, time-running, threads[].thread-id/kind/value/
 * cpu-index/id); anything else in the reply is ignored, so the helper may
 * grow fields.  A total that went down, or whose time-enabled went down,
 * was disabled and enabled again by someone between the two samples: the
 * interval then counts from that new start.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "sample.h"

#include <string.h>
#include <time.h>

static gint64
timespec_ns(const struct timespec *t)
{
    return (gint64)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void
stat_row_free(StatRow *row)
{
    g_free(row->key);
    g_free(row->name);
    g_free(row->tid);
    g_free(row);
}

static StatRow *
stat_row_new(const char *name, const char *tid)
{
    StatRow *row = g_new0(StatRow, 1);

    row->name = g_strdup(name);
    row->tid = g_strdup(tid ? tid : "");
    row->key = tid ? g_strdup_printf("%s-%s", name, tid) : g_strdup(name);
    return row;
}

static StatRow *
stat_row_copy(const StatRow *row)
{
    return stat_row_new(row->name, row->tid[0] ? row->tid : NULL);
}

/* The row a thread of the reply belongs to; NULL for "others". */
static StatRow *
thread_row(const QmpJson *t)
{
    const char *kind = qmp_json_get_string(qmp_json_object_get(t, "kind"));
    const QmpJson *tid_v = qmp_json_object_get(t, "thread-id");
    g_autofree char *tid = NULL;
    g_autofree char *name = NULL;

    if (!kind || !tid_v || tid_v->type != QMP_JSON_INT) {
        return NULL;
    }
    tid = g_strdup_printf("%" G_GINT64_FORMAT, tid_v->i);
    if (strcmp(kind, "main-loop") == 0) {
        name = g_strdup("main loop");
    } else if (strcmp(kind, "vcpu") == 0) {
        const QmpJson *idx = qmp_json_object_get(t, "cpu-index");

        if (!idx || idx->type != QMP_JSON_INT) {
            return NULL;
        }
        name = g_strdup_printf("vCPU %" G_GINT64_FORMAT, idx->i);
    } else if (strcmp(kind, "iothread") == 0) {
        const char *id = qmp_json_get_string(qmp_json_object_get(t, "id"));

        name = g_strdup_printf("iothread %s", id ? id : "?");
    } else {
        return NULL;
    }
    return stat_row_new(name, tid);
}

static void
read_threads(StatSample *s, StatReading *r, const QmpJson *threads)
{
    r->rows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    if (!threads || threads->type != QMP_JSON_ARRAY) {
        return;
    }
    for (guint i = 0; i < threads->elements->len; i++) {
        const QmpJson *t = g_ptr_array_index(threads->elements, i);
        StatRow *row = thread_row(t);
        guint64 *v;

        if (!row) {
            continue;
        }
        v = g_new(guint64, 1);
        *v = qmp_json_get_u64(qmp_json_object_get(t, "value"), 0);
        g_hash_table_replace(r->rows, g_strdup(row->key), v);
        if (!g_hash_table_contains(s->row_info, row->key)) {
            g_hash_table_insert(s->row_info, row->key, row);
        } else {
            stat_row_free(row);
        }
    }
}

static void
read_event(StatSample *s, StatReading *r, const QmpJson *info,
           gboolean per_thread)
{
    const QmpJson *ena = qmp_json_object_get(info, "time-enabled");
    const QmpJson *run = qmp_json_object_get(info, "time-running");
    const char *unit = qmp_json_get_string(qmp_json_object_get(info, "unit"));

    r->listed = TRUE;
    r->enabled = qmp_json_get_bool(qmp_json_object_get(info, "enabled"), FALSE);
    r->value = qmp_json_get_u64(qmp_json_object_get(info, "value"), 0);
    r->has_times = ena && run;
    r->time_enabled = qmp_json_get_u64(ena, 0);
    r->time_running = qmp_json_get_u64(run, 0);
    g_free(r->unit);
    r->unit = g_strdup(unit ? unit : "count");
    if (per_thread) {
        read_threads(s, r, qmp_json_object_get(info, "threads"));
    }
}

StatSample *
stat_sample_take(QmpClient *c, const GPtrArray *names, gboolean per_thread,
                 GError **error)
{
    g_autoptr(QmpJson) args = qmp_json_new(QMP_JSON_OBJECT);
    g_autoptr(QmpJson) list = qmp_json_new(QMP_JSON_ARRAY);
    g_autoptr(QmpJson) reply = NULL;
    g_autoptr(StatSample) s = g_new0(StatSample, 1);
    struct timespec t0, t1;

    for (guint i = 0; i < names->len; i++) {
        const StatEventName *e = g_ptr_array_index(names, i);

        qmp_json_array_append(list, qmp_json_new_string(e->request));
    }
    qmp_json_object_set(args, "names", g_steal_pointer(&list));
    if (per_thread) {
        qmp_json_object_set(args, "per-thread", qmp_json_new_bool(TRUE));
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reply = qmp_client_execute(c, "query-perf-events", g_steal_pointer(&args),
                               error);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!reply) {
        return NULL;
    }
    s->t_ns = (timespec_ns(&t0) + timespec_ns(&t1)) / 2;
    s->n = names->len;
    s->readings = g_new0(StatReading, names->len);
    s->row_info = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                        (GDestroyNotify)stat_row_free);
    if (reply->type != QMP_JSON_ARRAY) {
        return g_steal_pointer(&s);
    }
    for (guint i = 0; i < reply->elements->len; i++) {
        const QmpJson *info = g_ptr_array_index(reply->elements, i);
        const char *name =
            qmp_json_get_string(qmp_json_object_get(info, "name"));

        for (guint j = 0; name && j < names->len; j++) {
            const StatEventName *e = g_ptr_array_index(names, j);

            if (strcmp(e->request, name) == 0) {
                read_event(s, &s->readings[j], info, per_thread);
            }
        }
    }
    return g_steal_pointer(&s);
}

void
stat_sample_free(StatSample *s)
{
    if (!s) {
        return;
    }
    for (guint i = 0; i < s->n; i++) {
        g_free(s->readings[i].unit);
        if (s->readings[i].rows) {
            g_hash_table_unref(s->readings[i].rows);
        }
    }
    g_free(s->readings);
    if (s->row_info) {
        g_hash_table_unref(s->row_info);
    }
    g_free(s);
}

/* Whether @cur counts from a new start since @prev (or @prev is none). */
static gboolean
restarted(const StatReading *prev, const StatReading *cur)
{
    return !prev->listed || !prev->enabled || cur->value < prev->value ||
           (cur->has_times && cur->time_enabled < prev->time_enabled);
}

static void
add_row(StatReport *r, GHashTable *seen, const StatRow *row)
{
    if (!g_hash_table_contains(seen, row->key)) {
        StatRow *copy = stat_row_copy(row);

        g_hash_table_add(seen, copy->key);
        g_ptr_array_add(r->rows, copy);
    }
}

static void
set_row(StatDelta *d, const char *key, double v)
{
    double *p = g_new(double, 1);

    *p = v;
    g_hash_table_replace(d->rows, g_strdup(key), p);
}

/* Per-thread rows of one event: each labelled thread's difference, and
 * "others" the rest of the total's. */
static void
delta_rows(StatReport *r, GHashTable *seen, const StatSample *cur, StatDelta *d,
           const StatReading *p, const StatReading *c, gboolean fresh)
{
    GHashTableIter it;
    gpointer key, value;
    double labelled = 0;
    StatRow others = {
        .key = STAT_ROW_OTHERS, .name = STAT_ROW_OTHERS, .tid = ""};

    d->rows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    if (!c->rows || !c->has_times) {
        /* resctrl: one group for all threads */
        StatRow all = {.key = STAT_ROW_ALL, .name = STAT_ROW_ALL, .tid = ""};

        add_row(r, seen, &all);
        set_row(d, STAT_ROW_ALL, d->value);
        return;
    }
    g_hash_table_iter_init(&it, c->rows);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        guint64 now = *(guint64 *)value;
        guint64 *before =
            fresh || !p->rows ? NULL : g_hash_table_lookup(p->rows, key);
        /* a thread new in this interval counts from its start */
        guint64 diff = before && *before <= now ? now - *before : now;

        labelled += (double)diff;
        set_row(d, key, (double)diff);
        add_row(r, seen, g_hash_table_lookup(cur->row_info, key));
    }
    add_row(r, seen, &others);
    set_row(d, STAT_ROW_OTHERS, MAX(0.0, d->value - labelled));
}

StatReport *
stat_report_new(const StatSample *first, const StatSample *prev,
                const StatSample *cur, const GPtrArray *names)
{
    StatReport *r = g_new0(StatReport, 1);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    r->wall_ns = (double)(cur->t_ns - prev->t_ns);
    r->since_ns = (double)(cur->t_ns - first->t_ns);
    r->n = cur->n;
    r->deltas = g_new0(StatDelta, cur->n);
    r->rows = g_ptr_array_new_with_free_func((GDestroyNotify)stat_row_free);
    for (guint i = 0; i < cur->n; i++) {
        const StatEventName *e = g_ptr_array_index(names, i);
        const StatReading *p = &prev->readings[i];
        const StatReading *c = &cur->readings[i];
        StatDelta *d = &r->deltas[i];
        gboolean fresh = restarted(p, c);

        d->unit = c->unit ? c->unit : "count";
        d->gauge = e->kind && e->kind->gauge;
        if (!c->listed || !c->enabled) {
            continue;
        }
        if (d->gauge) {
            d->value = (double)c->value;
        } else {
            d->value = (double)(fresh ? c->value : c->value - p->value);
        }
        if (c->has_times) {
            d->ena =
                fresh ? c->time_enabled : c->time_enabled - p->time_enabled;
            d->run = fresh || c->time_running < p->time_running
                         ? c->time_running
                         : c->time_running - p->time_running;
            d->counted = d->run > 0 && d->ena > 0;
        } else {
            d->counted = TRUE;
        }
        if (c->rows) {
            delta_rows(r, seen, cur, d, p, c, fresh);
        }
    }
    return r;
}

void
stat_report_free(StatReport *r)
{
    if (!r) {
        return;
    }
    for (guint i = 0; i < r->n; i++) {
        if (r->deltas[i].rows) {
            g_hash_table_unref(r->deltas[i].rows);
        }
    }
    g_free(r->deltas);
    g_ptr_array_unref(r->rows);
    g_free(r);
}

double
stat_report_row_value(const StatReport *r, guint event_index, const char *key)
{
    const StatDelta *d = &r->deltas[event_index];
    const double *v;

    if (!key) {
        return d->value;
    }
    if (!d->rows) {
        return -1;
    }
    v = g_hash_table_lookup(d->rows, key);
    return v ? *v : -1;
}
