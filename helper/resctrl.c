/*
 * resctrl.c: cache and memory-bandwidth monitoring through Linux resctrl
 *
 * How a VM gets monitored: qph_resctrl_mon_open() looks at where the VM's
 * threads sit.  If they all sit in one existing group that holds nothing
 * but this VM (libvirt's <cachetune><monitor>, say), that group is read as
 * it is and never changed.  Otherwise the helper makes its own MON group,
 * <ctrl>/mon_groups/qemu-perf-helper-<QEMU pid>, under the CTRL_MON group
 * the threads already belong to (so their cache allocation does not change),
 * and writes the threads into its tasks file one TID per write, as the
 * kernel requires.  Every change to the tree happens under flock() on the
 * resctrl root, the lock libvirt takes, so both can share a host.  Reading
 * needs no lock and no privilege: mon_data files are world-readable.
 *
 * A read sums mon_data/mon_L3_XX/<event> over the L3 domains (or
 * mon_PERF_PKG_XX/<event> over the packages for energy telemetry).  The
 * kernel prints "Unavailable", "Error" or "Unassigned" instead of a number
 * when a domain cannot count; that is reported per domain and never fails
 * the read.  With Sub-NUMA Clustering each mon_L3_XX holds the domain's sum
 * and mon_sub_L3_YY each node's share: the total adds the sums only, and
 * the shares go with their domain.  Which MBM events hold a hardware counter
 * (mbm_event mode) is resctrl-assign.c's concern.
 *
 * The helper removes its group when it stops, and a helper that crashed
 * leaves a group whose pid is dead: qph_resctrl_cleanup_stale() (and every
 * open) removes those.  rmdir sends the threads back to the parent group.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define QPH_RESCTRL_ALLOW_PRIV
#include "helper/resctrl-priv.h"
#include "qmp/qmp-error.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The kernel prints telemetry as decimals with up to 9 places (27
 * fraction bits, fs/resctrl/ctrlmondata.c); nano-units keep every digit. */
static const QphResctrlFeatureInfo resctrl_features[] = {
    [QPH_RESCTRL_FEATURE_CMT] = {"cmt", "llc_occupancy",
                                 QPH_RESCTRL_KIND_GAUGE, "bytes",
                                 QPH_RESCTRL_RESOURCE_L3, FALSE, 0},
    [QPH_RESCTRL_FEATURE_MBMT] = {"mbmt", "mbm_total_bytes",
                                  QPH_RESCTRL_KIND_CUMULATIVE, "bytes",
                                  QPH_RESCTRL_RESOURCE_L3, TRUE, 0},
    [QPH_RESCTRL_FEATURE_MBML] = {"mbml", "mbm_local_bytes",
                                  QPH_RESCTRL_KIND_CUMULATIVE, "bytes",
                                  QPH_RESCTRL_RESOURCE_L3, TRUE, 0},
    [QPH_RESCTRL_FEATURE_CORE_ENERGY] = {"core_energy", "core_energy",
                                         QPH_RESCTRL_KIND_CUMULATIVE,
                                         "nanojoules",
                                         QPH_RESCTRL_RESOURCE_PERF_PKG, FALSE,
                                         9},
    [QPH_RESCTRL_FEATURE_ACTIVITY] = {"activity", "activity",
                                      QPH_RESCTRL_KIND_CUMULATIVE,
                                      "nanofarads",
                                      QPH_RESCTRL_RESOURCE_PERF_PKG, FALSE, 9},
};
G_STATIC_ASSERT(G_N_ELEMENTS(resctrl_features) == QPH_RESCTRL_FEATURE_LAST);

static const struct {
    const char *name; /* ours, for replies */
    const char *text; /* what the kernel prints, NULL for a number */
} resctrl_value_states[] = {
    [QPH_RESCTRL_VALUE_OK] = {"ok", NULL},
    [QPH_RESCTRL_VALUE_UNAVAILABLE] = {"unavailable", "Unavailable"},
    [QPH_RESCTRL_VALUE_ERROR] = {"error", "Error"},
    [QPH_RESCTRL_VALUE_UNASSIGNED] = {"unassigned", "Unassigned"},
};
G_STATIC_ASSERT(G_N_ELEMENTS(resctrl_value_states) == QPH_RESCTRL_VALUE_LAST);

static const struct {
    const char *info;   /* info/<info> */
    const char *domain; /* mon_data/<domain>XX */
    const char *what;   /* for the refusal */
} resctrl_resources[] = {
    [QPH_RESCTRL_RESOURCE_L3] = {"L3_MON", "mon_L3_",
                                 "cache or memory-bandwidth monitoring"},
    [QPH_RESCTRL_RESOURCE_PERF_PKG] = {"PERF_PKG_MON", "mon_PERF_PKG_",
                                       "energy or activity telemetry "
                                       "(Linux 7.0 on a CPU with Intel "
                                       "application energy telemetry)"},
};
G_STATIC_ASSERT(G_N_ELEMENTS(resctrl_resources) == QPH_RESCTRL_RESOURCE_LAST);

struct QphResctrlMon {
    char *root;
    char *path; /* absolute path of the group directory */
    pid_t pid;
    gboolean owned; /* ours to change and remove */
};

/* One group found under the root (the root itself is never listed). */
typedef struct {
    char *path; /* absolute */
    char *ctrl; /* absolute path of its CTRL_MON group (may be the root) */
    char *name;
    gboolean is_mon;
} ResctrlGroup;

/* ---- tables --------------------------------------------------------- */

/**
 * qph_resctrl_feature_info - what one feature reads and how
 * @f: a feature
 *
 * Returns: the table entry, or NULL for a value outside the enum.
 */
const QphResctrlFeatureInfo *
qph_resctrl_feature_info(QphResctrlFeature f)
{
    if ((guint)f >= QPH_RESCTRL_FEATURE_LAST) {
        return NULL;
    }
    return &resctrl_features[f];
}

/**
 * qph_resctrl_feature_from_event - map libvirt's event name to a feature
 * @event: "cmt", "mbmt" or "mbml"
 * @feature: set on success
 *
 * Returns: TRUE if @event is served by resctrl.
 */
gboolean
qph_resctrl_feature_from_event(const char *event, QphResctrlFeature *feature)
{
    guint i;

    for (i = 0; event && i < QPH_RESCTRL_FEATURE_LAST; i++) {
        if (g_str_equal(event, resctrl_features[i].event)) {
            *feature = i;
            return TRUE;
        }
    }
    return FALSE;
}

/**
 * qph_resctrl_value_status_name - a value state's name for replies
 * @status: a state
 *
 * Returns: "ok", "unavailable", "error" or "unassigned" ("error" for a
 * value outside the enum).
 */
const char *
qph_resctrl_value_status_name(QphResctrlValueStatus status)
{
    if ((guint)status >= QPH_RESCTRL_VALUE_LAST) {
        return resctrl_value_states[QPH_RESCTRL_VALUE_ERROR].name;
    }
    return resctrl_value_states[status].name;
}

/**
 * qph_resctrl_parse_value - interpret the text of a mon_data file
 * @text: what read() returned, NUL-terminated
 * @value: set when the result is QPH_RESCTRL_VALUE_OK
 *
 * Returns: the state; anything the kernel would never print is an error.
 */
QphResctrlValueStatus
qph_resctrl_parse_value(const char *text, guint64 *value)
{
    return qph_resctrl_parse_scaled(text, 0, value);
}

/**
 * qph_resctrl_parse_scaled - interpret a mon_data file, decimals allowed
 * @text: what read() returned, NUL-terminated
 * @decimals: 0 for an integer event; else a decimal ("1.500000") is read
 *   into units of 10^-@decimals (up to @decimals places)
 * @value: set when the result is QPH_RESCTRL_VALUE_OK
 *
 * Returns: the state; anything the kernel would never print is an error.
 */
QphResctrlValueStatus
qph_resctrl_parse_scaled(const char *text, guint decimals, guint64 *value)
{
    g_autofree char *s = g_strstrip(g_strdup(text));
    char *dot;
    guint64 whole, frac = 0, scale = 1;
    gsize n_frac = 0;
    guint i;

    for (i = 0; i < QPH_RESCTRL_VALUE_LAST; i++) {
        if (resctrl_value_states[i].text &&
            g_str_equal(s, resctrl_value_states[i].text)) {
            return i;
        }
    }
    dot = decimals > 0 ? strchr(s, '.') : NULL;
    if (dot) {
        *dot = '\0';
        n_frac = strlen(dot + 1);
        if (n_frac == 0 || n_frac > decimals || !g_ascii_isdigit(dot[1]) ||
            !g_ascii_string_to_unsigned(dot + 1, 10, 0, G_MAXUINT64, &frac,
                                        NULL)) {
            return QPH_RESCTRL_VALUE_ERROR;
        }
    }
    /* g_ascii_string_to_unsigned() takes a sign; the kernel never prints one */
    if (!g_ascii_isdigit(s[0]) ||
        !g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, &whole, NULL)) {
        return QPH_RESCTRL_VALUE_ERROR;
    }
    for (i = 0; i < decimals; i++) {
        scale *= 10;
    }
    for (; n_frac < decimals; n_frac++) {
        frac *= 10;
    }
    if (whole > (G_MAXUINT64 - frac) / scale) {
        return QPH_RESCTRL_VALUE_ERROR;
    }
    *value = whole * scale + frac;
    return QPH_RESCTRL_VALUE_OK;
}

/**
 * qph_resctrl_status_from_errno - the state of a mon_data read that failed
 * @err: errno of read()
 *
 * Kernels print the state as text; a failing read is the same state seen
 * through an errno (the kernel's internal codes), or a domain gone offline.
 *
 * Returns: the state.
 */
QphResctrlValueStatus
qph_resctrl_status_from_errno(int err)
{
    switch (err) {
    case EINVAL:
        return QPH_RESCTRL_VALUE_UNAVAILABLE;
    case ENOENT:
        return QPH_RESCTRL_VALUE_UNASSIGNED;
    default:
        return QPH_RESCTRL_VALUE_ERROR;
    }
}

/* ---- small file helpers --------------------------------------------- */

static void
resctrl_group_free(gpointer data)
{
    ResctrlGroup *g = data;

    g_free(g->path);
    g_free(g->ctrl);
    g_free(g->name);
    g_free(g);
}

/* Read a small sysfs-like file; NULL with errno set on failure. */
static char *
resctrl_read_small(const char *path)
{
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int saved;

    if (fd < 0) {
        return NULL;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return NULL;
    }
    buf[n] = '\0';
    return g_strdup(buf);
}

static char *
resctrl_last_cmd_status(const char *root)
{
    g_autofree char *path =
        g_build_filename(root, "info", "last_cmd_status", NULL);
    g_autofree char *text = resctrl_read_small(path);

    return text ? g_strdup(g_strstrip(text)) : g_strdup("(unreadable)");
}

static GHashTable *
resctrl_read_tasks(const char *group_path, GError **error)
{
    g_autofree char *path = g_build_filename(group_path, "tasks", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) local = NULL;
    g_autoptr(GHashTable) set = g_hash_table_new(g_direct_hash,
                                                 g_direct_equal);
    g_auto(GStrv) lines = NULL;
    guint i;

    if (!g_file_get_contents(path, &text, NULL, &local)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot read the resctrl task list %s: %s.", path,
                    local->message);
        return NULL;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        gint64 tid;

        if (g_ascii_string_to_signed(lines[i], 10, 1, G_MAXINT, &tid, NULL)) {
            g_hash_table_add(set, GINT_TO_POINTER(tid));
        }
    }
    return g_steal_pointer(&set);
}

static gboolean
resctrl_pid_alive(pid_t pid)
{
    char path[64];

    g_snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    return pid > 0 && access(path, F_OK) == 0;
}

static gboolean
resctrl_thread_of(pid_t pid, pid_t tid)
{
    char path[80];

    g_snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)pid, (int)tid);
    return access(path, F_OK) == 0;
}

/* ---- checks --------------------------------------------------------- */

static gboolean
resctrl_check_root(const char *root, GError **error)
{
    g_autofree char *tasks = g_build_filename(root, "tasks", NULL);
    g_autofree char *info = g_build_filename(root, "info", NULL);
    g_autofree char *l3mon = g_build_filename(root, "info", "L3_MON", NULL);
    g_autofree char *pkgmon =
        g_build_filename(root, "info", "PERF_PKG_MON", NULL);

    if (access(root, R_OK | X_OK) != 0 && errno == EACCES) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Permission denied reading the resctrl filesystem at "
                    "%s.",
                    root);
        return FALSE;
    }
    if (!g_file_test(tasks, G_FILE_TEST_IS_REGULAR) ||
        !g_file_test(info, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "No resctrl filesystem is mounted at %s. On a host with "
                    "Intel RDT or AMD PQoS, mount it with "
                    "'mount -t resctrl resctrl /sys/fs/resctrl'.",
                    root);
        return FALSE;
    }
    if (!g_file_test(l3mon, G_FILE_TEST_IS_DIR) &&
        !g_file_test(pkgmon, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "The resctrl filesystem at %s has no monitoring support "
                    "(no info/L3_MON): this CPU or kernel does not offer "
                    "cache or memory-bandwidth monitoring.",
                    root);
        return FALSE;
    }
    return TRUE;
}

/* The resource of an event is there (info/L3_MON, info/PERF_PKG_MON). */
static gboolean
resctrl_check_resource(const char *root, QphResctrlResource res,
                       GError **error)
{
    g_autofree char *dir =
        g_build_filename(root, "info", resctrl_resources[res].info, NULL);

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "The resctrl filesystem at %s has no monitoring support "
                    "(no info/%s): this CPU or kernel does not offer %s.",
                    root, resctrl_resources[res].info,
                    resctrl_resources[res].what);
        return FALSE;
    }
    return TRUE;
}

static gboolean
resctrl_check_feature(const char *root, QphResctrlFeature feature,
                      GError **error)
{
    const QphResctrlFeatureInfo *info = qph_resctrl_feature_info(feature);
    g_autofree char *path = NULL;
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    guint i;

    if (!info) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Unknown resctrl feature %d.", (int)feature);
        return FALSE;
    }
    if (!resctrl_check_resource(root, info->resource, error)) {
        return FALSE;
    }
    path = g_build_filename(root, "info", resctrl_resources[info->resource].info,
                            "mon_features", NULL);
    text = resctrl_read_small(path);
    if (!text) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot read %s: %s.", path, g_strerror(errno));
        return FALSE;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_str_equal(g_strstrip(lines[i]), info->file)) {
            return TRUE;
        }
    }
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Event '%s' is not supported on this host: '%s' is not "
                "listed in %s.",
                info->event, info->file, path);
    return FALSE;
}

/**
 * qph_resctrl_probe - can @feature be monitored under @root at all?
 * @root: the resctrl mount, NULL for /sys/fs/resctrl
 * @feature: the feature to check
 * @error: set when it cannot, saying why
 *
 * Changes nothing and needs no privilege; meant for set-perf-events to
 * check every entry before it opens anything.
 *
 * Returns: TRUE if the filesystem is mounted, has L3 monitoring, and lists
 * @feature in info/L3_MON/mon_features.
 */
gboolean
qph_resctrl_probe(const char *root, QphResctrlFeature feature, GError **error)
{
    root = root ? root : QPH_RESCTRL_DEFAULT_ROOT;
    return resctrl_check_root(root, error) &&
           resctrl_check_feature(root, feature, error);
}

/* ---- the lock ------------------------------------------------------- */

/* flock(root) as libvirt does, tried once, never waited for: the helper's
 * main loop must not sleep.  Another user's lock is G_FILE_ERROR_AGAIN;
 * set-perf-events tries again from a timer (dispatch.c), for at most
 * QPH_RESCTRL_LOCK_TIMEOUT_MS. */
static int
resctrl_lock(const char *root, GError **error)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot open the resctrl root %s to lock it: %s.", root,
                    g_strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;

        if (saved == EINTR) {
            continue;
        }
        close(fd);
        if (saved == EWOULDBLOCK) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN,
                        "Cannot lock the resctrl root %s: another resctrl "
                        "user (libvirt?) holds it.",
                        root);
        } else {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Cannot lock the resctrl root %s: %s.", root,
                        g_strerror(saved));
        }
        return -1;
    }
    return fd;
}

static void
resctrl_unlock(int fd)
{
    flock(fd, LOCK_UN);
    close(fd);
}

/* ---- the tree ------------------------------------------------------- */

static void
resctrl_add_mon_groups(GPtrArray *groups, const char *ctrl)
{
    g_autofree char *dir_path = g_build_filename(ctrl, "mon_groups", NULL);
    g_autoptr(GDir) dir = g_dir_open(dir_path, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        ResctrlGroup *g = g_new0(ResctrlGroup, 1);

        g->path = g_build_filename(dir_path, name, NULL);
        g->ctrl = g_strdup(ctrl);
        g->name = g_strdup(name);
        g->is_mon = TRUE;
        g_ptr_array_add(groups, g);
    }
}

/* Every CTRL_MON and MON group under @root, MON groups first. */
static GPtrArray *
resctrl_list_groups(const char *root)
{
    GPtrArray *groups = g_ptr_array_new_with_free_func(resctrl_group_free);
    g_autoptr(GPtrArray) ctrls = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) dir = g_dir_open(root, 0, NULL);
    const char *name;
    guint i;

    resctrl_add_mon_groups(groups, root);
    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(root, name, NULL);
        g_autofree char *tasks = g_build_filename(path, "tasks", NULL);

        if (g_str_equal(name, "info") || g_str_equal(name, "mon_groups") ||
            g_str_equal(name, "mon_data") ||
            !g_file_test(tasks, G_FILE_TEST_IS_REGULAR)) {
            continue;
        }
        resctrl_add_mon_groups(groups, path);
        g_ptr_array_add(ctrls, g_steal_pointer(&path));
    }
    for (i = 0; i < ctrls->len; i++) {
        ResctrlGroup *g = g_new0(ResctrlGroup, 1);

        g->path = g_strdup(ctrls->pdata[i]);
        g->ctrl = g_strdup(ctrls->pdata[i]);
        g->name = g_path_get_basename(g->path);
        g_ptr_array_add(groups, g);
    }
    return groups;
}

static gboolean
resctrl_is_our_name(const char *name, pid_t *pid)
{
    gint64 n;

    if (!g_str_has_prefix(name, QPH_RESCTRL_GROUP_PREFIX) ||
        !g_ascii_string_to_signed(name + strlen(QPH_RESCTRL_GROUP_PREFIX), 10,
                                  1, G_MAXINT, &n, NULL)) {
        return FALSE;
    }
    *pid = n;
    return TRUE;
}

static gboolean
resctrl_rmdir(const char *path, GError **error)
{
    if (g_rmdir(path) < 0 && errno != ENOENT) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot remove the resctrl monitoring group %s: %s.", path,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

/* Remove our groups whose QEMU is gone, and the group of @also (0: none)
 * that an earlier helper of that QEMU left; call with the lock held. */
static gboolean
resctrl_remove_stale_locked(const char *root, pid_t also, GError **error)
{
    g_autoptr(GPtrArray) groups = resctrl_list_groups(root);
    gboolean ok = TRUE;
    guint i;

    for (i = 0; i < groups->len; i++) {
        ResctrlGroup *g = groups->pdata[i];
        pid_t pid;

        if (g->is_mon && resctrl_is_our_name(g->name, &pid) &&
            (pid == also || !resctrl_pid_alive(pid))) {
            g_autoptr(GError) local = NULL;

            if (!resctrl_rmdir(g->path, &local)) {
                g_debug("%s", local->message);
                if (ok) {
                    g_propagate_error(error, g_steal_pointer(&local));
                }
                ok = FALSE;
            }
        }
    }
    return ok;
}

/**
 * qph_resctrl_cleanup_stale - remove groups left by helpers that crashed
 * @root: the resctrl mount, NULL for /sys/fs/resctrl
 * @error: set if a stale group could not be removed
 *
 * A group qemu-perf-helper-<pid> whose pid no longer exists is removed.  A
 * host without resctrl or without monitoring has nothing to clean.
 *
 * Returns: TRUE when nothing stale is left.
 */
gboolean
qph_resctrl_cleanup_stale(const char *root, GError **error)
{
    return qph_resctrl_cleanup_leftover(root, 0, error);
}

/**
 * qph_resctrl_cleanup_leftover - what qph_resctrl_cleanup_stale() removes,
 * and the group an earlier helper of a still running QEMU left
 * @root: the resctrl mount, NULL for /sys/fs/resctrl
 * @pid: the QEMU a helper starts for (0: none)
 * @error: set if a group could not be removed
 *
 * A helper that starts has nothing enabled, so a qemu-perf-helper-<@pid>
 * group is a leftover (of a helper killed with SIGKILL, say): its RMID would
 * stay taken while the helper reports cmt/mbmt/mbml as disabled, and no one
 * would remove it while QEMU runs.
 *
 * Returns: TRUE when nothing stale is left.
 */
gboolean
qph_resctrl_cleanup_leftover(const char *root, pid_t pid, GError **error)
{
    gboolean ok;
    int lock;

    root = root ? root : QPH_RESCTRL_DEFAULT_ROOT;
    if (!resctrl_check_root(root, NULL)) {
        return TRUE;
    }
    lock = resctrl_lock(root, error);
    if (lock < 0) {
        return FALSE;
    }
    ok = resctrl_remove_stale_locked(root, pid, error);
    resctrl_unlock(lock);
    return ok;
}

/* ---- moving threads ------------------------------------------------- */

static void
resctrl_set_write_error(GError **error, const char *root, const char *what,
                        const char *path, int err)
{
    g_autofree char *status = resctrl_last_cmd_status(root);

    if (err == EACCES || err == EPERM) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot %s %s: permission denied. Creating resctrl "
                    "groups and moving threads needs root; an existing "
                    "group (libvirt's <cachetune><monitor>) can be read "
                    "without privileges.",
                    what, path);
    } else if (err == EBUSY || err == ENOSPC) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot %s %s: the CPU is out of monitoring IDs (RMIDs): "
                    "%s (info/last_cmd_status: \"%s\"). RMIDs freed by "
                    "removed groups come back once their cache occupancy "
                    "drains; remove unused monitoring groups or retry later.",
                    what, path, g_strerror(err), status);
    } else {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot %s %s: %s (info/last_cmd_status: \"%s\").", what,
                    path, g_strerror(err), status);
    }
}

/* Write each TID on its own: the kernel takes one per write.  A thread that
 * exited meanwhile (ESRCH) is not an error. */
static gboolean
resctrl_move_threads(const char *root, const char *group, const pid_t *tids,
                     guint n_tids, GError **error)
{
    g_autofree char *path = g_build_filename(group, "tasks", NULL);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    guint i;

    if (fd < 0) {
        resctrl_set_write_error(error, root, "open", path, errno);
        return FALSE;
    }
    for (i = 0; i < n_tids; i++) {
        char buf[32];
        int len = g_snprintf(buf, sizeof(buf), "%d\n", (int)tids[i]);

        if (write(fd, buf, len) == len || errno == ESRCH) {
            continue;
        }
        {
            g_autofree char *what =
                g_strdup_printf("move thread %d into", (int)tids[i]);

            resctrl_set_write_error(error, root, what, group, errno);
        }
        close(fd);
        return FALSE;
    }
    close(fd);
    return TRUE;
}

/* ---- opening -------------------------------------------------------- */

typedef struct {
    GHashTable *where; /* tid -> ResctrlGroup*, absent for the root */
    GPtrArray *groups;
} ResctrlPlacement;

static void
resctrl_placement_clear(ResctrlPlacement *p)
{
    g_clear_pointer(&p->where, g_hash_table_unref);
    g_clear_pointer(&p->groups, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ResctrlPlacement, resctrl_placement_clear)

/* Find the group each of @tids sits in.  MON groups come first in
 * groups, and a CTRL_MON group's tasks also list its MON groups' tasks, so
 * the first group that lists a thread is the one it is in. */
static gboolean
resctrl_place(const char *root, GHashTable *tids, ResctrlPlacement *p,
              GError **error)
{
    guint i;

    p->groups = resctrl_list_groups(root);
    p->where = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (i = 0; i < p->groups->len; i++) {
        ResctrlGroup *g = p->groups->pdata[i];
        g_autoptr(GHashTable) tasks = resctrl_read_tasks(g->path, error);
        GHashTableIter iter;
        gpointer tid;

        if (!tasks) {
            return FALSE;
        }
        g_hash_table_iter_init(&iter, tasks);
        while (g_hash_table_iter_next(&iter, &tid, NULL)) {
            if (g_hash_table_contains(tids, tid) &&
                !g_hash_table_contains(p->where, tid)) {
                g_hash_table_insert(p->where, tid, g);
            }
        }
    }
    return TRUE;
}

/* Does @g hold every thread of the VM and nothing else? */
static gboolean
resctrl_group_is_the_vms(const ResctrlGroup *g, pid_t pid, GHashTable *tids,
                         const ResctrlPlacement *p)
{
    g_autoptr(GHashTable) tasks = NULL;
    GHashTableIter iter;
    gpointer tid, where;

    g_hash_table_iter_init(&iter, tids);
    while (g_hash_table_iter_next(&iter, &tid, NULL)) {
        where = g_hash_table_lookup(p->where, tid);
        if (where != g) {
            return FALSE;
        }
    }
    tasks = resctrl_read_tasks(g->path, NULL);
    if (!tasks) {
        return FALSE;
    }
    g_hash_table_iter_init(&iter, tasks);
    while (g_hash_table_iter_next(&iter, &tid, NULL)) {
        if (!resctrl_thread_of(pid, GPOINTER_TO_INT(tid))) {
            return FALSE;
        }
    }
    return TRUE;
}

static QphResctrlMon *
resctrl_mon_new(const char *root, const char *path, pid_t pid, gboolean owned)
{
    QphResctrlMon *mon = g_new0(QphResctrlMon, 1);

    mon->root = g_strdup(root);
    mon->path = g_strdup(path);
    mon->pid = pid;
    mon->owned = owned;
    return mon;
}

static QphResctrlMon *
resctrl_open_locked(const char *root, pid_t pid, GHashTable *tids,
                    const pid_t *tid_list, guint n_tids, GError **error)
{
    g_auto(ResctrlPlacement) p = {NULL};
    g_autofree char *name = g_strdup_printf(QPH_RESCTRL_GROUP_PREFIX "%d",
                                            (int)pid);
    g_autofree char *ours = NULL;
    const char *ctrl = NULL;
    GHashTableIter iter;
    gpointer tid;
    guint i;

    resctrl_remove_stale_locked(root, 0, NULL);
    if (!resctrl_place(root, tids, &p, error)) {
        return NULL;
    }

    /* Someone else's group that holds exactly this VM: read it as it is. */
    for (i = 0; i < p.groups->len; i++) {
        ResctrlGroup *g = p.groups->pdata[i];

        if (!g_str_equal(g->name, name) &&
            resctrl_group_is_the_vms(g, pid, tids, &p)) {
            return resctrl_mon_new(root, g->path, pid, FALSE);
        }
    }

    /* Otherwise our own MON group, in the CTRL_MON group that already holds
     * the threads, so that their allocation does not change. */
    g_hash_table_iter_init(&iter, tids);
    while (g_hash_table_iter_next(&iter, &tid, NULL)) {
        ResctrlGroup *g = g_hash_table_lookup(p.where, tid);
        const char *g_ctrl = g ? g->ctrl : root;

        if (g && g->is_mon && !g_str_equal(g->name, name)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Thread %d of process %d is in the resctrl "
                        "monitoring group %s, which is not the helper's and "
                        "does not hold exactly this VM's threads; the helper "
                        "does not take threads out of another tool's group.",
                        GPOINTER_TO_INT(tid), (int)pid, g->path);
            return NULL;
        }
        if (ctrl && !g_str_equal(ctrl, g_ctrl)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "The threads of process %d are in different resctrl "
                        "control groups (%s and %s); one monitoring group "
                        "cannot hold them without changing their cache "
                        "allocation.",
                        (int)pid, ctrl, g_ctrl);
            return NULL;
        }
        ctrl = g_ctrl;
    }

    ours = g_build_filename(ctrl, "mon_groups", name, NULL);
    if (g_mkdir(ours, 0755) < 0 && errno != EEXIST) {
        resctrl_set_write_error(error, root,
                                "create the resctrl monitoring group", ours,
                                errno);
        return NULL;
    }
    if (!resctrl_move_threads(root, ours, tid_list, n_tids, error)) {
        /* Leave nothing behind: the threads go back where they were. */
        resctrl_rmdir(ours, NULL);
        return NULL;
    }
    return resctrl_mon_new(root, ours, pid, TRUE);
}

/**
 * qph_resctrl_mon_open - find or make the monitoring group of a VM
 * @root: the resctrl mount, NULL for /sys/fs/resctrl
 * @pid: the QEMU process
 * @tids: its threads (vCPUs, iothreads, main loop, ...)
 * @n_tids: how many
 * @error: set on failure, saying why
 *
 * If all of @tids already sit in one existing group that holds nothing but
 * threads of @pid, that group is used read-only and never removed.  Else
 * the helper's group mon_groups/qemu-perf-helper-<pid> is made (or reused)
 * under the CTRL_MON group of the threads and every thread is moved in.  On
 * failure nothing is left behind.
 *
 * Returns: (transfer full): the monitor, or NULL.
 */
QphResctrlMon *
qph_resctrl_mon_open(const char *root, pid_t pid, const pid_t *tids,
                     guint n_tids, GError **error)
{
    g_autoptr(GHashTable) set =
        g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GArray) live = g_array_new(FALSE, FALSE, sizeof(pid_t));
    QphResctrlMon *mon;
    guint i;
    int lock;

    root = root ? root : QPH_RESCTRL_DEFAULT_ROOT;
    if (pid <= 0 || (n_tids > 0 && !tids)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Invalid process %d or thread list for resctrl "
                    "monitoring.",
                    (int)pid);
        return NULL;
    }
    for (i = 0; i < n_tids; i++) {
        if (tids[i] > 0 && resctrl_thread_of(pid, tids[i]) &&
            !g_hash_table_contains(set, GINT_TO_POINTER(tids[i]))) {
            g_hash_table_add(set, GINT_TO_POINTER(tids[i]));
            g_array_append_val(live, tids[i]);
        }
    }
    if (live->len == 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Process %d has none of the given threads alive; there "
                    "is nothing to monitor with resctrl.",
                    (int)pid);
        return NULL;
    }
    if (!resctrl_check_root(root, error)) {
        return NULL;
    }
    lock = resctrl_lock(root, error);
    if (lock < 0) {
        return NULL;
    }
    mon = resctrl_open_locked(root, pid, set, (pid_t *)(void *)live->data,
                              live->len, error);
    resctrl_unlock(lock);
    return mon;
}

/**
 * qph_resctrl_mon_add_threads - put threads that appeared later in the group
 * @mon: a monitor
 * @tids: the new threads
 * @n_tids: how many
 * @error: set on failure
 *
 * A group that is not ours is left alone (the kernel puts a new thread in
 * its creator's group).  Threads that already exited are skipped.
 *
 * Returns: TRUE on success.
 */
gboolean
qph_resctrl_mon_add_threads(QphResctrlMon *mon, const pid_t *tids,
                            guint n_tids, GError **error)
{
    g_autoptr(GHashTable) in_group = NULL;
    g_autoptr(GArray) missing = NULL;
    gboolean ok;
    guint i;
    int lock;

    if (!mon->owned || n_tids == 0) {
        return TRUE;
    }
    if (!tids) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "No thread list given for resctrl monitoring.");
        return FALSE;
    }
    /* Every query comes here; usually every thread is in the group already
     * (the kernel puts a new thread in its creator's group).  Then take no
     * lock: a query must not wait for another resctrl user. */
    in_group = resctrl_read_tasks(mon->path, NULL);
    missing = g_array_new(FALSE, FALSE, sizeof(pid_t));
    for (i = 0; i < n_tids; i++) {
        if (!in_group ||
            !g_hash_table_contains(in_group, GINT_TO_POINTER(tids[i]))) {
            g_array_append_val(missing, tids[i]);
        }
    }
    if (missing->len == 0) {
        return TRUE;
    }
    tids = (const pid_t *)(void *)missing->data;
    n_tids = missing->len;
    lock = resctrl_lock(mon->root, error);
    if (lock < 0) {
        return FALSE;
    }
    if (!g_file_test(mon->path, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "The resctrl monitoring group %s has disappeared.",
                    mon->path);
        ok = FALSE;
    } else {
        ok = resctrl_move_threads(mon->root, mon->path, tids, n_tids, error);
    }
    resctrl_unlock(lock);
    return ok;
}

/* ---- reading -------------------------------------------------------- */

static gint
resctrl_domain_cmp(gconstpointer a, gconstpointer b)
{
    const QphResctrlDomainValue *x = a, *y = b;

    return x->domain < y->domain ? -1 : x->domain > y->domain;
}

/* Read one value file into @status/@value. */
static void
resctrl_read_value(const char *file, guint decimals,
                   QphResctrlValueStatus *status, guint64 *value)
{
    g_autofree char *text = resctrl_read_small(file);

    *value = 0;
    if (!text) {
        *status = qph_resctrl_status_from_errno(errno);
        return;
    }
    *status = qph_resctrl_parse_scaled(text, decimals, value);
    if (*status != QPH_RESCTRL_VALUE_OK) {
        *value = 0;
    }
}

static gint
resctrl_sub_cmp(gconstpointer a, gconstpointer b)
{
    const QphResctrlSubValue *x = a, *y = b;

    return x->node < y->node ? -1 : x->node > y->node;
}

/* The mon_sub_L3_YY shares of one SNC domain, or NULL without SNC. */
static GArray *
resctrl_read_subs(const char *domain_dir, const QphResctrlFeatureInfo *info)
{
    g_autoptr(GDir) dir = g_dir_open(domain_dir, 0, NULL);
    GArray *subs = NULL;
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *file = NULL;
        QphResctrlSubValue sv = {0};
        guint64 id;

        if (!g_str_has_prefix(name, "mon_sub_L3_") ||
            !g_ascii_string_to_unsigned(name + 11, 10, 0, G_MAXUINT, &id,
                                        NULL)) {
            continue;
        }
        sv.node = id;
        file = g_build_filename(domain_dir, name, info->file, NULL);
        resctrl_read_value(file, info->decimals, &sv.status, &sv.value);
        if (!subs) {
            subs = g_array_new(FALSE, TRUE, sizeof(QphResctrlSubValue));
        }
        g_array_append_val(subs, sv);
    }
    if (subs) {
        g_array_sort(subs, resctrl_sub_cmp);
    }
    return subs;
}

static void
resctrl_domain_value_clear(gpointer data)
{
    QphResctrlDomainValue *v = data;

    g_clear_pointer(&v->subs, g_array_unref);
}

/* Which domains hold a counter for @feature (mbm_event mode only). */
static void
resctrl_mark_assigned(const char *root, const char *group,
                      QphResctrlFeature feature, GArray *domains)
{
    g_autoptr(GArray) assigned = NULL;
    guint i, j;

    if (!resctrl_features[feature].mbm ||
        qph_resctrl_assign_mode(root) != QPH_RESCTRL_ASSIGN_MBM_EVENT ||
        !qph_resctrl_read_assigned(group, feature, &assigned)) {
        return;
    }
    for (i = 0; i < domains->len; i++) {
        QphResctrlDomainValue *v =
            &g_array_index(domains, QphResctrlDomainValue, i);

        v->has_assigned = TRUE;
        for (j = 0; j < assigned->len; j++) {
            if (g_array_index(assigned, guint, j) == v->domain) {
                v->assigned = TRUE;
            }
        }
    }
}

/**
 * qph_resctrl_mon_read - read one feature of the VM's group
 * @mon: a monitor
 * @feature: what to read
 * @out: (out caller-allocates): filled on success; clear it with
 *   qph_resctrl_reading_clear()
 * @error: set on failure
 *
 * A domain that cannot count is reported in @out->domains with its state and
 * left out of the total; it never fails the read.  With SNC each domain
 * carries its nodes' shares; the total adds the domains' sums only.  In
 * mbm_event mode an MBM event's domains say whether a counter is assigned.
 *
 * Returns: TRUE on success, FALSE if the feature is not supported or the
 * group has no mon_data any more.
 */
gboolean
qph_resctrl_mon_read(QphResctrlMon *mon, QphResctrlFeature feature,
                     QphResctrlReading *out, GError **error)
{
    g_autofree char *dir_path = g_build_filename(mon->path, "mon_data", NULL);
    g_autoptr(GArray) domains =
        g_array_new(FALSE, TRUE, sizeof(QphResctrlDomainValue));
    g_autoptr(GDir) dir = NULL;
    const QphResctrlFeatureInfo *info;
    const char *prefix;
    const char *name;
    guint i;

    memset(out, 0, sizeof(*out));
    g_array_set_clear_func(domains, resctrl_domain_value_clear);
    if (!resctrl_check_feature(mon->root, feature, error)) {
        return FALSE;
    }
    info = &resctrl_features[feature];
    prefix = resctrl_resources[info->resource].domain;
    dir = g_dir_open(dir_path, 0, NULL);
    if (!dir) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot read the resctrl counters in %s: %s. The group "
                    "was removed, or monitoring was switched off.",
                    dir_path, g_strerror(errno));
        return FALSE;
    }
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *domain_dir = NULL;
        g_autofree char *file = NULL;
        QphResctrlDomainValue v = {0};
        guint64 id;

        if (!g_str_has_prefix(name, prefix) ||
            !g_ascii_string_to_unsigned(name + strlen(prefix), 10, 0,
                                        G_MAXUINT, &id, NULL)) {
            continue;
        }
        v.domain = id;
        domain_dir = g_build_filename(dir_path, name, NULL);
        file = g_build_filename(domain_dir, info->file, NULL);
        resctrl_read_value(file, info->decimals, &v.status, &v.value);
        if (info->resource == QPH_RESCTRL_RESOURCE_L3) {
            v.subs = resctrl_read_subs(domain_dir, info);
        }
        g_array_append_val(domains, v);
    }
    g_array_sort(domains, resctrl_domain_cmp);
    resctrl_mark_assigned(mon->root, mon->path, feature, domains);
    for (i = 0; i < domains->len; i++) {
        const QphResctrlDomainValue *v =
            &g_array_index(domains, QphResctrlDomainValue, i);

        if (v->status == QPH_RESCTRL_VALUE_OK) {
            /* Saturate rather than wrap on absurd inputs. */
            out->total = out->total > G_MAXUINT64 - v->value
                             ? G_MAXUINT64
                             : out->total + v->value;
            out->n_ok++;
        }
    }
    out->domains = g_steal_pointer(&domains);
    return TRUE;
}

/**
 * qph_resctrl_reading_clear - free what a reading holds
 * @reading: a reading filled by qph_resctrl_mon_read(), or zeroed
 */
void
qph_resctrl_reading_clear(QphResctrlReading *reading)
{
    g_clear_pointer(&reading->domains, g_array_unref);
    reading->total = 0;
    reading->n_ok = 0;
}

/**
 * qph_resctrl_mon_get_path - the group directory being read
 * @mon: a monitor
 *
 * Returns: (transfer none): an absolute path.
 */
const char *
qph_resctrl_mon_get_path(const QphResctrlMon *mon)
{
    return mon->path;
}

/**
 * qph_resctrl_mon_is_owned - did the helper make this group?
 * @mon: a monitor
 *
 * Returns: TRUE if the group is the helper's (and goes away on close),
 * FALSE if it is someone else's, read-only.
 */
gboolean
qph_resctrl_mon_is_owned(const QphResctrlMon *mon)
{
    return mon->owned;
}

/**
 * qph_resctrl_mon_close - stop monitoring; remove the group if it is ours
 * @mon: (nullable): a monitor
 *
 * The threads of a removed group go back to its parent group.  A failure is
 * logged; the next start removes what is left (qph_resctrl_cleanup_stale()).
 */
void
qph_resctrl_mon_close(QphResctrlMon *mon)
{
    g_autoptr(GError) lock_error = NULL;
    g_autoptr(GError) error = NULL;
    int lock;

    if (!mon) {
        return;
    }
    if (mon->owned) {
        /* Without the lock, still remove our own group: leaking an RMID is
         * worse than racing another tool that would not touch it. */
        lock = resctrl_lock(mon->root, &lock_error);
        if (lock < 0) {
            g_warning("%s", lock_error->message);
        }
        if (!resctrl_rmdir(mon->path, &error)) {
            g_warning("%s", error->message);
        }
        if (lock >= 0) {
            resctrl_unlock(lock);
        }
    }
    g_free(mon->root);
    g_free(mon->path);
    g_free(mon);
}

/* ---- for resctrl-assign.c ------------------------------------------- */

char *
qph_resctrl_read_small(const char *path)
{
    return resctrl_read_small(path);
}

int
qph_resctrl_lock_root(const char *root, GError **error)
{
    return resctrl_lock(root, error);
}

void
qph_resctrl_unlock_root(int fd)
{
    resctrl_unlock(fd);
}

void
qph_resctrl_set_write_error(GError **error, const char *root, const char *what,
                            const char *path, int err)
{
    resctrl_set_write_error(error, root, what, path, err);
}

const char *
qph_resctrl_mon_get_root(const QphResctrlMon *mon)
{
    return mon->root;
}
