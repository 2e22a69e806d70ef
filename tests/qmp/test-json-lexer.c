/*
 * test-json-lexer.c: one test per rule of QEMU's JSON lexer
 *
 * Each test feeds a few bytes and lists the tokens the lexer hands over,
 * written as TYPE'text' (whitespace seen before a token is shown as
 * ws'...' where it matters).  The rules are those of QEMU 7.2's
 * qobject/json-lexer.c; test-qmp-vectors.c checks them against QEMU itself.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp/json-lexer.h"

static const char *
type_name(int type)
{
    static const char *const names[] = {
        [QMP_TOKEN_LCURLY - QMP_TOKEN_MIN] = "LCURLY",
        [QMP_TOKEN_RCURLY - QMP_TOKEN_MIN] = "RCURLY",
        [QMP_TOKEN_LSQUARE - QMP_TOKEN_MIN] = "LSQUARE",
        [QMP_TOKEN_RSQUARE - QMP_TOKEN_MIN] = "RSQUARE",
        [QMP_TOKEN_COLON - QMP_TOKEN_MIN] = "COLON",
        [QMP_TOKEN_COMMA - QMP_TOKEN_MIN] = "COMMA",
        [QMP_TOKEN_INTEGER - QMP_TOKEN_MIN] = "INTEGER",
        [QMP_TOKEN_FLOAT - QMP_TOKEN_MIN] = "FLOAT",
        [QMP_TOKEN_KEYWORD - QMP_TOKEN_MIN] = "KEYWORD",
        [QMP_TOKEN_STRING - QMP_TOKEN_MIN] = "STRING",
        [QMP_TOKEN_END_OF_INPUT - QMP_TOKEN_MIN] = "EOI",
    };

    if (type == QMP_TOKEN_ERROR) {
        return "ERROR";
    }
    if (type < QMP_TOKEN_MIN) {
        return "PARTIAL";
    }
    return names[type - QMP_TOKEN_MIN];
}

/* Bytes as C escapes: \\ \' \t \n \r \v \f, others as octal. */
static void
append_escaped(GString *out, const char *s, gsize len)
{
    /* byte, letter after the backslash */
    static const char named[][2] = {
        {'\\', '\\'}, {'\'', '\''}, {'\t', 't'}, {'\n', 'n'},
        {'\r', 'r'},  {'\v', 'v'},  {'\f', 'f'},
    };

    for (gsize i = 0; i < len; i++) {
        guint8 c = (guint8)s[i];
        gboolean done = FALSE;

        for (gsize j = 0; j < G_N_ELEMENTS(named) && !done; j++) {
            if (c == (guint8)named[j][0]) {
                g_string_append_c(out, '\\');
                g_string_append_c(out, named[j][1]);
                done = TRUE;
            }
        }
        if (done) {
            continue;
        }
        if (c < 0x20 || c >= 0x7F) {
            g_string_append_printf(out, "\\%03o", c);
        } else {
            g_string_append_c(out, (char)c);
        }
    }
}

typedef struct {
    GString *out;
    gboolean show_ws;
    gsize last_len;
} Trace;

static gboolean
trace_token(gpointer opaque, int type, const char *text, gsize len,
            const char *ws, gsize ws_len)
{
    Trace *t = opaque;

    if (t->out->len) {
        g_string_append_c(t->out, ' ');
    }
    if (t->show_ws && ws_len) {
        g_string_append(t->out, "ws'");
        append_escaped(t->out, ws, ws_len);
        g_string_append(t->out, "' ");
    }
    t->last_len = len;
    g_string_append_printf(t->out, "%s", type_name(type));
    if (len > 64) {
        g_string_append_printf(t->out, "(%zu bytes)", len);
    } else if (len) {
        g_string_append_c(t->out, '\'');
        append_escaped(t->out, text, len);
        g_string_append_c(t->out, '\'');
    }
    return TRUE;
}

/* The tokens of @input fed byte by byte, then (if @flush) flushed. */
static char *
lex_full(const char *input, gsize len, gboolean flush, gboolean show_ws)
{
    Trace t = {g_string_new(NULL), show_ws, 0};
    QmpLexer lexer;

    qmp_lexer_init(&lexer, trace_token, &t);
    for (gsize i = 0; i < len; i++) {
        qmp_lexer_feed(&lexer, input + i, 1);
    }
    if (flush) {
        qmp_lexer_flush(&lexer);
    }
    qmp_lexer_destroy(&lexer);
    return g_string_free(t.out, FALSE);
}

static char *
lex(const char *input)
{
    return lex_full(input, strlen(input), FALSE, FALSE);
}

#define assert_lex(input, expected)                                           \
    do {                                                                      \
        g_autofree char *got_ = lex(input);                                   \
        g_assert_cmpstr(got_, ==, expected);                                  \
    } while (0)

static void
test_structural(void)
{
    assert_lex("{}[]:,", "LCURLY'{' RCURLY'}' LSQUARE'[' RSQUARE']' "
                         "COLON':' COMMA','");
}

static void
test_whitespace(void)
{
    /* Exactly four whitespace characters; others are errors. */
    assert_lex(" \t\r\n{", "LCURLY'{'");
    assert_lex("\v", "ERROR'\\v'");
    assert_lex("\f", "ERROR'\\f'");
}

static void
test_whitespace_before_token_is_kept(void)
{
    g_autofree char *got = lex_full("[ \r\n1 ]", 7, FALSE, TRUE);

    g_assert_cmpstr(got, ==,
                    "LSQUARE'[' ws' \\r\\n' INTEGER'1' ws' ' RSQUARE']'");
}

static void
test_whitespace_run_is_bounded(void)
{
    g_autoptr(GString) in = g_string_new("[");
    g_autofree char *got = NULL;
    g_autofree char *expected = NULL;

    for (int i = 0; i < 1000; i++) {
        g_string_append_c(in, ' ');
    }
    g_string_append(in, "]");
    got = lex_full(in->str, in->len, FALSE, TRUE);
    expected = g_strdup_printf("LSQUARE'[' ws'%*s' RSQUARE']'",
                               QMP_LEXER_MAX_WS, "");
    g_assert_cmpstr(got, ==, expected);
}

static void
test_double_quoted_string(void)
{
    assert_lex("\"abc\"", "STRING'\"abc\"'");
    assert_lex("\"it's\"", "STRING'\"it\\'s\"'");
}

static void
test_single_quoted_string(void)
{
    /* A QEMU extension: 'x' is a string; "" inside needs no escape. */
    assert_lex("'a\"b'", "STRING'\\'a\"b\\''");
    assert_lex("'it\\'s'", "STRING'\\'it\\\\\\'s\\''");
}

static void
test_any_escape_is_lexed(void)
{
    /* The lexer accepts any byte after a backslash: the parser decides. */
    assert_lex("\"\\x\\u12\"", "STRING'\"\\\\x\\\\u12\"'");
    assert_lex("\"\\\"\"", "STRING'\"\\\\\"\"'");
}

static void
test_string_bytes(void)
{
    /* 0x20..0xFD are string bytes (UTF-8 is the parser's business). */
    assert_lex("\"\x7f\x80\xc0\xfd\"", "STRING'\"\\177\\200\\300\\375\"'");
    /* Control characters, FE and FF end the string with an error that
     * includes the offending byte. */
    assert_lex("\"a\tb\"", "ERROR'\"a\\t'");
    assert_lex("\"a\xfe", "ERROR'\"a\\376'");
    assert_lex("\"a\xff", "ERROR'\"a\\377'");
    /* After a backslash, too. */
    assert_lex("\"\\\n", "ERROR'\"\\\\\\n'");
}

static void
test_zero(void)
{
    assert_lex("0 ", "INTEGER'0'");
    assert_lex("-0 ", "INTEGER'-0'");
    /* No leading zeros: the second digit is the error. */
    assert_lex("01", "ERROR'01'");
    assert_lex("-00", "ERROR'-00'");
    /* Anything else ends the zero: 0x10 is 0, the keyword x, then 10. */
    assert_lex("0x10 ", "INTEGER'0' KEYWORD'x' INTEGER'10'");
}

static void
test_integers(void)
{
    assert_lex("123,", "INTEGER'123' COMMA','");
    assert_lex("-42]", "INTEGER'-42' RSQUARE']'");
    assert_lex("+1", "ERROR'+'");
    assert_lex("- ", "ERROR'- '");
    assert_lex("-a", "ERROR'-a'");
}

static void
test_mantissa(void)
{
    assert_lex("1.5 ", "FLOAT'1.5'");
    assert_lex("0.25}", "FLOAT'0.25' RCURLY'}'");
    /* A dot needs digits after it... */
    assert_lex("1. ", "ERROR'1. '");
    assert_lex("1.e5", "ERROR'1.e'");
    /* ...and before it. */
    assert_lex(".5", "ERROR'.'");
}

static void
test_exponent(void)
{
    assert_lex("1e5 ", "FLOAT'1e5'");
    assert_lex("1E+5 ", "FLOAT'1E+5'");
    assert_lex("2.5e-3 ", "FLOAT'2.5e-3'");
    assert_lex("1e ", "ERROR'1e '");
    assert_lex("1e+}", "ERROR'1e+}'");
}

static void
test_number_needs_no_flush_after_lookahead(void)
{
    /* A number ends only when a byte that cannot continue it arrives. */
    assert_lex("123", "");
    g_autofree char *got = lex_full("123", 3, TRUE, FALSE);
    g_assert_cmpstr(got, ==, "INTEGER'123' EOI");
}

static void
test_keywords(void)
{
    /* Any run of lowercase letters; the parser knows which are valid. */
    assert_lex("true,", "KEYWORD'true' COMMA','");
    assert_lex("nulll ", "KEYWORD'nulll'");
    assert_lex("abc1", "KEYWORD'abc'"); /* and 1 is pending */
    assert_lex("True", "ERROR'T'");
}

static void
test_stray_bytes(void)
{
    assert_lex("@", "ERROR'@'");
    assert_lex("%", "ERROR'%'");
    assert_lex("\xff", "ERROR'\\377'");
    assert_lex("\x80", "ERROR'\\200'");
}

static void
test_nul_is_an_error(void)
{
    g_autofree char *got = lex_full("\0", 1, FALSE, FALSE);

    /* The error token holds the NUL byte itself. */
    g_assert_cmpstr(got, ==, "ERROR'\\000'");
}

static void
test_recovery_skips_to_structural(void)
{
    /* After an error, bytes are skipped up to a structural character. */
    assert_lex("@abc\"def{", "ERROR'@' LCURLY'{'");
    assert_lex("@ab]", "ERROR'@' RSQUARE']'");
    assert_lex("@ab:", "ERROR'@' COLON':'");
    assert_lex("@ab,", "ERROR'@' COMMA','");
}

static void
test_recovery_ends_at_control(void)
{
    /* A control character other than tab ends recovery, unconsumed. */
    assert_lex("@ab\n1 ", "ERROR'@' INTEGER'1'");
    assert_lex("@ab\t1 ", "ERROR'@'");
    /* ...and a control character other than whitespace is itself an
     * error once back in the start state. */
    assert_lex("@\001", "ERROR'@' ERROR'\\001'");
}

static void
test_recovery_ends_at_ff(void)
{
    /* FE and FF end recovery, and are then errors themselves. */
    assert_lex("@ab\xff", "ERROR'@' ERROR'\\377'");
    assert_lex("@ab\xfe{", "ERROR'@' ERROR'\\376' LCURLY'{'");
}

static void
test_error_consumes_its_byte(void)
{
    /* The byte that caused the error belongs to the error token, so a
     * brace that ends a broken number does not resynchronise. */
    assert_lex("1e}{", "ERROR'1e}' LCURLY'{'");
    assert_lex("1e}1{", "ERROR'1e}' LCURLY'{'");
}

/* A token beyond 64 MiB is handed over unfinished, and lexing restarts. */
static void
test_token_size_limit(void)
{
    gsize n = QMP_LEXER_MAX_TOKEN_SIZE + 10;
    g_autofree char *in = g_malloc(n + 1);
    g_autofree char *got = NULL;

    in[0] = '"';
    memset(in + 1, 'a', n - 1);
    in[n] = ' ';
    Trace t = {g_string_new(NULL), FALSE, 0};
    QmpLexer lexer;

    qmp_lexer_init(&lexer, trace_token, &t);
    qmp_lexer_feed(&lexer, in, n + 1);
    qmp_lexer_destroy(&lexer);
    got = g_string_free(t.out, FALSE);
    /* 64 MiB + 1 bytes of string, then the rest lexes as a keyword. */
    g_assert_cmpstr(got, ==, "PARTIAL(67108865 bytes) KEYWORD'aaaaaaaaa'");
}

/*
 * The same limit when the string arrives in pieces (the lexer copies runs
 * of plain string bytes at once, and a run must stop at the limit), and a
 * string whose closing quote is the byte that reaches the limit + 1.
 */
static void
test_token_size_limit_chunked(void)
{
    gsize n = QMP_LEXER_MAX_TOKEN_SIZE + 10;
    g_autofree char *in = g_malloc(n + 1);
    g_autofree char *got = NULL;
    g_autofree char *exact = NULL;
    static const gsize chunks[] = {1, 4093, 65536, 1 << 20};

    in[0] = '"';
    memset(in + 1, 'a', n - 1);
    in[n] = ' ';
    for (guint c = 0; c < G_N_ELEMENTS(chunks); c++) {
        Trace t = {g_string_new(NULL), FALSE, 0};
        QmpLexer lexer;
        gsize step = chunks[c];

        qmp_lexer_init(&lexer, trace_token, &t);
        if (chunks[c] == 1) {
            /* Byte by byte around the limit only; in big pieces before. */
            gsize head = QMP_LEXER_MAX_TOKEN_SIZE - 3;

            qmp_lexer_feed(&lexer, in, head);
            for (gsize i = head; i <= n; i++) {
                qmp_lexer_feed(&lexer, in + i, 1);
            }
        } else {
            for (gsize i = 0; i <= n; i += step) {
                qmp_lexer_feed(&lexer, in + i, MIN(step, n + 1 - i));
            }
        }
        qmp_lexer_destroy(&lexer);
        g_free(got);
        got = g_string_free(t.out, FALSE);
        g_assert_cmpstr(got, ==, "PARTIAL(67108865 bytes) KEYWORD'aaaaaaaaa'");
    }

    /* Opening quote + 64 MiB - 1 bytes + closing quote: a whole string. */
    in[QMP_LEXER_MAX_TOKEN_SIZE] = '"';
    in[QMP_LEXER_MAX_TOKEN_SIZE + 1] = ' ';
    {
        Trace t = {g_string_new(NULL), FALSE, 0};
        QmpLexer lexer;

        qmp_lexer_init(&lexer, trace_token, &t);
        qmp_lexer_feed(&lexer, in, QMP_LEXER_MAX_TOKEN_SIZE + 2);
        qmp_lexer_feed(&lexer, "1 ", 2);
        qmp_lexer_destroy(&lexer);
        exact = g_string_free(t.out, FALSE);
    }
    g_assert_cmpstr(exact, ==, "STRING(67108865 bytes) INTEGER'1'");
}

static void
test_flush(void)
{
    g_autofree char *a = lex_full("-", 1, TRUE, FALSE);
    g_autofree char *b = lex_full("\"ab", 3, TRUE, FALSE);
    g_autofree char *c = lex_full("nul", 3, TRUE, FALSE);

    /* Flushing completes what can be completed and reports the rest. */
    g_assert_cmpstr(a, ==, "ERROR'-' EOI");
    g_assert_cmpstr(b, ==, "ERROR'\"ab' EOI");
    g_assert_cmpstr(c, ==, "KEYWORD'nul' EOI");
}

static gboolean
stop_after_first(gpointer opaque, int type, const char *text, gsize len,
                 const char *ws, gsize ws_len)
{
    int *count = opaque;

    (*count)++;
    return FALSE;
}

static void
test_callback_can_stop(void)
{
    QmpLexer lexer;
    int count = 0;

    qmp_lexer_init(&lexer, stop_after_first, &count);
    g_assert_cmpuint(qmp_lexer_feed(&lexer, "[1,2]", 5), ==, 1);
    g_assert_cmpint(count, ==, 1);
    qmp_lexer_destroy(&lexer);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/lexer/structural", test_structural);
    g_test_add_func("/qmp/lexer/whitespace", test_whitespace);
    g_test_add_func("/qmp/lexer/whitespace-kept",
                    test_whitespace_before_token_is_kept);
    g_test_add_func("/qmp/lexer/whitespace-bounded",
                    test_whitespace_run_is_bounded);
    g_test_add_func("/qmp/lexer/string/double-quoted",
                    test_double_quoted_string);
    g_test_add_func("/qmp/lexer/string/single-quoted",
                    test_single_quoted_string);
    g_test_add_func("/qmp/lexer/string/any-escape", test_any_escape_is_lexed);
    g_test_add_func("/qmp/lexer/string/bytes", test_string_bytes);
    g_test_add_func("/qmp/lexer/number/zero", test_zero);
    g_test_add_func("/qmp/lexer/number/integer", test_integers);
    g_test_add_func("/qmp/lexer/number/mantissa", test_mantissa);
    g_test_add_func("/qmp/lexer/number/exponent", test_exponent);
    g_test_add_func("/qmp/lexer/number/lookahead",
                    test_number_needs_no_flush_after_lookahead);
    g_test_add_func("/qmp/lexer/keywords", test_keywords);
    g_test_add_func("/qmp/lexer/stray", test_stray_bytes);
    g_test_add_func("/qmp/lexer/nul", test_nul_is_an_error);
    g_test_add_func("/qmp/lexer/recovery/structural",
                    test_recovery_skips_to_structural);
    g_test_add_func("/qmp/lexer/recovery/control",
                    test_recovery_ends_at_control);
    g_test_add_func("/qmp/lexer/recovery/ff", test_recovery_ends_at_ff);
    g_test_add_func("/qmp/lexer/recovery/error-consumes",
                    test_error_consumes_its_byte);
    g_test_add_func("/qmp/lexer/limit/token-size", test_token_size_limit);
    g_test_add_func("/qmp/lexer/limit/token-size-chunked",
                    test_token_size_limit_chunked);
    g_test_add_func("/qmp/lexer/flush", test_flush);
    g_test_add_func("/qmp/lexer/callback-stop", test_callback_can_stop);
    return g_test_run();
}
