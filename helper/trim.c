/*
 * trim.c: give freed heap back to the system after a large message
 *
 * glibc keeps freed heap for the process: after a 20 MB answer went
 * through, or a large request of the helper's own was answered, the
 * helper's private memory would stay at its peak for good.  Whoever has
 * just freed a large message calls qph_trim_soon(): malloc_trim() runs at
 * once and once more a second later, when the client has most likely
 * written (and freed) what was queued for it.  The second run is a
 * one-shot timer, armed only by a large message: an idle helper still
 * never wakes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/trim.h"

#include <glib.h>
#include <malloc.h>

static guint trim_source;

static gboolean
trim_later(gpointer unused)
{
    trim_source = 0;
    malloc_trim(0);
    return G_SOURCE_REMOVE;
}

/**
 * qph_trim_soon: malloc_trim() now and once more in a second.
 */
void
qph_trim_soon(void)
{
    malloc_trim(0);
    if (!trim_source) {
        trim_source = g_timeout_add_seconds_full(G_PRIORITY_LOW, 1, trim_later,
                                                 NULL, NULL);
    }
}
