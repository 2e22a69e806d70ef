/*
 * relay.c: QEMU's monitor passed through untouched, one client at a time
 *
 * The fallback of the libvirt wrapper mode when QEMU's monitor turns out
 * not to be QMP, or refuses the helper's negotiation (upstream.c says
 * which): the helper holds libvirt's listening socket and QEMU's end of
 * the monitor, so exiting would leave the VM without a monitor.  Instead
 * it relays bytes (and descriptors, for getfd) both ways between QEMU and
 * one client at a time, as QEMU's own socket chardev serves one client;
 * the first client is sent what QEMU said before the helper gave up (its
 * greeting or banner).  No command of the helper's is offered.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/relay.h"
#include "helper/channel.h"

#include <errno.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pause the sending side past this much output queued for the other. */
#define QPH_RELAY_MAX_QUEUED (1u << 20)

struct QphRelay {
    int listen_fd; /* borrowed */
    guint listen_source;
    guint retry;
    QphChannel *qemu;
    QphChannel *client;
    GBytes *replay; /* for the first client, then NULL */
    QphRelayDoneFunc done;
    gpointer opaque;
};

static gboolean relay_accept(gint fd, GIOCondition cond, gpointer data);

static void
relay_watch_listener(QphRelay *r)
{
    if (!r->listen_source && !r->client) {
        r->listen_source =
            g_unix_fd_add(r->listen_fd, G_IO_IN, relay_accept, r);
    }
}

static gboolean
relay_retry(gpointer data)
{
    QphRelay *r = data;

    r->retry = 0;
    relay_watch_listener(r);
    return G_SOURCE_REMOVE;
}

static void
relay_update_flow(QphRelay *r)
{
    if (r->client) {
        qph_channel_set_reading(r->client, qph_channel_get_queued(r->qemu) <
                                               QPH_RELAY_MAX_QUEUED);
        qph_channel_set_reading(r->qemu, qph_channel_get_queued(r->client) <
                                             QPH_RELAY_MAX_QUEUED);
    } else {
        qph_channel_set_reading(r->qemu, TRUE);
    }
}

static void
relay_client_read(QphChannel *ch, const char *buf, gsize len, QmpFds *fds,
                  gpointer opaque)
{
    QphRelay *r = opaque;

    qph_channel_write(r->qemu, buf, len, fds);
    relay_update_flow(r);
}

static gboolean
relay_free_channel_idle(gpointer data)
{
    qph_channel_free(data);
    return G_SOURCE_REMOVE;
}

static void
relay_client_closed(QphChannel *ch, gpointer opaque)
{
    QphRelay *r = opaque;

    /* Called from the channel's own dispatch: free it afterwards. */
    g_idle_add(relay_free_channel_idle, ch);
    r->client = NULL;
    relay_update_flow(r);
    relay_watch_listener(r);
}

static void
relay_drained(QphChannel *ch, gpointer opaque)
{
    relay_update_flow(opaque);
}

static gboolean
relay_accept(gint fd, GIOCondition cond, gpointer data)
{
    QphRelay *r = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (cfd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            /* Retried when the listener is watched again; no spinning. */
            r->listen_source = 0;
            if (!r->retry) {
                r->retry = g_timeout_add(250, relay_retry, r);
            }
            return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
    }
    r->client = qph_channel_new(cfd, relay_client_read, relay_client_closed,
                                relay_drained, r);
    if (r->replay) {
        qph_channel_write_bytes(r->client, r->replay);
        g_clear_pointer(&r->replay, g_bytes_unref);
    }
    relay_update_flow(r);
    /* One client at a time, as QEMU's chardev: the next waits. */
    r->listen_source = 0;
    return G_SOURCE_REMOVE;
}

static void
relay_qemu_read(QphChannel *ch, const char *buf, gsize len, QmpFds *fds,
                gpointer opaque)
{
    QphRelay *r = opaque;

    /* Descriptors from QEMU (never sent) are closed by the channel. */
    /* With no client, QEMU's output goes nowhere, as on its chardev. */
    if (r->client) {
        qph_channel_write(r->client, buf, len, NULL);
        relay_update_flow(r);
    }
}

static void
relay_qemu_closed(QphChannel *ch, gpointer opaque)
{
    QphRelay *r = opaque;

    if (r->done) {
        r->done(r, r->opaque);
    }
}

/**
 * qph_relay_new:
 * Relay between QEMU's monitor @qemu_fd (taken) and clients of the
 * listening socket @listen_fd (borrowed); @replay (may be NULL) is sent
 * to the first client.  @done is called when QEMU's monitor closes.
 */
QphRelay *
qph_relay_new(int listen_fd, int qemu_fd, GBytes *replay,
              QphRelayDoneFunc done, gpointer opaque)
{
    QphRelay *r = g_new0(QphRelay, 1);

    r->listen_fd = listen_fd;
    r->replay = replay ? g_bytes_ref(replay) : NULL;
    r->done = done;
    r->opaque = opaque;
    r->qemu = qph_channel_new(qemu_fd, relay_qemu_read, relay_qemu_closed,
                              relay_drained, r);
    relay_watch_listener(r);
    return r;
}

void
qph_relay_free(QphRelay *r)
{
    if (!r) {
        return;
    }
    g_clear_handle_id(&r->listen_source, g_source_remove);
    g_clear_handle_id(&r->retry, g_source_remove);
    g_clear_pointer(&r->client, qph_channel_free);
    qph_channel_free(r->qemu);
    g_clear_pointer(&r->replay, g_bytes_unref);
    g_free(r);
}
