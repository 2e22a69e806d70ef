/*
 * test-perf-threads.c: listing a process's threads and naming them
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/threads.h"
#include "qmp/qmp-error.h"
#include "perf-test-util.h"

#include <unistd.h>

static gboolean
tids_contain(GArray *tids, pid_t tid)
{
    for (guint i = 0; i < tids->len; i++) {
        if (g_array_index(tids, pid_t, i) == tid) {
            return TRUE;
        }
    }
    return FALSE;
}

static void
test_threads_list_self(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) before = qph_threads_list(getpid(), &error);
    g_autoptr(GArray) after = NULL;
    TestThread *a, *b;

    g_assert_no_error(error);
    g_assert_nonnull(before);
    g_assert_cmpuint(before->len, ==, test_count_threads());
    g_assert_true(tids_contain(before, getpid()));

    a = test_thread_new("qph-a");
    b = test_thread_new("qph-b");
    after = qph_threads_list(getpid(), &error);
    g_assert_no_error(error);
    g_assert_cmpuint(after->len, ==, before->len + 2);
    g_assert_true(tids_contain(after, test_thread_get_tid(a)));
    g_assert_true(tids_contain(after, test_thread_get_tid(b)));
    for (guint i = 1; i < after->len; i++) {
        g_assert_cmpint(g_array_index(after, pid_t, i - 1), <,
                        g_array_index(after, pid_t, i));
    }
    test_thread_finish(a);
    test_thread_finish(b);
}

static void
test_threads_list_errors(void)
{
    g_autoptr(GError) error = NULL;
    pid_t dead = test_dead_pid();
    g_autofree char *msg = g_strdup_printf(
        "Cannot list the threads of process %d in /proc/%d/task: the "
        "process does not exist (it may have exited).",
        (int)dead, (int)dead);

    g_assert_null(qph_threads_list(dead, &error));
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_assert_cmpstr(error->message, ==, msg);
    g_clear_error(&error);
    g_assert_null(qph_threads_list(0, &error));
    g_assert_cmpstr(error->message, ==,
                    "Cannot list the threads of process 0: not a valid "
                    "process id.");
}

static void
test_threads_name(void)
{
    g_autoptr(GError) error = NULL;
    TestThread *t = test_thread_new("qph-named");
    pid_t tid = test_thread_get_tid(t);
    g_autofree char *name = qph_threads_get_name(getpid(), tid, &error);
    g_autofree char *gone = NULL;
    g_autofree char *msg = NULL;

    g_assert_no_error(error);
    g_assert_cmpstr(name, ==, "qph-named");
    g_assert_true(qph_threads_exists(getpid(), tid));

    test_thread_finish(t);
    g_assert_false(qph_threads_exists(getpid(), tid));
    gone = qph_threads_get_name(getpid(), tid, &error);
    g_assert_null(gone);
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    msg = g_strdup_printf("Cannot read the name of thread %d of process %d "
                          "from /proc/%d/task/%d/comm: the thread does not "
                          "exist (it may have exited).",
                          (int)tid, (int)getpid(), (int)getpid(), (int)tid);
    g_assert_cmpstr(error->message, ==, msg);
}

/* The main thread's comm is the program name cut to 15 bytes. */
static void
test_threads_name_main(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *name = qph_threads_get_name(getpid(), getpid(), &error);

    g_assert_no_error(error);
    g_assert_cmpstr(name, ==, "test-perf-threa");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/perf/threads/list-self", test_threads_list_self);
    g_test_add_func("/perf/threads/list-errors", test_threads_list_errors);
    g_test_add_func("/perf/threads/name", test_threads_name);
    g_test_add_func("/perf/threads/name-main", test_threads_name_main);
    return g_test_run();
}
