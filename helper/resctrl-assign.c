/*
 * resctrl-assign.c: the hardware counters of the helper's resctrl group
 *
 * Since Linux 6.18 resctrl can run in "mbm_event" counter assignment mode
 * (info/L3_MON/mbm_assign_mode reads "[mbm_event]"; on AMD parts with ABMC
 * it is the default): an MBM event of a group (mbm_total_bytes,
 * mbm_local_bytes) counts only while a hardware counter is assigned to it,
 * and an L3 domain has few of them (info/L3_MON/num_mbm_cntrs).  A group
 * made with mkdir gets counters while info/L3_MON/mbm_assign_on_mkdir is 1
 * and counters remain; the group's mbm_L3_assignments file lists them
 * ("mbm_total_bytes:0=e;1=_") and changes them ("mbm_total_bytes:1=e\n").
 *
 * The helper's group holds exactly the counters of its enabled MBM events:
 * qph_resctrl_mon_assign() takes the missing ones, all or nothing (one
 * domain per write, so that a failure is undone exactly, where the kernel's
 * "*" would leave earlier domains assigned), and qph_resctrl_mon_release()
 * gives back the others, including those mkdir assigned.  A group that is
 * not the helper's (libvirt's) is never written.  In "default" mode and on
 * older kernels there is nothing to do.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define QPH_RESCTRL_ALLOW_PRIV
#include "helper/resctrl-priv.h"
#include "qmp/qmp-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Which MBM event, domain: one change the helper made. */
typedef struct {
    QphResctrlFeature feature;
    guint domain;
} AssignStep;

/**
 * qph_resctrl_parse_assign_mode - the mode marked in mbm_assign_mode's text
 * @text: "[mbm_event]\ndefault\n" or "mbm_event\n[default]\n"; NULL when
 *   the file does not exist
 *
 * Returns: the mode in brackets; QPH_RESCTRL_ASSIGN_NONE for NULL,
 * QPH_RESCTRL_ASSIGN_DEFAULT when no known mode is marked.
 */
QphResctrlAssignMode
qph_resctrl_parse_assign_mode(const char *text)
{
    g_auto(GStrv) lines = NULL;
    guint i;

    if (!text) {
        return QPH_RESCTRL_ASSIGN_NONE;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_str_equal(g_strstrip(lines[i]), "[mbm_event]")) {
            return QPH_RESCTRL_ASSIGN_MBM_EVENT;
        }
    }
    return QPH_RESCTRL_ASSIGN_DEFAULT;
}

/**
 * qph_resctrl_assign_mode - the counter assignment mode under @root
 * @root: the resctrl mount, NULL for /sys/fs/resctrl
 *
 * Read each time: an administrator may switch the mode at any moment.
 *
 * Returns: the mode.
 */
QphResctrlAssignMode
qph_resctrl_assign_mode(const char *root)
{
    g_autofree char *path =
        g_build_filename(root ? root : QPH_RESCTRL_DEFAULT_ROOT, "info",
                         "L3_MON", "mbm_assign_mode", NULL);
    g_autofree char *text = qph_resctrl_read_small(path);

    return qph_resctrl_parse_assign_mode(text);
}

/**
 * qph_resctrl_parse_domain_list - one domain's number in "0=32;1=32"
 * @text: num_mbm_cntrs or available_mbm_cntrs
 * @domain: the domain
 * @value: set on success
 *
 * Returns: TRUE if @text lists @domain with a number.
 */
gboolean
qph_resctrl_parse_domain_list(const char *text, guint domain, guint *value)
{
    g_auto(GStrv) items = g_strsplit(text ? text : "", ";", -1);
    guint i;

    for (i = 0; items[i]; i++) {
        g_auto(GStrv) kv = g_strsplit(g_strstrip(items[i]), "=", 2);
        guint64 d, n;

        if (kv[0] && kv[1] &&
            g_ascii_string_to_unsigned(kv[0], 10, 0, G_MAXUINT, &d, NULL) &&
            g_ascii_string_to_unsigned(kv[1], 10, 0, G_MAXUINT, &n, NULL) &&
            d == domain) {
            *value = n;
            return TRUE;
        }
    }
    return FALSE;
}

/* @group's mbm_L3_assignments line of @f: every domain it lists into
 * @all, those marked "e" into @assigned (each may be NULL). */
static gboolean
assign_read_line(const char *group, QphResctrlFeature f, GArray **all,
                 GArray **assigned)
{
    g_autofree char *path = g_build_filename(group, "mbm_L3_assignments", NULL);
    g_autofree char *text = qph_resctrl_read_small(path);
    g_autofree char *prefix =
        g_strconcat(qph_resctrl_feature_info(f)->file, ":", NULL);
    g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
    guint i, j;

    for (i = 0; lines[i]; i++) {
        g_auto(GStrv) items = NULL;

        if (!g_str_has_prefix(lines[i], prefix)) {
            continue;
        }
        if (all) {
            *all = g_array_new(FALSE, FALSE, sizeof(guint));
        }
        if (assigned) {
            *assigned = g_array_new(FALSE, FALSE, sizeof(guint));
        }
        items = g_strsplit(lines[i] + strlen(prefix), ";", -1);
        for (j = 0; items[j]; j++) {
            g_auto(GStrv) kv = g_strsplit(items[j], "=", 2);
            guint64 d;
            guint dom;

            if (!kv[0] || !g_ascii_string_to_unsigned(kv[0], 10, 0, G_MAXUINT,
                                                      &d, NULL)) {
                continue;
            }
            dom = d;
            if (all) {
                g_array_append_val(*all, dom);
            }
            if (assigned && kv[1] && g_str_equal(kv[1], "e")) {
                g_array_append_val(*assigned, dom);
            }
        }
        return TRUE;
    }
    return FALSE;
}

/**
 * qph_resctrl_read_assigned - the domains where @group's event holds a
 * counter
 * @group: a group directory
 * @f: an MBM feature
 * @assigned: (out): set to the domain ids (guint) marked "e"
 *
 * Returns: TRUE if @group's mbm_L3_assignments could be read and lists @f.
 */
gboolean
qph_resctrl_read_assigned(const char *group, QphResctrlFeature f,
                          GArray **assigned)
{
    return assign_read_line(group, f, NULL, assigned);
}

static gboolean
assign_contains(const GArray *a, guint domain)
{
    guint i;

    for (i = 0; a && i < a->len; i++) {
        if (g_array_index(a, guint, i) == domain) {
            return TRUE;
        }
    }
    return FALSE;
}

/* One "EVENT:DOMAIN=STATE\n" write; 0 or the errno. */
static int
assign_write(const char *group, QphResctrlFeature f, guint domain,
             gboolean assign)
{
    g_autofree char *path = g_build_filename(group, "mbm_L3_assignments", NULL);
    g_autofree char *line =
        g_strdup_printf("%s:%u=%c\n", qph_resctrl_feature_info(f)->file, domain,
                        assign ? 'e' : '_');
    ssize_t len = strlen(line);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int err = 0;

    if (fd < 0) {
        return errno;
    }
    if (write(fd, line, len) != len) {
        err = errno ? errno : EIO;
    }
    close(fd);
    return err;
}

static void
assign_set_exhausted(GError **error, const char *root, guint domain, int err)
{
    g_autofree char *num_path =
        g_build_filename(root, "info", "L3_MON", "num_mbm_cntrs", NULL);
    g_autofree char *avail_path =
        g_build_filename(root, "info", "L3_MON", "available_mbm_cntrs", NULL);
    g_autofree char *status_path =
        g_build_filename(root, "info", "last_cmd_status", NULL);
    g_autofree char *num = qph_resctrl_read_small(num_path);
    g_autofree char *avail = qph_resctrl_read_small(avail_path);
    g_autofree char *status = qph_resctrl_read_small(status_path);
    guint n = 0;

    if (!qph_resctrl_parse_domain_list(num, domain, &n)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "No MBM counter is free in L3 domain %u: %s "
                    "(info/last_cmd_status: \"%s\").",
                    domain, g_strerror(err),
                    status ? g_strstrip(status) : "(unreadable)");
        return;
    }
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "No MBM counter is free in L3 domain %u: all %u counters of "
                "the domain are assigned (info/L3_MON/available_mbm_cntrs: "
                "\"%s\"). Release counters other monitoring groups hold "
                "(their mbm_L3_assignments) or remove groups no one reads, "
                "then retry.",
                domain, n, avail ? g_strstrip(avail) : "(unreadable)");
}

static void
assign_undo(const char *group, const GArray *steps, gboolean assigned)
{
    guint i;

    for (i = steps->len; i-- > 0;) {
        const AssignStep *st = &g_array_index(steps, AssignStep, i);
        int err = assign_write(group, st->feature, st->domain, !assigned);

        if (err) {
            g_message("Cannot undo the counter change of %s in L3 domain %u "
                      "of %s: %s.",
                      qph_resctrl_feature_info(st->feature)->file, st->domain,
                      group, g_strerror(err));
        }
    }
}

static gboolean
assign_applies(QphResctrlMon *mon)
{
    return qph_resctrl_mon_is_owned(mon) &&
           qph_resctrl_assign_mode(qph_resctrl_mon_get_root(mon)) ==
               QPH_RESCTRL_ASSIGN_MBM_EVENT;
}

/* Take the counters the @wanted MBM events lack; call with the lock. */
static gboolean
assign_locked(QphResctrlMon *mon, const gboolean *wanted,
              QphResctrlFeature *failed, GError **error)
{
    const char *group = qph_resctrl_mon_get_path(mon);
    const char *root = qph_resctrl_mon_get_root(mon);
    g_autoptr(GArray) steps = g_array_new(FALSE, FALSE, sizeof(AssignStep));
    guint f, i;

    for (f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
        g_autoptr(GArray) all = NULL;
        g_autoptr(GArray) have = NULL;

        if (!wanted[f] || !qph_resctrl_feature_info(f)->mbm) {
            continue;
        }
        if (!assign_read_line(group, f, &all, &have)) {
            continue;
        }
        for (i = 0; i < all->len; i++) {
            guint d = g_array_index(all, guint, i);
            AssignStep st = {f, d};
            int err;

            if (assign_contains(have, d)) {
                continue;
            }
            err = assign_write(group, f, d, TRUE);
            if (err) {
                if (failed) {
                    *failed = f;
                }
                if (err != ENOSPC) {
                    /* Before the undo resets info/last_cmd_status. */
                    g_autofree char *what = g_strdup_printf(
                        "assign a counter to %s in L3 domain %u of",
                        qph_resctrl_feature_info(f)->file, d);

                    qph_resctrl_set_write_error(error, root, what, group, err);
                    assign_undo(group, steps, TRUE);
                    return FALSE;
                }
                /* After the undo, so the counts are what others hold. */
                assign_undo(group, steps, TRUE);
                assign_set_exhausted(error, root, d, err);
                return FALSE;
            }
            g_array_append_val(steps, st);
        }
    }
    return TRUE;
}

/**
 * qph_resctrl_mon_assign - give the helper's group a counter for each
 * @wanted MBM event in every L3 domain
 * @mon: a monitor
 * @wanted: indexed by QphResctrlFeature; non-MBM entries are ignored
 * @failed: (optional): set to the event that got no counter
 * @error: set on failure; says how many counters the domain has
 *
 * All or nothing: on failure every counter this call assigned is released
 * again and what the group held before is kept.  Nothing is written in
 * "default" mode, on kernels without counter assignment, or for a group
 * that is not the helper's.
 *
 * Returns: TRUE on success.
 */
gboolean
qph_resctrl_mon_assign(QphResctrlMon *mon, const gboolean *wanted,
                       QphResctrlFeature *failed, GError **error)
{
    gboolean ok;
    int lock;

    if (!assign_applies(mon)) {
        return TRUE;
    }
    lock = qph_resctrl_lock_root(qph_resctrl_mon_get_root(mon), error);
    if (lock < 0) {
        return FALSE;
    }
    ok = assign_locked(mon, wanted, failed, error);
    qph_resctrl_unlock_root(lock);
    return ok;
}

/**
 * qph_resctrl_mon_release - give back the counters of MBM events that are
 * not @wanted
 * @mon: a monitor
 * @wanted: indexed by QphResctrlFeature
 *
 * Releases what mkdir assigned that no enabled event needs, and what a
 * disabled event held.  Releasing cannot run out of anything; a failure
 * (the group vanished) is logged.  A no-op where qph_resctrl_mon_assign()
 * is one.
 */
void
qph_resctrl_mon_release(QphResctrlMon *mon, const gboolean *wanted)
{
    const char *group = qph_resctrl_mon_get_path(mon);
    g_autoptr(GError) error = NULL;
    guint f, i;
    int lock;

    if (!assign_applies(mon)) {
        return;
    }
    lock = qph_resctrl_lock_root(qph_resctrl_mon_get_root(mon), &error);
    if (lock < 0) {
        g_message("%s", error->message);
        return;
    }
    for (f = 0; f < QPH_RESCTRL_FEATURE_LAST; f++) {
        g_autoptr(GArray) have = NULL;

        if (wanted[f] || !qph_resctrl_feature_info(f)->mbm ||
            !qph_resctrl_read_assigned(group, f, &have)) {
            continue;
        }
        for (i = 0; i < have->len; i++) {
            guint d = g_array_index(have, guint, i);
            int err = assign_write(group, f, d, FALSE);

            if (err) {
                g_message("Cannot release the counter of %s in L3 domain %u "
                          "of %s: %s.",
                          qph_resctrl_feature_info(f)->file, d, group,
                          g_strerror(err));
            }
        }
    }
    qph_resctrl_unlock_root(lock);
}
