/*
 * json-streamer.c: find QMP messages in a client's byte stream, as QEMU does
 *
 * The second stage of the framing layer, between the lexer and the parser,
 * with the logic of QEMU 7.2's qobject/json-streamer.c: every token goes
 * into the message in progress; braces and brackets are counted; once both
 * counts are back to zero (or one went negative) the tokens are parsed and
 * the message or the parse error is handed out.  Before a token is added,
 * three limits are checked in QEMU's order (total token bytes, token
 * count, nesting depth); a lexical error or an exceeded limit throws the
 * message in progress away and reports the error.  Like QEMU, the streamer
 * does not touch the lexer's state when it starts over, so after an error
 * the lexer's own recovery decides where the next message begins.
 *
 * Unlike QEMU, the streamer keeps the message's bytes (tokens plus at most
 * QMP_LEXER_MAX_WS bytes of each whitespace run between them, and less once
 * the whitespace outweighs the tokens) so the proxy can forward the
 * message as the client wrote it, and for an object it finds the byte spans
 * of the top-level members.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/json-streamer.h"

#include <string.h>

#include "qmp/json-lexer.h"
#include "qmp/json-parser.h"

G_STATIC_ASSERT(QMP_JSON_MAX_TOKEN_SIZE == QMP_LEXER_MAX_TOKEN_SIZE);

/* Whitespace allowed in a message beyond its token bytes, see keep_ws(). */
#define WS_SLACK (64 * 1024)

const QmpJsonLimits qmp_json_qemu_limits = {
    .token_size = QMP_JSON_MAX_TOKEN_SIZE,
    .token_count = QMP_JSON_MAX_TOKEN_COUNT,
    .nesting = QMP_JSON_MAX_NESTING,
};

struct QmpStreamer {
    QmpLexer lexer;
    const QmpJsonLimits *limits;
    QmpStreamerEmit emit;
    gpointer opaque;

    GString *text;     /* the message in progress: tokens and whitespace */
    QmpJsonToken *tokens; /* offsets into text; n_tokens of tokens_cap */
    guint n_tokens;
    guint tokens_cap;
    gint64 brace_count;
    gint64 bracket_count;
    gsize token_size;  /* sum of token lengths, QEMU's parser->token_size */
    gsize ws_size;     /* whitespace bytes kept in text */

    /* Kept from one message to the next, so that checking and describing
     * a message allocates nothing in the common case. */
    QmpJsonParserScratch scratch; /* the parser's duplicate-key buffers */
    GArray *member_store;  /* QmpMessageMember of the current message */
    GString *keys;         /* the members' decoded keys, NUL-separated */

    QmpJson **tree;    /* qmp_json_parse_value(): build the tree here */
    guint busy;        /* inside qmp_streamer_feed() */
    gboolean doomed;   /* freed from a callback: free when feed returns */
};

/* Start a new message: QEMU's out_emit reset. */
static void
streamer_reset(QmpStreamer *s)
{
    s->brace_count = 0;
    s->bracket_count = 0;
    s->token_size = 0;
    s->ws_size = 0;
    s->n_tokens = 0;
    /* Nor a huge token array. */
    if (s->tokens_cap > 4096) {
        g_clear_pointer(&s->tokens, g_free);
        s->tokens_cap = 0;
    }
    g_string_truncate(s->text, 0);
    /* Do not keep a huge buffer around after a huge message. */
    if (s->text->allocated_len > 1024 * 1024) {
        g_string_free(s->text, TRUE);
        s->text = g_string_sized_new(256);
    }
}

/* Hand an error out; the message in progress is already gone. */
static void
streamer_emit_error(QmpStreamer *s, const char *text)
{
    streamer_reset(s);
    if (s->emit) {
        s->emit(s->opaque, NULL, text);
    }
}

/*
 * Index of the last token of the value starting at token @i (a matching
 * bracket for objects and arrays).  The tokens form a valid value.
 */
static guint
value_end(const QmpJsonToken *tok, guint n, guint i)
{
    gint64 depth = 0;

    for (; i < n; i++) {
        if (tok[i].type == QMP_TOKEN_LCURLY ||
            tok[i].type == QMP_TOKEN_LSQUARE) {
            depth++;
        } else if (tok[i].type == QMP_TOKEN_RCURLY ||
                   tok[i].type == QMP_TOKEN_RSQUARE) {
            depth--;
        }
        if (depth <= 0) {
            return i;
        }
    }
    return n - 1;
}

static QmpJsonType
value_type(const char *text, const QmpJsonToken *t)
{
    switch (t->type) {
    case QMP_TOKEN_LCURLY:
        return QMP_JSON_OBJECT;
    case QMP_TOKEN_LSQUARE:
        return QMP_JSON_ARRAY;
    case QMP_TOKEN_STRING:
        return QMP_JSON_STRING;
    case QMP_TOKEN_KEYWORD:
        return text[t->offset] == 'n' ? QMP_JSON_NULL : QMP_JSON_BOOL;
    default:
        return qmp_json_number_type(text + t->offset, t->len,
                                    t->type == QMP_TOKEN_FLOAT, NULL);
    }
}

/*
 * The top-level members of a valid object message, in input order, into
 * the streamer's reused buffers (valid until the next message).
 */
static guint
find_members(QmpStreamer *s, const char *text, const QmpJsonToken *tok,
             guint n)
{
    QmpMessageMember *store;
    guint i = 1; /* after '{' */
    guint count;

    g_array_set_size(s->member_store, 0);
    g_string_truncate(s->keys, 0);
    while (i + 2 < n && tok[i].type == QMP_TOKEN_STRING) {
        QmpMessageMember m = {0};
        g_autofree char *unused = NULL;
        guint v = i + 2, end;

        /* The key's offset in s->keys for now; a pointer below. */
        m.key = GSIZE_TO_POINTER(s->keys->len);
        qmp_json_unescape_string(text + tok[i].offset, tok[i].len, s->keys,
                                 &unused);
        m.key_len = s->keys->len - GPOINTER_TO_SIZE(m.key);
        g_string_append_c(s->keys, '\0');
        end = value_end(tok, n, v);
        m.key_offset = tok[i].offset;
        m.value_offset = tok[v].offset;
        m.value_len = tok[end].offset + tok[end].len - tok[v].offset;
        m.value_type = value_type(text, &tok[v]);
        g_array_append_val(s->member_store, m);
        i = end + 2; /* skip ',' */
    }
    /* Both buffers are complete: no more moves, pointers are stable. */
    store = (QmpMessageMember *)s->member_store->data;
    count = s->member_store->len;
    for (guint j = 0; j < count; j++) {
        store[j].key = s->keys->str + GPOINTER_TO_SIZE(store[j].key);
    }
    return count;
}

/* Drop the member buffers after a message with very many members. */
static void
members_trim(QmpStreamer *s)
{
    if (s->member_store->len > 1024 || s->keys->allocated_len > 64 * 1024) {
        g_array_unref(s->member_store);
        g_string_free(s->keys, TRUE);
        s->member_store = g_array_new(FALSE, FALSE, sizeof(QmpMessageMember));
        s->keys = g_string_sized_new(64);
    }
}

/* The tokens balance: parse them and hand the message or error out. */
static void
streamer_parse(QmpStreamer *s)
{
    const QmpJsonToken *tok = s->tokens;
    guint n = s->n_tokens;
    char *error = NULL;
    QmpMessage msg = {0};

    if (!qmp_json_parse_tokens_reuse(s->text->str, tok, n, s->tree, &error,
                                     &s->scratch)) {
        streamer_emit_error(s, error);
        g_free(error);
        return;
    }
    msg.data = s->text->str;
    msg.len = s->text->len;
    msg.n_tokens = n;
    msg.token_size = s->token_size;
    msg.type = value_type(s->text->str, &tok[0]);
    if (msg.type == QMP_JSON_OBJECT) {
        msg.n_members = find_members(s, s->text->str, tok, n);
        msg.members = (const QmpMessageMember *)s->member_store->data;
    }
    s->tree = NULL; /* only the first value */
    if (s->emit) {
        s->emit(s->opaque, &msg, NULL);
    }
    if (msg.type == QMP_JSON_OBJECT) {
        members_trim(s);
    }
    streamer_reset(s);
}

/*
 * How much of a whitespace run of @ws_len bytes to keep: the lexer already
 * cut runs to QMP_LEXER_MAX_WS bytes; once the message holds more
 * whitespace than token bytes plus WS_SLACK, keep one byte per run, so the
 * message stays within a small multiple of the token size limit.
 */
static gsize
keep_ws(const QmpStreamer *s, gsize ws_len)
{
    if (s->ws_size + ws_len > s->token_size + WS_SLACK) {
        return ws_len ? 1 : 0;
    }
    return ws_len;
}

/* QEMU's json_message_process_token(). */
static gboolean
streamer_token(gpointer opaque, int type, const char *text, gsize len,
               const char *ws, gsize ws_len)
{
    QmpStreamer *s = opaque;
    QmpJsonToken *token;
    gsize keep;

    if (s->doomed) {
        return FALSE; /* the owner freed us from a callback */
    }
    switch (type) {
    case QMP_TOKEN_LCURLY:
        s->brace_count++;
        break;
    case QMP_TOKEN_RCURLY:
        s->brace_count--;
        break;
    case QMP_TOKEN_LSQUARE:
        s->bracket_count++;
        break;
    case QMP_TOKEN_RSQUARE:
        s->bracket_count--;
        break;
    case QMP_TOKEN_ERROR: {
        /* QEMU prints the token with %s: it ends at a NUL byte. */
        g_autofree char *error =
            g_strdup_printf("JSON parse error, stray '%s'", text);

        streamer_emit_error(s, error);
        return !s->doomed;
    }
    case QMP_TOKEN_END_OF_INPUT:
        if (s->n_tokens > 0) {
            streamer_parse(s);
        }
        return !s->doomed;
    default:
        break;
    }

    /* Limits on what one message may cost, in QEMU's order. */
    if (s->token_size + len + 1 > s->limits->token_size) {
        streamer_emit_error(s, "JSON token size limit exceeded");
        return !s->doomed;
    }
    if ((guint64)s->n_tokens + 1 > s->limits->token_count) {
        streamer_emit_error(s, "JSON token count limit exceeded");
        return !s->doomed;
    }
    if (s->bracket_count + s->brace_count > s->limits->nesting) {
        streamer_emit_error(s, "JSON nesting depth limit exceeded");
        return !s->doomed;
    }

    if (s->n_tokens > 0 && ws_len > 0) {
        keep = keep_ws(s, ws_len);
        qmp_string_append(s->text, ws, keep);
        s->ws_size += keep;
    }
    if (s->n_tokens == s->tokens_cap) {
        s->tokens_cap = s->tokens_cap ? s->tokens_cap * 2 : 64;
        s->tokens = g_renew(QmpJsonToken, s->tokens, s->tokens_cap);
    }
    token = &s->tokens[s->n_tokens++];
    token->offset = (guint32)s->text->len;
    token->len = (guint32)len;
    token->type = (guint8)type;
    qmp_string_append(s->text, text, len);
    s->token_size += len;

    if ((s->brace_count > 0 || s->bracket_count > 0) &&
        s->brace_count >= 0 && s->bracket_count >= 0) {
        return TRUE;
    }
    streamer_parse(s);
    return !s->doomed;
}

QmpStreamer *
qmp_streamer_new(QmpStreamerEmit emit, gpointer opaque)
{
    QmpStreamer *s = g_new0(QmpStreamer, 1);

    qmp_lexer_init(&s->lexer, streamer_token, s);
    s->emit = emit;
    s->opaque = opaque;
    s->limits = &qmp_json_qemu_limits;
    s->text = g_string_sized_new(256);
    s->member_store = g_array_new(FALSE, FALSE, sizeof(QmpMessageMember));
    s->keys = g_string_sized_new(64);
    return s;
}

void
qmp_streamer_free(QmpStreamer *s)
{
    if (!s) {
        return;
    }
    if (s->busy) {
        /* Called from the emit callback: finish when feed returns. */
        s->doomed = TRUE;
        return;
    }
    qmp_lexer_destroy(&s->lexer);
    g_string_free(s->text, TRUE);
    g_free(s->tokens);
    qmp_json_parser_scratch_clear(&s->scratch);
    g_array_unref(s->member_store);
    g_string_free(s->keys, TRUE);
    g_free(s);
}

void
qmp_streamer_feed(QmpStreamer *s, const char *buf, gsize len)
{
    if (s->doomed) {
        return;
    }
    s->busy++;
    qmp_lexer_feed(&s->lexer, buf, len);
    s->busy--;
    if (s->doomed && !s->busy) {
        s->doomed = FALSE;
        qmp_streamer_free(s);
    }
}

void
qmp_streamer_flush(QmpStreamer *s)
{
    if (s->doomed) {
        return;
    }
    s->busy++;
    qmp_lexer_flush(&s->lexer);
    s->busy--;
    if (s->doomed && !s->busy) {
        s->doomed = FALSE;
        qmp_streamer_free(s);
    }
}

void
qmp_streamer_set_limits(QmpStreamer *s, const QmpJsonLimits *limits)
{
    s->limits = limits;
}

gsize
qmp_streamer_get_buffered(const QmpStreamer *s)
{
    return s->text->len + s->lexer.ws_len + s->lexer.token->len;
}

typedef struct {
    guint messages;
    char *error;
} ParseValueResult;

static void
parse_value_emit(gpointer opaque, const QmpMessage *msg, const char *error)
{
    ParseValueResult *r = opaque;

    if (error && !r->error) {
        r->error = g_strdup(error);
    }
    if (msg) {
        r->messages++;
    }
}

QmpJson *
qmp_json_parse_value(const char *data, gsize len, char **error_text)
{
    ParseValueResult r = {0};
    g_autoptr(QmpJson) tree = NULL;
    g_autoptr(QmpStreamer) s = qmp_streamer_new(parse_value_emit, &r);

    s->tree = &tree;
    qmp_streamer_feed(s, data, len);
    qmp_streamer_flush(s);
    if (r.error) {
        *error_text = r.error;
        return NULL;
    }
    if (r.messages != 1 || !tree) {
        *error_text = g_strdup(r.messages ? "JSON parse error, more than "
                                            "one value"
                                          : "JSON parse error, expecting "
                                            "value");
        return NULL;
    }
    return g_steal_pointer(&tree);
}
