/*
 * qmp-message.c: a framed QMP message, and the descriptors it carries
 *
 * See qmp-message.h.  A copy (qmp_message_copy) is one allocation for
 * the bytes and one for the members with their keys, so that a message
 * that must wait (a client past its in-flight limit) costs little.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-message.h"

#include <string.h>
#include <unistd.h>

struct QmpFds {
    gint refs;
    guint n;
    int fds[];
};

QmpFds *
qmp_fds_new(const int *fds, guint n)
{
    QmpFds *f = g_malloc(sizeof(QmpFds) + sizeof(int) * n);

    f->refs = 1;
    f->n = n;
    if (n) {
        memcpy(f->fds, fds, sizeof(int) * n);
    }
    return f;
}

QmpFds *
qmp_fds_ref(QmpFds *fds)
{
    if (fds) {
        g_atomic_int_inc(&fds->refs);
    }
    return fds;
}

void
qmp_fds_unref(QmpFds *fds)
{
    if (!fds || !g_atomic_int_dec_and_test(&fds->refs)) {
        return;
    }
    for (guint i = 0; i < fds->n; i++) {
        close(fds->fds[i]);
    }
    g_free(fds);
}

const int *
qmp_fds_get(const QmpFds *fds, guint *n)
{
    *n = fds ? fds->n : 0;
    return fds ? fds->fds : NULL;
}

const QmpMessageMember *
qmp_message_get(const QmpMessage *msg, const char *key)
{
    gsize klen = strlen(key);

    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        if (m->key_len == klen && memcmp(m->key, key, klen) == 0) {
            return m;
        }
    }
    return NULL;
}

QmpMessage *
qmp_message_copy(const QmpMessage *msg)
{
    QmpMessage *copy = g_new(QmpMessage, 1);
    QmpMessageMember *members;
    gsize keys = 0;
    char *k;

    *copy = *msg;
    copy->data = g_memdup2(msg->data, msg->len);
    copy->fds = qmp_fds_ref(msg->fds);
    if (!msg->n_members) {
        copy->members = NULL;
        return copy;
    }
    for (guint i = 0; i < msg->n_members; i++) {
        keys += msg->members[i].key_len + 1;
    }
    members = g_malloc(sizeof(QmpMessageMember) * msg->n_members + keys);
    k = (char *)(members + msg->n_members);
    for (guint i = 0; i < msg->n_members; i++) {
        members[i] = msg->members[i];
        memcpy(k, msg->members[i].key, msg->members[i].key_len);
        k[msg->members[i].key_len] = '\0';
        members[i].key = k;
        k += msg->members[i].key_len + 1;
    }
    copy->members = members;
    return copy;
}

void
qmp_message_free(QmpMessage *msg)
{
    if (!msg) {
        return;
    }
    g_free((char *)msg->data);
    g_free((QmpMessageMember *)msg->members);
    qmp_fds_unref(msg->fds);
    g_free(msg);
}
