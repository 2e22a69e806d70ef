/*
 * upstream-priv.h: the upstream's pure scanner, for tests
 *
 * Not part of the upstream's interface: exposed so that tests/fuzz can
 * drive the member scanner without a socket (the id splice is
 * helper/splice.h).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include "helper/upstream.h"

void qph_upstream_scan_members(QphScannedMessage *msg);
