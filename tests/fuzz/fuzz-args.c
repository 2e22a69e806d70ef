/*
 * fuzz-args.c: arguments of the helper's own commands, through the
 * schema-generated input and output visitors
 *
 * Every value the framing accepts is parsed and handed, as the arguments
 * object of set-perf-events and of query-perf-events, to the generated
 * input visitors (build/schema/qph-qapi-visit.c), and each member of an
 * object to the element visitors.  Properties: a visitor either builds
 * the C value or sets an error, never both and never neither; a value it
 * builds prints back (output visitor) to a tree the input visitor accepts
 * again and that prints the same way.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "tests/fuzz/fuzz-common.h"
#include "qmp/json-streamer.h"
#include "qph-qapi-visit.h"

#define ROUND_TRIP(T, value)                                                   \
    do {                                                                       \
        g_autoptr(GError) rt_err = NULL;                                       \
        g_autoptr(T) obj = qph_input_##T(value, &rt_err);                      \
        FUZZ_CHECK((obj == NULL) != (rt_err == NULL));                         \
        if (obj) {                                                             \
            g_autoptr(GError) err2 = NULL;                                     \
            g_autoptr(GError) err3 = NULL;                                     \
            g_autoptr(QmpJson) out = qph_output_##T(obj, &err2);               \
            g_autoptr(T) again = NULL;                                         \
            g_autoptr(QmpJson) out2 = NULL;                                    \
            g_autoptr(GString) a = g_string_new(NULL);                         \
            g_autoptr(GString) b = g_string_new(NULL);                         \
                                                                               \
            FUZZ_CHECK(out != NULL);                                           \
            again = qph_input_##T(out, &err3);                                 \
            FUZZ_CHECK(again != NULL);                                         \
            out2 = qph_output_##T(again, NULL);                                \
            FUZZ_CHECK(out2 != NULL);                                          \
            qmp_json_write(a, out);                                            \
            qmp_json_write(b, out2);                                           \
            FUZZ_CHECK(g_str_equal(a->str, b->str));                           \
        }                                                                      \
    } while (0)

static void
emit(gpointer opaque, const QmpMessage *msg, const char *error_text)
{
    g_autofree char *err = NULL;
    g_autoptr(QmpJson) v = NULL;

    if (!msg) {
        return;
    }
    v = qmp_json_parse_value(msg->data, msg->len, &err);
    FUZZ_CHECK(v != NULL);
    ROUND_TRIP(q_obj_set_perf_events_arg, v);
    ROUND_TRIP(q_obj_query_perf_events_arg, v);
    ROUND_TRIP(PerfEventSetting, v);
    if (v->type == QMP_JSON_OBJECT) {
        for (guint i = 0; i < v->members->len; i++) {
            QmpJson *m = ((QmpJsonMember *)v->members->pdata[i])->value;

            ROUND_TRIP(q_obj_set_perf_events_arg, m);
            ROUND_TRIP(q_obj_query_perf_events_arg, m);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(QmpStreamer) s = qmp_streamer_new(emit, NULL);

    qmp_streamer_feed(s, (const char *)data, size);
    qmp_streamer_flush(s);
    return 0;
}
