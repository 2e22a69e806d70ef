/*
 * test-json-parser.c: one test per error text of QEMU's JSON parser
 *
 * Each case parses one value with qmp_json_parse_value() and states either
 * the error QEMU 7.2 reports (the first one it meets wins) or the value as
 * QEMU would print it back.  The path of each test names the rule.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp/json-parser.h"
#include "qmp/json-streamer.h"

typedef struct {
    const char *path;
    const char *input;
    const char *error;   /* expected error text, or NULL */
    const char *written; /* expected qmp_json_write() output, or NULL */
} ParserCase;

#define E "JSON parse error, "

/* 18 keys: more than the parser checks by a linear scan. */
#define MANY_KEYS \
    "\"k0\": 0, \"k1\": 1, \"k2\": 2, \"k3\": 3, \"k4\": 4, \"k5\": 5, " \
    "\"k6\": 6, \"k7\": 7, \"k8\": 8, \"k9\": 9, \"k10\": 10, \"k11\": 11, " \
    "\"k12\": 12, \"k13\": 13, \"k14\": 14, \"k15\": 15, \"k16\": 16, " \
    "\"k17\": 17, "

static const ParserCase cases[] = {
    /* Values */
    {"value/object", "{\"b\": 1, \"a\": 2}", NULL, "{\"a\": 2, \"b\": 1}"},
    {"value/array", "[1, \"x\", null, true, false]", NULL,
     "[1, \"x\", null, true, false]"},
    {"value/single-quoted", "'a\"b'", NULL, "\"a\\\"b\""},
    {"value/escapes", "\"\\/\\'\\b\\f\\n\\r\\t\\\\\\\"\"", NULL,
     "\"/'\\b\\f\\n\\r\\t\\\\\\\"\""},
    {"value/u-escape", "\"\\u00e9\\u0041\"", NULL, "\"\\u00E9A\""},
    {"value/u0000-is-allowed", "\"a\\u0000b\"", NULL, "\"a\\u0000b\""},
    {"value/surrogate-pair", "\"\\uD83D\\uDE00\"", NULL,
     "\"\\uD83D\\uDE00\""},
    {"value/raw-c0-80", "\"\xc0\x80\"", NULL, "\"\\u0000\""},
    {"value/del", "\"\x7f\"", NULL, "\"\\u007F\""},
    /* Numbers: int64, else uint64, else double. */
    {"number/int64-max", "9223372036854775807", NULL, "9223372036854775807"},
    {"number/int64-min", "-9223372036854775808", NULL,
     "-9223372036854775808"},
    {"number/uint64", "9223372036854775808", NULL, "9223372036854775808"},
    {"number/uint64-max", "18446744073709551615", NULL,
     "18446744073709551615"},
    {"number/beyond-uint64", "18446744073709551616", NULL,
     "1.8446744073709552e+19"},
    {"number/below-int64", "-9223372036854775809", NULL,
     "-9.2233720368547758e+18"},
    {"number/minus-zero-int", "-0", NULL, "0"},
    {"number/minus-zero-float", "-0.0", NULL, "-0"},
    {"number/17-digits", "0.1", NULL, "0.10000000000000001"},
    {"number/trailing-zero", "1.50", NULL, "1.5"},
    {"number/exponent", "1E+2", NULL, "100"},
    {"number/inf", "1e400", NULL, "inf"},
    {"number/minus-inf", "-1e400", NULL, "-inf"},
    /* Errors */
    {"error/expecting-value", "]", E "expecting value", NULL},
    {"error/expecting-value-in-list", "[1,]", E "expecting value", NULL},
    {"error/key-not-string", "{1: 2}", E "key is not a string in object",
     NULL},
    {"error/missing-colon", "{\"a\" 1}", E "missing : in object pair", NULL},
    {"error/missing-value-reports-inner-error", "{\"a\": ]",
     E "expecting value", NULL},
    {"error/duplicate-key", "{\"a\": 1, \"a\": 2}", E "duplicate key", NULL},
    {"error/duplicate-key-escaped", "{\"a\": 1, '\\u0061': 2}",
     E "duplicate key", NULL},
    {"error/expected-separator-in-dict", "{\"a\": 1 \"b\": 2}",
     E "expected separator in dict", NULL},
    {"error/expected-separator-in-list", "[1 2]",
     E "expected separator in list", NULL},
    {"error/invalid-keyword", "nul", E "invalid keyword 'nul'", NULL},
    {"error/invalid-escape", "\"\\x\"", E "invalid escape sequence in string",
     NULL},
    {"error/invalid-utf8", "\"\xc3\"", E "invalid UTF-8 sequence in string",
     NULL},
    {"error/overlong-utf8", "\"\xc0\xaf\"",
     E "invalid UTF-8 sequence in string", NULL},
    {"error/short-u-escape", "\"\\u12\"",
     E "\\u12\" is not a valid Unicode character", NULL},
    {"error/lone-surrogate", "\"\\uD800\"",
     E "\\uD800 is not a valid Unicode character", NULL},
    {"error/bad-trailing-surrogate", "\"\\uD800\\u0041\"",
     E "\\uD800 is not a valid Unicode character", NULL},
    {"error/noncharacter", "\"\\uFFFF\"",
     E "\\uFFFF is not a valid Unicode character", NULL},
    {"error/premature-eoi", "[1,", E "premature EOI", NULL},
    {"error/premature-eoi-object", "{\"a\":", E "premature EOI", NULL},
    /* The first error wins, in the order QEMU's parser meets them. */
    {"order/value-before-duplicate", "{\"a\": 1, \"a\": \"\\x\"}",
     E "invalid escape sequence in string", NULL},
    {"order/duplicate-before-separator", "{\"a\": 1, \"a\": 2 \"b\" 3}",
     E "duplicate key", NULL},
    {"order/key-value-before-not-string", "{[1, \"\\x\"]: 1}",
     E "invalid escape sequence in string", NULL},
    {"order/inner-missing-colon", "{\"a\": {\"b\"}, \"a\": 1}",
     E "missing : in object pair", NULL},
    /* Duplicate keys are per object: nested and sibling objects keep their
     * own keys, also past the size where a hash set takes over. */
    {"dup/nested-same-key", "{\"a\": {\"a\": 1}}", NULL,
     "{\"a\": {\"a\": 1}}"},
    {"dup/sibling-objects", "[{\"a\": 1}, {\"a\": 2}]", NULL,
     "[{\"a\": 1}, {\"a\": 2}]"},
    {"dup/after-nested-object",
     "{\"a\": {\"b\": 1, \"c\": 2}, \"b\": 3, \"a\": 4}",
     E "duplicate key", NULL},
    {"dup/inner-after-outer-keys", "{\"x\": 1, \"y\": {\"x\": 1, \"x\": 2}}",
     E "duplicate key", NULL},
    {"dup/many-keys", "{" MANY_KEYS "\"k3\": 1}", E "duplicate key", NULL},
    {"dup/many-keys-inner", "{" MANY_KEYS "\"z\": {\"k0\": 0, \"k0\": 1}}",
     E "duplicate key", NULL},
    {"dup/many-keys-inner-no-dup", "{" MANY_KEYS "\"z\": {\"k0\": 0}}", NULL,
     NULL},
    /* Lexical errors come from the streamer, before any parsing. */
    {"lexical/stray", "[1, @]", E "stray '@'", NULL},
    {"lexical/stray-stops-at-nul", "\"a\0b\"", E "stray '\"a'", NULL},
};

static void
test_case(gconstpointer data)
{
    const ParserCase *c = data;
    gsize len = strlen(c->input);
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = NULL;

    if (strcmp(c->path, "lexical/stray-stops-at-nul") == 0) {
        len = 5;
    }
    v = qmp_json_parse_value(c->input, len, &error);
    if (c->error) {
        g_assert_null(v);
        g_assert_cmpstr(error, ==, c->error);
    } else {
        g_autoptr(GString) out = g_string_new(NULL);

        g_assert_nonnull(v);
        qmp_json_write(out, v);
        if (c->written) {
            g_assert_cmpstr(out->str, ==, c->written);
        }
    }
}

/* QEMU formats parser errors into 1024 bytes. */
static void
test_long_keyword_is_cut(void)
{
    g_autoptr(GString) in = g_string_new(NULL);
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = NULL;

    for (int i = 0; i < 2000; i++) {
        g_string_append_c(in, 'a');
    }
    v = qmp_json_parse_value(in->str, in->len, &error);
    g_assert_null(v);
    g_assert_cmpuint(strlen(error), ==, strlen(E) + 1023);
    g_assert_true(g_str_has_prefix(error, E "invalid keyword 'aaa"));
}

static void
test_number_types(void)
{
    g_assert_cmpint(qmp_json_number_type("-5", 2, FALSE, NULL), ==,
                    QMP_JSON_INT);
    g_assert_cmpint(qmp_json_number_type("18446744073709551615", 20, FALSE,
                                         NULL),
                    ==, QMP_JSON_UINT);
    g_assert_cmpint(qmp_json_number_type("-9223372036854775809", 20, FALSE,
                                         NULL),
                    ==, QMP_JSON_DOUBLE);
    /* A float token is a double even when its value is integral. */
    g_assert_cmpint(qmp_json_number_type("1.0", 3, TRUE, NULL), ==,
                    QMP_JSON_DOUBLE);
}

static void
test_more_than_one_value(void)
{
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = qmp_json_parse_value("1 2", 3, &error);

    g_assert_null(v);
    g_assert_nonnull(error);
}

static void
test_deep_nesting(void)
{
    g_autoptr(GString) in = g_string_new(NULL);
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = NULL;

    for (int i = 0; i < QMP_JSON_MAX_NESTING; i++) {
        g_string_append_c(in, '[');
    }
    for (int i = 0; i < QMP_JSON_MAX_NESTING; i++) {
        g_string_append_c(in, ']');
    }
    v = qmp_json_parse_value(in->str, in->len, &error);
    g_assert_nonnull(v);
    g_string_prepend_c(in, '[');
    g_string_append_c(in, ']');
    g_clear_pointer(&v, qmp_json_free);
    v = qmp_json_parse_value(in->str, in->len, &error);
    g_assert_null(v);
    g_assert_cmpstr(error, ==, "JSON nesting depth limit exceeded");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = g_strdup_printf("/qmp/parser/%s",
                                                cases[i].path);

        g_test_add_data_func(path, &cases[i], test_case);
    }
    g_test_add_func("/qmp/parser/error/long-message-is-cut",
                    test_long_keyword_is_cut);
    g_test_add_func("/qmp/parser/number/types", test_number_types);
    g_test_add_func("/qmp/parser/one-value-only", test_more_than_one_value);
    g_test_add_func("/qmp/parser/nesting", test_deep_nesting);
    return g_test_run();
}
