/*
 * test-qmp-vectors.c: the framing layer answers exactly as QEMU 7.2 does
 *
 * qemu-vectors.inc holds a corpus of tricky input (stray bytes, bad
 * escapes, invalid UTF-8, recovery, numbers, structure errors, request
 * checks, limits) together with the bytes the real QEMU 7.2 sent back,
 * recorded by gen-vectors.py.  Every vector is replayed through the
 * streamer, the request checks and the reply writer, and the replies must
 * match byte for byte.  Small inputs are also fed one byte at a time and
 * split at every offset: framing must not depend on how reads fall.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp-test-util.h"

typedef struct {
    const char *name;
    const char *prefix;
    gsize prefix_len;
    const char *middle;
    gsize middle_len;
    gsize count;
    const char *suffix;
    gsize suffix_len;
    gboolean oob;
    const char *replies;
    gsize replies_len;
} QemuVector;

static const QemuVector qemu_vectors[] = {
#include "qemu-vectors.inc"
};

/* Inputs up to this size are also fed at every split point. */
#define EXHAUSTIVE_MAX 4096

static GString *
vector_input(const QemuVector *v)
{
    GString *in = g_string_sized_new(v->prefix_len + v->middle_len * v->count +
                                     v->suffix_len);

    g_string_append_len(in, v->prefix, (gssize)v->prefix_len);
    for (gsize i = 0; i < v->count; i++) {
        g_string_append_len(in, v->middle, (gssize)v->middle_len);
    }
    g_string_append_len(in, v->suffix, (gssize)v->suffix_len);
    return in;
}

static void
check_replies(const QemuVector *v, const GString *in, gsize split,
              gsize chunk)
{
    g_autofree char *got =
        qmp_test_replies(in->str, in->len, split, chunk, v->oob);

    if (strlen(got) != v->replies_len ||
        memcmp(got, v->replies, v->replies_len) != 0) {
        g_autofree char *want = g_strndup(v->replies, v->replies_len);

        if (strlen(got) > 2000) {
            got[2000] = '\0';
        }
        if (strlen(want) > 2000) {
            want[2000] = '\0';
        }
        g_test_message("input split at %zu, then chunks of %zu", split,
                       chunk);
        g_test_message("QEMU:   %s", want);
        g_test_message("we say: %s", got);
        g_test_fail();
    }
}

static void
test_vector(gconstpointer data)
{
    const QemuVector *v = data;
    g_autoptr(GString) in = vector_input(v);

    /* One read. */
    check_replies(v, in, in->len, 0);
    if (in->len <= EXHAUSTIVE_MAX) {
        /* One byte per read, and every two-read split. */
        check_replies(v, in, 0, 1);
        for (gsize split = 1; split < in->len && !g_test_failed();
             split++) {
            check_replies(v, in, split, 0);
        }
    } else {
        /* Big inputs: reads of awkward sizes. */
        check_replies(v, in, 1, 4093);
        check_replies(v, in, 0, 65536 + 7);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(qemu_vectors); i++) {
        g_autofree char *path = NULL;
        g_autofree char *name = g_strdup(qemu_vectors[i].name);

        g_strdelimit(name, " ", '-');
        path = g_strdup_printf("/qmp/qemu/%s", name);
        g_test_add_data_func(path, &qemu_vectors[i], test_vector);
    }
    return g_test_run();
}
