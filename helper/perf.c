/*
 * perf.c: one perf event counted on a set of threads
 *
 * A name becomes a perf_event_attr through libpfm4 only (catalog names via
 * their libpfm4 string), so "any event" means any event libpfm4 knows for
 * this host.  Counters are opened per thread (pid = tid, cpu = -1) on the
 * threads that exist when the event is enabled, with `inherit`: the kernel
 * then counts every thread a counted thread creates later (and their
 * descendants) into the creator's counter, live ones summed at read time,
 * exited ones folded in.  One fd per (event, thread that existed at
 * enable) thus follows the whole process, threads that start and end
 * between two reads included, with no rescan and no timer.  An fd is kept
 * after its thread exits (closing it would drop the descendants still
 * counting into it) until the event is disabled; such a thread is marked
 * exited and its value reported apart.  Each fd reads {value,
 * time_enabled, time_running}, so values of multiplexed hardware counters
 * are scaled the way perf-stat does.
 *
 * Sums saturate at 2^64 - 1 and say so (overflow); a counter that never
 * ran (time_running 0 while enabled) is reported as unscheduled, not as 0.
 *
 * Privileges: with kernel.perf_event_paranoid 2 an unprivileged user may
 * count its own threads in user space only.  An event that would count
 * kernel code is then reopened with exclude_kernel/exclude_hv and marked
 * user-only, so callers can say so instead of silently reporting less.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define QPH_PERF_PRIV_H_ALLOW
#include "helper/perf.h"
#include "helper/perf-priv.h"
#include "helper/perf-catalog.h"
#include "qmp/qmp-error.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <perfmon/pfmlib_perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif

#define QPH_PERF_NAME_MAX 256
#define QPH_PERF_PARANOID_PATH "/proc/sys/kernel/perf_event_paranoid"
#define QPH_PERF_PARANOID_UNKNOWN G_MININT

typedef struct {
    pid_t tid;
    int fd;
    gboolean exited; /* the thread is gone; the fd may still count its
                      * descendants */
} QphPerfThread;

/* What read() returns with TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING. */
typedef struct {
    guint64 value;
    guint64 time_enabled;
    guint64 time_running;
} QphPerfReadBuf;

struct _QphPerfEvent {
    char *name;     /* as the caller spelled it */
    char *encoding; /* libpfm4's fully qualified string */
    const char *unit;
    struct perf_event_attr attr;
    gboolean user_only;
    GArray *threads; /* QphPerfThread, sorted by tid */
    guint n_exited;  /* threads[] marked exited */
    /* Groups (see qph_perf_group_leader_new()): a member's leader, or
     * NULL; a leader counts nothing and is the only one that reads
     * PERF_FORMAT_GROUP. */
    QphPerfEvent *leader;
    gboolean is_leader;
    guint n_fallbacks; /* a leader's group reads refused (ECHILD) */
};

/* What a leader's read() returns: PERF_FORMAT_GROUP and the two times;
 * values[0] is the leader's own (0), then the members in open order. */
typedef struct {
    guint64 nr;
    guint64 time_enabled;
    guint64 time_running;
    guint64 values[QPH_PERF_GROUP_MAX + 1];
} QphPerfGroupBuf;

static QphPerfTestHooks qph_perf_hooks;

/**
 * qph_perf_set_test_hooks: replace the privilege check and the system call
 * (tests only; see perf-priv.h).
 */
void
qph_perf_set_test_hooks(const QphPerfTestHooks *hooks)
{
    if (hooks) {
        qph_perf_hooks = *hooks;
    } else {
        memset(&qph_perf_hooks, 0, sizeof(qph_perf_hooks));
    }
}

/**
 * qph_perf_read_paranoid: kernel.perf_event_paranoid, or
 * QPH_PERF_PARANOID_UNKNOWN (G_MININT) when it cannot be read.
 */
int
qph_perf_read_paranoid(void)
{
    const char *path = qph_perf_hooks.paranoid_path
                           ? qph_perf_hooks.paranoid_path
                           : QPH_PERF_PARANOID_PATH;
    g_autofree char *contents = NULL;
    gint64 v;
    char *end = NULL;

    if (!g_file_get_contents(path, &contents, NULL, NULL)) {
        return QPH_PERF_PARANOID_UNKNOWN;
    }
    g_strstrip(contents);
    v = g_ascii_strtoll(contents, &end, 10);
    if (end == contents || *end != '\0' || v < G_MININT + 1 || v > G_MAXINT) {
        return QPH_PERF_PARANOID_UNKNOWN;
    }
    return (int)v;
}

/* CAP_PERFMON or CAP_SYS_ADMIN in the effective set. */
static gboolean
qph_perf_real_is_privileged(void)
{
    struct __user_cap_header_struct hdr = {
        .version = _LINUX_CAPABILITY_VERSION_3,
        .pid = 0,
    };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};

    if (syscall(SYS_capget, &hdr, data) < 0) {
        return FALSE;
    }
    return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &
            CAP_TO_MASK(CAP_SYS_ADMIN)) ||
           (data[CAP_TO_INDEX(CAP_PERFMON)].effective &
            CAP_TO_MASK(CAP_PERFMON));
}

/**
 * qph_perf_kernel_counting_allowed: whether an event that counts kernel
 * code is expected to open.  An unreadable paranoid file means "try it":
 * the EACCES fallback still catches a wrong guess.
 */
gboolean
qph_perf_kernel_counting_allowed(void)
{
    gboolean privileged = qph_perf_hooks.is_privileged
                              ? qph_perf_hooks.is_privileged()
                              : qph_perf_real_is_privileged();
    int paranoid;

    if (privileged) {
        return TRUE;
    }
    paranoid = qph_perf_read_paranoid();
    return paranoid == QPH_PERF_PARANOID_UNKNOWN || paranoid < 2;
}

static int
qph_perf_sys_open(struct perf_event_attr *attr, pid_t tid, int cpu,
                  int group_fd, unsigned long flags)
{
    if (qph_perf_hooks.open) {
        return qph_perf_hooks.open(attr, tid, cpu, group_fd, flags);
    }
    return (int)syscall(SYS_perf_event_open, attr, tid, cpu, group_fd, flags);
}

/*
 * libpfm4 is loaded only while events are being encoded.  Its event tables
 * are relocated when the library is loaded, which costs 2 MiB of resident
 * memory per helper before a single event is asked for; a helper that
 * nobody asks (most of them) should not pay that.  It is loaded on the
 * first encoding and unloaded from the next idle turn of the main loop, so
 * a set-perf-events with many entries loads it once.
 */
typedef struct {
    void *handle;
    int init_ret;
    guint unload_source;
    int (*initialize)(void);
    void (*terminate)(void);
    int (*get_os_event_encoding)(const char *, int, pfm_os_t, void *);
    const char *(*strerror)(int);
} QphPfm;

static QphPfm qph_pfm;

static gboolean
qph_perf_pfm_unload(gpointer data)
{
    qph_pfm.unload_source = 0;
    if (qph_pfm.handle) {
        if (qph_pfm.init_ret == PFM_SUCCESS) {
            qph_pfm.terminate();
        }
        dlclose(qph_pfm.handle);
        qph_pfm.handle = NULL;
    }
    return G_SOURCE_REMOVE;
}

/* Load and initialize libpfm4 if needed; FALSE with @error set if absent. */
static gboolean
qph_perf_pfm_load(const char *name, GError **error)
{
    /* In the helper, encoding runs from a main loop dispatch; a caller
     * without a main loop (a unit test) keeps the library loaded. */
    if (!qph_pfm.unload_source && g_main_depth() > 0) {
        qph_pfm.unload_source = g_idle_add(qph_perf_pfm_unload, NULL);
    }
    if (qph_pfm.handle) {
        return TRUE;
    }
    qph_pfm.handle = dlopen("libpfm.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!qph_pfm.handle) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot encode perf event '%s': libpfm4 cannot be "
                    "loaded: %s.",
                    name, dlerror());
        return FALSE;
    }
    qph_pfm.initialize = (int (*)(void))dlsym(qph_pfm.handle, "pfm_initialize");
    qph_pfm.terminate = (void (*)(void))dlsym(qph_pfm.handle, "pfm_terminate");
    qph_pfm.get_os_event_encoding =
        (int (*)(const char *, int, pfm_os_t, void *))dlsym(
            qph_pfm.handle, "pfm_get_os_event_encoding");
    qph_pfm.strerror =
        (const char *(*)(int))dlsym(qph_pfm.handle, "pfm_strerror");
    if (!qph_pfm.initialize || !qph_pfm.terminate ||
        !qph_pfm.get_os_event_encoding || !qph_pfm.strerror) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot encode perf event '%s': libpfm4 lacks the "
                    "functions the helper uses.",
                    name);
        dlclose(qph_pfm.handle);
        qph_pfm.handle = NULL;
        return FALSE;
    }
    qph_pfm.init_ret = qph_pfm.initialize();
    return TRUE;
}

/* perf_event_attr types that need a hardware PMU (dynamic PMUs included). */
static gboolean
qph_perf_attr_is_hardware(const struct perf_event_attr *attr)
{
    return attr->type == PERF_TYPE_HARDWARE ||
           attr->type == PERF_TYPE_HW_CACHE || attr->type == PERF_TYPE_RAW ||
           attr->type >= PERF_TYPE_MAX;
}

static const char *
qph_perf_attr_unit(const struct perf_event_attr *attr)
{
    if (attr->type == PERF_TYPE_SOFTWARE &&
        (attr->config == PERF_COUNT_SW_CPU_CLOCK ||
         attr->config == PERF_COUNT_SW_TASK_CLOCK)) {
        return "ns";
    }
    return "count";
}

/*
 * Encode @pfm_string with libpfm4 into @attr.  @name is what the user
 * asked for, used in messages.  @entry (may be NULL) supplies the fallback
 * encoding for catalog names this libpfm4 does not know.
 */
static gboolean
qph_perf_encode(const char *name, const char *pfm_string,
                const QphPerfCatalogEntry *entry, struct perf_event_attr *attr,
                char **encoding, GError **error)
{
    pfm_perf_encode_arg_t arg;
    char *fstr = NULL;
    int ret;

    if (!qph_perf_pfm_load(name, error)) {
        return FALSE;
    }
    ret = qph_pfm.init_ret;
    if (ret != PFM_SUCCESS) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot encode perf event '%s': libpfm4 failed to "
                    "initialize: %s.",
                    name, qph_pfm.strerror(ret));
        return FALSE;
    }

    memset(attr, 0, sizeof(*attr));
    memset(&arg, 0, sizeof(arg));
    arg.attr = attr;
    arg.fstr = &fstr;
    arg.size = sizeof(arg);
    ret = qph_pfm.get_os_event_encoding(pfm_string, PFM_PLM0 | PFM_PLM3,
                                        PFM_OS_PERF_EVENT_EXT, &arg);
    if (ret == PFM_SUCCESS) {
        *encoding = g_strdup(fstr);
        free(fstr);
        return TRUE;
    }
    free(fstr);

    if (ret == PFM_ERR_NOTFOUND && entry && entry->has_fallback) {
        /* Same privilege defaults libpfm4 gives software events. */
        memset(attr, 0, sizeof(*attr));
        attr->type = entry->fallback_type;
        attr->config = entry->fallback_config;
        attr->exclude_hv = 1;
        *encoding = g_strdup_printf("%s (built in: this libpfm4 does not "
                                    "know it)",
                                    entry->pfm_name);
        return TRUE;
    }

    if (ret == PFM_ERR_NOTFOUND) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Unknown perf event '%s': libpfm4 says: %s.", name,
                    qph_pfm.strerror(ret));
    } else {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Invalid perf event '%s': libpfm4 says: %s.", name,
                    qph_pfm.strerror(ret));
    }
    return FALSE;
}

/**
 * qph_perf_event_new: encode @name (a catalog name or any libpfm4 string).
 *
 * Opens nothing: fds come with qph_perf_event_attach().  Returns NULL with
 * @error set for an unknown or invalid name and for the resctrl-served
 * catalog names.
 */
QphPerfEvent *
qph_perf_event_new(const char *name, GError **error)
{
    const QphPerfCatalogEntry *entry;
    g_autoptr(QphPerfEvent) ev = NULL;

    if (!name || !*name) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "A perf event name cannot be empty.");
        return NULL;
    }
    if (strlen(name) > QPH_PERF_NAME_MAX) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Perf event name '%.32s...' is too long: the limit is "
                    "%d bytes.",
                    name, QPH_PERF_NAME_MAX);
        return NULL;
    }

    entry = qph_perf_catalog_lookup(name);
    if (entry && entry->resctrl) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    QPH_PERF_CATALOG_RESCTRL_UNSUPPORTED, name);
        return NULL;
    }

    ev = g_new0(QphPerfEvent, 1);
    ev->name = g_strdup(name);
    ev->threads = g_array_new(FALSE, FALSE, sizeof(QphPerfThread));
    if (!qph_perf_encode(name, entry ? entry->pfm_name : name, entry, &ev->attr,
                         &ev->encoding, error)) {
        return NULL;
    }

    /* Count, never sample; each thread on its own fd. */
    ev->attr.size = sizeof(ev->attr);
    ev->attr.read_format =
        PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    ev->attr.disabled = 0;
    /* Threads created later count into their creator's fd; processes
     * QEMU forks (exec: migration, helpers it spawns) do not: they are
     * not QEMU's CPU time.  inherit_thread needs Linux 5.13; see open. */
    ev->attr.inherit = 1;
    ev->attr.inherit_thread = 1;
    ev->attr.sample_period = 0;
    ev->attr.sample_type = 0;
    ev->attr.freq = 0;
    ev->unit = entry ? entry->unit : qph_perf_attr_unit(&ev->attr);
    return g_steal_pointer(&ev);
}

/**
 * qph_perf_event_free: close every fd and free @ev (NULL is fine).
 */
void
qph_perf_event_free(QphPerfEvent *ev)
{
    if (!ev) {
        return;
    }
    for (guint i = 0; i < ev->threads->len; i++) {
        close(g_array_index(ev->threads, QphPerfThread, i).fd);
    }
    g_array_unref(ev->threads);
    g_free(ev->encoding);
    g_free(ev->name);
    g_free(ev);
}

const char *
qph_perf_event_get_name(const QphPerfEvent *ev)
{
    return ev->name;
}

/* "count", "ns" (cpu/task clock) or the catalog's unit. */
const char *
qph_perf_event_get_unit(const QphPerfEvent *ev)
{
    return ev->unit;
}

/* libpfm4's fully qualified form: "perf::PERF_COUNT_SW_TASK_CLOCK:u=1:..." */
const char *
qph_perf_event_get_encoding(const QphPerfEvent *ev)
{
    return ev->encoding;
}

const struct perf_event_attr *
qph_perf_event_get_attr(const QphPerfEvent *ev)
{
    return &ev->attr;
}

/* TRUE once the event fell back to counting user space only. */
gboolean
qph_perf_event_get_user_only(const QphPerfEvent *ev)
{
    return ev->user_only;
}

guint
qph_perf_event_get_n_threads(const QphPerfEvent *ev)
{
    return ev->threads->len;
}

/* The @i-th attached thread (ascending tid order), or 0 when out of range. */
pid_t
qph_perf_event_get_thread(const QphPerfEvent *ev, guint i)
{
    if (i >= ev->threads->len) {
        return 0;
    }
    return g_array_index(ev->threads, QphPerfThread, i).tid;
}

/* Index of @tid in ev->threads, or where it would be inserted. */
static guint
qph_perf_event_find(const QphPerfEvent *ev, pid_t tid, gboolean *found)
{
    guint lo = 0, hi = ev->threads->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        pid_t t = g_array_index(ev->threads, QphPerfThread, mid).tid;

        if (t == tid) {
            *found = TRUE;
            return mid;
        }
        if (t < tid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = FALSE;
    return lo;
}

gboolean
qph_perf_event_has_thread(const QphPerfEvent *ev, pid_t tid)
{
    gboolean found;

    qph_perf_event_find(ev, tid, &found);
    return found;
}

/*
 * Why perf_event_open failed, by errno.  "host" sentences are about the
 * machine, not the thread.  EACCES/EPERM have their own sentence.
 */
static const struct {
    int err;
    gboolean hardware_only;
    gboolean host;
    const char *why;
} qph_perf_open_errors[] = {
    {ENOENT, TRUE, TRUE, "the kernel has no hardware PMU for it"},
    {ENODEV, TRUE, TRUE, "the kernel has no hardware PMU for it"},
    {EOPNOTSUPP, TRUE, TRUE,
     "the kernel has no hardware PMU for it, or a guest owns the PMU"},
    {ENOENT, FALSE, TRUE, "the kernel does not support it"},
    {ENODEV, FALSE, TRUE, "the kernel does not support it"},
    {EOPNOTSUPP, FALSE, TRUE, "the kernel does not support it"},
    {EBUSY, FALSE, TRUE,
     "the hardware counters are in use by another tool or by a guest that "
     "owns the PMU"},
    {ESRCH, FALSE, FALSE, "the thread does not exist (it may have exited)"},
    {EMFILE, FALSE, FALSE,
     "the helper is out of file descriptors; raise its open file limit "
     "(RLIMIT_NOFILE) or enable fewer events"},
    {ENFILE, FALSE, FALSE,
     "the system is out of file descriptors; enable fewer events"},
    {EINVAL, FALSE, FALSE,
     "the kernel rejected its attributes (a modifier this kernel or PMU "
     "does not support?)"},
    {E2BIG, FALSE, FALSE,
     "the kernel rejected its attributes (a modifier this kernel or PMU "
     "does not support?)"},
};

static void
qph_perf_open_error(const QphPerfEvent *ev, pid_t tid, int err,
                    gboolean user_only, GError **error)
{
    gboolean hw = qph_perf_attr_is_hardware(&ev->attr);

    if (err == EACCES || err == EPERM) {
        int paranoid = qph_perf_read_paranoid();
        g_autofree char *level = paranoid == QPH_PERF_PARANOID_UNKNOWN
                                     ? g_strdup("cannot be read")
                                     : g_strdup_printf("is %d", paranoid);
        g_autofree char *proc = g_strdup_printf("/proc/%d", (int)tid);
        struct stat st;

        /* Another user's thread: perf_event_open's ptrace access check
         * refuses it whatever the paranoid level, so do not suggest
         * lowering it. */
        if (stat(proc, &st) == 0 && st.st_uid != getuid()) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Not allowed to count event '%s' on thread %d: the "
                        "thread belongs to uid %u and the helper runs as uid "
                        "%u, which no kernel.perf_event_paranoid (it %s) "
                        "allows; CAP_PERFMON or CAP_SYS_ADMIN (Linux 5.8+), "
                        "CAP_SYS_PTRACE, or running the helper as the user "
                        "that owns the thread would allow it "
                        "(perf_event_open: %s).",
                        ev->name, (int)tid, (unsigned)st.st_uid,
                        (unsigned)getuid(), level, g_strerror(err));
            return;
        }
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Not allowed to count event '%s' on thread %d%s: "
                    "kernel.perf_event_paranoid %s; CAP_PERFMON (Linux "
                    "5.8+) or CAP_SYS_ADMIN, a lower "
                    "kernel.perf_event_paranoid, or running as the user "
                    "that owns the thread would allow it "
                    "(perf_event_open: %s).",
                    ev->name, (int)tid,
                    user_only ? " even in user space only" : "", level,
                    g_strerror(err));
        return;
    }

    for (guint i = 0; i < G_N_ELEMENTS(qph_perf_open_errors); i++) {
        if (qph_perf_open_errors[i].err != err ||
            (qph_perf_open_errors[i].hardware_only && !hw)) {
            continue;
        }
        if (qph_perf_open_errors[i].host) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Event '%s' cannot be counted on this host: %s "
                        "(perf_event_open: %s).",
                        ev->name, qph_perf_open_errors[i].why, g_strerror(err));
        } else {
            g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                        "Cannot count event '%s' on thread %d: %s "
                        "(perf_event_open: %s).",
                        ev->name, (int)tid, qph_perf_open_errors[i].why,
                        g_strerror(err));
        }
        return;
    }
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Cannot count event '%s' on thread %d (perf_event_open: %s).",
                ev->name, (int)tid, g_strerror(err));
}

static int
qph_perf_open_attr(struct perf_event_attr *attr, pid_t tid, int group_fd,
                   int *err)
{
    int fd = qph_perf_sys_open(attr, tid, -1, group_fd, PERF_FLAG_FD_CLOEXEC);

    *err = fd < 0 ? errno : 0;
    return fd;
}

/*
 * Open @ev on @tid, switching the event to user-only counting when kernel
 * counting is not allowed.  The switch happens only while the event counts
 * nothing yet, so all its threads always count the same thing, and it is
 * kept only if the open succeeds.  *@user_only tells whether the last
 * attempt excluded the kernel (for the error message).
 */
static int
qph_perf_event_open(QphPerfEvent *ev, pid_t tid, int group_fd, int *err,
                    gboolean *user_only)
{
    gboolean may_switch = !ev->user_only && ev->threads->len == 0 &&
                          !ev->attr.exclude_kernel && !ev->attr.exclude_user;
    gboolean to_user = may_switch && !qph_perf_kernel_counting_allowed();
    struct perf_event_attr attr = ev->attr;
    int fd;

    if (to_user) {
        attr.exclude_kernel = 1;
        attr.exclude_hv = 1;
    }
    fd = qph_perf_open_attr(&attr, tid, group_fd, err);
    if (fd < 0 && *err == EINVAL && attr.inherit_thread &&
        ev->threads->len == 0) {
        /* A kernel before 5.13: forked processes will be counted too. */
        attr.inherit_thread = 0;
        fd = qph_perf_open_attr(&attr, tid, group_fd, err);
        if (fd >= 0) {
            ev->attr.inherit_thread = 0;
        }
    }
    if (fd < 0 && may_switch && !to_user && (*err == EACCES || *err == EPERM)) {
        /* The guess was wrong (an LSM, a capability the kernel lacks). */
        to_user = TRUE;
        attr.exclude_kernel = 1;
        attr.exclude_hv = 1;
        fd = qph_perf_open_attr(&attr, tid, group_fd, err);
    }
    *user_only = attr.exclude_kernel;
    if (fd >= 0 && to_user) {
        ev->attr = attr;
        ev->user_only = TRUE;
    }
    return fd;
}

/**
 * qph_perf_event_attach: open one counting fd for @ev on thread @tid.
 *
 * Attaching a thread that is already attached does nothing, so a thread
 * is never counted twice.  Returns FALSE with @error set (a sentence that
 * says why and what would help) when perf_event_open fails.
 */
gboolean
qph_perf_event_attach(QphPerfEvent *ev, pid_t tid, GError **error)
{
    QphPerfThread th;
    gboolean found, user_only;
    guint at;
    int err, group_fd = -1;

    if (tid <= 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Cannot count event '%s' on thread %d: not a valid "
                    "thread id.",
                    ev->name, (int)tid);
        return FALSE;
    }
    at = qph_perf_event_find(ev, tid, &found);
    if (found) {
        return TRUE;
    }
    if (ev->leader) {
        guint l = qph_perf_event_find(ev->leader, tid, &found);

        if (!found) {
            /* The leader could not be opened there: the thread is gone. */
            return TRUE;
        }
        group_fd = g_array_index(ev->leader->threads, QphPerfThread, l).fd;
    }

    th.tid = tid;
    th.exited = FALSE;
    th.fd = qph_perf_event_open(ev, tid, group_fd, &err, &user_only);
    if (th.fd < 0 && group_fd >= 0 && err == EINVAL) {
        /* Seen now and then on a thread its creator had just made, while
         * threads were being made in a tight loop (tests/perf): the
         * kernel would not add the member to the leader it had just
         * opened there.  Counted alone it is still counted: the group
         * read then has fewer values than expected and the thread's
         * members are read one by one. */
        th.fd = qph_perf_event_open(ev, tid, -1, &err, &user_only);
    }
    if (th.fd < 0) {
        qph_perf_open_error(ev, tid, err, user_only, error);
        return FALSE;
    }
    g_array_insert_val(ev->threads, at, th);
    return TRUE;
}

/**
 * qph_perf_group_leader_new: the leader of a group of software events.
 * @name: what error messages call it (the first member's name)
 *
 * Why a leader of its own, and one that counts nothing: with inherit, a
 * thread created while a group is being built on its creator (leader
 * open, members not yet) inherits the group as it was, and from Linux
 * 6.7 ("perf: Disallow mis-matched inherited group reads",
 * __perf_read_group_add() comparing group_generation and nr_siblings of
 * the inherited leader with its parent's) every PERF_FORMAT_GROUP read of
 * the creator's group fails with ECHILD for as long as that thread lives.
 * A group also fails that way for the microseconds a thread created by an
 * inherited thread takes to copy it (its copy links to the original
 * leader, whose read does not lock the copying thread's context).  So
 * only the leader reads PERF_FORMAT_GROUP; members are opened with plain
 * read_format, so that when the group read is refused each member's fd is
 * read alone (perf_read_one() sums that member's inherited copies, with
 * no such check) and the answer is the same.  A real event as leader
 * could not be read alone.  The leader is a software dummy that user
 * space may open at any paranoid level (exclude_kernel); it costs one
 * descriptor per thread.
 */
QphPerfEvent *
qph_perf_group_leader_new(const char *name)
{
    QphPerfEvent *ev = g_new0(QphPerfEvent, 1);

    ev->name = g_strdup(name);
    ev->encoding = g_strdup("perf::PERF_COUNT_SW_DUMMY (group leader)");
    ev->unit = "count";
    ev->threads = g_array_new(FALSE, FALSE, sizeof(QphPerfThread));
    ev->is_leader = TRUE;
    ev->attr.size = sizeof(ev->attr);
    ev->attr.type = PERF_TYPE_SOFTWARE;
    ev->attr.config = PERF_COUNT_SW_DUMMY;
    ev->attr.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                           PERF_FORMAT_TOTAL_TIME_RUNNING;
    ev->attr.exclude_kernel = 1;
    ev->attr.exclude_hv = 1;
    /* The leader's inherit decides whether the group is inherited. */
    ev->attr.inherit = 1;
    ev->attr.inherit_thread = 1;
    return ev;
}

/**
 * qph_perf_event_join_group: count @ev in @leader's group.
 *
 * @ev must be a software event (never multiplexed: a group is scheduled
 * as a whole) with no thread attached yet, @leader one made by
 * qph_perf_group_leader_new(), attached to a thread before @ev is.  At
 * most QPH_PERF_GROUP_MAX members.  FALSE when @ev cannot join: nothing
 * changes.
 */
gboolean
qph_perf_event_join_group(QphPerfEvent *ev, QphPerfEvent *leader)
{
    if (ev->threads->len > 0 || leader->threads->len > 0 ||
        !leader->is_leader || ev->attr.type != PERF_TYPE_SOFTWARE ||
        ev->is_leader) {
        return FALSE;
    }
    ev->leader = leader;
    return TRUE;
}

gboolean
qph_perf_event_is_leader(const QphPerfEvent *ev)
{
    return ev->is_leader;
}

QphPerfEvent *
qph_perf_event_get_leader(const QphPerfEvent *ev)
{
    return ev->leader;
}

/* Group reads of @leader refused so far and answered member by member. */
guint
qph_perf_group_get_n_fallbacks(const QphPerfEvent *leader)
{
    return leader->n_fallbacks;
}

static gboolean
qph_perf_read_fd(int fd, QphPerfReadBuf *buf)
{
    ssize_t n;

    do {
        n = read(fd, buf, sizeof(*buf));
    } while (n < 0 && errno == EINTR);
    if (n >= 0 && n != (ssize_t)sizeof(*buf)) {
        errno = 0; /* short read: the counter is in an error state */
    }
    return n == (ssize_t)sizeof(*buf);
}

/* Read a group through its leader's @fd: TRUE when it holds @nr values
 * (the leader's and @nr - 1 members'); FALSE with errno (0: another
 * shape). */
static gboolean
qph_perf_read_group_fd(int fd, QphPerfGroupBuf *buf, guint nr)
{
    gsize want = (3 + (gsize)nr) * sizeof(guint64);
    ssize_t n;

    do {
        n = read(fd, buf, want);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return FALSE;
    }
    if ((gsize)n != want || buf->nr != nr) {
        errno = 0;
        return FALSE;
    }
    return TRUE;
}

/*
 * Read group member @ev's counter @fd alone.  A member's own times lag:
 * the kernel brings a sibling's times up to date only in a group read
 * (perf_event_update_sibling_time()), so read alone it can say it ran
 * for less time than it was enabled (80 % seen) although a group of
 * software events is always scheduled as a whole and never multiplexed.
 * Its time_running is taken to be its time_enabled, so the value is not
 * scaled up.
 */
static gboolean
qph_perf_read_member_fd(int fd, QphPerfReadBuf *buf)
{
    if (!qph_perf_read_fd(fd, buf)) {
        return FALSE;
    }
    buf->time_running = buf->time_enabled;
    return TRUE;
}

/* raw * enabled / running when the counter was multiplexed. */
static guint64
qph_perf_scale(const QphPerfReadBuf *buf, gboolean *scaled)
{
    if (buf->time_running == 0 || buf->time_running >= buf->time_enabled) {
        *scaled = FALSE;
        return buf->value;
    }
    *scaled = TRUE;
#ifdef __SIZEOF_INT128__
    {
        unsigned __int128 v = (unsigned __int128)buf->value *
                              buf->time_enabled / buf->time_running;
        return v > G_MAXUINT64 ? G_MAXUINT64 : (guint64)v;
    }
#else
    return (guint64)((long double)buf->value * buf->time_enabled /
                     buf->time_running);
#endif
}

static void
qph_perf_read_error(const QphPerfEvent *ev, pid_t tid, int err, GError **error)
{
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Cannot read event '%s' on thread %d: %s.", ev->name, (int)tid,
                err ? g_strerror(err) : "short read");
}

/* @a + @b, saturating at G_MAXUINT64 (and saying so in *@overflow). */
static guint64
qph_perf_add(guint64 a, guint64 b, gboolean *overflow)
{
    if (a > G_MAXUINT64 - b) {
        *overflow = TRUE;
        return G_MAXUINT64;
    }
    return a + b;
}

/**
 * qph_perf_event_mark_exited: thread @tid is gone from the process.
 *
 * Its fd stays open: threads it created after the event was enabled count
 * into it, and its final count is kept by the kernel.  From now on its
 * value is reported as exited.  A @tid that is not attached, or already
 * marked, is ignored.  Once marked, a thread stays exited: a new thread
 * that reuses the id is counted where the kernel counts it (in its
 * creator's fd), never in this one.
 */
void
qph_perf_event_mark_exited(QphPerfEvent *ev, pid_t tid)
{
    gboolean found;
    guint at = qph_perf_event_find(ev, tid, &found);
    QphPerfThread *th;

    if (!found) {
        return;
    }
    th = &g_array_index(ev->threads, QphPerfThread, at);
    if (!th->exited) {
        th->exited = TRUE;
        ev->n_exited++;
    }
}

/* Whether attached thread @i is marked exited. */
gboolean
qph_perf_event_thread_exited(const QphPerfEvent *ev, guint i)
{
    return i < ev->threads->len &&
           g_array_index(ev->threads, QphPerfThread, i).exited;
}

/*
 * Add one counter's reading @buf (thread @th) to @value and, when @out is
 * not NULL, describe it there.
 */
static void
qph_perf_account(const QphPerfThread *th, const QphPerfReadBuf *buf,
                 QphPerfEventValue *value, QphPerfThreadValue *out)
{
    gboolean scaled;
    guint64 v = qph_perf_scale(buf, &scaled);
    gboolean unscheduled = buf->time_enabled > 0 && buf->time_running == 0;

    value->value = qph_perf_add(value->value, v, &value->overflow);
    if (th->exited) {
        value->exited_value =
            qph_perf_add(value->exited_value, v, &value->overflow);
    }
    value->time_enabled =
        qph_perf_add(value->time_enabled, buf->time_enabled, &value->overflow);
    value->time_running =
        qph_perf_add(value->time_running, buf->time_running, &value->overflow);
    value->scaled |= scaled;
    value->n_unscheduled += unscheduled;
    if (out) {
        *out = (QphPerfThreadValue){
            .tid = th->tid,
            .value = v,
            .raw = buf->value,
            .time_enabled = buf->time_enabled,
            .time_running = buf->time_running,
            .scaled = scaled,
            .exited = th->exited,
            .unscheduled = unscheduled,
        };
    }
}

/**
 * qph_perf_event_read: read every attached thread.
 *
 * Fills @value with the totals and, when @threads is not NULL, up to
 * @n_threads per-thread values in ascending tid order (pass
 * qph_perf_event_get_n_threads() entries; exited ones say so).  One
 * read() per fd, no allocation.
 */
gboolean
qph_perf_event_read(QphPerfEvent *ev, QphPerfEventValue *value,
                    QphPerfThreadValue *threads, guint n_threads,
                    GError **error)
{
    const QphPerfThread *th = (const QphPerfThread *)ev->threads->data;
    guint n = ev->threads->len;

    *value = (QphPerfEventValue){.n_exited = ev->n_exited};
    for (guint i = 0; i < n; i++) {
        QphPerfReadBuf buf;

        if (!(ev->leader ? qph_perf_read_member_fd(th[i].fd, &buf)
                         : qph_perf_read_fd(th[i].fd, &buf))) {
            qph_perf_read_error(ev, th[i].tid, errno, error);
            return FALSE;
        }
        qph_perf_account(&th[i], &buf, value,
                         threads && i < n_threads ? &threads[i] : NULL);
    }
    return TRUE;
}

/*
 * One thread's members of a group, one by one (the group read was
 * refused).  @js[k] is member k's index of that thread, or G_MAXUINT.
 */
static gboolean
qph_perf_group_read_members(QphPerfEvent *const *evs, guint n, const guint *js,
                            QphPerfEventValue *values,
                            QphPerfThreadValue *const *threads, GError **error)
{
    for (guint k = 0; k < n; k++) {
        const QphPerfThread *th;
        QphPerfReadBuf buf;

        if (js[k] == G_MAXUINT) {
            continue;
        }
        th = &g_array_index(evs[k]->threads, QphPerfThread, js[k]);
        if (!qph_perf_read_member_fd(th->fd, &buf)) {
            qph_perf_read_error(evs[k], th->tid, errno, error);
            return FALSE;
        }
        qph_perf_account(th, &buf, &values[k],
                         threads ? &threads[k][js[k]] : NULL);
    }
    return TRUE;
}

/**
 * qph_perf_group_read: read the members @evs of @leader's group, one
 * read() of the leader's fd per thread.
 * @leader: made by qph_perf_group_leader_new()
 * @evs: every member still open in @leader's group, in the order they
 *     joined it (the kernel's order of siblings)
 * @n: how many (at most QPH_PERF_GROUP_MAX)
 * @values: @n totals
 * @threads: @n arrays of qph_perf_event_get_n_threads() entries, or NULL
 *
 * The same readings as qph_perf_event_read() on each member.  When the
 * kernel refuses the group read (ECHILD: a thread inherited the group
 * while it was being built, see qph_perf_group_leader_new()), or it fails
 * or returns another shape for any reason, that thread's members are read
 * one by one, so a query never fails because of the group.
 */
gboolean
qph_perf_group_read(QphPerfEvent *leader, QphPerfEvent *const *evs, guint n,
                    QphPerfEventValue *values,
                    QphPerfThreadValue *const *threads, GError **error)
{
    const QphPerfThread *lth = (const QphPerfThread *)leader->threads->data;
    guint next[QPH_PERF_GROUP_MAX] = {0};
    guint js[QPH_PERF_GROUP_MAX];

    g_return_val_if_fail(n <= QPH_PERF_GROUP_MAX, FALSE);
    for (guint k = 0; k < n; k++) {
        values[k] = (QphPerfEventValue){.n_exited = evs[k]->n_exited};
    }
    for (guint i = 0; i < leader->threads->len; i++) {
        pid_t tid = lth[i].tid;
        QphPerfGroupBuf g;
        guint nr = 1;

        /* Members are attached only where the leader is, all sorted by
         * tid: one cursor per member. */
        for (guint k = 0; k < n; k++) {
            const QphPerfThread *mth =
                (const QphPerfThread *)evs[k]->threads->data;
            guint len = evs[k]->threads->len;

            while (next[k] < len && mth[next[k]].tid < tid) {
                next[k]++;
            }
            if (next[k] < len && mth[next[k]].tid == tid) {
                js[k] = next[k]++;
                nr++;
            } else {
                js[k] = G_MAXUINT;
            }
        }
        if (!qph_perf_read_group_fd(lth[i].fd, &g, nr)) {
            /* ECHILD, another shape, anything: the members alone say
             * whether a counter really failed. */
            leader->n_fallbacks++;
            if (!qph_perf_group_read_members(evs, n, js, values, threads,
                                             error)) {
                return FALSE;
            }
            continue;
        }
        for (guint k = 0, v = 1; k < n; k++) {
            const QphPerfThread *th;
            QphPerfReadBuf buf;

            if (js[k] == G_MAXUINT) {
                continue;
            }
            th = &g_array_index(evs[k]->threads, QphPerfThread, js[k]);
            buf =
                (QphPerfReadBuf){g.values[v++], g.time_enabled, g.time_running};
            qph_perf_account(th, &buf, &values[k],
                             threads ? &threads[k][js[k]] : NULL);
        }
    }
    return TRUE;
}
