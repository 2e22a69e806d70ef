/*
 * startup-events.c: events on from the start, and again after a restart
 *
 * When the proxy has QEMU's pid (its monitor is negotiated, no client is
 * served yet), one set-perf-events-like request enables the events: those
 * of --enable, or, in attach mode, those of the state file a previous
 * helper of this very QEMU left (it wins: a restart brings back what was
 * on, including what clients enabled or disabled since).  From then on,
 * every change of the enabled set rewrites the state file, and the file
 * goes when QEMU's monitor closes.  Counters opened again start from zero
 * with a new enabled-at: a restarted helper cannot know what the old
 * counters read when it died.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/startup-events.h"
#include "helper/state.h"

#include <string.h>

struct QphStartupEvents {
    GStrv enable;    /* from --enable */
    char *state_dir; /* NULL: no state file */
    QphState *state; /* once QEMU's pid is known */
    gboolean qemu_gone;
};

GStrv
qph_startup_events_split(const char *const *enable)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; enable && enable[i]; i++) {
        g_auto(GStrv) parts = g_strsplit(enable[i], ",", 0);

        for (guint j = 0; parts[j]; j++) {
            g_strstrip(parts[j]);
            if (*parts[j]) {
                g_ptr_array_add(names, g_strdup(parts[j]));
            }
        }
    }
    g_ptr_array_add(names, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

QphStartupEvents *
qph_startup_events_new(const char *const *enable, gboolean restartable,
                       const char *state_dir)
{
    QphStartupEvents *se = g_new0(QphStartupEvents, 1);

    se->enable = qph_startup_events_split(enable);
    if (restartable) {
        const char *runtime = g_getenv("RUNTIME_DIRECTORY");

        if (state_dir) {
            se->state_dir = g_strdup(state_dir);
        } else if (runtime && *runtime) {
            /* systemd lists several directories separated by ':'. */
            se->state_dir = g_strndup(runtime, strcspn(runtime, ":"));
        }
    }
    return se;
}

void
qph_startup_events_free(QphStartupEvents *se)
{
    if (!se) {
        return;
    }
    g_strfreev(se->enable);
    g_free(se->state_dir);
    qph_state_free(se->state);
    g_free(se);
}

/* Keep the state file in step with the enabled set. */
static void
startup_events_changed(QphVm *vm, gpointer data)
{
    QphStartupEvents *se = data;
    GPtrArray *enabled = qph_vm_get_enabled(vm);
    g_autofree const char **names = g_new0(const char *, enabled->len + 1);
    g_autoptr(GError) error = NULL;

    if (se->qemu_gone) {
        return;
    }
    for (guint i = 0; i < enabled->len; i++) {
        names[i] = ((QphVmEnabledEvent *)enabled->pdata[i])->name;
    }
    if (!qph_state_save(se->state, names, &error)) {
        g_message("%s; a restarted helper will not enable the same events",
                  error->message);
    }
}

/* One all-or-nothing request enabling @names. */
static gboolean
startup_events_apply(QphVm *vm, const char *const *names, GError **error)
{
    guint n = g_strv_length((char **)names);
    g_autofree QphPerfChange *changes = g_new0(QphPerfChange, MAX(n, 1));

    for (guint i = 0; i < n; i++) {
        changes[i].name = names[i];
        changes[i].enable = TRUE;
    }
    return n == 0 || qph_vm_set_events(vm, changes, n, error);
}

/* The events a previous helper of this QEMU had on, or NULL. */
static GStrv
startup_events_restore(QphStartupEvents *se, QphVm *vm)
{
    g_autoptr(GError) error = NULL;
    GStrv events = NULL;

    if (!g_file_test(se->state_dir, G_FILE_TEST_IS_DIR)) {
        g_message("No state directory '%s': a restarted helper will not "
                  "enable the same events",
                  se->state_dir);
        return NULL;
    }
    qph_state_remove_stale(se->state_dir);
    se->state = qph_state_new(se->state_dir, qph_vm_get_pid(vm), &error);
    if (!se->state) {
        g_message("%s; a restarted helper will not enable the same events",
                  error->message);
        return NULL;
    }
    qph_vm_set_changed_func(vm, startup_events_changed, se);
    if (!qph_state_load(se->state, &events, &error)) {
        g_message("%s; ignoring it", error->message);
        return NULL;
    }
    return events;
}

void
qph_startup_events_vm_ready(QphStartupEvents *se, QphVm *vm)
{
    g_auto(GStrv) restored = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *list = NULL;

    if (se->state_dir) {
        restored = startup_events_restore(se, vm);
    }
    if (restored) {
        list = g_strjoinv(",", restored);
        if (!startup_events_apply(vm, (const char *const *)restored, &error)) {
            g_warning("Unable to enable again the events enabled before the "
                      "helper restarted (%s): %s",
                      list, error->message);
        } else if (*list) {
            g_message("Enabled again the events enabled before the helper "
                      "restarted: %s",
                      list);
        }
        return;
    }
    list = g_strjoinv(",", se->enable);
    if (!startup_events_apply(vm, (const char *const *)se->enable, &error)) {
        g_warning("Unable to enable the events of --enable (%s): %s", list,
                  error->message);
    } else if (*list) {
        g_debug("Enabled at start: %s", list);
    }
}

void
qph_startup_events_qemu_gone(QphStartupEvents *se)
{
    g_autoptr(GError) error = NULL;

    se->qemu_gone = TRUE;
    if (se->state && !qph_state_remove(se->state, &error)) {
        g_message("%s", error->message);
    }
}
