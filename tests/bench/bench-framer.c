/*
 * bench-framer.c: what framing QEMU's output costs, per MB
 *
 * Feeds the trusted framer (qmp/qmp-framer.c, the upstream's) and the
 * strict one (a client's input) synthetic QEMU output in 64 KiB reads,
 * as the channel delivers it, and prints nanoseconds per MB for three
 * shapes: many small replies (query-status), a 200 KB query-qmp-schema
 * answer, and a 22 MB xp answer (one long string, passed on as it
 * comes).  `qph-bench-framer [ROUNDS [status|schema|xp]]`; under
 * `valgrind --tool=callgrind`, the inclusive instructions of qemu_scan()
 * (trusted) and qmp_streamer_feed() (strict) per MB are the noise-free
 * measure.  Not a test: a number for docs/performance.md.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qmp/qmp-framer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_SIZE (64 * 1024)

static guint64 n_messages;

static void
count(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    if (msg) {
        n_messages++;
    }
}

static GString *
make_small(gsize total)
{
    GString *s = g_string_new(NULL);

    for (guint64 id = 1; s->len < total; id++) {
        g_string_append_printf(s, "{\"return\": {\"status\": \"running\", "
                                  "\"singlestep\": false, \"running\": "
                                  "true}, \"id\": %" G_GUINT64_FORMAT
                                  "}\r\n", id);
    }
    return s;
}

static GString *
make_schema(gsize total)
{
    GString *s = g_string_new(NULL);

    for (guint round = 1; s->len < total; round++) {
        gsize start = s->len;

        g_string_append(s, "{\"return\": [");
        for (guint i = 0; s->len - start < 200 * 1024; i++) {
            g_string_append_printf(s, "%s{\"name\": \"%u\", \"members\": "
                                      "[{\"name\": \"device\", \"type\": "
                                      "\"str\"}, {\"name\": \"id\", "
                                      "\"default\": null, \"type\": "
                                      "\"int\"}], \"meta-type\": "
                                      "\"object\"}",
                                   i ? ", " : "", i);
        }
        g_string_append_printf(s, "], \"id\": %u}\r\n", round);
    }
    return s;
}

static GString *
make_xp(gsize total)
{
    GString *s = g_string_new("{\"return\": \"");

    while (s->len < total) {
        g_string_append(s, "0000000000000000: 0x00 0x00 0x00 0x00 0x00 "
                           "0x00 0x00 0x00\\r\\n");
    }
    g_string_append(s, "\", \"id\": 1}\r\n");
    return s;
}

/* ns per MB of @text through a framer of @kind, best of @rounds. */
static double
run(QmpFramerKind kind, const GString *text, gboolean pass_on, guint rounds)
{
    double best = 0;

    for (guint r = 0; r < rounds; r++) {
        g_autoptr(QmpFramer) f = qmp_framer_new(kind, count, NULL);
        gint64 t0 = g_get_monotonic_time();
        double ns;

        for (gsize pos = 0; pos < text->len; pos += READ_SIZE) {
            gsize n = MIN(READ_SIZE, text->len - pos);
            gsize pending;

            qmp_framer_feed(f, text->str + pos, n, NULL);
            qmp_framer_peek(f, &pending);
            if (pass_on && pending >= (1u << 20)) {
                qmp_framer_pass_on(f, pending - 64);
            }
            qmp_framer_release(f, 1u << 20);
        }
        ns = (g_get_monotonic_time() - t0) * 1000.0 /
             (text->len / 1048576.0);
        best = r == 0 ? ns : MIN(best, ns);
    }
    return best;
}

int
main(int argc, char **argv)
{
    guint rounds = argc > 1 ? (guint)atoi(argv[1]) : 5;
    const char *only = argc > 2 ? argv[2] : NULL; /* status, schema or xp */

    printf("shape\ttrusted ns/MB\tstrict ns/MB\n");
    if (!only || g_str_equal(only, "status")) {
        g_autoptr(GString) small = make_small(32u << 20);

        printf("query-status replies\t%.0f\t%.0f\n",
               run(QMP_FRAMER_TRUSTED, small, FALSE, rounds),
               run(QMP_FRAMER_STRICT, small, FALSE, rounds));
    }
    if (!only || g_str_equal(only, "schema")) {
        g_autoptr(GString) schema = make_schema(32u << 20);

        printf("200 KB schema answers\t%.0f\t%.0f\n",
               run(QMP_FRAMER_TRUSTED, schema, FALSE, rounds),
               run(QMP_FRAMER_STRICT, schema, FALSE, rounds));
    }
    if (!only || g_str_equal(only, "xp")) {
        g_autoptr(GString) xp = make_xp(22u << 20);

        printf("22 MB xp answer, passed on\t%.0f\t-\n",
               run(QMP_FRAMER_TRUSTED, xp, TRUE, rounds));
    }
    return n_messages ? 0 : 1;
}
