/*
 * proxy.c: the helper as a server: one upstream, many client sessions
 *
 * The composition root: the one file that knows every piece.  It creates
 * the upstream (upstream.c) on QEMU's monitor; once that has negotiated,
 * the VM (vm.c, given the upstream), the events to enable at start, and
 * the listening socket; then a session (client.c) per accepted client,
 * given the upstream and the table of hooks below (the helper's own
 * commands through dispatch.c on the VM, introspection entries, replies
 * the VM should see).  Events from QEMU go to every session and to the
 * VM.  No piece calls back into this file except through what it was
 * given; tests/layers checks that no two files depend on each other in a
 * cycle.  How a message travels is told at the top of client.c, which
 * holds its path.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/proxy.h"
#include "helper/client.h"
#include "helper/dispatch.h"
#include "helper/introspect.h"
#include "helper/startup-events.h"
#include "helper/relay.h"
#include "helper/trim.h"
#include "helper/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Out of descriptors: how long the listener is set aside, and how often
 * the failure is logged at most. */
#define QPH_PROXY_ACCEPT_RETRY_MS 250
#define QPH_PROXY_ACCEPT_LOG_S 10

struct QphProxy {
    QphProxyOptions opts;
    QphUpstream *upstream;
    pid_t qemu_pid;
    QphVm *vm;
    int listen_fd;
    gboolean created_socket;
    char *listen_path;
    guint listen_source;
    guint accept_retry;     /* timer while out of descriptors */
    guint64 accept_failures; /* since the last logged one */
    gint64 accept_logged;   /* monotonic time of that log line, or 0 */
    GHashTable *clients; /* QphClient * set */
    QphRelay *relay;     /* wrapper mode, QEMU's monitor not QMP */
    guint next_serial;
    GStrv qemu_commands_shadowed; /* own commands QEMU offers too */
    QphProxyDoneFunc done;
    gpointer opaque;
    gboolean finished;
};

static void
proxy_finish(QphProxy *proxy, GError *error)
{
    if (proxy->finished) {
        return;
    }
    proxy->finished = TRUE;
    if (proxy->done) {
        proxy->done(proxy, error, proxy->opaque);
    }
}

static gboolean
proxy_peer_allowed(QphProxy *proxy, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (proxy->opts.n_allowed_uids == 0) {
        return TRUE; /* the socket's mode decides */
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        return FALSE;
    }
    if (cred.uid == getuid() || cred.uid == geteuid()) {
        return TRUE;
    }
    for (guint i = 0; i < proxy->opts.n_allowed_uids; i++) {
        if (proxy->opts.allowed_uids[i] == cred.uid) {
            return TRUE;
        }
    }
    g_message("Refusing a client with uid %u: not in the allowed list",
              (guint)cred.uid);
    return FALSE;
}

static gboolean proxy_accept(gint fd, GIOCondition cond, gpointer data);
static const QphClientHooks proxy_client_hooks;

/* Watch the listening socket again (or for the first time). */
static void
proxy_watch_listener(QphProxy *proxy)
{
    if (!proxy->listen_source && proxy->listen_fd >= 0 && !proxy->finished) {
        proxy->listen_source =
            g_unix_fd_add(proxy->listen_fd, G_IO_IN, proxy_accept, proxy);
    }
}

static gboolean
proxy_accept_retry(gpointer data)
{
    QphProxy *proxy = data;

    proxy->accept_retry = 0;
    proxy_watch_listener(proxy);
    return G_SOURCE_REMOVE;
}

/*
 * accept() failed for want of a descriptor (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM).  The connection stays in the backlog and the listening socket
 * stays readable, so watching it would spin: stop watching until a client
 * leaves (proxy_client_closed) or QPH_PROXY_ACCEPT_RETRY_MS have
 * passed.  One log line per QPH_PROXY_ACCEPT_LOG_S at most, with how many
 * failures it stands for.
 */
static void
proxy_accept_starved(QphProxy *proxy, int err)
{
    gint64 now = g_get_monotonic_time();

    proxy->accept_failures++;
    if (!proxy->accept_logged ||
        now - proxy->accept_logged >= QPH_PROXY_ACCEPT_LOG_S * G_USEC_PER_SEC) {
        g_warning("Unable to accept a client: %s (%" G_GUINT64_FORMAT
                  " time(s) since the last message); not accepting for "
                  "%u ms or until a client leaves",
                  g_strerror(err), proxy->accept_failures,
                  QPH_PROXY_ACCEPT_RETRY_MS);
        proxy->accept_logged = now;
        proxy->accept_failures = 0;
    }
    g_clear_handle_id(&proxy->listen_source, g_source_remove);
    if (!proxy->accept_retry) {
        proxy->accept_retry = g_timeout_add(QPH_PROXY_ACCEPT_RETRY_MS,
                                            proxy_accept_retry, proxy);
    }
}

static gboolean
proxy_accept(gint fd, GIOCondition cond, gpointer data)
{
    QphProxy *proxy = data;
    QphClient *client;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            proxy_accept_starved(proxy, errno);
            return G_SOURCE_REMOVE; /* listen_source is cleared */
        }
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            g_warning("Unable to accept a client: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    if (!proxy_peer_allowed(proxy, cfd)) {
        close(cfd);
        return G_SOURCE_CONTINUE;
    }
    client = qph_client_new(proxy->upstream, &proxy_client_hooks, proxy, cfd,
                            ++proxy->next_serial);
    g_hash_table_add(proxy->clients, client);
    g_debug("Client %u connected", qph_client_get_serial(client));
    qph_client_start(client, qph_upstream_get_greeting(proxy->upstream));
    return G_SOURCE_CONTINUE;
}

/* A stale socket left by a helper that died is replaced; a live one is an
 * error (two helpers must not fight over one path). */
static gboolean
proxy_remove_stale_socket(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct stat st;
    int fd;
    int rc;

    if (lstat(path, &st) < 0) {
        return TRUE;
    }
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "Unable to listen on '%s': the path exists and is not a "
                    "socket", path);
        return FALSE;
    }
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    close(fd);
    if (rc == 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "Unable to listen on '%s': another process is serving it",
                    path);
        return FALSE;
    }
    unlink(path);
    return TRUE;
}

static gboolean
proxy_listen(QphProxy *proxy, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    const char *path = proxy->opts.listen_path;
    mode_t old_umask;
    int fd;

    if (proxy->opts.listen_fd >= 0) {
        proxy->listen_fd = proxy->opts.listen_fd;
        fcntl(proxy->listen_fd, F_SETFL,
              fcntl(proxy->listen_fd, F_GETFL) | O_NONBLOCK);
        fcntl(proxy->listen_fd, F_SETFD, FD_CLOEXEC);
        return TRUE;
    }
    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "Unable to listen on '%s': a unix socket path must be "
                    "shorter than %zu bytes", path, sizeof(addr.sun_path));
        return FALSE;
    }
    if (!proxy_remove_stale_socket(path, error)) {
        return FALSE;
    }
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "Unable to create a socket: %s", g_strerror(errno));
        return FALSE;
    }
    /*
     * Clients wait for the socket to appear, so it should appear ready:
     * born with its final mode (through the umask, never wider even for a
     * moment) and listening right after bind().  Renaming a socket into
     * place would close the window entirely, but /proc/net/unix and ss(8)
     * would then show the temporary name for ever.
     */
    old_umask = umask(~proxy->opts.socket_mode & 0777);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        umask(old_umask);
        close(fd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to bind to '%s': %s", path, g_strerror(saved));
        return FALSE;
    }
    umask(old_umask);
    /* A burst of connects (a fleet's exporter restarting) waits in the
     * backlog instead of failing with EAGAIN. */
    if (listen(fd, SOMAXCONN) < 0 ||
        (proxy->opts.socket_gid != (gid_t)-1 &&
         chown(path, (uid_t)-1, proxy->opts.socket_gid) < 0) ||
        chmod(path, proxy->opts.socket_mode) < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "Unable to set up the socket '%s': %s", path,
                    g_strerror(saved));
        unlink(path);
        close(fd);
        return FALSE;
    }
    proxy->created_socket = TRUE;
    proxy->listen_path = g_strdup(path);
    proxy->listen_fd = fd;
    return TRUE;
}

/* QEMU's own command list is in: note any name clash, then serve. */
static void
proxy_commands_checked(QphUpstream *up, const QphScannedMessage *msg,
                       gpointer user_data)
{
    QphProxy *proxy = user_data;
    g_autoptr(GPtrArray) shadowed = g_ptr_array_new();
    const char *const *own = qph_dispatch_command_names();
    g_autoptr(GError) error = NULL;

    if (!msg) {
        return; /* QEMU went away; proxy_upstream_closed() finishes */
    }
    for (guint i = 0; own[i]; i++) {
        g_autofree char *needle = g_strdup_printf("\"name\": \"%s\"", own[i]);

        if (g_strstr_len(msg->data, msg->len, needle)) {
            g_warning("QEMU itself offers the command '%s': the helper leaves "
                      "it to QEMU and does not answer '%s' itself",
                      own[i], own[i]);
            g_ptr_array_add(shadowed, g_strdup(own[i]));
        }
    }
    g_ptr_array_add(shadowed, NULL);
    proxy->qemu_commands_shadowed = (GStrv)g_ptr_array_steal(shadowed, NULL);

    if (!proxy_listen(proxy, &error)) {
        proxy_finish(proxy, error);
        return;
    }
    proxy_watch_listener(proxy);
    g_debug("Serving QMP for QEMU pid %d", (int)proxy->qemu_pid);
    /* Start-up is over: option parsing, QEMU's command list and the first
     * labels took heap that an idle helper should not keep. */
    qph_trim_soon();
}

static void
proxy_upstream_ready(QphUpstream *up, gpointer opaque)
{
    QphProxy *proxy = opaque;

    if (!proxy->qemu_pid) {
        proxy->qemu_pid = qph_upstream_get_peer_pid(up);
    }
    proxy->vm = qph_vm_new(proxy->upstream, proxy->qemu_pid, proxy->opts.resctrl_root);
    /* Before any client is served: its first query sees them counting. */
    if (proxy->opts.startup) {
        qph_startup_events_vm_ready(proxy->opts.startup, proxy->vm);
    }
    /* A command of ours that QEMU also has is reported before serving. */
    qph_upstream_call(up, "query-commands", NULL, proxy_commands_checked,
                      proxy);
}

static void
proxy_upstream_event(QphUpstream *up, const QphScannedMessage *msg,
                     gpointer opaque)
{
    QphProxy *proxy = opaque;
    GHashTableIter it;
    gpointer client;
    g_autoptr(GString) line = g_string_new_len(msg->data, msg->len);
    g_autoptr(GBytes) bytes = NULL;

    g_string_append(line, "\r\n");
    bytes = g_string_free_to_bytes(g_steal_pointer(&line));
    g_hash_table_iter_init(&it, proxy->clients);
    while (g_hash_table_iter_next(&it, &client, NULL)) {
        qph_client_send_event(client, bytes);
    }
    if (proxy->vm) {
        qph_vm_note_event(proxy->vm, msg);
    }
}

static void
proxy_relay_done(QphRelay *relay, gpointer opaque)
{
    g_debug("QEMU's monitor closed");
    proxy_finish(opaque, NULL);
}

/*
 * QEMU's monitor is not QMP or will not negotiate.  Attached, that is the
 * helper's end.  In the libvirt wrapper's fd mode the helper holds the
 * VM's only monitor: say so, and pass it through as it is.
 */
static void
proxy_upstream_failed(QphUpstream *up, const GError *error, gpointer opaque)
{
    QphProxy *proxy = opaque;
    g_autoptr(GError) copy = g_error_copy(error);
    g_autoptr(GBytes) replay = NULL;
    g_autoptr(GError) listen_error = NULL;
    int fd;

    if (proxy->opts.listen_fd < 0) {
        proxy_finish(proxy, copy);
        return;
    }
    g_warning("%s; passing QEMU's monitor through as it is, to one client "
              "at a time, without the helper's commands", error->message);
    fd = qph_upstream_take_fd(up, &replay);
    if (fd < 0 || !proxy_listen(proxy, &listen_error)) {
        if (fd >= 0) {
            close(fd);
        }
        proxy_finish(proxy, listen_error ? listen_error : copy);
        return;
    }
    proxy->relay = qph_relay_new(proxy->listen_fd, fd, replay,
                                 proxy_relay_done, proxy);
}

static void
proxy_upstream_closed(QphUpstream *up, gpointer opaque)
{
    QphProxy *proxy = opaque;

    g_debug("QEMU's monitor closed");
    if (proxy->opts.startup) {
        qph_startup_events_qemu_gone(proxy->opts.startup);
    }
    proxy_finish(proxy, NULL);
}

QphProxy *
qph_proxy_new(const QphProxyOptions *opts, int qemu_fd, pid_t qemu_pid,
              QphProxyDoneFunc done, gpointer opaque)
{
    static const QphUpstreamCallbacks callbacks = {
        .ready = proxy_upstream_ready,
        .failed = proxy_upstream_failed,
        .event = proxy_upstream_event,
        .closed = proxy_upstream_closed,
    };
    QphProxy *proxy = g_new0(QphProxy, 1);

    proxy->opts = *opts;
    proxy->listen_fd = -1;
    proxy->qemu_pid = qemu_pid;
    proxy->done = done;
    proxy->opaque = opaque;
    proxy->clients = g_hash_table_new(NULL, NULL);
    proxy->upstream = qph_upstream_new(qemu_fd, &callbacks, proxy);
    /* Under libvirt a slow QEMU is waited for; giving up helps nobody. */
    qph_upstream_set_patient(proxy->upstream, opts->listen_fd >= 0);
    return proxy;
}

void
qph_proxy_free(QphProxy *proxy)
{
    GHashTableIter it;
    gpointer client;

    if (!proxy) {
        return;
    }
    g_clear_handle_id(&proxy->listen_source, g_source_remove);
    g_clear_handle_id(&proxy->accept_retry, g_source_remove);
    if (proxy->created_socket) {
        unlink(proxy->listen_path);
    }
    if (proxy->listen_fd >= 0) {
        close(proxy->listen_fd);
    }
    g_hash_table_iter_init(&it, proxy->clients);
    while (g_hash_table_iter_next(&it, &client, NULL)) {
        g_hash_table_iter_steal(&it);
        qph_client_free(client);
    }
    g_hash_table_destroy(proxy->clients);
    g_clear_pointer(&proxy->relay, qph_relay_free);
    /* Counters and the resctrl group go before the upstream does. */
    g_clear_pointer(&proxy->vm, qph_vm_free);
    qph_upstream_free(proxy->upstream);
    g_strfreev(proxy->qemu_commands_shadowed);
    g_free(proxy->listen_path);
    g_free(proxy);
}

pid_t
qph_proxy_get_qemu_pid(QphProxy *proxy)
{
    return proxy->qemu_pid;
}

guint
qph_proxy_get_n_clients(QphProxy *proxy)
{
    return g_hash_table_size(proxy->clients);
}

/* ---- What a session gets (QphClientHooks) ------------------------- */

static gboolean
proxy_free_client_idle(gpointer data)
{
    qph_client_free(data);
    qph_trim_soon(); /* its buffers leave holes glibc would keep */
    return G_SOURCE_REMOVE;
}

static void
proxy_client_closed(QphClient *client, gpointer data)
{
    QphProxy *proxy = data;

    g_debug("Client %u disconnected", qph_client_get_serial(client));
    g_hash_table_remove(proxy->clients, client);
    /* Called from the client's own channel callback: free it afterwards
     * (its descriptor is closed by then).  A listener set aside for want
     * of descriptors is watched again once it is. */
    g_idle_add(proxy_free_client_idle, client);
    if (proxy->accept_retry) {
        g_clear_handle_id(&proxy->accept_retry, g_source_remove);
        proxy->accept_retry = g_timeout_add(0, proxy_accept_retry, proxy);
    }
}

/* A command of the helper's own, unless QEMU has one of that name. */
static gboolean
proxy_owns_command(const char *command, gpointer data)
{
    QphProxy *proxy = data;

    return qph_dispatch_has(command) &&
           !(proxy->qemu_commands_shadowed &&
             g_strv_contains((const char *const *)proxy->qemu_commands_shadowed,
                             command));
}

static void
proxy_dispatch(const char *command, QmpJson *args, QphDispatchDone done,
               gpointer done_data, gpointer data)
{
    QphProxy *proxy = data;

    qph_dispatch_run(proxy->vm, command, args, done, done_data);
}

static char *
proxy_introspect_extra(QphIntrospectKind kind, gboolean after_elements,
                       gpointer data)
{
    QphProxy *proxy = data;

    return qph_introspect_extra(kind, after_elements,
                                (const char *const *)
                                    proxy->qemu_commands_shadowed);
}

/* Forwarded replies that may mean new threads (device_add, object-add). */
static void
proxy_note_reply(const char *command, const QphScannedMessage *reply,
                 gpointer data)
{
    QphProxy *proxy = data;

    if (proxy->vm) {
        qph_vm_note_reply(proxy->vm, command, reply);
    }
}

static const QphClientHooks proxy_client_hooks = {
    .closed = proxy_client_closed,
    .owns_command = proxy_owns_command,
    .dispatch = proxy_dispatch,
    .introspect_extra = proxy_introspect_extra,
    .note_reply = proxy_note_reply,
};
