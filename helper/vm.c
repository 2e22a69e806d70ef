/*
 * vm.c: what the helper knows and counts about its one VM
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/vm.h"
#include "helper/proxy.h"

struct QphVm {
    QphProxy *proxy;
    pid_t pid;
    char *resctrl_root;
};

QphVm *
qph_vm_new(QphProxy *proxy, pid_t pid, const char *resctrl_root)
{
    QphVm *vm = g_new0(QphVm, 1);

    vm->proxy = proxy;
    vm->pid = pid;
    vm->resctrl_root = g_strdup(resctrl_root);
    return vm;
}

void
qph_vm_free(QphVm *vm)
{
    if (!vm) {
        return;
    }
    g_free(vm->resctrl_root);
    g_free(vm);
}

void
qph_vm_note_event(QphVm *vm, const QphScannedMessage *event)
{
}

void
qph_vm_note_reply(QphVm *vm, const char *command,
                  const QphScannedMessage *reply)
{
}
