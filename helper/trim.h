/*
 * trim.h: give freed heap back to the system after a large message
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef QPH_TRIM_H
#define QPH_TRIM_H

void qph_trim_soon(void);

#endif
