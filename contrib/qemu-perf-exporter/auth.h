/*
 * auth.h: HTTP basic auth users for the exporter
 *
 * The file given with --basic-auth-file holds one `USER:HASH` per line,
 * HASH a crypt(3) hash (yescrypt `$y$`, SHA-512 `$6$`, bcrypt `$2b$`, as
 * made by mkpasswd(1) or `openssl passwd -6`), the way Prometheus's own
 * exporters keep bcrypt hashes rather than passwords.  Blank lines and
 * lines starting with # are ignored.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

typedef struct QpeAuth QpeAuth;

/* Read @path; fails on an unreadable file, a malformed line, or no user. */
QpeAuth *qpe_auth_load(const char *path, GError **error);
void qpe_auth_free(QpeAuth *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpeAuth, qpe_auth_free)

/**
 * qpe_auth_check - whether @user may log in with @password
 *
 * A slow hash (bcrypt, yescrypt) takes tens of milliseconds, and
 * Prometheus sends the same credentials at every scrape: a password that
 * matched is remembered (as a keyed HMAC, never in clear), so only the
 * first scrape, or a wrong password, pays for the hash.
 */
gboolean qpe_auth_check(QpeAuth *a, const char *user, const char *password);
