/*
 * state.c: the state file a restarted attach-mode helper reads
 *
 * One GKeyFile per QEMU in the runtime directory, named
 * "qemu-PID-STARTTIME.state":
 *
 *   [state]
 *   pid=4711
 *   start-time=1234567
 *   events=task_clock;page_faults;
 *
 * It is written whenever the enabled set changes, through
 * "qemu-PID-STARTTIME.state.tmp" and rename(), and read once, when a
 * helper meets QEMU.  The pid and start time inside must match the name:
 * a file copied or renamed by hand is refused rather than trusted.  All of
 * this runs in the main loop on a tmpfs (/run): small writes, no fsync.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/state.h"
#include "helper/threads.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_GROUP "state"
#define STATE_PREFIX "qemu-"
#define STATE_SUFFIX ".state"
#define STATE_TMP_SUFFIX ".state.tmp"
/* A file of ours holds a few event names; anything bigger is not ours. */
#define STATE_MAX_SIZE (64 * 1024)
struct QphState {
    char *path;
    char *tmp_path;
    pid_t pid;
    guint64 start_time;
};

/* Field 3 (the state letter) and field 22 (starttime) of /proc/@pid/stat. */
static gboolean
read_proc_stat(pid_t pid, char *state, guint64 *start_time, GError **error)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) fields = qph_threads_read_stat(path, 22 - 2, &local);

    if (!fields || !g_ascii_string_to_unsigned(fields[22 - 3], 10, 0,
                                                G_MAXUINT64, start_time, NULL)) {
        g_set_error(error, G_FILE_ERROR,
                    local ? local->code : G_FILE_ERROR_INVAL,
                    "Unable to read the start time of process %d: %s",
                    (int)pid,
                    local ? local->message : "unexpected format of its stat");
        return FALSE;
    }
    *state = fields[0][0];
    return TRUE;
}

gboolean
qph_state_get_start_time(pid_t pid, guint64 *start_time, GError **error)
{
    char state;

    return read_proc_stat(pid, &state, start_time, error);
}

/* Whether the process @pid started at @start_time still runs. */
static gboolean
process_alive(pid_t pid, guint64 start_time)
{
    guint64 now_start;
    char state;

    return read_proc_stat(pid, &state, &now_start, NULL) &&
           now_start == start_time && state != 'Z' && state != 'X';
}

QphState *
qph_state_new(const char *dir, pid_t pid, GError **error)
{
    g_autoptr(QphState) state = g_new0(QphState, 1);
    g_autofree char *base = NULL;

    if (!qph_state_get_start_time(pid, &state->start_time, error)) {
        return NULL;
    }
    state->pid = pid;
    base = g_strdup_printf(STATE_PREFIX "%d-%" G_GUINT64_FORMAT, (int)pid,
                           state->start_time);
    state->path = g_strconcat(dir, "/", base, STATE_SUFFIX, NULL);
    state->tmp_path = g_strconcat(dir, "/", base, STATE_TMP_SUFFIX, NULL);
    return g_steal_pointer(&state);
}

void
qph_state_free(QphState *state)
{
    if (!state) {
        return;
    }
    g_free(state->path);
    g_free(state->tmp_path);
    g_free(state);
}

const char *
qph_state_get_path(const QphState *state)
{
    return state->path;
}

gboolean
qph_state_load(QphState *state, GStrv *events, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    g_autofree char *text = NULL;
    gsize len = 0;
    struct stat st;
    guint64 pid, start_time;

    *events = NULL;
    if (stat(state->path, &st) < 0) {
        int err = errno;

        if (err == ENOENT) {
            return TRUE;
        }
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to read the state file '%s': %s", state->path,
                    g_strerror(err));
        return FALSE;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > STATE_MAX_SIZE) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Unable to read the state file '%s': not a regular file "
                    "of at most %d bytes",
                    state->path, STATE_MAX_SIZE);
        return FALSE;
    }
    if (!g_file_get_contents(state->path, &text, &len, &local) ||
        !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Unable to read the state file '%s': %s", state->path,
                    local->message);
        return FALSE;
    }
    pid = g_key_file_get_uint64(kf, STATE_GROUP, "pid", NULL);
    start_time = g_key_file_get_uint64(kf, STATE_GROUP, "start-time", NULL);
    if (pid != (guint64)state->pid || start_time != state->start_time) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "The state file '%s' is not about QEMU pid %d started at "
                    "%" G_GUINT64_FORMAT,
                    state->path, (int)state->pid, state->start_time);
        return FALSE;
    }
    *events =
        g_key_file_get_string_list(kf, STATE_GROUP, "events", NULL, &local);
    if (!*events) {
        if (!g_error_matches(local, G_KEY_FILE_ERROR,
                             G_KEY_FILE_ERROR_KEY_NOT_FOUND)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "Unable to read the state file '%s': %s", state->path,
                        local->message);
            return FALSE;
        }
        *events = g_new0(char *, 1);
    }
    return TRUE;
}

/* write() all of @len bytes. */
static gboolean
write_all(int fd, const char *data, gsize len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return FALSE;
        }
        data += n;
        len -= (gsize)n;
    }
    return TRUE;
}

gboolean
qph_state_save(QphState *state, const char *const *events, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *text = NULL;
    gsize len = 0;
    int fd;
    gboolean ok;

    g_key_file_set_comment(kf, NULL, NULL,
                           " qemu-perf-helper: the events enabled for this "
                           "QEMU, enabled again if the helper restarts",
                           NULL);
    g_key_file_set_uint64(kf, STATE_GROUP, "pid", (guint64)state->pid);
    g_key_file_set_uint64(kf, STATE_GROUP, "start-time", state->start_time);
    g_key_file_set_string_list(kf, STATE_GROUP, "events", events,
                               g_strv_length((char **)events));
    text = g_key_file_to_data(kf, &len, NULL);

    fd = open(state->tmp_path,
              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to write the state file '%s': %s", state->tmp_path,
                    g_strerror(err));
        return FALSE;
    }
    ok = write_all(fd, text, len);
    if (close(fd) < 0) {
        ok = FALSE;
    }
    if (!ok || rename(state->tmp_path, state->path) < 0) {
        int err = errno;

        unlink(state->tmp_path);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to write the state file '%s': %s", state->path,
                    g_strerror(err));
        return FALSE;
    }
    return TRUE;
}

gboolean
qph_state_remove(QphState *state, GError **error)
{
    if (unlink(state->path) < 0 && errno != ENOENT) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to remove the state file '%s': %s", state->path,
                    g_strerror(err));
        return FALSE;
    }
    return TRUE;
}

/**
 * parse_name:
 * "qemu-PID-START.state" or "qemu-PID-START.state.tmp", exactly: digits
 * only, no sign, nothing after.  Anything else is not ours.
 */
static gboolean
parse_name(const char *name, pid_t *pid, guint64 *start_time)
{
    g_autofree char *key = NULL;
    g_auto(GStrv) parts = NULL;
    size_t len = strlen(name);
    size_t suffix;
    guint64 p;

    if (g_str_has_suffix(name, STATE_SUFFIX)) {
        suffix = strlen(STATE_SUFFIX);
    } else if (g_str_has_suffix(name, STATE_TMP_SUFFIX)) {
        suffix = strlen(STATE_TMP_SUFFIX);
    } else {
        return FALSE;
    }
    if (!g_str_has_prefix(name, STATE_PREFIX) ||
        len < strlen(STATE_PREFIX) + suffix) {
        return FALSE;
    }
    key = g_strndup(name + strlen(STATE_PREFIX),
                    len - strlen(STATE_PREFIX) - suffix);
    parts = g_strsplit(key, "-", 0);
    if (g_strv_length(parts) != 2 ||
        !g_ascii_string_to_unsigned(parts[0], 10, 1, G_MAXINT32, &p, NULL) ||
        !g_ascii_string_to_unsigned(parts[1], 10, 0, G_MAXUINT64, start_time,
                                    NULL)) {
        return FALSE;
    }
    *pid = (pid_t)p;
    return TRUE;
}

guint
qph_state_remove_stale(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    guint removed = 0;

    if (!d) {
        return 0;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        guint64 start_time;
        pid_t pid;

        if (!parse_name(name, &pid, &start_time) ||
            process_alive(pid, start_time)) {
            continue;
        }
        path = g_build_filename(dir, name, NULL);
        if (unlink(path) == 0) {
            g_debug("Removed the state file of a QEMU that is gone: %s", path);
            removed++;
        } else if (errno != ENOENT) {
            g_message("Unable to remove the stale state file '%s': %s", path,
                      g_strerror(errno));
        }
    }
    return removed;
}
