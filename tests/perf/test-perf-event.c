/*
 * test-perf-event.c: one event, encoded by libpfm4, counted per thread
 *
 * Counting tests use software events on the test process's own threads;
 * hardware events are expected to fail with the "no hardware PMU"
 * sentence on a host without one (and are skipped on a host with one).
 * The privilege tests drive perf.c's test hooks (perf-priv.h) and, when
 * run as root with kernel.perf_event_paranoid 2, a subprocess that really
 * drops to user nobody.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define QPH_PERF_PRIV_H_ALLOW
#include "helper/perf.h"
#include "helper/perf-priv.h"
#include "qmp/qmp-error.h"
#include "perf-test-util.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <perfmon/pfmlib_perf_event.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NS_PER_MS G_GUINT64_CONSTANT(1000000)

static QphPerfEvent *
event_new_ok(const char *name)
{
    g_autoptr(GError) error = NULL;
    QphPerfEvent *ev = qph_perf_event_new(name, &error);

    g_assert_no_error(error);
    g_assert_nonnull(ev);
    return ev;
}

static void
assert_attr(const char *name, guint32 type, guint64 config)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok(name);

    g_assert_cmpuint(qph_perf_event_get_attr(ev)->type, ==, type);
    g_assert_cmpuint(qph_perf_event_get_attr(ev)->config, ==, config);
}

/* Strings that are not catalog names go to libpfm4 as they are. */
static void
test_pfm_generic_names(void)
{
    g_autoptr(QphPerfEvent) u = NULL;

    assert_attr("perf::PAGE-FAULTS", PERF_TYPE_SOFTWARE,
                PERF_COUNT_SW_PAGE_FAULTS);
    assert_attr("perf::TASK-CLOCK", PERF_TYPE_SOFTWARE,
                PERF_COUNT_SW_TASK_CLOCK);
    assert_attr("cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES);
    assert_attr("perf::L1-DCACHE-LOADS", PERF_TYPE_HW_CACHE, 0);
    assert_attr("perf_raw::r0076", PERF_TYPE_RAW, 0x76);

    /* Modifiers: :u counts user space only. */
    u = event_new_ok("perf::TASK-CLOCK:u");
    g_assert_true(qph_perf_event_get_attr(u)->exclude_kernel);
    g_assert_false(qph_perf_event_get_attr(u)->exclude_user);
    g_assert_cmpstr(qph_perf_event_get_unit(u), ==, "ns");
    g_assert_cmpstr(qph_perf_event_get_name(u), ==, "perf::TASK-CLOCK:u");
}

/*
 * An event of the host's own PMU model, as libpfm4 detected it: the first
 * one libpfm4 encodes on its own (some need a unit mask) must come out of
 * qph_perf_event_new() the same.
 */
static void
test_pfm_host_pmu_name(void)
{
    g_autofree char *name = NULL;
    struct perf_event_attr want = {0};
    int pmu;

    g_assert_cmpint(pfm_initialize(), ==, PFM_SUCCESS);
    pfm_for_all_pmus(pmu)
    {
        pfm_pmu_info_t pinfo = {.size = sizeof(pinfo)};

        if (pfm_get_pmu_info(pmu, &pinfo) != PFM_SUCCESS || !pinfo.is_present ||
            strcmp(pinfo.name, "perf") == 0 ||
            strcmp(pinfo.name, "perf_raw") == 0) {
            continue;
        }
        for (int i = pinfo.first_event; i >= 0 && !name;
             i = pfm_get_event_next(i)) {
            pfm_event_info_t einfo = {.size = sizeof(einfo)};
            pfm_perf_encode_arg_t arg = {.attr = &want, .size = sizeof(arg)};
            g_autofree char *candidate = NULL;

            if (pfm_get_event_info(i, PFM_OS_NONE, &einfo) != PFM_SUCCESS) {
                continue;
            }
            candidate = g_strdup_printf("%s::%s", pinfo.name, einfo.name);
            memset(&want, 0, sizeof(want));
            if (pfm_get_os_event_encoding(candidate, PFM_PLM0 | PFM_PLM3,
                                          PFM_OS_PERF_EVENT_EXT,
                                          &arg) == PFM_SUCCESS) {
                name = g_steal_pointer(&candidate);
            }
        }
        if (name) {
            break;
        }
    }
    if (!name) {
        g_test_skip("libpfm4 detected no host PMU model");
        return;
    }
    g_test_message("host PMU event: %s", name);
    {
        g_autoptr(QphPerfEvent) ev = event_new_ok(name);
        const struct perf_event_attr *attr = qph_perf_event_get_attr(ev);

        g_assert_true(attr->type == PERF_TYPE_RAW ||
                      attr->type >= PERF_TYPE_MAX);
        g_assert_cmpuint(attr->type, ==, want.type);
        g_assert_cmpuint(attr->config, ==, want.config);
        g_assert_cmpuint(attr->config1, ==, want.config1);
    }
}

/* Intel's INST_RETIRED:ANY_P: encodes on Intel, "Unknown" elsewhere. */
static void
test_pfm_intel_name(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphPerfEvent) ev =
        qph_perf_event_new("INST_RETIRED:ANY_P", &error);

    g_assert_cmpint(pfm_initialize(), ==, PFM_SUCCESS);
    if (pfm_find_event("INST_RETIRED") >= 0) {
        g_assert_no_error(error);
        g_assert_nonnull(ev);
    } else {
        g_assert_null(ev);
        g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
        g_assert_cmpstr(error->message, ==,
                        "Unknown perf event 'INST_RETIRED:ANY_P': libpfm4 "
                        "says: event not found.");
    }
}

static void
assert_new_fails(const char *name, const char *message)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphPerfEvent) ev = qph_perf_event_new(name, &error);

    g_assert_null(ev);
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_assert_cmpstr(error->message, ==, message);
}

static void
test_unknown_names(void)
{
    g_autofree char *longname = g_strnfill(300, 'x');

    assert_new_fails("no_such_event",
                     "Unknown perf event 'no_such_event': libpfm4 says: "
                     "event not found.");
    assert_new_fails("TASK_CLOCK", "Unknown perf event 'TASK_CLOCK': libpfm4 "
                                   "says: event not found.");
    assert_new_fails("perf::TASK-CLOCK:bogus",
                     "Invalid perf event 'perf::TASK-CLOCK:bogus': libpfm4 "
                     "says: invalid event attribute.");
    assert_new_fails("", "A perf event name cannot be empty.");
    assert_new_fails(NULL, "A perf event name cannot be empty.");
    assert_new_fails(longname, "Perf event name "
                               "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is too "
                               "long: the limit is 256 bytes.");
}

/* Hardware events fail at attach, with the PMU sentence, and hold no fd. */
static void
test_hardware_without_pmu(gconstpointer data)
{
    const char *name = data;
    g_autoptr(QphPerfEvent) ev = event_new_ok(name);
    g_autoptr(GError) error = NULL;
    guint fds = test_count_open_fds();
    g_autofree char *prefix = NULL;

    if (qph_perf_event_attach(ev, test_gettid(), &error)) {
        g_test_skip("this host has a hardware PMU");
        return;
    }
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_test_message("%s", error->message);
    prefix = g_strdup_printf("Event '%s' cannot be counted on this host: the "
                             "kernel has no hardware PMU for it "
                             "(perf_event_open: ",
                             name);
    g_assert_true(g_str_has_prefix(error->message, prefix));
    g_assert_true(g_str_has_suffix(error->message, ")."));
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 0);
    g_assert_cmpuint(test_count_open_fds(), ==, fds);
}

/* The exact sentence on this kind of host (ENOENT, as seen here). */
static void
test_hardware_enoent_sentence(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("cpu_cycles");
    g_autoptr(GError) error = NULL;

    if (qph_perf_event_attach(ev, test_gettid(), &error)) {
        g_test_skip("this host has a hardware PMU");
        return;
    }
    if (!strstr(error->message, g_strerror(ENOENT))) {
        g_test_skip("the kernel refused with another errno");
        return;
    }
    g_assert_cmpstr(error->message, ==,
                    "Event 'cpu_cycles' cannot be counted on this host: the "
                    "kernel has no hardware PMU for it (perf_event_open: No "
                    "such file or directory).");
}

/* task_clock grows on a busy thread; per-thread values sum to the total. */
static void
test_task_clock_counts(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    TestThread *busy = test_thread_new("qph-busy");
    QphPerfThreadValue th[2];
    QphPerfEventValue v;
    guint fds = test_count_open_fds();
    guint64 sum;
    guint b;

    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_true(qph_perf_event_attach(ev, test_thread_get_tid(busy), &error));
    g_assert_no_error(error);
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 2);
    g_assert_cmpuint(test_count_open_fds(), ==, fds + 2);

    test_thread_spin(busy, 100);
    g_assert_true(qph_perf_event_read(ev, &v, th, 2, &error));
    g_assert_no_error(error);

    b = th[0].tid == test_thread_get_tid(busy) ? 0 : 1;
    g_assert_cmpint(th[b].tid, ==, test_thread_get_tid(busy));
    g_assert_cmpint(th[1 - b].tid, ==, test_gettid());
    g_test_message("busy thread: %" G_GUINT64_FORMAT
                   " ns, main: %" G_GUINT64_FORMAT " ns",
                   th[b].value, th[1 - b].value);
    g_assert_cmpuint(th[b].value, >=, 90 * NS_PER_MS);
    g_assert_cmpuint(th[b].value, <, 5000 * NS_PER_MS);
    sum = th[0].value + th[1].value;
    g_assert_cmpuint(v.value, ==, sum);
    g_assert_cmpuint(v.exited_value, ==, 0);
    g_assert_cmpuint(v.time_enabled, ==,
                     th[0].time_enabled + th[1].time_enabled);
    g_assert_cmpuint(v.time_running, ==,
                     th[0].time_running + th[1].time_running);
    /* Software events are never multiplexed. */
    g_assert_false(v.scaled);
    g_assert_cmpuint(th[b].raw, ==, th[b].value);

    /* It keeps growing. */
    test_thread_spin(busy, 20);
    {
        QphPerfThreadValue again[2];
        QphPerfEventValue v2;

        g_assert_true(qph_perf_event_read(ev, &v2, again, 2, &error));
        g_assert_cmpuint(again[b].value, >=, th[b].value + 15 * NS_PER_MS);
        g_assert_cmpuint(v2.value, >, v.value);
    }

    test_thread_finish(busy);
}

/* Attaching a thread twice keeps one fd: nothing is counted twice. */
static void
test_attach_twice(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("page_faults");
    g_autoptr(GError) error = NULL;
    guint fds = test_count_open_fds();

    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_no_error(error);
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 1);
    g_assert_true(qph_perf_event_has_thread(ev, test_gettid()));
    g_assert_cmpuint(test_count_open_fds(), ==, fds + 1);
    qph_perf_event_free(g_steal_pointer(&ev));
    g_assert_cmpuint(test_count_open_fds(), ==, fds);
}

/* A thread that exited keeps its fd and its count, marked exited. */
static void
test_exited_thread_kept(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    TestThread *t = test_thread_new("qph-exits");
    pid_t tid = test_thread_get_tid(t);
    QphPerfThreadValue th[1];
    QphPerfEventValue v;
    guint fds;

    g_assert_true(qph_perf_event_attach(ev, tid, &error));
    test_thread_spin(t, 60);
    test_thread_finish(t);
    fds = test_count_open_fds();

    qph_perf_event_mark_exited(ev, tid);
    qph_perf_event_mark_exited(ev, tid); /* twice is once */
    qph_perf_event_mark_exited(ev, 1);   /* not attached: ignored */
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 1);
    g_assert_true(qph_perf_event_thread_exited(ev, 0));
    g_assert_cmpuint(test_count_open_fds(), ==, fds);

    g_assert_true(qph_perf_event_read(ev, &v, th, 1, &error));
    g_assert_no_error(error);
    g_test_message("exited thread kept %" G_GUINT64_FORMAT " ns",
                   v.exited_value);
    g_assert_cmpuint(v.exited_value, >=, 55 * NS_PER_MS);
    g_assert_cmpuint(v.value, ==, v.exited_value);
    g_assert_cmpuint(v.n_exited, ==, 1);
    g_assert_true(th[0].exited);
    g_assert_false(th[0].unscheduled);
    g_assert_false(v.overflow);
}

/*
 * A thread created after the counter was opened on its creator is counted
 * in the creator's fd (perf inherit), while it runs and after it ends:
 * no rescan, no fd of its own.
 */
static void
test_inherit_counts_new_thread(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    QphPerfThreadValue th[1];
    QphPerfEventValue v;
    TestThread *t;
    guint fds;

    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    fds = test_count_open_fds();
    t = test_thread_new("qph-child");
    test_thread_spin(t, 80);
    test_thread_finish(t);
    g_assert_cmpuint(test_count_open_fds(), ==, fds);
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 1);

    g_assert_true(qph_perf_event_read(ev, &v, th, 1, &error));
    g_assert_no_error(error);
    g_test_message("creator's fd after its child spun 80 ms: %" G_GUINT64_FORMAT
                   " ns",
                   th[0].value);
    g_assert_cmpuint(th[0].value, >=, 75 * NS_PER_MS);
    g_assert_cmpuint(v.value, ==, th[0].value);
    g_assert_false(th[0].exited);
}

/* Every software catalog event opens and reads on this host. */
static void
test_software_catalog_counts(void)
{
    static const char *const names[] = {
        "cpu_clock",        "task_clock",       "page_faults",
        "context_switches", "cpu_migrations",   "page_faults_min",
        "page_faults_maj",  "alignment_faults", "emulation_faults",
    };

    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(QphPerfEvent) ev = event_new_ok(names[i]);
        g_autoptr(GError) error = NULL;
        QphPerfEventValue v;

        g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
        g_assert_no_error(error);
        test_spin_cpu_ms(2);
        g_assert_true(qph_perf_event_read(ev, &v, NULL, 0, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(v.time_enabled, >, 0);
        if (g_str_has_suffix(names[i], "_clock")) {
            g_assert_cmpuint(v.value, >=, NS_PER_MS);
        }
    }
}

static void
test_attach_gone_thread(void)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    TestThread *t = test_thread_new("qph-gone");
    pid_t tid = test_thread_get_tid(t);
    g_autofree char *msg = NULL;

    test_thread_finish(t);
    g_assert_false(qph_perf_event_attach(ev, tid, &error));
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    msg = g_strdup_printf("Cannot count event 'task_clock' on thread %d: the "
                          "thread does not exist (it may have exited) "
                          "(perf_event_open: No such process).",
                          (int)tid);
    g_assert_cmpstr(error->message, ==, msg);
    g_clear_error(&error);
    g_assert_false(qph_perf_event_attach(ev, 0, &error));
    g_assert_cmpstr(error->message, ==,
                    "Cannot count event 'task_clock' on thread 0: not a "
                    "valid thread id.");
}

/* --- privileges through the test hooks ------------------------------- */

static struct {
    guint calls;
    guint kernel_calls; /* opens that did not exclude the kernel */
    int fail_errno;     /* 0: real system call */
    gboolean fail_kernel_only;
    gboolean privileged;
} hook;

static gboolean
hook_is_privileged(void)
{
    return hook.privileged;
}

static int
hook_open(struct perf_event_attr *attr, pid_t tid, int cpu, int group_fd,
          unsigned long flags)
{
    hook.calls++;
    if (!attr->exclude_kernel) {
        hook.kernel_calls++;
    }
    if (hook.fail_errno && (!hook.fail_kernel_only || !attr->exclude_kernel)) {
        errno = hook.fail_errno;
        return -1;
    }
    return (int)syscall(SYS_perf_event_open, attr, tid, cpu, group_fd, flags);
}

typedef struct {
    char *dir;
    char *paranoid;
} PrivFixture;

static void
priv_setup(PrivFixture *f, gconstpointer data)
{
    QphPerfTestHooks hooks = {0};

    f->dir = g_dir_make_tmp("qph-perf-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->paranoid = g_build_filename(f->dir, "perf_event_paranoid", NULL);
    memset(&hook, 0, sizeof(hook));
    hooks.paranoid_path = f->paranoid;
    hooks.is_privileged = hook_is_privileged;
    hooks.open = hook_open;
    qph_perf_set_test_hooks(&hooks);
}

static void
priv_teardown(PrivFixture *f, gconstpointer data)
{
    qph_perf_set_test_hooks(NULL);
    g_unlink(f->paranoid);
    g_rmdir(f->dir);
    g_free(f->paranoid);
    g_free(f->dir);
}

static void
set_paranoid(PrivFixture *f, const char *value)
{
    g_assert_true(g_file_set_contents(f->paranoid, value, -1, NULL));
}

static void
test_priv_read_paranoid(PrivFixture *f, gconstpointer data)
{
    g_assert_cmpint(qph_perf_read_paranoid(), ==, G_MININT); /* missing */
    set_paranoid(f, "2\n");
    g_assert_cmpint(qph_perf_read_paranoid(), ==, 2);
    set_paranoid(f, "-1\n");
    g_assert_cmpint(qph_perf_read_paranoid(), ==, -1);
    set_paranoid(f, "two\n");
    g_assert_cmpint(qph_perf_read_paranoid(), ==, G_MININT);
    set_paranoid(f, "");
    g_assert_cmpint(qph_perf_read_paranoid(), ==, G_MININT);
}

static void
test_priv_decision(PrivFixture *f, gconstpointer data)
{
    hook.privileged = TRUE;
    set_paranoid(f, "3\n");
    g_assert_true(qph_perf_kernel_counting_allowed());
    hook.privileged = FALSE;
    g_assert_false(qph_perf_kernel_counting_allowed());
    set_paranoid(f, "2\n");
    g_assert_false(qph_perf_kernel_counting_allowed());
    set_paranoid(f, "1\n");
    g_assert_true(qph_perf_kernel_counting_allowed());
    set_paranoid(f, "-1\n");
    g_assert_true(qph_perf_kernel_counting_allowed());
    /* Unreadable: try kernel counting, the EACCES fallback catches it. */
    g_unlink(f->paranoid);
    g_assert_true(qph_perf_kernel_counting_allowed());
}

/* Unprivileged at paranoid 2: straight to user-only, one open. */
static void
test_priv_unprivileged(PrivFixture *f, gconstpointer data)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    QphPerfEventValue v;

    set_paranoid(f, "2\n");
    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_no_error(error);
    g_assert_cmpuint(hook.calls, ==, 1);
    g_assert_cmpuint(hook.kernel_calls, ==, 0);
    g_assert_true(qph_perf_event_get_user_only(ev));
    g_assert_true(qph_perf_event_get_attr(ev)->exclude_kernel);
    g_assert_true(qph_perf_event_get_attr(ev)->exclude_hv);
    g_assert_false(qph_perf_event_get_attr(ev)->exclude_user);
    test_spin_cpu_ms(5);
    g_assert_true(qph_perf_event_read(ev, &v, NULL, 0, &error));
    g_assert_cmpuint(v.value, >=, 4 * NS_PER_MS);
}

/* Privileged: kernel counting, not user-only. */
static void
test_priv_privileged(PrivFixture *f, gconstpointer data)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;

    hook.privileged = TRUE;
    set_paranoid(f, "2\n");
    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_cmpuint(hook.calls, ==, 1);
    g_assert_cmpuint(hook.kernel_calls, ==, 1);
    g_assert_false(qph_perf_event_get_user_only(ev));
    g_assert_false(qph_perf_event_get_attr(ev)->exclude_kernel);
}

/* The guess said "allowed" but the kernel says EACCES: retry user-only. */
static void
test_priv_eacces_retry(PrivFixture *f, gconstpointer data)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    TestThread *t = test_thread_new("qph-second");

    hook.privileged = TRUE;
    hook.fail_errno = EACCES;
    hook.fail_kernel_only = TRUE;
    set_paranoid(f, "2\n");
    g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_no_error(error);
    g_assert_cmpuint(hook.calls, ==, 2);
    g_assert_cmpuint(hook.kernel_calls, ==, 1);
    g_assert_true(qph_perf_event_get_user_only(ev));

    /* The next thread counts the same way, without a second try. */
    g_assert_true(qph_perf_event_attach(ev, test_thread_get_tid(t), &error));
    g_assert_cmpuint(hook.calls, ==, 3);
    g_assert_cmpuint(hook.kernel_calls, ==, 1);
    test_thread_finish(t);
}

/* Nothing allowed at all: the paranoid sentence, and no state change. */
static void
test_priv_denied(PrivFixture *f, gconstpointer data)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
    g_autoptr(GError) error = NULL;
    g_autofree char *msg = NULL;

    hook.fail_errno = EACCES;
    set_paranoid(f, "3\n");
    g_assert_false(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    msg = g_strdup_printf(
        "Not allowed to count event 'task_clock' on thread %d even in user "
        "space only: kernel.perf_event_paranoid is 3; CAP_PERFMON (Linux "
        "5.8+) or CAP_SYS_ADMIN, a lower kernel.perf_event_paranoid, or "
        "running as the user that owns the thread would allow it "
        "(perf_event_open: Permission denied).",
        (int)test_gettid());
    g_assert_cmpstr(error->message, ==, msg);
    g_assert_false(qph_perf_event_get_user_only(ev));
    g_assert_cmpuint(qph_perf_event_get_n_threads(ev), ==, 0);

    /* Privileged but still refused (EPERM): the kernel-counting sentence. */
    g_clear_error(&error);
    hook.privileged = TRUE;
    hook.fail_errno = EPERM;
    g_unlink(f->paranoid);
    g_assert_false(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_true(strstr(error->message, "kernel.perf_event_paranoid cannot "
                                         "be read;"));
    g_assert_true(strstr(error->message, "even in user space only"));
}

/* An event asked as :k is never silently turned into user-only. */
static void
test_priv_kernel_only_not_downgraded(PrivFixture *f, gconstpointer data)
{
    g_autoptr(QphPerfEvent) ev = event_new_ok("perf::TASK-CLOCK:k");
    g_autoptr(GError) error = NULL;

    hook.fail_errno = EACCES;
    set_paranoid(f, "2\n");
    g_assert_false(qph_perf_event_attach(ev, test_gettid(), &error));
    g_assert_cmpuint(hook.calls, ==, 1);
    g_assert_cmpuint(hook.kernel_calls, ==, 1);
    g_assert_false(qph_perf_event_get_user_only(ev));
    g_assert_true(strstr(error->message, "Not allowed to count event "
                                         "'perf::TASK-CLOCK:k' on thread"));
}

/* --- privileges for real: a subprocess that becomes user nobody ---- */

static void
test_priv_real_nobody(void)
{
    const uid_t nobody = 65534;
    const gid_t nogroup = 65534;

    if (!g_test_subprocess()) {
        if (getuid() != 0) {
            g_test_skip("needs root to become user nobody");
            return;
        }
        if (qph_perf_read_paranoid() != 2) {
            g_test_skip("needs kernel.perf_event_paranoid 2");
            return;
        }
        g_test_trap_subprocess(NULL, 20 * G_USEC_PER_SEC,
                               G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        /* The child really ran to its last check. */
        g_test_trap_assert_stdout("*Not allowed to count event "
                                  "'task_clock' on thread 1: *");
        return;
    }

    g_assert_cmpint(setgroups(0, NULL), ==, 0);
    g_assert_cmpint(setresgid(nogroup, nogroup, nogroup), ==, 0);
    g_assert_cmpint(setresuid(nobody, nobody, nobody), ==, 0);
    g_assert_cmpint(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), ==, 0);
    g_assert_cmpint(geteuid(), ==, nobody);
    g_assert_false(qph_perf_kernel_counting_allowed());

    /* 1. The real decision: straight to user-only, and it counts. */
    {
        g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
        g_autoptr(GError) error = NULL;
        QphPerfEventValue v;

        g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
        g_assert_no_error(error);
        g_assert_true(qph_perf_event_get_user_only(ev));
        test_spin_cpu_ms(20);
        g_assert_true(qph_perf_event_read(ev, &v, NULL, 0, &error));
        g_assert_cmpuint(v.value, >=, 15 * NS_PER_MS);
    }

    /* 2. A wrong "privileged" guess: the kernel's EACCES, then the retry. */
    {
        QphPerfTestHooks hooks = {.is_privileged = hook_is_privileged,
                                  .open = hook_open};
        g_autoptr(QphPerfEvent) ev = event_new_ok("page_faults");
        g_autoptr(GError) error = NULL;

        memset(&hook, 0, sizeof(hook));
        hook.privileged = TRUE;
        qph_perf_set_test_hooks(&hooks);
        g_assert_true(qph_perf_event_attach(ev, test_gettid(), &error));
        g_assert_no_error(error);
        g_assert_cmpuint(hook.calls, ==, 2);
        g_assert_cmpuint(hook.kernel_calls, ==, 1);
        g_assert_true(qph_perf_event_get_user_only(ev));
        qph_perf_set_test_hooks(NULL);
    }

    /* 3. Another user's process (pid 1, root): no paranoid level would
     *    allow it (the ptrace access check), so the owner sentence. */
    {
        g_autoptr(QphPerfEvent) ev = event_new_ok("task_clock");
        g_autoptr(GError) error = NULL;

        g_assert_false(qph_perf_event_attach(ev, 1, &error));
        g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
        g_assert_true(g_str_has_prefix(error->message,
                                       "Not allowed to count event "
                                       "'task_clock' on thread 1: the "
                                       "thread belongs to uid 0 and the "
                                       "helper runs as uid 65534, which no "
                                       "kernel.perf_event_paranoid (it is "
                                       "2) allows;"));
        g_assert_null(strstr(error->message, "a lower"));
        /* For the parent, which checks the child got this far. */
        g_print("%s\n", error->message);
    }
}

int
main(int argc, char **argv)
{
    static const char *const hardware[] = {
        "cpu_cycles",
        "instructions",
        "cache_references",
        "cache_misses",
        "branch_instructions",
        "branch_misses",
        "bus_cycles",
        "stalled_cycles_frontend",
        "stalled_cycles_backend",
        "ref_cpu_cycles",
        "perf::L1-DCACHE-LOADS",
        "perf_raw::r0076",
    };

    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/perf/event/pfm/generic-names", test_pfm_generic_names);
    g_test_add_func("/perf/event/pfm/host-pmu-name", test_pfm_host_pmu_name);
    g_test_add_func("/perf/event/pfm/intel-name", test_pfm_intel_name);
    g_test_add_func("/perf/event/unknown-names", test_unknown_names);
    for (guint i = 0; i < G_N_ELEMENTS(hardware); i++) {
        g_autofree char *path =
            g_strdup_printf("/perf/event/no-pmu/%s", hardware[i]);

        g_test_add_data_func(path, hardware[i], test_hardware_without_pmu);
    }
    g_test_add_func("/perf/event/no-pmu-sentence",
                    test_hardware_enoent_sentence);
    g_test_add_func("/perf/event/task-clock-counts", test_task_clock_counts);
    g_test_add_func("/perf/event/attach-twice", test_attach_twice);
    g_test_add_func("/perf/event/exited-thread-kept", test_exited_thread_kept);
    g_test_add_func("/perf/event/inherit-counts-new-thread",
                    test_inherit_counts_new_thread);
    g_test_add_func("/perf/event/software-catalog-counts",
                    test_software_catalog_counts);
    g_test_add_func("/perf/event/attach-gone-thread", test_attach_gone_thread);

    g_test_add("/perf/priv/read-paranoid", PrivFixture, NULL, priv_setup,
               test_priv_read_paranoid, priv_teardown);
    g_test_add("/perf/priv/decision", PrivFixture, NULL, priv_setup,
               test_priv_decision, priv_teardown);
    g_test_add("/perf/priv/unprivileged", PrivFixture, NULL, priv_setup,
               test_priv_unprivileged, priv_teardown);
    g_test_add("/perf/priv/privileged", PrivFixture, NULL, priv_setup,
               test_priv_privileged, priv_teardown);
    g_test_add("/perf/priv/eacces-retry", PrivFixture, NULL, priv_setup,
               test_priv_eacces_retry, priv_teardown);
    g_test_add("/perf/priv/denied", PrivFixture, NULL, priv_setup,
               test_priv_denied, priv_teardown);
    g_test_add("/perf/priv/kernel-only-not-downgraded", PrivFixture, NULL,
               priv_setup, test_priv_kernel_only_not_downgraded, priv_teardown);
    g_test_add_func("/perf/priv/real-nobody", test_priv_real_nobody);
    return g_test_run();
}
