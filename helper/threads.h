/*
 * threads.h: the thread ids of a process, from /proc
 *
 * The perf backend opens one counter per thread of the QEMU process, so it
 * needs the current list of thread ids (/proc/PID/task) and, for labels,
 * each thread's name (/proc/PID/task/TID/comm: "CPU 0/KVM", "IO iothread0").
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

/*
 * The thread ids of @pid in ascending order, as a GArray of pid_t, or NULL
 * with @error set (errors are in the QMP_ERROR domain).
 */
GArray *qph_threads_list(pid_t pid, GError **error);

/* The name of thread @tid of process @pid without the trailing newline. */
char *qph_threads_get_name(pid_t pid, pid_t tid, GError **error);

/* Whether @tid is in @tids, a sorted GArray of pid_t (NULL: empty). */
gboolean qph_threads_contain(const GArray *tids, pid_t tid);

/* TRUE when thread @tid of @pid is alive: listed in /proc, neither
 * exiting nor dead. */
gboolean qph_threads_exists(pid_t pid, pid_t tid);

/* The fields of a /proc stat file from field 3 (the state) on: field N at
 * index N - 3.  NULL with @error when unreadable or shorter than
 * @min_fields. */
GStrv qph_threads_read_stat(const char *path, guint min_fields,
                            GError **error);

/*
 * The last process id the kernel allocated in this pid namespace
 * (/proc/sys/kernel/ns_last_pid), or -1 when it cannot be read.
 */
gint64 qph_threads_last_pid(void);
