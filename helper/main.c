/*
 * main.c: options, the three ways to meet QEMU, signals, the main loop
 *
 * attach:  --qemu PATH --listen SOCKET      QEMU already runs with a QMP
 *                                           socket; connect to it.
 * launch:  --listen SOCKET -- QEMU ARGS...  start QEMU with a private
 *                                           monitor (a socketpair) and exit
 *                                           with its status.
 * fd:      --qemu-fd N --listen-fd M        descriptors handed over by the
 *                                           libvirt wrapper (wrap.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/perf-set.h"
#include "helper/privilege.h"
#include "helper/proxy.h"
#include "helper/startup-events.h"
#include "helper/seccomp.h"
#include "helper/wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    GMainLoop *loop;
    QphProxy *proxy;
    int exit_status;
    pid_t child;       /* launch mode: QEMU */
    gboolean child_exited;
    gboolean upstream_done;
} Main;

static char *opt_qemu;
static int opt_qemu_fd = -1;
static int opt_qemu_pid;
static char *opt_listen;
static int opt_listen_fd = -1;
static char *opt_socket_mode;
static char *opt_socket_group;
static char **opt_allow_uid;
static char *opt_resctrl_root;
static char **opt_allow_event;
static char *opt_event_allowlist;
static char **opt_enable;
static char *opt_state_dir;
static gboolean opt_verbose;
static gboolean opt_no_seccomp;
static gboolean opt_seccomp_selftest;
static gboolean opt_version;
static char **opt_command;

static const GOptionEntry option_entries[] = {
    { "qemu", 0, 0, G_OPTION_ARG_FILENAME, &opt_qemu,
      "Attach to the QMP socket of a running QEMU", "PATH" },
    { "qemu-fd", 0, 0, G_OPTION_ARG_INT, &opt_qemu_fd,
      "Use the connected QMP socket N (from the libvirt wrapper)", "N" },
    { "qemu-pid", 0, 0, G_OPTION_ARG_INT, &opt_qemu_pid,
      "QEMU's process id (default: the peer of the QMP socket)", "PID" },
    { "listen", 0, 0, G_OPTION_ARG_FILENAME, &opt_listen,
      "Serve QMP clients on this unix socket (created when ready, removed "
      "on exit)", "SOCKET" },
    { "listen-fd", 0, 0, G_OPTION_ARG_INT, &opt_listen_fd,
      "Serve QMP clients on the listening socket N", "N" },
    { "socket-mode", 0, 0, G_OPTION_ARG_STRING, &opt_socket_mode,
      "Octal mode of the created socket (default 0600)", "MODE" },
    { "socket-group", 0, 0, G_OPTION_ARG_STRING, &opt_socket_group,
      "Group owning the created socket (use with --socket-mode 0660)",
      "GROUP" },
    { "allow-uid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_allow_uid,
      "Accept only clients of this uid (repeatable; the helper's own uid is "
      "always accepted)", "UID" },
    { "allow-event", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_allow_event,
      "Allow this raw (non-catalog) perf event; once given, raw events not "
      "listed are refused (repeatable)", "NAME" },
    { "event-allowlist", 0, 0, G_OPTION_ARG_FILENAME, &opt_event_allowlist,
      "Allow only the raw perf events listed in FILE, one per line", "FILE" },
    { "enable", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_enable,
      "Enable these events as soon as QEMU's threads are known, as "
      "set-perf-events would (comma-separated, repeatable)", "EVENT,..." },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state_dir,
      "Attach mode: keep the enabled events in DIR so that a restarted "
      "helper enables them again (default $RUNTIME_DIRECTORY)", "DIR" },
    { "resctrl-root", 0, 0, G_OPTION_ARG_FILENAME, &opt_resctrl_root,
      "Where resctrl is mounted (default /sys/fs/resctrl)", "DIR" },
    { "no-seccomp", 0, 0, G_OPTION_ARG_NONE, &opt_no_seccomp,
      "Run without the system-call filter (for debugging)", NULL },
    { "seccomp-selftest", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
      &opt_seccomp_selftest, "Make one refused call (for the tests)", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
      "Log debug messages", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
      "Print the version and exit", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_command,
      NULL, "[-- QEMU-BINARY ARGS...]" },
    { NULL },
};

static void
main_maybe_quit(Main *m)
{
    /* In launch mode, QEMU's exit status is the helper's: wait for both. */
    if (m->upstream_done && (!m->child || m->child_exited)) {
        g_main_loop_quit(m->loop);
    }
}

static void
main_proxy_done(QphProxy *proxy, const GError *error, gpointer opaque)
{
    Main *m = opaque;

    if (error) {
        g_printerr("qemu-perf-helper: %s\n", error->message);
        m->exit_status = 1;
        if (m->child && !m->child_exited) {
            kill(m->child, SIGTERM);
        }
    }
    m->upstream_done = TRUE;
    main_maybe_quit(m);
}

static void
main_child_exited(Main *m, int status)
{
    if (WIFEXITED(status)) {
        m->exit_status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        m->exit_status = 128 + WTERMSIG(status);
    }
    m->child_exited = TRUE;
    /* QEMU is gone, so is its end of the monitor. */
    m->upstream_done = TRUE;
    main_maybe_quit(m);
}

static void
main_stop_signal(Main *m)
{
    if (m->child && !m->child_exited) {
        /* Launch mode: QEMU is ours to stop; exit once it has. */
        kill(m->child, SIGTERM);
        return;
    }
    g_debug("Stopping on signal");
    g_main_loop_quit(m->loop);
}

/* The signalfd is readable: stop on SIGTERM, SIGINT or SIGHUP; reap QEMU
 * on SIGCHLD (launch mode). */
static gboolean
main_signal_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Main *m = opaque;
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo != SIGCHLD) {
            main_stop_signal(m);
        } else if (m->child && !m->child_exited) {
            int status;

            if (waitpid(m->child, &status, WNOHANG) == m->child) {
                main_child_exited(m, status);
            }
        }
    }
    return G_SOURCE_CONTINUE;
}

/*
 * Signals arrive on a signalfd that the main loop watches.  GLib's
 * g_unix_signal_add() and g_child_watch_add() would start its worker
 * thread only to forward them, and a thread costs a stack and a malloc
 * arena of private memory for the helper's whole life.  The signals are
 * blocked before QEMU is forked, so that its exit cannot be missed; QEMU
 * itself starts with none blocked (launch_qemu()).
 */
static void
main_watch_signals(Main *m, gboolean child)
{
    sigset_t set;
    int fd;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (child) {
        sigaddset(&set, SIGCHLD);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        /* Not on any kernel this runs on (2.6.27+); without it the
         * signals' default action stops the helper. */
        g_warning("Unable to watch signals (signalfd): %s", g_strerror(errno));
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        return;
    }
    g_unix_fd_add(fd, G_IO_IN, main_signal_ready, m);
}

static int
connect_unix(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "Unable to connect to '%s': the path is too long", path);
        return -1;
    }
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to connect to QEMU's QMP socket '%s': %s", path,
                    g_strerror(saved));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* Start QEMU with an extra, private QMP monitor on one end of a
 * socketpair; return the other end. */
static int
launch_qemu(char **argv, pid_t *pid, GError **error)
{
    int sv[2];
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    pid_t child;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "Unable to create the monitor socket pair: %s",
                    g_strerror(errno));
        return -1;
    }
    for (guint i = 0; argv[i]; i++) {
        g_ptr_array_add(args, g_strdup(argv[i]));
    }
    g_ptr_array_add(args, g_strdup("-chardev"));
    g_ptr_array_add(args, g_strdup_printf("socket,id=qemu-perf-helper,fd=%d",
                                          sv[1]));
    g_ptr_array_add(args, g_strdup("-mon"));
    g_ptr_array_add(args, g_strdup("chardev=qemu-perf-helper,mode=control"));
    g_ptr_array_add(args, NULL);

    child = fork();
    if (child < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "Unable to start QEMU: %s", g_strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (child == 0) {
        sigset_t none;

        /* Only QEMU's end crosses exec; everything of ours is CLOEXEC. The
         * signals the helper takes through its signalfd are not QEMU's. */
        fcntl(sv[1], F_SETFD, 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], (char **)args->pdata);
        fprintf(stderr, "qemu-perf-helper: unable to run '%s': %s\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    *pid = child;
    return sv[0];
}

static gboolean
parse_socket_options(QphProxyOptions *opts, GArray *uids, GError **error)
{
    opts->socket_mode = 0600;
    opts->socket_gid = (gid_t)-1;
    if (opt_socket_mode) {
        char *end;
        guint64 mode = g_ascii_strtoull(opt_socket_mode, &end, 8);

        if (*end || mode > 0777) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--socket-mode takes an octal mode such as 0660, not "
                        "'%s'", opt_socket_mode);
            return FALSE;
        }
        opts->socket_mode = mode;
    }
    if (opt_socket_group) {
        struct group *gr = getgrnam(opt_socket_group);

        if (!gr) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--socket-group: no group named '%s'",
                        opt_socket_group);
            return FALSE;
        }
        opts->socket_gid = gr->gr_gid;
    }
    for (guint i = 0; opt_allow_uid && opt_allow_uid[i]; i++) {
        guint64 uid;

        if (!g_ascii_string_to_unsigned(opt_allow_uid[i], 10, 0, G_MAXUINT32 - 1,
                                        &uid, NULL)) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--allow-uid takes a numeric uid, not '%s'",
                        opt_allow_uid[i]);
            return FALSE;
        }
        g_array_append_val(uids, (uid_t){ (uid_t)uid });
    }
    opts->allowed_uids = (const uid_t *)uids->data;
    opts->n_allowed_uids = uids->len;
    return TRUE;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uid_t));
    g_autoptr(QphStartupEvents) startup = NULL;
    QphProxyOptions opts = { 0 };
    Main m = { 0 };
    int qemu_fd = -1;
    guint modes;

    if (argc > 1 && g_str_equal(argv[1], "--wrap")) {
        return qph_wrap_main(argc, argv);
    }

    ctx = g_option_context_new(NULL);
    g_option_context_set_summary(
        ctx,
        "Serve QEMU's QMP monitor to any number of clients and answer\n"
        "query-perf-events and set-perf-events with perf and resctrl "
        "counters.\n\n"
        "  attach:  qemu-perf-helper --qemu QEMU-QMP-SOCKET --listen SOCKET\n"
        "  launch:  qemu-perf-helper --listen SOCKET -- QEMU-BINARY ARGS...\n"
        "  libvirt: qemu-perf-helper --wrap [WRAP-OPTIONS] -- QEMU ARGS... "
        "(see qemu-perf-helper(8))");
    g_option_context_add_main_entries(ctx, option_entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("qemu-perf-helper: %s\n", error->message);
        return 2;
    }
    if (opt_version) {
        printf("qemu-perf-helper %s\n", QPH_VERSION);
        return 0;
    }
    if (opt_verbose) {
        g_log_set_debug_enabled(TRUE);
    }
    modes = !!opt_qemu + (opt_qemu_fd >= 0) + !!opt_command;
    if (modes != 1) {
        g_printerr("qemu-perf-helper: give exactly one of --qemu PATH, "
                   "--qemu-fd N, or -- QEMU-BINARY ARGS...\n");
        return 2;
    }
    if (!opt_listen == (opt_listen_fd < 0)) {
        g_printerr("qemu-perf-helper: give exactly one of --listen SOCKET or "
                   "--listen-fd N\n");
        return 2;
    }
    if (!parse_socket_options(&opts, uids, &error)) {
        g_printerr("qemu-perf-helper: %s\n", error->message);
        return 2;
    }
    /* Nothing inherited stays open but the descriptors we were given. */
    qph_privilege_close_inherited((const int[]){ opt_qemu_fd, opt_listen_fd },
                                  2);
    for (guint i = 0; opt_allow_event && opt_allow_event[i]; i++) {
        qph_event_allowlist_add(opt_allow_event[i]);
    }
    if (opt_event_allowlist &&
        !qph_event_allowlist_load(opt_event_allowlist, &error)) {
        g_printerr("qemu-perf-helper: %s\n", error->message);
        return 2;
    }
    opts.listen_path = opt_listen;
    opts.listen_fd = opt_listen_fd;
    opts.resctrl_root = opt_resctrl_root ? opt_resctrl_root : "/sys/fs/resctrl";
    opts.startup = startup = qph_startup_events_new(
        (const char *const *)opt_enable, opt_qemu != NULL, opt_state_dir);

    signal(SIGPIPE, SIG_IGN);
    m.loop = g_main_loop_new(NULL, FALSE);
    main_watch_signals(&m, opt_command != NULL);

    if (opt_qemu) {
        qemu_fd = connect_unix(opt_qemu, &error);
    } else if (opt_qemu_fd >= 0) {
        qemu_fd = opt_qemu_fd;
    } else {
        qemu_fd = launch_qemu(opt_command, &m.child, &error);
        if (qemu_fd >= 0) {
            opt_qemu_pid = m.child;
        }
    }
    if (qemu_fd < 0) {
        g_printerr("qemu-perf-helper: %s\n", error->message);
        return 1;
    }

    /* Counters take one descriptor per (event, thread): as perf does. */
    qph_perf_set_raise_fd_limit();
    {
        /* QEMU is started (it inherits none of this) or attached. */
        QphPrivilegeContext priv = {
            .qemu_fd = qemu_fd,
            .qemu_pid = opt_qemu_pid,
            .listen_path = opt_listen,
            .socket_group_set = opt_socket_group != NULL,
            .socket_gid = opts.socket_gid,
        };
        g_autofree char *caps = NULL;

        if (!qph_privilege_drop(&priv, &error)) {
            g_printerr("qemu-perf-helper: %s\n", error->message);
            return 1;
        }
        caps = qph_privilege_describe();
        g_debug("Capabilities kept: %s", caps);
    }
    m.proxy = qph_proxy_new(&opts, qemu_fd, opt_qemu_pid, main_proxy_done, &m);
    if (!opt_no_seccomp && !qph_seccomp_install(&error)) {
        g_message("%s Going on without it.", error->message);
        g_clear_error(&error);
    }
    if (opt_seccomp_selftest) {
        qph_seccomp_selftest();
    }
    g_main_loop_run(m.loop);
    g_clear_pointer(&m.proxy, qph_proxy_free);
    g_main_loop_unref(m.loop);
    return m.exit_status;
}
