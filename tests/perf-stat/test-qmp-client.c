/*
 * test-qmp-client.c: the blocking QMP client (qmp/qmp-client.c)
 *
 * A server thread on a real unix socket plays QEMU's side of the wire:
 * a greeting split across writes, an event before a reply, a reply byte
 * by byte, a uint64 beyond gint64, an error reply, a server that never
 * greets (as QEMU's monitor does to a second client) and one that hangs
 * up.  The client must return exactly what was sent and the error the
 * caller can act on.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp/qmp-client.h"
#include "qmp/qmp-error.h"

typedef enum {
    SERVE_SCRIPT, /* greet, negotiate, answer the script */
    SERVE_SILENT, /* accept and say nothing */
} ServeMode;

typedef struct {
    int listen_fd;
    char *path;
    char *dir;
    ServeMode mode;
    GThread *thread;
} Server;

static void
send_all(int fd, const char *s, gsize len)
{
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

        if (n <= 0) {
            return;
        }
        s += n;
        len -= (gsize)n;
    }
}

static void
send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Read one request line; return its numeric id (0 if none). */
static guint
read_request(int fd)
{
    char line[4096];
    gsize len = 0;
    const char *id;

    while (len < sizeof line - 1) {
        if (read(fd, line + len, 1) != 1) {
            return 0;
        }
        if (line[len++] == '\n') {
            break;
        }
    }
    line[len] = '\0';
    id = strstr(line, "\"id\": ");
    return id ? (guint)atoi(id + strlen("\"id\": ")) : 0;
}

static gpointer
serve(gpointer opaque)
{
    Server *s = opaque;
    int fd = accept(s->listen_fd, NULL, NULL);
    g_autofree char *reply = NULL;
    guint id;

    if (fd < 0) {
        return NULL;
    }
    if (s->mode == SERVE_SILENT) {
        char c;

        while (read(fd, &c, 1) == 1) {
        }
        close(fd);
        return NULL;
    }
    send_str(fd, "{\"QMP\": {\"version\": {}, ");
    g_usleep(10000);
    send_str(fd, "\"capabilities\": [\"oob\"]}}\r\n");
    id = read_request(fd);
    reply = g_strdup_printf("{\"return\": {}, \"id\": %u}\r\n", id);
    send_all(fd, reply, strlen(reply));

    /* 1: an event first, then the reply one byte at a time */
    id = read_request(fd);
    send_str(fd, "{\"timestamp\": {\"seconds\": 1}, \"event\": \"STOP\"}\r\n");
    g_free(reply);
    reply = g_strdup_printf("{\"return\": [{\"value\": 18446744073709551615, "
                            "\"name\": \"x\"}], \"id\": %u}\r\n",
                            id);
    for (const char *p = reply; *p; p++) {
        send_all(fd, p, 1);
    }

    /* 2: an error */
    id = read_request(fd);
    g_free(reply);
    reply = g_strdup_printf(
        "{\"id\": %u, \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
        "\"The command nope has not been found\"}}\r\n",
        id);
    send_all(fd, reply, strlen(reply));

    /* 3: hang up */
    read_request(fd);
    close(fd);
    return NULL;
}

static Server *
server_start(ServeMode mode)
{
    Server *s = g_new0(Server, 1);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    s->dir = g_dir_make_tmp("qmp-client-XXXXXX", NULL);
    g_assert_nonnull(s->dir);
    s->path = g_build_filename(s->dir, "s.sock", NULL);
    g_strlcpy(addr.sun_path, s->path, sizeof addr.sun_path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr),
                    ==, 0);
    g_assert_cmpint(listen(s->listen_fd, 1), ==, 0);
    s->mode = mode;
    s->thread = g_thread_new("server", serve, s);
    return s;
}

static void
server_stop(Server *s)
{
    g_thread_join(s->thread);
    close(s->listen_fd);
    g_unlink(s->path);
    g_rmdir(s->dir);
    g_free(s->path);
    g_free(s->dir);
    g_free(s);
}

static void
test_script(void)
{
    Server *s = server_start(SERVE_SCRIPT);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) c = qmp_client_connect(s->path, 5000, &err);
    g_autoptr(QmpJson) r = NULL;
    const QmpJson *caps;
    const QmpJson *first;

    g_assert_no_error(err);
    caps = qmp_json_object_get(qmp_client_greeting(c), "capabilities");
    g_assert_nonnull(caps);
    g_assert_cmpint(caps->type, ==, QMP_JSON_ARRAY);

    r = qmp_client_execute(c, "query-x", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(r->type, ==, QMP_JSON_ARRAY);
    first = g_ptr_array_index(r->elements, 0);
    /* exact: not a double, not clamped to G_MAXINT64 */
    g_assert_cmpuint(qmp_json_get_u64(qmp_json_object_get(first, "value"), 0),
                     ==, G_MAXUINT64);
    g_assert_cmpstr(qmp_json_get_string(qmp_json_object_get(first, "name")), ==,
                    "x");
    g_clear_pointer(&r, qmp_json_free);

    r = qmp_client_execute(c, "nope", qmp_json_new(QMP_JSON_OBJECT), &err);
    g_assert_null(r);
    g_assert_error(err, QMP_ERROR, QMP_ERROR_COMMAND_NOT_FOUND);
    g_assert_cmpstr(err->message, ==, "The command nope has not been found");
    g_clear_error(&err);

    r = qmp_client_execute(c, "query-y", NULL, &err);
    g_assert_null(r);
    g_assert_error(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_CLOSED);
    server_stop(s);
}

static void
test_no_greeting(void)
{
    Server *s = server_start(SERVE_SILENT);
    g_autoptr(GError) err = NULL;
    QmpClient *c = qmp_client_connect(s->path, 200, &err);

    g_assert_null(c);
    g_assert_error(err, QMP_CLIENT_ERROR, QMP_CLIENT_ERROR_NO_GREETING);
    g_assert_nonnull(strstr(err->message, "sent no QMP greeting"));
    /* the silent server reads until we close, which the failure did */
    server_stop(s);
}

static void
test_no_socket(void)
{
    g_autoptr(GError) err = NULL;
    QmpClient *c = qmp_client_connect("/nonexistent/qmp.sock", 200, &err);

    g_assert_null(c);
    g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    g_assert_cmpstr(err->message, ==,
                    "Unable to connect to '/nonexistent/qmp.sock': No such "
                    "file or directory.");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp-client/script", test_script);
    g_test_add_func("/qmp-client/no-greeting", test_no_greeting);
    g_test_add_func("/qmp-client/no-socket", test_no_socket);
    return g_test_run();
}
