/*
 * vm.c: what the helper knows and counts about its one VM
 *
 * Counters cover every thread of the QEMU process.  Threads are listed from
 * /proc when a client asks (set-perf-events, query-perf-events) and right
 * after a forwarded command that may have created some (device_add,
 * object-add, ...), so no timer runs: a thread that appears is counted from
 * the moment the helper next looks, never twice (one descriptor per event
 * and thread, no inherit).  Labels for vCPUs and iothreads are asked of
 * QEMU only when the set of threads has changed since they were last asked.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/vm.h"
#include "helper/perf-catalog.h"
#include "helper/privilege.h"
#include "helper/proxy.h"
#include "helper/threads.h"
#include "qmp/qmp-error.h"

#include "qmp/json-streamer.h"
#include <string.h>

/* How often new threads try to join the resctrl group while another
 * resctrl user holds the lock. */
#define QPH_VM_RESCAN_RETRY_MS 100

struct QphVm {
    QphProxy *proxy;
    pid_t pid;
    char *resctrl_root;
    QphPerfSet *perf;
    QphResctrlMon *resctrl;
    gboolean resctrl_enabled[QPH_RESCTRL_FEATURE_LAST];
    GPtrArray *resctrl_order; /* enabled resctrl event names, in order */
    GHashTable *labels;       /* tid -> QphThreadLabel * */
    gboolean labels_stale;
    guint rescan_retry; /* another resctrl user holds the lock */
};

static void
label_free(QphThreadLabel *label)
{
    g_free(label->name);
    g_free(label->qom_path);
    g_free(label->iothread_id);
    g_free(label);
}

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
    g_free(reading);
}

QphVm *
qph_vm_new(QphProxy *proxy, pid_t pid, const char *resctrl_root)
{
    QphVm *vm = g_new0(QphVm, 1);
    g_autoptr(GError) error = NULL;

    vm->proxy = proxy;
    vm->pid = pid;
    vm->resctrl_root = g_strdup(resctrl_root ? resctrl_root
                                             : QPH_RESCTRL_DEFAULT_ROOT);
    vm->perf = qph_perf_set_new(pid);
    vm->resctrl_order = g_ptr_array_new_with_free_func(g_free);
    vm->labels = g_hash_table_new_full(NULL, NULL, NULL,
                                       (GDestroyNotify)label_free);
    vm->labels_stale = TRUE;
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
    g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
    qph_perf_set_free(vm->perf);
    g_ptr_array_unref(vm->resctrl_order);
    g_hash_table_unref(vm->labels);
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
    if (perf_changes->len > 0 &&
        !qph_perf_set_update(vm->perf, (const QphPerfChange *)perf_changes->data,
                             perf_changes->len, error)) {
        if (opened) {
            g_clear_pointer(&vm->resctrl, qph_resctrl_mon_close);
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

typedef struct {
    QphVm *vm;
    gboolean labels;
    QphVmReadDone done;
    gpointer data;
    QmpJson *cpus;      /* query-cpus-fast's return */
    QmpJson *iothreads; /* query-iothreads' return */
} ReadJob;

static void
read_job_free(ReadJob *job)
{
    g_clear_pointer(&job->cpus, qmp_json_free);
    g_clear_pointer(&job->iothreads, qmp_json_free);
    g_free(job);
}

/* The "return" value of a reply from QEMU, or NULL. */
static QmpJson *
reply_return(const QphScannedMessage *msg)
{
    const QphScanMember *ret = msg ? qph_scanned_message_get(msg, "return")
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
    const QmpJson *v = qmp_json_object_get(obj, key);

    return v && v->type == QMP_JSON_INT ? v->i : def;
}

/* @obj's string member @key, or NULL. */
static const char *
json_str(const QmpJson *obj, const char *key)
{
    const QmpJson *v = qmp_json_object_get(obj, key);

    return v && v->type == QMP_JSON_STRING ? v->s : NULL;
}

/* The label of the thread whose id is @obj's "thread-id", or NULL. */
static QphThreadLabel *
vm_label_of(QphVm *vm, const QmpJson *obj)
{
    gint64 tid;

    if (obj->type != QMP_JSON_OBJECT) {
        return NULL;
    }
    tid = json_int(obj, "thread-id", -1);
    return tid > 0 ? g_hash_table_lookup(vm->labels, GINT_TO_POINTER(tid))
                   : NULL;
}

static gboolean
vm_labels_current(QphVm *vm, GArray *tids)
{
    if (vm->labels_stale || g_hash_table_size(vm->labels) != tids->len) {
        return FALSE;
    }
    for (guint i = 0; i < tids->len; i++) {
        if (!g_hash_table_contains(
                vm->labels, GINT_TO_POINTER(g_array_index(tids, pid_t, i)))) {
            return FALSE;
        }
    }
    return TRUE;
}

static void
vm_label_threads(QphVm *vm, GArray *tids, QmpJson *cpus, QmpJson *iothreads)
{
    g_hash_table_remove_all(vm->labels);
    for (guint i = 0; i < tids->len; i++) {
        QphThreadLabel *label = g_new0(QphThreadLabel, 1);

        label->tid = g_array_index(tids, pid_t, i);
        label->kind = label->tid == vm->pid ? QPH_THREAD_MAIN_LOOP
                                            : QPH_THREAD_OTHER;
        label->cpu_index = -1;
        label->name = qph_threads_get_name(vm->pid, label->tid, NULL);
        g_hash_table_insert(vm->labels, GINT_TO_POINTER(label->tid), label);
    }
    for (guint i = 0; cpus && cpus->type == QMP_JSON_ARRAY &&
                      i < cpus->elements->len;
         i++) {
        QphThreadLabel *label = vm_label_of(vm, cpus->elements->pdata[i]);

        if (label) {
            label->kind = QPH_THREAD_VCPU;
            label->cpu_index = json_int(cpus->elements->pdata[i], "cpu-index",
                                        -1);
            label->qom_path =
                g_strdup(json_str(cpus->elements->pdata[i], "qom-path"));
        }
    }
    for (guint i = 0; iothreads && iothreads->type == QMP_JSON_ARRAY &&
                      i < iothreads->elements->len;
         i++) {
        QphThreadLabel *label =
            vm_label_of(vm, iothreads->elements->pdata[i]);

        if (label) {
            label->kind = QPH_THREAD_IOTHREAD;
            label->iothread_id =
                g_strdup(json_str(iothreads->elements->pdata[i], "id"));
        }
    }
    vm->labels_stale = FALSE;
}

static void
read_job_fail(ReadJob *job, GError *error)
{
    job->done(job->data, NULL, error);
    read_job_free(job);
}

/* Take the reading and hand it over. */
static void
read_job_finish(ReadJob *job)
{
    QphVm *vm = job->vm;
    g_autoptr(QphVmReading) reading = g_new0(QphVmReading, 1);
    g_autoptr(GError) error = NULL;

    if (job->labels && (job->cpus || job->iothreads)) {
        g_autoptr(GArray) tids = qph_threads_list(vm->pid, NULL);

        if (tids) {
            vm_label_threads(vm, tids, job->cpus, job->iothreads);
        }
    }
    reading->perf = qph_perf_set_read(vm->perf, &error);
    if (!reading->perf) {
        read_job_fail(job, g_steal_pointer(&error));
        return;
    }
    reading->resctrl = g_array_new(FALSE, TRUE, sizeof(QphVmResctrlValue));
    for (guint i = 0; i < vm->resctrl_order->len; i++) {
        QphVmResctrlValue v = { 0 };

        qph_resctrl_feature_from_event(vm->resctrl_order->pdata[i],
                                       &v.feature);
        if (!qph_resctrl_mon_read(vm->resctrl, v.feature, &v.reading,
                                  &error)) {
            /* The group itself is unreadable: that is the query's error. */
            read_job_fail(job, g_steal_pointer(&error));
            return;
        }
        g_array_append_val(reading->resctrl, v);
    }
    if (job->labels) {
        reading->labels = g_hash_table_ref(vm->labels);
    }
    job->done(job->data, g_steal_pointer(&reading), NULL);
    read_job_free(job);
}

static void
read_job_iothreads(QphUpstream *up, const QphScannedMessage *msg,
                   gpointer user_data)
{
    ReadJob *job = user_data;

    if (!msg) {
        read_job_fail(job, g_error_new(QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                                       "QEMU's monitor closed during the "
                                       "query."));
        return;
    }
    /* Machines without iothreads answer an empty list; errors are fine. */
    job->iothreads = reply_return(msg);
    read_job_finish(job);
}

static void
read_job_cpus(QphUpstream *up, const QphScannedMessage *msg,
              gpointer user_data)
{
    ReadJob *job = user_data;

    if (!msg) {
        read_job_iothreads(up, NULL, job);
        return;
    }
    job->cpus = reply_return(msg);
    qph_upstream_call(up, "query-iothreads", NULL, read_job_iothreads, job);
}

void
qph_vm_read(QphVm *vm, gboolean labels, QphVmReadDone done, gpointer data)
{
    ReadJob *job = g_new0(ReadJob, 1);
    g_autoptr(GArray) tids = NULL;

    job->vm = vm;
    job->labels = labels;
    job->done = done;
    job->data = data;
    /* One listing of /proc/PID/task serves the rescan and the labels. */
    if (labels || qph_perf_set_get_n_events(vm->perf) > 0 || vm->resctrl) {
        tids = qph_threads_list(vm->pid, NULL);
        vm_rescan(vm, tids);
    }
    if (labels) {
        if (!tids || !vm_labels_current(vm, tids)) {
            qph_upstream_call(qph_proxy_get_upstream(vm->proxy),
                              "query-cpus-fast", NULL, read_job_cpus, job);
            return;
        }
    }
    read_job_finish(job);
}

/* ---- Hooks ---------------------------------------------------------- */

/* Forwarded commands after which QEMU may have new (or fewer) threads. */
static const char *const thread_changing_commands[] = {
    "device_add", "device_del", "object-add", "object-del", "cpu-add",
    "set-numa-node", "blockdev-add", "cont", NULL,
};

void
qph_vm_note_reply(QphVm *vm, const char *command,
                  const QphScannedMessage *reply)
{
    if (!g_strv_contains(thread_changing_commands, command) ||
        !qph_scanned_message_get(reply, "return")) {
        return;
    }
    vm->labels_stale = TRUE;
    vm_rescan(vm, NULL);
}

void
qph_vm_note_event(QphVm *vm, const QphScannedMessage *event)
{
    const QphScanMember *name = qph_scanned_message_get(event, "event");

    if (name && g_strstr_len(event->data + name->value_offset, name->value_len,
                             "DEVICE_DELETED")) {
        vm->labels_stale = TRUE;
        vm_rescan(vm, NULL);
    }
}
