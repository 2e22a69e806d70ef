/*
 * introspect.c: the helper's entries in QEMU's introspection answers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "helper/introspect.h"

char *
qph_introspect_extra(QphIntrospectKind kind, gboolean after_elements,
                     const char *const *shadowed)
{
    return NULL;
}
