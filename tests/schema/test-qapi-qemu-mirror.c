/*
 * test-qapi-qemu-mirror.c: the generated visitors against a QEMU transcript
 *
 * tests/schema/qemu-mirror.json copies the shape of a few QEMU 7.2 commands.
 * Each case below is an "arguments" object that was sent to a real
 * qemu-system-x86_64 7.2 (Debian 1:7.2+dfsg-7+deb12u18) and the "desc" it
 * answered, verbatim; NULL where QEMU accepted the arguments (and then
 * failed for reasons outside argument checking, e.g. "Device 'x' not
 * found").  The generated marshaller must give the same text.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <string.h>

#include "mirror-qph-qapi-commands.h"
#include "qmp/json-streamer.h"
#include "qmp/qmp-error.h"

typedef struct {
    const char *command;
    const char *args; /* NULL: no "arguments" member */
    const char *desc; /* NULL: accepted */
} MirrorCase;

static const MirrorCase cases[] = {
    /* qmp_capabilities */
    {"qmp_capabilities", "{\"enable\":\"x\"}",
     "Invalid parameter type for 'enable', expected: array"},
    {"qmp_capabilities", "{\"enable\":[5]}",
     "Invalid parameter type for 'enable[0]', expected: string"},
    {"qmp_capabilities", "{\"foo\":1,\"bar\":2,\"enable\":[]}",
     "Parameter 'bar' is unexpected"},
    {"qmp_capabilities", NULL, NULL},
    /* query-cpus-fast: no arguments at all */
    {"query-cpus-fast", "{\"x\":1}", "Parameter 'x' is unexpected"},
    {"query-cpus-fast", "{}", NULL},
    /* migrate-set-capabilities: a list of structs */
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":\"x\"}]}",
     "Invalid parameter type for 'capabilities[0].state', expected: boolean"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true},"
     "{\"capability\":\"xbzrle\",\"state\":\"x\"}]}",
     "Invalid parameter type for 'capabilities[1].state', expected: boolean"},
    {"migrate-set-capabilities", "{\"capabilities\":[5]}",
     "Invalid parameter type for 'capabilities[0]', expected: object"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true},5]}",
     "Invalid parameter type for 'capabilities[1]', expected: object"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"bogus\",\"state\":true}]}",
     "Parameter 'capability' does not accept value 'bogus'"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":7,\"state\":true}]}",
     "Invalid parameter type for 'capabilities[0].capability', expected: "
     "string"},
    {"migrate-set-capabilities", "{\"capabilities\":[{\"state\":true}]}",
     "Parameter 'capabilities[0].capability' is missing"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true,\"zz\":1}]}",
     "Parameter 'capabilities[0].zz' is unexpected"},
    {"migrate-set-capabilities",
     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true,\"zz\":1,"
     "\"yy\":2,\"aa\":3}]}",
     "Parameter 'capabilities[0].aa' is unexpected"},
    {"migrate-set-capabilities", "{\"capabilities\":{}}",
     "Invalid parameter type for 'capabilities', expected: array"},
    {"migrate-set-capabilities", "{\"capabilities\":null}",
     "Invalid parameter type for 'capabilities', expected: array"},
    {"migrate-set-capabilities", "{}", "Parameter 'capabilities' is missing"},
    {"migrate-set-capabilities", "{\"capabilities\":[],\"q\":1}",
     "Parameter 'q' is unexpected"},
    /* query-stats: enums, nested lists of str */
    {"query-stats",
     "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\",\"names\":[1]}]}",
     "Invalid parameter type for 'providers[0].names[0]', expected: string"},
    {"query-stats",
     "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\","
     "\"names\":[\"a\",1]}]}",
     "Invalid parameter type for 'providers[0].names[1]', expected: string"},
    {"query-stats", "{\"target\":\"bogus\"}",
     "Parameter 'target' does not accept value 'bogus'"},
    {"query-stats",
     "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\",\"names\":\"a\"}"
     "]}",
     "Invalid parameter type for 'providers[0].names', expected: array"},
    /* block-set-write-threshold: uint64 */
    {"block-set-write-threshold",
     "{\"node-name\":\"x\",\"write-threshold\":\"a\"}",
     "Parameter 'write-threshold' expects uint64"},
    {"block-set-write-threshold",
     "{\"node-name\":\"x\",\"write-threshold\":-1}", NULL},
    {"block-set-write-threshold",
     "{\"node-name\":\"x\",\"write-threshold\":1.5}",
     "Parameter 'write-threshold' expects uint64"},
    {"block-set-write-threshold",
     "{\"node-name\":\"x\",\"write-threshold\":18446744073709551616}",
     "Parameter 'write-threshold' expects uint64"},
    {"block-set-write-threshold",
     "{\"node-name\":\"x\",\"write-threshold\":18446744073709551615}", NULL},
    /* balloon: int */
    {"balloon", "{\"value\":18446744073709551615}",
     "Invalid parameter type for 'value', expected: integer"},
    {"balloon", "{\"value\":1.0}",
     "Invalid parameter type for 'value', expected: integer"},
    {"balloon", "{\"value\":\"1\"}",
     "Invalid parameter type for 'value', expected: integer"},
    /* qom-list-types: optional members given null */
    {"qom-list-types", "{\"abstract\":\"x\"}",
     "Invalid parameter type for 'abstract', expected: boolean"},
    {"qom-list-types", "{\"implements\":null}",
     "Invalid parameter type for 'implements', expected: string"},
    {"qom-list-types", "{\"abstract\":null}",
     "Invalid parameter type for 'abstract', expected: boolean"},
};

/* The handlers: accept anything.  Only argument checking is under test. */
gboolean
qph_qmp_migrate_set_capabilities(GPtrArray *capabilities, gpointer opaque,
                                 GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_qmp_capabilities(gboolean has_enable, GPtrArray *enable,
                         gpointer opaque, GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_query_stats(StatsTarget target, gboolean has_providers,
                    GPtrArray *providers, gpointer opaque, GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_block_set_write_threshold(char *node_name, guint64 write_threshold,
                                  gpointer opaque, GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_balloon(gint64 value, gpointer opaque, GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_qom_list_types(gboolean has_implements, char *implements,
                       gboolean has_abstract, gboolean abstract,
                       gpointer opaque, GError **error)
{
    return TRUE;
}

gboolean
qph_qmp_query_cpus_fast(gpointer opaque, GError **error)
{
    return TRUE;
}

static void
test_case(gconstpointer data)
{
    const MirrorCase *c = data;
    const QphQmpCommand *cmd = qph_qmp_command_lookup(c->command);
    g_autoptr(QmpJson) args = NULL;
    g_autoptr(QmpJson) ret = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok;

    g_assert_nonnull(cmd);
    if (c->args) {
        g_autofree char *parse_error = NULL;

        args = qmp_json_parse_value(c->args, strlen(c->args), &parse_error);
        g_assert_null(parse_error);
        g_assert_nonnull(args);
    }
    ok = cmd->marshal(args, &ret, NULL, &error);
    if (c->desc) {
        g_assert_false(ok);
        g_assert_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR);
        g_assert_cmpstr(error->message, ==, c->desc);
        g_assert_null(ret);
    } else {
        g_assert_no_error(error);
        g_assert_true(ok);
        g_assert_nonnull(ret);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path =
            g_strdup_printf("/qapi/qemu-mirror/%s/%u", cases[i].command, i);

        g_test_add_data_func(path, &cases[i], test_case);
    }
    return g_test_run();
}
