/*
 * trim.h: give freed heap back to the system once the main loop is idle
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QPH_TRIM_H
#define QPH_TRIM_H

/* A buffer of at least this size, freed, is worth a trim. */
#define QPH_TRIM_BYTES (64 * 1024)

void qph_trim_soon(void);

#endif
