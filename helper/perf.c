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
#include <sys/ioctl.h>
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
    guint64 id;      /* the kernel's id of the counter (PERF_EVENT_IOC_ID) */
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
    /* A group (see qph_perf_event_join_group()): the leader, or NULL;
     * grouped events read PERF_FORMAT_GROUP. */
    QphPerfEvent *leader;
    gboolean grouped;
};

/* What read() returns with PERF_FORMAT_GROUP|ID and the two times. */
typedef struct {
    guint64 nr;
    guint64 time_enabled;
    guint64 time_running;
    struct {
        guint64 value;
        guint64 id;
    } values[QPH_PERF_GROUP_MAX];
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
    th.id = 0;
    th.fd = qph_perf_event_open(ev, tid, group_fd, &err, &user_only);
    if (th.fd < 0) {
        qph_perf_open_error(ev, tid, err, user_only, error);
        return FALSE;
    }
    if (ev->grouped && ioctl(th.fd, PERF_EVENT_IOC_ID, &th.id) < 0) {
        err = errno;
        close(th.fd);
        qph_perf_open_error(ev, tid, err, user_only, error);
        return FALSE;
    }
    g_array_insert_val(ev->threads, at, th);
    return TRUE;
}

/**
 * qph_perf_event_join_group: count @ev in one group with @leader.
 *
 * Both must be software events (never multiplexed: a group is scheduled
 * as a whole, and a hardware group larger than the PMU would never run)
 * with no thread attached yet; @leader is attached to a thread before @ev
 * is.  Then one read() of the leader's fd per thread returns every member
 * (qph_perf_group_read()).  A NULL @leader makes @ev a leader.  FALSE when
 * they cannot be grouped: nothing changes.
 */
gboolean
qph_perf_event_join_group(QphPerfEvent *ev, QphPerfEvent *leader)
{
    QphPerfEvent *l = leader ? leader : ev;

    if (ev->threads->len > 0 || l->threads->len > 0 ||
        ev->attr.type != PERF_TYPE_SOFTWARE ||
        l->attr.type != PERF_TYPE_SOFTWARE) {
        return FALSE;
    }
    ev->leader = leader;
    ev->grouped = TRUE;
    ev->attr.read_format |= PERF_FORMAT_GROUP | PERF_FORMAT_ID;
    return TRUE;
}

gboolean
qph_perf_event_is_grouped(const QphPerfEvent *ev)
{
    return ev->grouped;
}

QphPerfEvent *
qph_perf_event_get_leader(const QphPerfEvent *ev)
{
    return ev->leader;
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

/* Read a group through @fd; FALSE (errno set, 0 for a short read). */
static gboolean
qph_perf_read_group_fd(int fd, QphPerfGroupBuf *buf)
{
    ssize_t n;

    do {
        n = read(fd, buf, sizeof(*buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return FALSE;
    }
    if (n < 3 * (ssize_t)sizeof(guint64) || buf->nr > QPH_PERF_GROUP_MAX ||
        (gsize)n != (3 + 2 * buf->nr) * sizeof(guint64)) {
        errno = 0;
        return FALSE;
    }
    return TRUE;
}

/* The value of counter @id in @g into @out; FALSE if it is not there. */
static gboolean
qph_perf_group_pick(const QphPerfGroupBuf *g, guint64 id, QphPerfReadBuf *out)
{
    for (guint64 k = 0; k < g->nr; k++) {
        if (g->values[k].id == id) {
            *out = (QphPerfReadBuf){g->values[k].value, g->time_enabled,
                                    g->time_running};
            return TRUE;
        }
    }
    errno = 0;
    return FALSE;
}

/* One thread's counter of @ev, grouped or not. */
static gboolean
qph_perf_read_thread(const QphPerfEvent *ev, const QphPerfThread *th,
                     QphPerfReadBuf *buf)
{
    QphPerfGroupBuf g;

    if (!ev->grouped) {
        return qph_perf_read_fd(th->fd, buf);
    }
    return qph_perf_read_group_fd(th->fd, &g) &&
           qph_perf_group_pick(&g, th->id, buf);
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

        if (!qph_perf_read_thread(ev, &th[i], &buf)) {
            qph_perf_read_error(ev, th[i].tid, errno, error);
            return FALSE;
        }
        qph_perf_account(&th[i], &buf, value,
                         threads && i < n_threads ? &threads[i] : NULL);
    }
    return TRUE;
}

/**
 * qph_perf_group_read: read the events @evs of one group, one read() of
 * the leader's fd per thread.
 * @leader: the group's leader (one of @evs, or kept only for the group)
 * @evs: events whose leader is @leader (or @leader itself)
 * @n: how many
 * @values: @n totals
 * @threads: @n arrays of qph_perf_event_get_n_threads() entries, or NULL
 *
 * The same readings as qph_perf_event_read() on each event, for a
 * fraction of the system calls.
 */
gboolean
qph_perf_group_read(QphPerfEvent *leader, QphPerfEvent *const *evs, guint n,
                    QphPerfEventValue *values,
                    QphPerfThreadValue *const *threads, GError **error)
{
    const QphPerfThread *lth = (const QphPerfThread *)leader->threads->data;

    for (guint k = 0; k < n; k++) {
        values[k] = (QphPerfEventValue){.n_exited = evs[k]->n_exited};
    }
    for (guint i = 0; i < leader->threads->len; i++) {
        QphPerfGroupBuf g;

        if (!qph_perf_read_group_fd(lth[i].fd, &g)) {
            qph_perf_read_error(leader, lth[i].tid, errno, error);
            return FALSE;
        }
        for (guint k = 0; k < n; k++) {
            gboolean found;
            guint j = qph_perf_event_find(evs[k], lth[i].tid, &found);
            const QphPerfThread *th;
            QphPerfReadBuf buf;

            if (!found) {
                continue; /* gone before this event was opened there */
            }
            th = &g_array_index(evs[k]->threads, QphPerfThread, j);
            if (!qph_perf_group_pick(&g, th->id, &buf)) {
                qph_perf_read_error(evs[k], th->tid, 0, error);
                return FALSE;
            }
            qph_perf_account(th, &buf, &values[k],
                             threads ? &threads[k][j] : NULL);
        }
    }
    return TRUE;
}
