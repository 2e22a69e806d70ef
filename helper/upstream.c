/*
 * upstream.c: the helper's one connection to QEMU's QMP monitor
 *
 * QEMU's output is trusted JSON, one object per line, but the helper does
 * not rely on lines (a monitor may be in pretty mode): the framer
 * (qmp/qmp-framer.c, kind QMP_FRAMER_TRUSTED) finds where each object ends
 * and the spans of its top-level members, the same QmpMessage a client's
 * request becomes.
 *
 * Answers are matched to requests by order, not by id: QEMU answers the
 * in-band requests of a monitor strictly in the order it read them (its
 * dispatcher takes them one at a time from the monitor's queue, JSON and
 * limit errors included), so an in-band request goes as the client sent
 * it, byte for byte, and the answer is the oldest in-band request's.
 * exec-oob answers come in any order: those requests carry the helper's
 * id ("qph-oob-N", helper/splice.c, which says why no in-band answer can
 * be taken for one), and the helper's own calls carry none.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/upstream.h"
#include "helper/channel.h"
#include "helper/splice.h"
#include "helper/trim.h"

#include "qmp/qmp-framer.h"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* QEMU never sends more than a few MiB at once; past this, it is broken. */
#define QPH_UPSTREAM_MAX_MESSAGE (256u << 20)
/* What a monitor sent before negotiating is kept up to this much. */
#define QPH_UPSTREAM_RAW_MAX (64u * 1024)
/* A message in progress past this much is passed on as it comes, when
 * its owner is known (upstream_stream), all but its last HOLD bytes. */
#define QPH_UPSTREAM_STREAM_AT (1u << 20)
#define QPH_UPSTREAM_STREAM_HOLD 64
/* A read buffer larger than this is released once its messages are done. */
#define QPH_UPSTREAM_KEEP_BUFFER (1u << 20)

typedef enum {
    UPSTREAM_GREETING,
    UPSTREAM_NEGOTIATING,
    UPSTREAM_READY,
    UPSTREAM_CLOSED,
} UpstreamState;

typedef struct {
    guint64 id;
    QphUpstreamReplyFunc cb; /* NULL once cancelled */
    gpointer user_data;
    gboolean fair;           /* a client's in-band request (see Fairness) */
    gboolean inband;         /* not exec-oob: answered in order */
    gboolean idless;         /* exec-oob sent without the helper's id */
    gboolean sent;           /* in QEMU (or answered) */
    gboolean reserved;       /* in-band, with the id "qph-oob-reserved_n" */
    guint64 reserved_n;
    QphUpstreamStreamFunc stream; /* may take a large answer as it comes */
} Pending;

/* A request on its way: on the caller's stack, pointing to the caller's
 * bytes, while it may go at once; kept (deferred_keep) when it waits for
 * its turn or behind a barrier (see upstream_submit), so that a request
 * that goes at once costs no copy. */
typedef struct {
    Pending *p; /* owned by the pending table */
    const char *data;
    gsize len;
    GBytes *bytes; /* kept: holds @data */
    QmpFds *fds;   /* the client's message's (a reference when kept) */
    gboolean kept;
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
    /* The unanswered request nothing may be sent after: one that carried
     * descriptors, or an exec-oob sent without an id (upstream_may_send). */
    guint64 barrier;
    GQueue deferred;     /* Deferred *, in the order clients sent them */
    GQueue inband;       /* Pending * sent in-band, in the order sent: the
                          * next in-band answer is the head's */
    Pending *idless;     /* the exec-oob in QEMU without an id, or NULL */
    guint n_oob;         /* exec-oob requests sent and not answered */
    guint n_reserved;    /* in-band ones in QEMU with a reserved id */
    Pending *streaming;  /* whose answer is passed on as it arrives */

    /* Fairness: client in-band requests sent and not answered yet (at most
     * QPH_UPSTREAM_FAIR_WINDOW), and the owners with requests waiting. */
    guint n_fair;
    guint64 n_served;
    GQueue turns;        /* Turn * with requests waiting, least recently
                          * served first */
    GHashTable *owners;  /* owner -> its Turn, until qph_upstream_drop_owner */

    /* Until negotiated: a bound on the wait, and what the peer said. */
    guint greeting_timer;
    GByteArray *raw;   /* what it sent (up to QPH_UPSTREAM_RAW_MAX bytes) */
    gboolean patient;  /* the greeting timeout only warns */

    QmpFramer *framer; /* QEMU's output into messages */
};

/* What the peer sent before negotiation, quoted for an error message. */
static char *
upstream_early_text(QphUpstream *up)
{
    g_autofree char *text = NULL;
    g_autofree char *escaped = NULL;

    if (!up->raw || up->raw->len == 0) {
        return g_strdup("nothing");
    }
    text = g_strndup((const char *)up->raw->data, MIN(up->raw->len, 200));
    escaped = g_strescape(text, NULL);
    return g_strdup_printf("'%s'", escaped);
}

/* The peer is no usable QMP monitor: stop reading it, tell the owner. */
static void G_GNUC_PRINTF(2, 3)
upstream_fail(QphUpstream *up, const char *format, ...)
{
    g_autoptr(GError) error = NULL;
    va_list ap;

    if (up->state == UPSTREAM_CLOSED) {
        return;
    }
    va_start(ap, format);
    error = g_error_new_valist(G_FILE_ERROR, G_FILE_ERROR_INVAL, format,
                               ap);
    va_end(ap);
    up->state = UPSTREAM_CLOSED;
    g_clear_handle_id(&up->greeting_timer, g_source_remove);
    qph_channel_set_reading(up->ch, FALSE);
    if (up->cb.failed) {
        up->cb.failed(up, error, up->opaque);
    }
}

static gboolean
upstream_greeting_timeout(gpointer data)
{
    QphUpstream *up = data;
    g_autofree char *said = upstream_early_text(up);

    up->greeting_timer = 0;
    if (up->patient) {
        g_warning("QEMU's monitor has not greeted and negotiated as QMP "
                  "within %d s; still waiting (it sent %s)",
                  QPH_UPSTREAM_GREETING_S, said);
        return G_SOURCE_REMOVE;
    }
    upstream_fail(up, "QEMU's monitor did not greet and negotiate as QMP "
                      "within %d s (another client may hold it); it sent %s",
                  QPH_UPSTREAM_GREETING_S, said);
    return G_SOURCE_REMOVE;
}

static void
upstream_negotiated(QphUpstream *up, const QmpMessage *msg,
                    gpointer user_data)
{
    if (!msg) {
        return; /* closed: the owner hears of it */
    }
    if (!qmp_message_get(msg, "return")) {
        g_autofree char *text = g_strndup(msg->data, MIN(msg->len, 400));

        upstream_fail(up, "QEMU refused the helper's capabilities "
                          "negotiation: %s", text);
        return;
    }
    g_clear_handle_id(&up->greeting_timer, g_source_remove);
    g_clear_pointer(&up->raw, g_byte_array_unref);
    up->state = UPSTREAM_READY;
    if (up->cb.ready) {
        up->cb.ready(up, up->opaque);
    }
}

/* Record the greeting and negotiate; QEMU's greeting is passed on to every
 * client byte for byte, so keep it exactly, line ending included. */
static void
upstream_handle_greeting(QphUpstream *up, const QmpMessage *msg)
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
    if (!qmp || qmp->type != QMP_JSON_OBJECT) {
        g_autofree char *text = g_strndup(msg->data, MIN(msg->len, 400));

        upstream_fail(up, "QEMU's monitor is not QMP: its first message is "
                          "not a QMP greeting: %s", text);
        return;
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
    qmp_fds_unref(d->fds);
    g_bytes_unref(d->bytes);
    g_free(d);
}

/* @d, kept: a copy on the heap with its own bytes (@d is left as it is). */
static Deferred *
deferred_keep(const Deferred *d)
{
    Deferred *k;

    if (d->kept) {
        return (Deferred *)d;
    }
    k = g_new(Deferred, 1);
    *k = *d;
    k->kept = TRUE;
    k->bytes = g_bytes_new(d->data, d->len);
    k->data = g_bytes_get_data(k->bytes, NULL);
    k->fds = qmp_fds_ref(d->fds);
    return k;
}

/* Send @d now (its descriptors go to the channel; a kept @d is freed); a
 * message with descriptors, or an exec-oob without an id, becomes the
 * barrier. */
static void
upstream_send(QphUpstream *up, Deferred *d)
{
    if (d->bytes) {
        qph_channel_write_bytes_fds(up->ch, d->bytes, d->fds);
    } else {
        qph_channel_write(up->ch, d->data, d->len, d->fds);
    }
    d->p->sent = TRUE;
    if (d->p->reserved) {
        up->n_reserved++;
    }
    if (d->fds || d->p->idless) {
        up->barrier = d->p->id;
    }
    if (d->p->idless) {
        up->idless = d->p;
    }
    if (d->p->inband) {
        g_queue_push_tail(&up->inband, d->p);
    } else {
        up->n_oob++;
    }
    if (d->kept) {
        deferred_free(d);
    }
}

/* The exec-oob request of handle @n, if it is in QEMU. */
static Pending *
upstream_oob_in_qemu(QphUpstream *up, guint64 n)
{
    Pending *p = g_hash_table_lookup(up->pending, &n);

    return p && !p->inband && p->sent ? p : NULL;
}

/*
 * Whether @p may go into QEMU now, barriers aside (the rules that keep
 * every answer's owner known, see the file's top):
 * - an in-band request whose id QEMU would echo as the helper's exec-oob
 *   id for handle N (qph_splice_id_is_reserved()) waits while that
 *   exec-oob request is in QEMU, and that exec-oob request waits while
 *   such an in-band one is: so no answer with that id is ever both
 *   in-band and exec-oob.  Only a client that guesses a live N waits;
 * - an exec-oob request that goes without the helper's id (past QEMU's
 *   limits with it, qph_splice_prepare_oob()) goes only when nothing is
 *   in QEMU, and is a barrier: its answer, with no id or the client's, is
 *   then the only one owed.
 */
static gboolean
upstream_may_send(QphUpstream *up, const Pending *p)
{
    if (p->reserved) {
        return !upstream_oob_in_qemu(up, p->reserved_n);
    }
    if (p->inband) {
        return TRUE;
    }
    if (p->idless) {
        return up->n_oob == 0 && g_queue_is_empty(&up->inband);
    }
    for (GList *l = up->n_reserved ? up->inband.head : NULL; l; l = l->next) {
        const Pending *q = l->data;

        if (q->reserved && q->reserved_n == p->id) {
            return FALSE;
        }
    }
    return TRUE;
}

/* A barrier went, or what was in QEMU changed: send what waited, in
 * order, up to the next barrier or the next that may not go yet. */
static void
upstream_send_deferred(QphUpstream *up)
{
    Deferred *d;

    while (!up->barrier && (d = g_queue_peek_head(&up->deferred)) &&
           upstream_may_send(up, d->p)) {
        g_queue_pop_head(&up->deferred);
        upstream_send(up, d);
    }
}

/*
 * Send @d now, or (kept) behind the barrier; @d is consumed.
 *
 * QEMU keeps only the descriptors of the latest recvmsg() and, with OOB
 * negotiated, reads ahead of the command it is running.  So while a
 * request that carried descriptors is unanswered, nothing more is sent:
 * another client's descriptors would replace them before they are used.
 * The requests upstream_may_send() holds back are barriers too.
 * Requests queue behind a barrier in order.
 */
static void
upstream_submit(QphUpstream *up, Deferred *d)
{
    if (up->barrier || !g_queue_is_empty(&up->deferred) ||
        !upstream_may_send(up, d->p)) {
        g_queue_push_tail(&up->deferred, deferred_keep(d));
        return;
    }
    upstream_send(up, d);
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

static void upstream_retire(QphUpstream *up, Pending *p);

/*
 * The request QEMU's answer @msg belongs to: the exec-oob request in QEMU
 * whose helper's id it carries, or, while one went without an id, that
 * one (nothing else is in QEMU then); else the oldest in-band request, as
 * QEMU answers those in order.  An in-band answer never carries the id of
 * an exec-oob request in QEMU (upstream_may_send), so the order holds
 * whatever ids the clients chose.
 */
static Pending *
upstream_answer_owner(QphUpstream *up, const QmpMessage *msg)
{
    if (up->n_oob > 0) {
        const QmpMessageMember *id = qmp_message_get(msg, "id");
        guint64 n;
        Pending *p;

        if (up->idless) {
            return up->idless;
        }
        if (id &&
            qph_splice_parse_oob_id(msg->data + id->value_offset,
                                    id->value_len, &n) &&
            (p = upstream_oob_in_qemu(up, n))) {
            return p;
        }
    }
    return g_queue_peek_head(&up->inband);
}

static void
upstream_handle_message(QphUpstream *up, const QmpMessage *msg)
{
    Pending *p = NULL;

    if (up->state == UPSTREAM_GREETING) {
        upstream_handle_greeting(up, msg);
        return;
    }
    if (qmp_message_get(msg, "return") ||
        qmp_message_get(msg, "error")) {
        p = upstream_answer_owner(up, msg);
        if (!p) {
            g_warning("Dropping an answer from QEMU to no request: %.*s",
                      (int)MIN(msg->len, 200), msg->data);
            return;
        }
    } else {
        if (qmp_message_get(msg, "event")) {
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
    upstream_retire(up, p);
    if (p->cb) {
        p->cb(up, msg, p->user_data);
    }
    g_free(p);
}

/* @p is answered: out of the tables, and what waited for that goes. */
static void
upstream_retire(QphUpstream *up, Pending *p)
{
    /* Stolen, not removed: the callback may register new requests. */
    g_hash_table_steal(up->pending, &p->id);
    if (p->inband) {
        g_queue_remove(&up->inband, p);
    } else if (up->n_oob > 0) {
        up->n_oob--;
    }
    if (p->reserved && up->n_reserved > 0) {
        up->n_reserved--;
    }
    if (p == up->idless) {
        up->idless = NULL;
    }
    if (p->id == up->barrier) {
        up->barrier = 0;
    }
    if (!g_queue_is_empty(&up->deferred)) {
        upstream_send_deferred(up);
    }
    if (p->fair) {
        /* The next turn goes first: what this reply's owner sends from its
         * callback waits behind the others. */
        up->n_fair--;
        upstream_pump(up);
    }
}

/*
 * Large answers pass through as they arrive, so that the helper holds a
 * window of one, not the whole of it (QEMU's xp or query-qmp-schema of a
 * big machine: tens of MB).  Only when it is known whose answer it is
 * before its id arrives at the end: no exec-oob answer is owed (those
 * come in any order), the message starts as QEMU's successful answers do,
 * and in-band answers come in order, so it is the oldest in-band
 * request's.  Its owner may decline (then it is buffered whole, as
 * before).  The last QPH_UPSTREAM_STREAM_HOLD bytes stay, so that the id
 * is at hand when the message ends.
 */
static gboolean
upstream_stream(QphUpstream *up, const char *start, gsize len)
{
    static const char prefix[] = "{\"return\": ";
    Pending *p = up->streaming;
    gsize n = len - QPH_UPSTREAM_STREAM_HOLD;

    if (!p) {
        p = g_queue_peek_head(&up->inband);
        if (up->n_oob > 0 || !p || !p->stream ||
            memcmp(start, prefix, sizeof(prefix) - 1) != 0) {
            return FALSE;
        }
    }
    /* A cancelled request's answer goes nowhere, as it comes. */
    if (p->cb && !p->stream(up, start, n, FALSE, p->user_data)) {
        p->stream = NULL; /* declined: buffered whole */
        return FALSE;
    }
    up->streaming = p;
    qmp_framer_pass_on(up->framer, n);
    return TRUE;
}

/* The rest of a streamed answer has come: @data is its last bytes. */
static void
upstream_stream_end(QphUpstream *up, const char *data, gsize len)
{
    Pending *p = g_steal_pointer(&up->streaming);

    upstream_retire(up, p);
    if (p->cb) {
        p->stream(up, data, len, TRUE, p->user_data);
    }
    g_free(p);
}

/* Each message the framer finds (QmpStreamerEmit); a stray byte between
 * messages matters only before the greeting (an HMP banner, or no
 * monitor at all); after it QEMU's CRLF and the like are dropped. */
static void
upstream_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    QphUpstream *up = opaque;

    if (up->state == UPSTREAM_CLOSED) {
        return; /* not a QMP monitor after all */
    }
    if (!msg) {
        if (up->state == UPSTREAM_GREETING) {
            g_autofree char *said = upstream_early_text(up);

            upstream_fail(up, "QEMU's monitor is not QMP: it sent %s", said);
        }
        return;
    }
    if (up->streaming) {
        upstream_stream_end(up, msg->data, msg->len);
        return;
    }
    upstream_handle_message(up, msg);
}

static void
upstream_read(QphChannel *ch, const char *buf, gsize len, QmpFds *fds,
              gpointer opaque)
{
    QphUpstream *up = opaque;
    const char *start;
    gsize pending;

    /* QEMU never sends descriptors on the monitor: the channel closes
     * any. */
    if (up->state == UPSTREAM_CLOSED) {
        return;
    }
    if (up->raw && up->raw->len < QPH_UPSTREAM_RAW_MAX) {
        g_byte_array_append(up->raw, (const guint8 *)buf,
                            MIN(len, QPH_UPSTREAM_RAW_MAX - up->raw->len));
    }
    qmp_framer_feed(up->framer, buf, len, NULL);
    if (up->state == UPSTREAM_CLOSED) {
        return;
    }
    start = qmp_framer_peek(up->framer, &pending);
    if (up->state == UPSTREAM_READY && pending >= QPH_UPSTREAM_STREAM_AT &&
        upstream_stream(up, start, pending)) {
        /* passed on; the rest stays */
    } else if (pending > QPH_UPSTREAM_MAX_MESSAGE) {
        g_warning("QEMU sent a message over %u bytes; dropping the "
                  "connection", QPH_UPSTREAM_MAX_MESSAGE);
        qmp_framer_reset(up->framer);
        qph_channel_shutdown(up->ch);
    } else if (qmp_framer_release(up->framer, QPH_UPSTREAM_KEEP_BUFFER)) {
        /* A large answer's buffer is not kept for ever. */
        qph_trim_soon();
    }
}

static void
upstream_fail_pending(QphUpstream *up)
{
    GHashTableIter it;
    gpointer value;
    g_autoptr(GPtrArray) callbacks = g_ptr_array_new_with_free_func(g_free);

    g_queue_clear(&up->inband);
    up->idless = NULL;
    up->n_oob = 0;
    up->n_reserved = 0;
    up->streaming = NULL;
    g_hash_table_iter_init(&it, up->pending);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        g_ptr_array_add(callbacks, value);
        g_hash_table_iter_steal(&it);
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

    if (up->state == UPSTREAM_GREETING || up->state == UPSTREAM_NEGOTIATING) {
        g_autofree char *said = upstream_early_text(up);

        upstream_fail(up, "QEMU's monitor closed the connection before "
                          "negotiating QMP; it sent %s", said);
    }
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
    up->framer = qmp_framer_new(QMP_FRAMER_TRUSTED, upstream_emit, up);
    g_queue_init(&up->deferred);
    g_queue_init(&up->inband);
    g_queue_init(&up->turns);
    up->owners = g_hash_table_new_full(NULL, NULL, NULL,
                                       (GDestroyNotify)turn_free);
    /* Keyed by each Pending's own id: no allocation for the key. */
    up->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                        g_free);
    up->ch = qph_channel_new(fd, upstream_read, upstream_closed, NULL, up);
    up->raw = g_byte_array_new();
    up->greeting_timer = g_timeout_add_seconds(QPH_UPSTREAM_GREETING_S,
                                               upstream_greeting_timeout, up);
    return up;
}

void
qph_upstream_free(QphUpstream *up)
{
    if (!up) {
        return;
    }
    g_clear_handle_id(&up->greeting_timer, g_source_remove);
    g_clear_pointer(&up->raw, g_byte_array_unref);
    qph_channel_free(up->ch);
    g_queue_clear_full(&up->deferred, (GDestroyNotify)deferred_free);
    g_queue_clear(&up->turns);
    g_queue_clear(&up->inband);
    g_hash_table_destroy(up->owners);
    g_hash_table_destroy(up->pending);
    qmp_framer_free(up->framer);
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

static Pending *
upstream_register(QphUpstream *up, QphUpstreamReplyFunc cb,
                  gpointer user_data, gboolean fair)
{
    Pending *p = g_new0(Pending, 1);

    p->id = up->next_id++;
    p->cb = cb;
    p->user_data = user_data;
    p->fair = fair;
    g_hash_table_insert(up->pending, &p->id, p);
    return p;
}

guint64
qph_upstream_forward(QphUpstream *up, gpointer owner, const QmpMessage *msg,
                     const QmpMessageMember *id, QmpFds *fds,
                     QphUpstreamReplyFunc cb, gpointer user_data)
{
    Pending *p = upstream_register(up, cb, user_data, owner != NULL);
    g_autoptr(GString) out = NULL;
    Deferred request = { .p = p, .fds = fds };
    Deferred *d = &request;

    p->inband = owner != NULL;
    if (p->inband && qph_splice_inband_keeps_id(id)) {
        /* As the client sent it: QEMU's limits see what the client's
         * framing checked, and the answer comes by order. */
        d->data = msg->data;
        d->len = msg->len;
        p->reserved = id && qph_splice_id_is_reserved(msg, id,
                                                      &p->reserved_n);
    } else if (p->inband) {
        /* A huge id: without it (fewer tokens and bytes than sent). */
        out = g_string_sized_new(msg->len);
        qph_splice_without_id(out, msg, id);
        d->data = out->str;
        d->len = out->len;
    } else {
        out = g_string_sized_new(msg->len + 32);
        p->idless = !qph_splice_prepare_oob(out, msg, id, p->id,
                                            &qmp_json_qemu_limits);
        d->data = out->str;
        d->len = out->len;
    }
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
            g_queue_push_tail(&t->queue, deferred_keep(d));
        }
        return p->id;
    }
    upstream_submit(up, d);
    return p->id;
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
        guint64 id = d->p->id;

        deferred_free(d);
        g_hash_table_remove(up->pending, &id);
    }
    g_hash_table_remove(up->owners, owner);
}

guint64
qph_upstream_call(QphUpstream *up, const char *command, const char *arguments,
                  QphUpstreamReplyFunc cb, gpointer user_data)
{
    Pending *p = upstream_register(up, cb, user_data, FALSE);
    g_autofree char *text = NULL;
    Deferred d = { .p = p };

    /* In-band and without an id: its answer comes by order. */
    if (arguments) {
        text = g_strdup_printf("{\"execute\": \"%s\", \"arguments\": %s}",
                               command, arguments);
    } else {
        text = g_strdup_printf("{\"execute\": \"%s\"}", command);
    }
    p->inband = TRUE;
    d.data = text;
    d.len = strlen(text);
    upstream_submit(up, &d);
    return p->id;
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

void
qph_upstream_set_patient(QphUpstream *up, gboolean patient)
{
    up->patient = patient;
}

/**
 * qph_upstream_take_fd:
 * After the failed callback: a descriptor for the monitor socket (a
 * duplicate; the upstream reads nothing more from it) and, in @replay,
 * what a client of it would have been sent first: QEMU's greeting if
 * there was one, else the bytes it sent.  -1 if it cannot be had.
 */
int
qph_upstream_take_fd(QphUpstream *up, GBytes **replay)
{
    int fd = qph_channel_is_closed(up->ch)
                 ? -1
                 : fcntl(qph_channel_get_fd(up->ch), F_DUPFD_CLOEXEC, 3);

    if (up->greeting) {
        *replay = g_bytes_ref(up->greeting);
    } else if (up->raw) {
        *replay = g_bytes_new(up->raw->data, up->raw->len);
    } else {
        *replay = NULL;
    }
    return fd;
}

void
qph_upstream_set_stream(QphUpstream *up, guint64 handle,
                        QphUpstreamStreamFunc stream)
{
    Pending *p = g_hash_table_lookup(up->pending, &handle);

    if (p) {
        p->stream = stream;
    }
}
