/*
 * perf-set.c: the perf events enabled for one VM
 *
 * Enabling prepares every new event on every current thread before the
 * set changes, so a request that fails half-way (a hardware event on a
 * host without PMU, a permission) leaves the set exactly as it was.
 * Threads come and go (vCPU hotplug, iothreads, worker pools): rescan
 * attaches the new ones and retires the gone ones, keeping their final
 * count.  A thread id that exits and is reused between two rescans keeps
 * the old counter; rescanning often keeps that window small.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/perf-set.h"
#include "helper/threads.h"
#include "qmp/qmp-error.h"

#include <string.h>
#include <sys/resource.h>

/* Descriptors kept for everything but perf (qph_perf_set_check_fds()). */
#define QPH_PERF_SET_FD_RESERVE 256

struct _QphPerfSet {
    pid_t pid;
    GPtrArray *events;   /* QphPerfEvent, in the order they were enabled */
    GHashTable *by_name; /* name (the event's own string) -> QphPerfEvent */
};

/**
 * qph_perf_set_new: an empty set for process @pid; opens nothing.
 */
QphPerfSet *
qph_perf_set_new(pid_t pid)
{
    QphPerfSet *set = g_new0(QphPerfSet, 1);

    set->pid = pid;
    set->events =
        g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
    set->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    return set;
}

/**
 * qph_perf_set_free: close every fd and free @set (NULL is fine).
 */
void
qph_perf_set_free(QphPerfSet *set)
{
    if (!set) {
        return;
    }
    g_hash_table_unref(set->by_name);
    g_ptr_array_unref(set->events);
    g_free(set);
}

pid_t
qph_perf_set_get_pid(const QphPerfSet *set)
{
    return set->pid;
}

guint
qph_perf_set_get_n_events(const QphPerfSet *set)
{
    return set->events->len;
}

/* The @i-th enabled event, or NULL when out of range. */
const QphPerfEvent *
qph_perf_set_get_event(const QphPerfSet *set, guint i)
{
    if (i >= set->events->len) {
        return NULL;
    }
    return g_ptr_array_index(set->events, i);
}

/* Whether @name (spelled as it was enabled) is enabled. */
gboolean
qph_perf_set_is_enabled(const QphPerfSet *set, const char *name)
{
    return name && g_hash_table_contains(set->by_name, name);
}

/**
 * qph_perf_set_count_fds: perf fds the set holds (0 when nothing is
 * enabled).
 */
guint
qph_perf_set_count_fds(const QphPerfSet *set)
{
    guint n = 0;

    for (guint i = 0; i < set->events->len; i++) {
        n += qph_perf_event_get_n_threads(g_ptr_array_index(set->events, i));
    }
    return n;
}

/*
 * The entries of @changes that count: for each name, the index of its last
 * entry (the last one wins).  One pass with a hash table, so a request's
 * cost is linear in its entries, whatever they repeat.
 */
static GHashTable *
qph_perf_set_last_entries(const QphPerfChange *changes, guint n)
{
    GHashTable *last = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < n; i++) {
        g_hash_table_insert(last, (gpointer)changes[i].name,
                            GUINT_TO_POINTER(i));
    }
    return last;
}

/* Whether a later entry of @changes names the same event as entry @i. */
static gboolean
qph_perf_set_overridden(GHashTable *last, const QphPerfChange *changes, guint i)
{
    return GPOINTER_TO_UINT(g_hash_table_lookup(last, changes[i].name)) != i;
}

/*
 * Whether the set stays within QPH_PERF_SET_MAX_EVENTS after @changes: one
 * request is bounded by its entries, the set by this, so every query's
 * reply and every rescan are bounded too.
 */
static gboolean
qph_perf_set_check_size(const QphPerfSet *set, const QphPerfChange *changes,
                        guint n, GHashTable *last, GError **error)
{
    guint after = set->events->len;

    for (guint i = 0; i < n; i++) {
        gboolean enabled;

        if (qph_perf_set_overridden(last, changes, i)) {
            continue;
        }
        enabled = g_hash_table_contains(set->by_name, changes[i].name);
        if (changes[i].enable && !enabled) {
            after++;
        } else if (!changes[i].enable && enabled) {
            after--;
        }
    }
    if (after > QPH_PERF_SET_MAX_EVENTS) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot enable %u more perf events: %u are enabled, and "
                    "the helper counts at most %d at once.",
                    after - set->events->len, set->events->len,
                    QPH_PERF_SET_MAX_EVENTS);
        return FALSE;
    }
    return TRUE;
}

/*
 * Whether opening @prepared on @n_threads threads leaves the helper the
 * descriptors it keeps for everything else (clients, QEMU's monitor,
 * descriptors in passing): the last QPH_PERF_SET_FD_RESERVE of its
 * RLIMIT_NOFILE, or a quarter of a smaller limit.  Without it, a client
 * could enable events until accept() fails for every other client.
 */
static gboolean
qph_perf_set_check_fds(const QphPerfSet *set, GPtrArray *prepared,
                       guint n_threads, GError **error)
{
    struct rlimit lim;
    guint64 limit, reserve, needed;

    if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur == RLIM_INFINITY) {
        return TRUE;
    }
    limit = lim.rlim_cur;
    reserve = MIN((guint64)QPH_PERF_SET_FD_RESERVE, limit / 4);
    needed = (guint64)prepared->len * n_threads;
    if (qph_perf_set_count_fds(set) + needed + reserve <= limit) {
        return TRUE;
    }
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Cannot enable perf event '%s': it needs %" G_GUINT64_FORMAT
                " more descriptors (one per event and thread), %u are open "
                "for perf, and the helper keeps the last %" G_GUINT64_FORMAT
                " of its %" G_GUINT64_FORMAT " (RLIMIT_NOFILE) for clients.",
                qph_perf_event_get_name(g_ptr_array_index(prepared, 0)), needed,
                qph_perf_set_count_fds(set), reserve, limit);
    return FALSE;
}

/*
 * Attach @ev to every thread in @tids.  A thread that exited meanwhile is
 * skipped: it is not a failure of the request.
 */
static gboolean
qph_perf_set_attach_all(QphPerfSet *set, QphPerfEvent *ev, GArray *tids,
                        GError **error)
{
    for (guint i = 0; i < tids->len; i++) {
        pid_t tid = g_array_index(tids, pid_t, i);
        g_autoptr(GError) local = NULL;

        if (qph_perf_event_attach(ev, tid, &local)) {
            continue;
        }
        if (!qph_threads_exists(set->pid, tid)) {
            continue;
        }
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    return TRUE;
}

/**
 * qph_perf_set_update: enable and disable events, all or nothing.
 *
 * When several entries name the same event the last one wins.  Every
 * newly enabled event is opened on every current thread first; if any of
 * that fails, everything opened is closed, the set is unchanged and
 * @error names the event and why.  Disabling closes the event's fds;
 * enabling an enabled event or disabling a disabled one does nothing.
 */
gboolean
qph_perf_set_update(QphPerfSet *set, const QphPerfChange *changes, guint n,
                    GError **error)
{
    g_autoptr(GPtrArray) prepared =
        g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
    g_autoptr(GArray) tids = NULL;
    g_autoptr(GHashTable) last = NULL;
    g_autoptr(GHashTable) drop = g_hash_table_new(NULL, NULL);

    for (guint i = 0; i < n; i++) {
        if (!changes[i].name) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Entry %u of the perf event change has no name.", i);
            return FALSE;
        }
    }
    last = qph_perf_set_last_entries(changes, n);
    if (!qph_perf_set_check_size(set, changes, n, last, error)) {
        return FALSE;
    }

    /* 1. Encode each newly enabled event (no fd yet). */
    for (guint i = 0; i < n; i++) {
        QphPerfEvent *ev;

        if (!changes[i].enable || qph_perf_set_overridden(last, changes, i) ||
            g_hash_table_contains(set->by_name, changes[i].name)) {
            continue;
        }
        ev = qph_perf_event_new(changes[i].name, error);
        if (!ev) {
            return FALSE;
        }
        g_ptr_array_add(prepared, ev);
    }

    /* 2. Open them on every current thread. */
    if (prepared->len > 0) {
        tids = qph_threads_list(set->pid, error);
        if (!tids) {
            g_prefix_error(
                error, "Cannot enable perf event '%s': ",
                qph_perf_event_get_name(g_ptr_array_index(prepared, 0)));
            return FALSE;
        }
        if (!qph_perf_set_check_fds(set, prepared, tids->len, error)) {
            return FALSE;
        }
    }
    for (guint i = 0; i < prepared->len; i++) {
        if (!qph_perf_set_attach_all(set, g_ptr_array_index(prepared, i), tids,
                                     error)) {
            return FALSE;
        }
    }

    /* 3. Nothing can fail from here on: commit.  Disabled events leave
     * in one pass that keeps the others' order. */
    for (guint i = 0; i < n; i++) {
        QphPerfEvent *ev;

        if (changes[i].enable || qph_perf_set_overridden(last, changes, i)) {
            continue;
        }
        ev = g_hash_table_lookup(set->by_name, changes[i].name);
        if (ev) {
            g_hash_table_remove(set->by_name, changes[i].name);
            g_hash_table_add(drop, ev);
        }
    }
    if (g_hash_table_size(drop) > 0) {
        GPtrArray *kept =
            g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);

        for (guint i = 0; i < set->events->len; i++) {
            QphPerfEvent *ev = g_ptr_array_index(set->events, i);

            if (g_hash_table_contains(drop, ev)) {
                qph_perf_event_free(ev);
            } else {
                g_ptr_array_add(kept, ev);
            }
        }
        g_ptr_array_set_free_func(set->events, NULL);
        g_ptr_array_unref(set->events);
        set->events = kept;
    }
    for (guint i = 0; i < prepared->len; i++) {
        QphPerfEvent *ev = g_ptr_array_index(prepared, i);

        g_hash_table_insert(set->by_name, (gpointer)qph_perf_event_get_name(ev),
                            ev);
        g_ptr_array_add(set->events, ev);
    }
    g_ptr_array_set_free_func(prepared, NULL);
    return TRUE;
}

/* Binary search in a sorted GArray of pid_t. */
static gboolean
qph_perf_set_tids_contain(GArray *tids, pid_t tid)
{
    guint lo = 0, hi = tids->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        pid_t t = g_array_index(tids, pid_t, mid);

        if (t == tid) {
            return TRUE;
        }
        if (t < tid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return FALSE;
}

/**
 * qph_perf_set_rescan: follow the process's threads.
 *
 * Retires (keeping the final count) every counted thread that is gone and
 * attaches every enabled event to every new thread; a thread is never
 * counted twice.  Not all-or-nothing: it does all it can and returns the
 * first failure in @error.  With nothing enabled it reads nothing.
 */
gboolean
qph_perf_set_rescan(QphPerfSet *set, GError **error)
{
    g_autoptr(GArray) tids = NULL;

    if (set->events->len == 0) {
        return TRUE;
    }
    tids = qph_threads_list(set->pid, error);
    return tids && qph_perf_set_rescan_tids(set, tids, error);
}

/**
 * qph_perf_set_rescan_tids - qph_perf_set_rescan() with the thread list
 * @set: the set
 * @tids: the process's threads, sorted, as qph_threads_list() gives them
 * @error: the first failure
 *
 * For a caller that lists the threads anyway (once per query, not twice).
 */
gboolean
qph_perf_set_rescan_tids(QphPerfSet *set, GArray *tids, GError **error)
{
    g_autoptr(GError) first = NULL;

    for (guint e = 0; e < set->events->len; e++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, e);
        guint i = qph_perf_event_get_n_threads(ev);

        while (i-- > 0) {
            pid_t tid = qph_perf_event_get_thread(ev, i);
            g_autoptr(GError) local = NULL;

            if (!qph_perf_set_tids_contain(tids, tid) &&
                !qph_perf_event_retire(ev, tid, &local) && !first) {
                first = g_steal_pointer(&local);
            }
        }
        for (i = 0; i < tids->len; i++) {
            pid_t tid = g_array_index(tids, pid_t, i);
            g_autoptr(GError) local = NULL;

            if (qph_perf_event_has_thread(ev, tid) ||
                qph_perf_event_attach(ev, tid, &local) ||
                !qph_threads_exists(set->pid, tid)) {
                continue;
            }
            if (!first) {
                first = g_steal_pointer(&local);
            }
        }
    }
    if (first) {
        g_propagate_error(error, g_steal_pointer(&first));
        return FALSE;
    }
    return TRUE;
}

#define QPH_ALIGN8(n) (((n) + 7) & ~(gsize)7)

/**
 * qph_perf_set_read: read every enabled event on every thread.
 *
 * One allocation for the whole result (free it with g_free() or
 * qph_perf_set_reading_free()), then one read() per (event, thread).
 * With nothing enabled the reading has no events.
 */
QphPerfSetReading *
qph_perf_set_read(QphPerfSet *set, GError **error)
{
    guint n_ev = set->events->len;
    gsize n_th = 0, strings = 0, off_ev, off_th, off_str, size;
    QphPerfSetReading *r;
    QphPerfThreadValue *th;
    char *str;

    for (guint e = 0; e < n_ev; e++) {
        const QphPerfEvent *ev = g_ptr_array_index(set->events, e);

        n_th += qph_perf_event_get_n_threads(ev);
        strings += strlen(qph_perf_event_get_name(ev)) + 1 +
                   strlen(qph_perf_event_get_unit(ev)) + 1;
    }
    off_ev = QPH_ALIGN8(sizeof(QphPerfSetReading));
    off_th = off_ev + QPH_ALIGN8(n_ev * sizeof(QphPerfSetEventValue));
    off_str = off_th + QPH_ALIGN8(n_th * sizeof(QphPerfThreadValue));
    size = off_str + strings;

    r = g_malloc(size);
    r->n_events = n_ev;
    r->events = (QphPerfSetEventValue *)((char *)r + off_ev);
    th = (QphPerfThreadValue *)((char *)r + off_th);
    str = (char *)r + off_str;

    for (guint e = 0; e < n_ev; e++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, e);
        QphPerfSetEventValue *out = &r->events[e];
        guint n = qph_perf_event_get_n_threads(ev);
        QphPerfEventValue v;
        gsize len;

        if (!qph_perf_event_read(ev, &v, th, n, error)) {
            g_free(r);
            return NULL;
        }
        out->name = str;
        len = strlen(qph_perf_event_get_name(ev)) + 1;
        memcpy(str, qph_perf_event_get_name(ev), len);
        str += len;
        out->unit = str;
        len = strlen(qph_perf_event_get_unit(ev)) + 1;
        memcpy(str, qph_perf_event_get_unit(ev), len);
        str += len;
        out->value = v.value;
        out->exited_value = v.exited_value;
        out->time_enabled = v.time_enabled;
        out->time_running = v.time_running;
        out->n_exited = v.n_exited;
        out->scaled = v.scaled;
        out->user_only = qph_perf_event_get_user_only(ev);
        out->n_threads = n;
        out->threads = th;
        th += n;
    }
    return r;
}

void
qph_perf_set_reading_free(QphPerfSetReading *reading)
{
    g_free(reading);
}
