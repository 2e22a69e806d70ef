/*
 * discovery.c: expand the --socket globs
 *
 * glob(3) and stat(2) on the helpers' run directory (a tmpfs) are the
 * only file system calls made while serving a scrape; they touch
 * directory entries only, never a socket, so a stuck helper cannot make
 * them wait.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/discovery.h"

#include <glob.h>
#include <string.h>
#include <sys/stat.h>

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

GPtrArray *
qpe_discover_sockets(const char *const *globs)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; globs != NULL && globs[i] != NULL; i++) {
        glob_t g = {0};

        if (glob(globs[i], GLOB_NOSORT, NULL, &g) != 0) {
            globfree(&g);
            continue;
        }
        for (gsize j = 0; j < g.gl_pathc; j++) {
            const char *path = g.gl_pathv[j];
            struct stat st;

            if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode) ||
                g_hash_table_contains(seen, path)) {
                continue;
            }
            char *copy = g_strdup(path);
            g_ptr_array_add(out, copy);
            g_hash_table_add(seen, copy);
        }
        globfree(&g);
    }
    g_ptr_array_sort(out, cmp_str);
    return out;
}
