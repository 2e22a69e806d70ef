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
 * Newer kernels' monitoring is modelled too, each behind an option so that
 * the old behaviour stays the default: counter assignment (--mbm-assign-mode,
 * Linux 6.18: info/L3_MON/{mbm_assign_mode,num_mbm_cntrs,available_mbm_cntrs,
 * mbm_assign_on_mkdir}, per-group mbm_L3_assignments with the kernel's
 * syntax and last_cmd_status texts, "Unassigned" reads, counters taken at
 * mkdir and given back at rmdir), Sub-NUMA Clustering (--snc: each
 * mon_L3_XX holds the sum and mon_sub_L3_YY per node) and the package
 * telemetry resource (--pkg-domains, Linux 7.0: info/PERF_PKG_MON and
 * mon_PERF_PKG_XX/{core_energy,activity}, printed as fixed-point decimals).
 *
 * What it does not model: new threads inheriting their creator's group (an
 * unknown thread is in the root group), RMID limbo (inject EBUSY instead),
 * schemata and allocation, switching mbm_assign_mode by writing it,
 * event_configs/, counter assignment combined with SNC sub-nodes.
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
    SIM_FEATURE_CORE_ENERGY,
    SIM_FEATURE_ACTIVITY,
    SIM_FEATURE_LAST,
} SimFeature;

typedef enum {
    SIM_RES_L3,       /* mon_L3_XX, info/L3_MON */
    SIM_RES_PERF_PKG, /* mon_PERF_PKG_XX, info/PERF_PKG_MON */
} SimResource;

/* The MBM events that need a counter in mbm_event mode, in the order the
 * kernel lists them in mbm_L3_assignments. */
#define SIM_N_MBM 2

static const struct {
    const char *name;
    SimResource res;
    int mbm;          /* index among the MBM events, -1 for others */
    gboolean decimal; /* printed as fixed-point, stored in millionths */
} sim_features[] = {
    [SIM_FEATURE_LLC_OCCUPANCY] = {"llc_occupancy", SIM_RES_L3, -1, FALSE},
    [SIM_FEATURE_MBM_TOTAL_BYTES] = {"mbm_total_bytes", SIM_RES_L3, 0, FALSE},
    [SIM_FEATURE_MBM_LOCAL_BYTES] = {"mbm_local_bytes", SIM_RES_L3, 1, FALSE},
    /* Joules and Farads with 18 fraction bits: six decimal places. */
    [SIM_FEATURE_CORE_ENERGY] = {"core_energy", SIM_RES_PERF_PKG, -1, TRUE},
    [SIM_FEATURE_ACTIVITY] = {"activity", SIM_RES_PERF_PKG, -1, TRUE},
};
G_STATIC_ASSERT(G_N_ELEMENTS(sim_features) == SIM_FEATURE_LAST);

static const SimFeature sim_mbm_features[SIM_N_MBM] = {
    SIM_FEATURE_MBM_TOTAL_BYTES,
    SIM_FEATURE_MBM_LOCAL_BYTES,
};

typedef enum {
    SIM_ASSIGN_NONE,      /* a kernel before 6.18: no files at all */
    SIM_ASSIGN_DEFAULT,   /* "mbm_event\n[default]" */
    SIM_ASSIGN_MBM_EVENT, /* "[mbm_event]\ndefault" */
} SimAssignMode;

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
    SimValue *values;   /* n_slots * SIM_FEATURE_LAST; a slot is an SNC
                         * node for L3 events, a package for PERF_PKG */
    gboolean *assigned; /* n_domains * SIM_N_MBM: holds a counter */
};

static struct {
    GMutex lock;
    SimGroup *root;
    GHashTable *ctrl_groups; /* name -> SimGroup */
    GHashTable *task_group;  /* tid -> SimGroup, absent means the root */
    guint n_domains;
    guint snc;      /* nodes per L3 domain, 1 without SNC */
    guint n_pkg;    /* package domains, 0 without PERF_PKG */
    guint n_slots;  /* MAX(n_domains * snc, n_pkg) */
    SimAssignMode assign_mode;
    guint num_cntrs;   /* per L3 domain */
    guint *cntrs_used; /* per L3 domain */
    gboolean assign_on_mkdir;
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
    g_free(g->assigned);
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
    g->values = g_new0(SimValue, sim.n_slots * SIM_FEATURE_LAST);
    g->assigned = g_new0(gboolean, sim.n_domains * SIM_N_MBM);
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

/* rdt_last_cmd_printf() appends within one command. */
static void
sim_append_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
sim_append_status(const char *fmt, ...)
{
    g_autofree char *more = NULL;
    char *all;
    va_list ap;

    va_start(ap, fmt);
    more = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    all = g_str_equal(sim.last_cmd_status, "ok\n")
              ? g_strdup(more)
              : g_strconcat(sim.last_cmd_status, more, NULL);
    g_free(sim.last_cmd_status);
    sim.last_cmd_status = all;
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

static gboolean
sim_mbm_event_mode(void)
{
    return sim.assign_mode == SIM_ASSIGN_MBM_EVENT;
}

/* Does @g's event @f in L3 domain @d count?  Only MBM events in mbm_event
 * mode can be without a counter. */
static gboolean
sim_counts(SimGroup *g, SimFeature f, guint d)
{
    int m = sim_features[f].mbm;

    return m < 0 || !sim_mbm_event_mode() || g->assigned[d * SIM_N_MBM + m];
}

static SimValue
sim_unassigned(void)
{
    return (SimValue){SIM_VALUE_UNASSIGNED, 0, 0};
}

/* One slot's value.  A CTRL_MON group counts its own RMID plus its MON
 * groups', like the kernel; with counter assignment only the parts that
 * hold a counter add up, and "Unassigned" means that none does. */
static SimValue
sim_slot_value(SimGroup *g, guint d, guint slot, SimFeature f)
{
    SimValue v = g->values[slot * SIM_FEATURE_LAST + f];
    SimValue sum = {SIM_VALUE_NUMBER, 0, 0};
    gboolean any = FALSE;
    GHashTableIter iter;
    gpointer child;

    if (!g->is_ctrl) {
        return sim_counts(g, f, d) ? v : sim_unassigned();
    }
    if (sim_counts(g, f, d)) {
        if (v.kind != SIM_VALUE_NUMBER) {
            return v;
        }
        sum.number = v.number;
        any = TRUE;
    }
    g_hash_table_iter_init(&iter, g->children);
    while (g_hash_table_iter_next(&iter, NULL, &child)) {
        SimValue c = sim_slot_value(child, d, slot, f);

        if (c.kind == SIM_VALUE_UNASSIGNED) {
            continue;
        }
        if (c.kind != SIM_VALUE_NUMBER) {
            return c;
        }
        sum.number += c.number;
        any = TRUE;
    }
    return any ? sum : sim_unassigned();
}

/* The value of mon_L3_XX/<f> (@node < 0: the sum over the domain's SNC
 * nodes), mon_L3_XX/mon_sub_L3_YY/<f> (@node: YY) or mon_PERF_PKG_XX/<f>. */
static SimValue
sim_group_value(SimGroup *g, guint domain, int node, SimFeature f)
{
    SimValue sum = {SIM_VALUE_NUMBER, 0, 0};
    guint k;

    if (sim_features[f].res == SIM_RES_PERF_PKG) {
        return sim_slot_value(g, 0, domain, f);
    }
    if (node >= 0) {
        return sim_slot_value(g, domain, node, f);
    }
    for (k = 0; k < sim.snc; k++) {
        SimValue v = sim_slot_value(g, domain, domain * sim.snc + k, f);

        if (v.kind != SIM_VALUE_NUMBER) {
            return v;
        }
        sum.number += v.number;
    }
    return sum;
}

/* ---- counters (mbm_event mode) -------------------------------------- */

static gboolean
sim_feature_enabled(SimFeature f)
{
    return (sim.features & (1u << f)) != 0;
}

/* rdtgroup_alloc_assign_cntr(): nothing to do if assigned already. */
static int
sim_assign(SimGroup *g, guint m, guint d)
{
    gboolean *a = &g->assigned[d * SIM_N_MBM + m];

    if (*a) {
        return 0;
    }
    if (sim.cntrs_used[d] >= sim.num_cntrs) {
        sim_append_status("Failed to allocate counter for %s in domain %u\n",
                          sim_features[sim_mbm_features[m]].name, d);
        return -ENOSPC;
    }
    sim.cntrs_used[d]++;
    *a = TRUE;
    return 0;
}

static void
sim_unassign(SimGroup *g, guint m, guint d)
{
    gboolean *a = &g->assigned[d * SIM_N_MBM + m];

    if (*a) {
        *a = FALSE;
        sim.cntrs_used[d]--;
    }
}

/* rdtgroup_assign_cntr_event() for all domains: stops at the first domain
 * without a free counter, leaving the earlier ones assigned. */
static int
sim_assign_all(SimGroup *g, guint m)
{
    guint d;
    int err;

    for (d = 0; d < sim.n_domains; d++) {
        err = sim_assign(g, m, d);
        if (err) {
            return err;
        }
    }
    return 0;
}

/* rdtgroup_assign_cntrs() at mkdir: failures do not fail the mkdir. */
static void
sim_assign_on_mkdir(SimGroup *g)
{
    guint m;

    if (!sim_mbm_event_mode() || !sim.assign_on_mkdir) {
        return;
    }
    for (m = 0; m < SIM_N_MBM; m++) {
        if (sim_feature_enabled(sim_mbm_features[m])) {
            sim_assign_all(g, m);
        }
    }
}

static void
sim_unassign_group(SimGroup *g)
{
    GHashTableIter iter;
    gpointer child;
    guint m, d;

    for (m = 0; m < SIM_N_MBM; m++) {
        for (d = 0; d < sim.n_domains; d++) {
            sim_unassign(g, m, d);
        }
    }
    if (g->is_ctrl) {
        g_hash_table_iter_init(&iter, g->children);
        while (g_hash_table_iter_next(&iter, NULL, &child)) {
            sim_unassign_group(child);
        }
    }
}

static char *
sim_assignments_text(SimGroup *g)
{
    GString *s = g_string_new(NULL);
    guint m, d;

    for (m = 0; m < SIM_N_MBM; m++) {
        if (!sim_feature_enabled(sim_mbm_features[m])) {
            continue;
        }
        g_string_append_printf(s, "%s:", sim_features[sim_mbm_features[m]].name);
        for (d = 0; d < sim.n_domains; d++) {
            g_string_append_printf(s, "%s%u=%c", d ? ";" : "", d,
                                   g->assigned[d * SIM_N_MBM + m] ? 'e' : '_');
        }
        g_string_append_c(s, '\n');
    }
    return g_string_free(s, FALSE);
}

/* rdtgroup_modify_assign_state(): @d < 0 for every domain. */
static int
sim_modify_assign_state(SimGroup *g, guint m, int d, const char *state)
{
    guint i;

    if (!state || strlen(state) != 1) {
        return -EINVAL;
    }
    if (*state == 'e') {
        return d < 0 ? sim_assign_all(g, m) : sim_assign(g, m, d);
    }
    if (*state == '_') {
        for (i = 0; i < sim.n_domains; i++) {
            if (d < 0 || (guint)d == i) {
                sim_unassign(g, m, i);
            }
        }
        return 0;
    }
    return -EINVAL;
}

/* resctrl_parse_mbm_assignment(): one line, EVENT:ID=STATE[;ID=STATE...],
 * applied domain by domain; a failure leaves the earlier ones done. */
static int
sim_parse_assignment(SimGroup *g, char *event, char *tok)
{
    guint m;

    for (m = 0; m < SIM_N_MBM; m++) {
        if (sim_feature_enabled(sim_mbm_features[m]) &&
            g_str_equal(event, sim_features[sim_mbm_features[m]].name)) {
            break;
        }
    }
    if (m == SIM_N_MBM) {
        sim_append_status("Invalid event %s\n", event);
        return -ENOENT;
    }
    while (tok && tok[0] != '\0') {
        char *dom_str = g_strstrip(strsep(&tok, ";"));
        char *id_str = strsep(&dom_str, "=");
        guint64 id;
        int err;

        if (id_str && *id_str == '*') {
            err = sim_modify_assign_state(g, m, -1, dom_str);
            if (err) {
                sim_append_status("Assign operation '%s:*=%s' failed\n", event,
                                  dom_str ? dom_str : "(null)");
            }
            return err;
        }
        if (!id_str || !g_ascii_isdigit(id_str[0]) ||
            !g_ascii_string_to_unsigned(id_str, 10, 0, G_MAXUINT32, &id,
                                        NULL)) {
            sim_append_status("Missing domain id\n");
            return -EINVAL;
        }
        if (id >= sim.n_domains) {
            sim_append_status("Invalid domain id %" G_GUINT64_FORMAT "\n", id);
            return -EINVAL;
        }
        err = sim_modify_assign_state(g, m, id, dom_str);
        if (err) {
            sim_append_status("Assign operation '%s:%" G_GUINT64_FORMAT
                              "=%s' failed\n",
                              event, id, dom_str ? dom_str : "(null)");
            return err;
        }
    }
    return 0;
}

#define SIM_NOT_MBM_EVENT "mbm_event counter assignment mode is not enabled\n"

/* mbm_L3_assignments_write(): lines, each ending in a newline. */
static int
sim_write_assignments(SimGroup *g, const char *buf, size_t size)
{
    g_autofree char *copy = NULL;
    char *rest, *token;
    int err = 0;

    if (size == 0 || buf[size - 1] != '\n') {
        return -EINVAL;
    }
    sim_set_status("ok\n");
    if (!sim_mbm_event_mode()) {
        sim_set_status(SIM_NOT_MBM_EVENT);
        return -EINVAL;
    }
    copy = g_strndup(buf, size - 1);
    rest = copy;
    while ((token = strsep(&rest, "\n")) != NULL) {
        char *event = strsep(&token, ":");

        err = sim_parse_assignment(g, event, token);
        if (err) {
            break;
        }
    }
    return err ? err : (int)size;
}

/* "0=32;1=32" */
static char *
sim_domain_list(const guint *per_domain, gboolean free_ones)
{
    GString *s = g_string_new(NULL);
    guint d;

    for (d = 0; d < sim.n_domains; d++) {
        g_string_append_printf(s, "%s%u=%u", d ? ";" : "", d,
                               free_ones ? sim.num_cntrs - per_domain[d]
                                         : sim.num_cntrs);
    }
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}

/* ---- paths ---------------------------------------------------------- */

typedef enum {
    NODE_NONE,
    NODE_GROUP_DIR,
    NODE_MON_GROUPS_DIR,
    NODE_MON_DATA_DIR,
    NODE_DOMAIN_DIR,     /* mon_L3_XX */
    NODE_SUB_DIR,        /* mon_L3_XX/mon_sub_L3_YY */
    NODE_PKG_DIR,        /* mon_PERF_PKG_XX */
    NODE_VALUE,
    NODE_TASKS,
    NODE_CPUS,
    NODE_CPUS_LIST,
    NODE_ASSIGNMENTS,    /* mbm_L3_assignments */
    NODE_INFO_DIR,
    NODE_L3_MON_DIR,
    NODE_PKG_MON_DIR,    /* info/PERF_PKG_MON */
    NODE_LAST_CMD_STATUS,
    NODE_NUM_RMIDS,
    NODE_MON_FEATURES,
    NODE_MAX_THRESHOLD,
    NODE_ASSIGN_MODE,    /* info/L3_MON/mbm_assign_mode */
    NODE_NUM_CNTRS,      /* info/L3_MON/num_mbm_cntrs */
    NODE_AVAIL_CNTRS,    /* info/L3_MON/available_mbm_cntrs */
    NODE_ASSIGN_ON_MKDIR, /* info/L3_MON/mbm_assign_on_mkdir */
} NodeKind;

typedef struct {
    NodeKind kind;
    SimGroup *group;
    guint domain;
    int node; /* the YY of mon_sub_L3_YY, -1 elsewhere */
    SimFeature feature;
    SimResource res; /* of NODE_MON_FEATURES, NODE_NUM_RMIDS */
} Node;

static gboolean
sim_is_reserved(const char *name)
{
    return g_str_equal(name, "info") || g_str_equal(name, "mon_groups") ||
           g_str_equal(name, "mon_data") || g_str_equal(name, "tasks") ||
           g_str_equal(name, "cpus") || g_str_equal(name, "cpus_list") ||
           g_str_equal(name, "mbm_L3_assignments");
}

/* PREFIX followed by the id as the kernel prints it ("%02d"). */
static gboolean
sim_parse_id(const char *name, const char *prefix, guint n, guint *id)
{
    guint64 v;
    char buf[32];

    if (!g_str_has_prefix(name, prefix) || n == 0 ||
        !g_ascii_string_to_unsigned(name + strlen(prefix), 10, 0, n - 1, &v,
                                    NULL)) {
        return FALSE;
    }
    g_snprintf(buf, sizeof(buf), "%s%02u", prefix, (guint)v);
    *id = v;
    return g_str_equal(buf, name);
}

static gboolean
sim_assign_supported(void)
{
    return sim.l3_mon && sim.assign_mode != SIM_ASSIGN_NONE;
}

static Node
sim_resolve_info(char **c, guint n)
{
    static const struct {
        const char *name;
        NodeKind kind;
        gboolean assign; /* only with counter assignment support */
    } l3_files[] = {
        {"num_rmids", NODE_NUM_RMIDS, FALSE},
        {"mon_features", NODE_MON_FEATURES, FALSE},
        {"max_threshold_occupancy", NODE_MAX_THRESHOLD, FALSE},
        {"mbm_assign_mode", NODE_ASSIGN_MODE, TRUE},
        {"num_mbm_cntrs", NODE_NUM_CNTRS, TRUE},
        {"available_mbm_cntrs", NODE_AVAIL_CNTRS, TRUE},
        {"mbm_assign_on_mkdir", NODE_ASSIGN_ON_MKDIR, TRUE},
    };
    Node node = {NODE_NONE, .node = -1};
    guint i;

    if (n == 1) {
        node.kind = NODE_INFO_DIR;
    } else if (n == 2 && g_str_equal(c[1], "last_cmd_status")) {
        node.kind = NODE_LAST_CMD_STATUS;
    } else if (sim.l3_mon && g_str_equal(c[1], "L3_MON")) {
        node.res = SIM_RES_L3;
        if (n == 2) {
            node.kind = NODE_L3_MON_DIR;
        }
        for (i = 0; n == 3 && i < G_N_ELEMENTS(l3_files); i++) {
            if (g_str_equal(c[2], l3_files[i].name) &&
                (!l3_files[i].assign || sim_assign_supported())) {
                node.kind = l3_files[i].kind;
            }
        }
    } else if (sim.n_pkg > 0 && g_str_equal(c[1], "PERF_PKG_MON")) {
        node.res = SIM_RES_PERF_PKG;
        if (n == 2) {
            node.kind = NODE_PKG_MON_DIR;
        } else if (n == 3 && g_str_equal(c[2], "num_rmids")) {
            node.kind = NODE_NUM_RMIDS;
        } else if (n == 3 && g_str_equal(c[2], "mon_features")) {
            node.kind = NODE_MON_FEATURES;
        }
    }
    return node;
}

/* An event file of resource @res named @name, in @node. */
static void
sim_resolve_value(Node *node, SimResource res, const char *name)
{
    guint f;

    for (f = 0; f < SIM_FEATURE_LAST; f++) {
        if (sim_features[f].res == res && sim_feature_enabled(f) &&
            g_str_equal(name, sim_features[f].name)) {
            node->kind = NODE_VALUE;
            node->feature = f;
        }
    }
}

static Node
sim_resolve_mon_data(SimGroup *g, char **c, guint n)
{
    Node node = {NODE_NONE, g, .node = -1};
    guint id;

    if (n == 1) {
        node.kind = NODE_MON_DATA_DIR;
    } else if (sim.l3_mon &&
               sim_parse_id(c[1], "mon_L3_", sim.n_domains, &node.domain)) {
        if (n == 2) {
            node.kind = NODE_DOMAIN_DIR;
        } else if (n == 3) {
            sim_resolve_value(&node, SIM_RES_L3, c[2]);
        }
        if (node.kind == NODE_NONE && sim.snc > 1 && n >= 3 &&
            sim_parse_id(c[2], "mon_sub_L3_", sim.n_domains * sim.snc, &id) &&
            id / sim.snc == node.domain) {
            node.node = id;
            if (n == 3) {
                node.kind = NODE_SUB_DIR;
            } else if (n == 4) {
                sim_resolve_value(&node, SIM_RES_L3, c[3]);
            }
        }
    } else if (sim_parse_id(c[1], "mon_PERF_PKG_", sim.n_pkg, &node.domain)) {
        if (n == 2) {
            node.kind = NODE_PKG_DIR;
        } else if (n == 3) {
            sim_resolve_value(&node, SIM_RES_PERF_PKG, c[2]);
        }
    }
    return node;
}

static Node
sim_resolve_in_group(SimGroup *g, char **c, guint n)
{
    Node node = {NODE_NONE, g, .node = -1};

    if (n == 0) {
        node.kind = NODE_GROUP_DIR;
    } else if (n == 1 && g_str_equal(c[0], "tasks")) {
        node.kind = NODE_TASKS;
    } else if (n == 1 && g_str_equal(c[0], "cpus")) {
        node.kind = NODE_CPUS;
    } else if (n == 1 && g_str_equal(c[0], "cpus_list")) {
        node.kind = NODE_CPUS_LIST;
    } else if (n == 1 && g_str_equal(c[0], "mbm_L3_assignments") &&
               sim_assign_supported()) {
        node.kind = NODE_ASSIGNMENTS;
    } else if ((sim.l3_mon || sim.n_pkg > 0) && g_str_equal(c[0], "mon_data")) {
        node = sim_resolve_mon_data(g, c, n);
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
            return (Node){NODE_NONE, .node = -1};
        }
        i = 1;
    }
    if (i < n && sim.l3_mon && g_str_equal(c[i], "mon_groups")) {
        if (i + 1 == n) {
            return (Node){NODE_MON_GROUPS_DIR, g, .node = -1};
        }
        g = g_hash_table_lookup(g->children, c[i + 1]);
        if (!g) {
            return (Node){NODE_NONE, .node = -1};
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
           kind == NODE_SUB_DIR || kind == NODE_PKG_DIR ||
           kind == NODE_INFO_DIR || kind == NODE_L3_MON_DIR ||
           kind == NODE_PKG_MON_DIR;
}

static char *
sim_value_text(SimFeature f, SimValue v, int *err)
{
    if (v.kind == SIM_VALUE_ERRNO) {
        *err = v.err;
        return NULL;
    }
    if (v.kind != SIM_VALUE_NUMBER) {
        return g_strdup_printf("%s\n", sim_value_texts[v.kind]);
    }
    if (sim_features[f].decimal) {
        return g_strdup_printf("%" G_GUINT64_FORMAT ".%06u\n",
                               v.number / 1000000, (guint)(v.number % 1000000));
    }
    return g_strdup_printf("%" G_GUINT64_FORMAT "\n", v.number);
}

/* The files only mbm_event mode lets one read. */
static char *
sim_mbm_event_only(char *text, int *err)
{
    sim_set_status("ok\n");
    if (!sim_mbm_event_mode()) {
        g_free(text);
        sim_set_status(SIM_NOT_MBM_EVENT);
        *err = EINVAL;
        return NULL;
    }
    return text;
}

/* Contents of a file node, or NULL with *err set (read fails). */
static char *
sim_node_text(const Node *node, int *err)
{
    GString *s;
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
            if (sim_features[f].res == node->res && sim_feature_enabled(f)) {
                g_string_append_printf(s, "%s\n", sim_features[f].name);
            }
        }
        return g_string_free(s, FALSE);
    case NODE_ASSIGN_MODE:
        return g_strdup(sim_mbm_event_mode() ? "[mbm_event]\ndefault\n"
                                             : "mbm_event\n[default]\n");
    case NODE_NUM_CNTRS:
        return sim_domain_list(sim.cntrs_used, FALSE);
    case NODE_AVAIL_CNTRS:
        return sim_mbm_event_only(sim_domain_list(sim.cntrs_used, TRUE), err);
    case NODE_ASSIGN_ON_MKDIR:
        return sim_mbm_event_only(
            g_strdup_printf("%u\n", sim.assign_on_mkdir ? 1 : 0), err);
    case NODE_ASSIGNMENTS:
        return sim_mbm_event_only(sim_assignments_text(node->group), err);
    case NODE_VALUE:
        return sim_value_text(node->feature,
                              sim_group_value(node->group, node->domain,
                                              node->node, node->feature),
                              err);
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
               node.kind == NODE_CPUS_LIST || node.kind == NODE_ASSIGNMENTS ||
               node.kind == NODE_ASSIGN_ON_MKDIR ||
               node.kind == NODE_ASSIGN_MODE) {
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
    char name[32];
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
        if (sim_assign_supported()) {
            fill(buf, "mbm_L3_assignments", NULL, 0, 0);
        }
        if (sim.l3_mon || sim.n_pkg > 0) {
            fill(buf, "mon_data", NULL, 0, 0);
        }
        if (sim.l3_mon && node.group->is_ctrl) {
            fill(buf, "mon_groups", NULL, 0, 0);
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
        for (i = 0; sim.l3_mon && i < sim.n_domains; i++) {
            g_snprintf(name, sizeof(name), "mon_L3_%02u", i);
            fill(buf, name, NULL, 0, 0);
        }
        for (i = 0; i < sim.n_pkg; i++) {
            g_snprintf(name, sizeof(name), "mon_PERF_PKG_%02u", i);
            fill(buf, name, NULL, 0, 0);
        }
        break;
    case NODE_DOMAIN_DIR:
    case NODE_SUB_DIR:
    case NODE_PKG_DIR:
        for (i = 0; i < SIM_FEATURE_LAST; i++) {
            if (sim_feature_enabled(i) &&
                sim_features[i].res == (node.kind == NODE_PKG_DIR
                                            ? SIM_RES_PERF_PKG
                                            : SIM_RES_L3)) {
                fill(buf, sim_features[i].name, NULL, 0, 0);
            }
        }
        for (i = 0; node.kind == NODE_DOMAIN_DIR && sim.snc > 1 && i < sim.snc;
             i++) {
            g_snprintf(name, sizeof(name), "mon_sub_L3_%02u",
                       node.domain * sim.snc + i);
            fill(buf, name, NULL, 0, 0);
        }
        break;
    case NODE_INFO_DIR:
        fill(buf, "last_cmd_status", NULL, 0, 0);
        if (sim.l3_mon) {
            fill(buf, "L3_MON", NULL, 0, 0);
        }
        if (sim.n_pkg > 0) {
            fill(buf, "PERF_PKG_MON", NULL, 0, 0);
        }
        break;
    case NODE_L3_MON_DIR:
        fill(buf, "num_rmids", NULL, 0, 0);
        fill(buf, "mon_features", NULL, 0, 0);
        fill(buf, "max_threshold_occupancy", NULL, 0, 0);
        if (sim_assign_supported()) {
            fill(buf, "mbm_assign_mode", NULL, 0, 0);
            fill(buf, "num_mbm_cntrs", NULL, 0, 0);
            fill(buf, "available_mbm_cntrs", NULL, 0, 0);
            fill(buf, "mbm_assign_on_mkdir", NULL, 0, 0);
        }
        break;
    case NODE_PKG_MON_DIR:
        fill(buf, "num_rmids", NULL, 0, 0);
        fill(buf, "mon_features", NULL, 0, 0);
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
    gboolean on;

    if (node.kind == NODE_ASSIGNMENTS) {
        return sim_write_assignments(node.group, buf, size);
    }
    sim_set_status("ok\n");
    switch (node.kind) {
    case NODE_ASSIGN_ON_MKDIR:
        /* kstrtobool(): 1/0, y/n, on/off; mbm_event mode or not. */
        if (size >= 1 && strchr("1yYtT", buf[0])) {
            on = TRUE;
        } else if (size >= 1 && strchr("0nNfF", buf[0])) {
            on = FALSE;
        } else if (size >= 2 && (buf[0] == 'o' || buf[0] == 'O') &&
                   strchr("nNfF", buf[1])) {
            on = buf[1] == 'n' || buf[1] == 'N';
        } else {
            return -EINVAL;
        }
        sim.assign_on_mkdir = on;
        return size;
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
    sim_assign_on_mkdir(g);
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
    sim_unassign_group(g);
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

/* "12" or, for @decimal events, "12.5" (stored in millionths). */
static gboolean
sim_parse_number(const char *text, gboolean decimal, guint64 *out)
{
    g_auto(GStrv) parts = g_strsplit(text, ".", 2);
    guint64 whole, frac = 0;
    gsize n_frac = parts[1] ? strlen(parts[1]) : 0;

    if (!g_ascii_isdigit(parts[0][0]) ||
        !g_ascii_string_to_unsigned(parts[0], 10, 0, G_MAXUINT64, &whole,
                                    NULL)) {
        return FALSE;
    }
    if (!decimal) {
        *out = whole;
        return parts[1] == NULL;
    }
    if (parts[1] && (n_frac == 0 || n_frac > 6 ||
                     !g_ascii_string_to_unsigned(parts[1], 10, 0, 999999,
                                                 &frac, NULL))) {
        return FALSE;
    }
    while (n_frac++ < 6) {
        frac *= 10;
    }
    if (whole > (G_MAXUINT64 - frac) / 1000000) {
        return FALSE;
    }
    *out = whole * 1000000 + frac;
    return TRUE;
}

static gboolean
sim_parse_value(const char *text, SimFeature f, SimValue *v)
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
    return sim_parse_number(text, sim_features[f].decimal, &v->number);
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

static guint
sim_n_domains_of(SimFeature f)
{
    return sim_features[f].res == SIM_RES_PERF_PKG ? sim.n_pkg : sim.n_domains;
}

/* set GROUP DOMAIN|* FEATURE|* VALUE: with SNC the domain's first node
 * gets VALUE and its other nodes 0, so the L3 file reads VALUE. */
static char *
sim_cmd_set(char **argv)
{
    SimGroup *g = sim_find_group(argv[1]);
    gboolean all_domains = g_str_equal(argv[2], "*");
    gboolean all_features = g_str_equal(argv[3], "*");
    guint64 domain = 0;
    SimValue v;
    guint d, f, k;
    gboolean matched = FALSE, in_range = all_domains;

    if (!g) {
        return g_strdup_printf("error no group '%s'", argv[1]);
    }
    if (!all_domains &&
        !g_ascii_string_to_unsigned(argv[2], 10, 0, G_MAXUINT32, &domain,
                                    NULL)) {
        return g_strdup_printf("error no domain '%s'", argv[2]);
    }
    for (f = 0; f < SIM_FEATURE_LAST; f++) {
        if (!all_features && !g_str_equal(argv[3], sim_features[f].name)) {
            continue;
        }
        matched = TRUE;
        if (!sim_parse_value(argv[4], f, &v)) {
            return g_strdup_printf("error bad value '%s'", argv[4]);
        }
        for (d = 0; d < sim_n_domains_of(f); d++) {
            SimValue zero = {SIM_VALUE_NUMBER, 0, 0};

            if (!all_domains && d != domain) {
                continue;
            }
            in_range = TRUE;
            if (sim_features[f].res == SIM_RES_PERF_PKG) {
                g->values[d * SIM_FEATURE_LAST + f] = v;
                continue;
            }
            for (k = 0; k < sim.snc; k++) {
                g->values[(d * sim.snc + k) * SIM_FEATURE_LAST + f] =
                    k == 0 ? v : zero;
            }
        }
    }
    if (!matched) {
        return g_strdup_printf("error no feature '%s'", argv[3]);
    }
    return in_range ? g_strdup("ok")
                    : g_strdup_printf("error no domain '%s'", argv[2]);
}

/* set-node GROUP NODE FEATURE VALUE: one SNC node of an L3 event. */
static char *
sim_cmd_set_node(char **argv)
{
    SimGroup *g = sim_find_group(argv[1]);
    guint64 node;
    SimValue v;
    guint f;

    if (!g) {
        return g_strdup_printf("error no group '%s'", argv[1]);
    }
    if (!g_ascii_string_to_unsigned(argv[2], 10, 0,
                                    sim.n_domains * sim.snc - 1, &node,
                                    NULL)) {
        return g_strdup_printf("error no node '%s'", argv[2]);
    }
    for (f = 0; f < SIM_FEATURE_LAST; f++) {
        if (sim_features[f].res == SIM_RES_L3 &&
            g_str_equal(argv[3], sim_features[f].name)) {
            if (!sim_parse_value(argv[4], f, &v)) {
                return g_strdup_printf("error bad value '%s'", argv[4]);
            }
            g->values[node * SIM_FEATURE_LAST + f] = v;
            return g_strdup("ok");
        }
    }
    return g_strdup_printf("error no feature '%s'", argv[3]);
}

/* mon-features none|NAME[,NAME...] */
static char *
sim_cmd_features(const char *list)
{
    g_auto(GStrv) names = g_strsplit(list, ",", -1);
    guint mask = 0, i, f;

    for (i = 0; names[i] && !g_str_equal(list, "none"); i++) {
        for (f = 0; f < SIM_FEATURE_LAST; f++) {
            if (g_str_equal(names[i], sim_features[f].name)) {
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
    if (argc == 5 && g_str_equal(argv[0], "set-node")) {
        return sim_cmd_set_node(argv);
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
    gint domains = 2, rmids = 8, closids = 4, counters = 32, snc = 1, pkgs = 0;
    g_autofree char *assign_mode = NULL;
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
        {"mbm-assign-mode", 0, 0, G_OPTION_ARG_STRING, &assign_mode,
         "Counter assignment as Linux 6.18+: mbm_event or default (absent: "
         "a kernel without it)",
         "MODE"},
        {"mbm-counters", 0, 0, G_OPTION_ARG_INT, &counters,
         "info/L3_MON/num_mbm_cntrs per domain (default 32)", "N"},
        {"snc", 0, 0, G_OPTION_ARG_INT, &snc,
         "Sub-NUMA nodes per L3 domain (default 1: no SNC)", "N"},
        {"pkg-domains", 0, 0, G_OPTION_ARG_INT, &pkgs,
         "Packages with PERF_PKG energy telemetry (default 0: none)", "N"},
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
        domains < 1 || domains > 100 || rmids < 1 || closids < 1 ||
        counters < 0 || counters > 4096 || snc < 1 || snc > 8 || pkgs < 0 ||
        pkgs > 100 ||
        (assign_mode && !g_str_equal(assign_mode, "mbm_event") &&
         !g_str_equal(assign_mode, "default"))) {
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
    sim.snc = snc;
    sim.n_pkg = pkgs;
    sim.n_slots = MAX((guint)(domains * snc), (guint)pkgs);
    sim.assign_mode = !assign_mode ? SIM_ASSIGN_NONE
                      : g_str_equal(assign_mode, "mbm_event")
                          ? SIM_ASSIGN_MBM_EVENT
                          : SIM_ASSIGN_DEFAULT;
    sim.num_cntrs = counters;
    sim.cntrs_used = g_new0(guint, domains);
    sim.assign_on_mkdir = TRUE;
    sim.num_rmids = rmids;
    sim.num_closids = closids;
    sim.rmids_used = 1;   /* the root group's */
    sim.closids_used = 1; /* the root group's */
    sim.l3_mon = TRUE;
    sim.features = (1u << SIM_FEATURE_CORE_ENERGY) - 1;
    if (pkgs > 0) {
        sim.features |= (1u << SIM_FEATURE_CORE_ENERGY) |
                        (1u << SIM_FEATURE_ACTIVITY);
    }
    sim.last_cmd_status = g_strdup("ok\n");
    sim.ctrl_groups =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, sim_group_free);
    sim.task_group = g_hash_table_new(g_direct_hash, g_direct_equal);
    sim.root = sim_group_new("", NULL, TRUE);
    /* As in the documentation's example, the default group holds a
     * counter per MBM event and domain from the mount on. */
    sim_assign_on_mkdir(sim.root);
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
