/*
 * vm.h: what the helper knows and counts about its one VM
 *
 * The enabled perf events and resctrl monitoring belong to the VM, not to a
 * client: every client sees the same set.  Thread labels (vCPU index and
 * QOM path, iothread ids) come from QEMU through the helper's own upstream
 * requests.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "helper/upstream.h"

typedef struct QphProxy QphProxy;
typedef struct QphVm QphVm;

QphVm *qph_vm_new(QphProxy *proxy, pid_t pid, const char *resctrl_root);
void qph_vm_free(QphVm *vm);

/* Hooks from the proxy: events and forwarded replies that may mean new
 * threads (device_add of a vCPU, object-add of an iothread). */
void qph_vm_note_event(QphVm *vm, const QphScannedMessage *event);
void qph_vm_note_reply(QphVm *vm, const char *command,
                       const QphScannedMessage *reply);
