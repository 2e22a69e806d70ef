/*
 * fuzz-splice.c: both ways through the proxy, on whatever a client can send
 *
 * For every request the framing accepts, both paths a request can take:
 * in-band, it goes as the client sent it, and QEMU's answer comes back to
 * the client as it is (qph_reply_forward); exec-oob, the proxy replaces
 * the client's id by its own (qph_splice_id) and, when QEMU answers, puts
 * the client's id back or removes it (qph_reply_rewrite).  QEMU's answer
 * is simulated as QEMU would print the request back (qmp_json_write of it,
 * id included), which exercises the member scanner on every shape a value
 * can take.  An id QEMU echoes as something that is not JSON (an
 * overflowing number comes back as inf) is only checked to be echoed the
 * same way.  Properties: the in-band answer is QEMU's bytes and CRLF (the
 * helper's introspection text aside), its id exactly as the client's
 * prints; the client's id, as QEMU echoes it, reads as the helper's
 * exec-oob id for handle N exactly when qph_splice_id_is_reserved() says
 * so and gives that N (so the rule that keeps such requests apart from
 * exec-oob ones catches every one); the spliced request is one valid message whose id is
 * the helper's and whose other members are byte for byte the client's;
 * QEMU's echo of it reads back as that id; the rewritten answer is one
 * valid message whose id prints exactly as the client's did (or is
 * absent), whose other members are QEMU's, and, when the helper's
 * introspection text is spliced into a returned list, that list grows by
 * one element.  QEMU's side is framed by the framer's trusted kind
 * (fuzz_frame_qemu()); fuzz-framing.c runs it on the raw input.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "helper/reply.h"
#include "helper/splice.h"
#include "qmp/json-streamer.h"
#include "qmp/qmp-request.h"

#include <string.h>

#define HELPER_N 4294967301ULL /* beyond 32 bits on purpose */
#define HELPER_ID "\"qph-oob-4294967301\""

typedef struct {
    guint n_messages;
    guint n_errors;
    GString *data;
    GPtrArray *members; /* QmpMessageMember copies */
} One;

static void
member_copy_free(gpointer p)
{
    QmpMessageMember *m = p;

    g_free((char *)m->key);
    g_free(m);
}

static void
one_emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    One *one = opaque;

    if (error_text) {
        one->n_errors++;
        return;
    }
    if (one->n_messages++ == 0) {
        g_string_append_len(one->data, msg->data, msg->len);
        for (guint i = 0; i < msg->n_members; i++) {
            QmpMessageMember *m = g_memdup2(&msg->members[i],
                                            sizeof(QmpMessageMember));

            m->key = g_strdup(m->key);
            g_ptr_array_add(one->members, m);
        }
    }
}

/* Frame @text, expecting exactly one message. */
static void
frame_one(const char *text, gsize len, One *one)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(one_emit, one);

    one->data = g_string_new(NULL);
    one->members = g_ptr_array_new_with_free_func(member_copy_free);
    qmp_streamer_feed(s, text, len);
    qmp_streamer_flush(s);
    FUZZ_CHECK(one->n_errors == 0);
    FUZZ_CHECK(one->n_messages == 1);
}

static void
one_clear(One *one)
{
    g_string_free(one->data, TRUE);
    g_ptr_array_unref(one->members);
}

static const QmpMessageMember *
find_member(GPtrArray *members, const char *key)
{
    for (guint i = 0; i < members->len; i++) {
        const QmpMessageMember *m = members->pdata[i];

        if (g_str_equal(m->key, key)) {
            return m;
        }
    }
    return NULL;
}

static char *
extra_text(gboolean after_elements, gpointer data)
{
    return g_strdup(after_elements ? ", {\"name\": \"query-perf-events\"}"
                                   : "{\"name\": \"query-perf-events\"}");
}

/* QEMU's answer @reply_text (its print of the request) to the client's
 * in-band request, whose id as QEMU echoes it is @client_id (or none). */
static void
check_inband(const QmpMessage *msg, const QmpMessageMember *id,
             const char *client_id, GString *reply_text)
{
    g_autoptr(QmpMessage) scanned = NULL;
    g_autoptr(GBytes) plain = NULL;
    g_autoptr(GBytes) with_extra = NULL;
    const QmpMessageMember *ret;
    const char *data;
    gsize len;
    guint64 n = 0, k = 0;
    gboolean reserved = id && qph_splice_id_is_reserved(msg, id, &k);

    /* QEMU's echo of the id reads as the helper's exec-oob id for N
     * exactly when the rule that keeps the two apart says N. */
    if (client_id) {
        gboolean looks =
            qph_splice_parse_oob_id(client_id, strlen(client_id), &n);

        FUZZ_CHECK(reserved == looks);
        FUZZ_CHECK(!reserved || k == n);
    } else {
        FUZZ_CHECK(!reserved);
    }

    scanned = fuzz_frame_qemu(reply_text->str, reply_text->len);
    FUZZ_CHECK(scanned != NULL && scanned->len == reply_text->len);
    plain = qph_reply_forward(scanned, NULL, NULL);
    data = g_bytes_get_data(plain, &len);
    FUZZ_CHECK(len == reply_text->len + 2);
    FUZZ_CHECK(memcmp(data, reply_text->str, reply_text->len) == 0);
    FUZZ_CHECK(data[len - 2] == '\r' && data[len - 1] == '\n');
    if (client_id && scanned->n_members < QMP_FRAMER_MAX_MEMBERS) {
        const QmpMessageMember *echo = qmp_message_get(scanned, "id");

        FUZZ_CHECK(echo != NULL);
        FUZZ_CHECK(echo->value_len == strlen(client_id) &&
                   memcmp(reply_text->str + echo->value_offset, client_id,
                          echo->value_len) == 0);
    }
    ret = qmp_message_get(scanned, "return");
    if (ret && reply_text->str[ret->value_offset] == '[') {
        static const char extra[] = "{\"name\": \"query-perf-events\"}";

        with_extra = qph_reply_forward(scanned, extra_text, NULL);
        data = g_bytes_get_data(with_extra, &len);
        FUZZ_CHECK(len > reply_text->len + 2 + strlen(extra));
        FUZZ_CHECK(g_strstr_len(data, len, extra) != NULL);
    }
}

static void
check_request(const QmpMessage *msg)
{
    g_auto(QmpRequest) req = { 0 };
    g_autofree char *err = NULL;
    g_autofree char *client_id = NULL;
    g_autoptr(GString) spliced = g_string_new(NULL);
    g_autoptr(GString) reply_text = g_string_new(NULL);
    g_autoptr(GString) inband_text = g_string_new(NULL);
    g_autoptr(QmpJson) tree = NULL;
    g_autoptr(QmpJson) client_tree = NULL;
    g_autofree char *perr = NULL;
    One up = { 0 }, back = { 0 };
    g_autoptr(QmpMessage) scanned = NULL;
    gboolean extra;
    GBytes *rewritten;
    gsize rlen;
    const char *rdata;

    if (!qmp_request_check(msg, TRUE, &req, &err)) {
        return;
    }
    if (req.id) {
        client_id = qmp_request_format_id(msg, req.id);
        FUZZ_CHECK(client_id != NULL);
    }

    /* In-band: as the client sent it, and QEMU's answer as it is. */
    client_tree = qmp_json_parse_value(msg->data, msg->len, &perr);
    FUZZ_CHECK(client_tree != NULL);
    qmp_json_write(inband_text, client_tree);
    check_inband(msg, req.id, client_id, inband_text);
    if (!qph_splice_inband_keeps_id(req.id)) {
        g_autoptr(GString) without = g_string_new(NULL);
        One w = { 0 };

        /* A huge id left out: everything else byte for byte. */
        qph_splice_without_id(without, msg, req.id);
        frame_one(without->str, without->len, &w);
        FUZZ_CHECK(find_member(w.members, "id") == NULL);
        FUZZ_CHECK(w.members->len == msg->n_members - 1);
        one_clear(&w);
    }

    /* exec-oob, client to QEMU. */
    qph_splice_id(spliced, msg->data, msg->len,
                  req.id ? req.id->value_offset : 0,
                  req.id ? req.id->value_len : 0, HELPER_N);
    frame_one(spliced->str, spliced->len, &up);
    {
        const QmpMessageMember *id = find_member(up.members, "id");
        g_autofree char *id_text = NULL;

        FUZZ_CHECK(id != NULL);
        FUZZ_CHECK(up.members->len ==
                   msg->n_members + (req.id ? 0 : 1));
        id_text = g_strndup(up.data->str + id->value_offset, id->value_len);
        FUZZ_CHECK(g_str_equal(id_text, HELPER_ID));
        for (guint i = 0; i < msg->n_members; i++) {
            const QmpMessageMember *m = &msg->members[i];
            const QmpMessageMember *n = find_member(up.members, m->key);

            if (g_str_equal(m->key, "id")) {
                continue;
            }
            FUZZ_CHECK(n != NULL && n->value_len == m->value_len);
            FUZZ_CHECK(memcmp(up.data->str + n->value_offset,
                              msg->data + m->value_offset,
                              m->value_len) == 0);
        }
    }

    /* QEMU prints it back as its reply. */
    g_clear_pointer(&perr, g_free);
    tree = qmp_json_parse_value(up.data->str, up.data->len, &perr);
    FUZZ_CHECK(tree != NULL);
    qmp_json_write(reply_text, tree);
    one_clear(&up);
    scanned = fuzz_frame_qemu(reply_text->str, reply_text->len);
    FUZZ_CHECK(scanned != NULL && scanned->len == reply_text->len);
    if (!qmp_message_get(scanned, "id")) {
        /* Past QMP_FRAMER_MAX_MEMBERS: QEMU's replies never have that many. */
        FUZZ_CHECK(scanned->n_members == QMP_FRAMER_MAX_MEMBERS);
        return;
    }
    {
        const QmpMessageMember *ret = qmp_message_get(scanned, "return");
        const QmpMessageMember *echo = qmp_message_get(scanned, "id");
        guint64 n = 0;

        /* The helper knows its id again as QEMU echoes it. */
        FUZZ_CHECK(qph_splice_parse_oob_id(reply_text->str + echo->value_offset,
                                           echo->value_len, &n));
        FUZZ_CHECK(n == HELPER_N);
        extra = ret && reply_text->str[ret->value_offset] == '[';
    }
    rewritten = qph_reply_rewrite(scanned, client_id,
                                         extra_text, NULL);
    rdata = g_bytes_get_data(rewritten, &rlen);
    FUZZ_CHECK(rlen >= 2 && rdata[rlen - 2] == '\r' && rdata[rlen - 1] == '\n');
    if (client_id) {
        g_autofree char *id_err = NULL;
        g_autoptr(QmpJson) id_tree = qmp_json_parse_value(
            client_id, strlen(client_id), &id_err);

        if (!id_tree) {
            /* An id like 2e347 overflows to a double QEMU prints as "inf",
             * which is not JSON: the client gets what QEMU would send. */
            FUZZ_CHECK(g_strstr_len(rdata, rlen, client_id) != NULL);
            g_bytes_unref(rewritten);
            return;
        }
    }
    frame_one(rdata, rlen - 2, &back);
    {
        const QmpMessageMember *id = find_member(back.members, "id");
        g_autofree char *back_text = NULL;
        g_autoptr(QmpJson) back_tree = NULL;

        if (client_id) {
            g_autofree char *id_text = NULL;

            FUZZ_CHECK(id != NULL);
            id_text = g_strndup(back.data->str + id->value_offset,
                                id->value_len);
            FUZZ_CHECK(g_str_equal(id_text, client_id));
        } else {
            FUZZ_CHECK(id == NULL);
        }
        back_tree = qmp_json_parse_value(back.data->str, back.data->len,
                                         &back_text);
        FUZZ_CHECK(back_tree != NULL);
        FUZZ_CHECK(back_tree->members->len ==
                   tree->members->len - (client_id ? 0 : 1));
        if (extra) {
            QmpJson *a = qmp_json_object_get(back_tree, "return");
            QmpJson *b = qmp_json_object_get(tree, "return");

            FUZZ_CHECK(a && a->type == QMP_JSON_ARRAY);
            FUZZ_CHECK(a->elements->len == b->elements->len + 1);
        }
    }
    one_clear(&back);
    g_bytes_unref(rewritten);
}

static void
emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    if (msg && msg->type == QMP_JSON_OBJECT) {
        check_request(msg);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(QmpFramer) f = qmp_framer_new(QMP_FRAMER_STRICT, emit, NULL);

    /* What QEMU might send is fuzz-framing's (QMP_FRAMER_TRUSTED). */
    qmp_framer_feed(f, (const char *)data, size, NULL);
    qmp_framer_flush(f);
    return 0;
}
