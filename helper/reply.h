/*
 * reply.h: the replies the helper writes itself, in QEMU's exact format
 *
 * Forwarded replies are QEMU's own bytes (with the client's id put back
 * for exec-oob, helper/splice.c).  The replies the helper makes
 * (framing errors, negotiation, its own commands) must look the same: keys
 * in QEMU's QDict order, QEMU's separators, CRLF at the end.  This is the
 * one place that turns a GError into {"error": {"class", "desc"}}.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "helper/upstream.h"
#include "qmp/json-value.h"

/* @id_json: the id as QEMU would echo it (already serialized), or NULL. */
GBytes *qph_reply_error(const char *id_json, const GError *error);
GBytes *qph_reply_error_text(const char *id_json, const char *error_class,
                             const char *desc);
GBytes *qph_reply_return(const char *id_json, const QmpJson *ret);
/* @ret_json: the "return" value's JSON text, inserted verbatim. */
GBytes *qph_reply_return_text(const char *id_json, const char *ret_json);

/* Text to insert before the closing ']' of a returned list (with a leading
 * ", " when @after_elements), or NULL for none. */
typedef char *(*QphReplyExtraFunc)(gboolean after_elements, gpointer data);

GBytes *qph_reply_forward(const QmpMessage *msg,
                          QphReplyExtraFunc extra_func, gpointer extra_data);
GBytes *qph_reply_rewrite(const QmpMessage *msg, const char *id_json,
                          QphReplyExtraFunc extra_func, gpointer extra_data);
