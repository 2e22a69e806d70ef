/*
 * test-json-streamer.c: messages, member spans, limits and recovery
 *
 * What the proxy relies on beyond QEMU's replies (which
 * test-qmp-vectors.c covers): a message's bytes are the client's bytes,
 * the member spans point at the right bytes, memory stays bounded, and the
 * token size limit behaves as QEMU's source says (recording it from QEMU
 * takes many minutes, see gen-vectors.py --slow).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp-test-util.h"
#include "qmp/json-streamer.h"

static char *
trace(const char *input)
{
    return qmp_test_trace(input, strlen(input), strlen(input), 0);
}

static void
test_message_bytes_and_members(void)
{
    g_autofree char *got = trace(
        "{ \"execute\" : \"query-status\",\r\n  \"id\": 'a\\'b', "
        "\"arguments\": {\"x\": [1, 2]}, \"n\": 18446744073709551615 }");

    g_assert_cmpstr(got, ==,
                    "message object: { \"execute\" : \"query-status\",\r\n"
                    "  \"id\": 'a\\'b', \"arguments\": {\"x\": [1, 2]}, "
                    "\"n\": 18446744073709551615 }\n"
                    "  execute@2 = \"query-status\" (string)\n"
                    "  id@33 = 'a\\'b' (string)\n"
                    "  arguments@47 = {\"x\": [1, 2]} (object)\n"
                    "  n@75 = 18446744073709551615 (uint)\n");
}

static void
test_leading_and_trailing_whitespace_dropped(void)
{
    g_autofree char *got = trace("\r\n  [ 1 ]  \r\n");

    /* A message starts at its first token and ends at its last. */
    g_assert_cmpstr(got, ==, "message array: [ 1 ]\n");
}

static void
test_escaped_keys_are_unescaped(void)
{
    g_autofree char *got = trace("{\"\\u0065xecute\": \"x\"}");

    g_assert_cmpstr(got, ==,
                    "message object: {\"\\u0065xecute\": \"x\"}\n"
                    "  execute@1 = \"x\" (string)\n");
}

static void
test_member_value_types(void)
{
    g_autofree char *got =
        trace("{\"a\": null, \"b\": true, \"c\": -1, \"d\": 1.5, "
              "\"e\": 1e400, \"f\": []}");

    g_assert_cmpstr(got, ==,
                    "message object: {\"a\": null, \"b\": true, \"c\": -1, "
                    "\"d\": 1.5, \"e\": 1e400, \"f\": []}\n"
                    "  a@1 = null (null)\n"
                    "  b@12 = true (bool)\n"
                    "  c@23 = -1 (int)\n"
                    "  d@32 = 1.5 (double)\n"
                    "  e@42 = 1e400 (double)\n"
                    "  f@54 = [] (array)\n");
}

static void
test_whitespace_inside_is_bounded(void)
{
    g_autoptr(GString) in = g_string_new("[1,");
    g_autoptr(GString) expected = g_string_new("message array: [1,");
    g_autofree char *got = NULL;

    for (int i = 0; i < 10000; i++) {
        g_string_append_c(in, ' ');
    }
    g_string_append(in, "2]");
    for (int i = 0; i < 64; i++) {
        g_string_append_c(expected, ' ');
    }
    g_string_append(expected, "2]\n");
    got = qmp_test_trace(in->str, in->len, in->len, 0);
    g_assert_cmpstr(got, ==, expected->str);
}

static void
test_whitespace_total_is_bounded(void)
{
    /* 100000 runs of 64 blanks between one-byte tokens: the message keeps
     * far less whitespace than that, and its value does not change. */
    g_autoptr(GString) in = g_string_new("[");
    g_autofree char *error = NULL;
    g_autoptr(QmpJson) v = NULL;
    gsize max_buffered = 0;

    for (int i = 0; i < 100000; i++) {
        g_string_append_printf(in, "%s%64s", i ? "," : "", "");
        g_string_append_c(in, '0');
    }
    g_string_append_c(in, ']');

    g_autoptr(QmpStreamer) s = qmp_streamer_new(NULL, NULL);
    for (gsize pos = 0; pos + 1 < in->len; pos += 4096) {
        qmp_streamer_feed(s, in->str + pos, MIN(4096, in->len - 1 - pos));
        max_buffered = MAX(max_buffered, qmp_streamer_get_buffered(s));
    }
    /* Whitespace never outweighs the token bytes (about 200000) by more
     * than the 64 KiB slack plus one run. */
    g_assert_cmpuint(max_buffered, <=, 2 * 200000 + 65536 + 64);
    v = qmp_json_parse_value(in->str, in->len, &error);
    g_assert_nonnull(v);
    g_assert_cmpuint(v->elements->len, ==, 100000);
}

static void
test_recovery_after_error(void)
{
    g_autofree char *got = trace("{\"execute\": X, \"id\": 1}\n[2]");

    /* The stray X throws the object away; recovery resumes at ',' and
     * the leftovers are taken one by one as top-level values. */
    g_assert_cmpstr(got, ==,
                    "error: JSON parse error, stray 'X'\n"
                    "error: JSON parse error, expecting value\n"
                    "message string: \"id\"\n"
                    "error: JSON parse error, expecting value\n"
                    "message int: 1\n"
                    "error: JSON parse error, expecting value\n"
                    "message array: [2]\n");
}

static void
test_split_invariance(void)
{
    static const char *const inputs[] = {
        "{\"execute\": \"a\", \"id\": [1, {\"b\": 'c'}]}{\"execute\":\"b\"}",
        "@@ \xff{\"execute\"  :\t\"\\u00e9\"} 1e} [1,, 2] \"a\xc3\" nul ",
        "  {  \"a\" :   \"\\uD83D\\uDE00\" , \"b\":-0.5e-3}  ",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(inputs); i++) {
        gsize len = strlen(inputs[i]);
        g_autofree char *whole = qmp_test_trace(inputs[i], len, len, 0);
        g_autofree char *bytes = qmp_test_trace(inputs[i], len, 0, 1);

        g_assert_cmpstr(bytes, ==, whole);
        for (gsize split = 0; split <= len; split++) {
            g_autofree char *two = qmp_test_trace(inputs[i], len, split, 0);

            g_assert_cmpstr(two, ==, whole);
        }
    }
}

/*
 * QEMU's json_lexer_feed_char(): a token beyond 64 MiB is handed to the
 * streamer unfinished, which rejects it with the size error; the lexer
 * then starts afresh, so the rest of the string is lexed as JSON.
 */
static void
test_token_size_limit_single_token(void)
{
    gsize n = QMP_JSON_MAX_TOKEN_SIZE;
    g_autoptr(GString) in = g_string_sized_new(n + 16);
    g_autofree char *got = NULL;

    g_string_append_c(in, '"');
    g_string_set_size(in, n + 1);
    memset(in->str + 1, 'a', n);
    g_string_append(in, "bcd ");
    got = qmp_test_trace(in->str, in->len, 0, 1 << 20);
    g_assert_cmpstr(got, ==,
                    "error: JSON token size limit exceeded\n"
                    "error: JSON parse error, invalid keyword 'bcd'\n");
}

/* QEMU's streamer: the sum of token lengths plus one must stay within
 * 64 MiB. */
static void
test_token_size_limit_sum(void)
{
    gsize half = QMP_JSON_MAX_TOKEN_SIZE / 2;
    g_autoptr(GString) in = g_string_sized_new(2 * half + 16);
    g_autofree char *got = NULL;

    g_string_append(in, "[\"");
    g_string_set_size(in, 2 + half);
    memset(in->str + 2, 'a', half);
    g_string_append(in, "\",\"");
    g_string_set_size(in, in->len + half);
    memset(in->str + in->len - half, 'b', half);
    g_string_append(in, "\"]");
    got = qmp_test_trace(in->str, in->len, 0, 1 << 20);
    g_assert_cmpstr(got, ==,
                    "error: JSON token size limit exceeded\n"
                    "error: JSON parse error, expecting value\n");
}

static void
test_token_size_just_fits(void)
{
    /* [ "..." ]: 1 + (len + 2) + 1 bytes of tokens; +1 must be <= 64 MiB. */
    gsize len = QMP_JSON_MAX_TOKEN_SIZE - 5;
    g_autoptr(GString) in = g_string_sized_new(len + 8);

    g_string_append(in, "[\"");
    g_string_set_size(in, 2 + len);
    memset(in->str + 2, 'x', len);
    g_string_append(in, "\"]");

    g_autofree char *got = qmp_test_trace(in->str, in->len, 0, 1 << 20);
    g_assert_true(g_str_has_prefix(got, "message array: [\"xxx"));
}

static void
test_nesting_limit(void)
{
    g_autoptr(GString) in = g_string_new(NULL);
    g_autofree char *ok = NULL;
    g_autofree char *bad = NULL;

    for (int i = 0; i < QMP_JSON_MAX_NESTING; i++) {
        g_string_append_c(in, i % 2 ? '[' : '{');
        if (i % 2 == 0) {
            g_string_append(in, "\"k\":");
        }
    }
    ok = qmp_test_trace(in->str, in->len, in->len, 0);
    g_assert_cmpstr(ok, ==, ""); /* 1024 levels: still waiting */
    g_string_append_c(in, '[');
    bad = qmp_test_trace(in->str, in->len, in->len, 0);
    g_assert_cmpstr(bad, ==, "error: JSON nesting depth limit exceeded\n");
}

static void
test_token_count_limit(void)
{
    /* "[" then 0, pairs: the 2Mi+1st token is refused. */
    gsize pairs = QMP_JSON_MAX_TOKEN_COUNT / 2;
    g_autoptr(GString) in = g_string_sized_new(2 * pairs + 2);
    g_autofree char *got = NULL;

    g_string_append_c(in, '[');
    for (gsize i = 0; i < pairs; i++) {
        g_string_append(in, "0,");
    }
    got = qmp_test_trace(in->str, in->len, 0, 65536);
    g_assert_cmpstr(got, ==, "error: JSON token count limit exceeded\n");
}

static int free_calls;

static void
emit_free_self(gpointer opaque, const QmpMessage *msg, const char *error)
{
    QmpStreamer **s = opaque;

    free_calls++;
    qmp_streamer_free(*s);
}

/* The owner may drop the client from inside the callback: no further
 * callback happens and the streamer is freed when feed returns. */
static void
test_free_from_callback_stops(void)
{
    QmpStreamer *s = NULL;

    s = qmp_streamer_new(emit_free_self, &s);
    free_calls = 0;
    qmp_streamer_feed(s, "1 2 3 @ [4]", 11);
    g_assert_cmpint(free_calls, ==, 1);
}

static void
test_buffered(void)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(NULL, NULL);

    qmp_streamer_feed(s, "{\"execute\": \"abc", 16);
    g_assert_cmpuint(qmp_streamer_get_buffered(s), ==, 16);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/streamer/message/bytes-and-members",
                    test_message_bytes_and_members);
    g_test_add_func("/qmp/streamer/message/outer-whitespace",
                    test_leading_and_trailing_whitespace_dropped);
    g_test_add_func("/qmp/streamer/message/escaped-keys",
                    test_escaped_keys_are_unescaped);
    g_test_add_func("/qmp/streamer/message/member-types",
                    test_member_value_types);
    g_test_add_func("/qmp/streamer/memory/whitespace-run",
                    test_whitespace_inside_is_bounded);
    g_test_add_func("/qmp/streamer/memory/whitespace-total",
                    test_whitespace_total_is_bounded);
    g_test_add_func("/qmp/streamer/memory/buffered", test_buffered);
    g_test_add_func("/qmp/streamer/recovery", test_recovery_after_error);
    g_test_add_func("/qmp/streamer/split-invariance", test_split_invariance);
    g_test_add_func("/qmp/streamer/limit/token-size-single",
                    test_token_size_limit_single_token);
    g_test_add_func("/qmp/streamer/limit/token-size-sum",
                    test_token_size_limit_sum);
    g_test_add_func("/qmp/streamer/limit/token-size-fits",
                    test_token_size_just_fits);
    g_test_add_func("/qmp/streamer/limit/nesting", test_nesting_limit);
    g_test_add_func("/qmp/streamer/limit/token-count",
                    test_token_count_limit);
    g_test_add_func("/qmp/streamer/free-from-callback-stops",
                    test_free_from_callback_stops);
    return g_test_run();
}
