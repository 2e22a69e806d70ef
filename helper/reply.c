/*
 * reply.c: the replies the helper writes itself, in QEMU's exact format
 *
 * The formatting (QDict key order, separators, CRLF) is the framing
 * layer's (qmp/qmp-request.c); this file adapts it to GError and GBytes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/reply.h"

#include <string.h>
#include "qmp/json-streamer.h"
#include "qmp/qmp-error.h"
#include "qmp/qmp-request.h"

static GBytes *
bytes_take_string(char *s)
{
    return g_bytes_new_take(s, strlen(s));
}

GBytes *
qph_reply_error_text(const char *id_json, const char *error_class,
                     const char *desc)
{
    return bytes_take_string(qmp_reply_error(error_class, desc, id_json));
}

GBytes *
qph_reply_error(const char *id_json, const GError *error)
{
    return qph_reply_error_text(id_json, qmp_error_class_name(error),
                                error->message);
}

GBytes *
qph_reply_return(const char *id_json, const QmpJson *ret)
{
    g_autoptr(GString) value = g_string_new(NULL);

    qmp_json_write(value, ret);
    return qph_reply_return_text(id_json, value->str);
}

GBytes *
qph_reply_return_text(const char *id_json, const char *ret_json)
{
    return bytes_take_string(qmp_reply_return(ret_json, id_json));
}
