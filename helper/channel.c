/*
 * channel.c: one non-blocking unix stream socket with an output queue
 *
 * A small custom GSource watches the descriptor: always for input while
 * reading is enabled, and for output only while something is queued.
 * Writes are attempted at once, so a reply usually leaves in the same main
 * loop iteration that produced it; only what the kernel does not take is
 * queued (a copy of it, or a reference).  A channel is reference counted
 * internally so that an owner may free it from inside one of its
 * callbacks.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/channel.h"
#include "helper/trim.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QPH_CHANNEL_READ_SIZE (64 * 1024)

/*
 * One read buffer for every channel: a read callback consumes (copies or
 * forwards) what it is given before it returns, and channels are read one
 * at a time from the one main loop, so a buffer per channel would only
 * cost memory: 64 KiB of address space and a touched page or more per
 * connected client.
 */
static char channel_read_buf[QPH_CHANNEL_READ_SIZE];

#define QPH_CHANNEL_LOW_WATER (64 * 1024)

typedef struct {
    GBytes *bytes;
    gsize whole; /* the size of the message it is (part of) */
    gsize offset;
    QmpFds *fds; /* a reference, dropped once they have gone */
} OutChunk;

typedef struct {
    GSource source;
    QphChannel *ch;
} ChannelSource;

struct QphChannel {
    gint ref;
    int fd;
    gboolean closed;
    gboolean freed;
    gboolean reading;
    gboolean shutting_down;
    gboolean broken; /* a write failed: the next dispatch closes */
    ChannelSource *source;
    gpointer tag;
    GIOCondition condition; /* what the source polls for now */
    GQueue out; /* OutChunk * */
    gsize queued;
    guint64 sent; /* bytes the kernel took, ever */
    QphChannelReadFunc read_cb;
    QphChannelClosedFunc closed_cb;
    QphChannelDrainedFunc drained_cb;
    gpointer opaque;
};

static void
out_chunk_free(OutChunk *c)
{
    qmp_fds_unref(c->fds);
    /* A large message queued for a client is freed once it has read it. */
    if (c->whole >= QPH_TRIM_BYTES) {
        qph_trim_soon();
    }
    g_bytes_unref(c->bytes);
    g_free(c);
}

static QphChannel *
channel_ref(QphChannel *ch)
{
    ch->ref++;
    return ch;
}

static void
channel_unref(QphChannel *ch)
{
    if (--ch->ref > 0) {
        return;
    }
    g_free(ch);
}

static void
channel_update_condition(QphChannel *ch)
{
    GIOCondition cond = 0;

    if (ch->closed || !ch->source) {
        return;
    }
    if (ch->reading && !ch->shutting_down) {
        cond |= G_IO_IN;
    }
    if (ch->queued > 0 || ch->broken || ch->shutting_down) {
        cond |= G_IO_OUT;
    }
    /*
     * Errors and hang-ups are always reported by poll().  Changing the
     * poll set wakes the main context, so only tell GLib about a change:
     * on the hot path (a request in, a reply out) nothing changes.
     */
    if (cond != ch->condition) {
        ch->condition = cond;
        g_source_modify_unix_fd(&ch->source->source, ch->tag, cond);
    }
}

/* Close the socket and drop queued output; tell the owner once. */
static void
channel_close(QphChannel *ch)
{
    OutChunk *c;

    if (ch->closed) {
        return;
    }
    ch->closed = TRUE;
    if (ch->source) {
        g_source_destroy(&ch->source->source);
        g_source_unref(&ch->source->source);
        ch->source = NULL;
    }
    while ((c = g_queue_pop_head(&ch->out))) {
        out_chunk_free(c);
    }
    ch->queued = 0;
    close(ch->fd);
    ch->fd = -1;
    if (!ch->freed && ch->closed_cb) {
        ch->closed_cb(ch, ch->opaque);
    }
}

/*
 * One sendmsg() of @len bytes at @data, with @fds (the caller drops its
 * reference once they went: the kernel holds its own).  Returns the bytes
 * the kernel took (0 if it would block), or -1 on a fatal error.
 */
static gssize
channel_send(QphChannel *ch, const char *data, gsize len, QmpFds *set)
{
    struct iovec iov = { .iov_base = (char *)data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    char control[CMSG_SPACE(sizeof(int) * QPH_CHANNEL_MAX_FDS)];
    guint n_fds;
    const int *fds = qmp_fds_get(set, &n_fds);
    ssize_t n;

    n_fds = MIN(n_fds, QPH_CHANNEL_MAX_FDS);
    if (n_fds > 0) {
        struct cmsghdr *cmsg;

        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
    }
    do {
        n = sendmsg(ch->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        g_debug("Write to socket %d failed: %s", ch->fd, g_strerror(errno));
        return -1;
    }
    ch->sent += n;
    return n;
}

/* Send as much queued output as the kernel takes.  FALSE on a fatal error. */
static gboolean
channel_flush(QphChannel *ch)
{
    OutChunk *c;

    while ((c = g_queue_peek_head(&ch->out))) {
        gsize len;
        const char *data = g_bytes_get_data(c->bytes, &len);
        gssize n = channel_send(ch, data + c->offset, len - c->offset,
                                c->fds);

        if (n < 0) {
            return FALSE;
        }
        if (n == 0) {
            return TRUE;
        }
        /* The descriptors went with the first byte; ours are copies. */
        g_clear_pointer(&c->fds, qmp_fds_unref);
        c->offset += n;
        ch->queued -= n;
        if (c->offset == len) {
            g_queue_pop_head(&ch->out);
            out_chunk_free(c);
        }
    }
    return TRUE;
}

static void
channel_read(QphChannel *ch)
{
    char control[CMSG_SPACE(sizeof(int) * QPH_CHANNEL_MAX_FDS)];
    struct iovec iov = { .iov_base = channel_read_buf,
                          .iov_len = sizeof(channel_read_buf) };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control,
        .msg_controllen = sizeof(control),
    };
    int *fds = NULL;
    guint n_fds = 0;
    g_autoptr(QmpFds) owned = NULL;
    ssize_t n;

    do {
        n = recvmsg(ch->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);

    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); n >= 0 && cmsg;
         cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            guint k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            fds = g_renew(int, fds, n_fds + k);
            memcpy(fds + n_fds, CMSG_DATA(cmsg), k * sizeof(int));
            n_fds += k;
        }
    }

    /* Owned from here: closed on every path below, once. */
    owned = n_fds ? qmp_fds_new(fds, n_fds) : NULL;
    g_free(fds);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        g_debug("Read from socket %d failed: %s", ch->fd, g_strerror(errno));
        channel_close(ch);
        return;
    }
    if (n == 0 && n_fds == 0) {
        channel_close(ch);
        return;
    }
    ch->read_cb(ch, channel_read_buf, n, owned, ch->opaque);
}

static void
channel_dispatch(QphChannel *ch, GIOCondition rev)
{
    channel_ref(ch);
    if (ch->broken && !ch->closed) {
        channel_close(ch);
    }
    if ((rev & G_IO_OUT) && !ch->closed) {
        gsize before = ch->queued;

        if (!channel_flush(ch)) {
            channel_close(ch);
        } else if (ch->shutting_down && ch->queued == 0) {
            channel_close(ch);
        } else {
            channel_update_condition(ch);
            if (before >= QPH_CHANNEL_LOW_WATER &&
                ch->queued < QPH_CHANNEL_LOW_WATER && ch->drained_cb &&
                !ch->freed) {
                ch->drained_cb(ch, ch->opaque);
            }
        }
    }
    if ((rev & G_IO_IN) && !ch->closed && ch->reading && !ch->freed) {
        channel_read(ch);
    } else if ((rev & (G_IO_HUP | G_IO_ERR)) && !ch->closed &&
               !(rev & G_IO_IN)) {
        channel_close(ch);
    }
    channel_unref(ch);
}

static gboolean
channel_source_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    ChannelSource *cs = (ChannelSource *)source;

    channel_dispatch(cs->ch, g_source_query_unix_fd(source, cs->ch->tag));
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs channel_source_funcs = {
    .dispatch = channel_source_dispatch,
};

/**
 * qph_channel_new:
 * Take ownership of the connected, non-blocking socket @fd and start
 * watching it on the thread-default main context.
 */
QphChannel *
qph_channel_new(int fd, QphChannelReadFunc read_cb,
                QphChannelClosedFunc closed_cb,
                QphChannelDrainedFunc drained_cb, gpointer opaque)
{
    QphChannel *ch = g_new0(QphChannel, 1);

    ch->ref = 1;
    ch->fd = fd;
    ch->reading = TRUE;
    ch->read_cb = read_cb;
    ch->closed_cb = closed_cb;
    ch->drained_cb = drained_cb;
    ch->opaque = opaque;
    g_queue_init(&ch->out);
    ch->source = (ChannelSource *)g_source_new(&channel_source_funcs,
                                               sizeof(ChannelSource));
    ch->source->ch = ch;
    g_source_set_name(&ch->source->source, "qph-channel");
    ch->tag = g_source_add_unix_fd(&ch->source->source, fd, G_IO_IN);
    ch->condition = G_IO_IN;
    /*
     * GLib blocks a non-recursive source around each dispatch by taking its
     * descriptor out of the poll set and putting it back, which wakes the
     * context twice per message.  No nested main loop ever runs here, so
     * recursion cannot happen and the blocking buys nothing.
     */
    g_source_set_can_recurse(&ch->source->source, TRUE);
    g_source_attach(&ch->source->source, g_main_context_get_thread_default());
    return ch;
}

/* Close (without calling the closed callback) and release the channel. */
void
qph_channel_free(QphChannel *ch)
{
    if (!ch) {
        return;
    }
    ch->freed = TRUE;
    channel_close(ch);
    channel_unref(ch);
}

int
qph_channel_get_fd(QphChannel *ch)
{
    return ch->fd;
}

gboolean
qph_channel_is_closed(const QphChannel *ch)
{
    return ch->closed;
}

gsize
qph_channel_get_queued(const QphChannel *ch)
{
    return ch->queued;
}

guint64
qph_channel_get_sent(const QphChannel *ch)
{
    return ch->sent;
}

static void
channel_mark_broken(QphChannel *ch)
{
    OutChunk *c;

    ch->broken = TRUE;
    while ((c = g_queue_pop_head(&ch->out))) {
        out_chunk_free(c);
    }
    ch->queued = 0;
}

/*
 * Write @len bytes at @data (held by @bytes, or NULL: then copied if they
 * must wait) with @fds (may be NULL; a reference is taken if they wait).
 * With nothing queued they go at once, from the caller's memory: only
 * what the kernel does not take is queued.  Never closes from here: the
 * caller is in the middle of its own work.  A broken socket is reported
 * by poll() as an error or hang-up, and the next dispatch closes the
 * channel.
 */
static void
channel_write(QphChannel *ch, const char *data, gsize len, GBytes *bytes,
              QmpFds *fds)
{
    gsize whole = len;
    OutChunk *c;

    if (ch->closed || ch->shutting_down || ch->broken) {
        return;
    }
    if (g_queue_is_empty(&ch->out)) {
        gssize n = channel_send(ch, data, len, fds);

        if (n < 0) {
            channel_mark_broken(ch);
            channel_update_condition(ch);
            return;
        }
        if (n > 0) {
            fds = NULL; /* they went with the first byte */
        }
        if ((gsize)n == len) {
            if (whole >= QPH_TRIM_BYTES) {
                qph_trim_soon(); /* the caller frees it after this */
            }
            return;
        }
        data += n;
        len -= n;
        bytes = bytes ? g_bytes_new_from_bytes(bytes, g_bytes_get_size(bytes) -
                                                          len, len)
                      : g_bytes_new(data, len);
    } else {
        bytes = bytes ? g_bytes_ref(bytes) : g_bytes_new(data, len);
    }
    c = g_new0(OutChunk, 1);
    c->bytes = bytes;
    c->whole = whole;
    c->fds = qmp_fds_ref(fds);
    g_queue_push_tail(&ch->out, c);
    ch->queued += len;
    if (ch->out.length == 1) {
        channel_update_condition(ch);
    }
}

void
qph_channel_write(QphChannel *ch, const char *buf, gsize len, QmpFds *fds)
{
    channel_write(ch, buf, len, NULL, fds);
}

void
qph_channel_write_bytes(QphChannel *ch, GBytes *bytes)
{
    gsize len;
    const char *data = g_bytes_get_data(bytes, &len);

    channel_write(ch, data, len, bytes, NULL);
}

void
qph_channel_write_bytes_fds(QphChannel *ch, GBytes *bytes, QmpFds *fds)
{
    gsize len;
    const char *data = g_bytes_get_data(bytes, &len);

    channel_write(ch, data, len, bytes, fds);
}

void
qph_channel_set_reading(QphChannel *ch, gboolean reading)
{
    if (ch->reading == reading) {
        return;
    }
    ch->reading = reading;
    channel_update_condition(ch);
}

void
qph_channel_abort(QphChannel *ch)
{
    if (ch->closed || ch->broken) {
        return;
    }
    /*
     * Drop what is queued (the peer is not reading it) and shut the socket
     * down both ways: poll() then reports a hang-up whether or not the
     * peer ever reads, and the next dispatch closes the channel.  Never
     * closed from here: the caller is in the middle of its own work.
     */
    channel_mark_broken(ch);
    shutdown(ch->fd, SHUT_RDWR);
    channel_update_condition(ch);
}

void
qph_channel_shutdown(QphChannel *ch)
{
    if (ch->closed) {
        return;
    }
    /* Closed from the next dispatch, once the queue has drained. */
    ch->shutting_down = TRUE;
    channel_update_condition(ch);
}
