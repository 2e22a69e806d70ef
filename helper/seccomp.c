/*
 * seccomp.c: the system-call filter the helper runs under after start-up
 *
 * Once QEMU is started or attached and privileges are dropped
 * (privilege.c), the helper needs few system calls: its sockets (with
 * SCM_RIGHTS), perf_event_open and its ioctls, the resctrl tree (openat,
 * mkdir, rmdir, write, flock), /proc reads, timers, signals, memory, the
 * dlopen() of libpfm4 when an event is first encoded, a small state file
 * (openat, write, fallocate, fsync, rename, unlink: g_file_set_contents)
 * and exit.  Everything else is refused by a libseccomp filter.
 *
 * A refused call is never a kill: under libvirt a dead helper takes the VM
 * down with it.  It fails with ENOSYS, so code that meets it takes the
 * error path it already has (and libraries that try a newer call first,
 * as glibc does with clone3, fall back to an older one that is allowed),
 * and the kernel logs it: the filter carries SECCOMP_FILTER_FLAG_LOG, so
 * every refusal is an audit record ("type=1326 ... syscall=N") in the
 * kernel log, with the helper's pid and the call's number.  This needs no
 * signal handler (SCMP_ACT_TRAP would run code inside any system call, in
 * any thread) and no supervisor process (SCMP_ACT_NOTIFY); SCMP_ACT_LOG
 * alone would allow the call.  Calls from another ABI (x32, i386 on
 * x86_64) get the same answer instead of libseccomp's default kill.
 *
 * New threads are allowed (clone with CLONE_THREAD: the helper starts
 * none, but GLib would start its worker thread if something asked for
 * it), new processes and execve are not.  clone3 passes its
 * flags in memory, where a filter cannot look, so it gets ENOSYS and glibc
 * falls back to clone.  A sanitizer build also allows what the sanitizer
 * runtime needs at exit (LeakSanitizer stops the threads with ptrace from
 * a cloned task).  --no-seccomp turns the filter off for debugging.
 *
 * libseccomp is needed only to build and load the filter, once: it is
 * dlopen()ed for that and closed after it, so the helper does not keep its
 * relocated data (private to each helper) and the pages of its system-call
 * tables that only the name lookups touch for its whole life.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/seccomp.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define QPH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QPH_SANITIZED 1
#endif
#endif

/* What every refused call returns. */
#define QPH_SECCOMP_ERRNO ENOSYS

/* Allowed without conditions.  A name the architecture does not have is
 * skipped, so one list serves every architecture.  Grouped by purpose,
 * several names a line (not clang-formatted). */
/* clang-format off */
static const char *const allowed[] = {
    /* descriptors and files: sockets, /proc, resctrl, the state file */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close",
    "close_range", "open", "openat", "openat2", "lseek", "fcntl", "ioctl",
    "dup", "dup2", "dup3", "pipe", "pipe2", "stat", "fstat", "lstat",
    "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
    "getcwd", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "flock", "fsync", "fdatasync", "ftruncate",
    "fadvise64", "fallocate", "chmod", "fchmod", "fchmodat", "chown",
    "fchown", "lchown", "fchownat", "umask",
    /* sockets */
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown",
    "sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg", "recvmmsg",
    /* the main loop */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd",
    "eventfd2",
    /* counters */
    "perf_event_open",
    /* memory (malloc, dlopen of libpfm4) */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep",
    "gettimeofday", "time", "timerfd_create", "timerfd_settime",
    "timerfd_gettime",
    /* signals (the signalfd of main.c, abort) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait",
    "rt_sigsuspend", "sigaltstack", "signalfd", "signalfd4", "kill", "tgkill",
    "tkill", "restart_syscall",
    /* threads and processes: identity, waiting for QEMU in launch mode */
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq",
    "set_tid_address", "sched_yield", "sched_getaffinity", "membarrier",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getgroups", "getresuid", "getresgid", "capget", "prctl", "wait4",
    "waitid", "pidfd_open", "pidfd_send_signal", "getrlimit", "prlimit64",
    "getrandom", "uname", "sysinfo", "getcpu", "getpriority",
    "exit", "exit_group",
#ifdef QPH_SANITIZED
    /* LeakSanitizer's StopTheWorld and the symbolizer */
    "ptrace", "clone", "process_vm_readv", "getrusage", "sched_getparam",
    "sched_getscheduler",
#endif
};
/* clang-format on */

/* The libseccomp functions the filter is built with, from dlsym(). */
typedef struct {
    scmp_filter_ctx (*init)(uint32_t def_action);
    int (*attr_set)(scmp_filter_ctx ctx, enum scmp_filter_attr attr,
                    uint32_t value);
    int (*syscall_resolve_name)(const char *name);
    int (*rule_add)(scmp_filter_ctx ctx, uint32_t action, int syscall,
                    unsigned int arg_cnt, ...);
    int (*load)(const scmp_filter_ctx ctx);
    void (*release)(scmp_filter_ctx ctx);
} Scmp;

static const struct {
    const char *name;
    gsize offset;
} scmp_symbols[] = {
    {"seccomp_init", G_STRUCT_OFFSET(Scmp, init)},
    {"seccomp_attr_set", G_STRUCT_OFFSET(Scmp, attr_set)},
    {"seccomp_syscall_resolve_name",
     G_STRUCT_OFFSET(Scmp, syscall_resolve_name)},
    {"seccomp_rule_add", G_STRUCT_OFFSET(Scmp, rule_add)},
    {"seccomp_load", G_STRUCT_OFFSET(Scmp, load)},
    {"seccomp_release", G_STRUCT_OFFSET(Scmp, release)},
};

/* dlopen() libseccomp into @scmp; the handle, or NULL with @error set. */
static void *
scmp_open(Scmp *scmp, GError **error)
{
    void *handle = dlopen("libseccomp.so.2", RTLD_NOW | RTLD_LOCAL);

    if (!handle) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                    "Cannot install the seccomp filter: libseccomp cannot be "
                    "loaded: %s.",
                    dlerror());
        return NULL;
    }
    for (guint i = 0; i < G_N_ELEMENTS(scmp_symbols); i++) {
        void *sym = dlsym(handle, scmp_symbols[i].name);

        if (!sym) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                        "Cannot install the seccomp filter: libseccomp has "
                        "no %s.",
                        scmp_symbols[i].name);
            dlclose(handle);
            return NULL;
        }
        memcpy((char *)scmp + scmp_symbols[i].offset, &sym, sizeof(sym));
    }
    return handle;
}

static gboolean
seccomp_fail(int rc, const char *what, GError **error)
{
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-rc),
                "Cannot install the seccomp filter: %s failed: %s.", what,
                g_strerror(-rc));
    return FALSE;
}

/**
 * qph_seccomp_install - refuse every system call the helper does not need
 * @error: why the filter could not be installed
 *
 * Call once, after start-up (privileges dropped, no_new_privs set).
 *
 * Returns: TRUE when the filter is in place.
 */
/* Build the filter with @scmp and load it. */
static gboolean
seccomp_build_and_load(const Scmp *scmp, GError **error)
{
    scmp_filter_ctx ctx = scmp->init(SCMP_ACT_ERRNO(QPH_SECCOMP_ERRNO));
    int rc;

    if (!ctx) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOMEM,
                    "Cannot install the seccomp filter: seccomp_init failed.");
        return FALSE;
    }
    rc = scmp->attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                        SCMP_ACT_ERRNO(QPH_SECCOMP_ERRNO));
    if (rc < 0) {
        scmp->release(ctx);
        return seccomp_fail(rc, "setting the action for other ABIs", error);
    }
    /* The log line of every refusal; a kernel before 4.14 has no such flag,
     * and the filter still refuses. */
    if (scmp->attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1) < 0) {
        g_debug("The kernel cannot log seccomp refusals "
                "(SECCOMP_FILTER_FLAG_LOG).");
    }
    for (guint i = 0; i < G_N_ELEMENTS(allowed); i++) {
        int nr = scmp->syscall_resolve_name(allowed[i]);

        if (nr == __NR_SCMP_ERROR) {
            continue;
        }
        rc = scmp->rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0) {
            scmp->release(ctx);
            return seccomp_fail(rc, allowed[i], error);
        }
    }
#ifndef QPH_SANITIZED
    /* Threads, never processes. */
    rc =
        scmp->rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                       SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    if (rc < 0) {
        scmp->release(ctx);
        return seccomp_fail(rc, "clone", error);
    }
#endif
    rc = scmp->load(ctx);
    scmp->release(ctx);
    if (rc < 0) {
        return seccomp_fail(rc, "seccomp_load", error);
    }
    return TRUE;
}

/**
 * qph_seccomp_install - refuse every system call the helper does not need
 * @error: why the filter could not be installed
 *
 * Call once, after start-up (privileges dropped, no_new_privs set).
 * libseccomp is loaded for the call and closed again.
 *
 * Returns: TRUE when the filter is in place.
 */
gboolean
qph_seccomp_install(GError **error)
{
    Scmp scmp;
    void *handle = scmp_open(&scmp, error);
    gboolean ok;

    if (!handle) {
        return FALSE;
    }
    ok = seccomp_build_and_load(&scmp, error);
    dlclose(handle);
    if (ok) {
        g_debug("Seccomp filter installed: %u system calls allowed; any "
                "other fails with %s and is logged by the kernel.",
                (guint)G_N_ELEMENTS(allowed) + 1,
                g_strerror(QPH_SECCOMP_ERRNO));
    }
    return ok;
}

/**
 * qph_seccomp_selftest - one refused call, for the tests
 *
 * personality(0xffffffff) only reads the execution domain: harmless with
 * or without the filter, and the helper never calls it otherwise.
 */
void
qph_seccomp_selftest(void)
{
    long rc = syscall(SYS_personality, 0xffffffffUL);
    int saved = errno;

    if (rc < 0) {
        g_message("Seccomp self-test: personality() was refused: %s.",
                  g_strerror(saved));
    } else {
        g_message("Seccomp self-test: personality() was allowed.");
    }
}
