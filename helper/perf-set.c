/*
 * perf-set.c: the perf events enabled for one VM
 *
 * Enabling prepares every new event on every current thread before the
 * set changes, so a request that fails half-way (a hardware event on a
 * host without PMU, a permission) leaves the set exactly as it was.
 *
 * Following threads: every counter is opened with perf's inherit flag, so
 * a thread created after its creator's counter was opened is counted by
 * the kernel, in the creator's fd.  The only threads that could be missed
 * are those created while enabling, before their creator's counter was
 * opened.  /proc/sys/kernel/ns_last_pid, read just before the first
 * counter is opened, tells them apart: the kernel decides inheritance
 * (perf_event_init_task) before it allocates the new thread's id, so a thread
 * whose id is not above that mark was created before any counter was opened and
 * is not inherited; it gets counters of its own.  A thread above the mark was
 * created while enabling and is taken as inherited (it was, unless its
 * creator was itself opened after it: see docs/design.md).  The listing
 * is repeated until no thread below the mark is missing.
 *
 * Groups: software events enabled in one request share a group per
 * thread under a leader that counts nothing (qph_perf_group_leader_new()
 * says why), read with one read() per thread.  Events are opened thread
 * by thread, a group's leader and then its members, so a group is
 * built on one thread in a few microseconds.  A thread its creator makes
 * in those microseconds inherits the group as far as it was built: it is
 * counted by the members opened before it was created (the same as
 * without groups, where events opened on its creator after it was created
 * miss it), and the kernel then refuses the creator's group read
 * (ECHILD), so that thread's members are read one by one; neither
 * counts a thread twice.
 *
 * After that nothing is ever attached: rescans only mark threads that
 * have exited, whose fds stay open (their descendants count into them).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/perf-set.h"
#include "helper/threads.h"
#include "qmp/qmp-error.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Descriptors kept free for clients, QEMU's monitor and /proc reads. */
#define QPH_PERF_SET_FD_RESERVE 64
/* Listings of /proc/PID/task while enabling, at most. */
#define QPH_PERF_SET_MAX_LISTINGS 8

struct _QphPerfSet {
    pid_t pid;
    GPtrArray *events;   /* QphPerfEvent, in the order they were enabled */
    GHashTable *by_name; /* name (the event's own string) -> QphPerfEvent */
    /* Group leaders (qph_perf_group_leader_new()), each with at least one
     * enabled member; not reported. */
    GPtrArray *leaders;
};

/**
 * qph_perf_set_raise_fd_limit: soft RLIMIT_NOFILE := hard.
 *
 * One descriptor per (event, thread): nine events on a 128-vCPU VM need
 * more than the usual soft limit of 1024, and the hard limit is there to
 * be used (perf does the same).  A failure is logged, not fatal: what is
 * still short is said when enabling (qph_perf_set_check_budget()).
 */
void
qph_perf_set_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) {
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        g_message("Unable to raise the open file limit to %llu: %s",
                  (unsigned long long)rl.rlim_max, g_strerror(errno));
    }
}

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
    set->leaders =
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
    /* Members first: a leader's fds go last. */
    g_ptr_array_unref(set->events);
    g_ptr_array_unref(set->leaders);
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
    for (guint i = 0; i < set->leaders->len; i++) {
        n += qph_perf_event_get_n_threads(g_ptr_array_index(set->leaders, i));
    }
    return n;
}

/**
 * qph_perf_set_count_group_fallbacks: group reads the kernel refused so
 * far (a thread inherited a group while it was being built) and that were
 * answered member by member, over the set's current groups.
 */
guint
qph_perf_set_count_group_fallbacks(const QphPerfSet *set)
{
    guint n = 0;

    for (guint i = 0; i < set->leaders->len; i++) {
        n += qph_perf_group_get_n_fallbacks(g_ptr_array_index(set->leaders, i));
    }
    return n;
}

/* Whether an enabled event belongs to @leader's group. */
static gboolean
qph_perf_set_has_member(const QphPerfSet *set, const QphPerfEvent *leader)
{
    for (guint i = 0; i < set->events->len; i++) {
        if (qph_perf_event_get_leader(g_ptr_array_index(set->events, i)) ==
            leader) {
            return TRUE;
        }
    }
    return FALSE;
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
 * Open every event of @order on thread @tid, in that order (a group's
 * leader before its members).  A thread that exited meanwhile is
 * skipped: it is not a failure of the request.
 */
static gboolean
qph_perf_set_attach_thread(QphPerfSet *set, GPtrArray *order, pid_t tid,
                           GError **error)
{
    for (guint i = 0; i < order->len; i++) {
        g_autoptr(GError) local = NULL;

        if (qph_perf_event_attach(g_ptr_array_index(order, i), tid, &local)) {
            continue;
        }
        if (!qph_threads_exists(set->pid, tid)) {
            return TRUE;
        }
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    return TRUE;
}

/* qph_perf_set_attach_thread() on every thread of @tids. */
static gboolean
qph_perf_set_attach_threads(QphPerfSet *set, GPtrArray *order, GArray *tids,
                            GError **error)
{
    for (guint i = 0; i < tids->len; i++) {
        if (!qph_perf_set_attach_thread(set, order,
                                        g_array_index(tids, pid_t, i), error)) {
            return FALSE;
        }
    }
    return TRUE;
}

/* Descriptors this process may still open: the soft limit minus those open. */
static guint64
qph_perf_set_fds_available(guint64 *limit)
{
    struct rlimit rl;
    g_autoptr(GDir) dir = NULL;
    guint64 open_fds = 0;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) {
        *limit = G_MAXUINT64;
        return G_MAXUINT64;
    }
    *limit = rl.rlim_cur;
    dir = g_dir_open("/proc/self/fd", 0, NULL);
    if (!dir) {
        return G_MAXUINT64; /* cannot tell: let perf_event_open say */
    }
    while (g_dir_read_name(dir)) {
        open_fds++;
    }
    return rl.rlim_cur > open_fds ? rl.rlim_cur - open_fds : 0;
}

/* Refuse before opening anything when @n_events, @per_thread descriptors
 * per thread with their groups' leaders, on @n_threads cannot fit. */
static gboolean
qph_perf_set_check_budget(guint n_events, guint per_thread, guint n_threads,
                          GError **error)
{
    guint64 needed = (guint64)per_thread * n_threads;
    guint64 limit, available = qph_perf_set_fds_available(&limit);

    if (available == G_MAXUINT64 ||
        needed + QPH_PERF_SET_FD_RESERVE <= available) {
        return TRUE;
    }
    g_set_error(
        error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
        "Cannot enable %u perf event(s) on %u threads: that needs "
        "%" G_GUINT64_FORMAT " file descriptors and the helper can open "
        "only %" G_GUINT64_FORMAT " more (RLIMIT_NOFILE is %" G_GUINT64_FORMAT
        ", %d kept for clients); raise the helper's "
        "hard open file limit or enable fewer events.",
        n_events, n_threads, needed,
        available > QPH_PERF_SET_FD_RESERVE
            ? available - QPH_PERF_SET_FD_RESERVE
            : 0,
        limit, QPH_PERF_SET_FD_RESERVE);
    return FALSE;
}

/*
 * Open every event of @order (new leaders and events, each leader before
 * its members) on every thread of the process so that, with inherit, no
 * thread is left uncounted (see the top of the file).
 */
static gboolean
qph_perf_set_attach_process(QphPerfSet *set, GPtrArray *order, guint n_events,
                            GError **error)
{
    g_autoptr(GArray) tids = qph_threads_list(set->pid, error);
    gint64 mark;

    if (!tids) {
        g_prefix_error(error, "Cannot enable perf event '%s': ",
                       qph_perf_event_get_name(g_ptr_array_index(order, 0)));
        return FALSE;
    }
    if (!qph_perf_set_check_budget(n_events, order->len, tids->len, error)) {
        return FALSE;
    }
    /* The mark is read as late as it can be, just before the first
     * counter opens: a thread made after the listing but before any
     * counter is not inherited either, and is below this mark (a mark
     * read before the listing took it for inherited). */
    mark = qph_threads_last_pid();
    if (!qph_perf_set_attach_threads(set, order, tids, error)) {
        return FALSE;
    }
    /* Threads created before the mark but not yet listed: not inherited. */
    for (guint round = 1; mark > 0 && round < QPH_PERF_SET_MAX_LISTINGS;
         round++) {
        QphPerfEvent *first = g_ptr_array_index(order, 0);
        g_autoptr(GArray) now = qph_threads_list(set->pid, NULL);
        g_autoptr(GArray) missed = g_array_new(FALSE, FALSE, sizeof(pid_t));

        for (guint i = 0; now && i < now->len; i++) {
            pid_t tid = g_array_index(now, pid_t, i);

            if (tid <= mark && !qph_perf_event_has_thread(first, tid)) {
                g_array_append_val(missed, tid);
            }
        }
        /* Ids wrapped around since the mark: ids below it are new. */
        if (missed->len == 0 || qph_threads_last_pid() < mark) {
            break;
        }
        if (!qph_perf_set_attach_threads(set, order, missed, error)) {
            return FALSE;
        }
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
    /* Freed in reverse order: members before their leaders. */
    g_autoptr(GPtrArray) new_leaders =
        g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
    g_autoptr(GPtrArray) prepared =
        g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
    g_autoptr(GPtrArray) order = g_ptr_array_new();
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

    /* Software events enabled together share a group per thread: one
     * read() per thread for all of them.  One alone gains nothing from a
     * leader's descriptor. */
    {
        QphPerfEvent *leader = NULL;
        guint n_soft = 0, members = 0;

        for (guint i = 0; i < prepared->len; i++) {
            n_soft +=
                qph_perf_event_get_attr(g_ptr_array_index(prepared, i))->type ==
                PERF_TYPE_SOFTWARE;
        }
        for (guint i = 0; n_soft >= 2 && i < prepared->len; i++) {
            QphPerfEvent *ev = g_ptr_array_index(prepared, i);

            if (qph_perf_event_get_attr(ev)->type != PERF_TYPE_SOFTWARE) {
                continue;
            }
            if (!leader || members == QPH_PERF_GROUP_MAX) {
                leader = qph_perf_group_leader_new(qph_perf_event_get_name(ev));
                g_ptr_array_add(new_leaders, leader);
                g_ptr_array_add(order, leader);
                members = 0;
            }
            if (qph_perf_event_join_group(ev, leader)) {
                members++;
            }
        }
        /* Each leader before its members, members in the order they
         * joined: the kernel's order of siblings in a group read. */
        for (guint l = 0; l < new_leaders->len; l++) {
            QphPerfEvent *ld = g_ptr_array_index(new_leaders, l);
            guint at = 0;

            while (g_ptr_array_index(order, at) != ld) {
                at++;
            }
            for (guint i = 0; i < prepared->len; i++) {
                QphPerfEvent *ev = g_ptr_array_index(prepared, i);

                if (qph_perf_event_get_leader(ev) == ld) {
                    g_ptr_array_insert(order, ++at, ev);
                }
            }
        }
        for (guint i = 0; i < prepared->len; i++) {
            QphPerfEvent *ev = g_ptr_array_index(prepared, i);

            if (!qph_perf_event_get_leader(ev)) {
                g_ptr_array_add(order, ev);
            }
        }
    }

    /* 2. Open them on every thread. */
    if (order->len > 0 &&
        !qph_perf_set_attach_process(set, order, prepared->len, error)) {
        return FALSE;
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
        g_autoptr(GPtrArray) kept = g_ptr_array_new();
        g_autoptr(GPtrArray) gone =
            g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
        g_autoptr(GPtrArray) leaders = g_ptr_array_new();

        for (guint i = 0; i < set->events->len; i++) {
            QphPerfEvent *ev = g_ptr_array_index(set->events, i);

            g_ptr_array_add(g_hash_table_contains(drop, ev) ? gone : kept, ev);
        }
        /* set->events now holds only what stays; members are closed
         * before their leader. */
        g_ptr_array_set_free_func(set->events, NULL);
        g_ptr_array_unref(set->events);
        set->events =
            g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
        g_ptr_array_extend(set->events, kept, NULL, NULL);
        g_ptr_array_set_size(gone, 0);
        /* A leader goes with its last member. */
        for (guint i = 0; i < set->leaders->len; i++) {
            QphPerfEvent *ld = g_ptr_array_index(set->leaders, i);

            if (qph_perf_set_has_member(set, ld)) {
                g_ptr_array_add(leaders, ld);
            } else {
                qph_perf_event_free(ld);
            }
        }
        g_ptr_array_set_free_func(set->leaders, NULL);
        g_ptr_array_unref(set->leaders);
        set->leaders =
            g_ptr_array_new_with_free_func((GDestroyNotify)qph_perf_event_free);
        g_ptr_array_extend(set->leaders, leaders, NULL, NULL);
    }
    for (guint i = 0; i < prepared->len; i++) {
        QphPerfEvent *ev = g_ptr_array_index(prepared, i);

        g_hash_table_insert(set->by_name, (gpointer)qph_perf_event_get_name(ev),
                            ev);
        g_ptr_array_add(set->events, ev);
    }
    g_ptr_array_set_free_func(prepared, NULL);
    g_ptr_array_extend(set->leaders, new_leaders, NULL, NULL);
    g_ptr_array_set_free_func(new_leaders, NULL);
    return TRUE;
}

/**
 * qph_perf_set_rescan: note which counted threads have exited.
 *
 * With nothing enabled it reads nothing.
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
 * @error: unused (kept for callers); never set
 *
 * Marks counted threads that are no longer listed as exited.  Nothing is
 * attached: threads created since enabling are counted by inheritance.
 */
gboolean
qph_perf_set_rescan_tids(QphPerfSet *set, GArray *tids, GError **error)
{
    for (guint e = 0; e < set->events->len; e++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, e);
        guint n = qph_perf_event_get_n_threads(ev);

        for (guint i = 0; i < n; i++) {
            pid_t tid = qph_perf_event_get_thread(ev, i);

            if (!qph_threads_contain(tids, tid)) {
                qph_perf_event_mark_exited(ev, tid);
            }
        }
    }
    return TRUE;
}

/**
 * qph_perf_set_is_counted: whether @tid has counters of its own (it
 * existed when the events were enabled and has not been seen exiting).
 */
gboolean
qph_perf_set_is_counted(const QphPerfSet *set, pid_t tid)
{
    for (guint e = 0; e < set->events->len; e++) {
        if (qph_perf_event_has_thread(g_ptr_array_index(set->events, e), tid)) {
            return TRUE;
        }
    }
    return FALSE;
}

#define QPH_ALIGN8(n) (((n) + 7) & ~(gsize)7)

/*
 * Read the group of enabled event @e (and every enabled event of that
 * group) into @values, marking them @done.
 */
static gboolean
qph_perf_set_read_group(QphPerfSet *set, QphPerfSetReading *r, guint e,
                        QphPerfEventValue *values, gboolean *done,
                        GError **error)
{
    QphPerfEvent *leader =
        qph_perf_event_get_leader(g_ptr_array_index(set->events, e));
    QphPerfEvent *evs[QPH_PERF_GROUP_MAX];
    QphPerfThreadValue *ths[QPH_PERF_GROUP_MAX];
    QphPerfEventValue vals[QPH_PERF_GROUP_MAX];
    guint at[QPH_PERF_GROUP_MAX];
    guint n = 0;

    for (guint i = e; i < set->events->len && n < QPH_PERF_GROUP_MAX; i++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, i);

        /* set->events keeps the order members joined their group. */
        if (qph_perf_event_get_leader(ev) == leader) {
            evs[n] = ev;
            ths[n] = (QphPerfThreadValue *)r->events[i].threads;
            at[n++] = i;
        }
    }
    if (!qph_perf_group_read(leader, evs, n, vals, ths, error)) {
        return FALSE;
    }
    for (guint k = 0; k < n; k++) {
        values[at[k]] = vals[k];
        done[at[k]] = TRUE;
    }
    return TRUE;
}

/**
 * qph_perf_set_read: read every enabled event on every thread.
 *
 * One allocation for the whole result (free it with g_free() or
 * qph_perf_set_reading_free()), then one read() per (event, thread), or
 * per (group, thread) for software events enabled together.
 * With nothing enabled the reading has no events.
 */
QphPerfSetReading *
qph_perf_set_read(QphPerfSet *set, GError **error)
{
    guint n_ev = set->events->len;
    gsize n_th = 0, strings = 0, off_ev, off_th, off_str, size;
    QphPerfSetReading *r;
    QphPerfThreadValue *th;
    g_autofree QphPerfEventValue *values = NULL;
    g_autofree gboolean *done = NULL;
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

    /* Where each event's per-thread values go, then its reading. */
    for (guint e = 0; e < n_ev; e++) {
        r->events[e].threads = th;
        r->events[e].n_threads =
            qph_perf_event_get_n_threads(g_ptr_array_index(set->events, e));
        th += r->events[e].n_threads;
    }
    values = g_new0(QphPerfEventValue, n_ev);
    done = g_new0(gboolean, n_ev);
    for (guint e = 0; e < n_ev; e++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, e);

        if (done[e]) {
            continue;
        }
        if (!qph_perf_event_get_leader(ev)) {
            if (!qph_perf_event_read(ev, &values[e],
                                     (QphPerfThreadValue *)r->events[e].threads,
                                     r->events[e].n_threads, error)) {
                g_free(r);
                return NULL;
            }
            done[e] = TRUE;
            continue;
        }
        if (!qph_perf_set_read_group(set, r, e, values, done, error)) {
            g_free(r);
            return NULL;
        }
    }
    for (guint e = 0; e < n_ev; e++) {
        QphPerfEvent *ev = g_ptr_array_index(set->events, e);
        QphPerfSetEventValue *out = &r->events[e];
        const QphPerfEventValue *v = &values[e];
        gsize len;

        out->name = str;
        len = strlen(qph_perf_event_get_name(ev)) + 1;
        memcpy(str, qph_perf_event_get_name(ev), len);
        str += len;
        out->unit = str;
        len = strlen(qph_perf_event_get_unit(ev)) + 1;
        memcpy(str, qph_perf_event_get_unit(ev), len);
        str += len;
        out->value = v->value;
        out->exited_value = v->exited_value;
        out->time_enabled = v->time_enabled;
        out->time_running = v->time_running;
        out->n_exited = v->n_exited;
        out->n_unscheduled = v->n_unscheduled;
        out->scaled = v->scaled;
        out->overflow = v->overflow;
        out->user_only = qph_perf_event_get_user_only(ev);
    }
    return r;
}

void
qph_perf_set_reading_free(QphPerfSetReading *reading)
{
    g_free(reading);
}
