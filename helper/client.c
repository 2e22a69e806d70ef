/*
 * client.c: one QMP client of the helper (a "session")
 *
 * Each message the framing layer finds becomes a Request.  A request that
 * is not out-of-band takes a slot at the tail of the session's reply queue;
 * slots are filled in whatever order answers come (from QEMU, from the
 * helper's own commands, or at once for errors) and written out from the
 * head only, so the client sees replies in the order it asked, as with
 * QEMU.  exec-oob requests (from clients that negotiated "oob") have no
 * slot: their reply is written the moment it exists.
 *
 * Before negotiation every request is answered here, as QEMU would.  A
 * client's qmp_capabilities is still forwarded once: QEMU, already
 * negotiated upstream, validates the arguments with its own error texts and
 * answers "already complete" if they are fine; only then does the helper
 * accept the negotiation for this client.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/client.h"
#include "helper/client-priv.h"
#include "helper/channel.h"
#include "helper/reply.h"
#include "helper/upstream.h"
#include "qmp/json-streamer.h"
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

typedef struct {
    gboolean ready;
    GBytes *bytes;
} ReplySlot;

typedef struct {
    QphClient *client; /* NULL once the client has gone */
    RequestKind kind;
    ReplySlot *slot;   /* NULL for exec-oob */
    char *id_json;     /* the id as QEMU would echo it, or NULL */
    char *command;
    guint64 handle;    /* upstream handle while forwarded */
    gboolean upstream;
    gboolean streaming; /* its answer is being written as it comes */
    QphIntrospectKind introspect;
    GStrv capabilities; /* REQUEST_CAPABILITIES: what the client enables */
} Request;

struct QphClient {
    QphUpstream *up;
    const QphClientHooks *hooks;
    gpointer hooks_data;
    QphChannel *ch;
    QmpStreamer *streamer;
    guint serial;
    uid_t uid;
    gboolean negotiated;
    gboolean oob;
    gboolean paused;
    GQueue slots;     /* ReplySlot *, request order */
    GPtrArray *inflight; /* Request * awaiting an answer */
    int *fds;         /* descriptors waiting for the next message */
    guint n_fds;
    /* While a negotiation is being validated upstream, what follows it
     * depends on its outcome: hold it (bounded by not reading meanwhile). */
    gboolean holding;
    gboolean releasing; /* inside client_release() */
    gboolean streaming; /* a large answer is being written as it comes */
    /* Output past QPH_CLIENT_MAX_QUEUED: is the client still reading? */
    guint stall_timer;
    guint64 stall_sent;  /* qph_channel_get_sent() at the last progress */
    gint64 stall_since;  /* monotonic time of that progress */
    GQueue held;      /* HeldMessage *; also requests past the in-flight
                       * limit */
};

/* A message (or framing error) kept for later, with its descriptors. */
typedef struct {
    char *error_text;
    char *data;
    QmpMessage msg;
    int *fds;
    guint n_fds;
} HeldMessage;

static void client_release(QphClient *client);

static void
slot_free(ReplySlot *slot)
{
    g_clear_pointer(&slot->bytes, g_bytes_unref);
    g_free(slot);
}

static void
request_free(Request *req)
{
    g_free(req->id_json);
    g_free(req->command);
    g_strfreev(req->capabilities);
    g_free(req);
}

/* Close and free descriptors no message will carry. */
static void
fds_close(int *fds, guint n_fds)
{
    for (guint i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    g_free(fds);
}

static void
client_close_fds(QphClient *client)
{
    fds_close(g_steal_pointer(&client->fds), client->n_fds);
    client->n_fds = 0;
}

/*
 * Descriptors a message came with that it did not take upstream (the
 * helper answered or rejected it): QEMU keeps what its latest recvmsg()
 * brought until a getfd or add-fd takes it or newer ones replace it, so
 * they wait for the session's next message.
 */
static void
client_keep_fds(QphClient *client, int *fds, guint n_fds)
{
    if (n_fds == 0 || client->fds) {
        fds_close(fds, n_fds); /* newer ones came meanwhile */
        return;
    }
    client->fds = fds;
    client->n_fds = n_fds;
}

/* Resume or pause reading the client according to its backlog. */
static void
client_update_flow(QphClient *client)
{
    gboolean over = client->holding || !g_queue_is_empty(&client->held) ||
                    client->inflight->len >= QPH_CLIENT_MAX_INFLIGHT ||
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

/* Write out every ready slot at the head of the queue. */
static void
client_flush_slots(QphClient *client)
{
    ReplySlot *slot;

    while ((slot = g_queue_peek_head(&client->slots)) && slot->ready) {
        g_queue_pop_head(&client->slots);
        if (slot->bytes) {
            client_write(client, slot->bytes);
        }
        slot_free(slot);
    }
}

static ReplySlot *
client_new_slot(QphClient *client)
{
    ReplySlot *slot = g_new0(ReplySlot, 1);

    g_queue_push_tail(&client->slots, slot);
    return slot;
}

/* Deliver @bytes (owned) for @slot, or at once when @slot is NULL. */
static void
client_deliver(QphClient *client, ReplySlot *slot, GBytes *bytes)
{
    if (!slot && client->streaming) {
        /* Not into the middle of the answer being written: right after. */
        slot = g_new0(ReplySlot, 1);
        g_queue_insert_after(&client->slots, client->slots.head, slot);
    }
    if (!slot) {
        client_write(client, bytes);
        g_bytes_unref(bytes);
        return;
    }
    slot->bytes = bytes;
    slot->ready = TRUE;
    client_flush_slots(client);
}

static void
request_finish(Request *req, GBytes *bytes)
{
    QphClient *client = req->client;
    gboolean release = req->kind == REQUEST_CAPABILITIES;

    if (client) {
        g_ptr_array_remove_fast(client->inflight, req);
        client_deliver(client, req->slot, bytes);
    } else if (bytes) {
        g_bytes_unref(bytes);
    }
    request_free(req);
    if (client && (release || (!client->holding &&
                               !g_queue_is_empty(&client->held)))) {
        client_release(client);
    } else if (client) {
        client_update_flow(client);
    }
}

/* ---- Forwarded replies ------------------------------------------------ */

typedef struct {
    gsize offset;
    gsize remove;
    const char *insert;
    gsize insert_len;
} Edit;

static gint
edit_compare(gconstpointer a, gconstpointer b)
{
    const Edit *x = a, *y = b;

    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/**
 * qph_client_rewrite_reply:
 * QEMU's reply @msg with the helper's id turned back into the client's
 * @id_json (or removed, when the client sent none; or put where QEMU would
 * print it, when the request went without an id) and, when @extra is
 * given, the text it returns inserted before the closing ']' of the
 * returned list (the helper's own introspection entries).  Pure: no
 * session state, so tests/fuzz can drive it with any scanned message.
 */
GBytes *
qph_client_rewrite_reply(const QphScannedMessage *msg, const char *id_json,
                         QphReplyExtraFunc extra_func, gpointer extra_data)
{
    const QphScanMember *id = qph_scanned_message_get(msg, "id");
    const QphScanMember *ret = qph_scanned_message_get(msg, "return");
    g_autofree char *extra = NULL;
    g_autofree char *id_insert = NULL;
    Edit edits[2];
    guint n_edits = 0;
    GString *out = g_string_sized_new(msg->len + 64);
    gsize pos = 0;

    if (id && id_json) {
        edits[n_edits++] = (Edit){ id->value_offset, id->value_len,
                                   id_json, strlen(id_json) };
    } else if (id) {
        guint idx = id - msg->members;
        gsize start, end;

        if (idx > 0) {
            const QphScanMember *prev = &msg->members[idx - 1];

            start = prev->value_offset + prev->value_len;
            end = id->value_offset + id->value_len;
        } else if (msg->n_members > 1) {
            start = id->key_offset;
            end = msg->members[1].key_offset;
        } else {
            start = id->key_offset;
            end = id->value_offset + id->value_len;
        }
        edits[n_edits++] = (Edit){ start, end - start, NULL, 0 };
    } else if (id_json && msg->n_members > 0) {
        /* Sent without an id (qph_upstream_prepare_forward): put the
         * client's where QEMU prints it, by QDict order. */
        g_autofree char *first = g_strndup(msg->members[0].key,
                                           msg->members[0].key_len);
        const char *keys[] = { first, "id" };
        const QphScanMember *last = &msg->members[msg->n_members - 1];
        guint order[2];

        qmp_qdict_order_into(keys, 2, order);
        id_insert = order[0] == 1
                        ? g_strdup_printf("\"id\": %s, ", id_json)
                        : g_strdup_printf(", \"id\": %s", id_json);
        edits[n_edits++] =
            (Edit){ order[0] == 1 ? msg->members[0].key_offset
                                  : last->value_offset + last->value_len,
                    0, id_insert, strlen(id_insert) };
    }
    if (extra_func && ret && ret->value_len >= 2 &&
        msg->data[ret->value_offset] == '[') {
        gboolean empty = TRUE;

        for (gsize i = ret->value_offset + 1;
             i < ret->value_offset + ret->value_len - 1; i++) {
            if (!g_ascii_isspace(msg->data[i])) {
                empty = FALSE;
                break;
            }
        }
        extra = extra_func(!empty, extra_data);
        if (extra) {
            edits[n_edits++] =
                (Edit){ ret->value_offset + ret->value_len - 1, 0, extra,
                        strlen(extra) };
        }
    }
    qsort(edits, n_edits, sizeof(Edit), edit_compare);
    for (guint i = 0; i < n_edits; i++) {
        g_string_append_len(out, msg->data + pos, edits[i].offset - pos);
        g_string_append_len(out, edits[i].insert, edits[i].insert_len);
        pos = edits[i].offset + edits[i].remove;
    }
    g_string_append_len(out, msg->data + pos, msg->len - pos);
    g_string_append(out, "\r\n");
    return g_string_free_to_bytes(out);
}

static char *
request_introspect_extra(gboolean after_elements, gpointer data)
{
    Request *req = data;

    QphClient *client = req->client;

    return client->hooks->introspect_extra(req->introspect, after_elements,
                                           client->hooks_data);
}

static GBytes *
request_rewrite_reply(Request *req, const QphScannedMessage *msg)
{
    return qph_client_rewrite_reply(
        msg, req->id_json,
        req->kind == REQUEST_INTROSPECT ? request_introspect_extra : NULL, req);
}

static gboolean
reply_is_already_negotiated(const QphScannedMessage *msg)
{
    const QphScanMember *err = qph_scanned_message_get(msg, "error");
    static const char needle[] = "\"CommandNotFound\"";

    return err && g_strstr_len(msg->data + err->value_offset, err->value_len,
                               needle) != NULL;
}

static void client_accept_capabilities(Request *req);

/*
 * A large answer as it comes (QphUpstreamStreamFunc): written at once when
 * it is the next one the client is owed, else declined (and buffered).
 * The last bytes carry the helper's id, or none: the client's goes there,
 * after "return" as QEMU prints it.
 */
static gboolean
request_upstream_stream(QphUpstream *up, const char *data, gsize len,
                        gboolean final, gpointer user_data)
{
    Request *req = user_data;
    QphClient *client = req->client;
    static const char id_key[] = ", \"id\": ";
    gsize cut;
    const char *id;
    GString *tail;

    if (!final) {
        if (!req->streaming) {
            if (!client || g_queue_peek_head(&client->slots) != req->slot) {
                return FALSE;
            }
            req->streaming = TRUE;
            client->streaming = TRUE;
        }
        {
            g_autoptr(GBytes) part = g_bytes_new(data, len);

            client_write(client, part);
        }
        return TRUE;
    }
    req->upstream = FALSE;
    cut = len - 1; /* the closing brace */
    id = g_strrstr_len(data, len, id_key);
    if (id) {
        gsize digits = id + strlen(id_key) - data;

        while (digits < len - 1 && g_ascii_isdigit(data[digits])) {
            digits++;
        }
        if (digits == len - 1) {
            cut = id - data;
        }
    }
    tail = g_string_new_len(data, cut);
    if (req->id_json) {
        g_string_append_printf(tail, "%s%s", id_key, req->id_json);
    }
    g_string_append(tail, "}\r\n");
    client->streaming = FALSE;
    request_finish(req, g_string_free_to_bytes(tail));
    return TRUE;
}

static void
request_upstream_reply(QphUpstream *up, const QphScannedMessage *msg,
                       gpointer user_data)
{
    Request *req = user_data;

    req->upstream = FALSE;
    if (!msg) {
        /* QEMU went away; the helper is about to exit. */
        request_finish(req, NULL);
        return;
    }
    if (req->client && req->kind == REQUEST_CAPABILITIES &&
        reply_is_already_negotiated(msg)) {
        /* Arguments valid as far as QEMU is concerned: decide here. */
        client_accept_capabilities(req);
        return;
    }
    if (req->client) {
        req->client->hooks->note_reply(req->command, msg,
                                       req->client->hooks_data);
    }
    request_finish(req, req->client ? request_rewrite_reply(req, msg) : NULL);
}

/* ---- Requests answered here ------------------------------------------- */

static void
client_accept_capabilities(Request *req)
{
    QphClient *client = req->client;
    QphUpstream *up = client->up;
    g_autoptr(GString) unavailable = NULL;
    gboolean oob = FALSE;

    for (guint i = 0; req->capabilities && req->capabilities[i]; i++) {
        const char *cap = req->capabilities[i];

        if (!qph_upstream_offers(up, cap)) {
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

        request_finish(req, qph_reply_error_text(req->id_json, "GenericError",
                                                 desc));
        return;
    }
    client->negotiated = TRUE;
    client->oob = oob;
    {
        g_autoptr(QmpJson) empty = qmp_json_new(QMP_JSON_OBJECT);

        request_finish(req, qph_reply_return(req->id_json, empty));
    }
}

static void
request_own_done(gpointer data, char *ret_json, GError *error)
{
    Request *req = data;
    g_autofree char *owned_ret = ret_json;
    g_autoptr(GError) owned_error = error;

    if (!req->client) {
        request_finish(req, NULL);
    } else if (error) {
        request_finish(req, qph_reply_error(req->id_json, error));
    } else {
        request_finish(req, qph_reply_return_text(req->id_json, ret_json));
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

static void client_process(QphClient *client, const QmpMessage *msg,
                           const char *error_text);

static void
held_free(HeldMessage *h)
{
    for (guint i = 0; i < h->n_fds; i++) {
        close(h->fds[i]);
    }
    g_free(h->fds);
    g_free(h->error_text);
    g_free(h->data);
    g_clear_pointer(&h->msg.members, g_ptr_array_unref);
    g_free(h);
}

static void
member_free(gpointer p)
{
    QmpMessageMember *m = p;

    g_free(m->key);
    g_free(m);
}

static void
client_hold(QphClient *client, const QmpMessage *msg, const char *error_text)
{
    HeldMessage *h = g_new0(HeldMessage, 1);

    h->fds = g_steal_pointer(&client->fds);
    h->n_fds = client->n_fds;
    client->n_fds = 0;
    if (error_text) {
        h->error_text = g_strdup(error_text);
    } else {
        h->data = g_memdup2(msg->data, msg->len);
        h->msg = *msg;
        h->msg.data = h->data;
        if (msg->members) {
            h->msg.members = g_ptr_array_new_with_free_func(member_free);
            for (guint i = 0; i < msg->members->len; i++) {
                QmpMessageMember *m = g_memdup2(msg->members->pdata[i],
                                                sizeof(QmpMessageMember));

                m->key = g_strdup(m->key);
                g_ptr_array_add(h->msg.members, m);
            }
        }
    }
    g_queue_push_tail(&client->held, h);
}

/* The negotiation is decided: go on with what came after it, in order. */
static void
client_release(QphClient *client)
{
    HeldMessage *h;

    client->holding = FALSE;
    if (client->releasing) {
        return; /* the outer loop goes on */
    }
    client->releasing = TRUE;
    while (!client->holding &&
           client->inflight->len < QPH_CLIENT_MAX_INFLIGHT &&
           (h = g_queue_pop_head(&client->held))) {
        if (h->n_fds > 0) {
            /* It came with newer descriptors: they replace the kept ones. */
            client_close_fds(client);
            client->fds = g_steal_pointer(&h->fds);
            client->n_fds = h->n_fds;
            h->n_fds = 0;
        }
        client_process(client, h->error_text ? NULL : &h->msg,
                       h->error_text);
        held_free(h);
    }
    client->releasing = FALSE;
    client_update_flow(client);
}

static void
client_handle_message(QphClient *client, const QmpMessage *msg)
{
    g_auto(QmpRequest) qreq = { 0 };
    g_autofree char *error_text = NULL;
    QphUpstream *up = client->up;
    Request *req;
    int *fds = client->fds;
    guint n_fds = client->n_fds;

    /* Descriptors belong to the message they came with (or before). */
    client->fds = NULL;
    client->n_fds = 0;

    if (!qmp_request_check(msg, client->oob, &qreq, &error_text)) {
        const char *id_json = NULL;
        g_autofree char *id = NULL;

        if (qreq.id) {
            id = qmp_request_format_id(msg, qreq.id);
            id_json = id;
        }
        client_keep_fds(client, fds, n_fds);
        /* An exec-oob QEMU rejects is answered at once, out of band. */
        client_deliver(client, qreq.oob ? NULL : client_new_slot(client),
                       qph_reply_error_text(id_json, "GenericError",
                                            error_text));
        return;
    }

    req = g_new0(Request, 1);
    req->client = client;
    req->command = g_strdup(qreq.command);
    if (qreq.id) {
        req->id_json = qmp_request_format_id(msg, qreq.id);
    }
    req->slot = qreq.oob ? NULL : client_new_slot(client);
    g_ptr_array_add(client->inflight, req);

    if (!client->negotiated) {
        if (!g_str_equal(qreq.command, "qmp_capabilities")) {
            client_keep_fds(client, fds, n_fds);
            request_finish(req, qph_reply_error_text(
                                    req->id_json, "CommandNotFound",
                                    "Expecting capabilities negotiation with "
                                    "'qmp_capabilities'"));
            client_update_flow(client);
            return;
        }
        req->kind = REQUEST_CAPABILITIES;
        req->capabilities = request_capabilities(msg, &qreq);
        client->holding = TRUE;
        /* Validated upstream, answered here: QEMU would not take them. */
        client_keep_fds(client, fds, n_fds);
        fds = NULL;
        n_fds = 0;
    } else if (client->hooks->owns_command(qreq.command, client->hooks_data)) {
        g_autoptr(QmpJson) args = NULL;
        const QphQmpCommand *cmd = qph_qmp_command_lookup(qreq.command);

        client_keep_fds(client, fds, n_fds);
        if (qreq.oob && !cmd->allow_oob) {
            /* QEMU's qmp_dispatch() for a command without allow-oob in
             * its schema, answered at once as any exec-oob. */
            g_autofree char *desc = g_strdup_printf(
                "The command %s does not support OOB", qreq.command);

            request_finish(req, qph_reply_error_text(req->id_json,
                                                     "GenericError", desc));
            return;
        }
        if (qreq.arguments) {
            args = qmp_json_parse_value(
                msg->data + qreq.arguments->value_offset,
                qreq.arguments->value_len, &error_text);
        }
        req->kind = REQUEST_OWN;
        client->hooks->dispatch(qreq.command, g_steal_pointer(&args),
                                request_own_done, req, client->hooks_data);
        client_update_flow(client);
        return;
    } else {
        req->introspect = qph_introspect_kind(qreq.command);
        req->kind = req->introspect != QPH_INTROSPECT_NONE ? REQUEST_INTROSPECT
                                                           : REQUEST_FORWARD;
    }

    req->upstream = TRUE;
    /* In-band requests wait for their turn among the clients' (Fairness,
     * upstream.c); exec-oob goes at once, as in QEMU. */
    req->handle = qph_upstream_forward(
        up, req->slot ? (gpointer)client : NULL, msg, qreq.id, fds, n_fds,
        request_upstream_reply, req);
    if (req->kind == REQUEST_FORWARD && req->slot) {
        qph_upstream_set_stream(up, req->handle, request_upstream_stream);
    }
    g_free(fds);
    client_update_flow(client);
}

static void
client_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    QphClient *client = opaque;

    /* One read may hold thousands of requests: past the in-flight
     * limit they wait here, in order, instead of going upstream where
     * they would delay every other client's commands. */
    if (client->holding || !g_queue_is_empty(&client->held) ||
        client->inflight->len >= QPH_CLIENT_MAX_INFLIGHT) {
        client_hold(client, msg, error_text);
        return;
    }
    client_process(client, msg, error_text);
}

static void
client_process(QphClient *client, const QmpMessage *msg,
               const char *error_text)
{
    if (error_text) {
        /* Framing errors carry no id and keep their place in the queue;
         * descriptors stay for the next message, as in QEMU. */
        client_deliver(client, client_new_slot(client),
                       qph_reply_error_text(NULL, "GenericError", error_text));
        return;
    }
    client_handle_message(client, msg);
}

static void
client_read(QphChannel *ch, const char *buf, gsize len, int *fds, guint n_fds,
            gpointer opaque)
{
    QphClient *client = opaque;

    if (n_fds > 0) {
        /* QEMU keeps only the descriptors of the latest message. */
        client_close_fds(client);
        client->fds = g_memdup2(fds, sizeof(int) * n_fds);
        client->n_fds = n_fds;
    }
    qmp_streamer_feed(client->streamer, buf, len);
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
    client_update_flow(opaque);
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
    g_queue_init(&client->slots);
    g_queue_init(&client->held);
    client->inflight = g_ptr_array_new();
    client->streamer = qmp_streamer_new(client_emit, client);
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
    QphUpstream *up;
    ReplySlot *slot;

    if (!client) {
        return;
    }
    up = client->up;
    /* Requests still waiting for their turn are never sent; replies still
     * owed to this client are dropped when they come. */
    qph_upstream_drop_owner(up, client);
    for (guint i = 0; i < client->inflight->len; i++) {
        Request *req = client->inflight->pdata[i];

        req->client = NULL;
        if (req->upstream) {
            qph_upstream_cancel(up, req->handle);
            request_free(req);
        }
        /* Own commands still running free their request when done. */
    }
    g_ptr_array_unref(client->inflight);
    while ((slot = g_queue_pop_head(&client->slots))) {
        slot_free(slot);
    }
    g_queue_clear_full(&client->held, (GDestroyNotify)held_free);
    g_clear_handle_id(&client->stall_timer, g_source_remove);
    client_close_fds(client);
    qph_channel_free(client->ch);
    qmp_streamer_free(client->streamer);
    g_free(client);
}

/*
 * An event goes out after every reply that came from QEMU before it, as on
 * QEMU's own monitor.  Replies wait in their slots for earlier ones, so an
 * event written at once would overtake a reply that is ready but waiting
 * (a device_del answered while an earlier query-perf-events still waits
 * for thread labels): it takes a slot right after the last ready one.
 * Later slots are answers QEMU had not given yet: the event goes before
 * them.
 */
void
qph_client_send_event(QphClient *client, GBytes *line)
{
    GList *l;

    if (!client->negotiated) {
        return;
    }
    for (l = client->slots.tail; l; l = l->prev) {
        if (((ReplySlot *)l->data)->ready) {
            break;
        }
    }
    if (!l) {
        client_write(client, line);
        return;
    }
    {
        ReplySlot *slot = g_new0(ReplySlot, 1);

        slot->ready = TRUE;
        slot->bytes = g_bytes_ref(line);
        g_queue_insert_after(&client->slots, l, slot);
    }
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
