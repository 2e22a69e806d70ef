/*
 * perf-priv.h: test hooks of perf.c
 *
 * Lets tests decide what the privilege check sees (the paranoid file, the
 * capability check) and what perf_event_open returns, so the unprivileged
 * fallback can be exercised as root.  Only perf.c and tests include this.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QPH_PERF_PRIV_H_ALLOW
#error "perf-priv.h may only be included by perf.c or test suites"
#endif
#pragma once

#include "helper/perf.h"

typedef struct {
    /* NULL: /proc/sys/kernel/perf_event_paranoid */
    const char *paranoid_path;
    /*
     * NULL: the real check (CAP_PERFMON or CAP_SYS_ADMIN in the effective
     * set).  Return TRUE to claim kernel counting is allowed.
     */
    gboolean (*is_privileged)(void);
    /* NULL: the perf_event_open system call.  Returns an fd or -1/errno. */
    int (*open)(struct perf_event_attr *attr, pid_t tid, int cpu, int group_fd,
                unsigned long flags);
} QphPerfTestHooks;

/* Install @hooks (copied); NULL restores the real behaviour. */
void qph_perf_set_test_hooks(const QphPerfTestHooks *hooks);

/* The value of the paranoid file, or G_MININT when it cannot be read. */
int qph_perf_read_paranoid(void);

/* Whether kernel counting is expected to be allowed for this process. */
gboolean qph_perf_kernel_counting_allowed(void);
