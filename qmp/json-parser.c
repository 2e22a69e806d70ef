/*
 * json-parser.c: QEMU's JSON parser over a message's tokens
 *
 * A recursive-descent parser with the structure of QEMU 7.2's
 * qobject/json-parser.c, kept structurally identical because QEMU reports
 * only the first error it meets and which error comes first depends on
 * that structure: a pair's key is parsed as a whole value before it is
 * found not to be a string; a value is parsed before its key is found to be
 * a duplicate; escapes are checked when the string is decoded.  QEMU
 * formats the message into a 1024-byte buffer, so long messages are cut to
 * 1023 bytes here too.
 *
 * Duplicate keys are found with a linear scan over the keys of the current
 * object while it is small and a hash set once it is not, so a hostile
 * object of a million keys costs linear time.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/json-parser.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/unicode.h"

/* QEMU's parse_error() formats into char message[1024]. */
#define PARSE_ERROR_MAX 1024
/* Objects with more keys than this get a hash set for duplicates. */
#define DUP_SCAN_MAX 16

typedef struct {
    const char *text;
    const QmpJsonToken *tokens;
    gsize n_tokens;
    gsize pos;
    gboolean build;
    char *error; /* the first error, complete text */
    GString *keys; /* decoded keys of the open objects, see KeySet */
    QmpJsonParserScratch *sc; /* keys and their spans */
    guint peak_spans; /* most entries spans ever held */
} ParserContext;

static void G_GNUC_PRINTF(2, 3)
parse_error(ParserContext *ctxt, const char *fmt, ...)
{
    char message[PARSE_ERROR_MAX];
    va_list ap;

    if (ctxt->error) {
        return; /* the first error wins */
    }
    va_start(ap, fmt);
    g_vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    ctxt->error = g_strdup_printf("JSON parse error, %s", message);
}

static const QmpJsonToken *
peek_token(ParserContext *ctxt)
{
    return ctxt->pos < ctxt->n_tokens ? &ctxt->tokens[ctxt->pos] : NULL;
}

static const QmpJsonToken *
pop_token(ParserContext *ctxt)
{
    return ctxt->pos < ctxt->n_tokens ? &ctxt->tokens[ctxt->pos++] : NULL;
}

static const char *
token_text(ParserContext *ctxt, const QmpJsonToken *token)
{
    return ctxt->text + token->offset;
}

/* QEMU's cvt4hex(); reads stop at the first non-hex byte (or the end). */
static int
cvt4hex(const char *s, const char *end)
{
    int cp = 0;

    for (int i = 0; i < 4; i++) {
        if (s + i >= end || !g_ascii_isxdigit(s[i])) {
            return -1;
        }
        cp = (cp << 4) | g_ascii_xdigit_value(s[i]);
    }
    return cp;
}

gboolean
qmp_json_unescape_string(const char *token, gsize len, GString *out,
                         char **error_text)
{
    const char *ptr = token;
    const char *end = token + len;
    char quote;

    if (len < 2 || (*ptr != '"' && *ptr != '\'')) {
        *error_text = g_strdup("expecting value");
        return FALSE;
    }
    quote = *ptr++;

    while (ptr < end && *ptr != quote) {
        const char *beg;
        const char *next;
        int cp, trailing;

        if ((guint8)*ptr >= 0x20 && (guint8)*ptr < 0x80 && *ptr != '\\') {
            /* Plain ASCII (the common case) stands for itself: copy the
             * whole run at once. */
            const char *run = ptr + 1;

            while (run < end && (guint8)*run >= 0x20 && (guint8)*run < 0x80 &&
                   *run != '\\' && *run != quote) {
                run++;
            }
            if (out) {
                qmp_string_append(out, ptr, (gsize)(run - ptr));
            }
            ptr = run;
            continue;
        }
        if (*ptr != '\\') {
            cp = qmp_utf8_codepoint(ptr, (gsize)(end - ptr), &next);
            if (cp < 0) {
                *error_text = g_strdup("invalid UTF-8 sequence in string");
                return FALSE;
            }
            if (out) {
                qmp_utf8_append(out, cp);
            }
            ptr = next;
            continue;
        }

        beg = ptr++;
        switch (ptr < end ? *ptr++ : 0) {
        case '"':
            cp = '"';
            break;
        case '\'':
            cp = '\'';
            break;
        case '\\':
            cp = '\\';
            break;
        case '/':
            cp = '/';
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            cp = cvt4hex(ptr, end);
            /* QEMU skips four bytes even when they were not hex digits. */
            ptr = (end - ptr) > 4 ? ptr + 4 : end;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - ptr >= 2 &&
                ptr[0] == '\\' && ptr[1] == 'u') {
                cp = 0x10000 + ((cp & 0x3FF) << 10);
                trailing = cvt4hex(ptr + 2, end);
                if (trailing >= 0xDC00 && trailing <= 0xDFFF) {
                    cp |= trailing & 0x3FF;
                    ptr += 6;
                } else {
                    cp = -1;
                }
            }
            if (!qmp_utf8_valid_codepoint(cp)) {
                /* QEMU prints (ptr - beg) bytes with %.*s: up to a NUL. */
                gsize n = (gsize)(ptr - beg);
                const char *nul = memchr(beg, '\0', n);

                if (nul) {
                    n = (gsize)(nul - beg);
                }
                *error_text = g_strdup_printf(
                    "%.*s is not a valid Unicode character", (int)n, beg);
                if (strlen(*error_text) >= PARSE_ERROR_MAX) {
                    (*error_text)[PARSE_ERROR_MAX - 1] = '\0';
                }
                return FALSE;
            }
            break;
        default:
            *error_text = g_strdup("invalid escape sequence in string");
            return FALSE;
        }
        if (out) {
            qmp_utf8_append(out, cp);
        }
    }
    if (ptr >= end) {
        /* Only reachable for a token the lexer did not produce. */
        *error_text = g_strdup("premature EOI");
        return FALSE;
    }
    return TRUE;
}

QmpJsonType
qmp_json_number_type(const char *token, gsize len, gboolean is_float,
                     QmpJson *value)
{
    g_autofree char *s = g_strndup(token, len);
    char *end;

    if (!is_float) {
        gint64 i;
        guint64 u;

        errno = 0;
        i = g_ascii_strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') {
            if (value) {
                value->type = QMP_JSON_INT;
                value->i = i;
            }
            return QMP_JSON_INT;
        }
        if (s[0] != '-') {
            errno = 0;
            u = g_ascii_strtoull(s, &end, 10);
            if (errno == 0 && *end == '\0') {
                if (value) {
                    value->type = QMP_JSON_UINT;
                    value->u = u;
                }
                return QMP_JSON_UINT;
            }
        }
    }
    if (value) {
        value->type = QMP_JSON_DOUBLE;
        value->d = g_ascii_strtod(s, NULL);
    }
    return QMP_JSON_DOUBLE;
}

/*
 * The result of parsing one value: its type, or -1 on error.  When
 * building, *out receives the tree.
 */
static int parse_value(ParserContext *ctxt, QmpJson **out);

/*
 * Keys of the object being parsed, for duplicate detection.  The decoded
 * keys of all open objects live in one arena (ctxt->keys, with their spans
 * in ctxt->sc->spans), used as a stack: an object's keys follow those of the
 * objects around it, and it pops them when it is done.  Nothing is
 * allocated per key unless an object has more than DUP_SCAN_MAX keys.
 */
typedef struct {
    ParserContext *ctxt;
    guint first_span; /* this object's first entry in ctxt->sc->spans */
    gsize text_mark;  /* ctxt->keys->len when the object began */
    GHashTable *set;  /* owned copies, once there are > DUP_SCAN_MAX keys */
} KeySet;

typedef struct {
    gsize offset;
    gsize len;
} KeySpan;

static void
key_set_clear(KeySet *ks)
{
    if (ks->set) {
        g_hash_table_unref(ks->set);
    }
    if (ks->ctxt) {
        ks->ctxt->sc->n_spans = ks->first_span;
        g_string_truncate(ks->ctxt->keys, ks->text_mark);
    }
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KeySet, key_set_clear)

static void
key_set_open(KeySet *ks, ParserContext *ctxt)
{
    ks->ctxt = ctxt;
    ks->first_span = ctxt->sc->n_spans;
    ks->text_mark = ctxt->keys->len;
    ks->set = NULL;
}

/* The key decoded at @offset of the arena (@len bytes, NUL-terminated). */
static gboolean
key_set_contains(const KeySet *ks, gsize offset, gsize len)
{
    const char *arena = ks->ctxt->keys->str;
    const KeySpan *spans = ks->ctxt->sc->spans;

    if (ks->set) {
        return g_hash_table_contains(ks->set, arena + offset);
    }
    for (guint i = ks->first_span; i < ks->ctxt->sc->n_spans; i++) {
        if (spans[i].len == len &&
            memcmp(arena + spans[i].offset, arena + offset, len) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

static void
key_set_add(KeySet *ks, gsize offset, gsize len)
{
    ParserContext *ctxt = ks->ctxt;
    QmpJsonParserScratch *sc = ctxt->sc;
    KeySpan *spans;

    if (sc->n_spans == sc->spans_cap) {
        sc->spans_cap = sc->spans_cap ? sc->spans_cap * 2 : 16;
        sc->spans = g_renew(KeySpan, sc->spans, sc->spans_cap);
    }
    spans = sc->spans;
    spans[sc->n_spans].offset = offset;
    spans[sc->n_spans].len = len;
    sc->n_spans++;
    ctxt->peak_spans = MAX(ctxt->peak_spans, sc->n_spans);
    if (!ks->set && sc->n_spans - ks->first_span > DUP_SCAN_MAX) {
        ks->set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
        for (guint i = ks->first_span; i < sc->n_spans; i++) {
            g_hash_table_add(ks->set,
                             g_strndup(ctxt->keys->str + spans[i].offset,
                                       spans[i].len));
        }
    } else if (ks->set) {
        g_hash_table_add(ks->set, g_strndup(ctxt->keys->str + offset, len));
    }
}

static int
parse_string(ParserContext *ctxt, const QmpJsonToken *token, GString *out,
             QmpJson **tree)
{
    g_autofree char *message = NULL;
    g_autoptr(GString) buf = NULL;

    if (!out && ctxt->build) {
        out = buf = g_string_new(NULL);
    }
    if (!qmp_json_unescape_string(token_text(ctxt, token), token->len, out,
                                  &message)) {
        parse_error(ctxt, "%s", message);
        return -1;
    }
    if (tree && ctxt->build) {
        *tree = qmp_json_new_string(out->str);
    }
    return QMP_JSON_STRING;
}

/* QEMU's parse_pair(); adds the member to @obj when building. */
static gboolean
parse_pair(ParserContext *ctxt, KeySet *keys, QmpJson *obj)
{
    const QmpJsonToken *peek, *token;
    g_autoptr(QmpJson) value = NULL;
    GString *arena = ctxt->keys;
    gsize key_offset = arena->len;
    gsize key_len;
    int type;

    peek = peek_token(ctxt);
    if (!peek) {
        parse_error(ctxt, "premature EOI");
        return FALSE;
    }

    if (peek->type == QMP_TOKEN_STRING) {
        pop_token(ctxt);
        type = parse_string(ctxt, peek, arena, NULL);
    } else {
        g_autoptr(QmpJson) ignored = NULL;

        type = parse_value(ctxt, &ignored);
    }
    if (type != QMP_JSON_STRING) {
        parse_error(ctxt, "key is not a string in object");
        return FALSE;
    }
    /* Keep the key in the arena, NUL-terminated; nested objects push
     * their keys after it and pop them again. */
    key_len = arena->len - key_offset;
    g_string_append_c(arena, '\0');

    token = pop_token(ctxt);
    if (!token) {
        parse_error(ctxt, "premature EOI");
        return FALSE;
    }
    if (token->type != QMP_TOKEN_COLON) {
        parse_error(ctxt, "missing : in object pair");
        return FALSE;
    }

    if (parse_value(ctxt, &value) < 0) {
        parse_error(ctxt, "Missing value in dict");
        return FALSE;
    }

    if (key_set_contains(keys, key_offset, key_len)) {
        parse_error(ctxt, "duplicate key");
        return FALSE;
    }
    key_set_add(keys, key_offset, key_len);
    if (obj) {
        qmp_json_object_set(obj, arena->str + key_offset,
                            g_steal_pointer(&value));
    }
    return TRUE;
}

static int
parse_object(ParserContext *ctxt, QmpJson **out)
{
    const QmpJsonToken *token, *peek;
    g_autoptr(QmpJson) obj = ctxt->build ? qmp_json_new(QMP_JSON_OBJECT)
                                         : NULL;
    g_auto(KeySet) keys = {0};

    key_set_open(&keys, ctxt);
    pop_token(ctxt); /* '{' */

    peek = peek_token(ctxt);
    if (!peek) {
        parse_error(ctxt, "premature EOI");
        return -1;
    }
    if (peek->type != QMP_TOKEN_RCURLY) {
        if (!parse_pair(ctxt, &keys, obj)) {
            return -1;
        }
        token = pop_token(ctxt);
        if (!token) {
            parse_error(ctxt, "premature EOI");
            return -1;
        }
        while (token->type != QMP_TOKEN_RCURLY) {
            if (token->type != QMP_TOKEN_COMMA) {
                parse_error(ctxt, "expected separator in dict");
                return -1;
            }
            if (!parse_pair(ctxt, &keys, obj)) {
                return -1;
            }
            token = pop_token(ctxt);
            if (!token) {
                parse_error(ctxt, "premature EOI");
                return -1;
            }
        }
    } else {
        pop_token(ctxt);
    }
    if (out) {
        *out = g_steal_pointer(&obj);
    }
    return QMP_JSON_OBJECT;
}

static int
parse_array(ParserContext *ctxt, QmpJson **out)
{
    const QmpJsonToken *token, *peek;
    g_autoptr(QmpJson) list = ctxt->build ? qmp_json_new(QMP_JSON_ARRAY)
                                          : NULL;

    pop_token(ctxt); /* '[' */

    peek = peek_token(ctxt);
    if (!peek) {
        parse_error(ctxt, "premature EOI");
        return -1;
    }
    if (peek->type != QMP_TOKEN_RSQUARE) {
        QmpJson *elem = NULL;

        if (parse_value(ctxt, &elem) < 0) {
            parse_error(ctxt, "expecting value");
            return -1;
        }
        if (list) {
            qmp_json_array_append(list, elem);
        }
        token = pop_token(ctxt);
        if (!token) {
            parse_error(ctxt, "premature EOI");
            return -1;
        }
        while (token->type != QMP_TOKEN_RSQUARE) {
            if (token->type != QMP_TOKEN_COMMA) {
                parse_error(ctxt, "expected separator in list");
                return -1;
            }
            elem = NULL;
            if (parse_value(ctxt, &elem) < 0) {
                parse_error(ctxt, "expecting value");
                return -1;
            }
            if (list) {
                qmp_json_array_append(list, elem);
            }
            token = pop_token(ctxt);
            if (!token) {
                parse_error(ctxt, "premature EOI");
                return -1;
            }
        }
    } else {
        pop_token(ctxt);
    }
    if (out) {
        *out = g_steal_pointer(&list);
    }
    return QMP_JSON_ARRAY;
}

static int
parse_keyword(ParserContext *ctxt, QmpJson **out)
{
    const QmpJsonToken *token = pop_token(ctxt);
    const char *s = token_text(ctxt, token);
    QmpJsonType type;
    gboolean b = FALSE;

    if (token->len == 4 && memcmp(s, "true", 4) == 0) {
        type = QMP_JSON_BOOL;
        b = TRUE;
    } else if (token->len == 5 && memcmp(s, "false", 5) == 0) {
        type = QMP_JSON_BOOL;
    } else if (token->len == 4 && memcmp(s, "null", 4) == 0) {
        type = QMP_JSON_NULL;
    } else {
        parse_error(ctxt, "invalid keyword '%.*s'", (int)token->len, s);
        return -1;
    }
    if (ctxt->build && out) {
        *out = type == QMP_JSON_BOOL ? qmp_json_new_bool(b)
                                     : qmp_json_new(QMP_JSON_NULL);
    }
    return type;
}

static int
parse_literal(ParserContext *ctxt, QmpJson **out)
{
    const QmpJsonToken *token = pop_token(ctxt);
    g_autoptr(QmpJson) num = NULL;
    QmpJsonType type;

    if (token->type == QMP_TOKEN_STRING) {
        return parse_string(ctxt, token, NULL, out);
    }
    if (!ctxt->build) {
        return QMP_JSON_DOUBLE; /* any number: only "not a string" matters */
    }
    num = qmp_json_new(QMP_JSON_NULL);
    type = qmp_json_number_type(token_text(ctxt, token), token->len,
                                token->type == QMP_TOKEN_FLOAT, num);
    if (out) {
        *out = g_steal_pointer(&num);
    }
    return type;
}

static int
parse_value(ParserContext *ctxt, QmpJson **out)
{
    const QmpJsonToken *token = peek_token(ctxt);

    if (!token) {
        parse_error(ctxt, "premature EOI");
        return -1;
    }
    switch (token->type) {
    case QMP_TOKEN_LCURLY:
        return parse_object(ctxt, out);
    case QMP_TOKEN_LSQUARE:
        return parse_array(ctxt, out);
    case QMP_TOKEN_INTEGER:
    case QMP_TOKEN_FLOAT:
    case QMP_TOKEN_STRING:
        return parse_literal(ctxt, out);
    case QMP_TOKEN_KEYWORD:
        return parse_keyword(ctxt, out);
    default:
        parse_error(ctxt, "expecting value");
        return -1;
    }
}

void
qmp_json_parser_scratch_clear(QmpJsonParserScratch *scratch)
{
    if (scratch->keys) {
        g_string_free(scratch->keys, TRUE);
        scratch->keys = NULL;
    }
    g_clear_pointer(&scratch->spans, g_free);
    scratch->n_spans = 0;
    scratch->spans_cap = 0;
}

gboolean
qmp_json_parse_tokens_reuse(const char *text, const QmpJsonToken *tokens,
                            gsize n_tokens, QmpJson **tree,
                            char **error_text, QmpJsonParserScratch *scratch)
{
    ParserContext ctxt = {
        .text = text,
        .tokens = tokens,
        .n_tokens = n_tokens,
        .build = tree != NULL,
    };
    g_autoptr(QmpJson) value = NULL;
    int type;

    if (!scratch->keys) {
        scratch->keys = g_string_sized_new(64);
    }
    ctxt.keys = scratch->keys;
    ctxt.sc = scratch;
    type = parse_value(&ctxt, &value);
    if (type >= 0 && ctxt.pos != n_tokens) {
        /* QEMU's streamer never leaves tokens over; a caller might. */
        parse_error(&ctxt, "expecting value");
    }
    g_string_truncate(scratch->keys, 0);
    scratch->n_spans = 0;
    /* Do not keep a huge arena around after a huge message. */
    if (scratch->keys->allocated_len > 64 * 1024 ||
        ctxt.peak_spans > 4096) {
        qmp_json_parser_scratch_clear(scratch);
    }
    if (ctxt.error) {
        *error_text = ctxt.error;
        return FALSE;
    }
    if (tree) {
        *tree = g_steal_pointer(&value);
    }
    return TRUE;
}

gboolean
qmp_json_parse_tokens(const char *text, const QmpJsonToken *tokens,
                      gsize n_tokens, QmpJson **tree, char **error_text)
{
    QmpJsonParserScratch scratch = {0};
    gboolean ok = qmp_json_parse_tokens_reuse(text, tokens, n_tokens, tree,
                                              error_text, &scratch);

    qmp_json_parser_scratch_clear(&scratch);
    return ok;
}
