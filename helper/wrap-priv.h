/*
 * wrap-priv.h: the pure parts of wrapper mode (wrap-argv.c), for unit tests
 *
 * Option parsing, QemuOpts splitting and joining, finding libvirt's monitor
 * in QEMU's argv and rewriting it: none of these touch a descriptor or a
 * process, so tests/libvirt/test-wrap.c checks them directly.  Only wrap.c
 * and that test include this header.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

#define QPH_WRAP_DEFAULT_QEMU "/usr/bin/qemu-system-x86_64"
#define QPH_WRAP_MONITOR_ID "charmonitor"
/* Where the helper finds its descriptors after the wrapper moved them. */
#define QPH_WRAP_HELPER_QEMU_FD 3
#define QPH_WRAP_HELPER_LISTEN_FD 4

/* The options of wrapper mode, after the command line and the config file. */
typedef struct {
    char *real_qemu;
    char *helper;
    GPtrArray *helper_args; /* of char *, config file's first */
    char *config;
    gboolean enabled;
    char *enable;     /* events the helper enables at start ("A,B"), or NULL */
    char **qemu_argv; /* borrowed from argv: QEMU's arguments after "--" */
} QphWrapOptions;

void qph_wrap_options_clear(QphWrapOptions *opts);

/**
 * qph_wrap_options_parse:
 * Parse the wrapper's own options (before "--") and load --config if given.
 * Fills @opts; qemu_argv points into @argv.  Fields neither the command line
 * nor the config file set keep their defaults (real_qemu
 * QPH_WRAP_DEFAULT_QEMU, helper NULL meaning "this executable", enabled,
 * enable NULL).  @opts->enable comes from --enable if given, else from the
 * config file's group for this domain ([uuid UUID], then [domain NAME],
 * matched on QEMU's -uuid and -name guest=), else from [wrapper].
 */
gboolean qph_wrap_options_parse(int argc, char **argv, QphWrapOptions *opts,
                                GError **error);

/**
 * qph_wrap_domain_identity:
 * The domain's name (-name guest=NAME, or -name NAME) and UUID (-uuid) in
 * QEMU's arguments, as libvirt passes them; NULL when absent.  The last
 * occurrence wins, as in QEMU.
 */
void qph_wrap_domain_identity(char **qemu_argv, char **name, char **uuid);

/* One element of a QemuOpts string: "key=value", a flag, or the implied
 * first value (key NULL, as "socket" in "socket,id=x"). */
typedef struct {
    char *key;
    char *value;
} QphOpt;

/**
 * qph_opts_parse:
 * Split a QemuOpts string the way QEMU does: elements separated by ',',
 * ",," is a literal comma inside a value, a first element without '=' is
 * the implied value (if @implied is TRUE), "flag" means flag=on and
 * "noflag" means flag=off.  Never fails.  Returns a GPtrArray of QphOpt.
 */
GPtrArray *qph_opts_parse(const char *str, gboolean implied);

/* The inverse of qph_opts_parse(), escaping commas in values. */
char *qph_opts_format(GPtrArray *opts);

/* The value of the last element named @key, or NULL. */
const char *qph_opts_get(GPtrArray *opts, const char *key);

/* QEMU's boolean spellings: on/yes/true/y and off/no/false/n. */
gboolean qph_opts_parse_bool(const char *value, gboolean *result);

typedef enum {
    QPH_MONITOR_NONE, /* no libvirt monitor: exec QEMU untouched */
    QPH_MONITOR_FD,   /* fd=N,server=on: libvirt's listening descriptor */
    QPH_MONITOR_PATH, /* path=P,server=on: QEMU was to listen on P itself */
} QphMonitorKind;

typedef struct {
    QphMonitorKind kind;
    int index;  /* of the -chardev value in qemu_argv */
    int fd;     /* QPH_MONITOR_FD */
    char *path; /* QPH_MONITOR_PATH */
} QphMonitor;

void qph_monitor_clear(QphMonitor *mon);

/**
 * qph_wrap_find_monitor:
 * Look for libvirt's monitor (-chardev ...,id=charmonitor) in QEMU's
 * arguments.  Returns TRUE with kind QPH_MONITOR_NONE when there is none,
 * TRUE with FD or PATH when it is a form the wrapper rewrites, FALSE with an
 * error saying why when it is there but in a form the wrapper leaves alone.
 */
gboolean qph_wrap_find_monitor(char **qemu_argv, QphMonitor *mon,
                               GError **error);

/**
 * qph_wrap_rewrite_argv:
 * QEMU's full argv: @real_qemu, then @qemu_argv with the monitor's chardev
 * replaced by "socket,id=charmonitor,fd=@qemu_fd" (a connected socket, so no
 * server or wait).  With kind QPH_MONITOR_NONE, only argv[0] changes.
 */
char **qph_wrap_rewrite_argv(const char *real_qemu, char **qemu_argv,
                             const QphMonitor *mon, int qemu_fd);

/**
 * qph_wrap_helper_argv:
 * The helper's argv in fd mode: its descriptors at QPH_WRAP_HELPER_QEMU_FD
 * and QPH_WRAP_HELPER_LISTEN_FD, QEMU's pid, "--enable=@enable" unless
 * @enable is NULL or empty, then the extra helper args.
 */
char **qph_wrap_helper_argv(const char *helper, int qemu_pid,
                            const char *enable, GPtrArray *helper_args);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QphWrapOptions, qph_wrap_options_clear)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QphMonitor, qph_monitor_clear)
