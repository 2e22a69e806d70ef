/*
 * test-state.c: the restart state file (helper/state.c) and the --enable
 * list (helper/startup-events.c), as GTest unit tests
 *
 * The state file is named after a process's pid and start time; this test
 * uses its own process, whose start time it reads from /proc/self/stat by
 * itself (the reference), and a temporary directory.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/startup-events.h"
#include "helper/state.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

/* Field 22 of /proc/self/stat, read independently of state.c. */
static guint64
own_start_time(void)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) fields = NULL;

    g_assert_true(g_file_get_contents("/proc/self/stat", &text, NULL, NULL));
    fields = g_strsplit(strrchr(text, ')') + 2, " ", 0);
    /* fields[0] is field 3 (state). */
    return g_ascii_strtoull(fields[22 - 3], NULL, 10);
}

typedef struct {
    char *dir;
} Fixture;

static void
fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;

    f->dir = g_dir_make_tmp("qph-state-XXXXXX", &error);
    g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
    g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(f->dir, name, NULL);

        g_unlink(path);
    }
    g_rmdir(f->dir);
    g_free(f->dir);
}

static void
test_start_time(Fixture *f, gconstpointer data)
{
    guint64 start = 0;
    g_autoptr(GError) error = NULL;

    g_assert_true(qph_state_get_start_time(getpid(), &start, &error));
    g_assert_cmpuint(start, ==, own_start_time());
    /* pid_max is at most 2^22: this pid cannot exist. */
    g_assert_false(qph_state_get_start_time(G_MAXINT32, &start, &error));
    g_assert_nonnull(
        strstr(error->message, "Unable to read the start time of process"));
}

static void
test_round_trip(Fixture *f, gconstpointer data)
{
    const char *const events[] = {"task_clock", "odd;name,with\nall", NULL};
    g_autoptr(GError) error = NULL;
    g_autoptr(QphState) state = qph_state_new(f->dir, getpid(), &error);
    g_autofree char *want =
        g_strdup_printf("%s/qemu-%d-%" G_GUINT64_FORMAT ".state", f->dir,
                        (int)getpid(), own_start_time());
    g_auto(GStrv) got = NULL;
    g_auto(GStrv) none = NULL;

    g_assert_no_error(error);
    g_assert_cmpstr(qph_state_get_path(state), ==, want);
    /* No file yet: nothing to restore, and no error. */
    g_assert_true(qph_state_load(state, &none, &error));
    g_assert_null(none);

    g_assert_true(qph_state_save(state, events, &error));
    g_assert_no_error(error);
    g_assert_true(g_file_test(want, G_FILE_TEST_IS_REGULAR));
    {
        /* Written beside and renamed: nothing half-written is left. */
        g_autofree char *tmp = g_strconcat(want, ".tmp", NULL);

        g_assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));
    }
    g_assert_true(qph_state_load(state, &got, &error));
    g_assert_cmpstrv(got, events);

    /* An empty set is a state too: a restart enables nothing. */
    g_clear_pointer(&got, g_strfreev);
    g_assert_true(qph_state_save(state, (const char *const[]){NULL}, &error));
    g_assert_true(qph_state_load(state, &got, &error));
    g_assert_nonnull(got);
    g_assert_cmpuint(g_strv_length(got), ==, 0);

    g_assert_true(qph_state_remove(state, &error));
    g_assert_false(g_file_test(want, G_FILE_TEST_EXISTS));
    g_assert_true(qph_state_remove(state, &error));
}

static void
test_refused(Fixture *f, gconstpointer data)
{
    g_autoptr(QphState) state = qph_state_new(f->dir, getpid(), NULL);
    const char *path = qph_state_get_path(state);
    g_autofree char *other = g_strdup_printf(
        "[state]\npid=1\nstart-time=%" G_GUINT64_FORMAT "\nevents=x;\n",
        own_start_time());
    g_autofree char *big = g_strnfill(70 * 1024, '#');
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        {"[state]\nevents=x;\n", "is not about QEMU pid"},
        {"not a key file\n", "Unable to read the state file"},
    };
    g_autoptr(GError) error = NULL;
    GStrv events = NULL;

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_assert_true(g_file_set_contents(path, cases[i].text, -1, NULL));
        g_assert_false(qph_state_load(state, &events, &error));
        g_assert_null(events);
        g_test_message("%s", error->message);
        g_assert_nonnull(strstr(error->message, cases[i].why));
        g_assert_nonnull(strstr(error->message, path));
        g_clear_error(&error);
    }
    /* Copied from another QEMU: the pid inside must match the name. */
    g_assert_true(g_file_set_contents(path, other, -1, NULL));
    g_assert_false(qph_state_load(state, &events, &error));
    g_assert_nonnull(strstr(error->message, "is not about QEMU pid"));
    g_clear_error(&error);
    g_assert_true(g_file_set_contents(path, big, -1, NULL));
    g_assert_false(qph_state_load(state, &events, &error));
    g_assert_nonnull(strstr(error->message, "of at most 65536 bytes"));
}

static void
test_split(void)
{
    const char *const given[] = {"task_clock, page_faults", "", " ,cpu_clock,,",
                                 NULL};
    const char *const want[] = {"task_clock", "page_faults", "cpu_clock", NULL};
    g_auto(GStrv) got = qph_startup_events_split(given);
    g_auto(GStrv) none = qph_startup_events_split(NULL);

    g_assert_cmpstrv(got, want);
    g_assert_nonnull(none);
    g_assert_cmpuint(g_strv_length(none), ==, 0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/state/start-time", Fixture, NULL, fixture_setup,
               test_start_time, fixture_teardown);
    g_test_add("/state/round-trip", Fixture, NULL, fixture_setup,
               test_round_trip, fixture_teardown);
    g_test_add("/state/refused", Fixture, NULL, fixture_setup, test_refused,
               fixture_teardown);
    g_test_add_func("/startup-events/split", test_split);
    return g_test_run();
}
