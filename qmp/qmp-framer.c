/*
 * qmp-framer.c: the one framer of QMP messages, for both directions
 *
 * A client's bytes go through the QEMU-exact streamer (json-streamer.c);
 * QEMU's through the structural scan below.  Either way the owner gets a
 * QmpMessage with its member spans and, for a client, the descriptors
 * that came with it, so the proxy has one message type and one place
 * where messages begin.
 *
 * The scan of QEMU's output keeps, across reads, whether it is inside a
 * message, a string or an escape, and the nesting depth; bytes [0,
 * scan_pos) of the buffer are scanned.  Between messages, whitespace is
 * dropped and anything else reported.  A complete message's members are
 * found by skipping values (strings, nested objects and arrays) within
 * its bytes, so the spans are right for any valid JSON and bounded for
 * anything else.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-framer.h"
#include "qmp/json-parser.h"

#include <string.h>

struct QmpFramer {
    QmpFramerKind kind;
    QmpStreamerEmit emit;
    gpointer opaque;
    QmpFds *fds;        /* given with a feed, for the next message */
    guint busy;         /* inside a feed */
    gboolean doomed;    /* freed from a callback: free when feed returns */

    /* QMP_FRAMER_STRICT */
    QmpStreamer *streamer;

    /* QMP_FRAMER_TRUSTED: bytes [0, scan_pos) of @in are scanned. */
    GByteArray *in;
    gsize peak;         /* the most @in held since it was last released */
    gsize msg_start;
    gsize scan_pos;
    gsize passed_on;    /* bytes of the message in progress passed on */
    guint64 depth;
    gboolean in_message;
    gboolean in_string;
    gboolean escape;
    gboolean in_junk;   /* a stray run between messages was reported */
    QmpMessageMember members[QMP_FRAMER_MAX_MEMBERS];
    GString *keys;      /* the members' keys, NUL-separated */
};

static void
framer_destroy(QmpFramer *f)
{
    qmp_streamer_free(f->streamer);
    if (f->in) {
        g_byte_array_unref(f->in);
    }
    if (f->keys) {
        g_string_free(f->keys, TRUE);
    }
    qmp_fds_unref(f->fds);
    g_free(f);
}

/* ---- A client's bytes ------------------------------------------------- */

/* The streamer's message, with the descriptors waiting for one. */
static void
client_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    QmpFramer *f = opaque;
    QmpMessage with_fds;

    if (f->doomed) {
        return;
    }
    if (!msg) {
        f->emit(f->opaque, NULL, error_text);
        return;
    }
    with_fds = *msg;
    with_fds.fds = f->fds;
    f->fds = NULL;
    f->emit(f->opaque, &with_fds, NULL);
    qmp_fds_unref(with_fds.fds);
}

/* ---- QEMU's bytes ----------------------------------------------------- */

static gboolean
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The index just past the string whose opening quote is at @i. */
static gsize
skip_string(const char *p, gsize i, gsize len)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\') {
            i++;
        } else if (p[i] == '"') {
            return i + 1;
        }
    }
    return len;
}

/* The index just past the value that starts at @i (or of the enclosing
 * object's end, for a value missing). */
static gsize
skip_value(const char *p, gsize i, gsize len)
{
    guint64 depth = 0;

    for (; i < len; i++) {
        char c = p[i];

        if (c == '"') {
            i = skip_string(p, i, len) - 1;
            if (depth == 0) {
                return i + 1;
            }
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                return i;
            }
            if (--depth == 0) {
                return i + 1;
            }
        } else if (depth == 0 && (c == ',' || is_space(c))) {
            return i;
        }
    }
    return len;
}

static QmpJsonType
first_byte_type(const char *p, gsize len)
{
    static const struct {
        char c;
        QmpJsonType type;
    } table[] = {
        { '{', QMP_JSON_OBJECT }, { '[', QMP_JSON_ARRAY },
        { '"', QMP_JSON_STRING }, { 't', QMP_JSON_BOOL },
        { 'f', QMP_JSON_BOOL },   { 'n', QMP_JSON_NULL },
    };

    for (guint i = 0; len > 0 && i < G_N_ELEMENTS(table); i++) {
        if (p[0] == table[i].c) {
            return table[i].type;
        }
    }
    if (len == 0) {
        return QMP_JSON_NULL;
    }
    /* A short integer (every id the helper puts on) without the copy
     * qmp_json_number_type() makes. */
    for (gsize i = p[0] == '-' ? 1 : 0; len <= 18; i++) {
        if (i == len) {
            return QMP_JSON_INT;
        }
        if (!g_ascii_isdigit(p[i])) {
            break;
        }
    }
    return qmp_json_number_type(p, len, memchr(p, '.', len) ||
                                            memchr(p, 'e', len) ||
                                            memchr(p, 'E', len),
                                NULL);
}

/* The top-level members of the object @msg (data and len set), at most
 * QMP_FRAMER_MAX_MEMBERS; never reads past @msg->len. */
static void
qemu_members(QmpFramer *f, QmpMessage *msg)
{
    const char *p = msg->data;
    gsize len = msg->len, i = 1;
    guint n = 0;

    g_string_truncate(f->keys, 0);
    while (i < len && n < QMP_FRAMER_MAX_MEMBERS) {
        QmpMessageMember *m = &f->members[n];
        gsize kend;

        while (i < len && (is_space(p[i]) || p[i] == ',')) {
            i++;
        }
        if (i >= len || p[i] != '"') {
            break;
        }
        n++;
        m->key_offset = i;
        kend = skip_string(p, i, len);
        m->key_len = kend >= i + 2 ? kend - i - 2 : 0;
        /* An offset for now: the buffer may move until all are in. */
        m->key = GSIZE_TO_POINTER(f->keys->len);
        g_string_append_len(f->keys, p + i + 1, m->key_len);
        g_string_append_c(f->keys, '\0');
        i = kend;
        while (i < len && (is_space(p[i]) || p[i] == ':')) {
            i++;
        }
        m->value_offset = i;
        i = skip_value(p, i, len);
        m->value_len = i - m->value_offset;
        m->value_type = first_byte_type(p + m->value_offset, m->value_len);
    }
    for (guint j = 0; j < n; j++) {
        f->members[j].key = f->keys->str + GPOINTER_TO_SIZE(f->members[j].key);
    }
    msg->members = f->members;
    msg->n_members = n;
}

/* Between messages: whitespace is dropped, anything else reported once
 * per run.  Returns the index of the next message's '{', or @len. */
static gsize
qemu_between(QmpFramer *f, const char *p, gsize i, gsize len)
{
    for (; i < len; i++) {
        char c = p[i];

        if (c == '{') {
            f->in_junk = FALSE;
            return i;
        }
        if (!is_space(c) && !f->in_junk) {
            g_autofree char *text = g_strdup_printf(
                "QMP stream: stray byte '%c' between messages",
                g_ascii_isprint(c) ? c : '?');

            f->in_junk = TRUE;
            f->emit(f->opaque, NULL, text);
            if (f->doomed) {
                return len;
            }
        }
    }
    return len;
}

/* Scan the new bytes and hand out each complete message. */
static void
qemu_scan(QmpFramer *f)
{
    const char *p = (const char *)f->in->data;
    gsize len = f->in->len;
    gsize i = f->scan_pos;

    while (i < len && !f->doomed) {
        char c;

        if (!f->in_message) {
            i = qemu_between(f, p, i, len);
            if (i >= len) {
                break;
            }
            f->in_message = TRUE;
            f->msg_start = i++;
            f->depth = 1;
            continue;
        }
        if (f->in_string) {
            /* The common case inside a string: nothing to look at. */
            while (i < len && p[i] != '"' && p[i] != '\\' && !f->escape) {
                i++;
            }
            if (i >= len) {
                break;
            }
            if (f->escape) {
                f->escape = FALSE;
            } else if (p[i] == '\\') {
                f->escape = TRUE;
            } else {
                f->in_string = FALSE;
            }
            i++;
            continue;
        }
        c = p[i++];
        if (c == '"') {
            f->in_string = TRUE;
        } else if (c == '{' || c == '[') {
            f->depth++;
        } else if ((c == '}' || c == ']') && --f->depth == 0) {
            QmpMessage msg = {
                .data = p + f->msg_start,
                .len = i - f->msg_start,
                .type = QMP_JSON_OBJECT,
                .passed_on = f->passed_on,
            };

            f->in_message = FALSE;
            f->passed_on = 0;
            if (!msg.passed_on) {
                qemu_members(f, &msg);
            }
            f->emit(f->opaque, &msg, NULL);
        }
    }
    if (f->doomed) {
        return;
    }
    if (!f->in_message) {
        g_byte_array_set_size(f->in, 0);
    } else if (f->msg_start > 0) {
        g_byte_array_remove_range(f->in, 0, f->msg_start);
        f->msg_start = 0;
    }
    f->scan_pos = f->in->len;
}

/* ---- The framer ------------------------------------------------------- */

QmpFramer *
qmp_framer_new(QmpFramerKind kind, QmpStreamerEmit emit, gpointer opaque)
{
    QmpFramer *f = g_new0(QmpFramer, 1);

    f->kind = kind;
    f->emit = emit;
    f->opaque = opaque;
    if (kind == QMP_FRAMER_STRICT) {
        f->streamer = qmp_streamer_new(client_emit, f);
    } else {
        f->in = g_byte_array_new();
        f->keys = g_string_sized_new(64);
    }
    return f;
}

void
qmp_framer_free(QmpFramer *f)
{
    if (!f) {
        return;
    }
    if (f->busy) {
        f->doomed = TRUE;
        return;
    }
    framer_destroy(f);
}

void
qmp_framer_feed(QmpFramer *f, const char *buf, gsize len, QmpFds *fds)
{
    if (f->doomed) {
        return;
    }
    if (fds) {
        /* Only the latest read's wait for a message, as in QEMU. */
        qmp_fds_unref(f->fds);
        f->fds = qmp_fds_ref(fds);
    }
    f->busy++;
    if (f->kind == QMP_FRAMER_STRICT) {
        qmp_streamer_feed(f->streamer, buf, len);
    } else {
        g_byte_array_append(f->in, (const guint8 *)buf, len);
        f->peak = MAX(f->peak, f->in->len);
        qemu_scan(f);
    }
    f->busy--;
    if (f->doomed && !f->busy) {
        framer_destroy(f);
    }
}

void
qmp_framer_flush(QmpFramer *f)
{
    if (f->doomed || !f->streamer) {
        return;
    }
    f->busy++;
    qmp_streamer_flush(f->streamer);
    f->busy--;
    if (f->doomed && !f->busy) {
        framer_destroy(f);
    }
}

void
qmp_framer_set_limits(QmpFramer *f, const QmpJsonLimits *limits)
{
    if (f->streamer) {
        qmp_streamer_set_limits(f->streamer, limits);
    }
}

gsize
qmp_framer_get_buffered(const QmpFramer *f)
{
    return f->streamer ? qmp_streamer_get_buffered(f->streamer) : f->in->len;
}

const char *
qmp_framer_peek(const QmpFramer *f, gsize *len)
{
    if (!f->in || !f->in_message) {
        *len = 0;
        return NULL;
    }
    *len = f->in->len - f->msg_start;
    return (const char *)f->in->data + f->msg_start;
}

void
qmp_framer_pass_on(QmpFramer *f, gsize n)
{
    if (!f->in || !f->in_message) {
        return;
    }
    n = MIN(n, f->in->len - f->msg_start);
    g_byte_array_remove_range(f->in, 0, f->msg_start + n);
    f->msg_start = 0;
    f->passed_on += n;
    f->scan_pos = f->in->len;
}

void
qmp_framer_reset(QmpFramer *f)
{
    if (!f->in) {
        return;
    }
    g_byte_array_set_size(f->in, 0);
    f->in_message = f->in_string = f->escape = f->in_junk = FALSE;
    f->msg_start = f->scan_pos = f->passed_on = 0;
    f->depth = 0;
}

gboolean
qmp_framer_release(QmpFramer *f, gsize keep)
{
    if (!f->in || f->in_message || f->peak <= keep) {
        return FALSE;
    }
    g_byte_array_unref(f->in);
    f->in = g_byte_array_new();
    f->peak = 0;
    return TRUE;
}
