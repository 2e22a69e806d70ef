/*
 * trim.c: give freed heap back to the system once the main loop is idle
 *
 * glibc keeps freed heap for the process: after a 20 MB answer went
 * through, a large reply of the helper's own was written, many clients
 * closed, or start-up read QEMU's command list, the helper's private
 * memory would stay at its peak for good.  Whoever has just freed (or is
 * about to free) something large calls qph_trim_soon(): malloc_trim()
 * then runs once, from an idle source of low priority, that is when the
 * main loop has nothing else ready and before it next sleeps.  Calls made
 * before it runs share it, so a burst (100 clients closing, a large answer
 * leaving in pieces) costs one trim.
 *
 * There is no timer: memory that is still queued for a client is freed
 * when the client has read it, and channel.c calls qph_trim_soon() then.
 * An idle helper never wakes for this, and memory is back as soon as the
 * last byte is written, not a second later.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/trim.h"

#include <glib.h>
#include <malloc.h>

static guint trim_source;

static gboolean
trim_idle(gpointer unused)
{
    trim_source = 0;
    malloc_trim(0);
    return G_SOURCE_REMOVE;
}

/**
 * qph_trim_soon: malloc_trim() once the main loop has nothing else to do.
 */
void
qph_trim_soon(void)
{
    if (!trim_source) {
        trim_source = g_idle_add_full(G_PRIORITY_LOW, trim_idle, NULL, NULL);
    }
}
