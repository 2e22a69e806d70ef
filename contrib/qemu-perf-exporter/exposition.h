/*
 * exposition.h: the text Prometheus scrapes, in either of its formats
 *
 * A scrape's readings are added VM by VM; the exposition groups the
 * samples by metric family (every family's samples must be contiguous)
 * and renders them as OpenMetrics 1.0 or as the Prometheus text format
 * 0.0.4, whichever the scraper's Accept header prefers.  Names follow the
 * Prometheus conventions: base units (seconds, bytes) as a suffix,
 * `_total` on counters, `# HELP`, `# TYPE` and (OpenMetrics) `# UNIT` per
 * family.  docs/metrics.md lists every family.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "contrib/qemu-perf-exporter/reading.h"

typedef enum {
    QPE_FORMAT_PROMETHEUS, /* text/plain; version=0.0.4 */
    QPE_FORMAT_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
    QPE_FORMAT__LAST,
} QpeFormat;

/* The Content-Type of a response in @format. */
const char *qpe_format_content_type(QpeFormat format);

/**
 * qpe_format_from_accept - the format a scraper asked for
 * @accept: the request's Accept header, or NULL
 *
 * The acceptable type with the highest q wins, the earlier one on a tie;
 * OpenMetrics only in version 1.0.0 (or unversioned).  Anything else,
 * including no header, gets the 0.0.4 text format, as Prometheus's own
 * client libraries do.
 */
QpeFormat qpe_format_from_accept(const char *accept);

/* What one scrape learnt about one VM. */
typedef struct {
    const char *domain; /* query-name, else the socket's file name */
    const char *uuid;   /* query-uuid, "" while unknown */
    const char *socket;
    gboolean up;
    gint64 duration_us;         /* question to answer (or to giving up) */
    guint64 errors_total;       /* failed scrapes of this socket so far */
    const QpeReading *reading;  /* NULL unless @up */
} QpeVmReport;

typedef struct QpeExposition QpeExposition;

QpeExposition *qpe_exposition_new(void);
void qpe_exposition_free(QpeExposition *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpeExposition, qpe_exposition_free)

/**
 * qpe_exposition_add_vm - add one VM's health and counters
 *
 * Returns: FALSE when another VM of the same scrape already used
 * @vm's domain and uuid; its counters are then left out (the health
 * series, labelled with the socket, are still added).
 */
gboolean qpe_exposition_add_vm(QpeExposition *e, const QpeVmReport *vm);

/* The exporter's own health: sockets matched, scrapes served in each
 * format (@scrapes_total has QPE_FORMAT__LAST entries), and how long
 * this scrape took. */
void qpe_exposition_add_exporter(QpeExposition *e, guint n_sockets,
                                 const guint64 *scrapes_total,
                                 gint64 duration_us);

/* The label value of @format: "prometheus-0.0.4", "openmetrics-1.0.0". */
const char *qpe_format_name(QpeFormat format);

/* The whole response body. */
GString *qpe_exposition_render(const QpeExposition *e, QpeFormat format);
