/*
 * resctrl-sim.c: a FUSE double of the kernel's resctrl filesystem (monitoring)
 *
 * Tests have no RDT hardware, so this program mounts a tree that behaves like
 * /sys/fs/resctrl for the monitoring side: the root (default CTRL_MON group),
 * CTRL_MON groups made by mkdir at the root, MON groups made by mkdir in any
 * mon_groups/, per-group tasks/cpus/cpus_list, mon_data/mon_L3_XX/<event>,
 * and info/{last_cmd_status,L3_MON/...}.  Its rules follow the kernel's
 * (fs/resctrl/rdtgroup.c): one TID per write to tasks, an unknown TID is
 * ESRCH with "No task N" in info/last_cmd_status, a task is in exactly one
 * group, a MON group only takes tasks of its parent's CLOSID, rmdir sends the
 * tasks back to the parent, mkdir consumes an RMID and fails with ENOSPC
 * "Out of RMIDs", a CTRL_MON group's tasks and mon_data include its MON
 * groups'.  An event file reads as a number or, like the kernel, *succeeds*
 * with the text "Unavailable", "Error" or "Unassigned".
 *
 * Tests drive it over a unix socket (--control), one command per line, each
 * answered by "ok" or "error <text>"; see docs/resctrl.md for the commands.
 * flock(2) on any file of the mount works: libfuse leaves it to the kernel,
 * which keeps the locks locally, and that is all a single host needs.
 *
 * What it does not model: new threads inheriting their creator's group (an
 * unknown thread is in the root group), RMID limbo (inject EBUSY instead),
 * schemata and allocation, Sub-NUMA mon_sub_L3_YY, counter assignment.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fuse.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef enum {
    SIM_FEATURE_LLC_OCCUPANCY,
    SIM_FEATURE_MBM_TOTAL_BYTES,
    SIM_FEATURE_MBM_LOCAL_BYTES,
    SIM_FEATURE_LAST,
} SimFeature;

static const char *const sim_feature_names[] = {
    [SIM_FEATURE_LLC_OCCUPANCY] = "llc_occupancy",
    [SIM_FEATURE_MBM_TOTAL_BYTES] = "mbm_total_bytes",
    [SIM_FEATURE_MBM_LOCAL_BYTES] = "mbm_local_bytes",
};
G_STATIC_ASSERT(G_N_ELEMENTS(sim_feature_names) == SIM_FEATURE_LAST);

typedef enum {
    SIM_VALUE_NUMBER,
    SIM_VALUE_UNAVAILABLE, /* kernel prints "Unavailable" (rr.err -EINVAL) */
    SIM_VALUE_ERROR,       /* kernel prints "Error" (rr.err -EIO) */
    SIM_VALUE_UNASSIGNED,  /* kernel prints "Unassigned" (rr.err -ENOENT) */
    SIM_VALUE_ERRNO,       /* not kernel-like: read(2) fails with errno */
    SIM_VALUE_LAST,
} SimValueKind;

static const char *const sim_value_texts[] = {
    [SIM_VALUE_NUMBER] = NULL,
    [SIM_VALUE_UNAVAILABLE] = "Unavailable",
    [SIM_VALUE_ERROR] = "Error",
    [SIM_VALUE_UNASSIGNED] = "Unassigned",
    [SIM_VALUE_ERRNO] = NULL,
};
G_STATIC_ASSERT(G_N_ELEMENTS(sim_value_texts) == SIM_VALUE_LAST);

typedef struct {
    SimValueKind kind;
    guint64 number;
    int err;
} SimValue;

typedef struct SimGroup SimGroup;
struct SimGroup {
    char *name;           /* "" for the root */
    SimGroup *parent;     /* the CTRL_MON group of a MON group, else NULL */
    gboolean is_ctrl;     /* root and CTRL_MON groups */
    GHashTable *children; /* CTRL_MON only: name -> MON SimGroup */
    char *cpus;
    char *cpus_list;
    SimValue *values; /* n_domains * SIM_FEATURE_LAST */
};

static struct {
    GMutex lock;
    SimGroup *root;
    GHashTable *ctrl_groups; /* name -> SimGroup */
    GHashTable *task_group;  /* tid -> SimGroup, absent means the root */
    guint n_domains;
    guint num_rmids;
    guint num_closids;
    guint rmids_used;
    guint closids_used;
    gboolean l3_mon;
    guint features; /* bit per SimFeature in mon_features */
    int fail_next_mkdir;
    char *last_cmd_status;
} sim;

/* ---- model ---------------------------------------------------------- */

static void
sim_group_free(gpointer data)
{
    SimGroup *g = data;

    g_clear_pointer(&g->children, g_hash_table_unref);
    g_free(g->name);
    g_free(g->cpus);
    g_free(g->cpus_list);
    g_free(g->values);
    g_free(g);
}

static SimGroup *
sim_group_new(const char *name, SimGroup *parent, gboolean is_ctrl)
{
    SimGroup *g = g_new0(SimGroup, 1);

    g->name = g_strdup(name);
    g->parent = parent;
    g->is_ctrl = is_ctrl;
    if (is_ctrl) {
        g->children = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                            sim_group_free);
    }
    g->cpus = g_strdup("0\n");
    g->cpus_list = g_strdup("\n");
    g->values = g_new0(SimValue, sim.n_domains * SIM_FEATURE_LAST);
    return g;
}

static void
sim_set_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
sim_set_status(const char *fmt, ...)
{
    va_list ap;

    g_free(sim.last_cmd_status);
    va_start(ap, fmt);
    sim.last_cmd_status = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

static gboolean
sim_tid_exists(int tid)
{
    char path[64];

    g_snprintf(path, sizeof(path), "/proc/%d", tid);
    return tid > 0 && access(path, F_OK) == 0;
}

static SimGroup *
sim_task_group(int tid)
{
    SimGroup *g = g_hash_table_lookup(sim.task_group, GINT_TO_POINTER(tid));

    return g ? g : sim.root;
}

/* Does the tasks file of @g list a task that sits in @where? */
static gboolean
sim_group_lists(SimGroup *g, SimGroup *where)
{
    return where == g || (g->is_ctrl && where->parent == g);
}

static void
sim_append_tid(GString *out, SimGroup *g, int tid)
{
    if (sim_group_lists(g, sim_task_group(tid))) {
        g_string_append_printf(out, "%d\n", tid);
    }
}

/* Every thread on the host, as the root's tasks file needs them. */
static void
sim_list_host_tids(GString *out, SimGroup *g)
{
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *pid;

    if (!proc) {
        return;
    }
    while ((pid = g_dir_read_name(proc))) {
        g_autofree char *task_path = NULL;
        g_autoptr(GDir) tasks = NULL;
        const char *tid;

        if (!g_ascii_isdigit(pid[0])) {
            continue;
        }
        task_path = g_strdup_printf("/proc/%s/task", pid);
        tasks = g_dir_open(task_path, 0, NULL);
        while (tasks && (tid = g_dir_read_name(tasks))) {
            sim_append_tid(out, g, atoi(tid));
        }
    }
}

static char *
sim_tasks_text(SimGroup *g)
{
    GString *out = g_string_new(NULL);
    GHashTableIter iter;
    gpointer key, value;
    g_autoptr(GArray) dead = g_array_new(FALSE, FALSE, sizeof(int));

    /* Threads that exited leave their group, as in the kernel. */
    g_hash_table_iter_init(&iter, sim.task_group);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        if (!sim_tid_exists(GPOINTER_TO_INT(key))) {
            g_hash_table_iter_remove(&iter);
        }
    }
    if (g == sim.root) {
        sim_list_host_tids(out, g);
    } else {
        g_hash_table_iter_init(&iter, sim.task_group);
        while (g_hash_table_iter_next(&iter, &key, &value)) {
            sim_append_tid(out, g, GPOINTER_TO_INT(key));
        }
    }
    return g_string_free(out, FALSE);
}

/* A CTRL_MON group counts its own RMID plus its MON groups', like the kernel. */
static SimValue
sim_group_value(SimGroup *g, guint domain, SimFeature f)
{
    SimValue v = g->values[domain * SIM_FEATURE_LAST + f];
    GHashTableIter iter;
    gpointer child;

    if (!g->is_ctrl || v.kind != SIM_VALUE_NUMBER) {
        return v;
    }
    g_hash_table_iter_init(&iter, g->children);
    while (g_hash_table_iter_next(&iter, NULL, &child)) {
        SimValue c = sim_group_value(child, domain, f);

        if (c.kind != SIM_VALUE_NUMBER) {
            return c;
        }
        v.number += c.number;
    }
    return v;
}

/* ---- paths ---------------------------------------------------------- */

typedef enum {
    NODE_NONE,
    NODE_GROUP_DIR,
    NODE_MON_GROUPS_DIR,
    NODE_MON_DATA_DIR,
    NODE_DOMAIN_DIR,
    NODE_VALUE,
    NODE_TASKS,
    NODE_CPUS,
    NODE_CPUS_LIST,
    NODE_INFO_DIR,
    NODE_L3_MON_DIR,
    NODE_LAST_CMD_STATUS,
    NODE_NUM_RMIDS,
    NODE_MON_FEATURES,
    NODE_MAX_THRESHOLD,
} NodeKind;

typedef struct {
    NodeKind kind;
    SimGroup *group;
    guint domain;
    SimFeature feature;
} Node;

static gboolean
sim_is_reserved(const char *name)
{
    return g_str_equal(name, "info") || g_str_equal(name, "mon_groups") ||
           g_str_equal(name, "mon_data") || g_str_equal(name, "tasks") ||
           g_str_equal(name, "cpus") || g_str_equal(name, "cpus_list");
}

static gboolean
sim_parse_domain(const char *name, guint *domain)
{
    guint64 id;

    if (!g_str_has_prefix(name, "mon_L3_") || strlen(name) != 9 ||
        !g_ascii_string_to_unsigned(name + 7, 10, 0, sim.n_domains - 1, &id,
                                    NULL)) {
        return FALSE;
    }
    *domain = id;
    return TRUE;
}

static Node
sim_resolve_info(char **c, guint n)
{
    Node node = {NODE_NONE};

    if (n == 1) {
        node.kind = NODE_INFO_DIR;
    } else if (n == 2 && g_str_equal(c[1], "last_cmd_status")) {
        node.kind = NODE_LAST_CMD_STATUS;
    } else if (sim.l3_mon && g_str_equal(c[1], "L3_MON")) {
        if (n == 2) {
            node.kind = NODE_L3_MON_DIR;
        } else if (n == 3 && g_str_equal(c[2], "num_rmids")) {
            node.kind = NODE_NUM_RMIDS;
        } else if (n == 3 && g_str_equal(c[2], "mon_features")) {
            node.kind = NODE_MON_FEATURES;
        } else if (n == 3 && g_str_equal(c[2], "max_threshold_occupancy")) {
            node.kind = NODE_MAX_THRESHOLD;
        }
    }
    return node;
}

static Node
sim_resolve_in_group(SimGroup *g, char **c, guint n)
{
    Node node = {NODE_NONE, g};
    guint f;

    if (n == 0) {
        node.kind = NODE_GROUP_DIR;
    } else if (n == 1 && g_str_equal(c[0], "tasks")) {
        node.kind = NODE_TASKS;
    } else if (n == 1 && g_str_equal(c[0], "cpus")) {
        node.kind = NODE_CPUS;
    } else if (n == 1 && g_str_equal(c[0], "cpus_list")) {
        node.kind = NODE_CPUS_LIST;
    } else if (sim.l3_mon && g_str_equal(c[0], "mon_data")) {
        if (n == 1) {
            node.kind = NODE_MON_DATA_DIR;
        } else if (sim_parse_domain(c[1], &node.domain)) {
            if (n == 2) {
                node.kind = NODE_DOMAIN_DIR;
            }
            for (f = 0; n == 3 && f < SIM_FEATURE_LAST; f++) {
                if ((sim.features & (1u << f)) &&
                    g_str_equal(c[2], sim_feature_names[f])) {
                    node.kind = NODE_VALUE;
                    node.feature = f;
                }
            }
        }
    }
    return node;
}

static Node
sim_resolve(const char *path)
{
    g_auto(GStrv) c = g_strsplit(path + 1, "/", -1);
    guint n = path[1] ? g_strv_length(c) : 0;
    SimGroup *g = sim.root;
    guint i = 0;

    if (n > 0 && g_str_equal(c[0], "info")) {
        return sim_resolve_info(c, n);
    }
    if (n > 0 && !sim_is_reserved(c[0])) {
        g = g_hash_table_lookup(sim.ctrl_groups, c[0]);
        if (!g) {
            return (Node){NODE_NONE};
        }
        i = 1;
    }
    if (i < n && sim.l3_mon && g_str_equal(c[i], "mon_groups")) {
        if (i + 1 == n) {
            return (Node){NODE_MON_GROUPS_DIR, g};
        }
        g = g_hash_table_lookup(g->children, c[i + 1]);
        if (!g) {
            return (Node){NODE_NONE};
        }
        i += 2;
    }
    return sim_resolve_in_group(g, c + i, n - i);
}

static gboolean
sim_node_is_dir(NodeKind kind)
{
    return kind == NODE_GROUP_DIR || kind == NODE_MON_GROUPS_DIR ||
           kind == NODE_MON_DATA_DIR || kind == NODE_DOMAIN_DIR ||
           kind == NODE_INFO_DIR || kind == NODE_L3_MON_DIR;
}

/* Contents of a file node, or NULL with *err set (read fails). */
static char *
sim_node_text(const Node *node, int *err)
{
    GString *s;
    SimValue v;
    guint f;

    switch (node->kind) {
    case NODE_TASKS:
        return sim_tasks_text(node->group);
    case NODE_CPUS:
        return g_strdup(node->group->cpus);
    case NODE_CPUS_LIST:
        return g_strdup(node->group->cpus_list);
    case NODE_LAST_CMD_STATUS:
        return g_strdup(sim.last_cmd_status);
    case NODE_NUM_RMIDS:
        return g_strdup_printf("%u\n", sim.num_rmids);
    case NODE_MAX_THRESHOLD:
        return g_strdup("180224\n");
    case NODE_MON_FEATURES:
        s = g_string_new(NULL);
        for (f = 0; f < SIM_FEATURE_LAST; f++) {
            if (sim.features & (1u << f)) {
                g_string_append_printf(s, "%s\n", sim_feature_names[f]);
            }
        }
        return g_string_free(s, FALSE);
    case NODE_VALUE:
        v = sim_group_value(node->group, node->domain, node->feature);
        if (v.kind == SIM_VALUE_ERRNO) {
            *err = v.err;
            return NULL;
        }
        if (v.kind != SIM_VALUE_NUMBER) {
            return g_strdup_printf("%s\n", sim_value_texts[v.kind]);
        }
        return g_strdup_printf("%" G_GUINT64_FORMAT "\n", v.number);
    default:
        *err = EISDIR;
        return NULL;
    }
}

/* ---- FUSE operations ------------------------------------------------ */

static void *
sim_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Groups come and go behind the kernel's back (control socket, rmdir
     * moving tasks): never cache names, attributes or data. */
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->direct_io = 1;
    return NULL;
}

static int
sim_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);

    memset(st, 0, sizeof(*st));
    if (node.kind == NODE_NONE) {
        return -ENOENT;
    }
    if (sim_node_is_dir(node.kind)) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else if (node.kind == NODE_TASKS || node.kind == NODE_CPUS ||
               node.kind == NODE_CPUS_LIST) {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    }
    /* kernfs reports size 0 too; direct_io makes reads ignore it. */
    st->st_size = 0;
    return 0;
}

static int
sim_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
            struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);
    GHashTableIter iter;
    gpointer key;
    guint i;

    if (!sim_node_is_dir(node.kind)) {
        return node.kind == NODE_NONE ? -ENOENT : -ENOTDIR;
    }
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    switch (node.kind) {
    case NODE_GROUP_DIR:
        fill(buf, "tasks", NULL, 0, 0);
        fill(buf, "cpus", NULL, 0, 0);
        fill(buf, "cpus_list", NULL, 0, 0);
        if (sim.l3_mon) {
            fill(buf, "mon_data", NULL, 0, 0);
            if (node.group->is_ctrl) {
                fill(buf, "mon_groups", NULL, 0, 0);
            }
        }
        if (node.group == sim.root) {
            fill(buf, "info", NULL, 0, 0);
            g_hash_table_iter_init(&iter, sim.ctrl_groups);
            while (g_hash_table_iter_next(&iter, &key, NULL)) {
                fill(buf, key, NULL, 0, 0);
            }
        }
        break;
    case NODE_MON_GROUPS_DIR:
        g_hash_table_iter_init(&iter, node.group->children);
        while (g_hash_table_iter_next(&iter, &key, NULL)) {
            fill(buf, key, NULL, 0, 0);
        }
        break;
    case NODE_MON_DATA_DIR:
        for (i = 0; i < sim.n_domains; i++) {
            char name[16];

            g_snprintf(name, sizeof(name), "mon_L3_%02u", i);
            fill(buf, name, NULL, 0, 0);
        }
        break;
    case NODE_DOMAIN_DIR:
        for (i = 0; i < SIM_FEATURE_LAST; i++) {
            if (sim.features & (1u << i)) {
                fill(buf, sim_feature_names[i], NULL, 0, 0);
            }
        }
        break;
    case NODE_INFO_DIR:
        fill(buf, "last_cmd_status", NULL, 0, 0);
        if (sim.l3_mon) {
            fill(buf, "L3_MON", NULL, 0, 0);
        }
        break;
    case NODE_L3_MON_DIR:
        fill(buf, "num_rmids", NULL, 0, 0);
        fill(buf, "mon_features", NULL, 0, 0);
        fill(buf, "max_threshold_occupancy", NULL, 0, 0);
        break;
    default:
        break;
    }
    return 0;
}

static int
sim_open(const char *path, struct fuse_file_info *fi)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);

    if (node.kind == NODE_NONE) {
        return -ENOENT;
    }
    fi->direct_io = 1;
    return 0;
}

static int
sim_read(const char *path, char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);
    g_autofree char *text = NULL;
    size_t len;
    int err = 0;

    if (node.kind == NODE_NONE) {
        return -ENOENT;
    }
    text = sim_node_text(&node, &err);
    if (!text) {
        return -err;
    }
    len = strlen(text);
    if (off < 0 || (size_t)off >= len) {
        return 0;
    }
    len = MIN(len - off, size);
    memcpy(buf, text + off, len);
    return len;
}

/* rdtgroup_move_task(): one TID, which must exist and, for a MON group,
 * belong to the parent's CLOSID. */
static int
sim_write_tasks(SimGroup *g, const char *buf, size_t size)
{
    g_autofree char *text = g_strstrip(g_strndup(buf, size));
    SimGroup *ctrl = g->is_ctrl ? g : g->parent;
    SimGroup *from;
    gint64 tid;

    if (!g_ascii_string_to_signed(text, 10, 0, G_MAXINT, &tid, NULL)) {
        sim_set_status("Task list parsing error pid %s\n", text);
        return -EINVAL;
    }
    if (tid == 0) {
        tid = fuse_get_context()->pid;
    }
    if (!sim_tid_exists(tid)) {
        sim_set_status("No task %d\n", (int)tid);
        return -ESRCH;
    }
    from = sim_task_group(tid);
    if (!g->is_ctrl && from != ctrl && from->parent != ctrl) {
        sim_set_status("Can't move task to different control group\n");
        return -EINVAL;
    }
    if (g == sim.root) {
        g_hash_table_remove(sim.task_group, GINT_TO_POINTER(tid));
    } else {
        g_hash_table_insert(sim.task_group, GINT_TO_POINTER(tid), g);
    }
    return size;
}

static int
sim_write(const char *path, const char *buf, size_t size, off_t off,
          struct fuse_file_info *fi)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);

    sim_set_status("ok\n");
    switch (node.kind) {
    case NODE_TASKS:
        return sim_write_tasks(node.group, buf, size);
    case NODE_CPUS:
        g_free(node.group->cpus);
        node.group->cpus = g_strndup(buf, size);
        return size;
    case NODE_CPUS_LIST:
        g_free(node.group->cpus_list);
        node.group->cpus_list = g_strndup(buf, size);
        return size;
    case NODE_NONE:
        return -ENOENT;
    default:
        return -EACCES;
    }
}

static int
sim_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    /* "echo N > tasks" opens with O_TRUNC; kernfs ignores it too. */
    return 0;
}

static int
sim_mkdir(const char *path, mode_t mode)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *name = g_path_get_basename(path);
    Node parent = sim_resolve(dir);
    SimGroup *g;

    sim_set_status("ok\n");
    if (sim_resolve(path).kind != NODE_NONE) {
        return -EEXIST;
    }
    if (strchr(name, '\n')) {
        return -EINVAL;
    }
    if (!(parent.kind == NODE_MON_GROUPS_DIR ||
          (parent.kind == NODE_GROUP_DIR && parent.group == sim.root))) {
        return -EPERM;
    }
    if (sim.fail_next_mkdir) {
        int err = sim.fail_next_mkdir;

        sim.fail_next_mkdir = 0;
        if (err == EBUSY || err == ENOSPC) {
            sim_set_status("Out of RMIDs\n");
        }
        return -err;
    }
    if (parent.kind == NODE_GROUP_DIR) {
        if (sim_is_reserved(name)) {
            return -EEXIST;
        }
        if (sim.closids_used >= sim.num_closids) {
            sim_set_status("Out of CLOSIDs\n");
            return -ENOSPC;
        }
    }
    if (sim.l3_mon && sim.rmids_used >= sim.num_rmids) {
        sim_set_status("Out of RMIDs\n");
        return -ENOSPC;
    }
    if (sim.l3_mon) {
        sim.rmids_used++;
    }
    if (parent.kind == NODE_GROUP_DIR) {
        sim.closids_used++;
        g = sim_group_new(name, NULL, TRUE);
        g_hash_table_insert(sim.ctrl_groups, g->name, g);
    } else {
        g = sim_group_new(name, parent.group, FALSE);
        g_hash_table_insert(parent.group->children, g->name, g);
    }
    return 0;
}

/* Send every task of @g (or of its MON groups) to @to. */
static void
sim_move_all(SimGroup *g, SimGroup *to)
{
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, sim.task_group);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        if (sim_group_lists(g, value)) {
            if (to == sim.root) {
                g_hash_table_iter_remove(&iter);
            } else {
                g_hash_table_iter_replace(&iter, to);
            }
        }
    }
}

static int
sim_rmdir(const char *path)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    Node node = sim_resolve(path);
    SimGroup *g = node.group;

    sim_set_status("ok\n");
    if (node.kind == NODE_NONE) {
        return -ENOENT;
    }
    if (node.kind != NODE_GROUP_DIR || g == sim.root) {
        return -EPERM;
    }
    if (g->is_ctrl) {
        sim_move_all(g, sim.root);
        sim.closids_used--;
        sim.rmids_used -= g_hash_table_size(g->children) + 1;
        g_hash_table_remove(sim.ctrl_groups, g->name);
    } else {
        sim_move_all(g, g->parent);
        sim.rmids_used--;
        g_hash_table_remove(g->parent->children, g->name);
    }
    return 0;
}

static const struct fuse_operations sim_ops = {
    .init = sim_init,
    .getattr = sim_getattr,
    .readdir = sim_readdir,
    .open = sim_open,
    .read = sim_read,
    .write = sim_write,
    .truncate = sim_truncate,
    .mkdir = sim_mkdir,
    .rmdir = sim_rmdir,
    /* .flock unset: the kernel then keeps flock(2) locks locally. */
};

/* ---- control socket ------------------------------------------------- */

typedef struct {
    const char *name;
    int err;
} SimErrno;

static const SimErrno sim_errnos[] = {
    {"EBUSY", EBUSY}, {"ENOSPC", ENOSPC}, {"EACCES", EACCES},
    {"EPERM", EPERM}, {"EIO", EIO},       {"EINVAL", EINVAL},
    {"ENOENT", ENOENT},
};

static int
sim_parse_errno(const char *name)
{
    guint i;

    for (i = 0; i < G_N_ELEMENTS(sim_errnos); i++) {
        if (g_str_equal(name, sim_errnos[i].name)) {
            return sim_errnos[i].err;
        }
    }
    return 0;
}

static gboolean
sim_parse_value(const char *text, SimValue *v)
{
    guint i;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < SIM_VALUE_LAST; i++) {
        if (sim_value_texts[i] && g_str_equal(text, sim_value_texts[i])) {
            v->kind = i;
            return TRUE;
        }
    }
    if (g_str_has_prefix(text, "errno:")) {
        v->kind = SIM_VALUE_ERRNO;
        v->err = sim_parse_errno(text + 6);
        return v->err != 0;
    }
    v->kind = SIM_VALUE_NUMBER;
    return g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT64, &v->number,
                                      NULL);
}

static SimGroup *
sim_find_group(const char *spec)
{
    g_autofree char *path = g_strconcat("/", spec, NULL);
    Node node;

    if (g_str_equal(spec, "/") || g_str_equal(spec, ".")) {
        return sim.root;
    }
    node = sim_resolve(path);
    return node.kind == NODE_GROUP_DIR ? node.group : NULL;
}

/* set GROUP DOMAIN|* FEATURE|* VALUE */
static char *
sim_cmd_set(char **argv)
{
    SimGroup *g = sim_find_group(argv[1]);
    gboolean all_domains = g_str_equal(argv[2], "*");
    gboolean all_features = g_str_equal(argv[3], "*");
    guint64 domain = 0;
    SimValue v;
    guint d, f;
    gboolean matched = FALSE;

    if (!g) {
        return g_strdup_printf("error no group '%s'", argv[1]);
    }
    if (!all_domains &&
        !g_ascii_string_to_unsigned(argv[2], 10, 0, sim.n_domains - 1,
                                    &domain, NULL)) {
        return g_strdup_printf("error no domain '%s'", argv[2]);
    }
    if (!sim_parse_value(argv[4], &v)) {
        return g_strdup_printf("error bad value '%s'", argv[4]);
    }
    for (f = 0; f < SIM_FEATURE_LAST; f++) {
        if (!all_features && !g_str_equal(argv[3], sim_feature_names[f])) {
            continue;
        }
        matched = TRUE;
        for (d = 0; d < sim.n_domains; d++) {
            if (all_domains || d == domain) {
                g->values[d * SIM_FEATURE_LAST + f] = v;
            }
        }
    }
    return matched ? g_strdup("ok")
                   : g_strdup_printf("error no feature '%s'", argv[3]);
}

/* mon-features none|NAME[,NAME...] */
static char *
sim_cmd_features(const char *list)
{
    g_auto(GStrv) names = g_strsplit(list, ",", -1);
    guint mask = 0, i, f;

    for (i = 0; names[i] && !g_str_equal(list, "none"); i++) {
        for (f = 0; f < SIM_FEATURE_LAST; f++) {
            if (g_str_equal(names[i], sim_feature_names[f])) {
                mask |= 1u << f;
                break;
            }
        }
        if (f == SIM_FEATURE_LAST) {
            return g_strdup_printf("error no feature '%s'", names[i]);
        }
    }
    sim.features = mask;
    return g_strdup("ok");
}

static char *
sim_command(const char *line)
{
    g_auto(GStrv) argv = g_strsplit_set(line, " \t", -1);
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sim.lock);
    guint argc = g_strv_length(argv);
    guint64 n;

    if (argc == 1 && g_str_equal(argv[0], "ping")) {
        return g_strdup("ok");
    }
    if (argc == 5 && g_str_equal(argv[0], "set")) {
        return sim_cmd_set(argv);
    }
    if (argc == 2 && g_str_equal(argv[0], "fail-next-mkdir")) {
        sim.fail_next_mkdir = sim_parse_errno(argv[1]);
        return g_strdup(sim.fail_next_mkdir ? "ok" : "error unknown errno");
    }
    if (argc == 2 && g_str_equal(argv[0], "mon-features")) {
        return sim_cmd_features(argv[1]);
    }
    if (argc == 2 && g_str_equal(argv[0], "l3-mon")) {
        sim.l3_mon = g_str_equal(argv[1], "on");
        return g_strdup("ok");
    }
    if (argc == 2 && g_str_equal(argv[0], "rmids") &&
        g_ascii_string_to_unsigned(argv[1], 10, 1, 4096, &n, NULL)) {
        sim.num_rmids = n;
        return g_strdup("ok");
    }
    return g_strdup_printf("error unknown command '%s'", line);
}

static gpointer
sim_control_thread(gpointer data)
{
    int listen_fd = GPOINTER_TO_INT(data);

    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        FILE *in, *out;
        char line[512];

        if (fd < 0) {
            continue;
        }
        in = fdopen(fd, "r");
        out = fdopen(dup(fd), "w");
        while (in && out && fgets(line, sizeof(line), in)) {
            g_autofree char *reply = sim_command(g_strstrip(line));

            fprintf(out, "%s\n", reply);
            fflush(out);
        }
        if (in) {
            fclose(in);
        }
        if (out) {
            fclose(out);
        }
    }
    return NULL;
}

static char *sim_control_path;

static int
sim_control_listen(const char *spec)
{
    g_autofree char *path = NULL;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    path = g_file_test(spec, G_FILE_TEST_IS_DIR)
               ? g_build_filename(spec, "control.sock", NULL)
               : g_strdup(spec);
    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_printerr("qph-resctrl-sim: control path %s is too long\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 4) < 0) {
        g_printerr("qph-resctrl-sim: cannot listen on %s: %s\n", path,
                   g_strerror(errno));
        return -1;
    }
    sim_control_path = g_steal_pointer(&path);
    return fd;
}

/* ---- main ----------------------------------------------------------- */

int
main(int argc, char **argv)
{
    g_autofree char *control = NULL;
    gint domains = 2, rmids = 8, closids = 4;
    gboolean exit_with_parent = FALSE;
    GOptionEntry entries[] = {
        {"control", 0, 0, G_OPTION_ARG_FILENAME, &control,
         "Unix socket (or directory for control.sock) taking commands",
         "PATH"},
        {"domains", 0, 0, G_OPTION_ARG_INT, &domains,
         "Number of L3 domains (default 2)", "N"},
        {"rmids", 0, 0, G_OPTION_ARG_INT, &rmids,
         "info/L3_MON/num_rmids (default 8)", "N"},
        {"closids", 0, 0, G_OPTION_ARG_INT, &closids,
         "CLOSIDs, root included (default 4)", "N"},
        {"exit-with-parent", 0, 0, G_OPTION_ARG_NONE, &exit_with_parent,
         "Unmount and exit when the parent process dies", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("MOUNTPOINT - simulated resctrl (monitoring)");
    g_autoptr(GError) error = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse *fuse;
    long ncpu = MAX(sysconf(_SC_NPROCESSORS_ONLN), 1);
    int ret;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 ||
        domains < 1 || domains > 100 || rmids < 1 || closids < 1) {
        g_printerr("qph-resctrl-sim: %s\n",
                   error ? error->message
                         : "usage: qph-resctrl-sim MOUNTPOINT [OPTION...]");
        return 2;
    }
    if (exit_with_parent) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) {
            return 1;
        }
    }

    sim.n_domains = domains;
    sim.num_rmids = rmids;
    sim.num_closids = closids;
    sim.rmids_used = 1;   /* the root group's */
    sim.closids_used = 1; /* the root group's */
    sim.l3_mon = TRUE;
    sim.features = (1u << SIM_FEATURE_LAST) - 1;
    sim.last_cmd_status = g_strdup("ok\n");
    sim.ctrl_groups =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, sim_group_free);
    sim.task_group = g_hash_table_new(g_direct_hash, g_direct_equal);
    sim.root = sim_group_new("", NULL, TRUE);
    g_free(sim.root->cpus);
    g_free(sim.root->cpus_list);
    sim.root->cpus_list = g_strdup_printf("0-%ld\n", ncpu - 1);
    sim.root->cpus = ncpu >= 64 ? g_strdup("ffffffffffffffff\n")
                                : g_strdup_printf("%lx\n", (1ul << ncpu) - 1);

    if (control) {
        int fd = sim_control_listen(control);

        if (fd < 0) {
            return 1;
        }
        g_thread_unref(
            g_thread_new("control", sim_control_thread, GINT_TO_POINTER(fd)));
    }

    fuse_opt_add_arg(&args, "qph-resctrl-sim");
    fuse_opt_add_arg(&args, "-o");
    fuse_opt_add_arg(&args, "fsname=resctrl,subtype=qph-resctrl-sim,"
                            "default_permissions,allow_other");
    fuse = fuse_new(&args, &sim_ops, sizeof(sim_ops), NULL);
    if (!fuse) {
        return 1;
    }
    if (fuse_mount(fuse, argv[1]) != 0) {
        fuse_destroy(fuse);
        return 1;
    }
    fuse_set_signal_handlers(fuse_get_session(fuse));
    /* Single-threaded: requests are served one at a time. */
    ret = fuse_loop(fuse);
    fuse_remove_signal_handlers(fuse_get_session(fuse));
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    fuse_opt_free_args(&args);
    if (sim_control_path) {
        unlink(sim_control_path);
    }
    return ret == 0 ? 0 : 1;
}
