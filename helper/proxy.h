/*
 * proxy.h: the helper as a server: one upstream, many client sessions
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "helper/upstream.h"

typedef struct QphProxy QphProxy;
typedef struct QphStartupEvents QphStartupEvents;

typedef struct {
    const char *listen_path; /* create and listen here, or NULL */
    int listen_fd;           /* or serve this listening socket (-1: none) */
    guint socket_mode;       /* for a created socket, e.g. 0600 */
    gid_t socket_gid;        /* (gid_t)-1: leave the group alone */
    const uid_t *allowed_uids; /* peers allowed besides our own uid */
    guint n_allowed_uids;
    const char *resctrl_root;
    QphStartupEvents *startup; /* events to enable at start, or NULL */
} QphProxyOptions;

/* Called once QEMU's monitor has gone away, or serving failed. */
typedef void (*QphProxyDoneFunc)(QphProxy *proxy, const GError *error,
                                 gpointer opaque);

/* Take the connected monitor socket @qemu_fd.  @qemu_pid may be 0 (then
 * SO_PEERCRED tells).  The listening socket appears once QEMU's greeting
 * has been read and the helper has negotiated. */
QphProxy *qph_proxy_new(const QphProxyOptions *opts, int qemu_fd,
                        pid_t qemu_pid, QphProxyDoneFunc done,
                        gpointer opaque);
void qph_proxy_free(QphProxy *proxy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphProxy, qph_proxy_free)

pid_t qph_proxy_get_qemu_pid(QphProxy *proxy);
guint qph_proxy_get_n_clients(QphProxy *proxy);
