/*
 * wrap.c: libvirt <emulator> wrapper mode (see wrap.h for the usage)
 *
 * How a libvirt-started QEMU gets a helper in front of its monitor:
 *
 *  1. libvirt execs the domain's <emulator>, our wrapper script, which execs
 *     "qemu-perf-helper --wrap -- QEMU-ARGS"; the pid is still the one
 *     libvirt recorded, and every descriptor libvirt passed is still open.
 *  2. qph_wrap_find_monitor() (wrap-argv.c) looks for "-chardev
 *     socket,id=charmonitor,...".  No monitor (capability probes, -help,
 *     -version) or a form we do not know: exec the real QEMU with the same
 *     arguments and stop here.
 *  3. The listener: with fd=N, libvirt's own listening socket N; with
 *     path=P, a socket we bind on P (libvirt connects to P either way).
 *  4. socketpair(): QEMU's end becomes "-chardev socket,id=charmonitor,fd=K",
 *     a connected client socket on which QEMU sends its greeting.
 *  5. The helper starts detached (fork, setsid, fork) with the other end as
 *     fd 3, the listener as fd 4 and nothing else, and --qemu-pid set to our
 *     pid.  A close-on-exec pipe tells us whether its exec worked; if not,
 *     we undo 3-4 and run QEMU untouched, so the VM starts anyway.
 *  6. We close the listener and the helper's end, and exec the real QEMU
 *     with the rewritten argv: our pid becomes QEMU's, as libvirt expects.
 *
 * The only descriptor libvirt passed that QEMU loses is the monitor's
 * listening socket, which the helper holds now.  Tap devices, -incoming
 * fds, -add-fd sets and libvirt's pidfile lock all stay QEMU's.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "wrap.h"
#include "wrap-priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>


static gboolean
set_cloexec(int fd, gboolean on, GError **error)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0 ||
        fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC) < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to change close-on-exec of descriptor %d: %s", fd,
                    g_strerror(err));
        return FALSE;
    }
    return TRUE;
}

/**
 * check_listener:
 * libvirt's fd=N must be a listening unix stream socket; anything else is a
 * setup we do not understand and leave to QEMU.
 */
static gboolean
check_listener(int fd, GError **error)
{
    int listening = 0;
    int domain = 0;
    socklen_t len = sizeof(listening);
    socklen_t dlen = sizeof(domain);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Monitor descriptor %d is not a socket: %s", fd,
                    g_strerror(err));
        return FALSE;
    }
    if (!listening || domain != AF_UNIX) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Monitor descriptor %d is not a listening unix socket", fd);
        return FALSE;
    }
    return TRUE;
}

/**
 * listen_on_path:
 * Do what QEMU would have done for path=P,server=on: replace whatever is at
 * @path with a listening socket.  Returns the (close-on-exec) socket or -1.
 */
static int
listen_on_path(const char *path, GError **error)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "Monitor socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || (unlink(path) < 0 && errno != ENOENT) ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to listen on monitor socket '%s': %s", path,
                    g_strerror(err));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* Mark every descriptor from @lowest up close-on-exec: the helper must not
 * hold QEMU's tap devices or libvirt's pidfile lock, and our report pipe
 * must stay open until the exec succeeds. */
static void
cloexec_from(int lowest)
{
    DIR *dir;
    struct dirent *de;

#ifdef CLOSE_RANGE_CLOEXEC /* glibc 2.34, Linux 5.11 */
    if (close_range((unsigned)lowest, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }
#endif
    dir = opendir("/proc/self/fd");
    if (!dir) {
        for (int fd = lowest; fd < 65536; fd++) {
            set_cloexec(fd, TRUE, NULL);
        }
        return;
    }
    while ((de = readdir(dir))) {
        int fd = atoi(de->d_name);

        if (de->d_name[0] != '.' && fd >= lowest && fd != dirfd(dir)) {
            set_cloexec(fd, TRUE, NULL);
        }
    }
    closedir(dir);
}

/**
 * exec_helper:
 * In the detached grandchild: put the helper's descriptors in place and
 * exec it.  *@report is moved out of the way first.  Returns only on
 * failure, with errno set.
 */
static void
exec_helper(char **argv, int qemu_fd, int listen_fd, int devnull, int *report)
{
    const int above = QPH_WRAP_HELPER_LISTEN_FD + 1;
    int r = fcntl(*report, F_DUPFD_CLOEXEC, above);
    int q = fcntl(qemu_fd, F_DUPFD_CLOEXEC, above);
    int l = fcntl(listen_fd, F_DUPFD_CLOEXEC, above);

    if (r < 0 || q < 0 || l < 0) {
        return;
    }
    *report = r;
    if (dup2(devnull, STDIN_FILENO) < 0 ||
        dup2(q, QPH_WRAP_HELPER_QEMU_FD) < 0 ||
        dup2(l, QPH_WRAP_HELPER_LISTEN_FD) < 0 || chdir("/") < 0) {
        return;
    }
    cloexec_from(above);
    execv(argv[0], argv);
}

/**
 * spawn_helper:
 * Start the helper detached: fork, setsid, fork again, so it is nobody's
 * child (QEMU, which we are about to become, never sees it exit) and has
 * no controlling terminal.  A close-on-exec pipe reports an exec failure.
 */
static gboolean
spawn_helper(char **argv, int qemu_fd, int listen_fd, GError **error)
{
    int report[2];
    int devnull;
    int child_errno = 0;
    int status;
    pid_t middle;
    ssize_t n;

    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0 || pipe2(report, O_CLOEXEC) < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to prepare the helper's start: %s",
                    g_strerror(err));
        if (devnull >= 0) {
            close(devnull);
        }
        return FALSE;
    }
    middle = fork();
    if (middle == 0) {
        pid_t grandchild;

        close(report[0]);
        if (setsid() < 0) {
            child_errno = errno;
        } else {
            grandchild = fork();
            if (grandchild > 0) {
                _exit(0);
            }
            if (grandchild == 0) {
                exec_helper(argv, qemu_fd, listen_fd, devnull, &report[1]);
            }
            child_errno = errno;
        }
        n = write(report[1], &child_errno, sizeof(child_errno));
        (void)n;
        _exit(127);
    }
    child_errno = errno;
    close(report[1]);
    close(devnull);
    if (middle < 0) {
        close(report[0]);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(child_errno),
                    "Unable to fork the helper: %s", g_strerror(child_errno));
        return FALSE;
    }
    while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }
    do {
        n = read(report[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n != 0) {
        if (n != (ssize_t)sizeof(child_errno)) {
            child_errno = EIO;
        }
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(child_errno),
                    "Unable to start helper '%s': %s", argv[0],
                    g_strerror(child_errno));
        return FALSE;
    }
    return TRUE;
}

static char *
default_helper(const char *argv0)
{
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);

    if (self && !g_str_has_suffix(self, " (deleted)")) {
        return g_steal_pointer(&self);
    }
    /* Upgraded underneath us: the running binary is still reachable. */
    return g_strdup(self ? "/proc/self/exe" : argv0);
}

/**
 * open_listener:
 * Step 3 of the overview: the socket libvirt will connect to.  Returns it,
 * or -1 when the monitor is not something the helper can serve.
 */
static int
open_listener(const QphMonitor *mon, GError **error)
{
    if (mon->kind == QPH_MONITOR_FD) {
        return check_listener(mon->fd, error) ? mon->fd : -1;
    }
    return listen_on_path(mon->path, error);
}

/**
 * start_helper:
 * Steps 4-5 of the overview.  On success *qemu_fd is QEMU's end of the
 * socketpair, the only descriptor we opened that QEMU inherits.
 */
static gboolean
start_helper(const QphWrapOptions *opts, const char *argv0, int listen_fd,
             int *qemu_fd, GError **error)
{
    g_autofree char *helper =
        opts->helper ? g_strdup(opts->helper) : default_helper(argv0);
    g_auto(GStrv) helper_argv =
        qph_wrap_helper_argv(helper, getpid(), opts->enable, opts->helper_args);
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                    "Unable to create the monitor socketpair: %s",
                    g_strerror(err));
        return FALSE;
    }
    if (!set_cloexec(sv[0], FALSE, error) ||
        !spawn_helper(helper_argv, sv[1], listen_fd, error)) {
        close(sv[0]);
        close(sv[1]);
        return FALSE;
    }
    close(sv[1]);
    *qemu_fd = sv[0];
    return TRUE;
}

/**
 * wrap_monitor:
 * Steps 3-6 of the overview.  On failure nothing has changed: libvirt's
 * fd=N is still open for QEMU, and a path= socket is QEMU's to create.
 */
static gboolean
wrap_monitor(const QphWrapOptions *opts, const char *argv0,
             const QphMonitor *mon, int *qemu_fd, GError **error)
{
    int listen_fd = open_listener(mon, error);

    if (listen_fd < 0) {
        return FALSE;
    }
    if (!start_helper(opts, argv0, listen_fd, qemu_fd, error)) {
        if (mon->kind == QPH_MONITOR_PATH) {
            close(listen_fd);
        }
        return FALSE;
    }
    /* The helper holds its own copy; QEMU must not accept on it. */
    close(listen_fd);
    return TRUE;
}

static int
exec_qemu(char **argv)
{
    execv(argv[0], argv);
    g_printerr("qemu-perf-wrapper: Unable to execute QEMU '%s': %s\n", argv[0],
               g_strerror(errno));
    return 127;
}

int
qph_wrap_main(int argc, char **argv)
{
    g_auto(QphWrapOptions) opts = {0};
    g_auto(QphMonitor) mon = {0};
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) qemu_argv = NULL;
    int qemu_fd = -1;

    if (!qph_wrap_options_parse(argc, argv, &opts, &error)) {
        g_printerr("qemu-perf-wrapper: %s\n", error->message);
        return 1;
    }
    if (!opts.enabled || !qph_wrap_find_monitor(opts.qemu_argv, &mon, &error)) {
        if (error) {
            g_printerr("qemu-perf-wrapper: %s; starting QEMU without the "
                       "helper\n",
                       error->message);
        }
        mon.kind = QPH_MONITOR_NONE;
    }
    if (mon.kind != QPH_MONITOR_NONE) {
        if (access(opts.real_qemu, X_OK) < 0) {
            g_printerr("qemu-perf-wrapper: Unable to execute QEMU '%s': %s\n",
                       opts.real_qemu, g_strerror(errno));
            return 127;
        }
        if (!wrap_monitor(&opts, argv[0], &mon, &qemu_fd, &error)) {
            g_printerr("qemu-perf-wrapper: %s; starting QEMU without the "
                       "helper\n",
                       error->message);
            mon.kind = QPH_MONITOR_NONE;
        }
    }
    qemu_argv =
        qph_wrap_rewrite_argv(opts.real_qemu, opts.qemu_argv, &mon, qemu_fd);
    return exec_qemu(qemu_argv);
}
