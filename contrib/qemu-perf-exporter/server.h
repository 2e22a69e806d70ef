/*
 * server.h: the HTTP side: GET /metrics through libsoup
 *
 * Listens on one ADDRESS:PORT (127.0.0.1 unless told otherwise), with TLS
 * when given a certificate and key and HTTP basic auth when given a
 * users file, as Prometheus's own exporters offer.  Each request is
 * paused while its scrape runs, so the main loop keeps serving other
 * requests and VMs meanwhile.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "contrib/qemu-perf-exporter/scrape.h"

typedef struct {
    const char *listen;     /* ADDRESS:PORT, [IPv6]:PORT or PORT */
    const char *tls_cert;   /* PEM files, both or neither */
    const char *tls_key;
    const char *auth_file;  /* see auth.h, or NULL */
} QpeServerConfig;

typedef struct QpeServer QpeServer;

/* Start listening; fails on a bad address, unreadable TLS or auth files,
 * or a port in use. */
QpeServer *qpe_server_new(const QpeServerConfig *config, QpeExporter *ex,
                          GError **error);
void qpe_server_free(QpeServer *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpeServer, qpe_server_free)
