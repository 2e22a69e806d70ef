/*
 * main.c: qemu-perf-exporter's options, signals and main loop
 *
 * The composition root: it builds the exporter's state (scrape.c) from
 * the socket globs and the events to enable, and the HTTP server
 * (server.c) in front of it, then runs the main loop until SIGTERM or
 * SIGINT.  See qemu-perf-exporter(8) and docs/metrics.md.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "contrib/qemu-perf-exporter/scrape.h"
#include "contrib/qemu-perf-exporter/server.h"

#define DEFAULT_LISTEN "127.0.0.1:9867"
#define DEFAULT_SOCKET "/run/qemu-perf-helper/*.sock"
#define DEFAULT_TIMEOUT 2.0
/* A query-perf-events reply for 256 vCPUs and every event is a few MiB. */
#define MAX_REPLY (64u << 20)

static char *opt_listen;
static char **opt_socket;
static char **opt_enable;
static double opt_timeout = DEFAULT_TIMEOUT;
static char *opt_tls_cert;
static char *opt_tls_key;
static char *opt_auth_file;
static gboolean opt_verbose;
static gboolean opt_version;

static const GOptionEntry option_entries[] = {
    {"listen", 0, 0, G_OPTION_ARG_STRING, &opt_listen,
     "Serve /metrics on ADDRESS:PORT (default " DEFAULT_LISTEN ")",
     "ADDRESS:PORT"},
    {"socket", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_socket,
     "Scrape the helper sockets matching GLOB, re-read at every scrape "
     "(repeatable; default " DEFAULT_SOCKET ")",
     "GLOB"},
    {"enable", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_enable,
     "Enable these events on every VM found (repeatable; default: only "
     "read what clients enabled)",
     "EVENT,..."},
    {"timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_timeout,
     "Report a VM down when its helper has not answered within SECONDS "
     "(default 2)",
     "SECONDS"},
    {"tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_cert,
     "Serve HTTPS with this PEM certificate (with --tls-key)", "FILE"},
    {"tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_key,
     "The PEM private key of --tls-cert", "FILE"},
    {"basic-auth-file", 0, 0, G_OPTION_ARG_FILENAME, &opt_auth_file,
     "Require HTTP basic auth for the USER:CRYPT-HASH lines of FILE",
     "FILE"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
     "Log every failed scrape", NULL},
    {"version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
     "Print the version and exit", NULL},
    {NULL},
};

static gboolean
on_signal(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_CONTINUE;
}

/* --enable a,b --enable c -> {a, b, c}; NULL when none. */
static char **
split_events(char **opts, GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; opts != NULL && opts[i] != NULL; i++) {
        g_auto(GStrv) parts = g_strsplit(opts[i], ",", -1);
        for (guint j = 0; parts[j] != NULL; j++) {
            char *e = g_strstrip(parts[j]);
            if (*e == '\0') {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "--enable '%s': empty event name", opts[i]);
                return NULL;
            }
            g_ptr_array_add(out, g_strdup(e));
        }
    }
    if (out->len == 0) {
        return NULL;
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) enable = NULL;
    g_autoptr(GMainLoop) loop = NULL;
    g_autoptr(QpeServer) server = NULL;
    QpeExporter *ex;
    const char *default_socket[] = {DEFAULT_SOCKET, NULL};
    QpeExporterConfig config;
    QpeServerConfig server_config;

    setlocale(LC_ALL, "");
    ctx = g_option_context_new("- serve qemu-perf-helper counters to "
                               "Prometheus");
    g_option_context_add_main_entries(ctx, option_entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "qemu-perf-exporter: %s\n", error->message);
        return 2;
    }
    if (opt_version) {
        printf("qemu-perf-exporter %s\n", QPE_VERSION);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "qemu-perf-exporter: unexpected argument '%s'\n",
                argv[1]);
        return 2;
    }
    if (!(opt_timeout > 0 && opt_timeout <= 3600)) {
        fprintf(stderr, "qemu-perf-exporter: --timeout must be between 0 "
                        "and 3600 seconds\n");
        return 2;
    }
    enable = split_events(opt_enable, &error);
    if (error != NULL) {
        fprintf(stderr, "qemu-perf-exporter: %s\n", error->message);
        return 2;
    }
    if (opt_verbose) {
        g_setenv("G_MESSAGES_DEBUG", "qemu-perf-exporter", TRUE);
    }
    signal(SIGPIPE, SIG_IGN);

    config.globs = opt_socket != NULL ? (const char *const *)opt_socket
                                      : default_socket;
    config.enable = (const char *const *)enable;
    config.timeout_us = (gint64)(opt_timeout * G_USEC_PER_SEC);
    config.max_message = MAX_REPLY;
    ex = qpe_exporter_new(&config);
    for (guint i = 0; enable != NULL && enable[i] != NULL; i++) {
        g_message("enabling event '%s' on every VM found, as --enable asks",
                  enable[i]);
    }

    server_config.listen = opt_listen != NULL ? opt_listen : DEFAULT_LISTEN;
    server_config.tls_cert = opt_tls_cert;
    server_config.tls_key = opt_tls_key;
    server_config.auth_file = opt_auth_file;
    server = qpe_server_new(&server_config, ex, &error);
    if (server == NULL) {
        fprintf(stderr, "qemu-perf-exporter: %s\n", error->message);
        qpe_exporter_free(ex);
        return 1;
    }

    loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, loop);
    g_unix_signal_add(SIGINT, on_signal, loop);
    g_main_loop_run(loop);

    g_clear_pointer(&server, qpe_server_free);
    qpe_exporter_free(ex);
    return 0;
}
