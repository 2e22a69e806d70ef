/*
 * client.c: one QMP client of the helper (a "session")
 *
 * How a message travels
 * ---------------------
 * 1. A client connects to the helper's socket (proxy.c).  It is accepted
 *    only once QEMU's greeting has been read and the helper has negotiated
 *    upstream (the socket does not exist before that), and is sent QEMU's
 *    greeting byte for byte.
 * 2. Its bytes go through the framer (qmp/qmp-framer.c, strict kind),
 *    which finds each top-level JSON value exactly as QEMU's own parser
 *    would and reports QEMU's errors for malformed input.  Descriptors
 *    that came with the bytes (SCM_RIGHTS) are one QmpFds, attached to the
 *    message they came with and referenced by whoever holds it, up to the
 *    sendmsg that passes them on to QEMU; the last reference closes them.
 * 3. Each message becomes an Entry at the tail of this session's queue
 *    (below) and is checked as QEMU's dispatcher does.  Before negotiation
 *    the session answers everything itself.  After, a command of the
 *    helper's own goes to dispatch.c through the hooks proxy.c gave this
 *    session, and is answered by the helper; anything else is forwarded
 *    (upstream.c): an in-band request byte for byte as the client sent it,
 *    an exec-oob one with only the value of "id" replaced by the helper's
 *    (or an id added, helper/splice.c), and its descriptors in the same
 *    sendmsg.
 * 3a. Fairness: QEMU takes one request from each of its monitors in turn;
 *    through the helper all clients share one monitor.  So the upstream
 *    lets at most QPH_UPSTREAM_FAIR_WINDOW (2) client in-band requests be
 *    in QEMU at once (QEMU runs one at a time; the second keeps it busy
 *    while the helper relays a reply).  The others wait, with their
 *    descriptors, in their client's queue in upstream.c; when QEMU answers
 *    one, the next goes from the client served least recently, as QEMU
 *    picks among its monitors.  A client behind a busy one thus waits for
 *    about one of its requests (the one running, maybe one queued), not
 *    the 8 it may have in flight.  exec-oob requests and the helper's own
 *    upstream calls do not wait; the helper's own commands never go
 *    upstream.  A client that leaves drops its waiting requests.
 * 4. QEMU answers on the one upstream connection.  An in-band answer is
 *    matched by order (QEMU answers in-band requests in the order it read
 *    them) and goes to the client as QEMU wrote it, with the client's id
 *    as QEMU echoed it; an exec-oob answer is matched by the helper's id,
 *    and the client's is put back (re-serialized exactly as QEMU would
 *    have echoed it; removed if the client sent none).  The entry waits in
 *    the queue until the replies before it have gone, so each client sees
 *    its replies in the order it asked.
 * 5. Events (messages with "event") go to every client that has
 *    negotiated (proxy.c), each after the replies QEMU gave before it.
 *    Replies to the helper's own upstream requests (query-commands at
 *    start, thread labels) never reach a client.
 * 6. When QEMU's monitor closes, the helper removes its socket and the
 *    counters it created, and exits.
 *
 * The queue
 * ---------
 * One GQueue of Entry, in the order the client sent them, holds everything
 * this session owes the client.  An entry is
 *   ENTRY_WAITING   read but not started: behind a negotiation being
 *                   validated, or past QPH_CLIENT_MAX_INFLIGHT running;
 *   ENTRY_RUNNING   with QEMU (forwarded) or with dispatch (own command);
 *   ENTRY_STREAMING at the head, its large answer being written as it comes;
 *   ENTRY_READY     its reply (or an event) is ready and waits for the ones
 *                   before it.
 * Entries start in order (client_advance), finish through entry_finish()
 * in whatever order answers come, and are written from the head only;
 * entry_retire() is the one place an entry is freed.  exec-oob entries
 * (from clients that negotiated "oob") hold nothing up: their reply is
 * written the moment it exists.
 *
 * A client's qmp_capabilities is still forwarded once: QEMU, already
 * negotiated upstream, validates the arguments with its own error texts and
 * answers "already complete" if they are fine; only then does the helper
 * accept the negotiation for this client.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/client.h"
#include "helper/channel.h"
#include "helper/reply.h"
#include "helper/splice.h"
#include "helper/upstream.h"
#include "qmp/qmp-framer.h"
#include "qmp/qmp-error.h"
#include "qmp/qmp-request.h"
#include "qph-qapi-commands.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum {
    REQUEST_FORWARD,       /* plain pass-through */
    REQUEST_INTROSPECT,    /* pass-through, the helper's entries spliced in */
    REQUEST_CAPABILITIES,  /* a client's negotiation, validated upstream */
    REQUEST_OWN,           /* one of the helper's own commands */
} RequestKind;

typedef enum {
    ENTRY_WAITING,
    ENTRY_RUNNING,
    ENTRY_STREAMING,
    ENTRY_READY,
} EntryState;

typedef struct {
    EntryState state;
    QphClient *client; /* NULL once the client has gone */
    GList *link;       /* in client->queue; NULL once out of it */
    gboolean oob;      /* exec-oob: written as soon as ready */
    /* ENTRY_WAITING: a copy of the message, with the descriptors that
     * came with it (or its framing error) */
    char *error_text;
    QmpMessage *msg;
    /* ENTRY_RUNNING, ENTRY_STREAMING: the request */
    RequestKind kind;
    char *id_json;     /* the id as QEMU would echo it, or NULL; not kept
                        * for an in-band forward, whose answer has it */
    gboolean id_left_out; /* in-band, forwarded without its huge id */
    char *command;
    guint64 handle;    /* upstream handle while forwarded */
    gboolean upstream;
    QphIntrospectKind introspect;
    GStrv capabilities; /* REQUEST_CAPABILITIES: what the client enables */
    /* ENTRY_READY: what to write (NULL: nothing) */
    GBytes *bytes;
} Entry;

struct QphClient {
    QphUpstream *up;
    const QphClientHooks *hooks;
    gpointer hooks_data;
    QphChannel *ch;
    QmpFramer *framer;
    guint serial;
    uid_t uid;
    gboolean negotiated;
    gboolean oob;
    gboolean paused;
    GQueue queue;        /* Entry *, see "The queue" above */
    GList *first_waiting; /* in queue; every entry after it waits too */
    guint n_running;     /* entries RUNNING or STREAMING, exec-oob too */
    /* While a negotiation is being validated upstream, what follows it
     * depends on its outcome: it waits (bounded by not reading meanwhile). */
    Entry *negotiation;
    Entry *streaming;    /* the one ENTRY_STREAMING, or NULL */
    gboolean advancing;  /* inside client_advance() */
    QmpFds *kept;        /* a message's descriptors it did not pass on */
    /* Output past QPH_CLIENT_MAX_QUEUED: is the client still reading? */
    guint stall_timer;
    guint64 stall_sent;  /* qph_channel_get_sent() at the last progress */
    gint64 stall_since;  /* monotonic time of that progress */
};

static void client_advance(QphClient *client);
static void client_start(QphClient *client, Entry *e, const QmpMessage *msg,
                         const char *error_text);

/*
 * Descriptors a message came with that it did not take upstream (the
 * helper answered or rejected it): QEMU keeps what its latest recvmsg()
 * brought until a getfd or add-fd takes it or newer ones replace it, so
 * they wait for the session's next message.  *@fds is taken.
 */
static void
client_keep_fds(QphClient *client, QmpFds **fds)
{
    if (client->kept) {
        g_clear_pointer(fds, qmp_fds_unref); /* newer ones came meanwhile */
        return;
    }
    client->kept = g_steal_pointer(fds);
}

/* Resume or pause reading the client according to its backlog. */
static void
client_update_flow(QphClient *client)
{
    gboolean over = client->negotiation || client->first_waiting ||
                    client->n_running >= QPH_CLIENT_MAX_INFLIGHT ||
                    qph_channel_get_queued(client->ch) >= QPH_CLIENT_MAX_QUEUED;

    if (over != client->paused) {
        client->paused = over;
        qph_channel_set_reading(client->ch, !over);
    }
}

/* Not a graceful shutdown: that would wait for the client to read what it
 * never reads, and keep its socket and queue forever. */
static void
client_disconnect_stalled(QphClient *client, const char *why)
{
    g_message("Client %u %s (%zu bytes queued); disconnecting it",
              client->serial, why, qph_channel_get_queued(client->ch));
    g_clear_handle_id(&client->stall_timer, g_source_remove);
    qph_channel_abort(client->ch);
}

/* Every second while output is past QPH_CLIENT_MAX_QUEUED: a client that
 * took nothing for QPH_CLIENT_STALL_S is not reading. */
static gboolean
client_stall_check(gpointer data)
{
    QphClient *client = data;
    guint64 sent = qph_channel_get_sent(client->ch);
    gint64 now = g_get_monotonic_time();

    if (qph_channel_get_queued(client->ch) <= QPH_CLIENT_MAX_QUEUED) {
        client->stall_timer = 0;
        return G_SOURCE_REMOVE;
    }
    if (sent != client->stall_sent) {
        client->stall_sent = sent;
        client->stall_since = now;
    } else if (now - client->stall_since >=
               QPH_CLIENT_STALL_S * G_USEC_PER_SEC) {
        client->stall_timer = 0; /* removed by returning */
        client_disconnect_stalled(client, "has read none of its output for "
                                          G_STRINGIFY(QPH_CLIENT_STALL_S)
                                          " s");
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void
client_write(QphClient *client, GBytes *bytes)
{
    gsize queued;

    qph_channel_write_bytes(client->ch, bytes);
    queued = qph_channel_get_queued(client->ch);
    if (queued > QPH_CLIENT_HARD_QUEUED) {
        client_disconnect_stalled(client, "does not keep up with its output");
    } else if (queued > QPH_CLIENT_MAX_QUEUED && !client->stall_timer &&
               !qph_channel_is_closed(client->ch)) {
        client->stall_sent = qph_channel_get_sent(client->ch);
        client->stall_since = g_get_monotonic_time();
        client->stall_timer = g_timeout_add_seconds(1, client_stall_check,
                                                    client);
    }
}

/* ---- The queue ------------------------------------------------------- */

static void
entry_free(Entry *e)
{
    g_free(e->error_text);
    g_clear_pointer(&e->msg, qmp_message_free);
    g_free(e->id_json);
    g_free(e->command);
    g_strfreev(e->capabilities);
    g_clear_pointer(&e->bytes, g_bytes_unref);
    g_free(e);
}

/* The one place an entry is freed: written out, answered after its client
 * left, or dropped with its client. */
static void
entry_retire(Entry *e)
{
    QphClient *client = e->client;

    if (client && e->link) {
        if (client->first_waiting == e->link) {
            client->first_waiting = e->link->next;
        }
        g_queue_delete_link(&client->queue, e->link);
    }
    entry_free(e);
}

static Entry *
client_append(QphClient *client)
{
    Entry *e = g_new0(Entry, 1);

    e->state = ENTRY_WAITING;
    e->client = client;
    g_queue_push_tail(&client->queue, e);
    e->link = client->queue.tail;
    return e;
}

/* Write out every ready entry at the head of the queue; exec-oob entries
 * still running hold nothing up. */
static void
client_flush(QphClient *client)
{
    GList *l = client->queue.head;

    while (l) {
        Entry *e = l->data;
        GList *next = l->next;

        if (e->state == ENTRY_READY) {
            if (e->bytes) {
                client_write(client, e->bytes);
            }
            entry_retire(e);
        } else if (!(e->oob && e->state == ENTRY_RUNNING)) {
            break;
        }
        l = next;
    }
}

/*
 * The one way an entry's work ends: its reply @bytes (owned; NULL when
 * there is none to write) is ready.  It is written once the entries before
 * it have been, an exec-oob one at once (but never into the middle of an
 * answer being streamed: right after it).  Its client gone, it is retired.
 */
static void
entry_finish(Entry *e, GBytes *bytes)
{
    QphClient *client = e->client;

    if (!client) {
        g_clear_pointer(&bytes, g_bytes_unref);
        entry_retire(e);
        return;
    }
    if (e->state == ENTRY_RUNNING || e->state == ENTRY_STREAMING) {
        client->n_running--;
    }
    if (client->negotiation == e) {
        client->negotiation = NULL;
    }
    if (client->streaming == e) {
        client->streaming = NULL;
    }
    e->state = ENTRY_READY;
    e->bytes = bytes;
    if (e->oob && client->streaming) {
        g_queue_unlink(&client->queue, e->link);
        g_queue_insert_after_link(&client->queue, client->streaming->link,
                                  e->link);
    } else if (e->oob) {
        if (bytes) {
            client_write(client, bytes);
        }
        entry_retire(e);
    }
    client_flush(client);
    client_advance(client);
}

/* Start waiting entries in order while nothing holds them (a negotiation
 * being validated, QPH_CLIENT_MAX_INFLIGHT running); then read the client
 * or not according to its backlog. */
static void
client_advance(QphClient *client)
{
    if (client->advancing) {
        return; /* the outer loop goes on */
    }
    client->advancing = TRUE;
    while (client->first_waiting && !client->negotiation &&
           client->n_running < QPH_CLIENT_MAX_INFLIGHT) {
        Entry *e = client->first_waiting->data;
        g_autofree char *error_text = g_steal_pointer(&e->error_text);
        g_autoptr(QmpMessage) msg = g_steal_pointer(&e->msg);

        client->first_waiting = client->first_waiting->next;
        client_start(client, e, msg, error_text);
    }
    client->advancing = FALSE;
    client_update_flow(client);
}

/* Keep @msg with the descriptors that came with it (or its framing
 * error) in a waiting entry. */
static void
client_wait(QphClient *client, const QmpMessage *msg, const char *error_text)
{
    Entry *e = client_append(client);

    if (error_text) {
        e->error_text = g_strdup(error_text);
    } else {
        e->msg = qmp_message_copy(msg);
    }
    if (!client->first_waiting) {
        client->first_waiting = e->link;
    }
}

/* ---- Forwarded replies ------------------------------------------------ */

static char *
entry_introspect_extra(gboolean after_elements, gpointer data)
{
    Entry *e = data;
    QphClient *client = e->client;

    return client->hooks->introspect_extra(e->introspect, after_elements,
                                           client->hooks_data);
}

/* QEMU's answer for the client: as it is for in-band requests, with the
 * client's id put back for exec-oob and a huge id (helper/splice.c). */
static GBytes *
entry_reply_bytes(Entry *e, const QmpMessage *msg)
{
    QphReplyExtraFunc extra =
        e->kind == REQUEST_INTROSPECT ? entry_introspect_extra : NULL;

    if (!e->oob && !e->id_left_out) {
        return qph_reply_forward(msg, extra, e);
    }
    return qph_reply_rewrite(msg, e->id_json, extra, e);
}

static gboolean
reply_is_already_negotiated(const QmpMessage *msg)
{
    const QmpMessageMember *err = qmp_message_get(msg, "error");
    static const char needle[] = "\"CommandNotFound\"";

    return err && g_strstr_len(msg->data + err->value_offset, err->value_len,
                               needle) != NULL;
}

static void client_accept_capabilities(Entry *e);

/* The first in-band entry not yet written (exec-oob ones stand aside). */
static Entry *
client_next_owed(QphClient *client)
{
    for (GList *l = client->queue.head; l; l = l->next) {
        Entry *e = l->data;

        if (!(e->oob && e->state == ENTRY_RUNNING)) {
            return e;
        }
    }
    return NULL;
}

/*
 * A large answer to an in-band request as it comes
 * (QphUpstreamStreamFunc): written at once when it is the next one the
 * client is owed, else declined (and buffered).  QEMU's bytes as they are,
 * the client's id in the last ones (put there, after "return" as QEMU
 * prints it, when it was left out).
 */
static gboolean
entry_upstream_stream(QphUpstream *up, const char *data, gsize len,
                      gboolean final, gpointer user_data)
{
    Entry *e = user_data;
    QphClient *client = e->client;
    GString *tail;

    if (!final) {
        if (e->state != ENTRY_STREAMING) {
            if (!client || client_next_owed(client) != e) {
                return FALSE;
            }
            e->state = ENTRY_STREAMING;
            client->streaming = e;
        }
        {
            g_autoptr(GBytes) part = g_bytes_new(data, len);

            client_write(client, part);
        }
        return TRUE;
    }
    e->upstream = FALSE;
    tail = g_string_sized_new(len + 2);
    if (e->id_left_out && e->id_json && len > 0) {
        g_string_append_len(tail, data, len - 1); /* up to the brace */
        g_string_append_printf(tail, ", \"id\": %s}", e->id_json);
    } else {
        g_string_append_len(tail, data, len);
    }
    g_string_append(tail, "\r\n");
    entry_finish(e, g_string_free_to_bytes(tail));
    return TRUE;
}

static void
entry_upstream_reply(QphUpstream *up, const QmpMessage *msg,
                     gpointer user_data)
{
    Entry *e = user_data;

    e->upstream = FALSE;
    if (!msg) {
        /* QEMU went away; the helper is about to exit. */
        entry_finish(e, NULL);
        return;
    }
    if (e->client && e->kind == REQUEST_CAPABILITIES &&
        reply_is_already_negotiated(msg)) {
        /* Arguments valid as far as QEMU is concerned: decide here. */
        client_accept_capabilities(e);
        return;
    }
    if (e->client) {
        e->client->hooks->note_reply(e->command, msg, e->client->hooks_data);
    }
    entry_finish(e, e->client ? entry_reply_bytes(e, msg) : NULL);
}

/* ---- Requests answered here ------------------------------------------- */

static void
client_accept_capabilities(Entry *e)
{
    QphClient *client = e->client;
    g_autoptr(GString) unavailable = NULL;
    gboolean oob = FALSE;

    for (guint i = 0; e->capabilities && e->capabilities[i]; i++) {
        const char *cap = e->capabilities[i];

        if (!qph_upstream_offers(client->up, cap)) {
            if (!unavailable) {
                unavailable = g_string_new(cap);
            } else {
                g_string_append_printf(unavailable, ", %s", cap);
            }
        }
        if (g_str_equal(cap, "oob")) {
            oob = TRUE;
        }
    }
    if (unavailable) {
        g_autofree char *desc = g_strdup_printf("Capability %s not available",
                                                unavailable->str);

        entry_finish(e, qph_reply_error_text(e->id_json, "GenericError",
                                             desc));
        return;
    }
    client->negotiated = TRUE;
    client->oob = oob;
    {
        g_autoptr(QmpJson) empty = qmp_json_new(QMP_JSON_OBJECT);

        entry_finish(e, qph_reply_return(e->id_json, empty));
    }
}

static void
entry_own_done(gpointer data, char *ret_json, GError *error)
{
    Entry *e = data;
    g_autofree char *owned_ret = ret_json;
    g_autoptr(GError) owned_error = error;

    if (!e->client) {
        entry_finish(e, NULL);
    } else if (error) {
        entry_finish(e, qph_reply_error(e->id_json, error));
    } else {
        entry_finish(e, qph_reply_return_text(e->id_json, ret_json));
    }
}

/* The capability names in a qmp_capabilities request, as far as they are
 * strings; QEMU validates the rest. */
static GStrv
request_capabilities(const QmpMessage *msg, const QmpRequest *qreq)
{
    g_autoptr(GPtrArray) caps = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(QmpJson) args = NULL;
    QmpJson *enable;

    if (qreq->arguments) {
        g_autofree char *error_text = NULL;

        args = qmp_json_parse_value(msg->data + qreq->arguments->value_offset,
                                    qreq->arguments->value_len, &error_text);
    }
    enable = args ? qmp_json_object_get(args, "enable") : NULL;
    if (enable && enable->type == QMP_JSON_ARRAY) {
        for (guint i = 0; i < enable->elements->len; i++) {
            QmpJson *e = enable->elements->pdata[i];

            if (e->type == QMP_JSON_STRING) {
                g_ptr_array_add(caps, g_strdup(e->s));
            }
        }
    }
    g_ptr_array_add(caps, NULL);
    return (GStrv)g_ptr_array_steal(caps, NULL);
}

/* ---- A message in --------------------------------------------------- */

/* Start @e, for @msg or its framing error: answer it here, dispatch it, or
 * forward it. */
static void
client_start(QphClient *client, Entry *e, const QmpMessage *msg,
             const char *error_text)
{
    g_auto(QmpRequest) qreq = { 0 };
    g_autofree char *check_error = NULL;
    g_autoptr(QmpFds) fds = NULL;
    gboolean own;

    if (error_text) {
        /* Framing errors carry no id and keep their place in the queue;
         * descriptors stay for the next message (the framer gives them
         * to it), as in QEMU. */
        entry_finish(e, qph_reply_error_text(NULL, "GenericError",
                                             error_text));
        return;
    }
    /* The message's own descriptors replace those an earlier one left;
     * without any, it takes those. */
    if (msg->fds) {
        g_clear_pointer(&client->kept, qmp_fds_unref);
        fds = qmp_fds_ref(msg->fds);
    } else {
        fds = g_steal_pointer(&client->kept);
    }

    if (!qmp_request_check(msg, client->oob, &qreq, &check_error)) {
        g_autofree char *id = NULL;

        if (qreq.id) {
            id = qmp_request_format_id(msg, qreq.id);
        }
        client_keep_fds(client, &fds);
        /* An exec-oob QEMU rejects is answered at once, out of band. */
        e->oob = qreq.oob;
        entry_finish(e, qph_reply_error_text(id, "GenericError", check_error));
        return;
    }

    e->state = ENTRY_RUNNING;
    client->n_running++;
    e->oob = qreq.oob;
    e->command = g_strdup(qreq.command);
    own = client->negotiated &&
          client->hooks->owns_command(qreq.command, client->hooks_data);
    /* An in-band forward's answer carries the client's id as QEMU echoes
     * it: only the others need it here. */
    e->id_left_out = !own && !qreq.oob &&
                     !qph_splice_inband_keeps_id(qreq.id);
    if (qreq.id && (!client->negotiated || own || qreq.oob ||
                    e->id_left_out)) {
        e->id_json = qmp_request_format_id(msg, qreq.id);
    }

    if (!client->negotiated) {
        if (!g_str_equal(qreq.command, "qmp_capabilities")) {
            client_keep_fds(client, &fds);
            entry_finish(e, qph_reply_error_text(
                                e->id_json, "CommandNotFound",
                                "Expecting capabilities negotiation with "
                                "'qmp_capabilities'"));
            return;
        }
        e->kind = REQUEST_CAPABILITIES;
        e->capabilities = request_capabilities(msg, &qreq);
        client->negotiation = e;
        /* Validated upstream, answered here: QEMU would not take them. */
        client_keep_fds(client, &fds);
    } else if (own) {
        g_autoptr(QmpJson) args = NULL;
        g_autofree char *args_error = NULL;
        const QphQmpCommand *cmd = qph_qmp_command_lookup(qreq.command);

        client_keep_fds(client, &fds);
        if (qreq.oob && !cmd->allow_oob) {
            /* QEMU's qmp_dispatch() for a command without allow-oob in
             * its schema, answered at once as any exec-oob. */
            g_autofree char *desc = g_strdup_printf(
                "The command %s does not support OOB", qreq.command);

            entry_finish(e, qph_reply_error_text(e->id_json, "GenericError",
                                                 desc));
            return;
        }
        if (qreq.arguments) {
            args = qmp_json_parse_value(
                msg->data + qreq.arguments->value_offset,
                qreq.arguments->value_len, &args_error);
        }
        e->kind = REQUEST_OWN;
        client->hooks->dispatch(qreq.command, g_steal_pointer(&args),
                                entry_own_done, e, client->hooks_data);
        client_update_flow(client);
        return;
    } else {
        e->introspect = qph_introspect_kind(qreq.command);
        e->kind = e->introspect != QPH_INTROSPECT_NONE ? REQUEST_INTROSPECT
                                                       : REQUEST_FORWARD;
    }

    e->upstream = TRUE;
    /* In-band requests wait for their turn among the clients' (Fairness,
     * upstream.c); exec-oob goes at once, as in QEMU. */
    e->handle = qph_upstream_forward(client->up, e->oob ? NULL : client, msg,
                                     qreq.id, fds, entry_upstream_reply, e);
    if (e->kind == REQUEST_FORWARD && !e->oob) {
        qph_upstream_set_stream(client->up, e->handle, entry_upstream_stream);
    }
    client_update_flow(client);
}

static void
client_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    QphClient *client = opaque;

    /* One read may hold thousands of requests: past the in-flight
     * limit they wait here, in order, instead of going upstream where
     * they would delay every other client's commands. */
    if (client->negotiation || client->first_waiting ||
        client->n_running >= QPH_CLIENT_MAX_INFLIGHT) {
        client_wait(client, msg, error_text);
        return;
    }
    client_start(client, client_append(client), msg, error_text);
}

static void
client_read(QphChannel *ch, const char *buf, gsize len, QmpFds *fds,
            gpointer opaque)
{
    QphClient *client = opaque;

    /* The descriptors go with the next message framed. */
    qmp_framer_feed(client->framer, buf, len, fds);
    /* Framing errors queue output too (QEMU answers each stray byte):
     * past QPH_CLIENT_MAX_QUEUED the client is not read until it reads. */
    client_update_flow(client);
}

static void
client_closed(QphChannel *ch, gpointer opaque)
{
    QphClient *client = opaque;

    client->hooks->closed(client, client->hooks_data);
}

static void
client_drained(QphChannel *ch, gpointer opaque)
{
    QphClient *client = opaque;

    /* Below the low-water mark is below QPH_CLIENT_MAX_QUEUED: the stall
     * check has nothing left to watch, and would only wake an idle loop. */
    g_clear_handle_id(&client->stall_timer, g_source_remove);
    client_update_flow(client);
}

QphClient *
qph_client_new(QphUpstream *upstream, const QphClientHooks *hooks,
               gpointer data, int fd, guint serial)
{
    QphClient *client = g_new0(QphClient, 1);
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);

    client->up = upstream;
    client->hooks = hooks;
    client->hooks_data = data;
    client->serial = serial;
    client->uid = (uid_t)-1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
        client->uid = cred.uid;
    }
    g_queue_init(&client->queue);
    client->framer = qmp_framer_new(QMP_FRAMER_STRICT, client_emit, client);
    client->ch = qph_channel_new(fd, client_read, client_closed,
                                 client_drained, client);
    /* Nothing is read before the greeting has gone out. */
    qph_channel_set_reading(client->ch, FALSE);
    return client;
}

void
qph_client_start(QphClient *client, GBytes *greeting)
{
    qph_channel_write_bytes(client->ch, greeting);
    qph_channel_set_reading(client->ch, TRUE);
}

void
qph_client_free(QphClient *client)
{
    Entry *e;

    if (!client) {
        return;
    }
    /* Requests still waiting for their turn are never sent; replies still
     * owed to this client are dropped when they come. */
    qph_upstream_drop_owner(client->up, client);
    while ((e = g_queue_pop_head(&client->queue))) {
        e->link = NULL;
        e->client = NULL;
        if (e->upstream) {
            qph_upstream_cancel(client->up, e->handle);
        } else if (e->kind == REQUEST_OWN && e->state == ENTRY_RUNNING) {
            continue; /* dispatch finishes it, and entry_finish() retires it */
        }
        entry_retire(e);
    }
    g_clear_handle_id(&client->stall_timer, g_source_remove);
    g_clear_pointer(&client->kept, qmp_fds_unref);
    qph_channel_free(client->ch);
    qmp_framer_free(client->framer);
    g_free(client);
}

/*
 * An event goes out after every reply that came from QEMU before it, as on
 * QEMU's own monitor.  Replies wait in the queue for earlier ones, so an
 * event written at once would overtake a reply that is ready but waiting
 * (a device_del answered while an earlier own command waits for the
 * resctrl lock): it takes a place right after the last ready entry.  Later
 * entries are answers QEMU had not given yet: the event goes before them.
 */
void
qph_client_send_event(QphClient *client, GBytes *line)
{
    GList *l = client->first_waiting ? client->first_waiting->prev
                                     : client->queue.tail;
    Entry *e;

    if (!client->negotiated) {
        return;
    }
    for (; l; l = l->prev) {
        if (((Entry *)l->data)->state == ENTRY_READY) {
            break;
        }
    }
    if (!l) {
        client_write(client, line);
        return;
    }
    e = g_new0(Entry, 1);
    e->state = ENTRY_READY;
    e->client = client;
    e->bytes = g_bytes_ref(line);
    g_queue_insert_after(&client->queue, l, e);
    e->link = l->next;
}


guint
qph_client_get_serial(const QphClient *client)
{
    return client->serial;
}

uid_t
qph_client_get_uid(const QphClient *client)
{
    return client->uid;
}

