/*
 * test-json-value.c: the tree, QEMU's writer and QDict order
 *
 * QEMU prints objects in hash-bucket order and escapes strings its own
 * way.  The expected strings below are what QEMU 7.2 prints (taken from
 * its greeting and replies, and from test-qmp-vectors.c's recordings).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp/json-value.h"

static char *
write_value(const QmpJson *v)
{
    GString *out = g_string_new(NULL);

    qmp_json_write(out, v);
    return g_string_free(out, FALSE);
}

static char *
write_string(const char *s)
{
    GString *out = g_string_new(NULL);

    qmp_json_write_string(out, s);
    return g_string_free(out, FALSE);
}

static void
test_tdb_hash(void)
{
    /* 0x238F13AF * 1 + 'a', then 1103515243 * value + 12345 (mod 2^32). */
    g_assert_cmpuint(qmp_qdict_hash("a"), ==, 155874025u);
    g_assert_cmpuint(qmp_qdict_hash("id") % 512, ==, 486);
    g_assert_cmpuint(qmp_qdict_hash("error") % 512, ==, 489);
}

static void
test_order_by_bucket(void)
{
    /* QEMU answers {"id": 1, "error": ...} and {"return": ..., "id": 1}. */
    const char *error_keys[] = {"error", "id"};
    const char *return_keys[] = {"return", "id"};
    g_autofree guint *e = qmp_qdict_order(error_keys, 2);
    g_autofree guint *r = qmp_qdict_order(return_keys, 2);

    g_assert_cmpuint(e[0], ==, 1);
    g_assert_cmpuint(e[1], ==, 0);
    g_assert_cmpuint(r[0], ==, 0);
    g_assert_cmpuint(r[1], ==, 1);
}

static void
test_order_newest_first_in_bucket(void)
{
    /* QEMU's greeting: the version is built major, minor, micro, and
     * prints as {"micro": 22, "minor": 2, "major": 7}: minor and micro
     * share bucket 225, and the newer one comes first. */
    g_autoptr(QmpJson) v = qmp_json_new(QMP_JSON_OBJECT);
    g_autofree char *out = NULL;

    qmp_json_object_set(v, "major", qmp_json_new_int(7));
    qmp_json_object_set(v, "minor", qmp_json_new_int(2));
    qmp_json_object_set(v, "micro", qmp_json_new_int(22));
    out = write_value(v);
    g_assert_cmpstr(out, ==, "{\"micro\": 22, \"minor\": 2, \"major\": 7}");
}

static void
test_write_scalars(void)
{
    g_autoptr(QmpJson) n = qmp_json_new(QMP_JSON_NULL);
    g_autoptr(QmpJson) t = qmp_json_new_bool(TRUE);
    g_autoptr(QmpJson) i = qmp_json_new_int(G_MININT64);
    g_autoptr(QmpJson) u = qmp_json_new(QMP_JSON_UINT);
    g_autoptr(QmpJson) d = qmp_json_new(QMP_JSON_DOUBLE);
    g_autofree char *sn = write_value(n);
    g_autofree char *st = write_value(t);
    g_autofree char *si = write_value(i);
    g_autofree char *su = NULL;
    g_autofree char *sd = NULL;

    u->u = G_MAXUINT64;
    d->d = 1.0 / 3;
    su = write_value(u);
    sd = write_value(d);
    g_assert_cmpstr(sn, ==, "null");
    g_assert_cmpstr(st, ==, "true");
    g_assert_cmpstr(si, ==, "-9223372036854775808");
    g_assert_cmpstr(su, ==, "18446744073709551615");
    /* "%.17g", like qnum_to_string(). */
    g_assert_cmpstr(sd, ==, "0.33333333333333331");
}

static void
test_write_containers(void)
{
    g_autoptr(QmpJson) a = qmp_json_new(QMP_JSON_ARRAY);
    g_autoptr(QmpJson) o = qmp_json_new(QMP_JSON_OBJECT);
    g_autofree char *empty_a = write_value(a);
    g_autofree char *empty_o = write_value(o);
    g_autofree char *s = NULL;

    g_assert_cmpstr(empty_a, ==, "[]");
    g_assert_cmpstr(empty_o, ==, "{}");
    qmp_json_array_append(a, qmp_json_new_int(1));
    qmp_json_array_append(a, qmp_json_new(QMP_JSON_OBJECT));
    qmp_json_object_set(o, "k", g_steal_pointer(&a));
    s = write_value(o);
    /* Compact mode: ", " and ": ". */
    g_assert_cmpstr(s, ==, "{\"k\": [1, {}]}");
}

static void
test_object_set_replaces(void)
{
    g_autoptr(QmpJson) o = qmp_json_new(QMP_JSON_OBJECT);

    qmp_json_object_set(o, "a", qmp_json_new_int(1));
    qmp_json_object_set(o, "a", qmp_json_new_int(2));
    g_assert_cmpuint(o->members->len, ==, 1);
    g_assert_cmpint(qmp_json_object_get(o, "a")->i, ==, 2);
    g_assert_null(qmp_json_object_get(o, "b"));
}

static void
test_write_string_escapes(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "\"plain\""},
        {"\"\\", "\"\\\"\\\\\""},
        {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
        {"/", "\"/\""},                       /* not escaped */
        {"\x01\x1f", "\"\\u0001\\u001F\""},   /* uppercase hex */
        {"\x7f", "\"\\u007F\""},              /* DEL is escaped */
        {"\xc3\xa9", "\"\\u00E9\""},          /* non-ASCII is escaped */
        {"\xc0\x80", "\"\\u0000\""},          /* modified UTF-8 NUL */
        {"\xf0\x9f\x98\x80", "\"\\uD83D\\uDE00\""}, /* surrogate pair */
        {"\xff", "\"\\uFFFD\""},              /* invalid: replaced */
        {"a\xc3", "\"a\\uFFFD\""},            /* truncated: replaced */
        {"\xed\xa0\x80", "\"\\uFFFD\""},      /* surrogate: replaced */
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *s = write_string(cases[i].in);

        g_assert_cmpstr(s, ==, cases[i].out);
    }
}

static void
test_type_names(void)
{
    g_assert_cmpstr(qmp_json_type_name(QMP_JSON_UINT), ==, "number");
    g_assert_cmpstr(qmp_json_type_name(QMP_JSON_BOOL), ==, "boolean");
    g_assert_cmpstr(qmp_json_type_name(QMP_JSON_OBJECT), ==, "object");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/value/qdict/tdb-hash", test_tdb_hash);
    g_test_add_func("/qmp/value/qdict/bucket-order", test_order_by_bucket);
    g_test_add_func("/qmp/value/qdict/newest-first",
                    test_order_newest_first_in_bucket);
    g_test_add_func("/qmp/value/write/scalars", test_write_scalars);
    g_test_add_func("/qmp/value/write/containers", test_write_containers);
    g_test_add_func("/qmp/value/write/string-escapes",
                    test_write_string_escapes);
    g_test_add_func("/qmp/value/object-set-replaces",
                    test_object_set_replaces);
    g_test_add_func("/qmp/value/type-names", test_type_names);
    return g_test_run();
}
