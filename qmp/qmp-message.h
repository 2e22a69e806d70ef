/*
 * qmp-message.h: one QMP message as the framer found it, in either
 * direction, and the descriptors that came with it
 *
 * A message is its bytes as they came (a client's request, QEMU's reply
 * or event), the byte spans of its top-level members, and, when it came
 * over a socket with SCM_RIGHTS, the descriptors of the read that brought
 * it.  The proxy forwards the bytes without re-serializing them and
 * splices a different `id` in by the spans (helper/splice.c one way,
 * helper/reply.c the other).
 *
 * The descriptors are one owned, reference-counted object (QmpFds): the
 * channel's read creates it, the framer attaches it to the message, and
 * whoever passes the message on takes a reference until the sendmsg()
 * that hands the descriptors over.  The last unref closes them, so every
 * path (client gone, request dropped or cancelled, sent) closes each
 * descriptor exactly once.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "qmp/json-value.h"

typedef struct QmpFds QmpFds;

/* Take ownership of @n descriptors (the array stays the caller's). */
QmpFds *qmp_fds_new(const int *fds, guint n);
QmpFds *qmp_fds_ref(QmpFds *fds);
/* The last reference closes the descriptors. */
void qmp_fds_unref(QmpFds *fds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpFds, qmp_fds_unref)
/* The descriptors, still owned by @fds (valid while a reference is). */
const int *qmp_fds_get(const QmpFds *fds, guint *n);

typedef struct {
    const char *key;    /* decoded key, NUL-terminated (see below) */
    gsize key_len;
    gsize key_offset;   /* offset of the key's opening quote */
    gsize value_offset; /* offset of the value's first byte */
    gsize value_len;    /* length of the value's bytes */
    QmpJsonType value_type;
} QmpMessageMember;

typedef struct {
    const char *data; /* the message's bytes; valid during the callback */
    gsize len;
    QmpJsonType type; /* of the top-level value */
    /* QMP_JSON_OBJECT: its top-level members in input order.  From a
     * client, every member, keys unescaped (duplicate keys are a parse
     * error); from QEMU, the first QMP_FRAMER_MAX_MEMBERS, keys as QEMU
     * wrote them. */
    const QmpMessageMember *members;
    guint n_members;
    guint n_tokens;   /* from a client: what QEMU's limits count: tokens, */
    gsize token_size; /* and the sum of their lengths */
    /* From QEMU, when its first bytes were passed on while it came
     * (qmp_framer_pass_on()): how many; @data holds only the rest. */
    gsize passed_on;
    QmpFds *fds;      /* what came with it, or NULL; borrowed: ref to keep */
} QmpMessage;

/* The member @key (by its decoded name), or NULL. */
const QmpMessageMember *qmp_message_get(const QmpMessage *msg,
                                        const char *key);

/* A copy that owns its bytes, members and a reference to its fds. */
QmpMessage *qmp_message_copy(const QmpMessage *msg);
void qmp_message_free(QmpMessage *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpMessage, qmp_message_free)
