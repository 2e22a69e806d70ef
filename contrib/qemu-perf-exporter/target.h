/*
 * target.h: one helper socket the exporter scrapes, and what it knows of
 * the VM behind it
 *
 * A target keeps its QMP connection open between scrapes and reconnects
 * after a failure at the next scrape.  On each new connection it learns
 * the VM's name and UUID (query-name, query-uuid) and, if the operator
 * asked with --enable, enables those events (only ever enabling: what
 * other clients enabled is left alone).  A reading is one
 * query-perf-events with per-thread; at most one is in flight, and every
 * scrape that asks while it is shares its answer, so a helper that stops
 * answering costs one outstanding command, not one per scrape.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "contrib/qemu-perf-exporter/reading.h"

typedef struct QpeTarget QpeTarget;

/**
 * QpeTargetFunc:
 * @reading: the VM's counters, or NULL when @error is set; borrowed
 *     (take a reference to keep it)
 */
typedef void (*QpeTargetFunc)(QpeTarget *t, QpeReading *reading,
                              const GError *error, gpointer data);

/**
 * qpe_target_new - a target for the helper socket @path
 * @enable: events to enable on every connection (NULL or empty: none)
 * @max_message: the largest reply accepted, in bytes
 *
 * Nothing is connected until the first qpe_target_read().
 */
QpeTarget *qpe_target_new(const char *path, const char *const *enable,
                          gsize max_message);
QpeTarget *qpe_target_ref(QpeTarget *t);
void qpe_target_unref(QpeTarget *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpeTarget, qpe_target_unref)

/**
 * qpe_target_read - ask for a reading
 *
 * @func runs once, with the reading or the error, unless the request is
 * withdrawn first with qpe_target_cancel().  It may run before this
 * function returns (a socket that cannot be connected to).
 *
 * Returns: a handle for qpe_target_cancel(), or 0 if @func already ran.
 */
guint qpe_target_read(QpeTarget *t, QpeTargetFunc func, gpointer data);

/* Withdraw a request (a scrape that stopped waiting); @func will not run. */
void qpe_target_cancel(QpeTarget *t, guint handle);

/* The socket's path. */
const char *qpe_target_path(const QpeTarget *t);

/* The VM's name (query-name; the socket's file name without ".sock"
 * until it is known, or when the VM has none). */
const char *qpe_target_domain(const QpeTarget *t);

/* The VM's UUID (query-uuid), "" until it is known. */
const char *qpe_target_uuid(const QpeTarget *t);

/* Count one failed scrape, and how many there were. */
void qpe_target_count_error(QpeTarget *t);
guint64 qpe_target_errors(const QpeTarget *t);

/* Record whether this scrape found the target's identity taken by another
 * socket; TRUE when that changed (so it is logged once, not per scrape). */
gboolean qpe_target_set_duplicate(QpeTarget *t, gboolean duplicate);

/* Close the connection and fail the requests waiting (the socket went
 * away); the target may still be referenced. */
void qpe_target_retire(QpeTarget *t);
