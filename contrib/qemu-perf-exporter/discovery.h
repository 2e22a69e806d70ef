/*
 * discovery.h: which helper sockets exist now
 *
 * The --socket globs are expanded again at every scrape, so a VM that
 * starts or stops is picked up without restarting the exporter.  Only
 * sockets are kept: a glob that matches every file of a directory may
 * also match other files.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/* The sockets matched by @globs, sorted, each once.  An unreadable
 * directory matches nothing. */
GPtrArray *qpe_discover_sockets(const char *const *globs);
