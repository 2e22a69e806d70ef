/*
 * test-qapi-visit.c: the code generated from schema/qemu-perf-helper.json
 *
 * Reads as the contract of the two commands at the argument level: every
 * error text and path a client can provoke (QEMU 7.2's texts, see
 * test-qapi-qemu-mirror.c for the transcript they come from), optional
 * arguments and their defaults, how replies are built (members in schema
 * order, absent optional members left out, uint64 beyond int64), that
 * a reply read back gives the same reply, and that the direct writers
 * (qph_write_<T>, used for real replies) print exactly what the tree does.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <string.h>

#include "qmp/json-streamer.h"
#include "qmp/qmp-error.h"
#include "qph-qapi-commands.h"
#include "qph-qapi-introspect.h"
#include "qph-qapi-visit.h"

/* What the handlers saw, and what they answer. */
static struct {
    guint calls;
    GPtrArray *events; /* copy of set-perf-events' events (names) */
    GArray *enabled;
    gboolean has_names, has_per_thread, per_thread;
    GPtrArray *names;
    GPtrArray *reply;       /* query-perf-events returns this (stolen) */
    gboolean fail_silently; /* return FALSE/NULL without an error */
    const char *fail;       /* return this error */
} h;

static void
handlers_reset(void)
{
    g_clear_pointer(&h.events, g_ptr_array_unref);
    g_clear_pointer(&h.enabled, g_array_unref);
    g_clear_pointer(&h.names, g_ptr_array_unref);
    g_clear_pointer(&h.reply, g_ptr_array_unref);
    memset(&h, 0, sizeof(h));
}

gboolean
qph_qmp_set_perf_events(GPtrArray *events, gpointer opaque, GError **error)
{
    h.calls++;
    h.events = g_ptr_array_new_with_free_func(g_free);
    h.enabled = g_array_new(FALSE, FALSE, sizeof(gboolean));
    for (guint i = 0; i < events->len; i++) {
        PerfEventSetting *s = g_ptr_array_index(events, i);

        g_ptr_array_add(h.events, g_strdup(s->name));
        g_array_append_val(h.enabled, s->enabled);
    }
    if (h.fail) {
        g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR, h.fail);
        return FALSE;
    }
    return !h.fail_silently;
}

GPtrArray *
qph_qmp_query_perf_events(gboolean has_names, GPtrArray *names,
                          gboolean has_per_thread, gboolean per_thread,
                          gpointer opaque, GError **error)
{
    h.calls++;
    h.has_names = has_names;
    h.has_per_thread = has_per_thread;
    h.per_thread = per_thread;
    if (has_names) {
        h.names = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < names->len; i++) {
            g_ptr_array_add(h.names, g_strdup(g_ptr_array_index(names, i)));
        }
    }
    if (h.fail) {
        g_set_error_literal(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR, h.fail);
        return NULL;
    }
    if (h.fail_silently) {
        return NULL;
    }
    return h.reply ? g_steal_pointer(&h.reply) : qph_new_PerfEventInfoList();
}

static QmpJson *
parse(const char *text)
{
    g_autofree char *parse_error = NULL;
    QmpJson *v;

    if (!text) {
        return NULL;
    }
    v = qmp_json_parse_value(text, strlen(text), &parse_error);
    g_assert_null(parse_error);
    g_assert_nonnull(v);
    return v;
}

static char *
to_text(const QmpJson *v)
{
    GString *s = g_string_new("");

    qmp_json_write(s, v);
    return g_string_free(s, FALSE);
}

/* Member names of @obj in tree (insertion) order, space-separated. */
static char *
keys_of(const QmpJson *obj)
{
    g_autoptr(GString) s = g_string_new("");

    g_assert_cmpint(obj->type, ==, QMP_JSON_OBJECT);
    for (guint i = 0; i < obj->members->len; i++) {
        QmpJsonMember *m = g_ptr_array_index(obj->members, i);

        g_string_append_printf(s, "%s%s", i ? " " : "", m->key);
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

typedef struct {
    const char *command;
    const char *args; /* NULL: the client sent no "arguments" */
    const char *desc;
} ErrorCase;

static const ErrorCase error_cases[] = {
    {"set-perf-events", NULL, "Parameter 'events' is missing"},
    {"set-perf-events", "{}", "Parameter 'events' is missing"},
    /* a missing member is reported before an unexpected one */
    {"set-perf-events", "{\"foo\": 1}", "Parameter 'events' is missing"},
    {"set-perf-events", "{\"events\": [], \"foo\": 1}",
     "Parameter 'foo' is unexpected"},
    {"set-perf-events", "{\"events\": {}}",
     "Invalid parameter type for 'events', expected: array"},
    {"set-perf-events", "{\"events\": null}",
     "Invalid parameter type for 'events', expected: array"},
    {"set-perf-events", "{\"events\": \"cpu_cycles\"}",
     "Invalid parameter type for 'events', expected: array"},
    {"set-perf-events", "{\"events\": [5]}",
     "Invalid parameter type for 'events[0]', expected: object"},
    {"set-perf-events", "{\"events\": [[]]}",
     "Invalid parameter type for 'events[0]', expected: object"},
    {"set-perf-events",
     "{\"events\": [{\"name\": \"cpu_cycles\", \"enabled\": true}, null]}",
     "Invalid parameter type for 'events[1]', expected: object"},
    {"set-perf-events", "{\"events\": [{\"enabled\": true}]}",
     "Parameter 'events[0].name' is missing"},
    {"set-perf-events", "{\"events\": [{\"name\": \"cpu_cycles\"}]}",
     "Parameter 'events[0].enabled' is missing"},
    {"set-perf-events", "{\"events\": [{\"name\": 1, \"enabled\": true}]}",
     "Invalid parameter type for 'events[0].name', expected: string"},
    {"set-perf-events",
     "{\"events\": [{\"name\": \"cpu_cycles\", \"enabled\": \"yes\"}]}",
     "Invalid parameter type for 'events[0].enabled', expected: boolean"},
    {"set-perf-events",
     "{\"events\": [{\"name\": \"cpu_cycles\", \"enabled\": 1}]}",
     "Invalid parameter type for 'events[0].enabled', expected: boolean"},
    {"set-perf-events",
     "{\"events\": [{\"name\": \"a\", \"enabled\": true}, "
     "{\"name\": \"b\", \"enabled\": null}]}",
     "Invalid parameter type for 'events[1].enabled', expected: boolean"},
    {"set-perf-events",
     "{\"events\": [{\"name\": \"a\", \"enabled\": true, \"cpu\": 0}]}",
     "Parameter 'events[0].cpu' is unexpected"},
    {"query-perf-events", "{\"names\": \"cpu_cycles\"}",
     "Invalid parameter type for 'names', expected: array"},
    {"query-perf-events", "{\"names\": null}",
     "Invalid parameter type for 'names', expected: array"},
    {"query-perf-events", "{\"names\": [\"cpu_cycles\", 7]}",
     "Invalid parameter type for 'names[1]', expected: string"},
    {"query-perf-events", "{\"per-thread\": \"true\"}",
     "Invalid parameter type for 'per-thread', expected: boolean"},
    {"query-perf-events", "{\"per-thread\": null}",
     "Invalid parameter type for 'per-thread', expected: boolean"},
    {"query-perf-events", "{\"per_thread\": true}",
     "Parameter 'per_thread' is unexpected"},
};

static void
test_error(gconstpointer data)
{
    const ErrorCase *c = data;
    const QphQmpCommand *cmd = qph_qmp_command_lookup(c->command);
    g_autoptr(QmpJson) args = parse(c->args);
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;

    handlers_reset();
    g_assert_nonnull(cmd);
    g_assert_false(cmd->marshal(args, &ret, NULL, &error));
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_assert_cmpstr(error->message, ==, c->desc);
    g_assert_null(ret);
    /* The handler never runs on bad arguments. */
    g_assert_cmpuint(h.calls, ==, 0);
}

static void
test_table(void)
{
    g_assert_cmpuint(qph_qmp_commands_count, ==, 2);
    g_assert_cmpstr(qph_qmp_commands[QPH_QMP_COMMAND_SET_PERF_EVENTS].name, ==,
                    "set-perf-events");
    g_assert_cmpstr(qph_qmp_commands[QPH_QMP_COMMAND_QUERY_PERF_EVENTS].name,
                    ==, "query-perf-events");
    for (guint i = 0; i < qph_qmp_commands_count; i++) {
        g_assert_false(qph_qmp_commands[i].allow_oob);
        g_assert_true(qph_qmp_command_lookup(qph_qmp_commands[i].name) ==
                      &qph_qmp_commands[i]);
    }
    g_assert_null(qph_qmp_command_lookup("query-status"));
    g_assert_null(qph_qmp_command_lookup(""));
    g_assert_true(qph_qmp_command_lookup("set-perf-events")->marshal ==
                  qph_qmp_marshal_set_perf_events);
    g_assert_true(qph_qmp_command_lookup("set-perf-events")->marshal_text ==
                  qph_qmp_marshal_text_set_perf_events);
    g_assert_true(qph_qmp_command_lookup("query-perf-events")->marshal_text ==
                  qph_qmp_marshal_text_query_perf_events);
}

static void
test_enums(void)
{
    PerfThreadKind kind;

    g_assert_cmpstr(qph_PerfEventUnit_str(PERF_EVENT_UNIT_NS), ==, "ns");
    g_assert_cmpstr(qph_PerfEventSource_str(PERF_EVENT_SOURCE_RESCTRL), ==,
                    "resctrl");
    g_assert_cmpstr(qph_PerfThreadKind_str(PERF_THREAD_KIND_MAIN_LOOP), ==,
                    "main-loop");
    g_assert_cmpstr(qph_PerfDomainStatus_str(PERF_DOMAIN_STATUS_UNASSIGNED), ==,
                    "unassigned");
    g_assert_null(qph_PerfEventUnit_str(PERF_EVENT_UNIT__LAST));
    g_assert_null(qph_PerfEventUnit_str((PerfEventUnit)-1));
    g_assert_true(qph_PerfThreadKind_parse("iothread", &kind));
    g_assert_cmpint(kind, ==, PERF_THREAD_KIND_IOTHREAD);
    g_assert_false(qph_PerfThreadKind_parse("main_loop", &kind));
    g_assert_false(qph_PerfThreadKind_parse("", &kind));
}

static void
test_set_ok(void)
{
    g_autoptr(QmpJson) args =
        parse("{\"events\": [{\"enabled\": true, \"name\": \"cpu_cycles\"}, "
              "{\"name\": \"INST_RETIRED:ANY_P\", \"enabled\": false}]}");
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;

    handlers_reset();
    g_assert_true(qph_qmp_marshal_set_perf_events(args, &ret, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(h.calls, ==, 1);
    g_assert_cmpuint(h.events->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(h.events, 0), ==, "cpu_cycles");
    g_assert_true(g_array_index(h.enabled, gboolean, 0));
    g_assert_cmpstr(g_ptr_array_index(h.events, 1), ==, "INST_RETIRED:ANY_P");
    g_assert_false(g_array_index(h.enabled, gboolean, 1));
    text = to_text(ret);
    g_assert_cmpstr(text, ==, "{}");
    handlers_reset();
}

static void
test_set_empty_list(void)
{
    g_autoptr(QmpJson) args = parse("{\"events\": []}");
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;

    handlers_reset();
    g_assert_true(qph_qmp_marshal_set_perf_events(args, &ret, NULL, &error));
    g_assert_cmpuint(h.events->len, ==, 0);
    handlers_reset();
}

static void
test_set_handler_errors(void)
{
    g_autoptr(QmpJson) args =
        parse("{\"events\": [{\"name\": \"nope\", \"enabled\": true}]}");
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;

    handlers_reset();
    h.fail = "Unknown perf event 'nope'.";
    g_assert_false(qph_qmp_marshal_set_perf_events(args, &ret, NULL, &error));
    g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
    g_assert_cmpstr(error->message, ==, "Unknown perf event 'nope'.");
    g_assert_null(ret);
    g_clear_error(&error);

    /* A handler that fails without saying why still yields an error. */
    handlers_reset();
    h.fail_silently = TRUE;
    g_assert_false(qph_qmp_marshal_set_perf_events(args, &ret, NULL, &error));
    g_assert_cmpstr(error->message, ==,
                    "Command 'set-perf-events' failed without saying why.");
    g_clear_error(&error);

    handlers_reset();
    h.fail_silently = TRUE;
    g_assert_false(qph_qmp_marshal_query_perf_events(NULL, &ret, NULL, &error));
    g_assert_cmpstr(error->message, ==,
                    "Command 'query-perf-events' failed without saying why.");
    handlers_reset();
}

static void
test_query_defaults(void)
{
    const char *forms[] = {NULL, "{}"};

    for (guint i = 0; i < G_N_ELEMENTS(forms); i++) {
        g_autoptr(QmpJson) args = parse(forms[i]);
        g_autoptr(QmpJson) ret = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *text = NULL;

        handlers_reset();
        g_assert_true(
            qph_qmp_marshal_query_perf_events(args, &ret, NULL, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(h.calls, ==, 1);
        g_assert_false(h.has_names);
        g_assert_false(h.has_per_thread);
        g_assert_false(h.per_thread); /* per-thread defaults to false */
        text = to_text(ret);
        g_assert_cmpstr(text, ==, "[]");
    }
    handlers_reset();
}

static void
test_query_args(void)
{
    g_autoptr(QmpJson) args =
        parse("{\"per-thread\": true, \"names\": [\"cmt\", \"cpu_cycles\"]}");
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;

    handlers_reset();
    g_assert_true(qph_qmp_marshal_query_perf_events(args, &ret, NULL, &error));
    g_assert_true(h.has_names);
    g_assert_cmpuint(h.names->len, ==, 2);
    g_assert_cmpstr(g_ptr_array_index(h.names, 0), ==, "cmt");
    g_assert_cmpstr(g_ptr_array_index(h.names, 1), ==, "cpu_cycles");
    g_assert_true(h.has_per_thread);
    g_assert_true(h.per_thread);
    g_clear_pointer(&ret, qmp_json_free);

    handlers_reset();
    g_clear_pointer(&args, qmp_json_free);
    args = parse("{\"per-thread\": false, \"names\": []}");
    g_assert_true(qph_qmp_marshal_query_perf_events(args, &ret, NULL, &error));
    g_assert_true(h.has_names);
    g_assert_cmpuint(h.names->len, ==, 0);
    g_assert_true(h.has_per_thread);
    g_assert_false(h.per_thread);
    handlers_reset();
}

static PerfThreadValue *
thread_new(gint64 tid, const char *name, PerfThreadKind kind, guint64 value)
{
    PerfThreadValue *t = g_new0(PerfThreadValue, 1);

    t->thread_id = tid;
    t->name = g_strdup(name);
    t->kind = kind;
    t->value = value;
    return t;
}

/* One enabled perf event with threads, one resctrl event with domains, one
 * disabled event: every member of every type is used at least once. */
static GPtrArray *
sample_reply(void)
{
    GPtrArray *list = qph_new_PerfEventInfoList();
    PerfEventInfo *e;
    PerfThreadValue *t;
    PerfDomainValue *d;

    e = g_new0(PerfEventInfo, 1);
    e->name = g_strdup("cpu_cycles");
    e->enabled = TRUE;
    e->has_value = TRUE;
    e->value = G_GUINT64_CONSTANT(18446744073709551615); /* beyond int64 */
    e->unit = PERF_EVENT_UNIT_COUNT;
    e->source = PERF_EVENT_SOURCE_PERF;
    e->has_time_enabled = TRUE;
    e->time_enabled = 2000;
    e->has_time_running = TRUE;
    e->time_running = 1000;
    e->has_scaled = TRUE;
    e->scaled = TRUE;
    e->has_user_only = TRUE;
    e->user_only = FALSE;
    e->has_exited_value = TRUE;
    e->exited_value = 12;
    e->has_description = TRUE;
    e->description = g_strdup("CPU cycles \"unhalted\"\n");
    e->has_threads = TRUE;
    e->threads = qph_new_PerfThreadValueList();
    t = thread_new(4711, "qemu-system-x86", PERF_THREAD_KIND_MAIN_LOOP, 5);
    g_ptr_array_add(e->threads, t);
    t = thread_new(4715, "CPU 0/KVM", PERF_THREAD_KIND_VCPU, 7);
    t->scaled = TRUE;
    t->has_cpu_index = TRUE;
    t->cpu_index = 0;
    t->has_qom_path = TRUE;
    t->qom_path = g_strdup("/machine/unattached/device[0]");
    g_ptr_array_add(e->threads, t);
    t = thread_new(4716, "IO iothread0", PERF_THREAD_KIND_IOTHREAD, 0);
    t->has_id = TRUE;
    t->id = g_strdup("iothread0");
    g_ptr_array_add(e->threads, t);
    g_ptr_array_add(list, e);

    e = g_new0(PerfEventInfo, 1);
    e->name = g_strdup("mbmt");
    e->enabled = TRUE;
    e->has_value = TRUE;
    e->value = 7340032;
    e->unit = PERF_EVENT_UNIT_BYTES;
    e->source = PERF_EVENT_SOURCE_RESCTRL;
    e->has_domains = TRUE;
    e->domains = qph_new_PerfDomainValueList();
    d = g_new0(PerfDomainValue, 1);
    d->domain = 0;
    d->has_value = TRUE;
    d->value = 7340032;
    d->status = PERF_DOMAIN_STATUS_OK;
    g_ptr_array_add(e->domains, d);
    d = g_new0(PerfDomainValue, 1);
    d->domain = 1;
    d->status = PERF_DOMAIN_STATUS_UNAVAILABLE;
    g_ptr_array_add(e->domains, d);
    g_ptr_array_add(list, e);

    e = g_new0(PerfEventInfo, 1);
    e->name = g_strdup("page_faults");
    e->unit = PERF_EVENT_UNIT_COUNT;
    e->source = PERF_EVENT_SOURCE_PERF;
    g_ptr_array_add(list, e);
    return list;
}

static void
test_query_reply(void)
{
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *k0 = NULL, *k1 = NULL, *k2 = NULL, *kt = NULL;
    g_autofree char *kd = NULL;
    QmpJson *e0, *e1, *e2, *v;

    handlers_reset();
    h.reply = sample_reply();
    g_assert_true(qph_qmp_marshal_query_perf_events(NULL, &ret, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpint(ret->type, ==, QMP_JSON_ARRAY);
    g_assert_cmpuint(ret->elements->len, ==, 3);
    e0 = g_ptr_array_index(ret->elements, 0);
    e1 = g_ptr_array_index(ret->elements, 1);
    e2 = g_ptr_array_index(ret->elements, 2);

    /* Members in schema order; absent optional members left out. */
    k0 = keys_of(e0);
    g_assert_cmpstr(k0, ==,
                    "name enabled value unit source time-enabled "
                    "time-running scaled user-only exited-value description "
                    "threads");
    k1 = keys_of(e1);
    g_assert_cmpstr(k1, ==, "name enabled value unit source domains");
    k2 = keys_of(e2);
    g_assert_cmpstr(k2, ==, "name enabled unit source");
    kt = keys_of(
        g_ptr_array_index(qmp_json_object_get(e0, "threads")->elements, 1));
    g_assert_cmpstr(kt, ==,
                    "thread-id name kind value scaled unscheduled cpu-index "
                    "qom-path");
    kd = keys_of(
        g_ptr_array_index(qmp_json_object_get(e1, "domains")->elements, 1));
    g_assert_cmpstr(kd, ==, "domain status");

    /* uint64 beyond int64 stays unsigned; small ones are plain ints. */
    v = qmp_json_object_get(e0, "value");
    g_assert_cmpint(v->type, ==, QMP_JSON_UINT);
    g_assert_cmpuint(v->u, ==, G_MAXUINT64);
    v = qmp_json_object_get(e0, "exited-value");
    g_assert_cmpint(v->type, ==, QMP_JSON_INT);
    g_assert_cmpint(v->i, ==, 12);
    v = qmp_json_object_get(e0, "unit");
    g_assert_cmpstr(v->s, ==, "count");
    v = qmp_json_object_get(
        g_ptr_array_index(qmp_json_object_get(e0, "threads")->elements, 2),
        "kind");
    g_assert_cmpstr(v->s, ==, "iothread");
    handlers_reset();
}

/* Reply -> tree -> C -> tree: the same text both times. */
static void
test_round_trip(void)
{
    g_autoptr(GPtrArray) list = sample_reply();
    g_autoptr(GPtrArray) back = NULL;
    g_autoptr(QmpJson) tree = NULL;
    g_autoptr(QmpJson) tree2 = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL, *text2 = NULL;
    PerfEventInfo *e;
    PerfThreadValue *t;

    tree = qph_output_PerfEventInfoList(list, &error);
    g_assert_no_error(error);
    text = to_text(tree);
    back = qph_input_PerfEventInfoList(tree, &error);
    g_assert_no_error(error);
    g_assert_nonnull(back);
    g_assert_cmpuint(back->len, ==, 3);
    e = g_ptr_array_index(back, 0);
    g_assert_cmpstr(e->name, ==, "cpu_cycles");
    g_assert_true(e->has_value);
    g_assert_cmpuint(e->value, ==, G_MAXUINT64);
    g_assert_cmpstr(e->description, ==, "CPU cycles \"unhalted\"\n");
    g_assert_true(e->has_threads);
    t = g_ptr_array_index(e->threads, 1);
    g_assert_cmpint(t->kind, ==, PERF_THREAD_KIND_VCPU);
    g_assert_true(t->has_cpu_index);
    g_assert_cmpint(t->cpu_index, ==, 0);
    g_assert_cmpstr(t->qom_path, ==, "/machine/unattached/device[0]");
    g_assert_false(t->has_id);
    e = g_ptr_array_index(back, 2);
    g_assert_false(e->enabled);
    g_assert_false(e->has_value);
    g_assert_false(e->has_scaled);
    g_assert_null(e->threads);
    tree2 = qph_output_PerfEventInfoList(back, &error);
    g_assert_no_error(error);
    text2 = to_text(tree2);
    g_assert_cmpstr(text, ==, text2);
}

/* Reading the reply types back uses the same error texts. */
static void
test_input_reply_types(void)
{
    static const struct {
        const char *json;
        const char *desc;
    } cases[] = {
        {"[{\"name\": \"x\", \"enabled\": false, \"unit\": \"kb\", "
         "\"source\": \"perf\"}]",
         "Parameter 'unit' does not accept value 'kb'"},
        {"[{\"name\": \"x\", \"enabled\": false, \"unit\": 1, "
         "\"source\": \"perf\"}]",
         "Invalid parameter type for '[0].unit', expected: string"},
        {"[{\"name\": \"x\", \"enabled\": true, \"unit\": \"ns\", "
         "\"source\": \"perf\", \"value\": \"1\"}]",
         "Parameter '[0].value' expects uint64"},
        {"[{\"name\": \"x\", \"enabled\": true, \"unit\": \"ns\", "
         "\"source\": \"perf\", \"threads\": [{\"thread-id\": 1.5}]}]",
         "Invalid parameter type for '[0].threads[0].thread-id', expected: "
         "integer"},
        {"[{\"name\": \"x\", \"enabled\": true, \"unit\": \"ns\", "
         "\"source\": \"perf\", \"threads\": [{\"thread-id\": 1, \"name\": "
         "\"t\", \"kind\": \"gpu\", \"value\": 0, \"scaled\": false}]}]",
         "Parameter 'kind' does not accept value 'gpu'"},
        {"[{\"name\": \"x\", \"enabled\": true, \"unit\": \"bytes\", "
         "\"source\": \"resctrl\", \"domains\": [{\"domain\": 0}]}]",
         "Parameter '[0].domains[0].status' is missing"},
        {"{}", "Invalid parameter type for '<anonymous>', expected: array"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(QmpJson) v = parse(cases[i].json);
        g_autoptr(GPtrArray) list = NULL;
        g_autoptr(GError) error = NULL;

        list = qph_input_PerfEventInfoList(v, &error);
        g_assert_null(list);
        g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
        g_assert_cmpstr(error->message, ==, cases[i].desc);
    }
}

/* A bug in the dispatcher becomes an error reply, not a crash. */
static void
test_output_errors(void)
{
    g_autoptr(GPtrArray) list = qph_new_PerfEventInfoList();
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;
    PerfEventInfo *e = g_new0(PerfEventInfo, 1);

    g_ptr_array_add(list, e);
    e->unit = PERF_EVENT_UNIT_COUNT;
    e->source = PERF_EVENT_SOURCE_PERF;
    ret = qph_output_PerfEventInfoList(list, &error); /* name is NULL */
    g_assert_null(ret);
    g_assert_cmpstr(error->message, ==,
                    "Cannot build the reply: member 'name' of PerfEventInfo "
                    "is missing or out of range.");
    g_clear_error(&error);

    e->name = g_strdup("x");
    e->unit = PERF_EVENT_UNIT__LAST;
    ret = qph_output_PerfEventInfoList(list, &error);
    g_assert_null(ret);
    g_assert_cmpstr(error->message, ==,
                    "Cannot build the reply: member 'unit' of PerfEventInfo "
                    "is missing or out of range.");
    g_clear_error(&error);

    e->unit = PERF_EVENT_UNIT_COUNT;
    e->has_threads = TRUE; /* but threads is NULL */
    ret = qph_output_PerfEventInfoList(list, &error);
    g_assert_null(ret);
    g_assert_nonnull(error);
    g_clear_error(&error);

    e->has_threads = FALSE;
    ret = qph_output_PerfEventInfoList(list, &error);
    g_assert_no_error(error);
    g_assert_nonnull(ret);
}

/* ---- Direct writers: the same bytes as qmp_json_write(qph_output_<T>) -- */

static const char *const write_strings[] = {
    "",
    "plain",
    "quote \" and back\\slash \\\"",
    /* One character to escape and nothing else (write_str copies strings
     * without any at once and leaves the others to qmp_json_write_string). */
    "only \"quotes\"",
    "only back\\slash",
    "\x1f",
    "ctl \x01\x02\x1f \t\n\r\b\f end",
    "del \x7f",
    "utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    "bad \xff\xfe \xc3",
    "nul \xc0\x80 modified",
    "/machine/unattached/device[0]",
};

static const guint64 write_uints[] = {
    0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u, (guint64)G_MAXINT64,
    (guint64)G_MAXINT64 + 1, G_MAXUINT64 - 1, G_MAXUINT64,
};

static const gint64 write_ints[] = {
    0, 1, -1, 9, -10, 1234567890, G_MAXINT64, G_MININT64, G_MININT64 + 1,
};

#define W_STR(i) (write_strings[(i) % G_N_ELEMENTS(write_strings)])
#define W_UINT(i) (write_uints[(i) % G_N_ELEMENTS(write_uints)])
#define W_INT(i) (write_ints[(i) % G_N_ELEMENTS(write_ints)])

/* Both ways succeed and give the same text; return it. */
#define CHECK_SAME(T, obj)                                                    \
    do {                                                                      \
        g_autoptr(GError) err1 = NULL;                                        \
        g_autoptr(GError) err2 = NULL;                                        \
        g_autoptr(QmpJson) tree = qph_output_##T((obj), &err1);               \
        g_autoptr(GString) direct = g_string_new("");                         \
        g_autofree char *via_tree = NULL;                                     \
                                                                              \
        g_assert_no_error(err1);                                              \
        g_assert_nonnull(tree);                                               \
        via_tree = to_text(tree);                                             \
        g_assert_true(qph_write_##T(direct, (obj), &err2));                   \
        g_assert_no_error(err2);                                              \
        g_assert_cmpstr(direct->str, ==, via_tree);                           \
        g_assert_cmpuint(direct->len, ==, strlen(via_tree));                  \
    } while (0)

/* Both ways fail, with the same message. */
#define CHECK_BOTH_FAIL(T, obj)                                               \
    do {                                                                      \
        g_autoptr(GError) err1 = NULL;                                        \
        g_autoptr(GError) err2 = NULL;                                        \
        g_autoptr(QmpJson) tree = qph_output_##T((obj), &err1);               \
        g_autoptr(GString) direct = g_string_new("");                         \
                                                                              \
        g_assert_null(tree);                                                  \
        g_assert_nonnull(err1);                                               \
        g_assert_false(qph_write_##T(direct, (obj), &err2));                  \
        g_assert_nonnull(err2);                                               \
        g_assert_cmpstr(err1->message, ==, err2->message);                    \
    } while (0)

static PerfThreadValue *
write_thread(guint i, guint opts)
{
    PerfThreadValue *t = g_new0(PerfThreadValue, 1);

    t->thread_id = W_INT(i);
    t->name = g_strdup(W_STR(i));
    t->kind = (PerfThreadKind)(i % PERF_THREAD_KIND__LAST);
    t->value = W_UINT(i);
    t->scaled = i & 1;
    t->has_cpu_index = opts & 1;
    t->cpu_index = W_INT(i + 3);
    t->has_qom_path = (opts >> 1) & 1;
    t->qom_path = t->has_qom_path ? g_strdup(W_STR(i + 1)) : NULL;
    t->has_id = (opts >> 2) & 1;
    t->id = t->has_id ? g_strdup(W_STR(i + 2)) : NULL;
    return t;
}

static PerfDomainValue *
write_domain(guint i, gboolean has_value)
{
    PerfDomainValue *d = g_new0(PerfDomainValue, 1);

    d->domain = W_INT(i);
    d->has_value = has_value;
    d->value = W_UINT(i + 1);
    d->status = (PerfDomainStatus)(i % PERF_DOMAIN_STATUS__LAST);
    return d;
}

/* Optional members of PerfEventInfo present as the bits of @opts say. */
static PerfEventInfo *
write_event(guint i, guint opts)
{
    PerfEventInfo *e = g_new0(PerfEventInfo, 1);

    e->name = g_strdup(W_STR(i));
    e->enabled = (i >> 1) & 1;
    e->unit = (PerfEventUnit)(i % PERF_EVENT_UNIT__LAST);
    e->source = (PerfEventSource)(i % PERF_EVENT_SOURCE__LAST);
    e->has_value = opts & 1;
    e->value = W_UINT(i);
    e->has_time_enabled = (opts >> 1) & 1;
    e->time_enabled = W_UINT(i + 1);
    e->has_time_running = (opts >> 2) & 1;
    e->time_running = W_UINT(i + 2);
    e->has_scaled = (opts >> 3) & 1;
    e->scaled = i & 1;
    e->has_user_only = (opts >> 4) & 1;
    e->user_only = (i >> 2) & 1;
    e->has_exited_value = (opts >> 5) & 1;
    e->exited_value = W_UINT(i + 5);
    e->has_description = (opts >> 6) & 1;
    e->description = e->has_description ? g_strdup(W_STR(i + 3)) : NULL;
    e->has_threads = (opts >> 7) & 1;
    if (e->has_threads) {
        /* Empty lists too. */
        e->threads = qph_new_PerfThreadValueList();
        for (guint k = 0; k < i % 4; k++) {
            g_ptr_array_add(e->threads, write_thread(i + k, (i + k) % 8));
        }
    }
    e->has_domains = (opts >> 8) & 1;
    if (e->has_domains) {
        e->domains = qph_new_PerfDomainValueList();
        for (guint k = 0; k < i % 3; k++) {
            g_ptr_array_add(e->domains, write_domain(i + k, (i + k) & 1));
        }
    }
    return e;
}

static void
test_write_scalars(void)
{
    /* Every optional combination with every value of each table. */
    for (guint i = 0; i < 3 * G_N_ELEMENTS(write_uints); i++) {
        for (guint opts = 0; opts < 8; opts++) {
            g_autoptr(PerfThreadValue) t = write_thread(i, opts);

            CHECK_SAME(PerfThreadValue, t);
        }
        for (guint has = 0; has < 2; has++) {
            g_autoptr(PerfDomainValue) d = write_domain(i, has);

            CHECK_SAME(PerfDomainValue, d);
        }
        {
            g_autoptr(PerfEventSetting) s = g_new0(PerfEventSetting, 1);

            s->name = g_strdup(W_STR(i));
            s->enabled = i & 1;
            CHECK_SAME(PerfEventSetting, s);
        }
    }
}

static void
test_write_events(void)
{
    /* All 2^9 combinations of PerfEventInfo's optional members. */
    for (guint opts = 0; opts < 512; opts++) {
        g_autoptr(GPtrArray) list = qph_new_PerfEventInfoList();

        for (guint i = 0; i < 5; i++) {
            g_ptr_array_add(list, write_event(opts + i, opts));
        }
        CHECK_SAME(PerfEventInfo, g_ptr_array_index(list, 0));
        CHECK_SAME(PerfEventInfoList, list);
    }
}

static void
test_write_lists(void)
{
    g_autoptr(GPtrArray) events = qph_new_PerfEventInfoList();
    g_autoptr(GPtrArray) threads = qph_new_PerfThreadValueList();
    g_autoptr(GPtrArray) domains = qph_new_PerfDomainValueList();
    g_autoptr(GPtrArray) settings = qph_new_PerfEventSettingList();
    g_autoptr(GPtrArray) strs = qph_new_strList();
    g_autoptr(GPtrArray) sample = sample_reply();

    /* Empty lists. */
    CHECK_SAME(PerfEventInfoList, events);
    CHECK_SAME(PerfThreadValueList, threads);
    CHECK_SAME(PerfDomainValueList, domains);
    CHECK_SAME(PerfEventSettingList, settings);
    CHECK_SAME(strList, strs);
    for (guint i = 0; i < G_N_ELEMENTS(write_strings); i++) {
        g_ptr_array_add(strs, g_strdup(write_strings[i]));
        CHECK_SAME(strList, strs);
    }
    CHECK_SAME(PerfEventInfoList, sample);
}

static void
test_write_errors(void)
{
    g_autoptr(GPtrArray) list = qph_new_PerfEventInfoList();
    g_autoptr(GPtrArray) strs = qph_new_strList();
    PerfEventInfo *e = write_event(1, 0x1ff);
    PerfThreadValue *t;

    g_ptr_array_add(list, e);
    CHECK_SAME(PerfEventInfoList, list);

    g_clear_pointer(&e->name, g_free);
    CHECK_BOTH_FAIL(PerfEventInfoList, list);
    e->name = g_strdup("x");

    e->unit = PERF_EVENT_UNIT__LAST;
    CHECK_BOTH_FAIL(PerfEventInfoList, list);
    e->unit = PERF_EVENT_UNIT_NS;

    g_clear_pointer(&e->threads, g_ptr_array_unref);
    CHECK_BOTH_FAIL(PerfEventInfoList, list);
    e->threads = qph_new_PerfThreadValueList();
    t = write_thread(2, 7);
    g_ptr_array_add(e->threads, t);
    CHECK_SAME(PerfEventInfoList, list);

    t->kind = PERF_THREAD_KIND__LAST;
    CHECK_BOTH_FAIL(PerfEventInfoList, list);
    t->kind = PERF_THREAD_KIND_VCPU;
    g_clear_pointer(&t->qom_path, g_free);
    CHECK_BOTH_FAIL(PerfEventInfoList, list);
    t->has_qom_path = FALSE;
    CHECK_SAME(PerfEventInfoList, list);

    g_ptr_array_add(e->threads, NULL);
    CHECK_BOTH_FAIL(PerfEventInfoList, list);

    CHECK_BOTH_FAIL(PerfEventInfoList, NULL);
    CHECK_BOTH_FAIL(PerfEventInfo, NULL);
    g_ptr_array_add(strs, g_strdup("a"));
    g_ptr_array_add(strs, NULL);
    CHECK_BOTH_FAIL(strList, strs);
}

/* The text marshallers answer what the tree marshallers answer. */
static void
test_marshal_text(void)
{
    static const char *const query_args[] = {
        NULL, "{}", "{\"per-thread\": true}", "{\"names\": [\"a\"]}",
        "{\"names\": 1}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(query_args); i++) {
        g_autoptr(QmpJson) args = parse(query_args[i]);
        g_autoptr(QmpJson) ret = NULL;
        g_autoptr(GString) text = g_string_new("");
        g_autoptr(GError) err1 = NULL;
        g_autoptr(GError) err2 = NULL;
        gboolean ok1, ok2;

        handlers_reset();
        h.reply = sample_reply();
        ok1 = qph_qmp_commands[QPH_QMP_COMMAND_QUERY_PERF_EVENTS].marshal(
            args, &ret, NULL, &err1);
        handlers_reset();
        h.reply = sample_reply();
        ok2 = qph_qmp_commands[QPH_QMP_COMMAND_QUERY_PERF_EVENTS].marshal_text(
            args, text, NULL, &err2);
        g_assert_cmpint(ok1, ==, ok2);
        if (ok1) {
            g_autofree char *via_tree = to_text(ret);

            g_assert_no_error(err2);
            g_assert_cmpstr(text->str, ==, via_tree);
        } else {
            g_assert_cmpstr(err1->message, ==, err2->message);
        }
    }
    {
        g_autoptr(QmpJson) args = parse(
            "{\"events\": [{\"name\": \"a\", \"enabled\": true}]}");
        g_autoptr(GString) text = g_string_new("");
        g_autoptr(GError) error = NULL;

        handlers_reset();
        g_assert_true(qph_qmp_marshal_text_set_perf_events(args, text, NULL,
                                                           &error));
        g_assert_no_error(error);
        g_assert_cmpstr(text->str, ==, "{}");
        handlers_reset();
        h.fail = "Nope.";
        g_assert_false(qph_qmp_marshal_text_set_perf_events(args, text, NULL,
                                                            &error));
        g_assert_cmpstr(error->message, ==, "Nope.");
    }
    handlers_reset();
}

static void
test_introspect_symbols(void)
{
    g_assert_true(g_str_has_prefix(qph_qapi_introspect_commands,
                                   "{\"name\": \"set-perf-events\"}, "));
    g_assert_nonnull(
        strstr(qph_qapi_introspect_schema, "\"name\": \"query-perf-events\""));
    g_assert_true(qph_qapi_introspect_schema[0] == '{');
    g_assert_true(g_str_has_suffix(qph_qapi_introspect_schema, "}"));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/table", test_table);
    g_test_add_func("/qapi/enums", test_enums);
    for (guint i = 0; i < G_N_ELEMENTS(error_cases); i++) {
        g_autofree char *path = g_strdup_printf("/qapi/args-error/%s/%u",
                                                error_cases[i].command, i);

        g_test_add_data_func(path, &error_cases[i], test_error);
    }
    g_test_add_func("/qapi/set-perf-events/ok", test_set_ok);
    g_test_add_func("/qapi/set-perf-events/empty-list", test_set_empty_list);
    g_test_add_func("/qapi/set-perf-events/handler-errors",
                    test_set_handler_errors);
    g_test_add_func("/qapi/query-perf-events/defaults", test_query_defaults);
    g_test_add_func("/qapi/query-perf-events/args", test_query_args);
    g_test_add_func("/qapi/query-perf-events/reply", test_query_reply);
    g_test_add_func("/qapi/output/round-trip", test_round_trip);
    g_test_add_func("/qapi/input/reply-types", test_input_reply_types);
    g_test_add_func("/qapi/output/errors", test_output_errors);
    g_test_add_func("/qapi/write/scalars", test_write_scalars);
    g_test_add_func("/qapi/write/events", test_write_events);
    g_test_add_func("/qapi/write/lists", test_write_lists);
    g_test_add_func("/qapi/write/errors", test_write_errors);
    g_test_add_func("/qapi/write/marshal-text", test_marshal_text);
    g_test_add_func("/qapi/introspect/symbols", test_introspect_symbols);
    return g_test_run();
}
