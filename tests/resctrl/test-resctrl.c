/*
 * test-resctrl.c: the resctrl backend against the FUSE double of resctrl
 *
 * Each test mounts a fresh qph-resctrl-sim on a temporary directory, starts
 * a few threads of this process to play "the VM", and drives the simulator
 * over its control socket (values, faults).  The first tests check that the
 * simulator itself follows the kernel's rules, because the backend's tests
 * are only worth what the double is.  The simulator is started with
 * --exit-with-parent, so it unmounts itself even if a test aborts.
 *
 * Every case that mounts the simulator runs twice: as a kernel without
 * counter assignment, and under /resctrl/mbm-event/ as a Linux 6.18+ kernel
 * in "mbm_event" mode (AMD ABMC).  The cases after them need a particular
 * kernel: counter assignment, Sub-NUMA Clustering, package telemetry.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define QPH_RESCTRL_ALLOW_PRIV
#include "helper/resctrl-priv.h"
#include "qmp/qmp-error.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_VM_THREADS 3
#define N_DOMAINS 3
#define NO_SUCH_TID 2147483000 /* above any pid_max (at most 2^22) */

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean stop;
    guint started;
    pid_t tids[N_VM_THREADS + 1]; /* [0] is the main thread */
    GThread *threads[N_VM_THREADS];
} Vm;

typedef struct {
    char *dir;
    char *mnt;
    char *sock;
    GPid sim;
    FILE *ctl;
    Vm vm;
    pid_t pid;
} Fixture;

/* ---- the VM's threads ----------------------------------------------- */

static gpointer
vm_thread(gpointer data)
{
    Vm *vm = data;

    g_mutex_lock(&vm->lock);
    vm->tids[++vm->started] = gettid();
    g_cond_broadcast(&vm->cond);
    while (!vm->stop) {
        g_cond_wait(&vm->cond, &vm->lock);
    }
    g_mutex_unlock(&vm->lock);
    return NULL;
}

/* ---- the simulator -------------------------------------------------- */

static gboolean
is_mounted(const char *mnt)
{
    g_autofree char *parent = g_path_get_dirname(mnt);
    struct stat a, b;

    return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static char *
sim_cmd(Fixture *fx, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static char *
sim_cmd(Fixture *fx, const char *fmt, ...)
{
    g_autofree char *line = NULL;
    char reply[512] = "";
    va_list ap;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(fx->ctl, "%s\n", line);
    fflush(fx->ctl);
    g_assert_nonnull(fgets(reply, sizeof(reply), fx->ctl));
    return g_strdup(g_strstrip(reply));
}

#define SIM_OK(fx, ...)                                                        \
    do {                                                                       \
        g_autofree char *reply_ = sim_cmd(fx, __VA_ARGS__);                    \
        g_assert_cmpstr(reply_, ==, "ok");                                     \
    } while (0)

static FILE *
sim_connect(const char *sock)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(addr.sun_path, sock, sizeof(addr.sun_path));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return NULL;
    }
    return fdopen(fd, "r+");
}

/* Extra simulator arguments of a case, NULL-terminated; NULL for none. */
typedef const char *const SimArgs[8];

static const SimArgs sim_mbm_event = {"--mbm-assign-mode", "mbm_event", NULL};

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
    const char *const *extra = data;
    g_autofree char *fusermount = g_find_program_in_path("fusermount3");
    g_autofree char *tasks = NULL;
    gint64 deadline;
    guint i;

    memset(fx, 0, sizeof(*fx));
    if (access("/dev/fuse", R_OK | W_OK) != 0 || !fusermount) {
        g_test_skip("resctrl-sim needs /dev/fuse (read-write) and "
                    "fusermount3; neither FUSE device nor tool is usable "
                    "here.");
        return;
    }
    fx->dir = g_dir_make_tmp("qph-resctrl-XXXXXX", NULL);
    g_assert_nonnull(fx->dir);
    fx->mnt = g_build_filename(fx->dir, "resctrl", NULL);
    fx->sock = g_build_filename(fx->dir, "control.sock", NULL);
    g_assert_cmpint(g_mkdir(fx->mnt, 0755), ==, 0);

    {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GError) error = NULL;
        const char *base[] = {QPH_RESCTRL_SIM, fx->mnt, "--control", fx->sock,
                              "--domains", G_STRINGIFY(N_DOMAINS),
                              "--exit-with-parent"};

        for (i = 0; i < G_N_ELEMENTS(base); i++) {
            g_ptr_array_add(argv, (gpointer)base[i]);
        }
        for (i = 0; extra && extra[i]; i++) {
            g_ptr_array_add(argv, (gpointer)extra[i]);
        }
        g_ptr_array_add(argv, NULL);
        g_assert_true(g_spawn_async(NULL, (char **)argv->pdata, NULL,
                                    G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                    &fx->sim, &error));
        g_assert_no_error(error);
    }
    tasks = g_build_filename(fx->mnt, "tasks", NULL);
    deadline = g_get_monotonic_time() + 10 * G_TIME_SPAN_SECOND;
    while (!fx->ctl || !g_file_test(tasks, G_FILE_TEST_EXISTS)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (!fx->ctl) {
            fx->ctl = sim_connect(fx->sock);
        }
        g_usleep(10 * 1000);
    }
    SIM_OK(fx, "ping");

    fx->pid = getpid();
    g_mutex_init(&fx->vm.lock);
    g_cond_init(&fx->vm.cond);
    fx->vm.tids[0] = gettid();
    for (i = 0; i < N_VM_THREADS; i++) {
        fx->vm.threads[i] = g_thread_new("vm", vm_thread, &fx->vm);
    }
    g_mutex_lock(&fx->vm.lock);
    while (fx->vm.started < N_VM_THREADS) {
        g_cond_wait(&fx->vm.cond, &fx->vm.lock);
    }
    g_mutex_unlock(&fx->vm.lock);
}

static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
    gint64 deadline;
    guint i;

    if (!fx->dir) {
        return;
    }
    g_mutex_lock(&fx->vm.lock);
    fx->vm.stop = TRUE;
    g_cond_broadcast(&fx->vm.cond);
    g_mutex_unlock(&fx->vm.lock);
    for (i = 0; i < N_VM_THREADS; i++) {
        g_thread_join(fx->vm.threads[i]);
    }
    g_mutex_clear(&fx->vm.lock);
    g_cond_clear(&fx->vm.cond);

    if (fx->ctl) {
        fclose(fx->ctl);
    }
    kill(fx->sim, SIGTERM);
    deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
    while (waitpid(fx->sim, NULL, WNOHANG) == 0 &&
           g_get_monotonic_time() < deadline) {
        g_usleep(10 * 1000);
    }
    if (is_mounted(fx->mnt)) {
        const char *argv[] = {"fusermount3", "-u", "-z", fx->mnt, NULL};

        g_spawn_sync(NULL, (char **)argv, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                     NULL, NULL, NULL, NULL, NULL);
    }
    g_assert_false(is_mounted(fx->mnt));
    g_rmdir(fx->mnt);
    g_unlink(fx->sock);
    g_rmdir(fx->dir);
    g_free(fx->mnt);
    g_free(fx->sock);
    g_free(fx->dir);
}

/* ---- helpers -------------------------------------------------------- */

static char *
path_in(Fixture *fx, const char *rel)
{
    return g_build_filename(fx->mnt, rel, NULL);
}

static gboolean
exists_in(Fixture *fx, const char *rel)
{
    g_autofree char *path = path_in(fx, rel);

    return g_file_test(path, G_FILE_TEST_EXISTS);
}

static char *
read_in(Fixture *fx, const char *rel)
{
    g_autofree char *path = path_in(fx, rel);
    g_autoptr(GError) error = NULL;
    char *text = NULL;

    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    g_assert_no_error(error);
    return text;
}

/* Write @text in one write(2); returns 0 or the errno. */
static int
write_in(Fixture *fx, const char *rel, const char *text)
{
    g_autofree char *path = path_in(fx, rel);
    int fd = open(path, O_WRONLY);
    int err = 0;

    if (fd < 0) {
        return errno;
    }
    if (write(fd, text, strlen(text)) < 0) {
        err = errno;
    }
    close(fd);
    return err;
}

static gboolean
group_has_task(Fixture *fx, const char *group, pid_t tid)
{
    g_autofree char *rel = g_build_filename(group, "tasks", NULL);
    g_autofree char *text = read_in(fx, rel);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    guint i;

    for (i = 0; lines[i]; i++) {
        if (atoi(lines[i]) == tid) {
            return TRUE;
        }
    }
    return FALSE;
}

static guint
count_entries(Fixture *fx, const char *rel)
{
    g_autofree char *path = path_in(fx, rel);
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    guint n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    return n;
}

static char *
our_group(Fixture *fx)
{
    return g_strdup_printf("mon_groups/" QPH_RESCTRL_GROUP_PREFIX "%d",
                           (int)fx->pid);
}

static QphResctrlMon *
open_vm(Fixture *fx, GError **error)
{
    return qph_resctrl_mon_open(fx->mnt, fx->pid, fx->vm.tids,
                                G_N_ELEMENTS(fx->vm.tids), error);
}

static void
move_vm_to(Fixture *fx, const char *group)
{
    g_autofree char *rel = g_build_filename(group, "tasks", NULL);
    guint i;

    for (i = 0; i < G_N_ELEMENTS(fx->vm.tids); i++) {
        g_autofree char *tid = g_strdup_printf("%d", (int)fx->vm.tids[i]);

        g_assert_cmpint(write_in(fx, rel, tid), ==, 0);
    }
}

static void
assert_vm_in(Fixture *fx, const char *group)
{
    guint i;

    for (i = 0; i < G_N_ELEMENTS(fx->vm.tids); i++) {
        g_assert_true(group_has_task(fx, group, fx->vm.tids[i]));
    }
}

static void
assert_error_mentions(const GError *error, const char *a, const char *b)
{
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_test_message("error: %s", error->message);
    g_assert_nonnull(strstr(error->message, a));
    if (b) {
        g_assert_nonnull(strstr(error->message, b));
    }
}

/* ---- the simulator behaves like the kernel -------------------------- */

static void
test_sim_one_tid_per_write(Fixture *fx, gconstpointer data)
{
    g_autofree char *two = NULL;
    g_autofree char *one = NULL;
    g_autofree char *status = NULL;

    if (!fx->dir) {
        return;
    }
    g_assert_cmpint(g_mkdir(fx->mnt, 0755), ==, -1); /* exists: mounted */
    g_assert_true(is_mounted(fx->mnt));
    {
        g_autofree char *p = path_in(fx, "mon_groups/t");
        g_assert_cmpint(g_mkdir(p, 0755), ==, 0);
    }
    two = g_strdup_printf("%d %d", (int)fx->vm.tids[1], (int)fx->vm.tids[2]);
    g_assert_cmpint(write_in(fx, "mon_groups/t/tasks", two), ==, EINVAL);
    g_assert_false(group_has_task(fx, "mon_groups/t", fx->vm.tids[1]));
    g_assert_false(group_has_task(fx, "mon_groups/t", fx->vm.tids[2]));

    one = g_strdup_printf("%d\n", (int)fx->vm.tids[1]);
    g_assert_cmpint(write_in(fx, "mon_groups/t/tasks", one), ==, 0);
    g_assert_true(group_has_task(fx, "mon_groups/t", fx->vm.tids[1]));
    status = read_in(fx, "info/last_cmd_status");
    g_assert_cmpstr(status, ==, "ok\n");
}

static void
test_sim_unknown_tid(Fixture *fx, gconstpointer data)
{
    g_autofree char *status = NULL;
    g_autofree char *tid = g_strdup_printf("%d", NO_SUCH_TID);

    if (!fx->dir) {
        return;
    }
    g_assert_cmpint(write_in(fx, "tasks", tid), ==, ESRCH);
    status = read_in(fx, "info/last_cmd_status");
    g_assert_cmpstr(status, ==, "No task " G_STRINGIFY(NO_SUCH_TID) "\n");
}

static void
test_sim_one_group_per_task(Fixture *fx, gconstpointer data)
{
    g_autofree char *tid = NULL;

    if (!fx->dir) {
        return;
    }
    tid = g_strdup_printf("%d", (int)fx->vm.tids[1]);
    for (const char *const *g = (const char *const[]){"mon_groups/a",
                                                      "mon_groups/b", NULL};
         *g; g++) {
        g_autofree char *p = path_in(fx, *g);
        g_assert_cmpint(g_mkdir(p, 0755), ==, 0);
    }
    g_assert_cmpint(write_in(fx, "mon_groups/a/tasks", tid), ==, 0);
    g_assert_cmpint(write_in(fx, "mon_groups/b/tasks", tid), ==, 0);
    g_assert_false(group_has_task(fx, "mon_groups/a", fx->vm.tids[1]));
    g_assert_true(group_has_task(fx, "mon_groups/b", fx->vm.tids[1]));
    /* The root (a CTRL_MON group) lists its MON groups' tasks too. */
    g_assert_true(group_has_task(fx, ".", fx->vm.tids[1]));

    /* rmdir sends the tasks back to the parent. */
    {
        g_autofree char *p = path_in(fx, "mon_groups/b");
        g_assert_cmpint(g_rmdir(p), ==, 0);
    }
    g_assert_false(exists_in(fx, "mon_groups/b"));
    g_assert_true(group_has_task(fx, ".", fx->vm.tids[1]));
    g_assert_false(group_has_task(fx, "mon_groups/a", fx->vm.tids[1]));
}

static void
test_sim_rmids_run_out(Fixture *fx, gconstpointer data)
{
    g_autofree char *status = NULL;
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;

    if (!fx->dir) {
        return;
    }
    SIM_OK(fx, "rmids 2"); /* the root's and one more */
    a = path_in(fx, "mon_groups/a");
    b = path_in(fx, "mon_groups/b");
    g_assert_cmpint(g_mkdir(a, 0755), ==, 0);
    g_assert_cmpint(g_mkdir(b, 0755), ==, -1);
    g_assert_cmpint(errno, ==, ENOSPC);
    status = read_in(fx, "info/last_cmd_status");
    g_assert_cmpstr(status, ==, "Out of RMIDs\n");
    g_assert_cmpint(g_rmdir(a), ==, 0);
    g_assert_cmpint(g_mkdir(b, 0755), ==, 0);
}

static void
test_sim_states_read_as_text(Fixture *fx, gconstpointer data)
{
    g_autofree char *v0 = NULL;
    g_autofree char *v1 = NULL;

    if (!fx->dir) {
        return;
    }
    SIM_OK(fx, "set / 0 llc_occupancy 4096");
    SIM_OK(fx, "set / 1 llc_occupancy Unavailable");
    v0 = read_in(fx, "mon_data/mon_L3_00/llc_occupancy");
    v1 = read_in(fx, "mon_data/mon_L3_01/llc_occupancy");
    g_assert_cmpstr(v0, ==, "4096\n");
    g_assert_cmpstr(v1, ==, "Unavailable\n");
}

/* ---- the backend ---------------------------------------------------- */

static void
test_open_creates_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    g_autofree char *expect = NULL;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_nonnull(mon);
    g_assert_true(qph_resctrl_mon_is_owned(mon));
    expect = path_in(fx, ours);
    g_assert_cmpstr(qph_resctrl_mon_get_path(mon), ==, expect);
    assert_vm_in(fx, ours);
}

static void
test_open_reuses_own_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    g_autofree char *path = NULL;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    path = path_in(fx, ours);
    g_assert_cmpint(g_mkdir(path, 0755), ==, 0); /* a helper that crashed */
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_true(qph_resctrl_mon_is_owned(mon));
    g_assert_cmpstr(qph_resctrl_mon_get_path(mon), ==, path);
    assert_vm_in(fx, ours);
    g_assert_cmpuint(count_entries(fx, "mon_groups"), ==, 1);
}

static gpointer
idle_thread(gpointer data)
{
    Vm *vm = data;
    pid_t tid = gettid();

    g_mutex_lock(&vm->lock);
    vm->tids[0] = tid; /* borrowed slot, restored by the test */
    g_cond_broadcast(&vm->cond);
    while (!vm->stop) {
        g_cond_wait(&vm->cond, &vm->lock);
    }
    g_mutex_unlock(&vm->lock);
    return NULL;
}

static void
test_add_thread_later(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    Vm late = {0};
    GThread *thread;
    pid_t tid;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);

    g_mutex_init(&late.lock);
    g_cond_init(&late.cond);
    thread = g_thread_new("vm-late", idle_thread, &late);
    g_mutex_lock(&late.lock);
    while (!late.tids[0]) {
        g_cond_wait(&late.cond, &late.lock);
    }
    tid = late.tids[0];
    g_mutex_unlock(&late.lock);

    /* The simulator puts unknown threads in the root. */
    g_assert_false(group_has_task(fx, ours, tid));
    g_assert_true(qph_resctrl_mon_add_threads(mon, &tid, 1, &error));
    g_assert_no_error(error);
    g_assert_true(group_has_task(fx, ours, tid));
    assert_vm_in(fx, ours);

    g_mutex_lock(&late.lock);
    late.stop = TRUE;
    g_cond_broadcast(&late.cond);
    g_mutex_unlock(&late.lock);
    g_thread_join(thread);
    g_mutex_clear(&late.lock);
    g_cond_clear(&late.cond);

    /* A thread that exited meanwhile is no error. */
    g_assert_true(qph_resctrl_mon_add_threads(mon, &tid, 1, &error));
    g_assert_no_error(error);
}

static const QphResctrlDomainValue *
domain_at(const QphResctrlReading *r, guint i)
{
    g_assert_cmpuint(i, <, r->domains->len);
    return &g_array_index(r->domains, QphResctrlDomainValue, i);
}

static void
test_read_sums_domains(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_auto(QphResctrlReading) cmt = {0};
    g_auto(QphResctrlReading) mbmt = {0};
    g_auto(QphResctrlReading) mbml = {0};
    g_autofree char *ours = NULL;
    guint i;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    SIM_OK(fx, "set %s 0 llc_occupancy 1000", ours);
    SIM_OK(fx, "set %s 1 llc_occupancy 200", ours);
    SIM_OK(fx, "set %s 2 llc_occupancy 34", ours);
    SIM_OK(fx, "set %s * mbm_total_bytes 18446744073709551615", ours);
    SIM_OK(fx, "set %s * mbm_local_bytes 7", ours);
    SIM_OK(fx, "set / * * 999999"); /* the root's own RMID: not ours */

    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_CMT, &cmt,
                                       &error));
    g_assert_no_error(error);
    g_assert_cmpuint(cmt.total, ==, 1234);
    g_assert_cmpuint(cmt.n_ok, ==, N_DOMAINS);
    g_assert_cmpuint(cmt.domains->len, ==, N_DOMAINS);
    for (i = 0; i < N_DOMAINS; i++) {
        g_assert_cmpuint(domain_at(&cmt, i)->domain, ==, i);
        g_assert_cmpint(domain_at(&cmt, i)->status, ==, QPH_RESCTRL_VALUE_OK);
    }
    g_assert_cmpuint(domain_at(&cmt, 1)->value, ==, 200);

    /* Three times 2^64-1 saturates instead of wrapping. */
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBMT, &mbmt,
                                       &error));
    g_assert_cmpuint(mbmt.total, ==, G_MAXUINT64);
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBML, &mbml,
                                       &error));
    g_assert_no_error(error);
    g_assert_cmpuint(mbml.total, ==, 7 * N_DOMAINS);
}

static void
test_read_bad_domains(Fixture *fx, gconstpointer data)
{
    static const struct {
        const char *sim[N_DOMAINS];
        QphResctrlValueStatus status[N_DOMAINS];
        guint64 total;
        guint n_ok;
    } cases[] = {
        /* What the kernel does: the read succeeds with a word. */
        {{"5", "Unavailable", "Error"},
         {QPH_RESCTRL_VALUE_OK, QPH_RESCTRL_VALUE_UNAVAILABLE,
          QPH_RESCTRL_VALUE_ERROR},
         5, 1},
        {{"Unassigned", "6", "7"},
         {QPH_RESCTRL_VALUE_UNASSIGNED, QPH_RESCTRL_VALUE_OK,
          QPH_RESCTRL_VALUE_OK},
         13, 2},
        /* The same states seen as a failing read(2). */
        {{"errno:EINVAL", "errno:EIO", "errno:ENOENT"},
         {QPH_RESCTRL_VALUE_UNAVAILABLE, QPH_RESCTRL_VALUE_ERROR,
          QPH_RESCTRL_VALUE_UNASSIGNED},
         0, 0},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    guint c, d;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    for (c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_auto(QphResctrlReading) r = {0};

        for (d = 0; d < N_DOMAINS; d++) {
            SIM_OK(fx, "set %s %u llc_occupancy %s", ours, d, cases[c].sim[d]);
        }
        g_assert_true(
            qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_CMT, &r, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(r.total, ==, cases[c].total);
        g_assert_cmpuint(r.n_ok, ==, cases[c].n_ok);
        for (d = 0; d < N_DOMAINS; d++) {
            g_assert_cmpint(domain_at(&r, d)->status, ==, cases[c].status[d]);
        }
    }
}

static void
assert_nothing_left(Fixture *fx)
{
    g_assert_cmpuint(count_entries(fx, "mon_groups"), ==, 0);
}

static void
test_out_of_rmids(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) busy = NULL;
    g_autoptr(GError) nospc = NULL;
    QphResctrlMon *mon;

    if (!fx->dir) {
        return;
    }
    /* RMIDs in limbo: the kernel says EBUSY. */
    SIM_OK(fx, "fail-next-mkdir EBUSY");
    mon = open_vm(fx, &busy);
    g_assert_null(mon);
    assert_error_mentions(busy, "Out of RMIDs", "RMIDs");
    assert_nothing_left(fx);

    /* All RMIDs in use: ENOSPC. */
    SIM_OK(fx, "rmids 1");
    mon = open_vm(fx, &nospc);
    g_assert_null(mon);
    assert_error_mentions(nospc, "Out of RMIDs", "No space left");
    assert_nothing_left(fx);
}

static void
test_missing_feature(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) probe = NULL;
    g_autoptr(GError) read = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_auto(QphResctrlReading) r = {0};
    g_auto(QphResctrlReading) ok = {0};

    if (!fx->dir) {
        return;
    }
    SIM_OK(fx, "mon-features llc_occupancy");
    g_assert_true(qph_resctrl_probe(fx->mnt, QPH_RESCTRL_FEATURE_CMT, &error));
    g_assert_no_error(error);
    g_assert_false(
        qph_resctrl_probe(fx->mnt, QPH_RESCTRL_FEATURE_MBMT, &probe));
    assert_error_mentions(probe, "'mbmt'", "mon_features");

    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_false(
        qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBML, &r, &read));
    assert_error_mentions(read, "mbm_local_bytes", "mon_features");
    g_assert_null(r.domains);
    g_assert_true(
        qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_CMT, &ok, &error));
    g_assert_no_error(error);
}

static void
test_no_l3_mon(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) open = NULL;
    g_autoptr(GError) probe = NULL;

    if (!fx->dir) {
        return;
    }
    SIM_OK(fx, "l3-mon off");
    g_assert_null(open_vm(fx, &open));
    assert_error_mentions(open, "no monitoring support", "info/L3_MON");
    g_assert_false(qph_resctrl_probe(fx->mnt, QPH_RESCTRL_FEATURE_CMT, &probe));
    assert_error_mentions(probe, "no monitoring support", NULL);
}

static void
test_not_mounted(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) open = NULL;
    g_autoptr(GError) probe = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *empty = NULL;

    if (!fx->dir) {
        return;
    }
    empty = g_dir_make_tmp("qph-resctrl-empty-XXXXXX", NULL);
    g_assert_null(qph_resctrl_mon_open(empty, fx->pid, fx->vm.tids,
                                       G_N_ELEMENTS(fx->vm.tids), &open));
    assert_error_mentions(open, "No resctrl filesystem is mounted",
                          "mount -t resctrl resctrl /sys/fs/resctrl");
    g_assert_false(qph_resctrl_probe(empty, QPH_RESCTRL_FEATURE_MBML, &probe));
    assert_error_mentions(probe, "No resctrl filesystem is mounted", empty);
    /* Nothing to clean on a host without resctrl. */
    g_assert_true(qph_resctrl_cleanup_stale(empty, &error));
    g_assert_no_error(error);
    g_rmdir(empty);
}

static void
test_foreign_mon_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_auto(QphResctrlReading) r = {0};
    g_autofree char *path = NULL;
    QphResctrlMon *mon;
    pid_t late = fx->vm.tids[1];

    if (!fx->dir) {
        return;
    }
    /* libvirt's <cachetune><monitor>: a group that holds this VM. */
    path = path_in(fx, "vm1/mon_groups/vcpus_0-3");
    {
        g_autofree char *ctrl = path_in(fx, "vm1");
        g_assert_cmpint(g_mkdir(ctrl, 0755), ==, 0);
        g_assert_cmpint(g_mkdir(path, 0755), ==, 0);
    }
    /* As in the kernel: into the CTRL_MON group first, then its MON group. */
    move_vm_to(fx, "vm1");
    move_vm_to(fx, "vm1/mon_groups/vcpus_0-3");
    SIM_OK(fx, "set vm1/mon_groups/vcpus_0-3 * llc_occupancy 10");

    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_false(qph_resctrl_mon_is_owned(mon));
    g_assert_cmpstr(qph_resctrl_mon_get_path(mon), ==, path);
    g_assert_true(
        qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_CMT, &r, &error));
    g_assert_cmpuint(r.total, ==, 10 * N_DOMAINS);
    /* Not ours: adding threads changes nothing. */
    g_assert_true(qph_resctrl_mon_add_threads(mon, &late, 1, &error));
    g_assert_cmpuint(count_entries(fx, "vm1/mon_groups"), ==, 1);
    g_assert_cmpuint(count_entries(fx, "mon_groups"), ==, 0);

    qph_resctrl_mon_close(mon);
    g_assert_true(g_file_test(path, G_FILE_TEST_IS_DIR));
    assert_vm_in(fx, "vm1/mon_groups/vcpus_0-3");
}

static void
test_foreign_ctrl_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ctrl = NULL;

    if (!fx->dir) {
        return;
    }
    ctrl = path_in(fx, "vm2");
    g_assert_cmpint(g_mkdir(ctrl, 0755), ==, 0);
    move_vm_to(fx, "vm2");
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_false(qph_resctrl_mon_is_owned(mon));
    g_assert_cmpstr(qph_resctrl_mon_get_path(mon), ==, ctrl);
}

static void
test_shared_ctrl_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ctrl = NULL;
    g_autofree char *expect = NULL;
    g_autofree char *ours = NULL;
    g_autofree char *other = g_strdup_printf("%d", (int)getppid());

    if (!fx->dir) {
        return;
    }
    ctrl = path_in(fx, "shared");
    /* A CTRL_MON group holding the VM and another process: the helper's
     * group goes under it, so the VM keeps its cache allocation. */
    g_assert_cmpint(g_mkdir(ctrl, 0755), ==, 0);
    move_vm_to(fx, "shared");
    g_assert_cmpint(write_in(fx, "shared/tasks", other), ==, 0);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_true(qph_resctrl_mon_is_owned(mon));
    ours = g_strdup_printf("shared/mon_groups/" QPH_RESCTRL_GROUP_PREFIX "%d",
                           (int)fx->pid);
    expect = path_in(fx, ours);
    g_assert_cmpstr(qph_resctrl_mon_get_path(mon), ==, expect);
    assert_vm_in(fx, ours);
    assert_vm_in(fx, "shared");
    g_assert_false(group_has_task(fx, ours, getppid()));
}

static void
test_foreign_partial_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *p = NULL;
    g_autofree char *tid = NULL;

    if (!fx->dir) {
        return;
    }
    p = path_in(fx, "mon_groups/vcpu0");
    tid = g_strdup_printf("%d", (int)fx->vm.tids[1]);
    g_assert_cmpint(g_mkdir(p, 0755), ==, 0);
    g_assert_cmpint(write_in(fx, "mon_groups/vcpu0/tasks", tid), ==, 0);
    g_assert_null(open_vm(fx, &error));
    assert_error_mentions(error, "mon_groups/vcpu0", "another tool's group");
    g_assert_cmpuint(count_entries(fx, "mon_groups"), ==, 1);
    g_assert_true(group_has_task(fx, "mon_groups/vcpu0", fx->vm.tids[1]));
}

static pid_t
dead_pid(void)
{
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    return pid;
}

static void
test_stale_groups(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *dead1 = NULL;
    g_autofree char *dead2 = NULL;
    g_autofree char *alive = NULL;

    if (!fx->dir) {
        return;
    }
    dead1 = g_strdup_printf("%s/mon_groups/" QPH_RESCTRL_GROUP_PREFIX "%d",
                            fx->mnt, (int)dead_pid());
    dead2 = g_strdup_printf("%s/mon_groups/" QPH_RESCTRL_GROUP_PREFIX "%d",
                            fx->mnt, (int)dead_pid());
    alive = g_strdup_printf("%s/mon_groups/" QPH_RESCTRL_GROUP_PREFIX "%d",
                            fx->mnt, (int)getppid());
    g_assert_cmpint(g_mkdir(dead1, 0755), ==, 0);
    g_assert_cmpint(g_mkdir(alive, 0755), ==, 0);
    g_assert_true(qph_resctrl_cleanup_stale(fx->mnt, &error));
    g_assert_no_error(error);
    g_assert_false(g_file_test(dead1, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(alive, G_FILE_TEST_IS_DIR));

    /* Opening cleans up too. */
    g_assert_cmpint(g_mkdir(dead2, 0755), ==, 0);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_false(g_file_test(dead2, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(alive, G_FILE_TEST_IS_DIR));
}

static void
test_close_removes_group(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *ours = NULL;
    QphResctrlMon *mon;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    assert_vm_in(fx, ours);
    qph_resctrl_mon_close(mon);
    g_assert_false(exists_in(fx, ours));
    assert_nothing_left(fx);
    assert_vm_in(fx, ".");
}

static void
test_busy_flock_is_again(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    QphResctrlMon *mon;
    int fd;

    if (!fx->dir) {
        return;
    }
    /* libvirt holds the lock: the backend does not wait for it (the main
     * loop must not sleep); it changes nothing and says "try again", and
     * set-perf-events retries from a timer (helper/dispatch.c). */
    fd = open(fx->mnt, O_RDONLY | O_DIRECTORY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(flock(fd, LOCK_EX), ==, 0);
    g_assert_null(open_vm(fx, &error));
    g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN);
    g_assert_nonnull(strstr(error->message, "another resctrl user"));
    g_assert_cmpuint(count_entries(fx, "mon_groups"), ==, 0);
    flock(fd, LOCK_UN);
    close(fd);
    mon = open_vm(fx, NULL);
    g_assert_nonnull(mon);
    qph_resctrl_mon_close(mon);
}

static void
test_unprivileged(Fixture *fx, gconstpointer data)
{
    struct passwd *nobody = getpwnam("nobody");
    g_autofree char *group = NULL;
    g_autofree char *ctrl = NULL;
    int status;
    pid_t child;

    if (!fx->dir) {
        return;
    }
    if (getuid() != 0 || !nobody) {
        g_test_skip("Needs root and a 'nobody' user to drop privileges.");
        return;
    }
    /* g_dir_make_tmp() made it 0700: let 'nobody' reach the mount. */
    g_assert_cmpint(g_chmod(fx->dir, 0755), ==, 0);
    child = fork();
    g_assert_cmpint(child, >=, 0);
    if (child == 0) {
        /* Creating a group needs root. */
        g_autoptr(GError) error = NULL;
        gboolean ok;

        if (setgid(nobody->pw_gid) < 0 || setuid(nobody->pw_uid) < 0) {
            _exit(3);
        }
        ok = !open_vm(fx, &error) && error &&
             strstr(error->message, "permission denied") &&
             strstr(error->message, "needs root");
        if (error) {
            fprintf(stderr, "# unprivileged open: %s\n", error->message);
        }
        _exit(ok ? 0 : 1);
    }
    g_assert_cmpint(waitpid(child, &status, 0), ==, child);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    assert_nothing_left(fx);

    /* An existing group is readable without privileges. */
    ctrl = path_in(fx, "vm3");
    group = path_in(fx, "vm3/mon_groups/all");
    g_assert_cmpint(g_mkdir(ctrl, 0755), ==, 0);
    g_assert_cmpint(g_mkdir(group, 0755), ==, 0);
    move_vm_to(fx, "vm3");
    move_vm_to(fx, "vm3/mon_groups/all");
    SIM_OK(fx, "set vm3/mon_groups/all * mbm_local_bytes 3");
    child = fork();
    g_assert_cmpint(child, >=, 0);
    if (child == 0) {
        g_autoptr(GError) error = NULL;
        g_auto(QphResctrlReading) r = {0};
        QphResctrlMon *mon;
        gboolean ok;

        if (setgid(nobody->pw_gid) < 0 || setuid(nobody->pw_uid) < 0) {
            _exit(3);
        }
        mon = open_vm(fx, &error);
        ok = mon && !qph_resctrl_mon_is_owned(mon) &&
             qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBML, &r, &error) &&
             r.total == 3 * N_DOMAINS;
        if (error) {
            fprintf(stderr, "# unprivileged read: %s\n", error->message);
        }
        _exit(ok ? 0 : 1);
    }
    g_assert_cmpint(waitpid(child, &status, 0), ==, child);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}


/* ---- counter assignment (mbm_event mode, Linux 6.18) ----------------- */

static const SimArgs sim_few_counters = {"--mbm-assign-mode", "mbm_event",
                                         "--mbm-counters", "3", NULL};
static const SimArgs sim_default_mode = {"--mbm-assign-mode", "default",
                                         NULL};
static const SimArgs sim_snc = {"--snc", "2", NULL};
static const SimArgs sim_pkg = {"--pkg-domains", "2", NULL};

static int
mkdir_in(Fixture *fx, const char *rel)
{
    g_autofree char *path = path_in(fx, rel);

    return g_mkdir(path, 0755);
}

static int
rmdir_in(Fixture *fx, const char *rel)
{
    g_autofree char *path = path_in(fx, rel);

    return g_rmdir(path);
}

static char *
assignments_of(Fixture *fx, const char *group)
{
    g_autofree char *rel = g_build_filename(group, "mbm_L3_assignments", NULL);

    return read_in(fx, rel);
}

static char *
available(Fixture *fx)
{
    return g_strstrip(read_in(fx, "info/L3_MON/available_mbm_cntrs"));
}

static char *
status_of(Fixture *fx)
{
    return g_strstrip(read_in(fx, "info/last_cmd_status"));
}

/* The kernel's mbm_L3_assignments syntax, errors and partial failures. */
static void
test_sim_assignment_syntax(Fixture *fx, gconstpointer data)
{
    g_autofree char *a0 = NULL, *a1 = NULL, *a2 = NULL, *st = NULL;
    g_autofree char *mode = NULL, *num = NULL, *avail = NULL;
    static const struct {
        const char *text;
        int err;
        const char *status;
    } bad[] = {
        {"mbm_total_bytes:0=e", EINVAL, NULL}, /* no newline: no status */
        {"nope:0=e\n", ENOENT, "Invalid event nope"},
        {"llc_occupancy:0=e\n", ENOENT, "Invalid event llc_occupancy"},
        {"mbm_total_bytes:x=e\n", EINVAL, "Missing domain id"},
        {"mbm_total_bytes:7=e\n", EINVAL, "Invalid domain id 7"},
        {"mbm_total_bytes:0=q\n", EINVAL,
         "Assign operation 'mbm_total_bytes:0=q' failed"},
        {"mbm_total_bytes:0\n", EINVAL,
         "Assign operation 'mbm_total_bytes:0=(null)' failed"},
    };
    guint i;

    if (!fx->dir) {
        return;
    }
    mode = read_in(fx, "info/L3_MON/mbm_assign_mode");
    g_assert_cmpstr(mode, ==, "[mbm_event]\ndefault\n");
    num = read_in(fx, "info/L3_MON/num_mbm_cntrs");
    g_assert_cmpstr(num, ==, "0=3;1=3;2=3\n");
    /* The default group holds one counter per MBM event and domain. */
    avail = available(fx);
    g_assert_cmpstr(avail, ==, "0=1;1=1;2=1");

    /* mkdir takes mbm_total_bytes everywhere; mbm_local_bytes finds none. */
    g_assert_cmpint(mkdir_in(fx, "mon_groups/a"), ==, 0);
    a0 = assignments_of(fx, "mon_groups/a");
    g_assert_cmpstr(a0, ==,
                    "mbm_total_bytes:0=e;1=e;2=e\n"
                    "mbm_local_bytes:0=_;1=_;2=_\n");
    for (i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("write %s", bad[i].text);
        g_assert_cmpint(write_in(fx, "mon_groups/a/mbm_L3_assignments",
                                 bad[i].text),
                        ==, bad[i].err);
        if (bad[i].status) {
            g_autofree char *got = status_of(fx);

            g_assert_cmpstr(got, ==, bad[i].status);
        }
    }

    /* Free domain 1's counter; "*" then stops at domain 0 (none free),
     * and domain 2's stays free. */
    g_assert_cmpint(write_in(fx, "mon_groups/a/mbm_L3_assignments",
                             "mbm_total_bytes:1=_;2=_\n"),
                    ==, 0);
    g_assert_cmpint(write_in(fx, "mon_groups/a/mbm_L3_assignments",
                             "mbm_local_bytes:*=e\n"),
                    ==, ENOSPC);
    st = status_of(fx);
    g_assert_cmpstr(st, ==,
                    "Failed to allocate counter for mbm_local_bytes in "
                    "domain 0\nAssign operation 'mbm_local_bytes:*=e' failed");
    /* Domain by domain: the first one done stays done. */
    g_assert_cmpint(write_in(fx, "mon_groups/a/mbm_L3_assignments",
                             "mbm_local_bytes:1=e;0=e\n"),
                    ==, ENOSPC);
    a1 = assignments_of(fx, "mon_groups/a");
    g_assert_cmpstr(a1, ==,
                    "mbm_total_bytes:0=e;1=_;2=_\n"
                    "mbm_local_bytes:0=_;1=e;2=_\n");

    /* Reads: a counter counts, no counter reads Unassigned; the parent
     * adds only the parts that hold one. */
    SIM_OK(fx, "set mon_groups/a * * 5");
    SIM_OK(fx, "set / * * 100");
    {
        g_autofree char *t0 =
            read_in(fx, "mon_groups/a/mon_data/mon_L3_00/mbm_total_bytes");
        g_autofree char *t1 =
            read_in(fx, "mon_groups/a/mon_data/mon_L3_01/mbm_total_bytes");
        g_autofree char *r1 = read_in(fx, "mon_data/mon_L3_01/mbm_total_bytes");
        g_autofree char *c1 =
            read_in(fx, "mon_groups/a/mon_data/mon_L3_01/llc_occupancy");

        g_assert_cmpstr(t0, ==, "5\n");
        g_assert_cmpstr(t1, ==, "Unassigned\n");
        g_assert_cmpstr(r1, ==, "100\n");
        g_assert_cmpstr(c1, ==, "5\n");
    }
    /* rmdir gives the group's counters back. */
    g_assert_cmpint(rmdir_in(fx, "mon_groups/a"), ==, 0);
    a2 = available(fx);
    g_assert_cmpstr(a2, ==, "0=1;1=1;2=1");
}

/* A 6.18 kernel in default mode: the files exist, assignment is refused. */
static void
test_sim_default_mode(Fixture *fx, gconstpointer data)
{
    g_autofree char *mode = NULL, *st = NULL;
    g_autofree char *path = NULL;
    char buf[64];
    int fd;

    if (!fx->dir) {
        return;
    }
    mode = read_in(fx, "info/L3_MON/mbm_assign_mode");
    g_assert_cmpstr(mode, ==, "mbm_event\n[default]\n");
    g_assert_cmpint(write_in(fx, "mbm_L3_assignments", "mbm_total_bytes:0=e\n"),
                    ==, EINVAL);
    st = status_of(fx);
    g_assert_cmpstr(st, ==, "mbm_event counter assignment mode is not enabled");
    path = path_in(fx, "info/L3_MON/available_mbm_cntrs");
    fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(read(fd, buf, sizeof(buf)), ==, -1);
    g_assert_cmpint(errno, ==, EINVAL);
    close(fd);
}

/* cmt alone holds no MBM counter; mbmt takes exactly one per domain and
 * gives it back. */
static void
test_assign_exactly_enabled(Fixture *fx, gconstpointer data)
{
    gboolean cmt[QPH_RESCTRL_FEATURE_LAST] = {[QPH_RESCTRL_FEATURE_CMT] = TRUE};
    gboolean mbmt[QPH_RESCTRL_FEATURE_LAST] = {[QPH_RESCTRL_FEATURE_CMT] = TRUE,
                                               [QPH_RESCTRL_FEATURE_MBMT] =
                                                   TRUE};
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *before = NULL, *after_cmt = NULL, *after_mbmt = NULL;
    g_autofree char *after_off = NULL, *ours = NULL, *a1 = NULL, *a2 = NULL;
    g_auto(QphResctrlReading) r = {0};
    guint i;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    before = available(fx);
    g_assert_cmpstr(before, ==, "0=30;1=30;2=30");
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_true(qph_resctrl_mon_assign(mon, cmt, NULL, &error));
    g_assert_no_error(error);
    qph_resctrl_mon_release(mon, cmt);
    after_cmt = available(fx);
    g_assert_cmpstr(after_cmt, ==, before);
    a1 = assignments_of(fx, ours);
    g_assert_cmpstr(a1, ==,
                    "mbm_total_bytes:0=_;1=_;2=_\n"
                    "mbm_local_bytes:0=_;1=_;2=_\n");

    g_assert_true(qph_resctrl_mon_assign(mon, mbmt, NULL, &error));
    g_assert_no_error(error);
    qph_resctrl_mon_release(mon, mbmt);
    after_mbmt = available(fx);
    g_assert_cmpstr(after_mbmt, ==, "0=29;1=29;2=29");
    a2 = assignments_of(fx, ours);
    g_assert_cmpstr(a2, ==,
                    "mbm_total_bytes:0=e;1=e;2=e\n"
                    "mbm_local_bytes:0=_;1=_;2=_\n");
    SIM_OK(fx, "set %s * mbm_total_bytes 42", ours);
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBMT, &r,
                                       &error));
    g_assert_cmpuint(r.total, ==, 42 * N_DOMAINS);
    for (i = 0; i < N_DOMAINS; i++) {
        g_assert_true(domain_at(&r, i)->has_assigned);
        g_assert_true(domain_at(&r, i)->assigned);
    }

    qph_resctrl_mon_release(mon, cmt);
    after_off = available(fx);
    g_assert_cmpstr(after_off, ==, before);
}

/* With mbm_assign_on_mkdir 0 the new group holds nothing: the helper
 * assigns what the enabled events need all the same. */
static void
test_assign_without_auto_assign(Fixture *fx, gconstpointer data)
{
    gboolean want[QPH_RESCTRL_FEATURE_LAST] = {[QPH_RESCTRL_FEATURE_MBML] =
                                                   TRUE};
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *on = NULL, *ours = NULL, *a0 = NULL, *a1 = NULL;

    if (!fx->dir) {
        return;
    }
    g_assert_cmpint(write_in(fx, "info/L3_MON/mbm_assign_on_mkdir", "0\n"), ==,
                    0);
    on = read_in(fx, "info/L3_MON/mbm_assign_on_mkdir");
    g_assert_cmpstr(on, ==, "0\n");
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    a0 = assignments_of(fx, ours);
    g_assert_cmpstr(a0, ==,
                    "mbm_total_bytes:0=_;1=_;2=_\n"
                    "mbm_local_bytes:0=_;1=_;2=_\n");
    g_assert_true(qph_resctrl_mon_assign(mon, want, NULL, &error));
    g_assert_no_error(error);
    qph_resctrl_mon_release(mon, want);
    a1 = assignments_of(fx, ours);
    g_assert_cmpstr(a1, ==,
                    "mbm_total_bytes:0=_;1=_;2=_\n"
                    "mbm_local_bytes:0=e;1=e;2=e\n");
}

/* No counter free in one domain: the request fails, says how many the
 * domain has, and what the first domains got is given back. */
static void
test_assign_exhausted_all_or_nothing(Fixture *fx, gconstpointer data)
{
    gboolean want[QPH_RESCTRL_FEATURE_LAST] = {[QPH_RESCTRL_FEATURE_MBMT] =
                                                   TRUE};
    gboolean none[QPH_RESCTRL_FEATURE_LAST] = {FALSE};
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *before = NULL, *after = NULL, *ours = NULL;
    g_autofree char *a_before = NULL, *a_after = NULL;
    QphResctrlFeature failed = QPH_RESCTRL_FEATURE_LAST;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    qph_resctrl_mon_release(mon, none);
    /* Another group takes the last counters of domains 1 and 2. */
    g_assert_cmpint(mkdir_in(fx, "mon_groups/other"), ==, 0);
    g_assert_cmpint(write_in(fx, "mon_groups/other/mbm_L3_assignments",
                             "mbm_total_bytes:0=_\n"),
                    ==, 0);
    before = available(fx);
    g_assert_cmpstr(before, ==, "0=1;1=0;2=0");
    a_before = assignments_of(fx, ours);

    g_assert_false(qph_resctrl_mon_assign(mon, want, &failed, &error));
    assert_error_mentions(error, "L3 domain 1", "all 3 counters");
    g_assert_cmpint(failed, ==, QPH_RESCTRL_FEATURE_MBMT);
    after = available(fx);
    g_assert_cmpstr(after, ==, before);
    a_after = assignments_of(fx, ours);
    g_assert_cmpstr(a_after, ==, a_before);
}

/* A group the helper adopted (libvirt's) is read, never changed. */
static void
test_assign_adopted_group_untouched(Fixture *fx, gconstpointer data)
{
    gboolean want[QPH_RESCTRL_FEATURE_LAST] = {[QPH_RESCTRL_FEATURE_MBMT] =
                                                   TRUE,
                                               [QPH_RESCTRL_FEATURE_MBML] =
                                                   TRUE};
    gboolean none[QPH_RESCTRL_FEATURE_LAST] = {FALSE};
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *a_before = NULL, *a_after = NULL;
    g_auto(QphResctrlReading) r = {0};

    if (!fx->dir) {
        return;
    }
    g_assert_cmpint(mkdir_in(fx, "mon_groups/libvirt"), ==, 0);
    move_vm_to(fx, "mon_groups/libvirt");
    g_assert_cmpint(write_in(fx, "mon_groups/libvirt/mbm_L3_assignments",
                             "mbm_local_bytes:1=_\n"),
                    ==, 0);
    a_before = assignments_of(fx, "mon_groups/libvirt");
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    g_assert_false(qph_resctrl_mon_is_owned(mon));
    g_assert_true(qph_resctrl_mon_assign(mon, want, NULL, &error));
    g_assert_no_error(error);
    qph_resctrl_mon_release(mon, none);
    a_after = assignments_of(fx, "mon_groups/libvirt");
    g_assert_cmpstr(a_after, ==, a_before);

    SIM_OK(fx, "set mon_groups/libvirt * mbm_local_bytes 9");
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBML, &r,
                                       &error));
    g_assert_cmpuint(r.total, ==, 9 * (N_DOMAINS - 1));
    g_assert_cmpint(domain_at(&r, 1)->status, ==, QPH_RESCTRL_VALUE_UNASSIGNED);
    g_assert_true(domain_at(&r, 1)->has_assigned);
    g_assert_false(domain_at(&r, 1)->assigned);
    g_assert_true(domain_at(&r, 0)->assigned);
}

/* ---- Sub-NUMA Clustering ---------------------------------------------- */

static void
test_snc_shares_add_up(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    g_auto(QphResctrlReading) r = {0};
    guint i, k;

    if (!fx->dir) {
        return;
    }
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    for (i = 0; i < N_DOMAINS * 2; i++) {
        SIM_OK(fx, "set-node %s %u mbm_total_bytes %u", ours, i, 100 * (i + 1));
    }
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_MBMT, &r,
                                       &error));
    g_assert_no_error(error);
    /* 100+200 + 300+400 + 500+600: the sums, not the sums and shares. */
    g_assert_cmpuint(r.total, ==, 2100);
    for (i = 0; i < N_DOMAINS; i++) {
        const QphResctrlDomainValue *d = domain_at(&r, i);
        guint64 shares = 0;

        g_assert_nonnull(d->subs);
        g_assert_cmpuint(d->subs->len, ==, 2);
        for (k = 0; k < 2; k++) {
            const QphResctrlSubValue *sv =
                &g_array_index(d->subs, QphResctrlSubValue, k);

            g_assert_cmpuint(sv->node, ==, i * 2 + k);
            g_assert_cmpint(sv->status, ==, QPH_RESCTRL_VALUE_OK);
            shares += sv->value;
        }
        g_assert_cmpuint(shares, ==, d->value);
    }
    g_assert_cmpuint(domain_at(&r, 1)->value, ==, 700);
}

/* ---- package telemetry (PERF_PKG, Linux 7.0) ------------------------- */

static void
test_energy_per_package(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QphResctrlMon) mon = NULL;
    g_autofree char *ours = NULL;
    g_auto(QphResctrlReading) e = {0};
    g_auto(QphResctrlReading) a = {0};

    if (!fx->dir) {
        return;
    }
    g_assert_true(
        qph_resctrl_probe(fx->mnt, QPH_RESCTRL_FEATURE_CORE_ENERGY, &error));
    g_assert_no_error(error);
    ours = our_group(fx);
    mon = open_vm(fx, &error);
    g_assert_no_error(error);
    SIM_OK(fx, "set %s 0 core_energy 1.5", ours);
    SIM_OK(fx, "set %s 1 core_energy 0.000250", ours);
    SIM_OK(fx, "set %s * activity 2", ours);
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_CORE_ENERGY,
                                       &e, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(e.domains->len, ==, 2);
    g_assert_cmpuint(domain_at(&e, 0)->value, ==, 1500000000);
    g_assert_cmpuint(domain_at(&e, 1)->value, ==, 250000);
    g_assert_cmpuint(e.total, ==, 1500250000);
    g_assert_null(domain_at(&e, 0)->subs);
    g_assert_false(domain_at(&e, 0)->has_assigned);
    g_assert_true(qph_resctrl_mon_read(mon, QPH_RESCTRL_FEATURE_ACTIVITY, &a,
                                       &error));
    g_assert_cmpuint(a.total, ==, 4000000000);
    g_assert_cmpstr(
        qph_resctrl_feature_info(QPH_RESCTRL_FEATURE_CORE_ENERGY)->unit, ==,
        "nanojoules");
}

/* A host without the package resource refuses like for L3 events. */
static void
test_energy_refused_without_pkg(Fixture *fx, gconstpointer data)
{
    g_autoptr(GError) probe = NULL;

    if (!fx->dir) {
        return;
    }
    g_assert_false(
        qph_resctrl_probe(fx->mnt, QPH_RESCTRL_FEATURE_CORE_ENERGY, &probe));
    assert_error_mentions(probe, "no monitoring support",
                          "(no info/PERF_PKG_MON)");
}

/* ---- no simulator needed -------------------------------------------- */

static void
test_parse_value(void)
{
    static const struct {
        const char *text;
        QphResctrlValueStatus status;
        guint64 value;
    } cases[] = {
        {"0\n", QPH_RESCTRL_VALUE_OK, 0},
        {"1234\n", QPH_RESCTRL_VALUE_OK, 1234},
        {"18446744073709551615\n", QPH_RESCTRL_VALUE_OK, G_MAXUINT64},
        {"Unavailable\n", QPH_RESCTRL_VALUE_UNAVAILABLE, 0},
        {"Error\n", QPH_RESCTRL_VALUE_ERROR, 0},
        {"Unassigned\n", QPH_RESCTRL_VALUE_UNASSIGNED, 0},
        {"18446744073709551616\n", QPH_RESCTRL_VALUE_ERROR, 0},
        {"-1\n", QPH_RESCTRL_VALUE_ERROR, 0},
        {"+1\n", QPH_RESCTRL_VALUE_ERROR, 0},
        {"12abc\n", QPH_RESCTRL_VALUE_ERROR, 0},
        {"", QPH_RESCTRL_VALUE_ERROR, 0},
        {"unavailable\n", QPH_RESCTRL_VALUE_ERROR, 0},
    };
    guint i;

    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        guint64 value = 0;

        g_assert_cmpint(qph_resctrl_parse_value(cases[i].text, &value), ==,
                        cases[i].status);
        if (cases[i].status == QPH_RESCTRL_VALUE_OK) {
            g_assert_cmpuint(value, ==, cases[i].value);
        }
    }
    g_assert_cmpint(qph_resctrl_status_from_errno(EINVAL), ==,
                    QPH_RESCTRL_VALUE_UNAVAILABLE);
    g_assert_cmpint(qph_resctrl_status_from_errno(EIO), ==,
                    QPH_RESCTRL_VALUE_ERROR);
    g_assert_cmpint(qph_resctrl_status_from_errno(ENOENT), ==,
                    QPH_RESCTRL_VALUE_UNASSIGNED);
}

static void
test_parse_scaled(void)
{
    static const struct {
        const char *text;
        guint decimals;
        QphResctrlValueStatus status;
        guint64 value;
    } cases[] = {
        {"1.500000\n", 9, QPH_RESCTRL_VALUE_OK, 1500000000},
        {"0.000001\n", 9, QPH_RESCTRL_VALUE_OK, 1000},
        {"12.123456789\n", 9, QPH_RESCTRL_VALUE_OK, 12123456789},
        {"7\n", 9, QPH_RESCTRL_VALUE_OK, 7000000000},
        {"7.0\n", 9, QPH_RESCTRL_VALUE_OK, 7000000000},
        {"Unavailable\n", 9, QPH_RESCTRL_VALUE_UNAVAILABLE, 0},
        {"1.1234567891\n", 9, QPH_RESCTRL_VALUE_ERROR, 0}, /* 10 places */
        {"1.\n", 9, QPH_RESCTRL_VALUE_ERROR, 0},
        {".5\n", 9, QPH_RESCTRL_VALUE_ERROR, 0},
        {"1.-5\n", 9, QPH_RESCTRL_VALUE_ERROR, 0},
        {"18446744074.0\n", 9, QPH_RESCTRL_VALUE_ERROR, 0}, /* > 2^64 nJ */
        {"1.5\n", 0, QPH_RESCTRL_VALUE_ERROR, 0}, /* bytes have no point */
    };
    guint i;

    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        guint64 value = 0;

        g_test_message("%s", cases[i].text);
        g_assert_cmpint(qph_resctrl_parse_scaled(cases[i].text,
                                                 cases[i].decimals, &value),
                        ==, cases[i].status);
        if (cases[i].status == QPH_RESCTRL_VALUE_OK) {
            g_assert_cmpuint(value, ==, cases[i].value);
        }
    }
    g_assert_cmpint(qph_resctrl_parse_assign_mode("[mbm_event]\ndefault\n"),
                    ==, QPH_RESCTRL_ASSIGN_MBM_EVENT);
    g_assert_cmpint(qph_resctrl_parse_assign_mode("mbm_event\n[default]\n"),
                    ==, QPH_RESCTRL_ASSIGN_DEFAULT);
    g_assert_cmpint(qph_resctrl_parse_assign_mode(NULL), ==,
                    QPH_RESCTRL_ASSIGN_NONE);
}

static void
test_feature_table(void)
{
    static const char *const events[] = {"cmt", "mbmt", "mbml"};
    static const char *const files[] = {"llc_occupancy", "mbm_total_bytes",
                                        "mbm_local_bytes"};
    QphResctrlFeature f;
    guint i;

    for (i = 0; i < G_N_ELEMENTS(events); i++) {
        g_assert_true(qph_resctrl_feature_from_event(events[i], &f));
        g_assert_cmpint(f, ==, i);
        g_assert_cmpstr(qph_resctrl_feature_info(f)->file, ==, files[i]);
        g_assert_cmpstr(qph_resctrl_feature_info(f)->unit, ==, "bytes");
    }
    g_assert_cmpint(qph_resctrl_feature_info(QPH_RESCTRL_FEATURE_CMT)->kind,
                    ==, QPH_RESCTRL_KIND_GAUGE);
    g_assert_cmpint(qph_resctrl_feature_info(QPH_RESCTRL_FEATURE_MBMT)->kind,
                    ==, QPH_RESCTRL_KIND_CUMULATIVE);
    g_assert_false(qph_resctrl_feature_from_event("cpu_cycles", &f));
    g_assert_false(qph_resctrl_feature_from_event(NULL, &f));
    g_assert_null(qph_resctrl_feature_info(QPH_RESCTRL_FEATURE_LAST));
    g_assert_cmpstr(qph_resctrl_value_status_name(QPH_RESCTRL_VALUE_UNASSIGNED),
                    ==, "unassigned");
    g_assert_cmpstr(qph_resctrl_value_status_name(QPH_RESCTRL_VALUE_LAST), ==,
                    "error");
}

static void
test_bad_arguments(void)
{
    g_autoptr(GError) e1 = NULL;
    g_autoptr(GError) e2 = NULL;
    g_autoptr(GError) e3 = NULL;
    pid_t self = getpid();
    pid_t gone = NO_SUCH_TID;

    g_assert_null(qph_resctrl_mon_open("/nonexistent", 0, &self, 1, &e1));
    assert_error_mentions(e1, "Invalid process", NULL);
    g_assert_null(qph_resctrl_mon_open("/nonexistent", self, NULL, 3, &e2));
    assert_error_mentions(e2, "Invalid process", NULL);
    g_assert_null(qph_resctrl_mon_open("/nonexistent", self, &gone, 1, &e3));
    assert_error_mentions(e3, "none of the given threads", NULL);
    qph_resctrl_mon_close(NULL);
}

/* Each simulator case on an old kernel and in mbm_event mode. */
#define ADD(name, fn)                                                          \
    do {                                                                       \
        g_test_add("/resctrl/" name, Fixture, NULL, fixture_setup, fn,         \
                   fixture_teardown);                                          \
        g_test_add("/resctrl/mbm-event/" name, Fixture, sim_mbm_event,         \
                   fixture_setup, fn, fixture_teardown);                       \
    } while (0)
#define ADD_ON(name, args, fn)                                                 \
    g_test_add("/resctrl/" name, Fixture, args, fixture_setup, fn,             \
               fixture_teardown)

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/resctrl/api/parse-value", test_parse_value);
    g_test_add_func("/resctrl/api/parse-scaled", test_parse_scaled);
    g_test_add_func("/resctrl/api/feature-table", test_feature_table);
    g_test_add_func("/resctrl/api/bad-arguments", test_bad_arguments);

    ADD("sim/one-tid-per-write", test_sim_one_tid_per_write);
    ADD("sim/unknown-tid", test_sim_unknown_tid);
    ADD("sim/one-group-per-task", test_sim_one_group_per_task);
    ADD("sim/rmids-run-out", test_sim_rmids_run_out);
    ADD("sim/states-read-as-text", test_sim_states_read_as_text);

    ADD("open/creates-group", test_open_creates_group);
    ADD("open/reuses-own-group", test_open_reuses_own_group);
    ADD("open/add-thread-later", test_add_thread_later);
    ADD("open/out-of-rmids", test_out_of_rmids);
    ADD("open/missing-feature", test_missing_feature);
    ADD("open/no-l3-mon", test_no_l3_mon);
    ADD("open/not-mounted", test_not_mounted);
    ADD("open/foreign-mon-group", test_foreign_mon_group);
    ADD("open/foreign-ctrl-group", test_foreign_ctrl_group);
    ADD("open/shared-ctrl-group", test_shared_ctrl_group);
    ADD("open/foreign-partial-group", test_foreign_partial_group);
    ADD("open/stale-groups", test_stale_groups);
    ADD("open/busy-flock-is-again", test_busy_flock_is_again);
    ADD("open/unprivileged", test_unprivileged);
    ADD("read/sums-domains", test_read_sums_domains);
    ADD("read/bad-domains", test_read_bad_domains);
    ADD("close/removes-group", test_close_removes_group);

    ADD_ON("assign/sim-syntax", sim_few_counters, test_sim_assignment_syntax);
    ADD_ON("assign/sim-default-mode", sim_default_mode, test_sim_default_mode);
    ADD_ON("assign/exactly-enabled", sim_mbm_event,
           test_assign_exactly_enabled);
    ADD_ON("assign/without-auto-assign", sim_mbm_event,
           test_assign_without_auto_assign);
    ADD_ON("assign/exhausted-all-or-nothing", sim_few_counters,
           test_assign_exhausted_all_or_nothing);
    ADD_ON("assign/adopted-group-untouched", sim_mbm_event,
           test_assign_adopted_group_untouched);
    ADD_ON("snc/shares-add-up", sim_snc, test_snc_shares_add_up);
    ADD_ON("energy/per-package", sim_pkg, test_energy_per_package);
    ADD_ON("energy/refused-without-pkg", NULL,
           test_energy_refused_without_pkg);

    return g_test_run();
}
