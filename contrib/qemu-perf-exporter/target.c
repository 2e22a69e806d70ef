/*
 * target.c: a helper socket's connection, identity and readings
 *
 * See target.h.  On a new connection the commands go out back to back:
 * qmp_capabilities (sent by the client itself), query-name, query-uuid,
 * one set-perf-events per --enable event (one each, because the command
 * is all or nothing and an event this host cannot count must not keep
 * the others off), then query-perf-events whenever a scrape waits.  QMP
 * answers in order, so the name and UUID are known before the first
 * reading arrives.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/target.h"

#include "contrib/qemu-perf-exporter/qmp-client.h"
#include "qmp/json-value.h"

typedef struct {
    guint handle;
    QpeTargetFunc func;
    gpointer data;
} Waiter;

struct QpeTarget {
    gint ref;
    char *path;
    char *fallback_domain; /* the socket's file name */
    char *domain;          /* from query-name */
    char *uuid;            /* from query-uuid */
    char **enable;
    gsize max_message;

    QpeQmpClient *client; /* NULL while disconnected */
    gboolean query_in_flight;
    gboolean retired;
    gboolean reported_down; /* the last failure was logged */
    gboolean duplicate;     /* another socket reports the same VM */
    GQueue waiters;         /* Waiter * */
    guint next_handle;
    guint64 errors;
};

QpeTarget *
qpe_target_new(const char *path, const char *const *enable, gsize max_message)
{
    QpeTarget *t = g_new0(QpeTarget, 1);
    g_autofree char *base = g_path_get_basename(path);

    t->ref = 1;
    t->path = g_strdup(path);
    if (g_str_has_suffix(base, ".sock")) {
        base[strlen(base) - strlen(".sock")] = '\0';
    }
    t->fallback_domain = g_steal_pointer(&base);
    t->uuid = g_strdup("");
    t->enable = g_strdupv((char **)enable);
    t->max_message = max_message;
    t->next_handle = 1;
    g_queue_init(&t->waiters);
    return t;
}

QpeTarget *
qpe_target_ref(QpeTarget *t)
{
    t->ref++;
    return t;
}

static void disconnect(QpeTarget *t);

static void
fail_waiters(QpeTarget *t, const GError *error)
{
    Waiter *w;

    while ((w = g_queue_pop_head(&t->waiters)) != NULL) {
        w->func(t, NULL, error, w->data);
        g_free(w);
    }
}

void
qpe_target_unref(QpeTarget *t)
{
    if (t == NULL || --t->ref > 0) {
        return;
    }
    t->ref = 1; /* callbacks run by the disconnect see a live target */
    disconnect(t);
    g_queue_clear_full(&t->waiters, g_free);
    g_free(t->path);
    g_free(t->fallback_domain);
    g_free(t->domain);
    g_free(t->uuid);
    g_strfreev(t->enable);
    g_free(t);
}

static void
disconnect(QpeTarget *t)
{
    QpeQmpClient *c = t->client;

    if (c != NULL) {
        t->client = NULL;
        qpe_qmp_client_close(c);
    }
    t->query_in_flight = FALSE;
}

static void
on_name(QpeQmpClient *c, const QmpJson *reply, const GError *error,
        gpointer data)
{
    QpeTarget *t = data;
    const QmpJson *ret = reply ? qmp_json_object_get(reply, "return") : NULL;
    const QmpJson *name = ret ? qmp_json_object_get(ret, "name") : NULL;

    /* A helper restarted on the same socket may front another VM: what
     * this connection says replaces what the last one said. */
    if (ret != NULL) {
        g_free(t->domain);
        t->domain = name != NULL && name->type == QMP_JSON_STRING
                        ? g_strdup(name->s)
                        : NULL;
    }
}

static void
on_uuid(QpeQmpClient *c, const QmpJson *reply, const GError *error,
        gpointer data)
{
    QpeTarget *t = data;
    const QmpJson *ret = reply ? qmp_json_object_get(reply, "return") : NULL;
    const QmpJson *uuid = ret ? qmp_json_object_get(ret, "UUID") : NULL;

    if (ret != NULL) {
        g_free(t->uuid);
        t->uuid = g_strdup(uuid != NULL && uuid->type == QMP_JSON_STRING
                               ? uuid->s
                               : "");
    }
}

typedef struct {
    QpeTarget *t;
    char *event;
} EnableRequest;

static void
on_enabled(QpeQmpClient *c, const QmpJson *reply, const GError *error,
           gpointer data)
{
    EnableRequest *req = data;

    if (reply != NULL && qmp_json_object_get(reply, "return") != NULL) {
        g_message("enabled event '%s' on helper socket '%s' (--enable)",
                  req->event, req->t->path);
    } else if (reply != NULL) {
        g_autofree char *text = qpe_qmp_error_text(reply);
        g_warning("unable to enable event '%s' on helper socket '%s': %s",
                  req->event, req->t->path, text);
    }
    g_free(req->event);
    g_free(req);
}

static void
on_closed(QpeQmpClient *c, const GError *error, gpointer data)
{
    QpeTarget *t = data;

    if (!t->reported_down) {
        g_warning("%s", error->message);
        t->reported_down = TRUE;
    }
    disconnect(t);
    fail_waiters(t, error);
}

static void
connect_target(QpeTarget *t)
{
    t->client = qpe_qmp_client_new(t->path, t->max_message, on_closed, t);
    qpe_qmp_client_execute(t->client, "query-name", NULL, on_name, t);
    qpe_qmp_client_execute(t->client, "query-uuid", NULL, on_uuid, t);
    for (guint i = 0; t->enable != NULL && t->enable[i] != NULL; i++) {
        EnableRequest *req = g_new0(EnableRequest, 1);
        g_autoptr(GString) args = g_string_new("{\"events\": [{\"name\": ");

        qmp_json_write_string(args, t->enable[i]);
        g_string_append(args, ", \"enabled\": true}]}");
        req->t = t;
        req->event = g_strdup(t->enable[i]);
        qpe_qmp_client_execute(t->client, "set-perf-events", args->str,
                               on_enabled, req);
    }
}

static void query(QpeTarget *t);

static void
on_perf(QpeQmpClient *c, const QmpJson *reply, const GError *error,
        gpointer data)
{
    QpeTarget *t = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(QpeReading) reading = NULL;
    const QmpJson *ret;
    Waiter *w;

    t->query_in_flight = FALSE;
    if (reply == NULL) {
        fail_waiters(t, error);
        return;
    }
    ret = qmp_json_object_get(reply, "return");
    if (ret == NULL) {
        g_autofree char *text = qpe_qmp_error_text(reply);
        err = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
                          "query-perf-events failed on helper socket '%s': %s",
                          t->path, text);
    } else {
        reading = qpe_reading_from_reply(ret, &err);
    }
    if (reading == NULL) {
        fail_waiters(t, err);
        return;
    }
    if (t->reported_down) {
        g_message("helper socket '%s' answers again", t->path);
        t->reported_down = FALSE;
    }
    while ((w = g_queue_pop_head(&t->waiters)) != NULL) {
        w->func(t, reading, NULL, w->data);
        g_free(w);
    }
}

static void
query(QpeTarget *t)
{
    if (t->retired || t->query_in_flight || t->waiters.length == 0) {
        return;
    }
    if (t->client == NULL) {
        connect_target(t);
    }
    t->query_in_flight = TRUE;
    qpe_qmp_client_execute(t->client, "query-perf-events",
                           "{\"per-thread\": true}", on_perf, t);
}

guint
qpe_target_read(QpeTarget *t, QpeTargetFunc func, gpointer data)
{
    Waiter *w;
    guint handle;

    if (t->retired) {
        g_autoptr(GError) error =
            g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                        "helper socket '%s' is gone", t->path);
        func(t, NULL, error, data);
        return 0;
    }
    w = g_new0(Waiter, 1);
    w->handle = handle = t->next_handle++;
    if (t->next_handle == 0) {
        t->next_handle = 1;
    }
    w->func = func;
    w->data = data;
    g_queue_push_tail(&t->waiters, w);
    qpe_target_ref(t);
    query(t);
    /* Still waiting, or already answered (a failed connect)? */
    for (GList *l = t->waiters.head; l != NULL; l = l->next) {
        if (((Waiter *)l->data)->handle == handle) {
            qpe_target_unref(t);
            return handle;
        }
    }
    qpe_target_unref(t);
    return 0;
}

void
qpe_target_cancel(QpeTarget *t, guint handle)
{
    for (GList *l = t->waiters.head; l != NULL; l = l->next) {
        Waiter *w = l->data;
        if (w->handle == handle) {
            g_queue_delete_link(&t->waiters, l);
            g_free(w);
            return;
        }
    }
}

const char *
qpe_target_path(const QpeTarget *t)
{
    return t->path;
}

const char *
qpe_target_domain(const QpeTarget *t)
{
    return t->domain != NULL ? t->domain : t->fallback_domain;
}

const char *
qpe_target_uuid(const QpeTarget *t)
{
    return t->uuid;
}

void
qpe_target_count_error(QpeTarget *t)
{
    t->errors++;
}

guint64
qpe_target_errors(const QpeTarget *t)
{
    return t->errors;
}

gboolean
qpe_target_set_duplicate(QpeTarget *t, gboolean duplicate)
{
    gboolean changed = t->duplicate != duplicate;

    t->duplicate = duplicate;
    return changed;
}

void
qpe_target_retire(QpeTarget *t)
{
    g_autoptr(GError) error = g_error_new(
        G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "helper socket '%s' is gone",
        t->path);

    t->retired = TRUE;
    qpe_target_ref(t);
    disconnect(t);
    fail_waiters(t, error);
    qpe_target_unref(t);
}
