/*
 * json-lexer.h: QEMU's JSON lexer, byte for byte
 *
 * The first stage of the framing layer.  It turns the bytes a client sends
 * into JSON tokens with exactly the state machine of QEMU 7.2's
 * qobject/json-lexer.c, so that every stray byte, every recovery point and
 * every oversized token is reported where QEMU would report it.  It knows
 * nothing of messages: the streamer (json-streamer.c) counts brackets,
 * applies the limits and calls the parser.
 *
 * The lexer also remembers the whitespace that precedes each token (up to
 * QMP_LEXER_MAX_WS bytes of a run), so the streamer can keep a message's
 * bytes close to what the client sent without unbounded memory.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/*
 * Token types, numbered as QEMU numbers them: 0 is an error, lexer states
 * are small numbers, token types start at 100.  A token of a type below
 * QMP_TOKEN_MIN other than QMP_TOKEN_ERROR is an oversized token cut off
 * in that lexer state (see qmp_lexer_feed()).
 */
typedef enum {
    QMP_TOKEN_ERROR = 0,
    QMP_TOKEN_LCURLY = 100,
    QMP_TOKEN_MIN = QMP_TOKEN_LCURLY,
    QMP_TOKEN_RCURLY,
    QMP_TOKEN_LSQUARE,
    QMP_TOKEN_RSQUARE,
    QMP_TOKEN_COLON,
    QMP_TOKEN_COMMA,
    QMP_TOKEN_INTEGER,
    QMP_TOKEN_FLOAT,
    QMP_TOKEN_KEYWORD,
    QMP_TOKEN_STRING,
    QMP_TOKEN_END_OF_INPUT,
    QMP_TOKEN_MAX = QMP_TOKEN_END_OF_INPUT,
} QmpTokenType;

/* QEMU's MAX_TOKEN_SIZE: a token longer than this is cut off. */
#define QMP_LEXER_MAX_TOKEN_SIZE (64ULL << 20)
/* How much of a whitespace run before a token is remembered. */
#define QMP_LEXER_MAX_WS 64

/**
 * QmpLexerEmit - called once per token
 * @opaque: the lexer's opaque pointer
 * @type: a QmpTokenType, or a lexer state for a cut-off oversized token
 * @text: the token's bytes, NUL-terminated (it may contain NUL bytes
 *     itself, e.g. the stray byte of an error)
 * @len: number of bytes in @text
 * @ws: whitespace seen since the previous token (at most QMP_LEXER_MAX_WS
 *     bytes of it)
 * @ws_len: number of bytes in @ws
 *
 * Returns FALSE to make the lexer stop consuming the current buffer.
 */
typedef gboolean (*QmpLexerEmit)(gpointer opaque, int type, const char *text,
                                 gsize len, const char *ws, gsize ws_len);

typedef struct {
    guint8 state;
    GString *token;
    char ws[QMP_LEXER_MAX_WS];
    gsize ws_len;
    QmpLexerEmit emit;
    gpointer opaque;
} QmpLexer;

/**
 * qmp_lexer_init - prepare @lexer for a new stream
 * @lexer: storage for the lexer
 * @emit: token callback
 * @opaque: passed to @emit
 */
void qmp_lexer_init(QmpLexer *lexer, QmpLexerEmit emit, gpointer opaque);

/**
 * qmp_lexer_destroy - release what qmp_lexer_init() allocated
 * @lexer: the lexer
 */
void qmp_lexer_destroy(QmpLexer *lexer);

/**
 * qmp_lexer_feed - run the state machine over @len bytes of @buf
 * @lexer: the lexer
 * @buf: the bytes (any values, NUL included)
 * @len: how many
 *
 * Calls the emit callback once per completed token, once per lexical
 * error (type QMP_TOKEN_ERROR; the offending byte is the last byte of the
 * text), and once per token that grew beyond QMP_LEXER_MAX_TOKEN_SIZE
 * (type = the lexer state; the lexer then starts afresh).
 *
 * Returns the number of bytes consumed: @len, unless the callback asked
 * to stop.
 */
gsize qmp_lexer_feed(QmpLexer *lexer, const char *buf, gsize len);

/**
 * qmp_lexer_flush - end of input: finish the pending token
 * @lexer: the lexer
 *
 * Terminates a pending number or keyword (or reports the pending partial
 * token as an error), then emits QMP_TOKEN_END_OF_INPUT, as QEMU's
 * json_lexer_flush() does.  QEMU's monitor never flushes; this is for
 * parsing a complete, self-contained value.
 */
void qmp_lexer_flush(QmpLexer *lexer);

/**
 * qmp_lexer_state_is_start - whether no token is in progress
 * @lexer: the lexer
 */
gboolean qmp_lexer_state_is_start(const QmpLexer *lexer);
