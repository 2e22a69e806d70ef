/*
 * qmp-client.c: a blocking QMP client connection, for command-line tools
 *
 * One request at a time: a command goes out with a numeric id, and lines
 * are read (poll() bounded by the timeout) until the reply carrying that
 * id arrives; events and anything else in between are dropped.  Message
 * boundaries come from the framer (QMP_FRAMER_STRICT), which copes with
 * replies split across reads or several in one read, and each message is
 * parsed into a tree with QEMU's number semantics.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp/qmp-framer.h"
#include "qmp/qmp-error.h"

G_DEFINE_QUARK(qmp - client - error - quark, qmp_client_error)

/* A reply larger than this is not a QMP server talking to us. */
#define QMP_CLIENT_MAX_MESSAGE (256u << 20)

struct QmpClient {
    int fd;
    char *path;
    guint timeout_ms;
    guint64 next_id;
    QmpFramer *framer;
    GQueue messages;    /* QmpJson * parsed, not yet consumed */
    char *stream_error; /* first framing error, if any */
    QmpJson *greeting;
};

static void
client_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    QmpClient *c = opaque;
    g_autofree char *parse_error = NULL;
    QmpJson *tree;

    if (error_text) {
        if (!c->stream_error) {
            c->stream_error = g_strdup(error_text);
        }
        return;
    }
    tree = qmp_json_parse_value(msg->data, msg->len, &parse_error);
    if (!tree) {
        if (!c->stream_error) {
            c->stream_error = g_steal_pointer(&parse_error);
        }
        return;
    }
    g_queue_push_tail(&c->messages, tree);
}

/* A failed read() (@reading) or send(): a peer that went away is CLOSED. */
static void
set_io_error(const QmpClient *c, gboolean reading, int saved, GError **error)
{
    if (saved == EPIPE || saved == ECONNRESET) {
        g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                    "'%s' closed the connection.", c->path);
    } else if (reading) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to read from '%s': %s.", c->path,
                    g_strerror(saved));
    } else {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to write to '%s': %s.", c->path, g_strerror(saved));
    }
}

static gint64
now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* Read more bytes into the framer before @deadline (monotonic ms). */
static gboolean
client_fill(QmpClient *c, gint64 deadline, GError **error)
{
    char buf[65536];
    ssize_t n;

    for (;;) {
        gint64 left = deadline - now_ms();
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r;

        if (left <= 0) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT,
                        "No reply from '%s' within %u ms.", c->path,
                        c->timeout_ms);
            return FALSE;
        }
        r = poll(&pfd, 1, (int)MIN(left, G_MAXINT));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int saved = errno;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                        "Unable to wait for '%s': %s.", c->path,
                        g_strerror(saved));
            return FALSE;
        }
        if (r == 0) {
            continue; /* the deadline check above reports it */
        }
        n = read(c->fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            set_io_error(c, TRUE, errno, error);
            return FALSE;
        }
        if (n == 0) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED,
                        "'%s' closed the connection.", c->path);
            return FALSE;
        }
        qmp_framer_feed(c->framer, buf, (gsize)n, NULL);
        if (c->stream_error) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                        "'%s' sent something that is not QMP: %s", c->path,
                        c->stream_error);
            return FALSE;
        }
        if (qmp_framer_get_buffered(c->framer) > QMP_CLIENT_MAX_MESSAGE) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                        "'%s' sent a message larger than %u bytes.", c->path,
                        QMP_CLIENT_MAX_MESSAGE);
            return FALSE;
        }
        return TRUE;
    }
}

/* The next complete message, waiting until @deadline for it. */
static QmpJson *
client_next(QmpClient *c, gint64 deadline, GError **error)
{
    while (g_queue_is_empty(&c->messages)) {
        if (!client_fill(c, deadline, error)) {
            return NULL;
        }
    }
    return g_queue_pop_head(&c->messages);
}

static gboolean
client_send(QmpClient *c, const GString *out, GError **error)
{
    gsize done = 0;

    while (done < out->len) {
        ssize_t n = send(c->fd, out->str + done, out->len - done, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            set_io_error(c, FALSE, errno, error);
            return FALSE;
        }
        done += (gsize)n;
    }
    return TRUE;
}

/* Take member @key out of object @obj (NULL if absent). */
static QmpJson *
steal_member(QmpJson *obj, const char *key)
{
    if (!obj || obj->type != QMP_JSON_OBJECT) {
        return NULL;
    }
    for (guint i = 0; i < obj->members->len; i++) {
        QmpJsonMember *m = g_ptr_array_index(obj->members, i);

        if (strcmp(m->key, key) == 0) {
            return g_steal_pointer(&m->value);
        }
    }
    return NULL;
}

/* An error reply as a QMP_ERROR GError. */
static void
set_reply_error(const QmpJson *err, GError **error)
{
    const char *cls = qmp_json_get_string(qmp_json_object_get(err, "class"));
    const char *desc = qmp_json_get_string(qmp_json_object_get(err, "desc"));

    g_set_error_literal(error, QMP_ERROR, qmp_error_class_from_name(cls),
                        desc ? desc : "The server answered an error.");
}

QmpJson *
qmp_client_execute(QmpClient *c, const char *command, QmpJson *arguments,
                   GError **error)
{
    g_autoptr(QmpJson) args = arguments;
    g_autoptr(QmpJson) req = qmp_json_new(QMP_JSON_OBJECT);
    g_autoptr(GString) out = g_string_new(NULL);
    guint64 id = ++c->next_id;
    gint64 deadline;

    qmp_json_object_set(req, "execute", qmp_json_new_string(command));
    if (args) {
        qmp_json_object_set(req, "arguments", g_steal_pointer(&args));
    }
    qmp_json_object_set(req, "id", qmp_json_new_int((gint64)id));
    qmp_json_write(out, req);
    g_string_append_c(out, '\n');
    if (!client_send(c, out, error)) {
        return NULL;
    }

    deadline = now_ms() + c->timeout_ms;
    for (;;) {
        g_autoptr(QmpJson) msg = client_next(c, deadline, error);
        QmpJson *err;

        if (!msg) {
            return NULL;
        }
        if (qmp_json_get_u64(qmp_json_object_get(msg, "id"), 0) != id) {
            continue; /* an event, or a reply that is not ours */
        }
        err = qmp_json_object_get(msg, "error");
        if (err) {
            set_reply_error(err, error);
            return NULL;
        }
        if (!qmp_json_object_get(msg, "return")) {
            g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                        "'%s' answered '%s' with neither 'return' nor "
                        "'error'.",
                        c->path, command);
            return NULL;
        }
        return steal_member(msg, "return");
    }
}

static int
connect_unix(const char *path, GError **error)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof addr.sun_path) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "Unable to connect to '%s': the path is longer than a "
                    "unix socket address allows (%zu bytes).",
                    path, sizeof addr.sun_path - 1);
        return -1;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to create a socket: %s.", g_strerror(saved));
        return -1;
    }
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int saved = errno;

        if (saved == EINTR) {
            continue;
        }
        close(fd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to connect to '%s': %s.", path, g_strerror(saved));
        return -1;
    }
    return fd;
}

QmpClient *
qmp_client_connect(const char *path, guint timeout_ms, GError **error)
{
    g_autoptr(QmpClient) c = g_new0(QmpClient, 1);
    g_autoptr(QmpJson) greeting = NULL;
    g_autoptr(QmpJson) negotiated = NULL;
    g_autoptr(GError) local = NULL;

    c->fd = -1;
    c->path = g_strdup(path);
    c->timeout_ms = timeout_ms ? timeout_ms : 1;
    g_queue_init(&c->messages);
    c->framer = qmp_framer_new(QMP_FRAMER_STRICT, client_emit, c);
    c->fd = connect_unix(path, error);
    if (c->fd < 0) {
        return NULL;
    }
    greeting = client_next(c, now_ms() + c->timeout_ms, &local);
    if (g_error_matches(local, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_TIMEOUT)) {
        /* QEMU accepts a second client on a monitor and then ignores it */
        g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_NO_GREETING,
                    "'%s' accepted the connection but sent no QMP greeting "
                    "within %u ms.",
                    path, c->timeout_ms);
        return NULL;
    }
    if (!greeting) {
        g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
    }
    c->greeting = steal_member(greeting, "QMP");
    if (!c->greeting || c->greeting->type != QMP_JSON_OBJECT) {
        g_set_error(error, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_PROTOCOL,
                    "'%s' is not a QMP monitor: it sent no QMP greeting.",
                    path);
        return NULL;
    }
    negotiated = qmp_client_execute(c, "qmp_capabilities", NULL, error);
    if (!negotiated) {
        return NULL;
    }
    return g_steal_pointer(&c);
}

void
qmp_client_set_timeout(QmpClient *c, guint timeout_ms)
{
    c->timeout_ms = timeout_ms ? timeout_ms : 1;
}

int
qmp_client_get_fd(const QmpClient *c)
{
    return c->fd;
}

const QmpJson *
qmp_client_greeting(const QmpClient *c)
{
    return c->greeting;
}

void
qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_queue_clear_full(&c->messages, (GDestroyNotify)qmp_json_free);
    qmp_framer_free(c->framer);
    qmp_json_free(c->greeting);
    g_free(c->stream_error);
    g_free(c->path);
    g_free(c);
}

guint64
qmp_json_get_u64(const QmpJson *v, guint64 fallback)
{
    if (v && v->type == QMP_JSON_INT && v->i >= 0) {
        return (guint64)v->i;
    }
    if (v && v->type == QMP_JSON_UINT) {
        return v->u;
    }
    return fallback;
}

const char *
qmp_json_get_string(const QmpJson *v)
{
    return v && v->type == QMP_JSON_STRING ? v->s : NULL;
}

gboolean
qmp_json_get_bool(const QmpJson *v, gboolean fallback)
{
    return v && v->type == QMP_JSON_BOOL ? v->b : fallback;
}
