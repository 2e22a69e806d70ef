/*
 * json-parser.h: QEMU's JSON parser over a message's tokens
 *
 * The third stage of the framing layer.  Once the streamer has collected
 * the tokens of one message, the parser decides, with the rules and error
 * texts of QEMU 7.2's qobject/json-parser.c, whether they form a value:
 * the first error found wins, and strings are checked escape by escape and
 * byte by byte (modified UTF-8).  It can also build a QmpJson tree, which
 * the helper needs only for values it must understand itself.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <string.h>
#include "qmp/json-lexer.h"
#include "qmp/json-value.h"

/* One token of a message: @len bytes at @offset of the message text. */
typedef struct {
    guint32 offset;
    guint32 len;
    guint8 type; /* QmpTokenType */
} QmpJsonToken;

/**
 * qmp_json_parse_tokens - check (and optionally build) one JSON value
 * @text: the message text the tokens point into
 * @tokens: the tokens, in order
 * @n_tokens: how many
 * @tree: if not NULL, set to the value's tree on success
 * @error_text: set to QEMU's error text ("JSON parse error, ...") on
 *     failure
 *
 * Every token must be a real token type (QMP_TOKEN_LCURLY ..
 * QMP_TOKEN_STRING).  Recursion depth is bounded by the nesting of the
 * tokens; callers pass at most QMP_JSON_MAX_NESTING levels (the streamer
 * guarantees it).
 *
 * Returns TRUE when the tokens form exactly one valid value.
 */
gboolean qmp_json_parse_tokens(const char *text, const QmpJsonToken *tokens,
                               gsize n_tokens, QmpJson **tree,
                               char **error_text);

/* Buffers qmp_json_parse_tokens_reuse() keeps from one message to the next. */
typedef struct {
    GString *keys;   /* decoded keys of the open objects */
    gpointer spans;  /* where each key is in keys (parser-private) */
    guint n_spans;
    guint spans_cap;
} QmpJsonParserScratch;

/**
 * qmp_json_parse_tokens_reuse - qmp_json_parse_tokens() without allocating
 * @scratch: zero-initialized once, then passed to every call; release it
 *     with qmp_json_parser_scratch_clear()
 *
 * Same result as qmp_json_parse_tokens(); the buffers that check object
 * keys for duplicates are kept in @scratch instead of being allocated per
 * key and per message.
 */
gboolean qmp_json_parse_tokens_reuse(const char *text,
                                     const QmpJsonToken *tokens,
                                     gsize n_tokens, QmpJson **tree,
                                     char **error_text,
                                     QmpJsonParserScratch *scratch);

void qmp_json_parser_scratch_clear(QmpJsonParserScratch *scratch);

/**
 * qmp_json_unescape_string - decode a string token QEMU's way
 * @token: the token's bytes, quotes included
 * @len: its length
 * @out: the decoded string is appended here (modified UTF-8), or NULL to
 *     only check
 * @error_text: set to the text after "JSON parse error, " on failure
 *
 * Returns TRUE when the string is valid.
 */
gboolean qmp_json_unescape_string(const char *token, gsize len, GString *out,
                                  char **error_text);

/**
 * qmp_json_number_type - classify a number token as QEMU's parser does
 * @token: the bytes of an INTEGER or FLOAT token
 * @len: its length
 * @is_float: whether the lexer said FLOAT
 * @value: if not NULL, receives the value (type INT, UINT or DOUBLE)
 *
 * Returns QMP_JSON_INT when it fits gint64, QMP_JSON_UINT when it is
 * non-negative and fits guint64, otherwise QMP_JSON_DOUBLE (strtod).
 */
QmpJsonType qmp_json_number_type(const char *token, gsize len,
                                 gboolean is_float, QmpJson *value);

/* g_string_append_len() without a library call when it fits: the lexer
 * and parser append a few bytes at a time on every client message. */
static inline void
qmp_string_append(GString *out, const char *p, gsize n)
{
    if (out->len + n < out->allocated_len) {
        memcpy(out->str + out->len, p, n);
        out->len += n;
        out->str[out->len] = '\0';
    } else {
        g_string_append_len(out, p, (gssize)n);
    }
}
