/*
 * scrape.c: fan a scrape out to every VM and gather the answers
 *
 * See scrape.h.  Each VM is a slot of the scrape, waiting on its target
 * (target.c).  The slot is finished by the target's answer or by the
 * scrape's single timer; on the timer, slots still waiting are withdrawn
 * from their targets, so a late answer finds nobody and costs nothing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/scrape.h"

#include "contrib/qemu-perf-exporter/discovery.h"
#include "contrib/qemu-perf-exporter/target.h"

struct QpeExporter {
    char **globs;
    char **enable;
    gint64 timeout_us;
    gsize max_message;
    GHashTable *targets; /* path -> QpeTarget * */
    guint64 scrapes[QPE_FORMAT__LAST];
};

typedef struct Scrape Scrape;

typedef struct {
    Scrape *scrape;
    QpeTarget *target;
    guint handle; /* while waiting */
    gboolean answered;
    QpeReading *reading; /* NULL on failure */
    gint64 answered_at;
} Slot;

struct Scrape {
    QpeExporter *ex;
    QpeFormat format;
    gint64 start;
    Slot *slots;
    guint n_slots;
    guint waiting;
    gboolean starting;
    guint timer;
    QpeScrapeDone done;
    gpointer data;
};

QpeExporter *
qpe_exporter_new(const QpeExporterConfig *config)
{
    QpeExporter *ex = g_new0(QpeExporter, 1);

    ex->globs = g_strdupv((char **)config->globs);
    ex->enable = g_strdupv((char **)config->enable);
    ex->timeout_us = config->timeout_us;
    ex->max_message = config->max_message;
    ex->targets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)qpe_target_unref);
    return ex;
}

void
qpe_exporter_free(QpeExporter *ex)
{
    if (ex == NULL) {
        return;
    }
    g_hash_table_unref(ex->targets);
    g_strfreev(ex->globs);
    g_strfreev(ex->enable);
    g_free(ex);
}

/* Make the target table match the sockets that exist now. */
static GPtrArray *
sync_targets(QpeExporter *ex)
{
    g_autoptr(GPtrArray) paths =
        qpe_discover_sockets((const char *const *)ex->globs);
    g_autoptr(GHashTable) now = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *targets =
        g_ptr_array_new_with_free_func((GDestroyNotify)qpe_target_unref);
    GHashTableIter it;
    gpointer key, value;

    for (guint i = 0; i < paths->len; i++) {
        g_hash_table_add(now, paths->pdata[i]);
    }
    g_hash_table_iter_init(&it, ex->targets);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        if (!g_hash_table_contains(now, key)) {
            g_message("helper socket '%s' is gone", (const char *)key);
            qpe_target_retire(value);
            g_hash_table_iter_remove(&it);
        }
    }
    for (guint i = 0; i < paths->len; i++) {
        const char *path = paths->pdata[i];
        QpeTarget *t = g_hash_table_lookup(ex->targets, path);

        if (t == NULL) {
            t = qpe_target_new(path, (const char *const *)ex->enable,
                               ex->max_message);
            g_hash_table_insert(ex->targets, g_strdup(path), t);
            g_message("found helper socket '%s'", path);
        }
        g_ptr_array_add(targets, qpe_target_ref(t));
    }
    return targets;
}

static void
scrape_finish(Scrape *s)
{
    g_autoptr(QpeExposition) e = qpe_exposition_new();
    gint64 now = g_get_monotonic_time();
    GString *body;

    if (s->timer != 0) {
        g_source_remove(s->timer);
        s->timer = 0;
    }
    for (guint i = 0; i < s->n_slots; i++) {
        Slot *slot = &s->slots[i];
        QpeVmReport vm;
        gboolean duplicate;

        if (!slot->answered) {
            qpe_target_cancel(slot->target, slot->handle);
            slot->answered_at = now;
        }
        if (slot->reading == NULL) {
            qpe_target_count_error(slot->target);
        }
        vm.domain = qpe_target_domain(slot->target);
        vm.uuid = qpe_target_uuid(slot->target);
        vm.socket = qpe_target_path(slot->target);
        vm.up = slot->reading != NULL;
        vm.duration_us = slot->answered_at - s->start;
        vm.errors_total = qpe_target_errors(slot->target);
        vm.reading = slot->reading;
        duplicate = !qpe_exposition_add_vm(e, &vm);
        if (qpe_target_set_duplicate(slot->target, duplicate) && duplicate) {
            g_warning("helper socket '%s' reports the same domain '%s' and "
                      "uuid '%s' as another socket; its counters are left "
                      "out",
                      vm.socket, vm.domain, vm.uuid);
        }
    }
    s->ex->scrapes[s->format]++;
    qpe_exposition_add_exporter(e, s->n_slots, s->ex->scrapes,
                                g_get_monotonic_time() - s->start);
    body = qpe_exposition_render(e, s->format);

    for (guint i = 0; i < s->n_slots; i++) {
        qpe_reading_unref(s->slots[i].reading);
        qpe_target_unref(s->slots[i].target);
    }
    g_free(s->slots);
    s->done(body, s->data);
    g_free(s);
}

static gboolean
on_timeout(gpointer data)
{
    Scrape *s = data;

    s->timer = 0;
    scrape_finish(s);
    return G_SOURCE_REMOVE;
}

static void
on_reading(QpeTarget *t, QpeReading *reading, const GError *error,
           gpointer data)
{
    Slot *slot = data;
    Scrape *s = slot->scrape;

    slot->answered = TRUE;
    slot->handle = 0;
    slot->answered_at = g_get_monotonic_time();
    if (reading != NULL) {
        slot->reading = qpe_reading_ref(reading);
    } else {
        g_debug("no reading from '%s': %s", qpe_target_path(t),
                error->message);
    }
    s->waiting--;
    if (s->waiting == 0 && !s->starting) {
        scrape_finish(s);
    }
}

void
qpe_exporter_scrape(QpeExporter *ex, QpeFormat format, QpeScrapeDone done,
                    gpointer data)
{
    g_autoptr(GPtrArray) targets = sync_targets(ex);
    Scrape *s = g_new0(Scrape, 1);

    s->ex = ex;
    s->format = format;
    s->start = g_get_monotonic_time();
    s->done = done;
    s->data = data;
    s->n_slots = targets->len;
    s->slots = g_new0(Slot, MAX(targets->len, 1));
    s->waiting = targets->len;
    s->starting = TRUE;
    for (guint i = 0; i < targets->len; i++) {
        Slot *slot = &s->slots[i];

        slot->scrape = s;
        slot->target = qpe_target_ref(targets->pdata[i]);
        slot->handle = qpe_target_read(slot->target, on_reading, slot);
    }
    s->starting = FALSE;
    if (s->waiting == 0) {
        scrape_finish(s);
        return;
    }
    s->timer = g_timeout_add_full(G_PRIORITY_DEFAULT,
                                  (guint)MAX(ex->timeout_us / 1000, 1),
                                  on_timeout, s, NULL);
}
