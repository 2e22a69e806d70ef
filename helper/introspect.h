/*
 * introspect.h: the helper's entries in QEMU's introspection answers
 *
 * query-commands and query-qmp-schema are forwarded; the helper's own
 * command entries (and, for the schema, the types they use) are appended to
 * QEMU's list, so qmp-shell completion and libvirt's probing see them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/* Which introspection answer a forwarded command gets. */
typedef enum {
    QPH_INTROSPECT_NONE,
    QPH_INTROSPECT_COMMANDS, /* query-commands */
    QPH_INTROSPECT_SCHEMA,   /* query-qmp-schema */
} QphIntrospectKind;

QphIntrospectKind qph_introspect_kind(const char *command);

/* The text to insert before the closing ']' of the returned list, with a
 * leading ", " when @after_elements; NULL when there is nothing to add.
 * Commands in @shadowed (offered by QEMU too) are not listed twice. */
char *qph_introspect_extra(QphIntrospectKind kind, gboolean after_elements,
                           const char *const *shadowed);
