/*
 * qmp-client.c: connect, negotiate, send commands, match replies
 *
 * See qmp-client.h.  How a command travels: execute() appends its text
 * (with a fresh integer id) to the output queue and its callback to the
 * pending queue; one asynchronous write at a time drains the output
 * queue.  Reads are split into lines (the helper, like QEMU, writes one
 * message per line) and each line is parsed once into a tree by the
 * project's QEMU-compatible parser: the greeting first, then events
 * (ignored) and replies, each matched against the head of the pending
 * queue by its id.
 *
 * Lifetime: the owner holds one reference; every asynchronous operation
 * holds another, so a callback that arrives after close() finds the
 * client alive, sees it is dead and just drops its reference.  The input
 * buffer is freed only with the last reference, never while a reply
 * callback runs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/qmp-client.h"

#include <string.h>

#include "qmp/json-streamer.h"

#define READ_CHUNK 65536

typedef struct {
    guint64 id;
    QpeQmpReplyFunc func;
    gpointer data;
} Pending;

struct QpeQmpClient {
    gint ref;
    char *path;
    gsize max_message;
    QpeQmpClosedFunc closed;
    gpointer closed_data;

    GCancellable *cancellable;
    GSocketConnection *conn; /* NULL until connected */
    GString *input; /* received, not yet a complete line */
    char *buf;
    gboolean greeted;
    gboolean dead;
    GError *failure; /* found while handling input, acted on after */

    GString *outq;    /* waiting to be written */
    GString *writing; /* being written */
    gboolean write_busy;
    GQueue pending; /* Pending *, in the order sent */
    guint64 next_id;
};

static QpeQmpClient *
client_ref(QpeQmpClient *c)
{
    c->ref++;
    return c;
}

static void
client_unref(QpeQmpClient *c)
{
    if (--c->ref > 0) {
        return;
    }
    g_clear_object(&c->conn);
    g_clear_object(&c->cancellable);
    g_string_free(c->input, TRUE);
    g_clear_error(&c->failure);
    g_string_free(c->outq, TRUE);
    g_string_free(c->writing, TRUE);
    g_free(c->buf);
    g_free(c->path);
    g_free(c);
}

/* Mark @c dead and fail what is pending; @notify runs the closed hook. */
static void
client_die(QpeQmpClient *c, const GError *error, gboolean notify)
{
    Pending *p;

    if (c->dead) {
        return;
    }
    c->dead = TRUE;
    g_cancellable_cancel(c->cancellable);
    client_ref(c);
    while ((p = g_queue_pop_head(&c->pending)) != NULL) {
        p->func(c, NULL, error, p->data);
        g_free(p);
    }
    if (notify && c->closed != NULL) {
        c->closed(c, error, c->closed_data);
    }
    client_unref(c);
}

static void
client_fail(QpeQmpClient *c, GError *error)
{
    client_die(c, error, TRUE);
    g_error_free(error);
}

static void kick_write(QpeQmpClient *c);

static void
on_written(GObject *source, GAsyncResult *res, gpointer data)
{
    QpeQmpClient *c = data;
    g_autoptr(GError) error = NULL;
    gsize written = 0;

    if (!g_output_stream_write_all_finish(G_OUTPUT_STREAM(source), res,
                                          &written, &error)) {
        if (!c->dead) {
            client_fail(c, g_error_new(G_IO_ERROR, error->code,
                                       "unable to write to helper socket "
                                       "'%s': %s",
                                       c->path, error->message));
        }
    } else {
        g_string_truncate(c->writing, 0);
        c->write_busy = FALSE;
        kick_write(c);
    }
    client_unref(c);
}

static void
kick_write(QpeQmpClient *c)
{
    GString *tmp;

    if (c->dead || c->conn == NULL || c->write_busy || c->outq->len == 0) {
        return;
    }
    tmp = c->writing;
    c->writing = c->outq;
    c->outq = tmp;
    c->write_busy = TRUE;
    g_output_stream_write_all_async(
        g_io_stream_get_output_stream(G_IO_STREAM(c->conn)), c->writing->str,
        c->writing->len, G_PRIORITY_DEFAULT, c->cancellable, on_written,
        client_ref(c));
}

static void
set_failure(QpeQmpClient *c, GError *error)
{
    if (c->failure == NULL) {
        c->failure = error;
    } else {
        g_error_free(error);
    }
}

/* One message from the peer: the greeting, an event, or a reply. */
static void
on_message(QpeQmpClient *c, const QmpJson *msg)
{
    const QmpJson *id;
    Pending *head;

    if (msg->type != QMP_JSON_OBJECT) {
        set_failure(c, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                   "helper socket '%s' sent something that "
                                   "is not a QMP message (not an object)",
                                   c->path));
        return;
    }
    if (!c->greeted) {
        if (qmp_json_object_get(msg, "QMP") == NULL) {
            set_failure(c, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                       "helper socket '%s' did not start "
                                       "with a QMP greeting",
                                       c->path));
            return;
        }
        c->greeted = TRUE;
        return;
    }
    if (qmp_json_object_get(msg, "event") != NULL) {
        return;
    }
    id = qmp_json_object_get(msg, "id");
    head = g_queue_peek_head(&c->pending);
    if (id == NULL || head == NULL ||
        !((id->type == QMP_JSON_INT && id->i >= 0 &&
           (guint64)id->i == head->id) ||
          (id->type == QMP_JSON_UINT && id->u == head->id))) {
        set_failure(c, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                   "helper socket '%s' sent a reply this "
                                   "client did not ask for (expected id %"
                                   G_GUINT64_FORMAT ")",
                                   c->path, head ? head->id : 0));
        return;
    }
    g_queue_pop_head(&c->pending);
    head->func(c, msg, NULL, head->data);
    g_free(head);
}

/*
 * Parse and handle every complete line in c->input.  The helper writes
 * one message per line, as QEMU does, so each line is parsed once, by the
 * project's parser, straight into a tree.
 */
static void
consume_lines(QpeQmpClient *c, gsize scan_from)
{
    gsize done = 0;
    const char *nl;

    while (!c->dead && c->failure == NULL &&
           (nl = memchr(c->input->str + scan_from, '\n',
                        c->input->len - scan_from)) != NULL) {
        const char *line = c->input->str + done;
        gsize len = (gsize)(nl - line);
        g_autofree char *error_text = NULL;
        g_autoptr(QmpJson) msg = NULL;

        scan_from = done = (gsize)(nl - c->input->str) + 1;
        while (len > 0 && g_ascii_isspace(line[len - 1])) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        msg = qmp_json_parse_value(line, len, &error_text);
        if (msg == NULL) {
            set_failure(c, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                       "helper socket '%s' sent malformed "
                                       "JSON: %s",
                                       c->path, error_text));
            break;
        }
        on_message(c, msg);
    }
    g_string_erase(c->input, 0, (gssize)done);
}

static void start_read(QpeQmpClient *c);

static void
on_read(GObject *source, GAsyncResult *res, gpointer data)
{
    QpeQmpClient *c = data;
    g_autoptr(GError) error = NULL;
    gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), res, &error);

    if (c->dead) {
        client_unref(c);
        return;
    }
    if (n < 0) {
        client_fail(c, g_error_new(G_IO_ERROR, error->code,
                                   "unable to read from helper socket '%s': "
                                   "%s",
                                   c->path, error->message));
    } else if (n == 0) {
        client_fail(c, g_error_new(G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                   "helper socket '%s' closed the connection",
                                   c->path));
    } else {
        gsize old_len = c->input->len;

        g_string_append_len(c->input, c->buf, n);
        consume_lines(c, old_len);
        if (c->failure == NULL && c->input->len > c->max_message) {
            c->failure = g_error_new(G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                                     "helper socket '%s' sent a message "
                                     "larger than %" G_GSIZE_FORMAT " bytes",
                                     c->path, c->max_message);
        }
        if (c->failure != NULL) {
            client_fail(c, g_steal_pointer(&c->failure));
        } else {
            start_read(c);
        }
    }
    client_unref(c);
}

static void
start_read(QpeQmpClient *c)
{
    if (c->dead) {
        return;
    }
    g_input_stream_read_async(
        g_io_stream_get_input_stream(G_IO_STREAM(c->conn)), c->buf,
        READ_CHUNK, G_PRIORITY_DEFAULT, c->cancellable, on_read,
        client_ref(c));
}

static void
on_connected(GObject *source, GAsyncResult *res, gpointer data)
{
    QpeQmpClient *c = data;
    g_autoptr(GError) error = NULL;
    GSocketConnection *conn = g_socket_client_connect_finish(
        G_SOCKET_CLIENT(source), res, &error);

    if (c->dead) {
        g_clear_object(&conn);
    } else if (conn == NULL) {
        client_fail(c, g_error_new(G_IO_ERROR, error->code,
                                   "unable to connect to helper socket '%s': "
                                   "%s",
                                   c->path, error->message));
    } else {
        c->conn = conn;
        start_read(c);
        kick_write(c);
    }
    g_object_unref(source);
    client_unref(c);
}

static void
on_capabilities(QpeQmpClient *c, const QmpJson *reply, const GError *error,
                gpointer data)
{
    if (reply != NULL && qmp_json_object_get(reply, "return") == NULL) {
        g_autofree char *text = qpe_qmp_error_text(reply);
        client_fail(c, g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
                                   "qmp_capabilities failed on helper "
                                   "socket '%s': %s",
                                   c->path, text));
    }
}

QpeQmpClient *
qpe_qmp_client_new(const char *path, gsize max_message,
                   QpeQmpClosedFunc closed, gpointer data)
{
    QpeQmpClient *c = g_new0(QpeQmpClient, 1);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
    GSocketClient *sc = g_socket_client_new();

    c->ref = 1;
    c->path = g_strdup(path);
    c->max_message = max_message;
    c->closed = closed;
    c->closed_data = data;
    c->cancellable = g_cancellable_new();
    c->input = g_string_new(NULL);
    c->buf = g_malloc(READ_CHUNK);
    c->outq = g_string_new(NULL);
    c->writing = g_string_new(NULL);
    g_queue_init(&c->pending);
    c->next_id = 1;

    qpe_qmp_client_execute(c, "qmp_capabilities", NULL, on_capabilities,
                           NULL);
    g_socket_client_connect_async(sc, G_SOCKET_CONNECTABLE(addr),
                                  c->cancellable, on_connected,
                                  client_ref(c));
    return c;
}

void
qpe_qmp_client_execute(QpeQmpClient *c, const char *name,
                       const char *arguments, QpeQmpReplyFunc func,
                       gpointer data)
{
    Pending *p;

    if (c->dead) {
        g_autoptr(GError) error =
            g_error_new(G_IO_ERROR, G_IO_ERROR_CLOSED,
                        "the connection to helper socket '%s' is closed",
                        c->path);
        func(c, NULL, error, data);
        return;
    }
    p = g_new0(Pending, 1);
    p->id = c->next_id++;
    p->func = func;
    p->data = data;
    g_queue_push_tail(&c->pending, p);
    g_string_append_printf(c->outq, "{\"execute\": \"%s\"", name);
    if (arguments != NULL) {
        g_string_append_printf(c->outq, ", \"arguments\": %s", arguments);
    }
    g_string_append_printf(c->outq, ", \"id\": %" G_GUINT64_FORMAT "}\n",
                           p->id);
    kick_write(c);
}

guint
qpe_qmp_client_pending(const QpeQmpClient *c)
{
    return c->pending.length;
}

void
qpe_qmp_client_close(QpeQmpClient *c)
{
    g_autoptr(GError) error =
        g_error_new(G_IO_ERROR, G_IO_ERROR_CLOSED,
                    "the connection to helper socket '%s' was closed",
                    c->path);

    client_die(c, error, FALSE);
    client_unref(c);
}

char *
qpe_qmp_error_text(const QmpJson *reply)
{
    const QmpJson *err = qmp_json_object_get(reply, "error");
    const QmpJson *cls = err ? qmp_json_object_get(err, "class") : NULL;
    const QmpJson *desc = err ? qmp_json_object_get(err, "desc") : NULL;

    return g_strdup_printf(
        "%s: %s",
        cls != NULL && cls->type == QMP_JSON_STRING ? cls->s : "Error",
        desc != NULL && desc->type == QMP_JSON_STRING ? desc->s
                                                      : "no description");
}
