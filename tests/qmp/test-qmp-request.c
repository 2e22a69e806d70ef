/*
 * test-qmp-request.c: QEMU's request checks and the replies QEMU prints
 *
 * One test per error text of qmp_dispatch_check_obj(), plus the order in
 * which members are checked (QDict order, not input order), what
 * QmpRequest points at, and the exact bytes of made-up replies.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "qmp/qmp-request.h"

typedef struct {
    gboolean allow_oob;
    gboolean ok;
    char *error;
    char *command;
    gboolean oob;
    char *id;
    char *arguments;
} Result;

static void
result_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    Result *r = opaque;
    g_auto(QmpRequest) req = {0};

    g_assert_null(error_text);
    r->ok = qmp_request_check(msg, r->allow_oob, &req, &r->error);
    r->command = g_strdup(req.command);
    r->oob = req.oob;
    if (req.id) {
        r->id = qmp_request_format_id(msg, req.id);
    }
    if (req.arguments) {
        r->arguments = g_strndup(msg->data + req.arguments->value_offset,
                                 req.arguments->value_len);
    }
}

static void
result_clear(Result *r)
{
    g_free(r->error);
    g_free(r->command);
    g_free(r->id);
    g_free(r->arguments);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Result, result_clear)

static void
check(const char *input, gboolean allow_oob, Result *r)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(result_emit, r);

    r->allow_oob = allow_oob;
    qmp_streamer_feed(s, input, strlen(input));
}

#define assert_error(input, allow_oob, text)                                  \
    do {                                                                      \
        g_auto(Result) r_ = {0};                                              \
        check(input, allow_oob, &r_);                                         \
        g_assert_false(r_.ok);                                                \
        g_assert_cmpstr(r_.error, ==, text);                                  \
    } while (0)

static void
test_accepted(void)
{
    g_auto(Result) r = {0};

    check("{\"id\": 1.50, \"arguments\": {\"a\": [1]}, "
          "\"execute\": \"query-\\u0073tatus\"}",
          FALSE, &r);
    g_assert_true(r.ok);
    g_assert_cmpstr(r.command, ==, "query-status"); /* unescaped */
    g_assert_false(r.oob);
    g_assert_cmpstr(r.id, ==, "1.5"); /* as QEMU echoes it */
    g_assert_cmpstr(r.arguments, ==, "{\"a\": [1]}"); /* as sent */
}

static void
test_accepted_oob(void)
{
    g_auto(Result) r = {0};

    check("{\"exec-oob\": \"migrate-pause\"}", TRUE, &r);
    g_assert_true(r.ok);
    g_assert_cmpstr(r.command, ==, "migrate-pause");
    g_assert_true(r.oob);
    g_assert_null(r.id);
}

static void
test_not_an_object(void)
{
    assert_error("[{\"execute\": \"x\"}]", FALSE,
                 "QMP input must be a JSON object");
    assert_error("\"execute\"", FALSE, "QMP input must be a JSON object");
}

static void
test_execute_not_a_string(void)
{
    assert_error("{\"execute\": 1}", FALSE,
                 "QMP input member 'execute' must be a string");
    assert_error("{\"exec-oob\": null}", TRUE,
                 "QMP input member 'exec-oob' must be a string");
}

static void
test_clash(void)
{
    /* "exec-oob" (bucket 162) is visited before "execute" (bucket 299)
     * whatever the input order, so QEMU always complains about execute. */
    assert_error("{\"execute\": \"a\", \"exec-oob\": \"b\"}", TRUE,
                 "QMP input member 'execute' clashes with 'exec-oob'");
    assert_error("{\"exec-oob\": \"b\", \"execute\": \"a\"}", TRUE,
                 "QMP input member 'execute' clashes with 'exec-oob'");
}

static void
test_exec_oob_needs_oob(void)
{
    assert_error("{\"exec-oob\": \"x\"}", FALSE,
                 "QMP input member 'exec-oob' is unexpected");
}

static void
test_arguments_not_an_object(void)
{
    assert_error("{\"execute\": \"x\", \"arguments\": []}", FALSE,
                 "QMP input member 'arguments' must be an object");
}

static void
test_unexpected_in_qdict_order(void)
{
    /* "bar" (bucket 254) is visited before "foo" (bucket 490). */
    assert_error("{\"foo\": 1, \"bar\": 2, \"execute\": \"y\"}", FALSE,
                 "QMP input member 'bar' is unexpected");
}

static void
test_lacks_execute(void)
{
    assert_error("{}", FALSE, "QMP input lacks member 'execute'");
    assert_error("{\"id\": 1, \"arguments\": {}}", FALSE,
                 "QMP input lacks member 'execute'");
}

static void
test_id_kept_on_error(void)
{
    g_auto(Result) r = {0};

    /* QEMU echoes the id even when the request is malformed. */
    check("{\"execute\": 1, \"id\": {\"b\": 1, \"a\": \"\\u00e9\"}}", FALSE,
          &r);
    g_assert_false(r.ok);
    g_assert_cmpstr(r.id, ==, "{\"a\": \"\\u00E9\", \"b\": 1}");
}

static void
test_reply_error(void)
{
    g_autofree char *plain = qmp_reply_error("GenericError", "a \"b\"", NULL);
    g_autofree char *with_id =
        qmp_reply_error("CommandNotFound", "The command x has not been found",
                        "1.5");

    g_assert_cmpstr(plain, ==,
                    "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"a \\\"b\\\"\"}}\r\n");
    /* Observed from QEMU 7.2: the id comes first. */
    g_assert_cmpstr(with_id, ==,
                    "{\"id\": 1.5, \"error\": {\"class\": \"CommandNotFound\", "
                    "\"desc\": \"The command x has not been found\"}}\r\n");
}

static void
test_reply_return(void)
{
    g_autofree char *plain = qmp_reply_return("{}", NULL);
    g_autofree char *with_id = qmp_reply_return("{}", "\"libvirt-1\"");

    g_assert_cmpstr(plain, ==, "{\"return\": {}}\r\n");
    g_assert_cmpstr(with_id, ==, "{\"return\": {}, \"id\": \"libvirt-1\"}\r\n");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/request/accepted", test_accepted);
    g_test_add_func("/qmp/request/accepted-oob", test_accepted_oob);
    g_test_add_func("/qmp/request/error/not-an-object", test_not_an_object);
    g_test_add_func("/qmp/request/error/must-be-a-string",
                    test_execute_not_a_string);
    g_test_add_func("/qmp/request/error/clashes", test_clash);
    g_test_add_func("/qmp/request/error/exec-oob-unexpected",
                    test_exec_oob_needs_oob);
    g_test_add_func("/qmp/request/error/arguments-must-be-object",
                    test_arguments_not_an_object);
    g_test_add_func("/qmp/request/error/unexpected-in-qdict-order",
                    test_unexpected_in_qdict_order);
    g_test_add_func("/qmp/request/error/lacks-execute", test_lacks_execute);
    g_test_add_func("/qmp/request/id-kept-on-error", test_id_kept_on_error);
    g_test_add_func("/qmp/request/reply/error", test_reply_error);
    g_test_add_func("/qmp/request/reply/return", test_reply_return);
    return g_test_run();
}
