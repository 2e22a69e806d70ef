/*
 * regression-main.c: run a fuzz target over kept inputs as a GTest program
 *
 * Linked with one fuzz target's source instead of libFuzzer.  Every file in
 * the target's regressions/ folder (inputs that once crashed or broke a
 * property) is one test case; the seed corpus runs as one more.  So a
 * crash found once stays fixed in every build, gcc included.
 *
 * Usage: fuzz-regress-TARGET REGRESSIONS-DIR CORPUS-DIR [GTest options]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"

static void
run_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;

    if (!g_file_get_contents(path, &data, &len, &error)) {
        g_test_message("%s", error->message);
        g_test_fail();
        return;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
}

static void
test_one(gconstpointer data)
{
    run_file(data);
}

static void
test_corpus(gconstpointer data)
{
    g_autoptr(GDir) dir = g_dir_open(data, 0, NULL);
    const char *name;
    guint n = 0;

    if (!dir) {
        g_test_skip("no seed corpus");
        return;
    }
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(data, name, NULL);

        run_file(path);
        n++;
    }
    g_test_message("%u corpus inputs", n);
}

static GPtrArray *
sorted_files(const char *dirname)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) dir = g_dir_open(dirname, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        if (name[0] != '.') {
            g_ptr_array_add(out, g_strdup(name));
        }
    }
    g_ptr_array_sort(out, (GCompareFunc)g_strcmp0);
    return out;
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    g_autoptr(GPtrArray) names = NULL;
    const char *regressions;
    const char *corpus;

    g_test_init(&argc, &argv, NULL);
    if (argc < 3) {
        g_printerr("usage: %s REGRESSIONS-DIR CORPUS-DIR\n", argv[0]);
        return 2;
    }
    regressions = argv[1];
    corpus = argv[2];
    names = sorted_files(regressions);
    g_ptr_array_sort(names, compare_names);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *test = g_strdup_printf("/fuzz/" FUZZ_TARGET
                                                "/regression/%s",
                                                (char *)names->pdata[i]);

        g_test_add_data_func_full(test,
                                  g_build_filename(regressions,
                                                   names->pdata[i], NULL),
                                  test_one, g_free);
    }
    g_test_add_data_func("/fuzz/" FUZZ_TARGET "/corpus", corpus, test_corpus);
    return g_test_run();
}
