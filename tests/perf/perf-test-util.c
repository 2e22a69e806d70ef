/*
 * perf-test-util.c: threads to count and fds to count, for the perf tests
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "perf-test-util.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct _TestThread {
    GThread *thread;
    GMutex lock;
    GCond cond;
    pid_t tid;
    guint spin_ms;
    gboolean stop;
};

pid_t
test_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static guint64
thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) +
           (guint64)ts.tv_nsec;
}

void
test_spin_cpu_ms(guint ms)
{
    guint64 end = thread_cpu_ns() + (guint64)ms * 1000000;
    volatile guint64 sink = 0;

    while (thread_cpu_ns() < end) {
        for (int i = 0; i < 10000; i++) {
            sink += (guint64)i;
        }
    }
}

static gpointer
test_thread_main(gpointer data)
{
    TestThread *t = data;

    g_mutex_lock(&t->lock);
    t->tid = test_gettid();
    g_cond_broadcast(&t->cond);
    for (;;) {
        while (!t->stop && t->spin_ms == 0) {
            g_cond_wait(&t->cond, &t->lock);
        }
        if (t->stop) {
            break;
        }
        g_mutex_unlock(&t->lock);
        test_spin_cpu_ms(t->spin_ms);
        g_mutex_lock(&t->lock);
        t->spin_ms = 0;
        g_cond_broadcast(&t->cond);
    }
    g_mutex_unlock(&t->lock);
    return NULL;
}

TestThread *
test_thread_new(const char *name)
{
    TestThread *t = g_new0(TestThread, 1);

    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    g_mutex_lock(&t->lock);
    t->thread = g_thread_new(name, test_thread_main, t);
    while (t->tid == 0) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
    return t;
}

pid_t
test_thread_get_tid(const TestThread *t)
{
    return t->tid;
}

void
test_thread_spin(TestThread *t, guint ms)
{
    g_mutex_lock(&t->lock);
    t->spin_ms = ms;
    g_cond_broadcast(&t->cond);
    while (t->spin_ms != 0) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
}

void
test_thread_finish(TestThread *t)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d", t->tid);

    g_mutex_lock(&t->lock);
    t->stop = TRUE;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
    g_thread_join(t->thread);
    /* The kernel releases the tid a moment after pthread_join returns. */
    for (int i = 0; i < 5000 && g_file_test(path, G_FILE_TEST_EXISTS); i++) {
        g_usleep(1000);
    }
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t);
}

static guint
count_dir(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    guint n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    return n;
}

guint
test_count_open_fds(void)
{
    return count_dir("/proc/self/fd") - 1;
}

guint
test_count_threads(void)
{
    return count_dir("/proc/self/task");
}

pid_t
test_dead_pid(void)
{
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    return pid;
}
