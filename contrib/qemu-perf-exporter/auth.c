/*
 * auth.c: check basic-auth credentials against crypt(3) hashes
 *
 * See auth.h.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/auth.h"

#include <crypt.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/random.h>

typedef struct {
    char *hash;
    char *verified; /* HMAC of the last password that matched, or NULL */
} User;

struct QpeAuth {
    GHashTable *users; /* name -> User * */
    guint8 key[32];    /* HMAC key, random per process */
    struct crypt_data *crypt;
};

static void
user_free(gpointer p)
{
    User *u = p;

    g_free(u->hash);
    g_free(u->verified);
    g_free(u);
}

void
qpe_auth_free(QpeAuth *a)
{
    if (a == NULL) {
        return;
    }
    g_hash_table_unref(a->users);
    g_free(a->crypt);
    g_free(a);
}

QpeAuth *
qpe_auth_load(const char *path, GError **error)
{
    g_autoptr(QpeAuth) a = g_new0(QpeAuth, 1);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents(path, &text, NULL, error)) {
        return NULL;
    }
    a->users = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                     user_free);
    a->crypt = g_new0(struct crypt_data, 1);
    if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "unable to get random bytes for the password cache");
        return NULL;
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        char *line = g_strstrip(lines[i]);
        char *colon = strchr(line, ':');
        User *u;

        if (*line == '\0' || *line == '#') {
            continue;
        }
        if (colon == NULL || colon == line || colon[1] != '$') {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "%s:%u: expected USER:HASH with a crypt(3) hash "
                        "(see qemu-perf-exporter(8))",
                        path, i + 1);
            return NULL;
        }
        *colon = '\0';
        u = g_new0(User, 1);
        u->hash = g_strdup(colon + 1);
        g_hash_table_replace(a->users, g_strdup(line), u);
    }
    if (g_hash_table_size(a->users) == 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "%s names no user", path);
        return NULL;
    }
    return g_steal_pointer(&a);
}

static char *
mac(const QpeAuth *a, const char *password)
{
    return g_compute_hmac_for_string(G_CHECKSUM_SHA256, a->key,
                                     sizeof(a->key), password, -1);
}

/* Equal strings, in time independent of where they differ. */
static gboolean
same(const char *x, const char *y)
{
    gsize n = strlen(x);
    guint8 diff = n != strlen(y);

    for (gsize i = 0; i < n && y[i] != '\0'; i++) {
        diff |= (guint8)(x[i] ^ y[i]);
    }
    return diff == 0;
}

gboolean
qpe_auth_check(QpeAuth *a, const char *user, const char *password)
{
    User *u = g_hash_table_lookup(a->users, user);
    const char *out;

    if (u == NULL || password == NULL) {
        return FALSE;
    }
    g_autofree char *m = mac(a, password);
    if (u->verified != NULL && same(u->verified, m)) {
        return TRUE;
    }
    /* crypt_rn, not crypt_r: it fails with NULL rather than a "*" string,
     * and sanitizers do not intercept it (their crypt_r interceptor makes
     * the linker drop libcrypt). */
    out = crypt_rn(password, u->hash, a->crypt, sizeof(*a->crypt));
    if (out == NULL || !same(out, u->hash)) {
        return FALSE;
    }
    g_free(u->verified);
    u->verified = g_steal_pointer(&m);
    return TRUE;
}
