/*
 * client-priv.h: the session's pure reply rewrite, for tests and fuzzers
 *
 * Not part of the session's interface: exposed so that tests/fuzz can feed
 * the id splice any message QEMU could send without a socket or a loop.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "helper/upstream.h"

/* Text to insert before the closing ']' of a returned list (with a leading
 * ", " when @after_elements), or NULL for none. */
typedef char *(*QphReplyExtraFunc)(gboolean after_elements, gpointer data);

GBytes *qph_client_rewrite_reply(const QphScannedMessage *msg,
                                 const char *id_json,
                                 QphReplyExtraFunc extra_func,
                                 gpointer extra_data);
