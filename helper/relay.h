/*
 * relay.h: QEMU's monitor passed through untouched, one client at a time
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef struct QphRelay QphRelay;

typedef void (*QphRelayDoneFunc)(QphRelay *relay, gpointer opaque);

QphRelay *qph_relay_new(int listen_fd, int qemu_fd, GBytes *replay,
                        QphRelayDoneFunc done, gpointer opaque);
void qph_relay_free(QphRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphRelay, qph_relay_free)
