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
