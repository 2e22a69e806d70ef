/*
 * reading.c: turn a query-perf-events reply into the series to export
 *
 * See reading.h.  The split into parts keeps one promise: the parts of an
 * event add up to its total, so `sum by (domain) (...)` over kind is the
 * VM's total and nothing is counted twice.  "other" is therefore computed
 * as the total minus the vCPU, iothread and main-loop parts, which also
 * covers what the per-thread list does not show on its own: threads that
 * exited (the reply's exited-value), threads of unknown kind, and any
 * value a newer helper folds into an entry under a field this exporter
 * does not know.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/reading.h"

#include <gio/gio.h>
#include <string.h>

static const char *const kind_names[] = {
    [QPE_KIND_VCPU] = "vcpu",
    [QPE_KIND_IOTHREAD] = "iothread",
    [QPE_KIND_MAIN_LOOP] = "main-loop",
    [QPE_KIND_OTHER] = "other",
};
G_STATIC_ASSERT(G_N_ELEMENTS(kind_names) == QPE_KIND__LAST);

const char *
qpe_thread_kind_name(QpeThreadKind kind)
{
    return kind < QPE_KIND__LAST ? kind_names[kind] : "other";
}

static gboolean
kind_from_name(const char *name, QpeThreadKind *kind)
{
    for (guint i = 0; i < QPE_KIND__LAST; i++) {
        if (strcmp(kind_names[i], name) == 0) {
            *kind = i;
            return TRUE;
        }
    }
    return FALSE;
}

/* A non-negative integer member, as QEMU's parser typed it. */
static gboolean
get_u64(const QmpJson *obj, const char *key, guint64 *out)
{
    const QmpJson *v = qmp_json_object_get(obj, key);

    if (v == NULL) {
        return FALSE;
    }
    if (v->type == QMP_JSON_UINT) {
        *out = v->u;
        return TRUE;
    }
    if (v->type == QMP_JSON_INT && v->i >= 0) {
        *out = (guint64)v->i;
        return TRUE;
    }
    return FALSE;
}

static const char *
get_str(const QmpJson *obj, const char *key)
{
    const QmpJson *v = qmp_json_object_get(obj, key);

    return v != NULL && v->type == QMP_JSON_STRING ? v->s : NULL;
}

/* A QMP timestamp {"seconds": S, "microseconds": U}, in µs. */
static gboolean
get_timestamp(const QmpJson *obj, const char *key, gint64 *us)
{
    const QmpJson *v = qmp_json_object_get(obj, key);
    guint64 sec, usec;

    if (v == NULL || v->type != QMP_JSON_OBJECT ||
        !get_u64(v, "seconds", &sec) || !get_u64(v, "microseconds", &usec) ||
        usec >= G_USEC_PER_SEC || sec > G_MAXINT64 / G_USEC_PER_SEC - 1) {
        return FALSE;
    }
    *us = (gint64)sec * G_USEC_PER_SEC + (gint64)usec;
    return TRUE;
}

static gboolean
get_true(const QmpJson *obj, const char *key)
{
    const QmpJson *v = qmp_json_object_get(obj, key);

    return v != NULL && v->type == QMP_JSON_BOOL && v->b;
}

static void
part_clear(gpointer p)
{
    g_free(((QpePart *)p)->key);
}

static void
event_free(gpointer p)
{
    QpeEvent *ev = p;

    g_free(ev->name);
    g_free(ev->unit);
    g_free(ev->source);
    g_array_unref(ev->parts);
    g_free(ev);
}

static gint
part_cmp(gconstpointer a, gconstpointer b)
{
    const QpePart *x = a, *y = b;

    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    if (x->key == NULL || y->key == NULL) {
        return (x->key != NULL) - (y->key != NULL);
    }
    /* vCPU indexes in numeric order, iothread ids by name. */
    if (x->kind == QPE_KIND_VCPU) {
        gsize lx = strlen(x->key), ly = strlen(y->key);
        if (lx != ly) {
            return lx < ly ? -1 : 1;
        }
    }
    return strcmp(x->key, y->key);
}

/*
 * The key of a thread's series, or FALSE when the thread belongs in
 * "other" (no kind, or a vCPU/iothread the helper could not label).
 */
static gboolean
thread_series(const QmpJson *t, QpeThreadKind *kind, char **key)
{
    const char *kind_name = get_str(t, "kind");
    const char *id;
    const QmpJson *idx;

    if (kind_name == NULL || !kind_from_name(kind_name, kind)) {
        return FALSE;
    }
    switch (*kind) {
    case QPE_KIND_VCPU:
        idx = qmp_json_object_get(t, "cpu-index");
        if (idx == NULL || idx->type != QMP_JSON_INT || idx->i < 0) {
            return FALSE;
        }
        *key = g_strdup_printf("%" G_GINT64_FORMAT, idx->i);
        return TRUE;
    case QPE_KIND_IOTHREAD:
        id = get_str(t, "id");
        if (id == NULL) {
            return FALSE;
        }
        *key = g_strdup(id);
        return TRUE;
    case QPE_KIND_MAIN_LOOP:
        *key = NULL;
        return TRUE;
    default:
        return FALSE;
    }
}

static void
split_threads(QpeEvent *ev, const QmpJson *threads)
{
    g_autoptr(GHashTable) index =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    guint64 named = 0;
    QpePart other = {QPE_KIND_OTHER, NULL, 0};

    for (guint i = 0; i < threads->elements->len; i++) {
        const QmpJson *t = threads->elements->pdata[i];
        QpeThreadKind kind;
        char *key = NULL;
        guint64 value;
        gpointer slot;

        if (t->type != QMP_JSON_OBJECT || !get_u64(t, "value", &value) ||
            !thread_series(t, &kind, &key)) {
            continue;
        }
        g_autofree char *hkey =
            g_strdup_printf("%d:%s", kind, key != NULL ? key : "");
        if (g_hash_table_lookup_extended(index, hkey, NULL, &slot)) {
            g_array_index(ev->parts, QpePart, GPOINTER_TO_UINT(slot))
                .value += value;
            g_free(key);
        } else {
            QpePart p = {kind, key, value};
            g_hash_table_insert(index, g_steal_pointer(&hkey),
                                GUINT_TO_POINTER(ev->parts->len));
            g_array_append_val(ev->parts, p);
        }
        named += value;
    }
    /* Scaling rounds per thread, so the named parts may exceed the total
     * by a little; "other" never goes below zero. */
    other.value = ev->value > named ? ev->value - named : 0;
    g_array_append_val(ev->parts, other);
    g_array_sort(ev->parts, part_cmp);
}

static QpeEvent *
event_from_info(const QmpJson *info)
{
    const char *name, *unit, *source;
    const QmpJson *threads;
    QpeEvent *ev;
    guint64 value;

    if (info->type != QMP_JSON_OBJECT || !get_true(info, "enabled") ||
        !get_u64(info, "value", &value)) {
        return NULL;
    }
    name = get_str(info, "name");
    if (name == NULL || *name == '\0') {
        return NULL;
    }
    unit = get_str(info, "unit");
    source = get_str(info, "source");

    ev = g_new0(QpeEvent, 1);
    ev->name = g_strdup(name);
    ev->unit = g_strdup(unit != NULL ? unit : "count");
    ev->source = g_strdup(source != NULL ? source : "perf");
    ev->value = value;
    ev->parts = g_array_new(FALSE, FALSE, sizeof(QpePart));
    g_array_set_clear_func(ev->parts, part_clear);
    ev->has_times = get_u64(info, "time-enabled", &ev->time_enabled) &&
                    get_u64(info, "time-running", &ev->time_running);
    /* A newer helper says "unscheduled" when a counter never got on a
     * PMU; with no running time at all the value is no measurement (perf
     * stat's "<not counted>"), and a 0 must not be exported as one. */
    if (get_true(info, "unscheduled") && ev->has_times &&
        ev->time_running == 0) {
        event_free(ev);
        return NULL;
    }
    ev->has_enabled_at = get_timestamp(info, "enabled-at", &ev->enabled_at_us);

    threads = qmp_json_object_get(info, "threads");
    if (threads != NULL && threads->type == QMP_JSON_ARRAY) {
        split_threads(ev, threads);
    }
    return ev;
}

QpeReading *
qpe_reading_from_reply(const QmpJson *ret, GError **error)
{
    QpeReading *r;

    if (ret == NULL || ret->type != QMP_JSON_ARRAY) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "query-perf-events did not return an array");
        return NULL;
    }
    r = g_rc_box_new0(QpeReading);
    r->events = g_ptr_array_new_with_free_func(event_free);
    for (guint i = 0; i < ret->elements->len; i++) {
        QpeEvent *ev = event_from_info(ret->elements->pdata[i]);
        if (ev != NULL) {
            g_ptr_array_add(r->events, ev);
        }
    }
    return r;
}

QpeReading *
qpe_reading_ref(QpeReading *r)
{
    return g_rc_box_acquire(r);
}

static void
reading_clear(gpointer p)
{
    g_ptr_array_unref(((QpeReading *)p)->events);
}

void
qpe_reading_unref(QpeReading *r)
{
    if (r != NULL) {
        g_rc_box_release_full(r, reading_clear);
    }
}
