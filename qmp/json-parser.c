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
    GString *scratch; /* the key being decoded */
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
            /* Plain ASCII (the common case) stands for itself. */
            if (out) {
                g_string_append_c(out, *ptr);
            }
            ptr++;
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

/* Keys of the object being parsed, for duplicate detection. */
typedef struct {
    GPtrArray *keys;  /* char *, owned */
    GHashTable *set;  /* once there are more than DUP_SCAN_MAX keys */
} KeySet;

static void
key_set_clear(KeySet *ks)
{
    if (ks->set) {
        g_hash_table_unref(ks->set);
    }
    if (ks->keys) {
        g_ptr_array_unref(ks->keys);
    }
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(KeySet, key_set_clear)

static gboolean
key_set_contains(const KeySet *ks, const char *key)
{
    if (ks->set) {
        return g_hash_table_contains(ks->set, key);
    }
    for (guint i = 0; ks->keys && i < ks->keys->len; i++) {
        if (strcmp(g_ptr_array_index(ks->keys, i), key) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

static void
key_set_add(KeySet *ks, const char *key)
{
    char *copy = g_strdup(key);

    if (!ks->keys) {
        ks->keys = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(ks->keys, copy);
    if (!ks->set && ks->keys->len > DUP_SCAN_MAX) {
        ks->set = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < ks->keys->len; i++) {
            g_hash_table_add(ks->set, g_ptr_array_index(ks->keys, i));
        }
    } else if (ks->set) {
        g_hash_table_add(ks->set, copy);
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
    GString *key = ctxt->scratch;
    int type;

    peek = peek_token(ctxt);
    if (!peek) {
        parse_error(ctxt, "premature EOI");
        return FALSE;
    }

    g_string_truncate(key, 0);
    if (peek->type == QMP_TOKEN_STRING) {
        pop_token(ctxt);
        type = parse_string(ctxt, peek, key, NULL);
    } else {
        g_autoptr(QmpJson) ignored = NULL;

        type = parse_value(ctxt, &ignored);
    }
    if (type != QMP_JSON_STRING) {
        parse_error(ctxt, "key is not a string in object");
        return FALSE;
    }
    g_autofree char *key_str = g_strndup(key->str, key->len);

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

    if (key_set_contains(keys, key_str)) {
        parse_error(ctxt, "duplicate key");
        return FALSE;
    }
    key_set_add(keys, key_str);
    if (obj) {
        qmp_json_object_set(obj, key_str, g_steal_pointer(&value));
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

gboolean
qmp_json_parse_tokens(const char *text, const QmpJsonToken *tokens,
                      gsize n_tokens, QmpJson **tree, char **error_text)
{
    g_autoptr(GString) scratch = g_string_new(NULL);
    ParserContext ctxt = {
        .text = text,
        .tokens = tokens,
        .n_tokens = n_tokens,
        .build = tree != NULL,
        .scratch = scratch,
    };
    g_autoptr(QmpJson) value = NULL;
    int type;

    type = parse_value(&ctxt, &value);
    if (type >= 0 && ctxt.pos != n_tokens) {
        /* QEMU's streamer never leaves tokens over; a caller might. */
        parse_error(&ctxt, "expecting value");
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
