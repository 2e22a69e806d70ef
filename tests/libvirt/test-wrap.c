/*
 * test-wrap.c: unit tests of wrapper mode (helper/wrap.c)
 *
 * The first groups check the pure parts: the wrapper's options, QemuOpts
 * splitting as QEMU does it, which QEMU command lines carry libvirt's monitor
 * and how they are rewritten.  The "exec" group runs qph_wrap_main() for real
 * in a subprocess, with this test binary standing in for both QEMU
 * (--fake-qemu) and the helper (it sees --qemu-fd): the fakes check each
 * other's descriptors, pids and sockets and report over the monitor
 * socketpair, the way the real pair would talk.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "wrap.h"
#include "wrap-priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* libvirt 9.0's arguments for a small q35 domain, trimmed. */
#define LIBVIRT_MONITOR "socket,id=charmonitor,fd=29,server=on,wait=off"

static void
assert_strv(char **got, const char *const *want)
{
    guint i;

    for (i = 0; got[i] && want[i]; i++) {
        g_assert_cmpstr(got[i], ==, want[i]);
    }
    g_assert_null(got[i]);
    g_assert_null(want[i]);
}

static char *
format_opts(const char *str, gboolean implied)
{
    g_autoptr(GPtrArray) opts = qph_opts_parse(str, implied);

    return qph_opts_format(opts);
}

/* ------------------------------------------------------------------------
 * QemuOpts
 */

static void
test_opts_split(void)
{
    g_autoptr(GPtrArray) opts = qph_opts_parse(LIBVIRT_MONITOR, TRUE);
    const QphOpt *first = g_ptr_array_index(opts, 0);

    g_assert_cmpuint(opts->len, ==, 5);
    g_assert_null(first->key);
    g_assert_cmpstr(first->value, ==, "socket");
    g_assert_cmpstr(qph_opts_get(opts, "id"), ==, "charmonitor");
    g_assert_cmpstr(qph_opts_get(opts, "fd"), ==, "29");
    g_assert_cmpstr(qph_opts_get(opts, "server"), ==, "on");
    g_assert_cmpstr(qph_opts_get(opts, "wait"), ==, "off");
    g_assert_null(qph_opts_get(opts, "path"));
}

static void
test_opts_flags(void)
{
    /* Older libvirt: "server,nowait". */
    g_autoptr(GPtrArray) opts =
        qph_opts_parse("socket,id=charmonitor,path=/x,server,nowait", TRUE);

    g_assert_cmpstr(qph_opts_get(opts, "server"), ==, "on");
    g_assert_cmpstr(qph_opts_get(opts, "wait"), ==, "off");
}

static void
test_opts_escaped_comma(void)
{
    g_autoptr(GPtrArray) opts =
        qph_opts_parse("socket,path=/a,,b/m.sock,server=on", TRUE);
    g_autofree char *again = qph_opts_format(opts);

    g_assert_cmpstr(qph_opts_get(opts, "path"), ==, "/a,b/m.sock");
    g_assert_cmpstr(again, ==, "socket,path=/a,,b/m.sock,server=on");
}

static void
test_opts_last_wins(void)
{
    g_autoptr(GPtrArray) opts = qph_opts_parse("id=a,id=b", FALSE);

    g_assert_cmpstr(qph_opts_get(opts, "id"), ==, "b");
}

static void
test_opts_odd_input(void)
{
    g_autoptr(GPtrArray) empty = qph_opts_parse("", TRUE);
    g_autofree char *trailing = format_opts("socket,id=x,", TRUE);
    g_autofree char *empty_value = format_opts("socket,path=", TRUE);
    g_autofree char *no_implied = format_opts("socket,id=x", FALSE);
    g_autofree char *bare_no = format_opts("no", FALSE);

    g_assert_cmpuint(empty->len, ==, 0);
    g_assert_cmpstr(trailing, ==, "socket,id=x");
    g_assert_cmpstr(empty_value, ==, "socket,path=");
    /* Without an implied key, a bare word is a flag. */
    g_assert_cmpstr(no_implied, ==, "socket=on,id=x");
    g_assert_cmpstr(bare_no, ==, "no=on");
}

static void
test_opts_bool(void)
{
    static const char *const on[] = {"on", "yes", "true", "y"};
    static const char *const off[] = {"off", "no", "false", "n"};
    gboolean b;

    for (guint i = 0; i < G_N_ELEMENTS(on); i++) {
        g_assert_true(qph_opts_parse_bool(on[i], &b));
        g_assert_true(b);
        g_assert_true(qph_opts_parse_bool(off[i], &b));
        g_assert_false(b);
    }
    g_assert_false(qph_opts_parse_bool("ON", &b));
    g_assert_false(qph_opts_parse_bool("", &b));
}

/* ------------------------------------------------------------------------
 * Finding the monitor
 */

static void
test_monitor_libvirt_fd(void)
{
    char *argv[] = {"-name",    "guest=vm,debug-threads=on",
                    "-chardev", LIBVIRT_MONITOR,
                    "-mon",     "chardev=charmonitor,id=monitor,mode=control",
                    NULL};
    g_auto(QphMonitor) mon = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_find_monitor(argv, &mon, &error));
    g_assert_no_error(error);
    g_assert_cmpint(mon.kind, ==, QPH_MONITOR_FD);
    g_assert_cmpint(mon.fd, ==, 29);
    g_assert_cmpint(mon.index, ==, 3);
}

static void
test_monitor_libvirt_path(void)
{
    char *argv[] = {
        "-chardev",
        "socket,id=charmonitor,path=/var/lib/libvirt/qemu/domain-1-vm/"
        "monitor.sock,server,nowait",
        "-mon", "chardev=charmonitor,id=monitor,mode=control", NULL};
    g_auto(QphMonitor) mon = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_find_monitor(argv, &mon, &error));
    g_assert_cmpint(mon.kind, ==, QPH_MONITOR_PATH);
    g_assert_cmpstr(mon.path, ==,
                    "/var/lib/libvirt/qemu/domain-1-vm/monitor.sock");
    g_assert_cmpint(mon.index, ==, 1);
}

static void
test_monitor_none(void)
{
    /* libvirt's capability probe, -help and -version, a guest-agent channel
     * with the same fd= form under another id, a dangling -chardev. */
    char *probe[] = {"-S",
                     "-no-user-config",
                     "-nodefaults",
                     "-nographic",
                     "-machine",
                     "none,accel=kvm:tcg",
                     "-qmp",
                     "unix:/var/lib/libvirt/qemu/qmp-x/qmp.monitor,"
                     "server=on,wait=off",
                     NULL};
    char *help[] = {"-help", NULL};
    char *version[] = {"-version", NULL};
    char *channel[] = {"-chardev",
                       "socket,id=charchannel0,fd=31,server=on,wait=off",
                       "-chardev", NULL};
    char *empty[] = {NULL};
    char **runs[] = {probe, help, version, channel, empty};

    for (guint i = 0; i < G_N_ELEMENTS(runs); i++) {
        g_auto(QphMonitor) mon = {0};
        g_autoptr(GError) error = NULL;

        g_assert_true(qph_wrap_find_monitor(runs[i], &mon, &error));
        g_assert_no_error(error);
        g_assert_cmpint(mon.kind, ==, QPH_MONITOR_NONE);
    }
}

static void
test_monitor_json_other(void)
{
    char *argv[] = {"-chardev", "{\"id\":\"charserial0\",\"backend\":{}}",
                    NULL};
    g_auto(QphMonitor) mon = {0};

    g_assert_true(qph_wrap_find_monitor(argv, &mon, NULL));
    g_assert_cmpint(mon.kind, ==, QPH_MONITOR_NONE);
}

static void
test_monitor_unsupported(void)
{
    /* Each is left to QEMU untouched, with the reason logged. */
    static const struct {
        const char *chardev;
        const char *reason;
    } cases[] = {
        {"pty,id=charmonitor", "is not a socket"},
        {"id=charmonitor,path=/x,server=on", "is not a socket"},
        {"socket,id=charmonitor,fd=3,server=off", "not a listening"},
        {"socket,id=charmonitor,fd=3", "not a listening"},
        {"socket,id=charmonitor,fd=3,server=maybe", "not a listening"},
        {"socket,id=charmonitor,fd=3,server=on,tls-creds=t",
         "option 'tls-creds'"},
        {"socket,id=charmonitor,fd=3,server=on,reconnect=1",
         "option 'reconnect'"},
        {"socket,id=charmonitor,fd=3,fd=4,server=on", "repeats option 'fd'"},
        {"socket,id=charmonitor,fd=mon0,server=on", "not a number"},
        {"socket,id=charmonitor,fd=-1,server=on", "not a number"},
        {"socket,id=charmonitor,fd=3,path=/x,server=on", "exactly one"},
        {"socket,id=charmonitor,server=on", "exactly one"},
        {"socket,id=charmonitor,path=,server=on", "exactly one"},
        {"{\"id\":\"charmonitor\",\"backend\":{}}", "JSON syntax"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *argv[] = {"-chardev", (char *)cases[i].chardev, NULL};
        g_auto(QphMonitor) mon = {0};
        g_autoptr(GError) error = NULL;

        g_test_message("%s", cases[i].chardev);
        g_assert_false(qph_wrap_find_monitor(argv, &mon, &error));
        g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
        g_assert_nonnull(strstr(error->message, cases[i].reason));
        g_assert_cmpint(mon.kind, ==, QPH_MONITOR_NONE);
        g_assert_null(mon.path);
    }
}

static void
test_monitor_twice(void)
{
    char *argv[] = {"-chardev", LIBVIRT_MONITOR, "--chardev",
                    "socket,id=charmonitor,path=/x,server=on", NULL};
    g_auto(QphMonitor) mon = {0};
    g_autoptr(GError) error = NULL;

    g_assert_false(qph_wrap_find_monitor(argv, &mon, &error));
    g_assert_nonnull(strstr(error->message, "twice"));
}

/* ------------------------------------------------------------------------
 * Rewriting
 */

static void
test_rewrite_fd(void)
{
    char *argv[] = {"-S",
                    "-chardev",
                    LIBVIRT_MONITOR,
                    "-mon",
                    "chardev=charmonitor,id=monitor,mode=control",
                    "-netdev",
                    "{\"type\":\"tap\",\"fd\":\"33\",\"id\":\"n\"}",
                    NULL};
    const char *want[] = {"/usr/bin/qemu-system-x86_64",
                          "-S",
                          "-chardev",
                          "socket,id=charmonitor,fd=7",
                          "-mon",
                          "chardev=charmonitor,id=monitor,mode=control",
                          "-netdev",
                          "{\"type\":\"tap\",\"fd\":\"33\",\"id\":\"n\"}",
                          NULL};
    g_auto(QphMonitor) mon = {0};
    g_auto(GStrv) out = NULL;

    g_assert_true(qph_wrap_find_monitor(argv, &mon, NULL));
    out = qph_wrap_rewrite_argv(QPH_WRAP_DEFAULT_QEMU, argv, &mon, 7);
    assert_strv(out, want);
}

static void
test_rewrite_path(void)
{
    char *argv[] = {"-chardev",
                    "socket,id=charmonitor,path=/a,,b.sock,server,nowait",
                    NULL};
    const char *want[] = {"/q", "-chardev", "socket,id=charmonitor,fd=12",
                          NULL};
    g_auto(QphMonitor) mon = {0};
    g_auto(GStrv) out = NULL;

    g_assert_true(qph_wrap_find_monitor(argv, &mon, NULL));
    g_assert_cmpstr(mon.path, ==, "/a,b.sock");
    out = qph_wrap_rewrite_argv("/q", argv, &mon, 12);
    assert_strv(out, want);
}

static void
test_rewrite_none(void)
{
    char *argv[] = {"-chardev", "socket,id=charmonitor,fd=3,server=off",
                    "-version", NULL};
    const char *want[] = {"/q", "-chardev",
                          "socket,id=charmonitor,fd=3,server=off", "-version",
                          NULL};
    QphMonitor mon = {.kind = QPH_MONITOR_NONE};
    g_auto(GStrv) out = qph_wrap_rewrite_argv("/q", argv, &mon, 5);

    assert_strv(out, want);
}

static void
test_helper_argv(void)
{
    g_autoptr(GPtrArray) extra = g_ptr_array_new();
    const char *want[] = {"/usr/bin/qemu-perf-helper",
                          "--qemu-fd",
                          "3",
                          "--qemu-pid",
                          "4242",
                          "--listen-fd",
                          "4",
                          "-v",
                          "--daemon-log=/var/log/x.log",
                          NULL};
    g_auto(GStrv) out = NULL;

    g_ptr_array_add(extra, "-v");
    g_ptr_array_add(extra, "--daemon-log=/var/log/x.log");
    out = qph_wrap_helper_argv("/usr/bin/qemu-perf-helper", 4242, NULL, extra);
    assert_strv(out, want);
}

static void
test_helper_argv_enable(void)
{
    const char *want[] = {
        "/h", "--qemu-fd",   "3", "--qemu-pid",
        "7",  "--listen-fd", "4", "--enable=task_clock,page_faults",
        NULL};
    const char *want_none[] = {"/h", "--qemu-fd",   "3", "--qemu-pid",
                               "7",  "--listen-fd", "4", NULL};
    g_auto(GStrv) out =
        qph_wrap_helper_argv("/h", 7, "task_clock,page_faults", NULL);
    g_auto(GStrv) none = qph_wrap_helper_argv("/h", 7, "", NULL);

    assert_strv(out, want);
    /* An empty list (a domain's "enable=") enables nothing. */
    assert_strv(none, want_none);
}

/* ------------------------------------------------------------------------
 * Which domain: -name and -uuid
 */

static void
test_domain_identity(void)
{
    static const struct {
        const char *args[7];
        const char *name;
        const char *uuid;
    } cases[] = {
        /* What libvirt 9 passes. */
        {{"-name", "guest=web1,debug-threads=on", "-uuid",
          "8f1c7f35-1b1e-4b8e-9a55-0c2f6d7f3a10"},
         "web1",
         "8f1c7f35-1b1e-4b8e-9a55-0c2f6d7f3a10"},
        /* The implied key, QEMU's own spelling. */
        {{"-name", "web2,process=qemu-web2"}, "web2", NULL},
        {{"--name", "guest=a,,b", "--uuid", "U"}, "a,b", "U"},
        /* The last one wins, as QEMU merges -name. */
        {{"-name", "guest=old", "-name", "guest=new"}, "new", NULL},
        /* A -name without a guest, an option value that looks like one. */
        {{"-name", "process=p", "-chardev", "-name"}, NULL, NULL},
        {{"-m", "64"}, NULL, NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = NULL;
        g_autofree char *uuid = NULL;

        qph_wrap_domain_identity((char **)cases[i].args, &name, &uuid);
        g_assert_cmpstr(name, ==, cases[i].name);
        g_assert_cmpstr(uuid, ==, cases[i].uuid);
    }
}

/* ------------------------------------------------------------------------
 * Options
 */

static void
test_options_defaults(void)
{
    char *argv[] = {"qemu-perf-helper", "--wrap", "--", "-version", NULL};
    g_auto(QphWrapOptions) opts = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_options_parse(4, argv, &opts, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(opts.real_qemu, ==, QPH_WRAP_DEFAULT_QEMU);
    g_assert_null(opts.helper);
    g_assert_cmpuint(opts.helper_args->len, ==, 0);
    g_assert_true(opts.enabled);
    g_assert_true(opts.qemu_argv == argv + 3);
}

static void
test_options_given(void)
{
    char *argv[] = {"qemu-perf-helper",
                    "--real-qemu",
                    "/q",
                    "--helper=/h",
                    "--helper-arg",
                    "-v",
                    "--helper-arg=--resctrl-root=/r",
                    "--",
                    "--real-qemu",
                    NULL};
    g_auto(QphWrapOptions) opts = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_options_parse(9, argv, &opts, &error));
    g_assert_cmpstr(opts.real_qemu, ==, "/q");
    g_assert_cmpstr(opts.helper, ==, "/h");
    g_assert_cmpuint(opts.helper_args->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(opts.helper_args, 0), ==, "-v");
    g_assert_cmpstr(g_ptr_array_index(opts.helper_args, 1), ==,
                    "--resctrl-root=/r");
    /* Everything after "--" is QEMU's, even a name we know. */
    g_assert_cmpstr(opts.qemu_argv[0], ==, "--real-qemu");
}

static void
test_options_errors(void)
{
    static const struct {
        const char *args[4];
        const char *reason;
    } cases[] = {
        {{"-version"}, "Unknown wrapper option '-version'"},
        {{"--real-qemu"}, "Missing argument for --real-qemu"},
        {{"--helper", "/h"}, "needs '--'"},
        {{"--real-qemux=/q", "--"}, "Unknown wrapper option"},
        {{NULL}, "needs '--'"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *argv[6] = {"qemu-perf-helper"};
        int argc = 1;
        g_auto(QphWrapOptions) opts = {0};
        g_autoptr(GError) error = NULL;

        for (guint j = 0; cases[i].args[j]; j++) {
            argv[argc++] = (char *)cases[i].args[j];
        }
        g_assert_false(qph_wrap_options_parse(argc, argv, &opts, &error));
        g_assert_error(error, G_OPTION_ERROR, error->code);
        g_test_message("%s", error->message);
        g_assert_nonnull(strstr(error->message, cases[i].reason));
    }
}

static char *
write_config(const char *text)
{
    g_autoptr(GError) error = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("wrapper-XXXXXX.conf", &path, &error);

    g_assert_no_error(error);
    close(fd);
    g_assert_true(g_file_set_contents(path, text, -1, &error));
    return path;
}

static void
test_options_config(void)
{
    g_autofree char *path = write_config("[wrapper]\n"
                                         "qemu=/usr/libexec/qemu-kvm\n"
                                         "helper=/opt/h\n"
                                         "helper-args=-v;--resctrl-root=/r;\n"
                                         "enabled=false\n");
    char *argv[] = {"qemu-perf-helper", "--config", path, "--helper=/cli",
                    "--helper-arg=--x", "--",       NULL};
    g_auto(QphWrapOptions) opts = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_options_parse(6, argv, &opts, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(opts.real_qemu, ==, "/usr/libexec/qemu-kvm");
    g_assert_cmpstr(opts.helper, ==, "/cli");
    g_assert_false(opts.enabled);
    g_assert_cmpuint(opts.helper_args->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(opts.helper_args, 0), ==, "-v");
    g_assert_cmpstr(g_ptr_array_index(opts.helper_args, 2), ==, "--x");
    g_unlink(path);
}

#define TEST_UUID "8F1C7F35-1B1E-4B8E-9A55-0C2F6D7F3A10"

/* What the wrapper resolves as "enable" for QEMU arguments @qemu_args
 * with @config and the wrapper options @wrap_args. */
static char *
resolved_enable(const char *config, const char *const *wrap_args,
                const char *const *qemu_args)
{
    g_autofree char *path = write_config(config);
    g_autofree char *config_arg = g_strconcat("--config=", path, NULL);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_auto(QphWrapOptions) opts = {0};
    g_autoptr(GError) error = NULL;

    g_ptr_array_add(argv, "qemu-perf-helper");
    g_ptr_array_add(argv, config_arg);
    for (guint i = 0; wrap_args && wrap_args[i]; i++) {
        g_ptr_array_add(argv, (char *)wrap_args[i]);
    }
    g_ptr_array_add(argv, "--");
    for (guint i = 0; qemu_args[i]; i++) {
        g_ptr_array_add(argv, (char *)qemu_args[i]);
    }
    g_ptr_array_add(argv, NULL);
    g_assert_true(qph_wrap_options_parse((int)argv->len - 1,
                                         (char **)argv->pdata, &opts, &error));
    g_assert_no_error(error);
    g_unlink(path);
    return g_steal_pointer(&opts.enable);
}

static void
test_options_enable_per_domain(void)
{
    static const char config[] = "[wrapper]\n"
                                 "enable=task_clock\n"
                                 "[domain web1]\n"
                                 "enable=page_faults,task_clock\n"
                                 "[uuid " TEST_UUID "]\n"
                                 "enable=cpu_clock\n"
                                 "[domain quiet]\n"
                                 "enable=\n";
    static const struct {
        const char *qemu[5];
        const char *want;
    } cases[] = {
        {{"-name", "guest=web1,debug-threads=on"}, "page_faults,task_clock"},
        {{"-name", "guest=other,debug-threads=on"}, "task_clock"},
        {{"-m", "64"}, "task_clock"},
        /* The UUID wins over the name; libvirt writes it in lower case. */
        {{"-name", "guest=web1", "-uuid",
          "8f1c7f35-1b1e-4b8e-9a55-0c2f6d7f3a10"},
         "cpu_clock"},
        /* A domain can turn the global list off. */
        {{"-name", "guest=quiet"}, ""},
        /* Group names are not domain names. */
        {{"-name", "guest=wrapper"}, "task_clock"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = resolved_enable(config, NULL, cases[i].qemu);

        g_assert_cmpstr(got, ==, cases[i].want);
    }
}

static void
test_options_enable_command_line(void)
{
    static const char *const wrap[] = {"--enable=instructions", "--enable",
                                       "cpu_cycles", NULL};
    static const char *const qemu[] = {"-name", "guest=web1", NULL};
    g_autofree char *got = resolved_enable(
        "[wrapper]\nenable=task_clock\n[domain web1]\nenable=page_faults\n",
        wrap, qemu);
    g_autofree char *none = resolved_enable("[wrapper]\nqemu=/q\n", NULL, qemu);

    /* The command line wins over the file, as for every other option. */
    g_assert_cmpstr(got, ==, "instructions,cpu_cycles");
    g_assert_null(none);
}

static void
test_options_config_missing(void)
{
    char *argv[] = {"qemu-perf-helper", "--config=/nonexistent/w.conf", "--",
                    NULL};
    g_auto(QphWrapOptions) opts = {0};
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_wrap_options_parse(3, argv, &opts, &error));
    g_assert_cmpstr(opts.real_qemu, ==, QPH_WRAP_DEFAULT_QEMU);
}

static void
test_options_config_bad(void)
{
    static const char *const texts[] = {
        "qemu=/q\n", /* no group */
        "[wrapper]\nenabled=perhaps\n",
    };

    for (guint i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autofree char *path = write_config(texts[i]);
        char *argv[] = {"qemu-perf-helper", "--config", path, "--", NULL};
        g_auto(QphWrapOptions) opts = {0};
        g_autoptr(GError) error = NULL;

        g_assert_false(qph_wrap_options_parse(4, argv, &opts, &error));
        g_test_message("%s", error->message);
        g_assert_nonnull(strstr(error->message, path));
        g_unlink(path);
    }
}

/* ------------------------------------------------------------------------
 * exec: the real thing, with this binary as QEMU and as the helper
 */

#define FAKE_TIMEOUT 20 /* seconds; a hang is a failure, not a stuck test */

static gboolean
fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static gboolean
fd_is_socket(int fd, gboolean listening)
{
    int on = -1;
    socklen_t len = sizeof(on);

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 &&
           on == (listening ? 1 : 0);
}

static int
count_fds_from(int lowest)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    while (dir && (de = readdir(dir))) {
        if (de->d_name[0] != '.' && atoi(de->d_name) >= lowest &&
            atoi(de->d_name) != dirfd(dir)) {
            n++;
        }
    }
    if (dir) {
        closedir(dir);
    }
    return n;
}

/**
 * fake_helper_main:
 * Run as the helper: check what the wrapper gave us, tell QEMU over the
 * monitor socketpair, then serve one client on the listening socket.
 */
static int
fake_helper_main(int argc, char **argv)
{
    const char *qemu_pid = NULL;
    const char *problem = NULL;
    struct stat st;
    g_autofree char *line = NULL;
    int client;

    alarm(FAKE_TIMEOUT);
    for (int i = 1; i + 1 < argc; i++) {
        if (g_str_equal(argv[i], "--qemu-pid")) {
            qemu_pid = argv[i + 1];
        }
    }
    if (fstat(STDIN_FILENO, &st) < 0 || !S_ISCHR(st.st_mode)) {
        problem = "stdin is not /dev/null";
    } else if (!fd_is_socket(QPH_WRAP_HELPER_QEMU_FD, FALSE)) {
        problem = "fd 3 is not a connected socket";
    } else if (!fd_is_socket(QPH_WRAP_HELPER_LISTEN_FD, TRUE)) {
        problem = "fd 4 is not a listening socket";
    } else if (count_fds_from(QPH_WRAP_HELPER_LISTEN_FD + 1) != 0) {
        problem = "descriptors above 4 leaked into the helper";
    } else if (!qemu_pid || atoi(qemu_pid) == getppid()) {
        problem = "QEMU is our parent";
    } else if (getsid(0) == getsid(atoi(qemu_pid)) || getsid(0) == getpid()) {
        /* A session of its own, and not its leader: no terminal ever. */
        problem = "not detached into a session of its own";
    }
    line =
        g_strdup_printf("helper qemu-pid=%s %s\n", qemu_pid ? qemu_pid : "none",
                        problem ? problem : "ok");
    if (write(QPH_WRAP_HELPER_QEMU_FD, line, strlen(line)) < 0) {
        return 1;
    }
    client = accept(QPH_WRAP_HELPER_LISTEN_FD, NULL, NULL);
    if (client < 0 || write(client, "accepted\n", 9) != 9) {
        return 1;
    }
    close(client);
    return 0;
}

static char *
read_line_from(int fd)
{
    char buf[256];
    gsize n = 0;

    while (n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, 1);

        if (r <= 0 || buf[n] == '\n') {
            break;
        }
        n++;
    }
    buf[n] = '\0';
    return g_strdup(buf);
}

/**
 * fake_qemu_main:
 * Run as QEMU: argv is [--fake-qemu, PATH, LISTEN-FD, TAP-FD, QEMU-ARGS].
 * Print what we see on stdout for the test to match.
 */
static int
fake_qemu_main(int argc, char **argv)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int listen_fd = atoi(argv[3]);
    int tap_fd = atoi(argv[4]);
    int monitor_fd = -1;
    int sock;

    alarm(FAKE_TIMEOUT);
    for (int i = 5; i + 1 < argc; i++) {
        if (g_str_equal(argv[i], "-chardev")) {
            printf("chardev %s\n", argv[i + 1]);
            if (!strstr(argv[i + 1], "server")) {
                sscanf(argv[i + 1], "socket,id=charmonitor,fd=%d", &monitor_fd);
            }
        }
    }
    printf("tap %s\n", fd_is_open(tap_fd) ? "open" : "closed");
    printf("libvirt-listener %s\n", fd_is_open(listen_fd) ? "open" : "closed");
    if (monitor_fd >= 0) {
        g_autofree char *hello = read_line_from(monitor_fd);
        g_autofree char *want =
            g_strdup_printf("helper qemu-pid=%d ok", (int)getpid());
        g_autofree char *reply = NULL;

        printf("monitor %s\n", g_str_equal(hello, want) ? "ok" : hello);
        /* libvirt's side: connect by path, the helper accepts. */
        g_strlcpy(addr.sun_path, argv[2], sizeof(addr.sun_path));
        sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            reply = read_line_from(sock);
        }
        printf("client %s\n", reply ? reply : g_strerror(errno));
    }
    printf("qemu-ok\n");
    /* The test's fixture ran in the wrapper, which is us now. */
    if (g_str_has_suffix(argv[2], "/monitor.sock")) {
        g_autofree char *dir = g_path_get_dirname(argv[2]);

        g_unlink(argv[2]);
        g_rmdir(dir);
    }
    return 0;
}

typedef struct {
    char *dir;
    char *sock;
} ExecFixture;

static void
exec_setup(ExecFixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;

    f->dir = g_dir_make_tmp("test-wrap-XXXXXX", &error);
    g_assert_no_error(error);
    f->sock = g_build_filename(f->dir, "monitor.sock", NULL);
}

static void
exec_teardown(ExecFixture *f, gconstpointer data)
{
    g_unlink(f->sock);
    g_rmdir(f->dir);
    g_free(f->sock);
    g_free(f->dir);
}

typedef enum {
    EXEC_FD,       /* libvirt 9: fd=N of a socket libvirt listens on */
    EXEC_PATH,     /* older libvirt: path=P, the wrapper listens on P */
    EXEC_FALLBACK, /* the helper cannot start: QEMU runs untouched */
} ExecCase;

/**
 * run_wrapper:
 * In the trap subprocess: set up what libvirt would (a listening socket, a
 * "tap" descriptor, both inheritable) and become the wrapper.
 */
static void
run_wrapper(ExecFixture *f, ExecCase what)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    g_autofree char *listen_str = NULL;
    g_autofree char *tap_str = NULL;
    g_autofree char *chardev = NULL;
    int listen_fd = -1;
    int tap[2];

    g_assert_cmpint(pipe(tap), ==, 0);
    g_strlcpy(addr.sun_path, f->sock, sizeof(addr.sun_path));
    if (what == EXEC_PATH) {
        chardev = g_strdup_printf("socket,id=charmonitor,path=%s,server,"
                                  "nowait",
                                  f->sock);
    } else {
        listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
        g_assert_cmpint(bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)),
                        ==, 0);
        g_assert_cmpint(listen(listen_fd, 4), ==, 0);
        chardev = g_strdup_printf("socket,id=charmonitor,fd=%d,server=on,"
                                  "wait=off",
                                  listen_fd);
    }
    listen_str = g_strdup_printf("%d", listen_fd);
    tap_str = g_strdup_printf("%d", tap[0]);
    {
        char *argv[] = {"qemu-perf-helper",
                        "--wrap",
                        "--real-qemu",
                        "/proc/self/exe",
                        "--helper",
                        what == EXEC_FALLBACK ? "/nonexistent/helper"
                                              : "/proc/self/exe",
                        "--",
                        "--fake-qemu",
                        f->sock,
                        listen_str,
                        tap_str,
                        "-chardev",
                        chardev,
                        "-mon",
                        "chardev=charmonitor,id=monitor,mode=control",
                        NULL};

        exit(qph_wrap_main(G_N_ELEMENTS(argv) - 1, argv));
    }
}

static void
test_exec(ExecFixture *f, gconstpointer data)
{
    ExecCase what = GPOINTER_TO_INT(data);

    if (g_test_subprocess()) {
        run_wrapper(f, what);
        return;
    }
    g_test_trap_subprocess(NULL, (FAKE_TIMEOUT + 5) * G_USEC_PER_SEC,
                           G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("*tap open*");
    g_test_trap_assert_stdout("*qemu-ok*");
    switch (what) {
    case EXEC_FD:
    case EXEC_PATH:
        g_test_trap_assert_stdout("*chardev socket,id=charmonitor,fd=*");
        g_test_trap_assert_stdout_unmatched("*server*");
        g_test_trap_assert_stdout("*libvirt-listener closed*");
        g_test_trap_assert_stdout("*monitor ok*");
        g_test_trap_assert_stdout("*client accepted*");
        g_test_trap_assert_stderr_unmatched("*qemu-perf-wrapper*");
        break;
    case EXEC_FALLBACK:
        g_test_trap_assert_stdout("*chardev socket,id=charmonitor,fd=*,"
                                  "server=on,wait=off*");
        g_test_trap_assert_stdout("*libvirt-listener open*");
        g_test_trap_assert_stderr("*Unable to start helper "
                                  "'/nonexistent/helper'*starting QEMU "
                                  "without the helper*");
        break;
    }
}

static void
test_exec_passthrough(void)
{
    if (g_test_subprocess()) {
        char *argv[] = {"qemu-perf-helper",
                        "--real-qemu=/proc/self/exe",
                        "--",
                        "--fake-qemu",
                        "/nonexistent",
                        "-1",
                        "1",
                        "-chardev",
                        "socket,id=charserial0,fd=1,server=on",
                        NULL};

        exit(qph_wrap_main(G_N_ELEMENTS(argv) - 1, argv));
    }
    g_test_trap_subprocess(NULL, (FAKE_TIMEOUT + 5) * G_USEC_PER_SEC,
                           G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("*chardev socket,id=charserial0,fd=1,"
                              "server=on\n*qemu-ok*");
    g_test_trap_assert_stderr("");
}

static void
test_exec_no_qemu(void)
{
    if (g_test_subprocess()) {
        char *argv[] = {"qemu-perf-helper", "--real-qemu=/nonexistent/qemu",
                        "--", "-version", NULL};

        exit(qph_wrap_main(G_N_ELEMENTS(argv) - 1, argv));
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*Unable to execute QEMU '/nonexistent/qemu'*");
}

int
main(int argc, char **argv)
{
    if (argc > 1 && g_str_equal(argv[1], "--fake-qemu")) {
        return fake_qemu_main(argc, argv);
    }
    if (argc > 1 && g_str_equal(argv[1], "--qemu-fd")) {
        return fake_helper_main(argc, argv);
    }

    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/wrap/opts/split", test_opts_split);
    g_test_add_func("/wrap/opts/flags", test_opts_flags);
    g_test_add_func("/wrap/opts/escaped-comma", test_opts_escaped_comma);
    g_test_add_func("/wrap/opts/last-wins", test_opts_last_wins);
    g_test_add_func("/wrap/opts/odd-input", test_opts_odd_input);
    g_test_add_func("/wrap/opts/bool", test_opts_bool);

    g_test_add_func("/wrap/monitor/libvirt-fd", test_monitor_libvirt_fd);
    g_test_add_func("/wrap/monitor/libvirt-path", test_monitor_libvirt_path);
    g_test_add_func("/wrap/monitor/none", test_monitor_none);
    g_test_add_func("/wrap/monitor/json-other", test_monitor_json_other);
    g_test_add_func("/wrap/monitor/unsupported", test_monitor_unsupported);
    g_test_add_func("/wrap/monitor/twice", test_monitor_twice);

    g_test_add_func("/wrap/rewrite/fd", test_rewrite_fd);
    g_test_add_func("/wrap/rewrite/path", test_rewrite_path);
    g_test_add_func("/wrap/rewrite/none", test_rewrite_none);
    g_test_add_func("/wrap/rewrite/helper-argv", test_helper_argv);
    g_test_add_func("/wrap/rewrite/helper-argv-enable",
                    test_helper_argv_enable);
    g_test_add_func("/wrap/domain/identity", test_domain_identity);

    g_test_add_func("/wrap/options/defaults", test_options_defaults);
    g_test_add_func("/wrap/options/given", test_options_given);
    g_test_add_func("/wrap/options/errors", test_options_errors);
    g_test_add_func("/wrap/options/config", test_options_config);
    g_test_add_func("/wrap/options/enable-per-domain",
                    test_options_enable_per_domain);
    g_test_add_func("/wrap/options/enable-command-line",
                    test_options_enable_command_line);
    g_test_add_func("/wrap/options/config-missing",
                    test_options_config_missing);
    g_test_add_func("/wrap/options/config-bad", test_options_config_bad);

    g_test_add("/wrap/exec/fd", ExecFixture, GINT_TO_POINTER(EXEC_FD),
               exec_setup, test_exec, exec_teardown);
    g_test_add("/wrap/exec/path", ExecFixture, GINT_TO_POINTER(EXEC_PATH),
               exec_setup, test_exec, exec_teardown);
    g_test_add("/wrap/exec/fallback", ExecFixture,
               GINT_TO_POINTER(EXEC_FALLBACK), exec_setup, test_exec,
               exec_teardown);
    g_test_add_func("/wrap/exec/passthrough", test_exec_passthrough);
    g_test_add_func("/wrap/exec/no-qemu", test_exec_no_qemu);

    return g_test_run();
}
