/*
 * perf-test-util.h: threads to count and fds to count, for the perf tests
 *
 * A TestThread is a helper thread of the test process whose tid is known
 * and which burns a given amount of CPU time on request, so a test can
 * attach counters first and make them move afterwards.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct _TestThread TestThread;

/* Start a thread named @name that idles until told to spin or finish. */
TestThread *test_thread_new(const char *name);
pid_t test_thread_get_tid(const TestThread *t);
/* Make the thread burn @ms of its own CPU time; returns when done. */
void test_thread_spin(TestThread *t, guint ms);
/* Stop and join the thread and wait until /proc no longer lists it. */
void test_thread_finish(TestThread *t);

/* Burn @ms of the calling thread's CPU time. */
void test_spin_cpu_ms(guint ms);
/* Entries in /proc/self/fd (the fd used to list them excluded). */
guint test_count_open_fds(void);
/* Entries in /proc/self/task. */
guint test_count_threads(void);
/* A pid that no process has right now (a reaped child's). */
pid_t test_dead_pid(void);
/* The calling thread's id. */
pid_t test_gettid(void);
