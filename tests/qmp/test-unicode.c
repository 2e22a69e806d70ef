/*
 * test-unicode.c: QEMU's modified UTF-8
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/unicode.h"

static void
check(const char *s, gsize n, int cp, gsize consumed)
{
    const char *end = NULL;

    g_assert_cmpint(qmp_utf8_codepoint(s, n, &end), ==, cp);
    g_assert_cmpuint((gsize)(end - s), ==, consumed);
}

static void
test_decode_valid(void)
{
    check("A", 1, 'A', 1);
    check("\xc3\xa9", 2, 0xE9, 2);
    check("\xe2\x82\xac", 3, 0x20AC, 3);
    check("\xf0\x9f\x98\x80", 4, 0x1F600, 4);
    /* The one overlong form QEMU accepts: C0 80 is U+0000. */
    check("\xc0\x80", 2, 0, 2);
}

static void
test_decode_invalid(void)
{
    check("", 1, -1, 0);                  /* empty */
    check("\x80", 1, -1, 1);              /* stray continuation */
    check("\xfe", 1, -1, 1);              /* impossible byte */
    check("\xc3" "A", 2, -1, 1);          /* continuation missing */
    check("\xc3\xa9", 1, -1, 1);          /* cut by n */
    check("\xc0\xaf", 2, -1, 2);          /* overlong */
    check("\xed\xa0\x80", 3, -1, 3);      /* surrogate */
    check("\xef\xbf\xbf", 3, -1, 3);      /* noncharacter U+FFFF */
    check("\xef\xb7\x90", 3, -1, 3);      /* noncharacter U+FDD0 */
    check("\xf4\x90\x80\x80", 4, -1, 4);  /* beyond U+10FFFF */
    check("\xf8\x88\x80\x80\x80", 5, -1, 5); /* five bytes */
}

static void
test_encode(void)
{
    g_autoptr(GString) out = g_string_new(NULL);

    g_assert_true(qmp_utf8_append(out, 0));
    g_assert_true(qmp_utf8_append(out, 'A'));
    g_assert_true(qmp_utf8_append(out, 0x1F600));
    g_assert_cmpmem(out->str, out->len, "\xc0\x80" "A\xf0\x9f\x98\x80", 7);
    g_assert_false(qmp_utf8_append(out, 0xD800));
    g_assert_false(qmp_utf8_append(out, 0xFFFE));
    g_assert_false(qmp_utf8_append(out, 0x110000));
    g_assert_false(qmp_utf8_append(out, -1));
    g_assert_cmpuint(out->len, ==, 7);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/unicode/decode-valid", test_decode_valid);
    g_test_add_func("/qmp/unicode/decode-invalid", test_decode_invalid);
    g_test_add_func("/qmp/unicode/encode", test_encode);
    return g_test_run();
}
