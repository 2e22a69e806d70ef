/*
 * qph-bench.c: the measuring end of the benchmark (tests/bench/run.sh)
 *
 * A small C client so that what is timed is the QMP round trip and not an
 * interpreter.  It talks to several targets in one process and interleaves
 * them: every round visits each target once, in an order rotated from round
 * to round, so the noise of a busy machine lands on all of them alike.
 * bench.py (the driver) starts QEMU, the helper and socat, runs this
 * program and turns its samples into medians, p99s and ratios.
 *
 *   qph-bench latency  ROUNDS WARMUP CMD TARGET...
 *       one command, one reply, ROUNDS times per target.
 *   qph-bench pipeline ROUNDS DEPTH CMD TARGET...
 *       DEPTH copies of CMD in one write, then the DEPTH replies; prints
 *       the nanoseconds for the whole batch.
 *   qph-bench toggle   ROUNDS CMD-ON CMD-OFF TARGET...
 *       CMD-ON then CMD-OFF each round; prints "NAME:on" and "NAME:off".
 *
 * A TARGET is NAME=unix:PATH (a QMP socket: the greeting is read and
 * qmp_capabilities sent on connect; NAME=unix-oob:PATH also enables
 * out-of-band execution, as the helper does upstream; NAME=unix:PATH|CMD sends CMD there
 * instead of the common one, in latency mode; NAME=unix-err:PATH|CMD accepts
 * an error reply, to time an answer the helper gives without QEMU or any
 * counter), NAME=floor:PID (the read floor: the six
 * software events opened here on every thread of PID, each fd read with
 * TOTAL_TIME_ENABLED|RUNNING and scaled, no JSON) or NAME=floor-scan:PID
 * (the same plus listing /proc/PID/task, as the helper does on each query)
 * or NAME=floor-group:PID (the cheapest read of the same counters: the six
 * events in one PERF_FORMAT_GROUP group per thread, opened with inherit as
 * the helper opens them, one read() per thread).  Floors ignore CMD.
 *
 * Output: one line per target, "NAME ns ns ns ...", in visiting order of
 * rounds.  Diagnostics go to stderr; any failure exits 1.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum target_kind { TARGET_QMP, TARGET_FLOOR, TARGET_FLOOR_SCAN, TARGET_FLOOR_GROUP };

typedef struct {
    char *buf;
    size_t len, cap;
} Buffer;

typedef struct {
    char *name;
    enum target_kind kind;
    /* QMP */
    int fd;
    Buffer in;
    size_t consumed; /* bytes of in handed out by the last read_line */
    char *cmd;       /* this target's own command (unix:PATH|CMD), or NULL */
    int allow_error; /* unix-err: an error reply is the expected answer */
    /* floor */
    pid_t pid;
    int *fds;
    size_t n_fds;
    size_t n_groups; /* floor-group: fds[] holds one leader per thread */
    /* samples, in ns */
    uint64_t *samples;
    uint64_t *samples2; /* toggle: the "off" half */
    size_t n_samples;
} Target;

/* The six events of the issue, as the helper's catalog encodes them. */
static const uint64_t floor_events[] = {
    PERF_COUNT_SW_TASK_CLOCK,       PERF_COUNT_SW_CPU_CLOCK,
    PERF_COUNT_SW_CONTEXT_SWITCHES, PERF_COUNT_SW_CPU_MIGRATIONS,
    PERF_COUNT_SW_PAGE_FAULTS,      PERF_COUNT_SW_PAGE_FAULTS_MIN,
};
#define N_FLOOR_EVENTS (sizeof(floor_events) / sizeof(floor_events[0]))

static volatile uint64_t sink;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** die: print a message and exit 1. */
static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("qph-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/** now_ns: CLOCK_MONOTONIC in nanoseconds. */
static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** write_all: write @len bytes of @data to @fd or die. */
static void
write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("write: %s", strerror(errno));
        }
        data += n;
        len -= (size_t)n;
    }
}

/**
 * read_line: the next CRLF-terminated line from @t; returns its length
 * (without the terminator) and points @line at it.  The line stays valid
 * until the next call.
 */
static size_t
read_line(Target *t, const char **line)
{
    size_t scan = 0;

    if (t->consumed > 0) {
        memmove(t->in.buf, t->in.buf + t->consumed, t->in.len - t->consumed);
        t->in.len -= t->consumed;
        t->consumed = 0;
    }
    for (;;) {
        char *nl = t->in.len > scan ? memchr(t->in.buf + scan, '\n', t->in.len - scan)
                                    : NULL;
        ssize_t n;

        if (nl) {
            size_t end = (size_t)(nl - t->in.buf);

            t->consumed = end + 1;
            *line = t->in.buf;
            return end > 0 && t->in.buf[end - 1] == '\r' ? end - 1 : end;
        }
        scan = t->in.len;
        if (t->in.cap - t->in.len < 65536) {
            t->in.cap = t->in.cap * 2 + 65536;
            t->in.buf = realloc(t->in.buf, t->in.cap);
            if (!t->in.buf) {
                die("out of memory");
            }
        }
        n = read(t->fd, t->in.buf + t->in.len, t->in.cap - t->in.len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("%s: connection closed (%s)", t->name, n < 0 ? strerror(errno) : "EOF");
        }
        t->in.len += (size_t)n;
    }
}

/**
 * read_reply: read lines until one that is not an event; die on an error
 * reply when @must_succeed.
 */
static void
read_reply(Target *t, int must_succeed)
{
    for (;;) {
        const char *line;
        size_t len = read_line(t, &line);

        if (len >= 12 && memcmp(line, "{\"timestamp\"", 12) == 0) {
            continue; /* an event */
        }
        if (must_succeed && len >= 8 && memcmp(line, "{\"error\"", 8) == 0) {
            die("%s: %.*s", t->name, (int)(len > 400 ? 400 : len), line);
        }
        return;
    }
}

/**
 * qmp_connect: connect @t to @path, read the greeting and negotiate
 * (asking for out-of-band execution when @oob, as the helper does upstream).
 */
static void
qmp_connect(Target *t, const char *path, int oob)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *caps = oob ? "{\"execute\":\"qmp_capabilities\","
                             "\"arguments\":{\"enable\":[\"oob\"]}}\n"
                           : "{\"execute\":\"qmp_capabilities\"}\n";
    const char *line;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        die("socket path too long: %s", path);
    }
    strcpy(sa.sun_path, path);
    t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->fd < 0 || connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("%s: connect %s: %s", t->name, path, strerror(errno));
    }
    read_line(t, &line); /* greeting */
    write_all(t->fd, caps, strlen(caps));
    read_reply(t, 1);
}

/** list_tids: the thread ids of @pid; returns how many, *@tids malloc'd. */
static size_t
list_tids(pid_t pid, pid_t **tids)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    size_t n = 0, cap = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (!d) {
        die("opendir %s: %s", path, strerror(errno));
    }
    *tids = NULL;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        if (n == cap) {
            cap = cap * 2 + 128;
            *tids = realloc(*tids, cap * sizeof(**tids));
            if (!*tids) {
                die("out of memory");
            }
        }
        (*tids)[n++] = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    return n;
}

/** floor_open: open the six events on every thread of t->pid. */
static void
floor_open(Target *t)
{
    pid_t *tids;
    size_t n = list_tids(t->pid, &tids);

    t->fds = calloc(n * N_FLOOR_EVENTS, sizeof(int));
    if (!t->fds) {
        die("out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t e = 0; e < N_FLOOR_EVENTS; e++) {
            struct perf_event_attr attr = {
                .type = PERF_TYPE_SOFTWARE,
                .size = sizeof(attr),
                .config = floor_events[e],
                .read_format = PERF_FORMAT_TOTAL_TIME_ENABLED |
                               PERF_FORMAT_TOTAL_TIME_RUNNING,
            };
            long fd = syscall(SYS_perf_event_open, &attr, tids[i], -1, -1,
                              PERF_FLAG_FD_CLOEXEC);

            if (fd < 0) {
                /* A thread that exited meanwhile: skip it. */
                if (errno == ESRCH) {
                    continue;
                }
                die("perf_event_open(tid %d): %s", (int)tids[i], strerror(errno));
            }
            t->fds[t->n_fds++] = (int)fd;
        }
    }
    fprintf(stderr, "qph-bench: %s: %zu threads x %zu events = %zu fds\n",
            t->name, n, N_FLOOR_EVENTS, t->n_fds);
    free(tids);
}

/**
 * floor_group_open: the six events on every thread of t->pid as one group
 * per thread (task_clock leads), read_format GROUP|TOTAL_TIME_*, inherit.
 */
static void
floor_group_open(Target *t)
{
    pid_t *tids;
    size_t n = list_tids(t->pid, &tids);
    size_t opened = 0;

    t->fds = calloc(n, sizeof(int));
    if (!t->fds) {
        die("out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        long leader = -1;

        for (size_t e = 0; e < N_FLOOR_EVENTS; e++) {
            struct perf_event_attr attr = {
                .type = PERF_TYPE_SOFTWARE,
                .size = sizeof(attr),
                .config = floor_events[e],
                .inherit = 1,
                .read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                               PERF_FORMAT_TOTAL_TIME_RUNNING,
            };
            long fd = syscall(SYS_perf_event_open, &attr, tids[i], -1, (int)leader,
                              PERF_FLAG_FD_CLOEXEC);

            if (fd < 0 && errno == ESRCH) {
                break; /* the thread exited meanwhile */
            }
            if (fd < 0) {
                die("perf_event_open(tid %d, group): %s", (int)tids[i], strerror(errno));
            }
            opened++;
            if (leader < 0) {
                leader = fd;
                t->fds[t->n_groups++] = (int)fd;
            }
        }
    }
    fprintf(stderr, "qph-bench: %s: %zu threads x %zu events = %zu fds in %zu groups\n",
            t->name, n, N_FLOOR_EVENTS, opened, t->n_groups);
    free(tids);
}

/** floor_group_read: one read() per group, each value scaled. */
static void
floor_group_read(Target *t)
{
    uint64_t total[N_FLOOR_EVENTS] = { 0 };

    for (size_t i = 0; i < t->n_groups; i++) {
        uint64_t v[3 + N_FLOOR_EVENTS]; /* nr, enabled, running, values */
        ssize_t n = read(t->fds[i], v, sizeof(v));

        if (n != (ssize_t)sizeof(v)) {
            die("%s: read perf group: %s", t->name, n < 0 ? strerror(errno) : "short read");
        }
        for (size_t e = 0; e < N_FLOOR_EVENTS; e++) {
            uint64_t x = v[3 + e];

            if (v[2] && v[2] < v[1]) {
                x = (uint64_t)((unsigned __int128)x * v[1] / v[2]);
            }
            total[e] += x;
        }
    }
    for (size_t e = 0; e < N_FLOOR_EVENTS; e++) {
        sink += total[e];
    }
}

/** floor_read: read every fd of @t once, scaling as the helper does. */
static void
floor_read(Target *t)
{
    uint64_t total[N_FLOOR_EVENTS] = { 0 };

    if (t->kind == TARGET_FLOOR_GROUP) {
        floor_group_read(t);
        return;
    }
    if (t->kind == TARGET_FLOOR_SCAN) {
        pid_t *tids;
        size_t n = list_tids(t->pid, &tids);

        sink += n;
        free(tids);
    }
    for (size_t i = 0; i < t->n_fds; i++) {
        uint64_t v[3];

        if (read(t->fds[i], v, sizeof(v)) != (ssize_t)sizeof(v)) {
            die("%s: read perf fd: %s", t->name, strerror(errno));
        }
        if (v[2] && v[2] < v[1]) {
            v[0] = (uint64_t)((unsigned __int128)v[0] * v[1] / v[2]);
        }
        total[i % N_FLOOR_EVENTS] += v[0];
    }
    for (size_t e = 0; e < N_FLOOR_EVENTS; e++) {
        sink += total[e];
    }
}

static char *with_newline(const char *cmd);

/**
 * parse_target: NAME=unix[-oob|-err]:PATH[|CMD] | NAME=floor:PID |
 * NAME=floor-scan:PID | NAME=floor-group:PID.
 */
static void
parse_target(Target *t, const char *spec)
{
    const char *eq = strchr(spec, '=');

    if (!eq) {
        die("bad target %s (want NAME=unix:PATH or NAME=floor:PID)", spec);
    }
    t->name = strndup(spec, (size_t)(eq - spec));
    if (strncmp(eq + 1, "unix:", 5) == 0 || strncmp(eq + 1, "unix-oob:", 9) == 0 ||
        strncmp(eq + 1, "unix-err:", 9) == 0) {
        int oob = strncmp(eq + 1, "unix-oob:", 9) == 0;
        const char *p = eq + (eq[5] == '-' ? 10 : 6);
        const char *bar = strchr(p, '|');
        char *path = bar ? strndup(p, (size_t)(bar - p)) : strdup(p);

        t->kind = TARGET_QMP;
        qmp_connect(t, path, oob);
        free(path);
        if (bar) {
            t->cmd = with_newline(bar + 1);
        }
        t->allow_error = strncmp(eq + 1, "unix-err:", 9) == 0;
    } else if (strncmp(eq + 1, "floor:", 6) == 0) {
        t->kind = TARGET_FLOOR;
        t->pid = (pid_t)atoi(eq + 7);
        floor_open(t);
    } else if (strncmp(eq + 1, "floor-group:", 12) == 0) {
        t->kind = TARGET_FLOOR_GROUP;
        t->pid = (pid_t)atoi(eq + 13);
        floor_group_open(t);
    } else if (strncmp(eq + 1, "floor-scan:", 11) == 0) {
        t->kind = TARGET_FLOOR_SCAN;
        t->pid = (pid_t)atoi(eq + 12);
        floor_open(t);
    } else {
        die("bad target %s", spec);
    }
}

/** round_trip: one command to @t and its reply; returns ns taken. */
static uint64_t
round_trip(Target *t, const char *cmd, size_t cmd_len)
{
    uint64_t t0 = now_ns();

    if (t->kind == TARGET_QMP && t->cmd) {
        write_all(t->fd, t->cmd, strlen(t->cmd));
        read_reply(t, !t->allow_error);
    } else if (t->kind == TARGET_QMP) {
        write_all(t->fd, cmd, cmd_len);
        read_reply(t, 1);
    } else {
        floor_read(t);
    }
    return now_ns() - t0;
}

/** pipelined: @depth copies of @cmd in one write, then all replies. */
static uint64_t
pipelined(Target *t, const char *batch, size_t batch_len, unsigned depth)
{
    uint64_t t0 = now_ns();

    if (t->kind != TARGET_QMP) {
        die("pipeline: %s is not a QMP target", t->name);
    }
    write_all(t->fd, batch, batch_len);
    for (unsigned i = 0; i < depth; i++) {
        read_reply(t, 1);
    }
    return now_ns() - t0;
}

/** with_newline: @cmd followed by "\n" (QMP needs no separator; harmless). */
static char *
with_newline(const char *cmd)
{
    size_t n = strlen(cmd);
    char *s = malloc(n + 2);

    if (!s) {
        die("out of memory");
    }
    memcpy(s, cmd, n);
    s[n] = '\n';
    s[n + 1] = 0;
    return s;
}

static void
print_samples(const char *name, const char *suffix, const uint64_t *s, size_t n)
{
    printf("%s%s", name, suffix);
    for (size_t i = 0; i < n; i++) {
        printf(" %llu", (unsigned long long)s[i]);
    }
    printf("\n");
}

int
main(int argc, char **argv)
{
    const char *mode;
    unsigned rounds, param;
    char *cmd, *cmd2 = NULL, *batch = NULL;
    size_t cmd_len, cmd2_len = 0, batch_len = 0;
    int first_target;
    size_t n_targets;
    Target *targets;

    if (argc < 5) {
        fprintf(stderr,
                "usage: qph-bench latency ROUNDS WARMUP CMD TARGET...\n"
                "       qph-bench pipeline ROUNDS DEPTH CMD TARGET...\n"
                "       qph-bench toggle ROUNDS CMD-ON CMD-OFF TARGET...\n");
        return 2;
    }
    mode = argv[1];
    rounds = (unsigned)atoi(argv[2]);
    if (strcmp(mode, "toggle") == 0) {
        param = 0;
        cmd = with_newline(argv[3]);
        cmd2 = with_newline(argv[4]);
        cmd2_len = strlen(cmd2);
    } else if (strcmp(mode, "latency") == 0 || strcmp(mode, "pipeline") == 0) {
        param = (unsigned)atoi(argv[3]);
        cmd = with_newline(argv[4]);
    } else {
        die("unknown mode %s", mode);
    }
    cmd_len = strlen(cmd);
    first_target = 5;
    n_targets = (size_t)(argc - first_target);
    if (n_targets == 0) {
        die("no target");
    }
    targets = calloc(n_targets, sizeof(*targets));
    if (!targets) {
        die("out of memory");
    }
    for (size_t i = 0; i < n_targets; i++) {
        parse_target(&targets[i], argv[first_target + i]);
        targets[i].samples = calloc(rounds, sizeof(uint64_t));
        targets[i].samples2 = calloc(rounds, sizeof(uint64_t));
        if (!targets[i].samples || !targets[i].samples2) {
            die("out of memory");
        }
    }
    if (strcmp(mode, "pipeline") == 0) {
        batch_len = cmd_len * param;
        batch = malloc(batch_len);
        if (!batch) {
            die("out of memory");
        }
        for (unsigned i = 0; i < param; i++) {
            memcpy(batch + (size_t)i * cmd_len, cmd, cmd_len);
        }
    }

    /* Warm up: caches, the helper's first-query work, socat's fork. */
    for (size_t i = 0; i < n_targets; i++) {
        unsigned warm = strcmp(mode, "latency") == 0 ? param : 1;

        for (unsigned w = 0; w < warm; w++) {
            if (strcmp(mode, "pipeline") == 0) {
                pipelined(&targets[i], batch, batch_len, param);
            } else {
                round_trip(&targets[i], cmd, cmd_len);
                if (cmd2) {
                    round_trip(&targets[i], cmd2, cmd2_len);
                }
            }
        }
    }

    for (unsigned r = 0; r < rounds; r++) {
        for (size_t k = 0; k < n_targets; k++) {
            Target *t = &targets[(k + r) % n_targets];

            if (strcmp(mode, "pipeline") == 0) {
                t->samples[t->n_samples] = pipelined(t, batch, batch_len, param);
            } else {
                t->samples[t->n_samples] = round_trip(t, cmd, cmd_len);
                if (cmd2) {
                    t->samples2[t->n_samples] = round_trip(t, cmd2, cmd2_len);
                }
            }
            t->n_samples++;
        }
    }

    for (size_t i = 0; i < n_targets; i++) {
        Target *t = &targets[i];

        if (cmd2) {
            print_samples(t->name, ":on", t->samples, t->n_samples);
            print_samples(t->name, ":off", t->samples2, t->n_samples);
        } else {
            print_samples(t->name, "", t->samples, t->n_samples);
        }
    }
    fflush(stdout);
    return 0;
}
