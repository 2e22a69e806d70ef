/*
 * wrap-argv.c: the wrapper's options and QEMU command-line rewriting
 *
 * Everything wrapper mode decides before it touches a descriptor: its own
 * options and config file, splitting QemuOpts strings as QEMU does, finding
 * libvirt's monitor chardev among QEMU's arguments, and the argv of QEMU and
 * of the helper that result.  Pure functions, unit-tested by
 * tests/libvirt/test-wrap.c; wrap.c does the processes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "wrap-priv.h"

#include <string.h>


#define WRAP_CONFIG_GROUP "wrapper"
/* Per-domain groups: "[domain NAME]" and "[uuid UUID]". */
#define WRAP_DOMAIN_PREFIX "domain "
#define WRAP_UUID_PREFIX "uuid "

/* ------------------------------------------------------------------------
 * Options
 */

void
qph_wrap_options_clear(QphWrapOptions *opts)
{
    g_clear_pointer(&opts->real_qemu, g_free);
    g_clear_pointer(&opts->helper, g_free);
    g_clear_pointer(&opts->helper_args, g_ptr_array_unref);
    g_clear_pointer(&opts->config, g_free);
    g_clear_pointer(&opts->enable, g_free);
    opts->qemu_argv = NULL;
}

/**
 * take_value:
 * For option @name at argv[*i], accept "--name=VALUE" or "--name VALUE".
 * Returns TRUE if argv[*i] is this option (then *value is set or an error
 * is), FALSE if it is another one.
 */
static gboolean
take_value(int argc, char **argv, int *i, const char *name, char **value,
           GError **error)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);

    if (strncmp(arg, name, len) != 0) {
        return FALSE;
    }
    if (arg[len] == '=') {
        g_free(*value);
        *value = g_strdup(arg + len + 1);
        return TRUE;
    }
    if (arg[len] != '\0') {
        return FALSE;
    }
    if (*i + 1 >= argc) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "Missing argument for %s", name);
        return TRUE;
    }
    (*i)++;
    g_free(*value);
    *value = g_strdup(argv[*i]);
    return TRUE;
}

/**
 * domain_group:
 * The group of @kf that configures this domain: "[uuid UUID]" (UUIDs
 * compared without regard to case), else "[domain NAME]", else NULL.
 */
static char *
domain_group(GKeyFile *kf, char **qemu_argv)
{
    g_autofree char *name = NULL;
    g_autofree char *uuid = NULL;
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    g_autofree char *by_name = NULL;

    qph_wrap_domain_identity(qemu_argv, &name, &uuid);
    for (guint i = 0; groups[i]; i++) {
        const char *g = groups[i];

        if (uuid && g_str_has_prefix(g, WRAP_UUID_PREFIX) &&
            g_ascii_strcasecmp(g + strlen(WRAP_UUID_PREFIX), uuid) == 0) {
            return g_strdup(g);
        }
        if (name && !by_name && g_str_has_prefix(g, WRAP_DOMAIN_PREFIX) &&
            g_str_equal(g + strlen(WRAP_DOMAIN_PREFIX), name)) {
            by_name = g_strdup(g);
        }
    }
    return g_steal_pointer(&by_name);
}

/**
 * load_enable:
 * The events to enable at start for this domain: its own group's
 * "enable" if it has one (even empty: none for this domain), else the
 * [wrapper] group's.
 */
static void
load_enable(QphWrapOptions *opts, GKeyFile *kf)
{
    g_autofree char *group = domain_group(kf, opts->qemu_argv);

    if (group && g_key_file_has_key(kf, group, "enable", NULL)) {
        opts->enable = g_key_file_get_string(kf, group, "enable", NULL);
    } else {
        opts->enable =
            g_key_file_get_string(kf, WRAP_CONFIG_GROUP, "enable", NULL);
    }
}

/**
 * load_config:
 * Fill the fields of @opts the command line left unset from @path.  A
 * missing file is not an error: the installed wrapper always names one.
 */
static gboolean
load_config(QphWrapOptions *opts, const char *path, gboolean *enabled_set,
            GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local_error = NULL;
    g_auto(GStrv) args = NULL;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local_error)) {
        if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            return TRUE;
        }
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "Unable to read wrapper configuration '%s': %s", path,
                    local_error->message);
        return FALSE;
    }

    if (!opts->real_qemu) {
        opts->real_qemu =
            g_key_file_get_string(kf, WRAP_CONFIG_GROUP, "qemu", NULL);
    }
    if (!opts->helper) {
        opts->helper =
            g_key_file_get_string(kf, WRAP_CONFIG_GROUP, "helper", NULL);
    }
    args = g_key_file_get_string_list(kf, WRAP_CONFIG_GROUP, "helper-args",
                                      NULL, NULL);
    for (guint i = 0; args && args[i]; i++) {
        /* The config's come first so the command line can override them. */
        g_ptr_array_insert(opts->helper_args, (gint)i, g_strdup(args[i]));
    }
    if (!*enabled_set &&
        g_key_file_has_key(kf, WRAP_CONFIG_GROUP, "enabled", NULL)) {
        gboolean enabled = g_key_file_get_boolean(kf, WRAP_CONFIG_GROUP,
                                                  "enabled", &local_error);
        if (local_error) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "Invalid 'enabled' in wrapper configuration '%s': %s",
                        path, local_error->message);
            return FALSE;
        }
        opts->enabled = enabled;
        *enabled_set = TRUE;
    }
    if (!opts->enable) {
        load_enable(opts, kf);
    }
    return TRUE;
}

gboolean
qph_wrap_options_parse(int argc, char **argv, QphWrapOptions *opts,
                       GError **error)
{
    gboolean enabled_set = FALSE;
    int i = 1;

    memset(opts, 0, sizeof(*opts));
    opts->helper_args = g_ptr_array_new_with_free_func(g_free);
    opts->enabled = TRUE;

    if (i < argc && g_str_equal(argv[i], "--wrap")) {
        i++;
    }
    for (; i < argc; i++) {
        g_autofree char *arg = NULL;
        g_autofree char *enable = NULL;
        GError *local_error = NULL;

        if (g_str_equal(argv[i], "--")) {
            break;
        }
        if (take_value(argc, argv, &i, "--real-qemu", &opts->real_qemu,
                       &local_error) ||
            take_value(argc, argv, &i, "--helper-arg", &arg, &local_error) ||
            take_value(argc, argv, &i, "--enable", &enable, &local_error) ||
            take_value(argc, argv, &i, "--helper", &opts->helper,
                       &local_error) ||
            take_value(argc, argv, &i, "--config", &opts->config,
                       &local_error)) {
            if (local_error) {
                g_propagate_error(error, local_error);
                return FALSE;
            }
            if (arg) {
                g_ptr_array_add(opts->helper_args, g_steal_pointer(&arg));
            }
            if (enable) {
                /* Repeatable, like the helper's own --enable. */
                char *all = opts->enable
                                ? g_strconcat(opts->enable, ",", enable, NULL)
                                : g_strdup(enable);

                g_free(opts->enable);
                opts->enable = all;
            }
            continue;
        }
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                    "Unknown wrapper option '%s' (QEMU's arguments go "
                    "after '--')",
                    argv[i]);
        return FALSE;
    }
    if (i >= argc) {
        g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "Wrapper mode needs '--' before QEMU's arguments");
        return FALSE;
    }
    opts->qemu_argv = argv + i + 1;

    if (opts->config && !load_config(opts, opts->config, &enabled_set, error)) {
        return FALSE;
    }
    if (!opts->real_qemu || !*opts->real_qemu) {
        g_free(opts->real_qemu);
        opts->real_qemu = g_strdup(QPH_WRAP_DEFAULT_QEMU);
    }
    if (opts->helper && !*opts->helper) {
        g_clear_pointer(&opts->helper, g_free);
    }
    return TRUE;
}

/* ------------------------------------------------------------------------
 * QemuOpts strings
 */

static void
opt_free(gpointer data)
{
    QphOpt *opt = data;

    g_free(opt->key);
    g_free(opt->value);
    g_free(opt);
}

/* A value runs to the next single ','; ",," stands for a comma. */
static const char *
parse_value(const char *p, char **value)
{
    GString *s = g_string_new(NULL);

    while (*p) {
        if (*p == ',') {
            if (p[1] != ',') {
                break;
            }
            p++;
        }
        g_string_append_c(s, *p);
        p++;
    }
    *value = g_string_free(s, FALSE);
    return p;
}

GPtrArray *
qph_opts_parse(const char *str, gboolean implied)
{
    GPtrArray *opts = g_ptr_array_new_with_free_func(opt_free);
    const char *p = str;

    while (*p) {
        QphOpt *opt = g_new0(QphOpt, 1);
        size_t len = strcspn(p, "=,");

        if (p[len] == '=') {
            opt->key = g_strndup(p, len);
            p = parse_value(p + len + 1, &opt->value);
        } else if (implied) {
            p = parse_value(p, &opt->value);
        } else if (g_str_has_prefix(p, "no") && len > 2) {
            opt->key = g_strndup(p + 2, len - 2);
            opt->value = g_strdup("off");
            p += len;
        } else {
            opt->key = g_strndup(p, len);
            opt->value = g_strdup("on");
            p += len;
        }
        implied = FALSE;
        g_ptr_array_add(opts, opt);
        if (*p == ',') {
            p++;
        }
    }
    return opts;
}

static void
append_escaped(GString *s, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == ',') {
            g_string_append_c(s, ',');
        }
        g_string_append_c(s, *p);
    }
}

char *
qph_opts_format(GPtrArray *opts)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < opts->len; i++) {
        const QphOpt *opt = g_ptr_array_index(opts, i);

        if (i > 0) {
            g_string_append_c(s, ',');
        }
        if (opt->key) {
            g_string_append(s, opt->key);
            g_string_append_c(s, '=');
        }
        append_escaped(s, opt->value);
    }
    return g_string_free(s, FALSE);
}

const char *
qph_opts_get(GPtrArray *opts, const char *key)
{
    for (guint i = opts->len; i > 0; i--) {
        const QphOpt *opt = g_ptr_array_index(opts, i - 1);

        if (g_strcmp0(opt->key, key) == 0) {
            return opt->value;
        }
    }
    return NULL;
}

gboolean
qph_opts_parse_bool(const char *value, gboolean *result)
{
    static const char *const on[] = {"on", "yes", "true", "y"};
    static const char *const off[] = {"off", "no", "false", "n"};

    for (guint i = 0; i < G_N_ELEMENTS(on); i++) {
        if (g_str_equal(value, on[i])) {
            *result = TRUE;
            return TRUE;
        }
        if (g_str_equal(value, off[i])) {
            *result = FALSE;
            return TRUE;
        }
    }
    return FALSE;
}

/* ------------------------------------------------------------------------
 * Which domain this QEMU is
 */

/* "-opt" or "--opt". */
static gboolean
is_option(const char *arg, const char *name)
{
    return arg[0] == '-' && g_str_equal(arg + (arg[1] == '-' ? 2 : 1), name);
}

void
qph_wrap_domain_identity(char **qemu_argv, char **name, char **uuid)
{
    *name = NULL;
    *uuid = NULL;
    for (int i = 0; qemu_argv[i] && qemu_argv[i + 1]; i++) {
        if (is_option(qemu_argv[i], "name")) {
            g_autoptr(GPtrArray) opts = qph_opts_parse(qemu_argv[i + 1], TRUE);
            /* "-name guest=N,..." or the implied form "-name N,...". */
            const char *guest = qph_opts_get(opts, "guest");

            if (!guest) {
                guest = qph_opts_get(opts, NULL);
            }
            if (guest) {
                g_free(*name);
                *name = g_strdup(guest);
            }
            i++;
        } else if (is_option(qemu_argv[i], "uuid")) {
            g_free(*uuid);
            *uuid = g_strdup(qemu_argv[i + 1]);
            i++;
        }
    }
}

/* ------------------------------------------------------------------------
 * Finding and rewriting libvirt's monitor
 */

void
qph_monitor_clear(QphMonitor *mon)
{
    g_clear_pointer(&mon->path, g_free);
    memset(mon, 0, sizeof(*mon));
}

static gboolean
is_chardev_option(const char *arg)
{
    return g_str_equal(arg, "-chardev") || g_str_equal(arg, "--chardev");
}

/* The keys a libvirt monitor chardev may carry; anything else (tls-creds,
 * reconnect, telnet, ...) means a setup we do not understand. */
static gboolean
is_known_monitor_key(const char *key)
{
    static const char *const known[] = {"id", "fd", "path", "server", "wait"};

    for (guint i = 0; i < G_N_ELEMENTS(known); i++) {
        if (g_str_equal(key, known[i])) {
            return TRUE;
        }
    }
    return FALSE;
}

/**
 * classify_monitor:
 * Decide what to do with the chardev string @value, already known to carry
 * id=charmonitor.
 */
static gboolean
classify_monitor(const char *value, QphMonitor *mon, GError **error)
{
    g_autoptr(GPtrArray) opts = qph_opts_parse(value, TRUE);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    const char *fd = qph_opts_get(opts, "fd");
    const char *path = qph_opts_get(opts, "path");
    const char *server = qph_opts_get(opts, "server");
    const QphOpt *first = opts->len ? g_ptr_array_index(opts, 0) : NULL;
    gboolean is_server = FALSE;

    if (!first || first->key || !g_str_equal(first->value, "socket")) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Monitor chardev '%s' is not a socket", value);
        return FALSE;
    }
    for (guint i = 1; i < opts->len; i++) {
        const QphOpt *opt = g_ptr_array_index(opts, i);

        if (!is_known_monitor_key(opt->key)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "Monitor chardev '%s' has option '%s' the wrapper "
                        "does not handle",
                        value, opt->key);
            return FALSE;
        }
        if (!g_hash_table_add(seen, opt->key)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "Monitor chardev '%s' repeats option '%s'", value,
                        opt->key);
            return FALSE;
        }
    }
    if (!server || !qph_opts_parse_bool(server, &is_server) || !is_server) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "Monitor chardev '%s' is not a listening (server=on) "
                    "socket",
                    value);
        return FALSE;
    }
    if (fd && !path) {
        gint64 n;

        if (!g_ascii_string_to_signed(fd, 10, 0, G_MAXINT, &n, NULL)) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "Monitor chardev '%s' names descriptor '%s', not a "
                        "number",
                        value, fd);
            return FALSE;
        }
        mon->kind = QPH_MONITOR_FD;
        mon->fd = (int)n;
        return TRUE;
    }
    if (path && !fd && *path) {
        mon->kind = QPH_MONITOR_PATH;
        mon->path = g_strdup(path);
        return TRUE;
    }
    g_set_error(
        error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
        "Monitor chardev '%s' needs exactly one of fd= and path=", value);
    return FALSE;
}

gboolean
qph_wrap_find_monitor(char **qemu_argv, QphMonitor *mon, GError **error)
{
    int found = -1;

    memset(mon, 0, sizeof(*mon));
    for (int i = 0; qemu_argv[i]; i++) {
        const char *value = qemu_argv[i + 1];

        if (!is_chardev_option(qemu_argv[i]) || !value) {
            continue;
        }
        if (value[0] == '{') {
            /* JSON syntax: libvirt does not use it for chardevs yet. */
            if (strstr(value, "\"" QPH_WRAP_MONITOR_ID "\"")) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                            "Monitor chardev '%s' uses JSON syntax, which "
                            "the wrapper does not handle",
                            value);
                return FALSE;
            }
        } else {
            g_autoptr(GPtrArray) opts = qph_opts_parse(value, TRUE);

            if (g_strcmp0(qph_opts_get(opts, "id"), QPH_WRAP_MONITOR_ID) == 0) {
                if (found >= 0) {
                    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                                "QEMU's arguments define chardev '%s' twice",
                                QPH_WRAP_MONITOR_ID);
                    return FALSE;
                }
                found = i + 1;
            }
        }
        i++;
    }
    if (found < 0) {
        mon->kind = QPH_MONITOR_NONE;
        return TRUE;
    }
    if (!classify_monitor(qemu_argv[found], mon, error)) {
        qph_monitor_clear(mon);
        return FALSE;
    }
    mon->index = found;
    return TRUE;
}

char **
qph_wrap_rewrite_argv(const char *real_qemu, char **qemu_argv,
                      const QphMonitor *mon, int qemu_fd)
{
    GPtrArray *argv = g_ptr_array_new();

    g_ptr_array_add(argv, g_strdup(real_qemu));
    for (int i = 0; qemu_argv[i]; i++) {
        if (mon->kind != QPH_MONITOR_NONE && i == mon->index) {
            g_ptr_array_add(argv,
                            g_strdup_printf("socket,id=%s,fd=%d",
                                            QPH_WRAP_MONITOR_ID, qemu_fd));
        } else {
            g_ptr_array_add(argv, g_strdup(qemu_argv[i]));
        }
    }
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

char **
qph_wrap_helper_argv(const char *helper, int qemu_pid, const char *enable,
                     GPtrArray *helper_args)
{
    GPtrArray *argv = g_ptr_array_new();

    g_ptr_array_add(argv, g_strdup(helper));
    g_ptr_array_add(argv, g_strdup("--qemu-fd"));
    g_ptr_array_add(argv, g_strdup_printf("%d", QPH_WRAP_HELPER_QEMU_FD));
    g_ptr_array_add(argv, g_strdup("--qemu-pid"));
    g_ptr_array_add(argv, g_strdup_printf("%d", qemu_pid));
    g_ptr_array_add(argv, g_strdup("--listen-fd"));
    g_ptr_array_add(argv, g_strdup_printf("%d", QPH_WRAP_HELPER_LISTEN_FD));
    if (enable && *enable) {
        g_ptr_array_add(argv, g_strconcat("--enable=", enable, NULL));
    }
    for (guint i = 0; helper_args && i < helper_args->len; i++) {
        g_ptr_array_add(argv, g_strdup(g_ptr_array_index(helper_args, i)));
    }
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}
