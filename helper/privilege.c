/*
 * privilege.c: what the helper keeps after start-up, and who may use it
 *
 * The plan, in the order main() runs it:
 *
 *  1. Before the helper opens anything: close every inherited descriptor
 *     above stderr except --qemu-fd and --listen-fd.  A descriptor leaked
 *     by whoever started us (a management daemon's sockets, a log file)
 *     must not stay reachable from a process every client can drive.
 *  2. Once QEMU is started (launch mode forks it first, so QEMU inherits
 *     nothing of what follows) or attached: PR_SET_NO_NEW_PRIVS, so
 *     nothing the helper ever execs gains privilege.
 *  3. If the helper has capabilities (runs as root, or was given some):
 *     keep only those below, in the effective, permitted and bounding
 *     sets, and clear the inheritable and ambient ones.
 *       CAP_PERFMON      perf_event_open with kernel.perf_event_paranoid
 *                        above what an unprivileged user may do, on
 *                        kernels that know it (5.8+);
 *       CAP_SYS_ADMIN    instead of CAP_PERFMON on older kernels, where
 *                        it is what perf checks;
 *       CAP_SYS_PTRACE   only when QEMU's uid or gid differs from the
 *                        helper's or QEMU's permitted capabilities are not
 *                        a subset of what the helper keeps: the kernel
 *                        checks ptrace access to every thread counted;
 *       CAP_DAC_OVERRIDE only when the listening socket's directory is
 *                        not the helper's own (the socket is created later
 *                        and removed at exit);
 *       CAP_CHOWN        only with --socket-group for a group the helper
 *                        is not a member of (the socket is created later).
 *     resctrl needs nothing extra: its tree belongs to root, and the
 *     kernel lets the owner of a thread or root move it into a group.
 *     Everything else goes (CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SETUID, ...).
 *
 * The raw event allowlist is here too: it is access policy, not perf.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/privilege.h"
#include "helper/perf-catalog.h"
#include "qmp/qmp-error.h"

#include <cap-ng.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Stage 1: descriptors --------------------------------------------- */

static gboolean
fd_kept(int fd, const int *keep, guint n_keep)
{
    for (guint i = 0; i < n_keep; i++) {
        if (keep[i] == fd) {
            return TRUE;
        }
    }
    return FALSE;
}

guint
qph_privilege_close_inherited(const int *keep, guint n_keep)
{
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    struct rlimit lim = { 0 };
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    guint closed = 0;

    /* Tools like valgrind keep their own descriptors above the soft
     * limit they report: those are not ours to close. */
    getrlimit(RLIMIT_NOFILE, &lim);
    if (!dir) {
        return 0;
    }
    while ((de = readdir(dir))) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);

        if (*end || end == de->d_name || fd <= 2 || fd == dirfd(dir) ||
            (rlim_t)fd >= lim.rlim_cur || fd_kept(fd, keep, n_keep)) {
            continue;
        }
        g_array_append_val(fds, (int){ (int)fd });
    }
    closedir(dir);
    for (guint i = 0; i < fds->len; i++) {
        if (close(g_array_index(fds, int, i)) == 0) {
            closed++;
        }
    }
    return closed;
}

/* ---- Stages 2 and 3: no_new_privs, capabilities ------------------------ */

static gboolean
kernel_knows_cap(unsigned int cap)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents("/proc/sys/kernel/cap_last_cap", &text, NULL,
                             NULL)) {
        return cap <= CAP_LAST_CAP;
    }
    return cap <= (unsigned int)g_ascii_strtoull(text, NULL, 10);
}

/* Whether QEMU (@pid) is someone the helper may count without
 * CAP_SYS_PTRACE: same uids and gids, and no permitted capability beyond
 * @kept (a 64-bit mask).  Unknown means no. */
static gboolean
qemu_ptrace_without_cap(pid_t pid, guint64 kept)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    gboolean uid_ok = FALSE, gid_ok = FALSE, caps_ok = FALSE;

    if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL)) {
        return FALSE;
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        const char *l = lines[i];

        if (g_str_has_prefix(l, "Uid:") || g_str_has_prefix(l, "Gid:")) {
            gboolean uid = l[0] == 'U';
            unsigned long long ours = uid ? getuid() : getgid();
            unsigned long long v[4];

            if (sscanf(l + 4, "%llu %llu %llu %llu", &v[0], &v[1], &v[2],
                       &v[3]) != 4) {
                return FALSE;
            }
            if (uid) {
                uid_ok = v[0] == ours && v[1] == ours && v[2] == ours;
            } else {
                gid_ok = v[0] == ours && v[1] == ours && v[2] == ours;
            }
        } else if (g_str_has_prefix(l, "CapPrm:")) {
            guint64 prm = g_ascii_strtoull(l + 7, NULL, 16);

            caps_ok = (prm & ~kept) == 0;
        }
    }
    return uid_ok && gid_ok && caps_ok;
}

static gboolean
in_group(gid_t gid)
{
    gid_t groups[256];
    int n = getgroups(G_N_ELEMENTS(groups), groups);

    if (gid == getegid()) {
        return TRUE;
    }
    for (int i = 0; i < n; i++) {
        if (groups[i] == gid) {
            return TRUE;
        }
    }
    return FALSE;
}

static pid_t
peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        return 0;
    }
    return cred.pid;
}

static void
keep_cap(GArray *keep, guint64 *mask, unsigned int cap)
{
    if (capng_have_capability(CAPNG_PERMITTED, cap)) {
        g_array_append_val(keep, cap);
        *mask |= G_GUINT64_CONSTANT(1) << cap;
    }
}

gboolean
qph_privilege_drop(const QphPrivilegeContext *ctx, GError **error)
{
    g_autoptr(GArray) keep = g_array_new(FALSE, FALSE, sizeof(unsigned int));
    guint64 mask = 0;
    pid_t qemu = ctx->qemu_pid ? ctx->qemu_pid : peer_pid(ctx->qemu_fd);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "Unable to set no_new_privs: %s", g_strerror(errno));
        return FALSE;
    }
    if (capng_get_caps_process() < 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "Unable to read the helper's capabilities");
        return FALSE;
    }
    if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE) {
        return TRUE; /* nothing to give up */
    }
    keep_cap(keep, &mask,
             kernel_knows_cap(CAP_PERFMON) ? CAP_PERFMON : CAP_SYS_ADMIN);
    if (ctx->listen_path) {
        g_autofree char *dir = g_path_get_dirname(ctx->listen_path);
        struct stat st;

        if (stat(dir, &st) < 0 || st.st_uid != geteuid()) {
            keep_cap(keep, &mask, CAP_DAC_OVERRIDE);
        }
        if (ctx->socket_group_set && !in_group(ctx->socket_gid)) {
            keep_cap(keep, &mask, CAP_CHOWN);
        }
    }
    if (!qemu_ptrace_without_cap(qemu, mask)) {
        keep_cap(keep, &mask, CAP_SYS_PTRACE);
    }

    capng_clear(CAPNG_SELECT_BOTH);
    for (guint i = 0; i < keep->len; i++) {
        capng_update(CAPNG_ADD,
                     CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
                     g_array_index(keep, unsigned int, i));
    }
    if (capng_apply(CAPNG_SELECT_BOTH) < 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                    "Unable to drop the helper's capabilities");
        return FALSE;
    }
    return TRUE;
}

char *
qph_privilege_describe(void)
{
    char *text;

    if (capng_get_caps_process() < 0 ||
        capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE) {
        return g_strdup("none");
    }
    text = capng_print_caps_text(CAPNG_PRINT_BUFFER, CAPNG_EFFECTIVE);
    if (!text) {
        return g_strdup("none");
    }
    {
        char *copy = g_strdup(text);

        free(text);
        return copy;
    }
}

/* ---- Raw event allowlist ----------------------------------------------- */

static GHashTable *allowlist; /* char * set; NULL: every event allowed */

void
qph_event_allowlist_add(const char *name)
{
    if (!allowlist) {
        allowlist = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          NULL);
    }
    g_hash_table_add(allowlist, g_strstrip(g_strdup(name)));
}

gboolean
qph_event_allowlist_load(const char *path, GError **error)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents(path, &text, NULL, error)) {
        g_prefix_error(error, "Unable to read the event allowlist: ");
        return FALSE;
    }
    if (!allowlist) {
        allowlist = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          NULL);
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        const char *l = g_strstrip(lines[i]);

        if (*l && *l != '#') {
            qph_event_allowlist_add(l);
        }
    }
    return TRUE;
}

void
qph_event_allowlist_reset(void)
{
    g_clear_pointer(&allowlist, g_hash_table_unref);
}

gboolean
qph_event_allowlist_check(const QphPerfChange *changes, guint n,
                          GError **error)
{
    if (!allowlist) {
        return TRUE;
    }
    for (guint i = 0; i < n; i++) {
        const char *name = changes[i].name;

        if (!changes[i].enable || !name || qph_perf_catalog_lookup(name) ||
            g_hash_table_contains(allowlist, name)) {
            continue;
        }
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Event '%s' is not allowed: this helper accepts only "
                    "catalog events and the raw events it was given with "
                    "--allow-event or --event-allowlist", name);
        return FALSE;
    }
    return TRUE;
}
