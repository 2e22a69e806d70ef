/*
 * dispatch.c: the helper's own QMP commands
 *
 * The command table, the argument visitors (with QEMU's error texts) and
 * the reply marshalling are generated from schema/qemu-perf-helper.json;
 * this file implements the two handlers.  query-perf-events is answered
 * from what the helper holds (qph_vm_read() never waits on QEMU); the
 * generated marshaller runs with the reading as its opaque pointer.  The text
 * marshallers are used: the reply is written straight from the C structs, with
 * no JSON tree in between (a per-thread query-perf-events answer is hundreds of
 * objects).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/dispatch.h"
#include "helper/perf-catalog.h"
#include "helper/proxy.h"
#include "helper/threads.h"
#include "helper/vm.h"
#include "qmp/qmp-error.h"

#include "qph-qapi-commands.h"
#include "qph-qapi-types.h"

#include <string.h>

/* What a handler sees as its opaque pointer. */
typedef struct {
    QphVm *vm;
    QphVmReading *reading; /* query-perf-events only */
} DispatchContext;

gboolean
qph_dispatch_has(const char *command)
{
    return qph_qmp_command_lookup(command) != NULL;
}

const char *const *
qph_dispatch_command_names(void)
{
    static const char *names[QPH_QMP_COMMAND__LAST + 1];

    if (!names[0]) {
        for (guint i = 0; i < QPH_QMP_COMMAND__LAST; i++) {
            names[i] = qph_qmp_commands[i].name;
        }
    }
    return names;
}

/* ---- set-perf-events ------------------------------------------------- */

gboolean
qph_qmp_set_perf_events(GPtrArray *events, gpointer opaque, GError **error)
{
    DispatchContext *ctx = opaque;
    g_autofree QphPerfChange *changes = g_new0(QphPerfChange, events->len);

    for (guint i = 0; i < events->len; i++) {
        PerfEventSetting *s = events->pdata[i];

        changes[i].name = s->name;
        changes[i].enable = s->enabled;
    }
    return qph_vm_set_events(ctx->vm, changes, events->len, error);
}

/* ---- query-perf-events ----------------------------------------------- */

static PerfEventUnit
unit_from_name(const char *unit)
{
    PerfEventUnit u;

    return unit && qph_PerfEventUnit_parse(unit, &u) ? u : PERF_EVENT_UNIT_COUNT;
}

static const PerfThreadKind thread_kinds[] = {
    [QPH_THREAD_MAIN_LOOP] = PERF_THREAD_KIND_MAIN_LOOP,
    [QPH_THREAD_VCPU] = PERF_THREAD_KIND_VCPU,
    [QPH_THREAD_IOTHREAD] = PERF_THREAD_KIND_IOTHREAD,
    [QPH_THREAD_OTHER] = PERF_THREAD_KIND_OTHER,
    [QPH_THREAD_UNKNOWN] = PERF_THREAD_KIND_UNKNOWN,
};
G_STATIC_ASSERT(G_N_ELEMENTS(thread_kinds) == QPH_THREAD_UNKNOWN + 1);

static const PerfDomainStatus domain_statuses[] = {
    [QPH_RESCTRL_VALUE_OK] = PERF_DOMAIN_STATUS_OK,
    [QPH_RESCTRL_VALUE_UNAVAILABLE] = PERF_DOMAIN_STATUS_UNAVAILABLE,
    [QPH_RESCTRL_VALUE_ERROR] = PERF_DOMAIN_STATUS_ERROR,
    [QPH_RESCTRL_VALUE_UNASSIGNED] = PERF_DOMAIN_STATUS_UNASSIGNED,
};
G_STATIC_ASSERT(G_N_ELEMENTS(domain_statuses) == QPH_RESCTRL_VALUE_LAST);

static PerfThreadValue *
thread_value(QphVm *vm, GHashTable *labels, const QphPerfThreadValue *t)
{
    PerfThreadValue *tv = g_new0(PerfThreadValue, 1);
    const QphThreadLabel *label =
        labels ? g_hash_table_lookup(labels, GINT_TO_POINTER(t->tid)) : NULL;

    tv->thread_id = t->tid;
    tv->value = t->value;
    tv->scaled = t->scaled;
    tv->unscheduled = t->unscheduled;
    if (label) {
        tv->name = g_strdup(label->name ? label->name : "");
        tv->kind = thread_kinds[label->kind];
        if (label->kind == QPH_THREAD_VCPU) {
            tv->has_cpu_index = label->cpu_index >= 0;
            tv->cpu_index = label->cpu_index;
            tv->has_qom_path = label->qom_path != NULL;
            tv->qom_path = g_strdup(label->qom_path);
        } else if (label->kind == QPH_THREAD_IOTHREAD) {
            tv->has_id = label->iothread_id != NULL;
            tv->id = g_strdup(label->iothread_id);
        }
    } else {
        tv->name = g_strdup("");
        tv->kind = t->tid == qph_vm_get_pid(vm) ? PERF_THREAD_KIND_MAIN_LOOP
                                                : PERF_THREAD_KIND_UNKNOWN;
    }
    return tv;
}

static void
fill_perf(PerfEventInfo *info, QphVm *vm, const QphVmReading *reading,
          const QphPerfSetEventValue *ev, gboolean per_thread)
{
    info->unit = unit_from_name(ev->unit);
    info->has_value = TRUE;
    info->value = ev->value;
    info->has_time_enabled = TRUE;
    info->time_enabled = ev->time_enabled;
    info->has_time_running = TRUE;
    info->time_running = ev->time_running;
    info->has_scaled = TRUE;
    info->scaled = ev->scaled;
    info->has_user_only = TRUE;
    info->user_only = ev->user_only;
    info->has_exited_value = TRUE;
    info->exited_value = ev->exited_value;
    info->has_overflow = TRUE;
    info->overflow = ev->overflow;
    info->has_unscheduled = TRUE;
    info->unscheduled = ev->n_unscheduled > 0;
    if (per_thread) {
        guint j = 0;

        info->has_threads = TRUE;
        info->threads = qph_new_PerfThreadValueList();
        /* Exited threads' counters are in exited-value, not listed. */
        for (guint i = 0; i < ev->n_threads; i++) {
            if (!ev->threads[i].exited) {
                g_ptr_array_add(info->threads, thread_value(vm, reading->labels,
                                                            &ev->threads[i]));
            }
        }
        /* Live threads without a counter of their own: created after
         * enabling, counted in their creator's (both lists ascend). */
        info->has_inherited_threads = TRUE;
        info->inherited_threads = qph_new_PerfInheritedThreadList();
        for (guint i = 0; reading->tids && i < reading->tids->len; i++) {
            pid_t tid = g_array_index(reading->tids, pid_t, i);
            PerfInheritedThread *it;

            while (j < ev->n_threads && ev->threads[j].tid < tid) {
                j++;
            }
            if (j < ev->n_threads && ev->threads[j].tid == tid) {
                continue;
            }
            it = g_new0(PerfInheritedThread, 1);
            it->thread_id = tid;
            g_ptr_array_add(info->inherited_threads, it);
        }
    }
}

static GPtrArray *
sub_domain_values(const GArray *subs)
{
    GPtrArray *list = qph_new_PerfSubDomainValueList();

    for (guint i = 0; i < subs->len; i++) {
        const QphResctrlSubValue *s =
            &g_array_index(subs, QphResctrlSubValue, i);
        PerfSubDomainValue *sv = g_new0(PerfSubDomainValue, 1);

        sv->node = s->node;
        sv->status = domain_statuses[s->status];
        sv->has_value = s->status == QPH_RESCTRL_VALUE_OK;
        sv->value = s->value;
        g_ptr_array_add(list, sv);
    }
    return list;
}

static void
fill_resctrl(PerfEventInfo *info, const QphVmResctrlValue *rv,
             gboolean per_thread)
{
    info->source = PERF_EVENT_SOURCE_RESCTRL;
    info->unit = unit_from_name(qph_resctrl_feature_info(rv->feature)->unit);
    /* A total only when at least one L3 domain could be read. */
    info->has_value = rv->reading.n_ok > 0;
    info->value = rv->reading.total;
    if (per_thread) {
        info->has_domains = TRUE;
        info->domains = qph_new_PerfDomainValueList();
        for (guint i = 0; rv->reading.domains && i < rv->reading.domains->len;
             i++) {
            const QphResctrlDomainValue *d = &g_array_index(
                rv->reading.domains, QphResctrlDomainValue, i);
            PerfDomainValue *dv = g_new0(PerfDomainValue, 1);

            dv->domain = d->domain;
            dv->status = domain_statuses[d->status];
            dv->has_value = d->status == QPH_RESCTRL_VALUE_OK;
            dv->value = d->value;
            dv->has_assigned = d->has_assigned;
            dv->assigned = d->assigned;
            if (d->subs) {
                dv->has_sub_domains = TRUE;
                dv->sub_domains = sub_domain_values(d->subs);
            }
            g_ptr_array_add(info->domains, dv);
        }
    }
}

static const QphPerfSetEventValue *
reading_find_perf(const QphVmReading *reading, const char *name)
{
    for (guint i = 0; i < reading->perf->n_events; i++) {
        if (g_str_equal(reading->perf->events[i].name, name)) {
            return &reading->perf->events[i];
        }
    }
    return NULL;
}

static const QphVmResctrlValue *
reading_find_resctrl(const QphVmReading *reading, const char *name)
{
    QphResctrlFeature f;

    if (!qph_resctrl_feature_from_event(name, &f)) {
        return NULL;
    }
    for (guint i = 0; i < reading->resctrl->len; i++) {
        const QphVmResctrlValue *v =
            &g_array_index(reading->resctrl, QphVmResctrlValue, i);

        if (v->feature == f) {
            return v;
        }
    }
    return NULL;
}

/* When counting started, in QMP's timestamp form. */
static void
fill_enabled_at(PerfEventInfo *info, QphVm *vm)
{
    gint64 at;

    if (qph_vm_get_enabled_at(vm, info->name, &at)) {
        info->has_enabled_at = TRUE;
        info->enabled_at = g_new0(PerfTimestamp, 1);
        info->enabled_at->seconds = at / G_USEC_PER_SEC;
        info->enabled_at->microseconds = at % G_USEC_PER_SEC;
    }
}

/* One entry: known to the catalog, enabled, or both. */
static PerfEventInfo *
event_info(DispatchContext *ctx, const char *name, gboolean per_thread)
{
    const QphPerfCatalogEntry *entry = qph_perf_catalog_lookup(name);
    const QphPerfSetEventValue *pv = reading_find_perf(ctx->reading, name);
    const QphVmResctrlValue *rv = reading_find_resctrl(ctx->reading, name);
    PerfEventInfo *info = g_new0(PerfEventInfo, 1);

    info->name = g_strdup(name);
    info->source = entry && entry->resctrl ? PERF_EVENT_SOURCE_RESCTRL
                                           : PERF_EVENT_SOURCE_PERF;
    info->unit = unit_from_name(entry ? entry->unit : NULL);
    if (entry && entry->description) {
        info->has_description = TRUE;
        info->description = g_strdup(entry->description);
    }
    if (pv) {
        info->enabled = TRUE;
        fill_perf(info, ctx->vm, ctx->reading, pv, per_thread);
    } else if (rv) {
        info->enabled = TRUE;
        fill_resctrl(info, rv, per_thread);
    }
    if (info->enabled) {
        fill_enabled_at(info, ctx->vm);
    }
    return info;
}

GPtrArray *
qph_qmp_query_perf_events(gboolean has_names, GPtrArray *names,
                          gboolean has_per_thread, gboolean per_thread,
                          gpointer opaque, GError **error)
{
    DispatchContext *ctx = opaque;
    GPtrArray *list = qph_new_PerfEventInfoList();
    g_autoptr(GPtrArray) all = g_ptr_array_new();

    /* libvirt's names always, then whatever else is enabled. */
    for (guint i = 0; i < QPH_PERF_CATALOG_N_LIBVIRT; i++) {
        g_ptr_array_add(all, (gpointer)qph_perf_catalog_get(i)->name);
    }
    /* Telemetry events beyond libvirt's names: when enabled. */
    for (guint i = QPH_PERF_CATALOG_N_LIBVIRT; i < QPH_PERF_CATALOG_LAST; i++) {
        const char *name = qph_perf_catalog_get(i)->name;

        if (reading_find_resctrl(ctx->reading, name)) {
            g_ptr_array_add(all, (gpointer)name);
        }
    }
    for (guint i = 0; i < ctx->reading->perf->n_events; i++) {
        const char *name = ctx->reading->perf->events[i].name;

        if (!qph_perf_catalog_lookup(name)) {
            g_ptr_array_add(all, (gpointer)name);
        }
    }
    if (has_names) {
        /* As asked, in that order; a name neither known nor enabled is
         * reported as not enabled. */
        for (guint i = 0; i < names->len; i++) {
            g_ptr_array_add(list,
                            event_info(ctx, names->pdata[i], per_thread));
        }
    } else {
        for (guint i = 0; i < all->len; i++) {
            g_ptr_array_add(list, event_info(ctx, all->pdata[i], per_thread));
        }
    }
    return list;
}

/* ---- Running a command ----------------------------------------------- */

typedef struct {
    const QphQmpCommand *cmd;
    QmpJson *args;
    QphVm *vm;
    QphDispatchDone done;
    gpointer data;
} QueryJob;

static void
run_marshal(const QphQmpCommand *cmd, const QmpJson *args,
            DispatchContext *ctx, QphDispatchDone done, gpointer data)
{
    GError *error = NULL;
    GString *ret = g_string_sized_new(256);

    if (!cmd->marshal_text(args, ret, ctx, &error)) {
        g_string_free(ret, TRUE);
        done(data, NULL, error);
        return;
    }
    done(data, g_string_free(ret, FALSE), NULL);
}

static void
query_read_done(gpointer data, QphVmReading *reading, GError *error)
{
    QueryJob *job = data;
    g_autoptr(QphVmReading) owned = reading;
    DispatchContext ctx = { .vm = job->vm, .reading = reading };

    if (error) {
        job->done(job->data, NULL, error);
    } else {
        run_marshal(job->cmd, job->args, &ctx, job->done, job->data);
    }
    qmp_json_free(job->args);
    g_free(job);
}

void
qph_dispatch_run(QphProxy *proxy, const char *command, QmpJson *args,
                 QphDispatchDone done, gpointer data)
{
    const QphQmpCommand *cmd = qph_qmp_command_lookup(command);
    QphVm *vm = qph_proxy_get_vm(proxy);
    g_autoptr(QmpJson) owned = args;

    if (!cmd || !vm) {
        done(data, NULL,
             g_error_new(QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                         "The command %s has not been found", command));
        return;
    }
    if (cmd == &qph_qmp_commands[QPH_QMP_COMMAND_QUERY_PERF_EVENTS]) {
        QueryJob *job = g_new0(QueryJob, 1);
        QmpJson *pt = args ? qmp_json_object_get(args, "per-thread") : NULL;

        job->cmd = cmd;
        job->args = g_steal_pointer(&owned);
        job->vm = vm;
        job->done = done;
        job->data = data;
        /* Labels are needed only for per-thread answers. */
        qph_vm_read(vm, pt && pt->type == QMP_JSON_BOOL && pt->b,
                    query_read_done, job);
        return;
    }
    {
        DispatchContext ctx = { .vm = vm };

        run_marshal(cmd, args, &ctx, done, data);
    }
}
