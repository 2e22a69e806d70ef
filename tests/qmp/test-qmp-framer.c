/*
 * test-qmp-framer.c: the one framer, both kinds, on cases worth naming
 *
 * The trusted kind on QEMU's own output shapes (CRLF lines, pretty mode,
 * escapes, a banner before the greeting), passing on a message in
 * progress and releasing a large buffer; the strict kind's descriptors
 * going with the first message framed from their read on; and QmpFds
 * closing its descriptors with the last reference.  Properties over
 * arbitrary bytes are tests/fuzz/fuzz-framing.c's.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-framer.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    GString *log;
    GPtrArray *fds; /* QmpFds * seen, in message order (NULL for none) */
    QmpFramer *free_on_first; /* freed from the first callback */
} Seen;

static void
seen_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    Seen *s = opaque;

    if (s->free_on_first) {
        qmp_framer_free(g_steal_pointer(&s->free_on_first));
    }
    if (!msg) {
        g_string_append_printf(s->log, "error: %s\n", error_text);
        return;
    }
    g_string_append_printf(s->log, "%zu+%zu:", msg->passed_on, msg->len);
    for (guint i = 0; i < msg->n_members; i++) {
        const QmpMessageMember *m = &msg->members[i];

        g_string_append_printf(s->log, " %s=%.*s", m->key, (int)m->value_len,
                               msg->data + m->value_offset);
    }
    g_string_append_c(s->log, '\n');
    if (s->fds) {
        g_ptr_array_add(s->fds, msg->fds);
    }
}

static char *
frame_trusted(const char *text, gsize chunk)
{
    Seen s = { g_string_new(NULL) };
    g_autoptr(QmpFramer) f = qmp_framer_new(QMP_FRAMER_TRUSTED, seen_emit, &s);
    gsize len = strlen(text);

    for (gsize pos = 0; pos < len; pos += chunk) {
        qmp_framer_feed(f, text + pos, MIN(chunk, len - pos), NULL);
    }
    return g_string_free(s.log, FALSE);
}

static void
test_trusted_shapes(void)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        { "{\"return\": {}, \"id\": 1}\r\n{\"event\": \"STOP\", "
          "\"data\": {\"a\": [1, {\"b\": \"}\"}]}}\r\n",
          "0+23: return={} id=1\n"
          "0+49: event=\"STOP\" data={\"a\": [1, {\"b\": \"}\"}]}\n" },
        { "{\n    \"return\": [\n        1\n    ],\n    \"id\": 2\n}\n",
          "0+48: return=[\n        1\n    ] id=2\n" },
        { "{\"return\": \"\\\"}\\\\\", \"id\": 3}",
          "0+28: return=\"\\\"}\\\\\" id=3\n" },
        { "QEMU 7.2.0 monitor\r\n(qemu) {\"id\": 4}x}",
          "error: QMP stream: stray byte 'Q' between messages\n"
          "0+9: id=4\n"
          "error: QMP stream: stray byte 'x' between messages\n" },
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        for (gsize chunk = 1; chunk <= 64; chunk *= 4) {
            g_autofree char *got = frame_trusted(cases[i].in, chunk);

            g_assert_cmpstr(got, ==, cases[i].out);
        }
    }
}

/* A message in progress is passed on as it comes; its end comes with
 * passed_on set and only the rest in it. */
static void
test_trusted_pass_on(void)
{
    Seen s = { g_string_new(NULL) };
    g_autoptr(QmpFramer) f = qmp_framer_new(QMP_FRAMER_TRUSTED, seen_emit, &s);
    const char *p;
    gsize n;

    qmp_framer_feed(f, "\r\n{\"return\": \"abc", 17, NULL);
    p = qmp_framer_peek(f, &n);
    g_assert_cmpmem(p, n, "{\"return\": \"abc", 15);
    qmp_framer_pass_on(f, 13);
    p = qmp_framer_peek(f, &n);
    g_assert_cmpmem(p, n, "bc", 2);
    qmp_framer_feed(f, "}\\\"\", \"id\": 5}{\"id\": 6}", 23, NULL);
    g_assert_cmpstr(s.log->str, ==, "13+16:\n0+9: id=6\n");
    g_assert_null(qmp_framer_peek(f, &n));
    g_assert_cmpuint(n, ==, 0);
    g_string_free(s.log, TRUE);
}

static void
test_trusted_release(void)
{
    Seen s = { g_string_new(NULL) };
    g_autoptr(QmpFramer) f = qmp_framer_new(QMP_FRAMER_TRUSTED, seen_emit, &s);
    g_autofree char *big = g_strnfill(4096, 'x');

    qmp_framer_feed(f, "{\"return\": \"", 12, NULL);
    qmp_framer_feed(f, big, 4096, NULL);
    g_assert_false(qmp_framer_release(f, 1024)); /* still in a message */
    qmp_framer_feed(f, "\"}", 2, NULL);
    g_assert_false(qmp_framer_release(f, 8192)); /* not that large */
    g_assert_true(qmp_framer_release(f, 1024));
    g_assert_false(qmp_framer_release(f, 1024)); /* released already */
    qmp_framer_feed(f, "{\"id\": 7}", 9, NULL);
    g_assert_true(g_str_has_prefix(s.log->str, "0+4110: return=\"xxx"));
    g_assert_true(g_str_has_suffix(s.log->str, "\n0+9: id=7\n"));
    g_string_free(s.log, TRUE);
}

static gboolean
fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static QmpFds *
new_pipe_fds(int *read_end)
{
    int p[2];

    g_assert_cmpint(pipe(p), ==, 0);
    close(p[1]);
    *read_end = p[0];
    return qmp_fds_new(p, 1);
}

/* Descriptors go with the first message framed from their read on (a
 * framing error does not take them); newer ones replace those still
 * waiting; the last reference closes them. */
static void
test_strict_fds(void)
{
    Seen s = { g_string_new(NULL), g_ptr_array_new() };
    QmpFramer *f = qmp_framer_new(QMP_FRAMER_STRICT, seen_emit, &s);
    int a, b, c;
    g_autoptr(QmpFds) fa = new_pipe_fds(&a);
    g_autoptr(QmpFds) fb = new_pipe_fds(&b);
    g_autoptr(QmpFds) fc = new_pipe_fds(&c);

    qmp_framer_feed(f, "{\"execute\": ", 12, fa);
    qmp_framer_feed(f, "\"x\"} } {\"id\": 1}", 16, NULL);
    qmp_framer_feed(f, "{\"id\"", 5, fb);
    qmp_framer_feed(f, "", 0, fc); /* replaces fb before any message */
    qmp_framer_feed(f, ": 2}", 4, NULL);
    g_assert_cmpstr(s.log->str, ==,
                    "0+16: execute=\"x\"\n"
                    "error: JSON parse error, expecting value\n"
                    "0+9: id=1\n0+9: id=2\n");
    g_assert_cmpuint(s.fds->len, ==, 3);
    g_assert_true(s.fds->pdata[0] == fa);
    g_assert_null(s.fds->pdata[1]);
    g_assert_true(s.fds->pdata[2] == fc);
    /* The framer holds none of them now: ours are the last. */
    g_clear_pointer(&fb, qmp_fds_unref);
    g_assert_false(fd_open(b));
    g_clear_pointer(&fa, qmp_fds_unref);
    g_assert_false(fd_open(a));
    /* Waiting for a message, the framer's reference keeps them open. */
    qmp_framer_feed(f, " ", 1, fc);
    g_clear_pointer(&fc, qmp_fds_unref);
    g_assert_true(fd_open(c));
    qmp_framer_free(f);
    g_assert_false(fd_open(c));
    g_string_free(s.log, TRUE);
    g_ptr_array_unref(s.fds);
}

/* The owner may free the framer from its callback, either kind. */
static void
test_free_from_callback(void)
{
    for (int kind = QMP_FRAMER_STRICT; kind <= QMP_FRAMER_TRUSTED; kind++) {
        Seen s = { g_string_new(NULL) };

        s.free_on_first = qmp_framer_new(kind, seen_emit, &s);
        qmp_framer_feed(s.free_on_first, "{\"id\": 1}{\"id\": 2}", 18, NULL);
        g_assert_null(s.free_on_first);
        g_assert_cmpstr(s.log->str, ==, "0+9: id=1\n");
        g_string_free(s.log, TRUE);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp-framer/trusted/shapes", test_trusted_shapes);
    g_test_add_func("/qmp-framer/trusted/pass-on", test_trusted_pass_on);
    g_test_add_func("/qmp-framer/trusted/release", test_trusted_release);
    g_test_add_func("/qmp-framer/strict/fds", test_strict_fds);
    g_test_add_func("/qmp-framer/free-from-callback",
                    test_free_from_callback);
    return g_test_run();
}
