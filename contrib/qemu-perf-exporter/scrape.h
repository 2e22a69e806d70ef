/*
 * scrape.h: the exporter's state between scrapes, and one scrape
 *
 * A scrape expands the socket globs, asks every VM for a reading at the
 * same time, and renders what came back when all VMs answered or the
 * per-VM timeout passed, whichever is first.  A VM that has not answered
 * by then is reported up 0; it never delays the others, and the scrape
 * never takes much longer than the timeout.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "contrib/qemu-perf-exporter/exposition.h"

typedef struct {
    const char *const *globs;  /* --socket */
    const char *const *enable; /* --enable, may be NULL */
    gint64 timeout_us;         /* per VM */
    gsize max_message;         /* largest reply accepted from a helper */
} QpeExporterConfig;

typedef struct QpeExporter QpeExporter;

QpeExporter *qpe_exporter_new(const QpeExporterConfig *config);
void qpe_exporter_free(QpeExporter *ex);

/* @body is the whole response; the callee owns it. */
typedef void (*QpeScrapeDone)(GString *body, gpointer data);

/* Start a scrape; @done runs once, from the main loop or before this
 * returns (no socket matched). */
void qpe_exporter_scrape(QpeExporter *ex, QpeFormat format,
                         QpeScrapeDone done, gpointer data);
