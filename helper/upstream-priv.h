/*
 * upstream-priv.h: the upstream's pure scanner and id splice, for tests
 *
 * Not part of the upstream's interface: exposed so that tests/fuzz can
 * drive the id splice and the member scanner without a socket.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "helper/upstream.h"

void qph_upstream_scan_members(QphScannedMessage *msg);
void qph_upstream_splice_id(GString *out, const char *msg, gsize len,
                            gsize id_offset, gsize id_len, guint64 id);
gboolean qph_upstream_prepare_forward(GString *out, const QmpMessage *msg,
                                      const QmpMessageMember *id,
                                      guint64 helper_id,
                                      const QmpJsonLimits *limits);
