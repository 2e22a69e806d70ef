/*
 * vm.h: what the helper knows and counts about its one VM
 *
 * The enabled perf events and resctrl monitoring belong to the VM, not to a
 * client: every client sees the same set.  Thread labels (vCPU index and
 * QOM path, iothread ids) come from thread names in /proc and from QEMU
 * through the helper's own upstream requests, which no client sees, made
 * in the background and never waited for.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "helper/perf-set.h"
#include "helper/resctrl.h"
#include "helper/upstream.h"

typedef struct QphVm QphVm;

typedef enum {
    QPH_THREAD_MAIN_LOOP,
    QPH_THREAD_VCPU,
    QPH_THREAD_IOTHREAD,
    QPH_THREAD_OTHER,
    QPH_THREAD_UNKNOWN, /* its name does not say, QEMU not asked yet */
} QphThreadKind;

/* What QEMU and /proc say about one thread. */
typedef struct {
    pid_t tid;
    QphThreadKind kind;
    char *name;        /* /proc comm: "CPU 0/KVM", "IO iothread0", ... */
    gint64 cpu_index;  /* vCPU threads; -1 otherwise */
    char *qom_path;    /* vCPU threads; NULL otherwise */
    char *iothread_id; /* iothreads; NULL otherwise */
} QphThreadLabel;

/* A resctrl event's reading. */
typedef struct {
    QphResctrlFeature feature;
    QphResctrlReading reading;
} QphVmResctrlValue;

/* Everything query-perf-events reports, taken at one moment. */
typedef struct {
    QphPerfSetReading *perf;     /* enabled perf events */
    GArray *resctrl;             /* QphVmResctrlValue, enabled ones */
    GHashTable *labels;          /* tid -> QphThreadLabel *, or NULL */
    GArray *tids;                /* with labels: live threads, sorted */
} QphVmReading;

void qph_vm_reading_free(QphVmReading *reading);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphVmReading, qph_vm_reading_free)

/* Labels are asked of QEMU through @upstream, which must outlive the VM. */
QphVm *qph_vm_new(QphUpstream *upstream, pid_t pid, const char *resctrl_root);
void qph_vm_free(QphVm *vm);

pid_t qph_vm_get_pid(QphVm *vm);
gboolean qph_vm_is_enabled(QphVm *vm, const char *name);
guint qph_vm_count_fds(QphVm *vm);

/* set-perf-events: all or nothing over perf and resctrl together. */
gboolean qph_vm_set_events(QphVm *vm, const QphPerfChange *changes, guint n,
                           GError **error);

/* An enabled event and when it was enabled (g_get_real_time(), in µs):
 * its value counts from then, so a later time means a reset. */
typedef struct {
    char *name;
    gint64 enabled_at;
} QphVmEnabledEvent;

/* The enabled events (QphVmEnabledEvent *), in the order enabled. */
GPtrArray *qph_vm_get_enabled(QphVm *vm);
/* When @name was enabled; FALSE if it is not enabled. */
gboolean qph_vm_get_enabled_at(QphVm *vm, const char *name, gint64 *at);

/* Called after a qph_vm_set_events() that changed the enabled set. */
typedef void (*QphVmChangedFunc)(QphVm *vm, gpointer data);
void qph_vm_set_changed_func(QphVm *vm, QphVmChangedFunc func, gpointer data);

/* query-perf-events: notes exited threads and reads; with @labels, labels
 * the live counted threads from /proc and cached QEMU answers (asking QEMU
 * again in the background when they may be stale).  Nothing waits on
 * QEMU.  NULL with @error when the counters or the group are unreadable. */
QphVmReading *qph_vm_read(QphVm *vm, gboolean labels, GError **error);

/* Hooks from the proxy: events and forwarded replies that may mean new
 * threads (device_add of a vCPU, object-add of an iothread). */
void qph_vm_note_event(QphVm *vm, const QmpMessage *event);
void qph_vm_note_reply(QphVm *vm, const char *command,
                       const QmpMessage *reply);
