/*
 * dep-cost.c: what GIO costs a program that uses it, not only links it
 * (the dependency measure of tests/bench/bench.py, docs/hacking.md)
 *
 * Built twice from this one source: qph-dep-cost-glib does its socket work
 * the way the helper does (socket(), connect(), a g_unix_fd_add() watch,
 * read() and write()), qph-dep-cost-gio does the same work through GIO
 * (GSocketClient, GUnixSocketAddress, asynchronous GInputStream reads,
 * GOutputStream writes).  Both connect to a QMP socket, read the greeting,
 * negotiate, print "ready" once the answer is in and then sit in the main
 * loop until the peer closes or they are killed, so that the benchmark
 * can read their smaps_rollup in the same state.  Preloading a library
 * (LD_PRELOAD) measures what mapping it costs; this measures what using
 * it costs: its types registered, its objects allocated.
 *
 *   qph-dep-cost-glib SOCKET
 *   qph-dep-cost-gio SOCKET
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef QPH_DEP_GIO
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#endif

static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
static GMainLoop *loop;
static guint lines;
static gboolean sent_caps, said_ready;

/**
 * saw_bytes: count the lines in what arrived; after the greeting send
 * qmp_capabilities with @send, after its answer print "ready".
 */
static void
saw_bytes(const char *buf, gssize n, void (*send)(const char *, gsize))
{
    for (gssize i = 0; i < n; i++) {
        lines += buf[i] == '\n';
    }
    if (lines >= 1 && !sent_caps) {
        sent_caps = TRUE;
        send(caps, sizeof(caps) - 1);
    }
    if (lines >= 2 && !said_ready) {
        said_ready = TRUE;
        printf("ready\n");
        fflush(stdout);
    }
}

#ifdef QPH_DEP_GIO

static GSocketConnection *conn;
static char buf[4096];

static void
gio_send(const char *data, gsize len)
{
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));

    if (!g_output_stream_write_all(out, data, len, NULL, NULL, NULL)) {
        g_main_loop_quit(loop);
    }
}

static void
on_read(GObject *src, GAsyncResult *res, gpointer data)
{
    gssize n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, NULL);

    (void)data;
    if (n <= 0) {
        g_main_loop_quit(loop);
        return;
    }
    saw_bytes(buf, n, gio_send);
    g_input_stream_read_async(G_INPUT_STREAM(src), buf, sizeof(buf),
                              G_PRIORITY_DEFAULT, NULL, on_read, NULL);
}

static gboolean
start(const char *path)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
    g_autoptr(GError) error = NULL;

    conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL,
                                   &error);
    if (!conn) {
        fprintf(stderr, "qph-dep-cost: %s\n", error->message);
        return FALSE;
    }
    g_input_stream_read_async(g_io_stream_get_input_stream(G_IO_STREAM(conn)),
                              buf, sizeof(buf), G_PRIORITY_DEFAULT, NULL,
                              on_read, NULL);
    return TRUE;
}

#else

static int sock = -1;

static void
fd_send(const char *data, gsize len)
{
    while (len > 0) {
        ssize_t n = write(sock, data, len);

        if (n <= 0) {
            g_main_loop_quit(loop);
            return;
        }
        data += n;
        len -= (gsize)n;
    }
}

static gboolean
on_fd(gint fd, GIOCondition cond, gpointer data)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));

    (void)cond;
    (void)data;
    if (n <= 0) {
        g_main_loop_quit(loop);
        return G_SOURCE_REMOVE;
    }
    saw_bytes(buf, n, fd_send);
    return G_SOURCE_CONTINUE;
}

static gboolean
start(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "qph-dep-cost: socket path too long: %s\n", path);
        return FALSE;
    }
    strcpy(sa.sun_path, path);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("qph-dep-cost: connect");
        return FALSE;
    }
    g_unix_fd_add(sock, G_IO_IN | G_IO_HUP | G_IO_ERR, on_fd, NULL);
    return TRUE;
}

#endif

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    loop = g_main_loop_new(NULL, FALSE);
    if (!start(argv[1])) {
        return 1;
    }
    g_main_loop_run(loop);
    g_main_loop_unref(loop);
    return 0;
}
