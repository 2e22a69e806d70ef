/*
 * splice.h: a client's request as it goes to QEMU, with the helper's id
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-streamer.h"

void qph_splice_id(GString *out, const char *msg, gsize len, gsize id_offset,
                   gsize id_len, guint64 id);
gboolean qph_splice_prepare_forward(GString *out, const QmpMessage *msg,
                                    const QmpMessageMember *id,
                                    guint64 helper_id,
                                    const QmpJsonLimits *limits);
