/*
 * fuzz-common.h: what the libFuzzer targets share
 *
 * Each target defines LLVMFuzzerTestOneInput().  A failed property is a
 * crash (abort), so libFuzzer keeps the input; FUZZ_CHECK says which
 * property and where.  The same target sources are linked into
 * regression-main.c's GTest driver, so every input ever kept in
 * tests/fuzz/regressions/ (and the seed corpus) runs as a unit test in a
 * build without clang or libFuzzer.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A small deterministic generator of chunk sizes from the input itself. */
static inline guint32
fuzz_next(guint32 *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

#include "qmp/qmp-framer.h"

static inline void
fuzz_keep_first(gpointer opaque, const QmpMessage *msg, const char *error)
{
    QmpMessage **first = opaque;

    if (msg && !*first) {
        *first = qmp_message_copy(msg);
    }
}

/* The first message QEMU's framer finds in @data, as the upstream gets
 * it (a copy; NULL if none). */
static inline QmpMessage *
fuzz_frame_qemu(const char *data, gsize len)
{
    QmpMessage *first = NULL;
    g_autoptr(QmpFramer) f =
        qmp_framer_new(QMP_FRAMER_TRUSTED, fuzz_keep_first, &first);

    qmp_framer_feed(f, data, len, NULL);
    return first;
}
