/*
 * upstream.c: the helper's one connection to QEMU's QMP monitor
 *
 * QEMU's output is trusted JSON, one object per line, but the helper does
 * not rely on lines (a monitor may be in pretty mode): a small scanner
 * tracks nesting and strings across reads to find where each object ends,
 * then records the spans of its top-level members.  Replies are matched by
 * the integer id the helper put on each request.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/upstream.h"
#include "helper/upstream-priv.h"
#include "helper/channel.h"

#include "qmp/json-streamer.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* QEMU never sends more than a few MiB at once; past this, it is broken. */
#define QPH_UPSTREAM_MAX_MESSAGE (256u << 20)

typedef enum {
    UPSTREAM_GREETING,
    UPSTREAM_NEGOTIATING,
    UPSTREAM_READY,
    UPSTREAM_CLOSED,
} UpstreamState;

typedef struct {
    QphUpstreamReplyFunc cb; /* NULL once cancelled */
    gpointer user_data;
    gboolean fair;           /* a client's in-band request (see Fairness) */
} Pending;

/* A request not sent yet: waiting for its turn, or held back behind a
 * descriptor barrier (see qph_upstream_forward). */
typedef struct {
    guint64 id;
    GBytes *bytes;
    int *fds;
    guint n_fds;
} Deferred;

/* One client's place in the rotation, and its in-band requests waiting
 * for their turn, in its order. */
typedef struct {
    gpointer owner;
    guint64 served; /* when its latest request went (a sequence number) */
    GQueue queue;   /* Deferred * */
} Turn;

struct QphUpstream {
    QphChannel *ch;
    UpstreamState state;
    QphUpstreamCallbacks cb;
    gpointer opaque;
    GBytes *greeting;
    GStrv offered;
    pid_t peer_pid;
    guint64 next_id;
    GHashTable *pending; /* guint64 id -> Pending * */
    guint64 fd_barrier;  /* id of the unanswered request that carried fds */
    GQueue deferred;     /* Deferred *, in the order clients sent them */

    /* Fairness: client in-band requests sent and not answered yet (at most
     * QPH_UPSTREAM_FAIR_WINDOW), and the owners with requests waiting. */
    guint n_fair;
    guint64 n_served;
    GQueue turns;        /* Turn * with requests waiting, least recently
                          * served first */
    GHashTable *owners;  /* owner -> its Turn, until qph_upstream_drop_owner */

    /* Scanner state over @in: bytes [0, scan_pos) are scanned. */
    GByteArray *in;
    gsize msg_start;
    gsize scan_pos;
    guint depth;
    gboolean in_string;
    gboolean escape;
    gboolean in_message;
};

const QphScanMember *
qph_scanned_message_get(const QphScannedMessage *msg, const char *key)
{
    gsize klen = strlen(key);

    for (guint i = 0; i < msg->n_members; i++) {
        if (msg->members[i].key_len == klen &&
            memcmp(msg->members[i].key, key, klen) == 0) {
            return &msg->members[i];
        }
    }
    return NULL;
}

/* Skip a string starting at @p (on its opening quote); return the index
 * just past the closing quote. */
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

/* Skip one value starting at @i; return the index just past it. */
static gsize
skip_value(const char *p, gsize i, gsize len)
{
    guint depth = 0;

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
                return i; /* end of the enclosing object */
            }
            if (--depth == 0) {
                return i + 1;
            }
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' ||
                                  c == '\r' || c == '\n')) {
            return i;
        }
    }
    return len;
}

static gboolean
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/**
 * qph_upstream_scan_members:
 * Fill in the top-level members of the complete object in @msg (data and
 * len set).  Never reads past @msg->len, whatever the bytes.
 */
void
qph_upstream_scan_members(QphScannedMessage *msg)
{
    const char *p = msg->data;
    gsize len = msg->len;
    gsize i = 1;

    msg->n_members = 0;
    while (i < len && msg->n_members < QPH_SCAN_MAX_MEMBERS) {
        QphScanMember *m;
        gsize kend;

        while (i < len && (is_space(p[i]) || p[i] == ',')) {
            i++;
        }
        if (i >= len || p[i] != '"') {
            return;
        }
        m = &msg->members[msg->n_members++];
        m->key_offset = i;
        kend = skip_string(p, i, len);
        m->key = p + i + 1;
        m->key_len = kend >= i + 2 ? kend - i - 2 : 0;
        i = kend;
        while (i < len && (is_space(p[i]) || p[i] == ':')) {
            i++;
        }
        m->value_offset = i;
        i = skip_value(p, i, len);
        m->value_len = i - m->value_offset;
    }
}

static guint64
reply_id(const QphScannedMessage *msg, gboolean *found)
{
    const QphScanMember *m = qph_scanned_message_get(msg, "id");
    char buf[32];

    *found = FALSE;
    if (!m || m->value_len == 0 || m->value_len >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, msg->data + m->value_offset, m->value_len);
    buf[m->value_len] = '\0';
    if (!g_ascii_isdigit(buf[0])) {
        return 0;
    }
    *found = TRUE;
    return g_ascii_strtoull(buf, NULL, 10);
}

static void
upstream_send_raw(QphUpstream *up, const char *text)
{
    qph_channel_write(up->ch, text, strlen(text), NULL, 0);
}

static void
upstream_negotiated(QphUpstream *up, const QphScannedMessage *msg,
                    gpointer user_data)
{
    if (!msg || !qph_scanned_message_get(msg, "return")) {
        g_warning("QEMU refused the helper's capabilities negotiation: %.*s",
                  msg ? (int)msg->len : 0, msg ? msg->data : "");
        return;
    }
    up->state = UPSTREAM_READY;
    if (up->cb.ready) {
        up->cb.ready(up, up->opaque);
    }
}

/* Record the greeting and negotiate; QEMU's greeting is passed on to every
 * client byte for byte, so keep it exactly, line ending included. */
static void
upstream_handle_greeting(QphUpstream *up, const QphScannedMessage *msg)
{
    g_autoptr(GString) line = g_string_new_len(msg->data, msg->len);
    g_autoptr(GPtrArray) offered = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *error_text = NULL;
    g_autoptr(QmpJson) greeting =
        qmp_json_parse_value(msg->data, msg->len, &error_text);
    QmpJson *qmp = greeting && greeting->type == QMP_JSON_OBJECT
                       ? qmp_json_object_get(greeting, "QMP")
                       : NULL;
    QmpJson *caps = qmp && qmp->type == QMP_JSON_OBJECT
                        ? qmp_json_object_get(qmp, "capabilities")
                        : NULL;

    /* QEMU ends every line with CRLF, the greeting included. */
    g_string_append(line, "\r\n");
    up->greeting = g_string_free_to_bytes(g_steal_pointer(&line));
    if (!greeting) {
        g_warning("QEMU's greeting is not valid JSON: %s", error_text);
    }
    for (guint i = 0; caps && caps->type == QMP_JSON_ARRAY &&
                      i < caps->elements->len;
         i++) {
        QmpJson *c = caps->elements->pdata[i];

        if (c->type == QMP_JSON_STRING) {
            g_ptr_array_add(offered, g_strdup(c->s));
        }
    }
    g_ptr_array_add(offered, NULL);
    up->offered = (GStrv)g_ptr_array_steal(offered, NULL);
    up->state = UPSTREAM_NEGOTIATING;
    qph_upstream_call(up, "qmp_capabilities",
                      g_strv_contains((const char *const *)up->offered, "oob")
                          ? "{\"enable\": [\"oob\"]}"
                          : NULL,
                      upstream_negotiated, NULL);
}

static void
deferred_free(Deferred *d)
{
    for (guint i = 0; i < d->n_fds; i++) {
        close(d->fds[i]);
    }
    g_free(d->fds);
    g_bytes_unref(d->bytes);
    g_free(d);
}

/* Send @bytes now; a message with descriptors becomes the barrier. */
static void
upstream_send(QphUpstream *up, guint64 id, GBytes *bytes, int *fds,
              guint n_fds)
{
    gsize len;
    const char *data = g_bytes_get_data(bytes, &len);

    qph_channel_write(up->ch, data, len, fds, n_fds);
    if (n_fds > 0) {
        up->fd_barrier = id;
    }
}

/* The request that carried descriptors has been answered (so QEMU has
 * taken them): send what waited behind it, up to the next one with
 * descriptors. */
static void
upstream_release_barrier(QphUpstream *up)
{
    Deferred *d;

    up->fd_barrier = 0;
    while (!up->fd_barrier && (d = g_queue_pop_head(&up->deferred))) {
        upstream_send(up, d->id, d->bytes, d->fds, d->n_fds);
        d->n_fds = 0; /* the channel owns them now */
        deferred_free(d);
    }
}

/*
 * Send @d now, or behind the descriptor barrier; @d is consumed.
 *
 * QEMU keeps only the descriptors of the latest recvmsg() and, with OOB
 * negotiated, reads ahead of the command it is running.  So while a
 * request that carried descriptors is unanswered, nothing more is sent:
 * another client's descriptors would replace them before they are used.
 * Requests queue behind it in order.
 */
static void
upstream_submit(QphUpstream *up, Deferred *d)
{
    if (up->fd_barrier || !g_queue_is_empty(&up->deferred)) {
        g_queue_push_tail(&up->deferred, d);
        return;
    }
    upstream_send(up, d->id, d->bytes, d->fds, d->n_fds);
    d->n_fds = 0; /* the channel owns them now */
    deferred_free(d);
}

static void
turn_free(Turn *t)
{
    g_queue_clear_full(&t->queue, (GDestroyNotify)deferred_free);
    g_free(t);
}

/* A client in-band request goes into QEMU's window. */
static void
upstream_send_fair(QphUpstream *up, Turn *t, Deferred *d)
{
    t->served = ++up->n_served;
    up->n_fair++;
    upstream_submit(up, d);
}

/* While QEMU has room in the window, send the next request of the owner
 * served least recently, as QEMU takes the next request from the monitor
 * it served least recently (and moves that one to the end of its list). */
static void
upstream_pump(QphUpstream *up)
{
    Turn *t;

    while (up->n_fair < QPH_UPSTREAM_FAIR_WINDOW &&
           (t = g_queue_pop_head(&up->turns))) {
        Deferred *d = g_queue_pop_head(&t->queue);

        if (!g_queue_is_empty(&t->queue)) {
            g_queue_push_tail(&up->turns, t); /* served last from now on */
        }
        upstream_send_fair(up, t, d);
    }
}

/* @t has a request waiting now: its place is by when it was last served. */
static void
upstream_enter_rotation(QphUpstream *up, Turn *t)
{
    GList *l = up->turns.tail;

    while (l && ((Turn *)l->data)->served > t->served) {
        l = l->prev;
    }
    if (l) {
        g_queue_insert_after(&up->turns, l, t);
    } else {
        g_queue_push_head(&up->turns, t);
    }
}

static void
upstream_handle_message(QphUpstream *up, const QphScannedMessage *msg)
{
    gboolean found;
    guint64 id;
    g_autofree guint64 *key = NULL;
    Pending *p;

    if (up->state == UPSTREAM_GREETING) {
        upstream_handle_greeting(up, msg);
        return;
    }
    id = reply_id(msg, &found);
    if (!found) {
        if (qph_scanned_message_get(msg, "event")) {
            if (up->state == UPSTREAM_READY && up->cb.event) {
                up->cb.event(up, msg, up->opaque);
            }
        } else {
            g_warning("Dropping a message from QEMU that is neither a reply "
                      "to the helper nor an event: %.*s",
                      (int)MIN(msg->len, 200), msg->data);
        }
        return;
    }
    /* Stolen, not removed: the callback may register new requests. */
    if (!g_hash_table_steal_extended(up->pending, &id, (gpointer *)&key,
                                     (gpointer *)&p)) {
        g_warning("Dropping a reply from QEMU with unknown id %" G_GUINT64_FORMAT,
                  id);
        return;
    }
    if (id == up->fd_barrier) {
        upstream_release_barrier(up);
    }
    if (p->fair) {
        /* The next turn goes first: what this reply's owner sends from its
         * callback waits behind the others. */
        up->n_fair--;
        upstream_pump(up);
    }
    if (p->cb) {
        p->cb(up, msg, p->user_data);
    }
    g_free(p);
}

/* Scan what has arrived and hand over each complete message.  Bytes between
 * messages (QEMU's CRLF) are dropped; a partial message is kept. */
static void
upstream_scan(QphUpstream *up)
{
    const char *p = (const char *)up->in->data;
    gsize len = up->in->len;

    for (gsize i = up->scan_pos; i < len; i++) {
        char c = p[i];

        if (!up->in_message) {
            if (c == '{') {
                up->in_message = TRUE;
                up->msg_start = i;
                up->depth = 1;
            }
            continue;
        }
        if (up->in_string) {
            if (up->escape) {
                up->escape = FALSE;
            } else if (c == '\\') {
                up->escape = TRUE;
            } else if (c == '"') {
                up->in_string = FALSE;
            }
            continue;
        }
        if (c == '"') {
            up->in_string = TRUE;
        } else if (c == '{' || c == '[') {
            up->depth++;
        } else if ((c == '}' || c == ']') && --up->depth == 0) {
            QphScannedMessage msg = {
                .data = p + up->msg_start,
                .len = i + 1 - up->msg_start,
            };

            up->in_message = FALSE;
            qph_upstream_scan_members(&msg);
            upstream_handle_message(up, &msg);
        }
    }
    if (!up->in_message) {
        g_byte_array_set_size(up->in, 0);
    } else if (len - up->msg_start > QPH_UPSTREAM_MAX_MESSAGE) {
        g_warning("QEMU sent a message over %u bytes; dropping the "
                  "connection", QPH_UPSTREAM_MAX_MESSAGE);
        g_byte_array_set_size(up->in, 0);
        up->in_message = FALSE;
        qph_channel_shutdown(up->ch);
    } else if (up->msg_start > 0) {
        g_byte_array_remove_range(up->in, 0, up->msg_start);
        up->msg_start = 0;
    }
    up->scan_pos = up->in->len;
}

static void
upstream_read(QphChannel *ch, const char *buf, gsize len, int *fds,
              guint n_fds, gpointer opaque)
{
    QphUpstream *up = opaque;

    /* QEMU never sends descriptors on the monitor. */
    for (guint i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    g_byte_array_append(up->in, (const guint8 *)buf, len);
    upstream_scan(up);
}

static void
upstream_fail_pending(QphUpstream *up)
{
    GHashTableIter it;
    gpointer key, value;
    g_autoptr(GPtrArray) callbacks = g_ptr_array_new_with_free_func(g_free);

    g_hash_table_iter_init(&it, up->pending);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        g_ptr_array_add(callbacks, value);
        g_hash_table_iter_steal(&it);
        g_free(key);
    }
    for (guint i = 0; i < callbacks->len; i++) {
        Pending *p = callbacks->pdata[i];

        if (p->cb) {
            p->cb(up, NULL, p->user_data);
        }
    }
}

static void
upstream_closed(QphChannel *ch, gpointer opaque)
{
    QphUpstream *up = opaque;

    up->state = UPSTREAM_CLOSED;
    upstream_fail_pending(up);
    if (up->cb.closed) {
        up->cb.closed(up, up->opaque);
    }
}

QphUpstream *
qph_upstream_new(int fd, const QphUpstreamCallbacks *cb, gpointer opaque)
{
    QphUpstream *up = g_new0(QphUpstream, 1);
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
        up->peer_pid = cred.pid;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    up->cb = *cb;
    up->opaque = opaque;
    up->next_id = 1;
    up->in = g_byte_array_new();
    g_queue_init(&up->deferred);
    g_queue_init(&up->turns);
    up->owners = g_hash_table_new_full(NULL, NULL, NULL,
                                       (GDestroyNotify)turn_free);
    up->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                        g_free);
    up->ch = qph_channel_new(fd, upstream_read, upstream_closed, NULL, up);
    return up;
}

void
qph_upstream_free(QphUpstream *up)
{
    if (!up) {
        return;
    }
    qph_channel_free(up->ch);
    g_queue_clear_full(&up->deferred, (GDestroyNotify)deferred_free);
    g_queue_clear(&up->turns);
    g_hash_table_destroy(up->owners);
    g_hash_table_destroy(up->pending);
    g_byte_array_unref(up->in);
    g_clear_pointer(&up->greeting, g_bytes_unref);
    g_strfreev(up->offered);
    g_free(up);
}

GBytes *
qph_upstream_get_greeting(QphUpstream *up)
{
    return up->greeting;
}

gboolean
qph_upstream_offers(QphUpstream *up, const char *name)
{
    return up->offered &&
           g_strv_contains((const char *const *)up->offered, name);
}

pid_t
qph_upstream_get_peer_pid(QphUpstream *up)
{
    return up->peer_pid;
}

guint
qph_upstream_get_pending(QphUpstream *up)
{
    return g_hash_table_size(up->pending);
}

static guint64
upstream_register(QphUpstream *up, QphUpstreamReplyFunc cb,
                  gpointer user_data, gboolean fair)
{
    guint64 *key = g_new(guint64, 1);
    Pending *p = g_new0(Pending, 1);

    *key = up->next_id++;
    p->cb = cb;
    p->user_data = user_data;
    p->fair = fair;
    g_hash_table_insert(up->pending, key, p);
    return *key;
}

/**
 * qph_upstream_splice_id:
 * Append to @out the client's message @msg with the value at
 * [@id_offset, @id_offset + @id_len) replaced by @id, or, when @id_len is
 * 0, with "id" added as its first member (@msg is an object with at least
 * one member, as qmp_request_check() guarantees).
 */
void
qph_upstream_splice_id(GString *out, const char *msg, gsize len,
                       gsize id_offset, gsize id_len, guint64 id)
{
    char idbuf[32];
    int idlen = g_snprintf(idbuf, sizeof(idbuf), "%" G_GUINT64_FORMAT, id);

    if (id_len > 0) {
        g_string_append_len(out, msg, id_offset);
        g_string_append_len(out, idbuf, idlen);
        g_string_append_len(out, msg + id_offset + id_len,
                            len - id_offset - id_len);
    } else {
        g_string_append(out, "{\"id\": ");
        g_string_append_len(out, idbuf, idlen);
        g_string_append(out, ", ");
        g_string_append_len(out, msg + 1, len - 1);
    }
}

guint64
qph_upstream_forward(QphUpstream *up, gpointer owner, const char *msg,
                     gsize len, gsize id_offset, gsize id_len, int *fds,
                     guint n_fds, QphUpstreamReplyFunc cb, gpointer user_data)
{
    guint64 id = upstream_register(up, cb, user_data, owner != NULL);
    g_autoptr(GString) out = g_string_sized_new(len + 32);
    Deferred *d = g_new0(Deferred, 1);

    qph_upstream_splice_id(out, msg, len, id_offset, id_len, id);
    d->id = id;
    d->bytes = g_string_free_to_bytes(g_steal_pointer(&out));
    d->fds = n_fds ? g_memdup2(fds, sizeof(int) * n_fds) : NULL;
    d->n_fds = n_fds;
    /*
     * Fairness: a client's in-band request goes now only if QEMU has room
     * in the window and no other client is waiting for its turn; else it
     * waits in its owner's queue (qph_upstream_drop_owner() empties it).
     */
    if (owner) {
        Turn *t = g_hash_table_lookup(up->owners, owner);

        if (!t) {
            t = g_new0(Turn, 1);
            t->owner = owner;
            g_queue_init(&t->queue);
            g_hash_table_insert(up->owners, owner, t);
        }
        if (up->n_fair < QPH_UPSTREAM_FAIR_WINDOW &&
            g_queue_is_empty(&up->turns)) {
            upstream_send_fair(up, t, d);
        } else {
            if (g_queue_is_empty(&t->queue)) {
                upstream_enter_rotation(up, t);
            }
            g_queue_push_tail(&t->queue, d);
        }
        return id;
    }
    upstream_submit(up, d);
    return id;
}

void
qph_upstream_drop_owner(QphUpstream *up, gpointer owner)
{
    Turn *t = g_hash_table_lookup(up->owners, owner);
    Deferred *d;

    if (!t) {
        return;
    }
    if (!g_queue_is_empty(&t->queue)) {
        g_queue_remove(&up->turns, t);
    }
    /* Never sent: nobody waits for these ids; their descriptors close. */
    while ((d = g_queue_pop_head(&t->queue))) {
        g_hash_table_remove(up->pending, &d->id);
        deferred_free(d);
    }
    g_hash_table_remove(up->owners, owner);
}

guint64
qph_upstream_call(QphUpstream *up, const char *command, const char *arguments,
                  QphUpstreamReplyFunc cb, gpointer user_data)
{
    guint64 id = upstream_register(up, cb, user_data, FALSE);
    g_autofree char *text = NULL;

    if (arguments) {
        text = g_strdup_printf("{\"execute\": \"%s\", \"arguments\": %s, "
                               "\"id\": %" G_GUINT64_FORMAT "}",
                               command, arguments, id);
    } else {
        text = g_strdup_printf("{\"execute\": \"%s\", \"id\": %" G_GUINT64_FORMAT
                               "}",
                               command, id);
    }
    upstream_send_raw(up, text);
    return id;
}

void
qph_upstream_cancel(QphUpstream *up, guint64 handle)
{
    Pending *p = g_hash_table_lookup(up->pending, &handle);

    if (p) {
        p->cb = NULL;
        p->user_data = NULL;
    }
}
