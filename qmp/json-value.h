/*
 * json-value.h: a small JSON tree, as QEMU's QObject sees a value
 *
 * The helper forwards what clients send without building trees.  A tree is
 * built only where the helper must understand a value itself: the `id` it
 * echoes back (re-serialized exactly as QEMU re-serializes it, so a client
 * cannot tell the helper from QEMU) and the arguments of the helper's own
 * commands.  Numbers are classified as QEMU's parser does: an integer that
 * fits int64 is INT, one that fits only uint64 is UINT, anything else DOUBLE.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef enum {
    QMP_JSON_NULL,
    QMP_JSON_BOOL,
    QMP_JSON_INT,    /* fits gint64 */
    QMP_JSON_UINT,   /* fits guint64 but not gint64 */
    QMP_JSON_DOUBLE, /* a float, or an integer beyond 64 bits */
    QMP_JSON_STRING,
    QMP_JSON_OBJECT,
    QMP_JSON_ARRAY,
} QmpJsonType;

typedef struct QmpJson QmpJson;

typedef struct {
    char *key; /* unescaped, NUL-terminated */
    QmpJson *value;
} QmpJsonMember;

struct QmpJson {
    QmpJsonType type;
    union {
        gboolean b;
        gint64 i;
        guint64 u;
        double d;
        char *s; /* unescaped; QEMU's modified UTF-8 (U+0000 is C0 80) */
    };
    GPtrArray *members;  /* QMP_JSON_OBJECT: QmpJsonMember *, input order */
    GPtrArray *elements; /* QMP_JSON_ARRAY: QmpJson * */
};

QmpJson *qmp_json_new(QmpJsonType type);
QmpJson *qmp_json_new_string(const char *s);
QmpJson *qmp_json_new_int(gint64 i);
QmpJson *qmp_json_new_bool(gboolean b);
void qmp_json_free(QmpJson *v);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpJson, qmp_json_free)

/* Object helpers; @obj must be QMP_JSON_OBJECT.  The member is appended. */
void qmp_json_object_set(QmpJson *obj, const char *key, QmpJson *value);
QmpJson *qmp_json_object_get(const QmpJson *obj, const char *key);
void qmp_json_array_append(QmpJson *arr, QmpJson *value);

/* The QAPI type name QEMU uses in "expected: %s" messages for this value:
 * "null", "boolean", "number", "string", "object", "array". */
const char *qmp_json_type_name(QmpJsonType type);

/**
 * qmp_json_write:
 * Append @v to @out exactly as QEMU 7.2's JSON writer prints a QObject in
 * compact mode: ", " and ": " separators, object keys in QDict iteration
 * order (see qmp_qdict_order()), doubles with "%.17g", strings re-escaped
 * the QEMU way.
 */
void qmp_json_write(GString *out, const QmpJson *v);

/**
 * qmp_qdict_order:
 * QEMU stores objects in a hash table (QDict: tdb_hash() % 512 buckets,
 * newest first within a bucket) and writes and iterates them in bucket
 * order, not insertion order.  Return the indexes of @keys (@n of them,
 * distinct, in insertion order) in the order QEMU would iterate them.
 * The caller frees the result with g_free().
 */
guint *qmp_qdict_order(const char *const *keys, guint n);

/* qmp_qdict_order() into the caller's @order (room for @n indexes). */
void qmp_qdict_order_into(const char *const *keys, guint n, guint *order);

/**
 * qmp_json_write_string:
 * Append @s (modified UTF-8, NUL-terminated) to @out as a quoted JSON
 * string, escaped exactly as QEMU 7.2's writer escapes it: \" \\ \b \f \n
 * \r \t, other code points below 0x20 or from 0x7F as \uXXXX (uppercase),
 * beyond the BMP as a surrogate pair, invalid sequences as \uFFFD.
 */
void qmp_json_write_string(GString *out, const char *s);

/* QEMU's tdb_hash() of a QDict key; the bucket is this % 512. */
guint qmp_qdict_hash(const char *key);
