/*
 * json-lexer.c: QEMU's JSON lexer, byte for byte
 *
 * A table-driven state machine with the states and transitions of QEMU
 * 7.2's qobject/json-lexer.c (without the %-interpolation states, which
 * QEMU only enables for its own format strings, never for QMP input).
 * Each byte is looked up in a 256-entry row of the current state; an entry
 * is either a next state, a token type (the token is complete), or
 * QMP_TOKEN_ERROR; LOOKAHEAD marks transitions that do not consume the
 * byte, which is then looked up again in the new state.  Rules QEMU
 * clients can rely on, and which this file therefore keeps:
 *
 * - strings are double- or single-quoted; any byte 0x20..0xFD may appear
 *   in them, and after a backslash any such byte is accepted (the parser,
 *   not the lexer, rejects bad escapes);
 * - numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, and a digit
 *   right after a leading zero is an error;
 * - keywords are [a-z]+ (the parser decides which are valid);
 * - whitespace is ' ', '\t', '\r', '\n';
 * - on an error the offending byte is part of the error token, and the
 *   lexer then skips bytes until a structural character ([]{},:), a
 *   control character other than '\t', or 0xFE/0xFF, each of which starts
 *   afresh without being skipped;
 * - a token growing beyond 64 MiB is handed over with the current state as
 *   its type and the lexer starts afresh with the next byte.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/json-lexer.h"

#include <string.h>

enum {
    IN_RECOVERY = 1,
    IN_DQ_STRING_ESCAPE,
    IN_DQ_STRING,
    IN_SQ_STRING_ESCAPE,
    IN_SQ_STRING,
    IN_ZERO,
    IN_EXP_DIGITS,
    IN_EXP_SIGN,
    IN_EXP_E,
    IN_MANTISSA,
    IN_MANTISSA_DIGITS,
    IN_DIGITS,
    IN_SIGN,
    IN_KEYWORD,
    IN_START,
    IN__LAST,
};
G_STATIC_ASSERT((int)IN__LAST <= (int)QMP_TOKEN_MIN);
G_STATIC_ASSERT(QMP_TOKEN_MAX < 0x80);

#define LOOKAHEAD 0x80

static guint8 lexer_table[IN__LAST][256];

static void
set_range(guint8 *row, guint lo, guint hi, guint8 next)
{
    for (guint c = lo; c <= hi; c++) {
        row[c] = next;
    }
}

/* Rows a TERMINAL() state in QEMU: any byte ends the token, unconsumed. */
static void
set_terminal(guint8 *row, guint8 type)
{
    set_range(row, 0, 0xFF, type | LOOKAHEAD);
}

/*
 * Build the transition table.  Entries not set stay 0, QMP_TOKEN_ERROR,
 * exactly as QEMU relies on default initialization.
 */
static void
lexer_table_build(void)
{
    guint8 *row;

    row = lexer_table[IN_RECOVERY];
    set_range(row, 0, 0x1F, IN_START | LOOKAHEAD);
    set_range(row, 0x20, 0xFD, IN_RECOVERY);
    set_range(row, 0xFE, 0xFF, IN_START | LOOKAHEAD);
    row['\t'] = IN_RECOVERY;
    row['['] = row[']'] = row['{'] = row['}'] = IN_START | LOOKAHEAD;
    row[':'] = row[','] = IN_START | LOOKAHEAD;

    set_range(lexer_table[IN_DQ_STRING_ESCAPE], 0x20, 0xFD, IN_DQ_STRING);
    row = lexer_table[IN_DQ_STRING];
    set_range(row, 0x20, 0xFD, IN_DQ_STRING);
    row['\\'] = IN_DQ_STRING_ESCAPE;
    row['"'] = QMP_TOKEN_STRING;

    set_range(lexer_table[IN_SQ_STRING_ESCAPE], 0x20, 0xFD, IN_SQ_STRING);
    row = lexer_table[IN_SQ_STRING];
    set_range(row, 0x20, 0xFD, IN_SQ_STRING);
    row['\\'] = IN_SQ_STRING_ESCAPE;
    row['\''] = QMP_TOKEN_STRING;

    row = lexer_table[IN_ZERO];
    set_terminal(row, QMP_TOKEN_INTEGER);
    set_range(row, '0', '9', QMP_TOKEN_ERROR);
    row['.'] = IN_MANTISSA;

    row = lexer_table[IN_EXP_DIGITS];
    set_terminal(row, QMP_TOKEN_FLOAT);
    set_range(row, '0', '9', IN_EXP_DIGITS);

    set_range(lexer_table[IN_EXP_SIGN], '0', '9', IN_EXP_DIGITS);

    row = lexer_table[IN_EXP_E];
    row['-'] = row['+'] = IN_EXP_SIGN;
    set_range(row, '0', '9', IN_EXP_DIGITS);

    row = lexer_table[IN_MANTISSA_DIGITS];
    set_terminal(row, QMP_TOKEN_FLOAT);
    set_range(row, '0', '9', IN_MANTISSA_DIGITS);
    row['e'] = row['E'] = IN_EXP_E;

    set_range(lexer_table[IN_MANTISSA], '0', '9', IN_MANTISSA_DIGITS);

    row = lexer_table[IN_DIGITS];
    set_terminal(row, QMP_TOKEN_INTEGER);
    set_range(row, '0', '9', IN_DIGITS);
    row['e'] = row['E'] = IN_EXP_E;
    row['.'] = IN_MANTISSA;

    row = lexer_table[IN_SIGN];
    row['0'] = IN_ZERO;
    set_range(row, '1', '9', IN_DIGITS);

    row = lexer_table[IN_KEYWORD];
    set_terminal(row, QMP_TOKEN_KEYWORD);
    set_range(row, 'a', 'z', IN_KEYWORD);

    row = lexer_table[IN_START];
    row['"'] = IN_DQ_STRING;
    row['\''] = IN_SQ_STRING;
    row['0'] = IN_ZERO;
    set_range(row, '1', '9', IN_DIGITS);
    row['-'] = IN_SIGN;
    row['{'] = QMP_TOKEN_LCURLY;
    row['}'] = QMP_TOKEN_RCURLY;
    row['['] = QMP_TOKEN_LSQUARE;
    row[']'] = QMP_TOKEN_RSQUARE;
    row[','] = QMP_TOKEN_COMMA;
    row[':'] = QMP_TOKEN_COLON;
    set_range(row, 'a', 'z', IN_KEYWORD);
    row[' '] = row['\t'] = row['\r'] = row['\n'] = IN_START;
}

void
qmp_lexer_init(QmpLexer *lexer, QmpLexerEmit emit, gpointer opaque)
{
    static gsize table_ready;

    if (g_once_init_enter(&table_ready)) {
        lexer_table_build();
        g_once_init_leave(&table_ready, 1);
    }
    memset(lexer, 0, sizeof(*lexer));
    lexer->state = IN_START;
    lexer->token = g_string_sized_new(64);
    lexer->emit = emit;
    lexer->opaque = opaque;
}

void
qmp_lexer_destroy(QmpLexer *lexer)
{
    if (lexer->token) {
        g_string_free(lexer->token, TRUE);
        lexer->token = NULL;
    }
}

gboolean
qmp_lexer_state_is_start(const QmpLexer *lexer)
{
    return lexer->state == IN_START;
}

/* Hand the current token over and forget it and the whitespace before it. */
static gboolean
lexer_emit(QmpLexer *lexer, int type)
{
    gboolean go_on = lexer->emit(lexer->opaque, type, lexer->token->str,
                                 lexer->token->len, lexer->ws, lexer->ws_len);

    /* g_string_truncate(token, 0), without a call per token. */
    lexer->token->len = 0;
    lexer->token->str[0] = '\0';
    lexer->ws_len = 0;
    return go_on;
}

/*
 * One byte, or the flush pseudo-byte: QEMU's json_lexer_feed_char().
 * Returns FALSE when the callback asked to stop.
 */
static gboolean
lexer_feed_char(QmpLexer *lexer, guint8 ch, gboolean flush)
{
    gboolean consumed = FALSE;
    gboolean go_on = TRUE;

    while (flush ? lexer->state != IN_START : !consumed) {
        guint8 next = lexer_table[lexer->state][flush ? 0 : ch];
        guint8 new_state = next & ~LOOKAHEAD;

        consumed = !flush && !(next & LOOKAHEAD);
        if (consumed) {
            if (new_state == IN_START) {
                /* Whitespace between tokens: remember a bounded run. */
                if (lexer->ws_len < QMP_LEXER_MAX_WS) {
                    lexer->ws[lexer->ws_len++] = (char)ch;
                }
            } else if (new_state != IN_RECOVERY) {
                g_string_append_c(lexer->token, (char)ch);
            }
        }

        if (new_state >= QMP_TOKEN_MIN) {
            go_on = lexer_emit(lexer, new_state) && go_on;
            new_state = IN_START;
        } else if (new_state == QMP_TOKEN_ERROR) {
            go_on = lexer_emit(lexer, QMP_TOKEN_ERROR) && go_on;
            new_state = IN_RECOVERY;
        } else if (new_state == IN_RECOVERY) {
            g_string_truncate(lexer->token, 0);
        }
        lexer->state = new_state;
    }

    /* A single token may not grow without bound (QEMU: security). */
    if (lexer->token->len > QMP_LEXER_MAX_TOKEN_SIZE) {
        go_on = lexer_emit(lexer, lexer->state) && go_on;
        lexer->state = IN_START;
    }
    return go_on;
}

/*
 * The common case inside a string: a run of ordinary bytes, each of which
 * leaves the state as it is and only grows the token.  Append the run in
 * one go; returns how many bytes it took.  The run stops where the token
 * would outgrow QMP_LEXER_MAX_TOKEN_SIZE, so the byte that crosses the
 * limit still goes through lexer_feed_char(), which hands the token over.
 */
static gsize
lexer_string_run(QmpLexer *lexer, const guint8 *p, gsize len)
{
    const guint8 *row = lexer_table[lexer->state];
    GString *token = lexer->token;
    gsize n = 0;

    if (token->len >= QMP_LEXER_MAX_TOKEN_SIZE) {
        return 0;
    }
    if (len > QMP_LEXER_MAX_TOKEN_SIZE - token->len) {
        len = QMP_LEXER_MAX_TOKEN_SIZE - token->len;
    }
    while (n < len && row[p[n]] == lexer->state) {
        n++;
    }
    if (n == 0) {
        return 0;
    }
    if (token->len + n < token->allocated_len) {
        memcpy(token->str + token->len, p, n);
        token->len += n;
        token->str[token->len] = '\0';
    } else {
        g_string_append_len(token, (const char *)p, (gssize)n);
    }
    return n;
}

gsize
qmp_lexer_feed(QmpLexer *lexer, const char *buf, gsize len)
{
    const guint8 *p = (const guint8 *)buf;
    const guint8 *start_row = lexer_table[IN_START];
    gsize i = 0;

    while (i < len) {
        if (lexer->state == IN_START) {
            guint8 next = start_row[p[i]];

            /*
             * Between tokens (the token buffer is empty here): whitespace
             * and one-byte tokens do in one step what lexer_feed_char()
             * does for them.
             */
            if (next == IN_START) {
                if (lexer->ws_len < QMP_LEXER_MAX_WS) {
                    lexer->ws[lexer->ws_len++] = (char)p[i];
                }
                i++;
                continue;
            }
            if (next >= QMP_TOKEN_MIN && !(next & LOOKAHEAD)) {
                lexer->token->str[0] = (char)p[i++];
                lexer->token->str[1] = '\0';
                lexer->token->len = 1;
                if (!lexer_emit(lexer, next)) {
                    break;
                }
                continue;
            }
        } else if (lexer->state == IN_DQ_STRING ||
                   lexer->state == IN_SQ_STRING) {
            i += lexer_string_run(lexer, p + i, len - i);
            if (i == len) {
                break;
            }
        }
        if (!lexer_feed_char(lexer, p[i++], FALSE)) {
            break;
        }
    }
    return i;
}

void
qmp_lexer_flush(QmpLexer *lexer)
{
    lexer_feed_char(lexer, 0, TRUE);
    lexer_emit(lexer, QMP_TOKEN_END_OF_INPUT);
}
