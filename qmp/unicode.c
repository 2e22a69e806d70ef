/*
 * unicode.c: QEMU's "modified UTF-8" decoding and encoding
 *
 * A transcription of the semantics of QEMU 7.2's util/unicode.c
 * (mod_utf8_codepoint() and mod_utf8_encode()), which the JSON parser uses
 * to validate strings and the JSON writer uses to escape them.  Kept in its
 * own file because both sides of the framing layer need it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/unicode.h"

gboolean
qmp_utf8_valid_codepoint(int cp)
{
    if ((unsigned)cp > 0x10FFFFu) {
        return FALSE; /* beyond Unicode range, or negative */
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return FALSE; /* noncharacter */
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        return FALSE; /* surrogate code point */
    }
    return TRUE;
}

int
qmp_utf8_codepoint(const char *s, gsize n, const char **end)
{
    static const unsigned min_cp[5] = {0x80, 0x800, 0x10000, 0x200000,
                                       0x4000000};
    const unsigned char *p = (const unsigned char *)s;
    unsigned byte, mask, len, i, cp;

    if (n == 0 || *p == 0) {
        *end = s;
        return -1; /* empty sequence */
    }
    if (n > 6) {
        n = 6;
    }

    byte = *p++;
    if (byte < 0x80) {
        *end = (const char *)p;
        return (int)byte;
    }
    if (byte >= 0xFE || (byte & 0x40) == 0) {
        *end = (const char *)p;
        return -1; /* impossible byte, or unexpected continuation byte */
    }

    /* A lead byte 110xxxxx .. 1111110x: 2 to 6 bytes. */
    len = 0;
    for (mask = 0x80; byte & mask; mask >>= 1) {
        len++;
    }
    cp = byte & (mask - 1);
    for (i = 1; i < len; i++) {
        byte = i < n ? *p : 0;
        if ((byte & 0xC0) != 0x80) {
            *end = (const char *)p;
            return -1; /* continuation byte missing */
        }
        p++;
        cp = (cp << 6) | (byte & 0x3F);
    }
    *end = (const char *)p;
    if (!qmp_utf8_valid_codepoint((int)cp)) {
        return -1;
    }
    if (cp < min_cp[len - 2] && !(cp == 0 && len == 2)) {
        return -1; /* overlong, other than C0 80 */
    }
    return (int)cp;
}

gboolean
qmp_utf8_append(GString *out, int cp)
{
    if (!qmp_utf8_valid_codepoint(cp)) {
        return FALSE;
    }
    if (cp > 0 && cp <= 0x7F) {
        g_string_append_c(out, (char)cp);
    } else if (cp <= 0x7FF) {
        g_string_append_c(out, (char)(0xC0 | ((cp >> 6) & 0x1F)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    } else if (cp <= 0xFFFF) {
        g_string_append_c(out, (char)(0xE0 | ((cp >> 12) & 0x0F)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    } else {
        g_string_append_c(out, (char)(0xF0 | ((cp >> 18) & 0x07)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 12) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    }
    return TRUE;
}
