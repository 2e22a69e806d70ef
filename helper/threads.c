/*
 * threads.c: the thread ids of a process, from /proc
 *
 * /proc/PID/task is the only complete list: a QEMU started before the
 * helper already has its vCPU and iothreads, which perf's inherit flag
 * alone would never see.  The list is a snapshot; perf-set.c combines it
 * with inherit, and with the pid namespace's last allocated id, to miss
 * no thread created while it opens counters.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/threads.h"
#include "qmp/qmp-error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse a /proc directory entry as a thread id; FALSE for anything else. */
static gboolean
qph_threads_parse_tid(const char *name, pid_t *tid)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(name, 10, 1, G_MAXINT32, &v, NULL)) {
        return FALSE;
    }
    *tid = (pid_t)v;
    return TRUE;
}

static gint
qph_threads_compare(gconstpointer a, gconstpointer b)
{
    pid_t x = *(const pid_t *)a;
    pid_t y = *(const pid_t *)b;

    return (x > y) - (x < y);
}

/**
 * qph_threads_list: read /proc/@pid/task.
 *
 * Returns a sorted GArray of pid_t (never empty on success: a live process
 * has at least one thread), or NULL with @error set.
 */
GArray *
qph_threads_list(pid_t pid, GError **error)
{
    g_autofree char *path = NULL;
    g_autoptr(GError) local = NULL;
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GArray) tids = NULL;
    const char *entry;

    if (pid <= 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot list the threads of process %d: not a valid "
                    "process id.",
                    (int)pid);
        return NULL;
    }

    path = g_strdup_printf("/proc/%d/task", (int)pid);
    dir = g_dir_open(path, 0, &local);
    if (!dir) {
        const char *why =
            g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                ? "the process does not exist (it may have exited)"
                : local->message;
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot list the threads of process %d in %s: %s.",
                    (int)pid, path, why);
        return NULL;
    }

    tids = g_array_sized_new(FALSE, FALSE, sizeof(pid_t), 16);
    while ((entry = g_dir_read_name(dir))) {
        pid_t tid;

        if (qph_threads_parse_tid(entry, &tid)) {
            g_array_append_val(tids, tid);
        }
    }
    if (tids->len == 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot list the threads of process %d: %s is empty "
                    "(the process is exiting).",
                    (int)pid, path);
        return NULL;
    }
    g_array_sort(tids, qph_threads_compare);
    return g_steal_pointer(&tids);
}

/**
 * qph_threads_get_name: read /proc/@pid/task/@tid/comm, trimmed.
 *
 * Returns a newly allocated string, or NULL with @error set.
 */
char *
qph_threads_get_name(pid_t pid, pid_t tid, GError **error)
{
    g_autofree char *path =
        g_strdup_printf("/proc/%d/task/%d/comm", (int)pid, (int)tid);
    g_autofree char *contents = NULL;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(path, &contents, NULL, &local)) {
        const char *why =
            g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                ? "the thread does not exist (it may have exited)"
                : local->message;
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot read the name of thread %d of process %d from "
                    "%s: %s.",
                    (int)tid, (int)pid, path, why);
        return NULL;
    }
    g_strstrip(contents);
    return g_steal_pointer(&contents);
}

/**
 * qph_threads_contain: binary search in a list from qph_threads_list().
 */
gboolean
qph_threads_contain(const GArray *tids, pid_t tid)
{
    guint lo = 0, hi = tids ? tids->len : 0;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        pid_t t = g_array_index(tids, pid_t, mid);

        if (t == tid) {
            return TRUE;
        }
        if (t < tid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return FALSE;
}

/**
 * qph_threads_read_stat: the fields of the /proc stat file @path from
 * field 3 (the state letter) on, so field N is at index N - 3; NULL with
 * @error set (G_FILE_ERROR) when it cannot be read or has fewer than
 * @min_fields of them.  The command name (field 2) may hold spaces and
 * parentheses, so fields are counted from its last ')'.
 */
GStrv
qph_threads_read_stat(const char *path, guint min_fields, GError **error)
{
    g_autofree char *stat = NULL;
    g_auto(GStrv) fields = NULL;
    const char *end;

    if (!g_file_get_contents(path, &stat, NULL, error)) {
        return NULL;
    }
    end = strrchr(stat, ')');
    if (end && end[1] == ' ') {
        fields = g_strsplit(end + 2, " ", 0);
    }
    if (!fields || g_strv_length(fields) < min_fields || !fields[0][0]) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Unexpected format of %s", path);
        return NULL;
    }
    return g_steal_pointer(&fields);
}

/**
 * qph_threads_exists: whether thread @tid of @pid is alive right now:
 * listed in /proc and neither exiting nor dead.
 */
gboolean
qph_threads_exists(pid_t pid, pid_t tid)
{
    g_autofree char *path =
        g_strdup_printf("/proc/%d/task/%d/stat", (int)pid, (int)tid);
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) fields = qph_threads_read_stat(path, 7, &error);
    guint64 flags;

    if (!fields) {
        /* Unreadable: gone.  A format this code does not know: alive. */
        return g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
    }
    /* A thread that is exiting (PF_EXITING, 0x4, in field 9) or dead still
     * has its /proc entry for a moment, but perf_event_open on it fails:
     * it is gone, not a failure of the request. */
    if (strchr("ZXx", fields[0][0])) {
        return FALSE;
    }
    flags = g_ascii_strtoull(fields[9 - 3], NULL, 10);
    return !(flags & 0x4);
}

/**
 * qph_threads_last_pid: /proc/sys/kernel/ns_last_pid, or -1.
 */
gint64
qph_threads_last_pid(void)
{
    g_autofree char *contents = NULL;
    guint64 v;

    if (!g_file_get_contents("/proc/sys/kernel/ns_last_pid", &contents, NULL,
                             NULL)) {
        return -1;
    }
    g_strstrip(contents);
    if (!g_ascii_string_to_unsigned(contents, 10, 0, G_MAXINT32, &v, NULL)) {
        return -1;
    }
    return (gint64)v;
}
