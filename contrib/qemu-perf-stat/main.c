/*
 * main.c: qemu-perf-stat, perf stat for one VM over QMP
 *
 * A QMP client of qemu-perf-helper, for a person looking at one slow VM.
 * The run, in order:
 *
 *   1. block SIGINT, SIGTERM and SIGHUP and read them from a signalfd, so
 *      that from here on every way of stopping goes through step 6;
 *   2. connect to the helper's socket (-S, or libvirt's for --domain);
 *   3. query the events: those already enabled belong to someone else and
 *      are only read; every other one is enabled on its own, so that an
 *      event the host cannot count is shown <not supported> with the
 *      helper's reason instead of failing the whole set;
 *   4. take the first sample; then every -I MSEC (or once, at the end)
 *      take another and print the differences;
 *   5. stop at --duration, Ctrl-C, SIGTERM or SIGHUP, printing the last
 *      (partial) interval or the summary, as perf stat does;
 *   6. disable exactly the events step 3 enabled, and exit (re-raising the
 *      signal that stopped it, so a shell sees how it ended).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "qmp/qmp-client.h"
#include "qmp/qmp-error.h"
#include "events.h"
#include "libvirt-domain.h"
#include "print.h"
#include "sample.h"

#define PROG "qemu-perf-stat"
/* Bound on every wait for the helper; a query is answered in
 * milliseconds, so this only catches a helper that hangs. */
#define QMP_TIMEOUT_MS 10000
/* The helper greets at once; QEMU's monitor, busy with another client
 * (libvirt), never does.  Do not make a person wait long for that. */
#define GREETING_TIMEOUT_MS 3000
#define MIN_INTERVAL_MS 10

typedef struct {
    char *socket;
    char *domain;
    char **events;
    gint interval_ms;
    gboolean per_thread;
    char *sep;
    gboolean json;
    gdouble duration;
} StatOptions;

typedef struct {
    StatOptions opt;
    char *socket_path;
    QmpClient *qmp;
    GPtrArray *names;    /* StatEventName * */
    gboolean *supported; /* per name: counting (by us or by others) */
    GPtrArray *ours;     /* const char *: requests we enabled */
    int sigfd;
    int stop_signal; /* 0 while running */
} Stat;

static void warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
warn(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/*
 * perf's users write "-x," and "-I1000"; GOption takes a short option's
 * value only as the next argument.  Split "-xSEP" into "-x" "SEP" for the
 * options that take a value (a new vector; the strings are borrowed).
 */
static char **
split_attached(int argc, char **argv)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    gboolean done = FALSE;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--") == 0) {
            done = TRUE;
        }
        if (i > 0 && !done && a[0] == '-' && strchr("SeIx", a[1]) && a[1] &&
            a[2]) {
            g_ptr_array_add(out, g_strndup(a, 2));
            g_ptr_array_add(out, g_strdup(a + 2));
        } else {
            g_ptr_array_add(out, g_strdup(a));
        }
        /* the value of an option is never an option itself */
        if (i > 0 && !done && a[0] == '-' && a[1] && strchr("SeIx", a[1]) &&
            !a[2] && i + 1 < argc) {
            g_ptr_array_add(out, g_strdup(argv[++i]));
        }
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

static gboolean
parse_options(StatOptions *o, char ***argv, GError **error)
{
    const GOptionEntry entries[] = {
        {"socket", 'S', 0, G_OPTION_ARG_FILENAME, &o->socket,
         "The helper's QMP socket", "SOCKET"},
        {"domain", 0, 0, G_OPTION_ARG_STRING, &o->domain,
         "The libvirt domain (its monitor socket, with qemu-perf-wrapper)",
         "NAME"},
        {"event", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &o->events,
         "Events to count: libvirt's names, perf's spellings, libpfm4 "
         "strings; ','-separated, repeatable",
         "EVENT,..."},
        {"interval-print", 'I', 0, G_OPTION_ARG_INT, &o->interval_ms,
         "Print the counts every MSEC milliseconds", "MSEC"},
        {"per-thread", 0, 0, G_OPTION_ARG_NONE, &o->per_thread,
         "A row per vCPU, iothread, main loop and the other threads", NULL},
        {"field-separator", 'x', 0, G_OPTION_ARG_STRING, &o->sep,
         "CSV output with SEP between fields, in perf stat's field order",
         "SEP"},
        {"json", 'j', 0, G_OPTION_ARG_NONE, &o->json,
         "One JSON object per line, as perf stat -j", NULL},
        {"duration", 0, 0, G_OPTION_ARG_DOUBLE, &o->duration,
         "Stop after SECONDS (default: at Ctrl-C)", "SECONDS"},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- perf stat for one VM, over QMP");

    g_option_context_set_summary(
        ctx, "Counts, rates and derived metrics of a VM's threads, read "
             "through qemu-perf-helper.\nEvents it enables are disabled "
             "again when it exits; events enabled by others are only read.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse_strv(ctx, argv, error)) {
        return FALSE;
    }
    if ((*argv)[0] && (*argv)[1]) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "Unexpected argument '%s'; see --help.", (*argv)[1]);
        return FALSE;
    }
    if (!o->socket == !o->domain) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                            "Give the VM with either -S SOCKET or --domain "
                            "NAME.");
        return FALSE;
    }
    if (o->sep && o->json) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                            "-x and --json cannot be used together.");
        return FALSE;
    }
    if (o->sep && !o->sep[0]) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "-x needs a separator.");
        return FALSE;
    }
    if (o->interval_ms && o->interval_ms < MIN_INTERVAL_MS) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "The print interval must be at least %d ms.",
                    MIN_INTERVAL_MS);
        return FALSE;
    }
    if (o->duration < 0 || !isfinite(o->duration) || o->duration > 1e9) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "--duration must be a positive number of "
                            "seconds.");
        return FALSE;
    }
    return TRUE;
}

static gboolean
collect_names(Stat *s, GError **error)
{
    s->names =
        g_ptr_array_new_with_free_func((GDestroyNotify)stat_event_name_free);
    if (!s->opt.events) {
        for (guint i = 0; stat_default_events[i]; i++) {
            if (!stat_event_names_parse(stat_default_events[i], s->names,
                                        error)) {
                return FALSE;
            }
        }
        return TRUE;
    }
    for (guint i = 0; s->opt.events[i]; i++) {
        if (!stat_event_names_parse(s->opt.events[i], s->names, error)) {
            return FALSE;
        }
    }
    return TRUE;
}

/* Say what a failed connection means to someone on call. */
static void
explain_connect_error(const Stat *s, const GError *err)
{
    if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_ACCES) ||
        g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_PERM)) {
        warn("%s The helper's socket is mode 0600 by default: run as its "
             "owner, or start the helper with --socket-mode/--socket-group.",
             err->message);
    } else if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT) ||
               g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_FAILED)) {
        warn("%s Is the VM running, and is '%s' the helper's --listen "
             "socket?",
             err->message, s->socket_path);
    } else if (g_error_matches(err, QMP_CLIENT_ERROR,
                               QMP_CLIENT_ERROR_NO_GREETING)) {
        warn("%s A QEMU monitor serves one client at a time: this is most "
             "likely QEMU's own monitor with another client (libvirt) "
             "connected, and no qemu-perf-helper in front.",
             err->message);
    } else {
        warn("%s", err->message);
    }
}

static gboolean
signal_pending(Stat *s)
{
    struct pollfd pfd = {.fd = s->sigfd, .events = POLLIN};
    struct signalfd_siginfo si;

    if (s->stop_signal) {
        return TRUE;
    }
    if (poll(&pfd, 1, 0) == 1 &&
        read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        s->stop_signal = (int)si.ssi_signo;
    }
    return s->stop_signal != 0;
}

typedef enum {
    WAIT_DEADLINE,
    WAIT_SIGNAL,
    WAIT_HANGUP, /* the helper closed the connection: the VM is gone */
} WaitResult;

/* Wait until @deadline_us (monotonic), a signal, or the helper leaving. */
static WaitResult
wait_until(Stat *s, gint64 deadline_us)
{
    for (;;) {
        gint64 left = deadline_us - g_get_monotonic_time();
        struct pollfd pfd[2] = {
            {.fd = s->sigfd, .events = POLLIN},
            {.fd = qmp_client_get_fd(s->qmp), .events = POLLRDHUP},
        };
        int r;

        if (signal_pending(s)) {
            return WAIT_SIGNAL;
        }
        if (left <= 0) {
            return WAIT_DEADLINE;
        }
        r = poll(pfd, 2, (int)MIN(left / 1000 + 1, G_MAXINT));
        if (r < 0 && errno != EINTR) {
            return WAIT_DEADLINE;
        }
        if (r > 0 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            return WAIT_HANGUP;
        }
    }
}

/* Step 3: see what is enabled, enable the rest one by one. */
static gboolean
enable_events(Stat *s, GError **error)
{
    g_autoptr(StatSample) before =
        stat_sample_take(s->qmp, s->names, FALSE, error);

    if (!before) {
        return FALSE;
    }
    s->supported = g_new0(gboolean, s->names->len);
    for (guint i = 0; i < s->names->len; i++) {
        const StatEventName *e = g_ptr_array_index(s->names, i);
        g_autoptr(QmpJson) args = qmp_json_new(QMP_JSON_OBJECT);
        g_autoptr(QmpJson) list = qmp_json_new(QMP_JSON_ARRAY);
        g_autoptr(QmpJson) one = qmp_json_new(QMP_JSON_OBJECT);
        g_autoptr(QmpJson) ok = NULL;
        g_autoptr(GError) local = NULL;

        if (before->readings[i].enabled) {
            s->supported[i] = TRUE; /* someone else's: read, not touched */
            continue;
        }
        if (signal_pending(s)) {
            return TRUE;
        }
        qmp_json_object_set(one, "name", qmp_json_new_string(e->request));
        qmp_json_object_set(one, "enabled", qmp_json_new_bool(TRUE));
        qmp_json_array_append(list, g_steal_pointer(&one));
        qmp_json_object_set(args, "events", g_steal_pointer(&list));
        ok = qmp_client_execute(s->qmp, "set-perf-events",
                                g_steal_pointer(&args), &local);
        if (ok) {
            s->supported[i] = TRUE;
            g_ptr_array_add(s->ours, e->request);
        } else if (local->domain == QMP_ERROR) {
            warn("%s: <not supported>: %s", e->display, local->message);
        } else {
            g_propagate_error(error, g_steal_pointer(&local));
            return FALSE;
        }
    }
    return TRUE;
}

/* Step 6: disable what step 3 enabled, in one all-or-nothing request. */
static gboolean
disable_ours(Stat *s)
{
    g_autoptr(QmpJson) args = NULL;
    g_autoptr(QmpJson) list = NULL;
    g_autoptr(QmpJson) ok = NULL;
    g_autoptr(GError) err = NULL;

    if (!s->qmp || !s->ours || s->ours->len == 0) {
        return TRUE;
    }
    args = qmp_json_new(QMP_JSON_OBJECT);
    list = qmp_json_new(QMP_JSON_ARRAY);
    for (guint i = 0; i < s->ours->len; i++) {
        QmpJson *one = qmp_json_new(QMP_JSON_OBJECT);

        qmp_json_object_set(one, "name",
                            qmp_json_new_string(g_ptr_array_index(s->ours, i)));
        qmp_json_object_set(one, "enabled", qmp_json_new_bool(FALSE));
        qmp_json_array_append(list, one);
    }
    qmp_json_object_set(args, "events", g_steal_pointer(&list));
    ok = qmp_client_execute(s->qmp, "set-perf-events", g_steal_pointer(&args),
                            &err);
    if (!ok &&
        g_error_matches(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED)) {
        /* the helper is gone, and its counters with it */
        return TRUE;
    }
    if (!ok) {
        warn("Unable to disable the events it enabled: %s", err->message);
        return FALSE;
    }
    g_ptr_array_set_size(s->ours, 0);
    return TRUE;
}

/* "VM 'name'" from QEMU's query-name, else the socket. */
static char *
describe_target(Stat *s)
{
    g_autoptr(QmpJson) r = qmp_client_execute(s->qmp, "query-name", NULL, NULL);
    const char *name = qmp_json_get_string(qmp_json_object_get(r, "name"));

    if (s->opt.domain) {
        return g_strdup_printf("VM '%s'", s->opt.domain);
    }
    if (name) {
        return g_strdup_printf("VM '%s'", name);
    }
    return g_strdup_printf("the VM at '%s'", s->socket_path);
}

/* Print; 0, or the errno of a failed write. */
static int
print_between(Stat *s, StatPrinter *p, const StatSample *first,
              const StatSample *prev, const StatSample *cur)
{
    g_autoptr(StatReport) r = stat_report_new(first, prev, cur, s->names);

    errno = 0;
    stat_print_report(p, r, s->names, s->supported);
    return ferror(p->out) ? (errno ? errno : EIO) : 0;
}

/* Steps 4 and 5. */
static gboolean
count(Stat *s, GError **error)
{
    g_autofree char *target = describe_target(s);
    StatPrinter p = {
        .mode = s->opt.json  ? STAT_OUTPUT_JSON
                : s->opt.sep ? STAT_OUTPUT_CSV
                             : STAT_OUTPUT_STD,
        .sep = s->opt.sep,
        .interval = s->opt.interval_ms > 0,
        .per_thread = s->opt.per_thread,
        .out = stdout,
        .target = target,
    };
    g_autoptr(StatSample) first = NULL;
    g_autoptr(StatSample) prev = NULL;
    gint64 start_us, end_us, next_us;

    first = stat_sample_take(s->qmp, s->names, s->opt.per_thread, error);
    if (!first) {
        return FALSE;
    }
    start_us = first->t_ns / 1000;
    end_us = s->opt.duration > 0
                 ? start_us + (gint64)(s->opt.duration * G_USEC_PER_SEC)
                 : G_MAXINT64;
    next_us =
        p.interval ? start_us + (gint64)s->opt.interval_ms * 1000 : G_MAXINT64;
    for (;;) {
        WaitResult w = wait_until(s, MIN(next_us, end_us));
        gboolean last = w == WAIT_SIGNAL || g_get_monotonic_time() >= end_us;
        g_autoptr(StatSample) cur = NULL;
        int written;

        if (w == WAIT_HANGUP) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                        "'%s' closed the connection: the VM (or its helper) "
                        "has exited.",
                        s->socket_path);
            return FALSE;
        }
        if (!p.interval && !last) {
            continue;
        }
        cur = stat_sample_take(s->qmp, s->names, s->opt.per_thread, error);
        if (!cur) {
            return FALSE;
        }
        written = print_between(s, &p, first, prev ? prev : first, cur);
        if (written == EPIPE) {
            return TRUE; /* the reader went away ("| head"): stop */
        }
        if (written) {
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(written),
                        "Unable to write the counts: %s.", g_strerror(written));
            return FALSE;
        }
        if (last) {
            return TRUE;
        }
        g_clear_pointer(&prev, stat_sample_free);
        prev = g_steal_pointer(&cur);
        next_us += (gint64)s->opt.interval_ms * 1000;
    }
}

static int
block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        return -1;
    }
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Leave as the signal would have made us leave. */
static void
reraise(int sig)
{
    sigset_t set;

    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    fflush(stdout);
    raise(sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static int
run(Stat *s)
{
    g_autoptr(GError) err = NULL;

    s->qmp = qmp_client_connect(s->socket_path, GREETING_TIMEOUT_MS, &err);
    if (!s->qmp) {
        explain_connect_error(s, err);
        return 1;
    }
    qmp_client_set_timeout(s->qmp, QMP_TIMEOUT_MS);
    if (!enable_events(s, &err)) {
        if (g_error_matches(err, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND)) {
            warn("'%s' is QEMU's monitor with no qemu-perf-helper in front "
                 "(QEMU answered CommandNotFound: %s). Start the VM behind "
                 "qemu-perf-helper, or under libvirt with qemu-perf-wrapper "
                 "as its <emulator>; see qemu-perf-helper(8).",
                 s->socket_path, err->message);
        } else {
            warn("%s", err->message);
        }
        disable_ours(s);
        return 1;
    }
    if (signal_pending(s)) {
        return disable_ours(s) ? 0 : 1;
    }
    if (!count(s, &err)) {
        warn("%s", err->message);
        disable_ours(s);
        return 1;
    }
    return disable_ours(s) ? 0 : 1;
}

static int
start(Stat *s, char ***args)
{
    g_autoptr(GError) err = NULL;

    if (!parse_options(&s->opt, args, &err) || !collect_names(s, &err)) {
        warn("%s", err->message);
        return 2;
    }
    if (s->opt.domain) {
        s->socket_path = stat_libvirt_monitor_socket(s->opt.domain, &err);
        if (!s->socket_path) {
            warn("%s", err->message);
            return 1;
        }
    } else {
        s->socket_path = g_strdup(s->opt.socket);
    }
    /* a closed stdout must not kill us before step 6 */
    signal(SIGPIPE, SIG_IGN);
    s->sigfd = block_signals();
    if (s->sigfd < 0) {
        warn("Unable to set up signal handling: %s", g_strerror(errno));
        return 1;
    }
    s->ours = g_ptr_array_new();
    return run(s);
}

static void
stat_clear(Stat *s)
{
    qmp_client_free(s->qmp);
    if (s->ours) {
        g_ptr_array_unref(s->ours);
    }
    if (s->names) {
        g_ptr_array_unref(s->names);
    }
    g_free(s->supported);
    g_free(s->socket_path);
    g_strfreev(s->opt.events);
    g_free(s->opt.socket);
    g_free(s->opt.domain);
    g_free(s->opt.sep);
    if (s->sigfd >= 0) {
        close(s->sigfd);
    }
}

int
main(int argc, char **argv)
{
    Stat s = {.sigfd = -1};
    g_auto(GStrv) args = split_attached(argc, argv);
    int status;

    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C"); /* CSV and JSON need '.' decimals */
    status = start(&s, &args);
    stat_clear(&s);
    if (s.stop_signal && status == 0) {
        g_clear_pointer(&args, g_strfreev);
        reraise(s.stop_signal);
    }
    return status;
}
