/*
 * vm.c: what the helper knows and counts about its one VM
 *
 * Counters cover every thread of the QEMU process: perf-set.c opens them
 * with inherit on the threads that exist at enable, so threads created
 * later count without the helper looking.  Threads are still listed from
 * /proc when a client asks and after a forwarded command that may have
 * changed them (device_add, object-add, ...), to note which counted
 * threads exited and to keep resctrl's group complete; no timer runs.
 * Queries are answered from what the helper holds and never wait on QEMU:
 * thread labels come from /proc and from QEMU's answers cached in the
 * background (see Labels).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/vm.h"
#include "helper/perf-catalog.h"
#include "helper/privilege.h"
#include "helper/threads.h"
#include "qmp/qmp-error.h"

#include "qmp/json-streamer.h"
#include <string.h>

/* How often new threads try to join the resctrl group while another
 * resctrl user holds the lock. */
#define QPH_VM_RESCAN_RETRY_MS 100

struct QphVm {
    QphUpstream *upstream; /* outlives the VM (proxy.c frees it after) */
    pid_t pid;
    char *resctrl_root;
    QphPerfSet *perf;
    QphResctrlMon *resctrl;
    gboolean resctrl_enabled[QPH_RESCTRL_FEATURE_LAST];
    GPtrArray *resctrl_order; /* enabled resctrl event names, in order */
    GPtrArray *enabled; /* QphVmEnabledEvent *, in the order enabled */
    QphVmChangedFunc changed;
    gpointer changed_data;
    /* QEMU's last answers about threads (see Labels), NULL until asked */
    GHashTable *qmp_labels; /* tid -> QmpLabel * */
    GArray *qmp_seen;       /* the process's threads when they came */
    guint64 refresh_handle; /* the refresh request in flight, or 0 */
    gboolean refresh_again; /* something changed while it was */
    QmpJson *refresh_cpus;  /* query-cpus-fast's return, meanwhile */
    GHashTable *names;      /* tid -> comm of counted threads (read once) */
    guint rescan_retry;     /* another resctrl user holds the lock */
};

static void
enabled_event_free(QphVmEnabledEvent *ev)
{
    g_free(ev->name);
    g_free(ev);
}

static void
label_free(QphThreadLabel *label)
{
    g_free(label->name);
    g_free(label->qom_path);
    g_free(label->iothread_id);
    g_free(label);
}

static void vm_refresh_labels(QphVm *vm);

void
qph_vm_reading_free(QphVmReading *reading)
{
    if (!reading) {
        return;
    }
    qph_perf_set_reading_free(reading->perf);
    if (reading->resctrl) {
        for (guint i = 0; i < reading->resctrl->len; i++) {
            qph_resctrl_reading_clear(
                &g_array_index(reading->resctrl, QphVmResctrlValue, i).reading);
        }
        g_array_unref(reading->resctrl);
    }
    g_clear_pointer(&reading->labels, g_hash_table_unref);
    g_clear_pointer(&reading->tids, g_array_unref);
    g_free(reading);
}

QphVm *
qph_vm_new(QphUpstream *upstream, pid_t pid, const char *resctrl_root)
{
    QphVm *vm = g_new0(QphVm, 1);
    g_autoptr(GError) error = NULL;

    vm->upstream = upstream;
    vm->pid = pid;
    vm->resctrl_root = g_strdup(resctrl_root ? resctrl_root
                                             : QPH_RESCTRL_DEFAULT_ROOT);
    vm->perf = qph_perf_set_new(pid);
    vm->resctrl_order = g_ptr_array_new_with_free_func(g_free);
    vm->names = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    vm->enabled =
        g_ptr_array_new_with_free_func((GDestroyNotify)enabled_event_free);
    /* Groups of helpers that died are removed now, not when first needed,
     * this QEMU's too: nothing is enabled yet, so it is a leftover. */
    if (g_file_test(vm->resctrl_root, G_FILE_TEST_IS_DIR) &&
        !qph_resctrl_cleanup_leftover(vm->resctrl_root, pid, &error)) {
        g_debug("No stale resctrl groups cleaned: %s", error->message);
    }
    return vm;
}

void
qph_vm_free(QphVm *vm)
{
    if (!vm) {
        return;
    }
    g_clear_handle_id(&vm->rescan_retry, g_source_remove);
    if (vm->refresh_handle) {
        qph_upstream_cancel(vm->upstream, vm->refresh_handle);
    }
    g_clear_pointer(&vm->refresh_cpus, qmp_json_free);
    g_clear_pointer(&vm->qmp_labels, g_hash_table_unref);
    g_clear_pointer(&vm->qmp_seen, g_array_unref);
    g_hash_table_unref(vm->names);
    g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
    qph_perf_set_free(vm->perf);
    g_ptr_array_unref(vm->resctrl_order);
    g_ptr_array_unref(vm->enabled);
    g_free(vm->resctrl_root);
    g_free(vm);
}

pid_t
qph_vm_get_pid(QphVm *vm)
{
    return vm->pid;
}

gboolean
qph_vm_is_enabled(QphVm *vm, const char *name)
{
    QphResctrlFeature f;

    if (qph_resctrl_feature_from_event(name, &f)) {
        return vm->resctrl_enabled[f];
    }
    return qph_perf_set_is_enabled(vm->perf, name);
}

guint
qph_vm_count_fds(QphVm *vm)
{
    return qph_perf_set_count_fds(vm->perf);
}

/* ---- Enabled events and their time origin ---------------------------- */

static gint
vm_find_enabled(QphVm *vm, const char *name)
{
    for (guint i = 0; i < vm->enabled->len; i++) {
        const QphVmEnabledEvent *ev = g_ptr_array_index(vm->enabled, i);

        if (g_str_equal(ev->name, name)) {
            return (gint)i;
        }
    }
    return -1;
}

/* After a successful change: stamp what is newly enabled with @now, forget
 * what is disabled; an event enabled again keeps its origin.  Returns
 * whether the set changed. */
static gboolean
vm_note_enabled(QphVm *vm, const QphPerfChange *changes, guint n, gint64 now)
{
    gboolean changed = FALSE;

    for (guint i = 0; i < n; i++) {
        gint at = vm_find_enabled(vm, changes[i].name);
        gboolean on = qph_vm_is_enabled(vm, changes[i].name);

        if (on && at < 0) {
            QphVmEnabledEvent *ev = g_new0(QphVmEnabledEvent, 1);

            ev->name = g_strdup(changes[i].name);
            ev->enabled_at = now;
            g_ptr_array_add(vm->enabled, ev);
            changed = TRUE;
        } else if (!on && at >= 0) {
            g_ptr_array_remove_index(vm->enabled, (guint)at);
            changed = TRUE;
        }
    }
    return changed;
}

GPtrArray *
qph_vm_get_enabled(QphVm *vm)
{
    return vm->enabled;
}

gboolean
qph_vm_get_enabled_at(QphVm *vm, const char *name, gint64 *at)
{
    gint i = vm_find_enabled(vm, name);

    if (i < 0) {
        return FALSE;
    }
    *at = ((QphVmEnabledEvent *)g_ptr_array_index(vm->enabled, i))->enabled_at;
    return TRUE;
}

void
qph_vm_set_changed_func(QphVm *vm, QphVmChangedFunc func, gpointer data)
{
    vm->changed = func;
    vm->changed_data = data;
}

static gboolean
vm_any_resctrl(const gboolean *enabled)
{
    for (guint f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
        if (enabled[f]) {
            return TRUE;
        }
    }
    return FALSE;
}

static QphResctrlMon *
vm_open_resctrl(QphVm *vm, GError **error)
{
    g_autoptr(GArray) tids = qph_threads_list(vm->pid, error);

    if (!tids) {
        return NULL;
    }
    return qph_resctrl_mon_open(vm->resctrl_root, vm->pid,
                                (const pid_t *)tids->data, tids->len, error);
}

/**
 * qph_vm_set_events:
 * Apply every change or none.  resctrl is prepared first (a group is
 * created only if needed), then the perf set applies its part all or
 * nothing; if that fails, a group created here is removed again.
 */
gboolean
qph_vm_set_events(QphVm *vm, const QphPerfChange *changes, guint n,
                  GError **error)
{
    gboolean target[QPH_RESCTRL_FEATURE_LAST];
    g_autoptr(GArray) perf_changes =
        g_array_new(FALSE, FALSE, sizeof(QphPerfChange));
    gboolean opened = FALSE;
    /* Counting starts when the counters are opened, just after this. */
    gint64 now = g_get_real_time();

    /* Refused before anything is applied: all-or-nothing holds. */
    if (!qph_event_allowlist_check(changes, n, error)) {
        return FALSE;
    }
    memcpy(target, vm->resctrl_enabled, sizeof(target));
    for (guint i = 0; i < n; i++) {
        QphResctrlFeature f;

        if (qph_resctrl_feature_from_event(changes[i].name, &f)) {
            target[f] = changes[i].enable;
        } else {
            g_array_append_val(perf_changes, changes[i]);
        }
    }
    for (guint f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
        if (target[f] && !vm->resctrl_enabled[f] &&
            !qph_resctrl_probe(vm->resctrl_root, f, error)) {
            g_prefix_error(error, "Unable to enable event '%s': ",
                           qph_resctrl_feature_info(f)->event);
            return FALSE;
        }
    }
    if (vm_any_resctrl(target) && !vm->resctrl) {
        vm->resctrl = vm_open_resctrl(vm, error);
        if (!vm->resctrl) {
            for (guint f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
                if (target[f] && !vm->resctrl_enabled[f]) {
                    g_prefix_error(error, "Unable to enable event '%s': ",
                                   qph_resctrl_feature_info(f)->event);
                    break;
                }
            }
            return FALSE;
        }
        opened = TRUE;
    }
    /* mbm_event mode: the enabled MBM events need a hardware counter each;
     * take them before anything else changes (all or nothing). */
    if (vm->resctrl) {
        QphResctrlFeature failed = QPH_RESCTRL_FEATURE_MBMT;

        for (guint f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
            if (target[f] && qph_resctrl_feature_info(f)->mbm) {
                failed = f; /* what a lock failure is reported for */
                break;
            }
        }
        if (!qph_resctrl_mon_assign(vm->resctrl, target, &failed, error)) {
            g_prefix_error(error, "Unable to enable event '%s': ",
                           qph_resctrl_feature_info(failed)->event);
            if (opened) {
                g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
            }
            return FALSE;
        }
    }
    if (perf_changes->len > 0 &&
        !qph_perf_set_update(vm->perf, (const QphPerfChange *)perf_changes->data,
                             perf_changes->len, error)) {
        if (opened) {
            g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
        } else if (vm->resctrl) {
            /* Give back what the assignment above took. */
            qph_resctrl_mon_release(vm->resctrl, vm->resctrl_enabled);
        }
        return FALSE;
    }
    /* Commit: keep the order events were enabled in, like the perf set. */
    for (guint f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
        const char *name = qph_resctrl_feature_info(f)->event;

        if (target[f] && !vm->resctrl_enabled[f]) {
            g_ptr_array_add(vm->resctrl_order, g_strdup(name));
        } else if (!target[f] && vm->resctrl_enabled[f]) {
            for (guint i = 0; i < vm->resctrl_order->len; i++) {
                if (g_str_equal(vm->resctrl_order->pdata[i], name)) {
                    g_ptr_array_remove_index(vm->resctrl_order, i);
                    break;
                }
            }
        }
    }
    memcpy(vm->resctrl_enabled, target, sizeof(target));
    if (!vm_any_resctrl(target)) {
        g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
    } else {
        /* Counters of disabled MBM events, and those mkdir assigned that
         * no enabled event needs (cmt alone holds none). */
        qph_resctrl_mon_release(vm->resctrl, target);
    }
    if (vm_note_enabled(vm, changes, n, now) && vm->changed) {
        vm->changed(vm, vm->changed_data);
    }
    /* New counters may be on threads that reuse an id once named. */
    g_hash_table_remove_all(vm->names);
    /* Labels are wanted from now on: have them before they are asked. */
    if (qph_perf_set_get_n_events(vm->perf) > 0 && !vm->qmp_labels) {
        vm_refresh_labels(vm);
    }
    return TRUE;
}

static void vm_rescan(QphVm *vm, GArray *tids);

static gboolean
vm_rescan_retry(gpointer data)
{
    QphVm *vm = data;

    vm->rescan_retry = 0;
    vm_rescan(vm, NULL);
    return G_SOURCE_REMOVE;
}

/* Count threads that appeared since last time (and let go of those that
 * ended), given the process's threads (NULL: list them here).  Failures
 * are logged: a query still answers with what exists.  When another
 * resctrl user holds the lock, new threads join the group from a timer
 * once it is free: the main loop never waits for it. */
static void
vm_rescan(QphVm *vm, GArray *tids)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) listed = NULL;

    if (qph_perf_set_get_n_events(vm->perf) == 0 && !vm->resctrl) {
        return;
    }
    if (!tids) {
        tids = listed = qph_threads_list(vm->pid, &error);
        if (!tids) {
            g_message("Unable to list QEMU's threads: %s", error->message);
            return;
        }
    }
    if (qph_perf_set_get_n_events(vm->perf) > 0 &&
        !qph_perf_set_rescan_tids(vm->perf, tids, &error)) {
        g_message("Unable to pick up new threads of QEMU: %s", error->message);
        g_clear_error(&error);
    }
    if (vm->resctrl &&
        !qph_resctrl_mon_add_threads(vm->resctrl, (const pid_t *)tids->data,
                                     tids->len, &error)) {
        if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN)) {
            g_message("Unable to keep QEMU's threads in the resctrl group: %s",
                      error->message);
        } else if (!vm->rescan_retry) {
            g_debug("New threads join the resctrl group later: %s",
                    error->message);
            vm->rescan_retry =
                g_timeout_add(QPH_VM_RESCAN_RETRY_MS, vm_rescan_retry, vm);
        }
    }
}

/* ---- Labels --------------------------------------------------------- */

/*
 * A thread's label comes first from its name: with debug-threads=on QEMU
 * names vCPU threads "CPU N/KVM" (or /TCG, ...) and iothreads "IO ID".
 * What the name cannot say (a vCPU's QOM path, an iothread id cut by the
 * 15-byte comm limit, anything when threads are unnamed) comes from the
 * last answers to query-cpus-fast and query-iothreads, asked in the
 * background when a forwarded reply or event says the set of vCPUs or
 * iothreads changed, one refresh at a time.  A query never waits for it.
 */

/* What QEMU said about a thread in its last answers. */
typedef struct {
    QphThreadKind kind; /* VCPU or IOTHREAD */
    gint64 cpu_index;   /* -1 when several vCPUs share the thread */
    char *qom_path;     /* NULL when several vCPUs share the thread */
    char *iothread_id;
} QmpLabel;

static void
qmp_label_free(QmpLabel *l)
{
    g_free(l->qom_path);
    g_free(l->iothread_id);
    g_free(l);
}

/* The "return" value of a reply from QEMU, or NULL. */
static QmpJson *
reply_return(const QmpMessage *msg)
{
    const QmpMessageMember *ret = msg ? qmp_message_get(msg, "return")
                                   : NULL;
    g_autofree char *error_text = NULL;

    if (!ret) {
        return NULL;
    }
    return qmp_json_parse_value(msg->data + ret->value_offset, ret->value_len,
                                &error_text);
}

/* @obj's integer member @key, or @def. */
static gint64
json_int(const QmpJson *obj, const char *key, gint64 def)
{
    const QmpJson *v =
        obj->type == QMP_JSON_OBJECT ? qmp_json_object_get(obj, key) : NULL;

    return v && v->type == QMP_JSON_INT ? v->i : def;
}

/* @obj's string member @key, or NULL. */
static const char *
json_str(const QmpJson *obj, const char *key)
{
    const QmpJson *v =
        obj->type == QMP_JSON_OBJECT ? qmp_json_object_get(obj, key) : NULL;

    return v && v->type == QMP_JSON_STRING ? v->s : NULL;
}

/* The QmpLabel of @obj's "thread-id", created as @kind when new. */
static QmpLabel *
vm_qmp_label(GHashTable *table, const QmpJson *obj, QphThreadKind kind,
             gboolean *is_new)
{
    gint64 tid = json_int(obj, "thread-id", -1);
    QmpLabel *l;

    *is_new = FALSE;
    if (tid <= 0 || tid > G_MAXINT32) {
        return NULL;
    }
    l = g_hash_table_lookup(table, GINT_TO_POINTER((gint)tid));
    if (!l) {
        l = g_new0(QmpLabel, 1);
        l->kind = kind;
        l->cpu_index = -1;
        g_hash_table_insert(table, GINT_TO_POINTER((gint)tid), l);
        *is_new = TRUE;
    }
    return l;
}

/* Replace the cached QMP labels with QEMU's answers. */
static void
vm_store_qmp_labels(QphVm *vm, const QmpJson *cpus, const QmpJson *iothreads)
{
    GHashTable *table =
        g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)qmp_label_free);
    g_autoptr(GArray) tids = qph_threads_list(vm->pid, NULL);

    for (guint i = 0; cpus && cpus->type == QMP_JSON_ARRAY &&
                      i < cpus->elements->len;
         i++) {
        const QmpJson *c = cpus->elements->pdata[i];
        gboolean is_new;
        QmpLabel *l = vm_qmp_label(table, c, QPH_THREAD_VCPU, &is_new);

        if (!l) {
            continue;
        }
        if (is_new) {
            l->cpu_index = json_int(c, "cpu-index", -1);
            l->qom_path = g_strdup(json_str(c, "qom-path"));
        } else {
            /* Several vCPUs on one thread (TCG thread=single): no one
             * index or path is the thread's. */
            l->cpu_index = -1;
            g_clear_pointer(&l->qom_path, g_free);
        }
    }
    for (guint i = 0; iothreads && iothreads->type == QMP_JSON_ARRAY &&
                      i < iothreads->elements->len;
         i++) {
        const QmpJson *t = iothreads->elements->pdata[i];
        gboolean is_new;
        QmpLabel *l = vm_qmp_label(table, t, QPH_THREAD_IOTHREAD, &is_new);

        if (l && is_new) {
            l->iothread_id = g_strdup(json_str(t, "id"));
        }
    }
    g_clear_pointer(&vm->qmp_labels, g_hash_table_unref);
    vm->qmp_labels = table;
    /* Threads listed now and not in the answers are "other". */
    g_clear_pointer(&vm->qmp_seen, g_array_unref);
    vm->qmp_seen = g_steal_pointer(&tids);
}

static void
vm_refresh_done(QphVm *vm, gboolean again)
{
    g_clear_pointer(&vm->refresh_cpus, qmp_json_free);
    vm->refresh_handle = 0;
    if (again && vm->refresh_again) {
        vm_refresh_labels(vm);
    }
}

static void
vm_refresh_iothreads(QphUpstream *up, const QmpMessage *msg,
                     gpointer user_data)
{
    QphVm *vm = user_data;
    g_autoptr(QmpJson) iothreads = NULL;

    if (!msg) {
        vm_refresh_done(vm, FALSE); /* QEMU's monitor closed */
        return;
    }
    /* Machines without iothreads answer an empty list; errors are fine. */
    iothreads = reply_return(msg);
    vm_store_qmp_labels(vm, vm->refresh_cpus, iothreads);
    vm_refresh_done(vm, TRUE);
}

static void
vm_refresh_cpus(QphUpstream *up, const QmpMessage *msg,
                gpointer user_data)
{
    QphVm *vm = user_data;

    if (!msg) {
        vm_refresh_done(vm, FALSE);
        return;
    }
    vm->refresh_cpus = reply_return(msg);
    vm->refresh_handle = qph_upstream_call(up, "query-iothreads", NULL,
                                           vm_refresh_iothreads, vm);
}

/*
 * Ask QEMU for vCPU and iothread labels in the background.  One refresh
 * at a time: a change noted while one is under way asks again after it,
 * so what is held never costs more than two requests however often
 * things change, and a QEMU that does not answer holds one.
 */
static void
vm_refresh_labels(QphVm *vm)
{
    QphUpstream *up = vm->upstream;

    if (vm->refresh_handle || !up) {
        vm->refresh_again = vm->refresh_handle != 0;
        return;
    }
    vm->refresh_again = FALSE;
    vm->refresh_handle =
        qph_upstream_call(up, "query-cpus-fast", NULL, vm_refresh_cpus, vm);
}

/* What a thread's comm says: "CPU 3/KVM", "ALL CPUs/TCG", "IO iot0". */
static void
label_from_name(QphThreadLabel *label, const char *main_name)
{
    const char *n = label->name;
    guint64 idx;
    const char *slash;

    if (!n) {
        return;
    }
    if (g_str_has_prefix(n, "CPU ") && (slash = strchr(n + 4, '/')) &&
        slash > n + 4) {
        g_autofree char *digits = g_strndup(n + 4, slash - (n + 4));

        if (g_ascii_string_to_unsigned(digits, 10, 0, G_MAXINT32, &idx, NULL)) {
            label->kind = QPH_THREAD_VCPU;
            label->cpu_index = (gint64)idx;
        }
    } else if (g_str_has_prefix(n, "ALL CPUs/")) {
        label->kind = QPH_THREAD_VCPU; /* single-threaded TCG: all vCPUs */
    } else if (g_str_has_prefix(n, "IO ") && n[3]) {
        label->kind = QPH_THREAD_IOTHREAD;
        /* comm holds 15 bytes: a name that long may be cut. */
        if (strlen(n) < 15) {
            label->iothread_id = g_strdup(n + 3);
        }
    } else if (main_name && strcmp(n, main_name) != 0) {
        label->kind = QPH_THREAD_OTHER; /* named by QEMU: not ours above */
    }
}

/*
 * The comm of @tid, read once: QEMU names a thread as it starts, and a
 * counted thread's id is never another thread's while it is counted (an
 * exited one is not labelled again).  An unreadable name is retried.
 */
static char *
vm_thread_name(QphVm *vm, pid_t tid)
{
    const char *cached = g_hash_table_lookup(vm->names, GINT_TO_POINTER(tid));
    char *name;

    if (cached) {
        return g_strdup(cached);
    }
    name = qph_threads_get_name(vm->pid, tid, NULL);
    if (name) {
        g_hash_table_insert(vm->names, GINT_TO_POINTER(tid), g_strdup(name));
    }
    return name;
}

/* The label of thread @tid, from its name and QEMU's cached answers. */
static QphThreadLabel *
vm_label(QphVm *vm, pid_t tid, const char *main_name)
{
    QphThreadLabel *label = g_new0(QphThreadLabel, 1);
    const QmpLabel *q =
        vm->qmp_labels
            ? g_hash_table_lookup(vm->qmp_labels, GINT_TO_POINTER(tid))
            : NULL;

    label->tid = tid;
    label->kind = QPH_THREAD_UNKNOWN;
    label->cpu_index = -1;
    label->name = vm_thread_name(vm, tid);
    if (tid == vm->pid) {
        label->kind = QPH_THREAD_MAIN_LOOP;
        return label;
    }
    label_from_name(label, main_name);
    if (label->kind == QPH_THREAD_IOTHREAD && !q &&
        qph_threads_contain(vm->qmp_seen, tid)) {
        /* Named "IO ..." but not an IOThread object QEMU lists (the
         * monitor's own mon_iothread). */
        label->kind = QPH_THREAD_OTHER;
        g_clear_pointer(&label->iothread_id, g_free);
    }
    if (q && label->kind == QPH_THREAD_UNKNOWN) {
        /* Unnamed threads: QEMU's word alone. */
        label->kind = q->kind;
        label->cpu_index = q->cpu_index;
    }
    if (q && q->kind == label->kind && label->kind == QPH_THREAD_VCPU &&
        q->cpu_index == label->cpu_index) {
        label->qom_path = g_strdup(q->qom_path);
    } else if (q && q->kind == label->kind &&
               label->kind == QPH_THREAD_IOTHREAD &&
               (!label->iothread_id ||
                g_strcmp0(label->iothread_id, q->iothread_id) == 0)) {
        g_free(label->iothread_id);
        label->iothread_id = g_strdup(q->iothread_id);
    }
    if (label->kind == QPH_THREAD_UNKNOWN && !q &&
        qph_threads_contain(vm->qmp_seen, tid)) {
        label->kind = QPH_THREAD_OTHER; /* QEMU listed it as neither */
    }
    return label;
}

/* Labels for every thread @perf has a live entry for. */
static GHashTable *
vm_labels_for(QphVm *vm, const QphPerfSetReading *perf)
{
    GHashTable *labels =
        g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify)label_free);
    g_autofree char *main_name = vm_thread_name(vm, vm->pid);
    gboolean stale = !vm->qmp_labels;

    for (guint e = 0; e < perf->n_events; e++) {
        for (guint i = 0; i < perf->events[e].n_threads; i++) {
            const QphPerfThreadValue *t = &perf->events[e].threads[i];
            QphThreadLabel *label;

            if (t->exited ||
                g_hash_table_contains(labels, GINT_TO_POINTER(t->tid))) {
                continue;
            }
            label = vm_label(vm, t->tid, main_name);
            stale |= !qph_threads_contain(vm->qmp_seen, t->tid);
            g_hash_table_insert(labels, GINT_TO_POINTER(t->tid), label);
        }
    }
    /* A counted thread QEMU was not asked about yet: ask, without
     * waiting (threads created later need no label: they have no entry). */
    if (stale) {
        vm_refresh_labels(vm);
    }
    return labels;
}

/* Take the reading. */
QphVmReading *
qph_vm_read(QphVm *vm, gboolean labels, GError **error)
{
    g_autoptr(QphVmReading) reading = g_new0(QphVmReading, 1);
    g_autoptr(GArray) tids = NULL;

    /* One listing of /proc/PID/task serves the rescan and the labels. */
    if (labels || qph_perf_set_get_n_events(vm->perf) > 0 || vm->resctrl) {
        tids = qph_threads_list(vm->pid, NULL);
        if (tids) {
            vm_rescan(vm, tids);
        }
    }
    reading->perf = qph_perf_set_read(vm->perf, error);
    if (!reading->perf) {
        return NULL;
    }
    reading->resctrl = g_array_new(FALSE, TRUE, sizeof(QphVmResctrlValue));
    for (guint i = 0; i < vm->resctrl_order->len; i++) {
        QphVmResctrlValue v = {0};

        qph_resctrl_feature_from_event(vm->resctrl_order->pdata[i], &v.feature);
        if (!qph_resctrl_mon_read(vm->resctrl, v.feature, &v.reading, error)) {
            /* The group itself is unreadable: that is the query's error. */
            return NULL;
        }
        g_array_append_val(reading->resctrl, v);
    }
    if (labels) {
        reading->labels = vm_labels_for(vm, reading->perf);
        reading->tids = g_steal_pointer(&tids);
    }
    return g_steal_pointer(&reading);
}

/* ---- Hooks ---------------------------------------------------------- */

/* Forwarded commands after which QEMU may have new (or fewer) threads. */
static const char *const thread_changing_commands[] = {
    "device_add", "device_del", "object-add", "object-del", "cpu-add",
    "set-numa-node", "blockdev-add", "cont", NULL,
};

void
qph_vm_note_reply(QphVm *vm, const char *command,
                  const QmpMessage *reply)
{
    if (!g_strv_contains(thread_changing_commands, command) ||
        !qmp_message_get(reply, "return")) {
        return;
    }
    if (vm->qmp_labels) {
        vm_refresh_labels(vm);
    }
    vm_rescan(vm, NULL);
}

void
qph_vm_note_event(QphVm *vm, const QmpMessage *event)
{
    const QmpMessageMember *name = qmp_message_get(event, "event");

    if (name && g_strstr_len(event->data + name->value_offset, name->value_len,
                             "DEVICE_DELETED")) {
        if (vm->qmp_labels) {
            vm_refresh_labels(vm);
        }
        vm_rescan(vm, NULL);
    }
}
