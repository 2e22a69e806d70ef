/*
 * libvirt-domain.c: find a libvirt domain's monitor socket by its name
 *
 * The directory names are libvirt's: "domain-" ID "-" and the name cut to
 * 20 characters (not bytes: libvirt cuts at a character boundary).  Two
 * running domains whose names share those 20 characters give two matches;
 * qemu-perf-stat then asks for -S rather than guess.  Only entries whose
 * ID is a number and that hold a monitor.sock count, so the directories
 * of stopped domains libvirt has not removed yet are skipped.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "libvirt-domain.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBVIRT_SYSTEM_DIR "/var/lib/libvirt/qemu"

char **
stat_libvirt_dirs(void)
{
    g_autoptr(GPtrArray) dirs = g_ptr_array_new();

    g_ptr_array_add(dirs, g_strdup(LIBVIRT_SYSTEM_DIR));
    if (geteuid() != 0) {
        g_ptr_array_add(dirs, g_build_filename(g_get_user_config_dir(),
                                               "libvirt", "qemu", "lib", NULL));
    }
    g_ptr_array_add(dirs, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&dirs), FALSE);
}

/* "domain-ID-SHORT": does @entry name a domain whose short name is @short_name?
 */
static gboolean
entry_matches(const char *entry, const char *short_name)
{
    const char *p;

    if (!g_str_has_prefix(entry, "domain-")) {
        return FALSE;
    }
    p = entry + strlen("domain-");
    if (!g_ascii_isdigit(*p)) {
        return FALSE;
    }
    while (g_ascii_isdigit(*p)) {
        p++;
    }
    return *p == '-' && strcmp(p + 1, short_name) == 0;
}

static gboolean
scan_dir(const char *dir, const char *short_name, GPtrArray *found,
         GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &local);
    const char *entry;

    if (!d) {
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            return TRUE;
        }
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_ACCES)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_ACCES,
                        "Unable to look for libvirt domains in '%s': "
                        "Permission denied (libvirt's directories are not "
                        "open to other users; run as root, or give the "
                        "socket with -S).",
                        dir);
            return FALSE;
        }
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    while ((entry = g_dir_read_name(d))) {
        g_autofree char *sock = NULL;
        struct stat st;

        if (!entry_matches(entry, short_name)) {
            continue;
        }
        sock = g_build_filename(dir, entry, "monitor.sock", NULL);
        if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
            g_ptr_array_add(found, g_steal_pointer(&sock));
        } else if (errno == EACCES) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_ACCES,
                        "Unable to reach '%s': Permission denied (libvirt's "
                        "directories are not open to other users; run as "
                        "root).",
                        sock);
            return FALSE;
        }
    }
    return TRUE;
}

char *
stat_libvirt_monitor_socket(const char *name, GError **error)
{
    g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) dirs = stat_libvirt_dirs();
    g_autofree char *short_name = NULL;
    g_autofree char *where = NULL;
    g_autoptr(GError) denied = NULL;
    const char *end;

    /* libvirt cuts at 20 characters; a name that is not UTF-8 is cut at
     * 20 bytes (libvirt does the same when the conversion fails) */
    if (g_utf8_validate(name, -1, NULL)) {
        end = g_utf8_offset_to_pointer(
            name, MIN(g_utf8_strlen(name, -1), STAT_LIBVIRT_SHORT_NAME_MAX));
    } else {
        end = name + MIN(strlen(name), STAT_LIBVIRT_SHORT_NAME_MAX);
    }
    short_name = g_strndup(name, (gsize)(end - name));
    if (!name[0] || strchr(name, '/')) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "'%s' is not a libvirt domain name.", name);
        return NULL;
    }
    /* a domain found anywhere wins over a directory we may not read */
    for (guint i = 0; dirs[i] && !found->len; i++) {
        g_autoptr(GError) local = NULL;

        if (!scan_dir(dirs[i], short_name, found, &local) && !denied) {
            denied = g_steal_pointer(&local);
        }
    }
    if (!found->len && denied) {
        g_propagate_error(error, g_steal_pointer(&denied));
        return NULL;
    }
    where = g_strjoinv("' or '", dirs);
    if (found->len == 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                    "No running libvirt domain '%s': there is no "
                    "domain-ID-%s/monitor.sock in '%s'.",
                    name, short_name, where);
        return NULL;
    }
    if (found->len > 1) {
        g_autofree char *list = NULL;

        g_ptr_array_add(found, NULL);
        list = g_strjoinv("', '", (char **)found->pdata);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "Several running libvirt domains match '%s' (libvirt "
                    "keeps only the first %d characters of a name): '%s'. "
                    "Give the socket with -S.",
                    name, STAT_LIBVIRT_SHORT_NAME_MAX, list);
        return NULL;
    }
    return g_strdup(g_ptr_array_index(found, 0));
}
