/*
 * splice.h: the helper's id on a client's exec-oob request, and its scheme
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-streamer.h"

/* An in-band request whose id is longer than this goes without it. */
#define QPH_SPLICE_INBAND_ID_MAX 256

gboolean qph_splice_inband_keeps_id(const QmpMessageMember *id);
void qph_splice_without_id(GString *out, const QmpMessage *msg,
                           const QmpMessageMember *id);
gboolean qph_splice_parse_oob_id(const char *text, gsize len, guint64 *n);
gboolean qph_splice_id_is_reserved(const QmpMessage *msg,
                                   const QmpMessageMember *id, guint64 *n);
void qph_splice_id(GString *out, const char *msg, gsize len, gsize id_offset,
                   gsize id_len, guint64 n);
gboolean qph_splice_prepare_oob(GString *out, const QmpMessage *msg,
                                const QmpMessageMember *id, guint64 n,
                                const QmpJsonLimits *limits);
