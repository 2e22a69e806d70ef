/*
 * introspect.c: the helper's entries in QEMU's introspection answers
 *
 * The entries themselves are generated from the schema
 * (qph-qapi-introspect.c): the command elements for query-commands, and
 * for query-qmp-schema the command elements plus the types they use, named
 * so that they cannot clash with QEMU's masked type names.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/introspect.h"
#include "helper/dispatch.h"

#include "qph-qapi-introspect.h"

QphIntrospectKind
qph_introspect_kind(const char *command)
{
    if (g_str_equal(command, "query-commands")) {
        return QPH_INTROSPECT_COMMANDS;
    }
    if (g_str_equal(command, "query-qmp-schema")) {
        return QPH_INTROSPECT_SCHEMA;
    }
    return QPH_INTROSPECT_NONE;
}

char *
qph_introspect_extra(QphIntrospectKind kind, gboolean after_elements,
                     const char *const *shadowed)
{
    const char *const *own = qph_dispatch_command_names();
    GString *out;

    if (shadowed && shadowed[0]) {
        /*
         * QEMU has a command of the same name and keeps it (see proxy.c):
         * list only ours that it does not have.  The generated schema text
         * describes all of ours together, so it is left out then.
         */
        if (kind != QPH_INTROSPECT_COMMANDS) {
            return NULL;
        }
        out = g_string_new(NULL);
        for (guint i = 0; own[i]; i++) {
            if (!g_strv_contains(shadowed, own[i])) {
                g_string_append_printf(out, "%s{\"name\": \"%s\"}",
                                       out->len || after_elements ? ", " : "",
                                       own[i]);
            }
        }
        return out->len ? g_string_free(out, FALSE)
                        : (g_string_free(out, TRUE), NULL);
    }
    out = g_string_new(after_elements ? ", " : "");
    g_string_append(out, kind == QPH_INTROSPECT_COMMANDS
                             ? qph_qapi_introspect_commands
                             : qph_qapi_introspect_schema);
    return g_string_free(out, FALSE);
}
