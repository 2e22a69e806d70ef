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
 * Every request's work is bounded: at most QPH_DISPATCH_MAX_ENTRIES entries
 * (refused with an error naming the limit), each name answered once, and
 * the memory of a large request or reply is given back to the system once
 * it is done (malloc_trim), so the peak does not stay.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/dispatch.h"
#include "helper/perf-catalog.h"
#include "helper/threads.h"
#include "helper/trim.h"
#include "helper/vm.h"
#include "qmp/qmp-error.h"

#include "qph-qapi-commands.h"
#include "qph-qapi-types.h"

#include <string.h>

/* A request or reply past this size is followed by malloc_trim(). */
#define DISPATCH_TRIM_BYTES (64 * 1024)
#define DISPATCH_TRIM_ENTRIES 64

/* What a handler sees as its opaque pointer. */
typedef struct {
    QphVm *vm;
    QphVmReading *reading; /* query-perf-events only */
    gboolean large;        /* a request worth a malloc_trim() after it */
    GPtrArray *values;     /* blocks of PerfThreadValue, see fill_perf() */
} DispatchContext;

/* Refuse a list argument past QPH_DISPATCH_MAX_ENTRIES, before any work. */
static gboolean
check_entries(DispatchContext *ctx, const char *param, guint n, GError **error)
{
    ctx->large = ctx->large || n > DISPATCH_TRIM_ENTRIES;
    if (n > QPH_DISPATCH_MAX_ENTRIES) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Parameter '%s' has %u entries; the helper accepts at "
                    "most %d",
                    param, n, QPH_DISPATCH_MAX_ENTRIES);
        return FALSE;
    }
    return TRUE;
}

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
    g_autofree QphPerfChange *changes = NULL;

    if (!check_entries(ctx, "events", events->len, error)) {
        return FALSE;
    }
    changes = g_new0(QphPerfChange, events->len);
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

/* Fill @tv; its strings are the label's (see fill_perf()). */
static void
thread_value(PerfThreadValue *tv, QphVm *vm, GHashTable *labels,
             const QphPerfThreadValue *t)
{
    const QphThreadLabel *label =
        labels ? g_hash_table_lookup(labels, GINT_TO_POINTER(t->tid)) : NULL;

    tv->thread_id = t->tid;
    tv->value = t->value;
    tv->scaled = t->scaled;
    tv->unscheduled = t->unscheduled;
    if (label) {
        tv->name = (char *)(label->name ? label->name : "");
        tv->kind = thread_kinds[label->kind];
        if (label->kind == QPH_THREAD_VCPU) {
            tv->has_cpu_index = label->cpu_index >= 0;
            tv->cpu_index = label->cpu_index;
            tv->has_qom_path = label->qom_path != NULL;
            tv->qom_path = label->qom_path;
        } else if (label->kind == QPH_THREAD_IOTHREAD) {
            tv->has_id = label->iothread_id != NULL;
            tv->id = label->iothread_id;
        }
    } else {
        tv->name = (char *)"";
        tv->kind = t->tid == qph_vm_get_pid(vm) ? PERF_THREAD_KIND_MAIN_LOOP
                                                : PERF_THREAD_KIND_UNKNOWN;
    }
}

/*
 * The per-thread values are most of a per-thread answer: instead of three
 * allocations each (the struct, its name and QOM path), they sit in one
 * block per event kept in @values, their strings borrowed from the
 * reading's labels, and info->threads holds them without a free function.
 * The generated code only writes and unrefs the list; job_start() frees
 * the blocks, then the reading, once the reply is written.
 */
static void
fill_perf(PerfEventInfo *info, QphVm *vm, const QphVmReading *reading,
          const QphPerfSetEventValue *ev, gboolean per_thread,
          GPtrArray *values)
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
        PerfThreadValue *block = g_new0(PerfThreadValue, MAX(ev->n_threads, 1));
        guint n = 0;

        g_ptr_array_add(values, block);
        info->threads = g_ptr_array_sized_new(ev->n_threads);
        /* Exited threads' counters are in exited-value, not listed. */
        for (guint i = 0; i < ev->n_threads; i++) {
            if (!ev->threads[i].exited) {
                thread_value(&block[n], vm, reading->labels, &ev->threads[i]);
                g_ptr_array_add(info->threads, &block[n++]);
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
        fill_perf(info, ctx->vm, ctx->reading, pv, per_thread, ctx->values);
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
        /* As asked, in that order, each name once (where first asked); a
         * name neither known nor enabled is reported as not enabled. */
        g_autoptr(GHashTable) seen = NULL;

        if (!check_entries(ctx, "names", names->len, error)) {
            g_ptr_array_unref(list);
            return NULL;
        }
        seen = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < names->len; i++) {
            if (g_hash_table_add(seen, names->pdata[i])) {
                g_ptr_array_add(list,
                                event_info(ctx, names->pdata[i], per_thread));
            }
        }
    } else {
        for (guint i = 0; i < all->len; i++) {
            g_ptr_array_add(list, event_info(ctx, all->pdata[i], per_thread));
        }
    }
    return list;
}

/* ---- Running a command ----------------------------------------------- */

/*
 * A command is a Job.  Jobs start in arrival order from one queue.  A
 * set-perf-events that meets another resctrl user's lock on the resctrl
 * root (G_FILE_ERROR_AGAIN: the flock is only ever tried, never waited
 * for) changes nothing and stays at the head of the queue; a timer tries
 * it again every DISPATCH_RETRY_MS until QPH_RESCTRL_LOCK_TIMEOUT_MS have
 * passed, then it fails.  The helper's later commands wait behind it, so
 * they still run in the order they were asked; forwarded commands and
 * every client's I/O go on meanwhile.  The reply is delivered through the
 * job's QphDispatchDone whenever it is ready, as for a query that waits
 * for QEMU.  A helper serves one VM, so the queue is this file's own.
 */
#define DISPATCH_RETRY_MS 10

typedef struct {
    const QphQmpCommand *cmd;
    QmpJson *args;
    QphVm *vm;
    QphDispatchDone done;
    gpointer data;
    gint64 deadline; /* of the resctrl lock; 0 before the first try */
} Job;

static GQueue jobs = G_QUEUE_INIT; /* not started yet, in arrival order */
static guint retry_source;         /* the head waits for the resctrl lock */
static gboolean pumping;

static void
job_free(Job *job)
{
    qmp_json_free(job->args);
    g_free(job);
}

/* The last reply's length of each command, up to DISPATCH_HINT_MAX: the
 * next reply starts with that much room (and an eighth more, as counters
 * grow), so a per-thread answer is not copied as it doubles its way up.
 * The buffer is the reply itself and goes when the reply has been written. */
#define DISPATCH_HINT_MAX (1024 * 1024)
static gsize reply_len_hint[QPH_QMP_COMMAND__LAST];

/* Run the generated marshaller: the reply's text in @ret_json, or @error.
 * Returns whether the request or its reply was large (see helper/trim.c). */
static gboolean
marshal(const Job *job, DispatchContext *ctx, char **ret_json, GError **error)
{
    gsize *hint = &reply_len_hint[job->cmd - qph_qmp_commands];
    GString *ret = g_string_sized_new(MAX(256, *hint + *hint / 8));
    gboolean large;

    *ret_json = NULL;
    if (!job->cmd->marshal_text(job->args, ret, ctx, error)) {
        g_string_free(ret, TRUE);
        return ctx->large;
    }
    large = ctx->large || ret->len > DISPATCH_TRIM_BYTES;
    *hint = MIN(ret->len, DISPATCH_HINT_MAX);
    *ret_json = g_string_free(ret, FALSE);
    return large;
}

static void
job_finish(Job *job, gboolean large, char *ret_json, GError *error)
{
    job->done(job->data, ret_json, error);
    job_free(job);
    if (large) {
        qph_trim_soon();
    }
}

static gboolean retry_head(gpointer unused);

/*
 * Try @job once.  Returns FALSE when it waits for the resctrl lock: then it
 * is back at the head of the queue and the retry timer runs.
 */
static gboolean
job_start(Job *job)
{
    DispatchContext ctx = { .vm = job->vm };
    GError *error = NULL;
    char *ret_json = NULL;
    gboolean large;

    if (job->cmd == &qph_qmp_commands[QPH_QMP_COMMAND_QUERY_PERF_EVENTS]) {
        QmpJson *pt =
            job->args ? qmp_json_object_get(job->args, "per-thread") : NULL;

        /* Labels are needed only for per-thread answers. */
        ctx.reading = qph_vm_read(job->vm, pt && pt->type == QMP_JSON_BOOL &&
                                               pt->b, &error);
        if (!ctx.reading) {
            job_finish(job, FALSE, NULL, error);
            return TRUE;
        }
        ctx.values = g_ptr_array_new_with_free_func(g_free);
        large = marshal(job, &ctx, &ret_json, &error);
        g_clear_pointer(&ctx.values, g_ptr_array_unref);
        g_clear_pointer(&ctx.reading, qph_vm_reading_free);
        job_finish(job, large, ret_json, error);
        return TRUE;
    }
    if (!job->deadline) {
        job->deadline = g_get_monotonic_time() +
                        QPH_RESCTRL_LOCK_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
    }
    large = marshal(job, &ctx, &ret_json, &error);
    if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN)) {
        if (g_get_monotonic_time() < job->deadline) {
            g_clear_error(&error);
            g_queue_push_head(&jobs, job);
            retry_source = g_timeout_add(DISPATCH_RETRY_MS, retry_head, NULL);
            return FALSE;
        }
        g_prefix_error(&error, "Timed out after %d ms waiting for the lock: ",
                       QPH_RESCTRL_LOCK_TIMEOUT_MS);
    }
    job_finish(job, large, ret_json, error);
    return TRUE;
}

/* Start queued jobs in order until one waits for the resctrl lock.  A job's
 * reply may bring the next request at once: it joins the queue and this
 * loop (not a nested one) starts it. */
static void
dispatch_pump(void)
{
    Job *job;

    if (pumping) {
        return;
    }
    pumping = TRUE;
    while (!retry_source && (job = g_queue_pop_head(&jobs))) {
        job_start(job);
    }
    pumping = FALSE;
}

static gboolean
retry_head(gpointer unused)
{
    retry_source = 0;
    dispatch_pump();
    return G_SOURCE_REMOVE;
}

void
qph_dispatch_run(QphVm *vm, const char *command, QmpJson *args,
                 QphDispatchDone done, gpointer data)
{
    const QphQmpCommand *cmd = qph_qmp_command_lookup(command);
    g_autoptr(QmpJson) owned = args;
    Job *job;

    if (!cmd || !vm) {
        done(data, NULL,
             g_error_new(QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND,
                         "The command %s has not been found", command));
        return;
    }
    job = g_new0(Job, 1);
    job->cmd = cmd;
    job->args = g_steal_pointer(&owned);
    job->vm = vm;
    job->done = done;
    job->data = data;
    g_queue_push_tail(&jobs, job);
    dispatch_pump();
}
