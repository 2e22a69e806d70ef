/*
 * unicode.h: QEMU's "modified UTF-8" decoding and encoding
 *
 * QEMU's JSON parser and writer do not use a standard UTF-8 codec: they
 * accept the two-byte overlong sequence C0 80 for U+0000 (so strings can
 * hold NUL while staying NUL-terminated), reject surrogates and
 * noncharacters, and replace what they reject with U+FFFD on output.  To
 * answer byte-for-byte as QEMU does, the framing layer uses these two
 * functions, which reproduce util/unicode.c of QEMU 7.2.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/**
 * qmp_utf8_codepoint - decode one modified UTF-8 sequence, QEMU's way
 * @s: the bytes
 * @n: how many bytes of @s may be read (at most 6 are)
 * @end: set to the first byte after the sequence (or after the bytes
 *     examined, when the sequence is invalid)
 *
 * Returns the code point, or -1 for an empty, truncated, overlong (other
 * than C0 80), surrogate, noncharacter or out-of-range sequence and for
 * the impossible bytes FE and FF.  Never reads beyond @n bytes or a NUL.
 */
int qmp_utf8_codepoint(const char *s, gsize n, const char **end);

/**
 * qmp_utf8_valid_codepoint - whether QEMU accepts @cp as a character
 * @cp: a code point, or anything
 *
 * Returns FALSE for surrogates, noncharacters and values outside
 * 0..0x10FFFF.
 */
gboolean qmp_utf8_valid_codepoint(int cp);

/**
 * qmp_utf8_append - append @cp to @out in modified UTF-8
 * @out: where to append
 * @cp: the code point; U+0000 is written as C0 80
 *
 * Returns FALSE (appending nothing) when qmp_utf8_valid_codepoint()
 * rejects @cp.
 */
gboolean qmp_utf8_append(GString *out, int cp);
