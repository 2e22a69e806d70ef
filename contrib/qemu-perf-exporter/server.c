/*
 * server.c: libsoup server, access control, and the /metrics handler
 *
 * See server.h.  A request travels: libsoup parses it (and checks basic
 * auth through the auth domain) -> on_metrics() picks the format from
 * Accept, pauses the message and starts a scrape -> on_scraped() sets the
 * body and unpauses it.  A scraper that hangs up meanwhile is noticed
 * through the message's "finished" signal and its body is dropped.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "contrib/qemu-perf-exporter/server.h"

#include <libsoup/soup.h>
#include <string.h>

#include "contrib/qemu-perf-exporter/auth.h"

#define REALM "qemu-perf-exporter"

struct QpeServer {
    SoupServer *soup;
    QpeExporter *ex;
    QpeAuth *auth;
};

typedef struct {
    SoupServerMessage *msg;
    gulong finished_id;
    gboolean gone;
    const char *content_type;
} Request;

/* ADDRESS:PORT, [IPv6]:PORT, :PORT or PORT (the last two on 127.0.0.1). */
static GSocketAddress *
parse_listen(const char *text, GError **error)
{
    g_autofree char *host = NULL;
    const char *port_text;
    guint64 port;
    g_autoptr(GInetAddress) addr = NULL;
    const char *colon;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':') {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "--listen '%s': expected [ADDRESS]:PORT", text);
            return NULL;
        }
        host = g_strndup(text + 1, (gsize)(end - text - 1));
        port_text = end + 2;
    } else if ((colon = strrchr(text, ':')) != NULL) {
        host = g_strndup(text, (gsize)(colon - text));
        port_text = colon + 1;
    } else {
        port_text = text;
    }
    if (host == NULL || *host == '\0') {
        g_free(host);
        host = g_strdup("127.0.0.1");
    }
    if (!g_ascii_string_to_unsigned(port_text, 10, 0, 65535, &port, NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "--listen '%s': '%s' is not a port number", text,
                    port_text);
        return NULL;
    }
    addr = g_inet_address_new_from_string(host);
    if (addr == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "--listen '%s': '%s' is not an IP address", text, host);
        return NULL;
    }
    return g_inet_socket_address_new(addr, (guint16)port);
}

static void
on_finished(SoupServerMessage *msg, gpointer data)
{
    ((Request *)data)->gone = TRUE;
}

static void
on_scraped(GString *body, gpointer data)
{
    Request *r = data;
    gsize len = body->len;

    g_signal_handler_disconnect(r->msg, r->finished_id);
    if (!r->gone) {
        /* libsoup leaves the body out of a HEAD response itself. */
        soup_server_message_set_status(r->msg, SOUP_STATUS_OK, NULL);
        soup_server_message_set_response(r->msg, r->content_type,
                                         SOUP_MEMORY_TAKE,
                                         g_string_free(body, FALSE), len);
        soup_server_message_unpause(r->msg);
    } else {
        g_string_free(body, TRUE);
    }
    g_object_unref(r->msg);
    g_free(r);
}

static void
on_metrics(SoupServer *soup, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer data)
{
    QpeServer *s = data;
    const char *method = soup_server_message_get_method(msg);
    SoupMessageHeaders *req = soup_server_message_get_request_headers(msg);
    QpeFormat format;
    Request *r;

    if (strcmp(path, "/metrics") != 0) {
        soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
        return;
    }
    if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
        soup_message_headers_replace(
            soup_server_message_get_response_headers(msg), "Allow",
            "GET, HEAD");
        soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                                       NULL);
        return;
    }
    format = qpe_format_from_accept(soup_message_headers_get_list(req, "Accept"));
    r = g_new0(Request, 1);
    r->msg = g_object_ref(msg);
    r->content_type = qpe_format_content_type(format);
    r->finished_id = g_signal_connect(msg, "finished",
                                      G_CALLBACK(on_finished), r);
    soup_server_message_pause(msg);
    qpe_exporter_scrape(s->ex, format, on_scraped, r);
}

static void
on_root(SoupServer *soup, SoupServerMessage *msg, const char *path,
        GHashTable *query, gpointer data)
{
    static const char page[] =
        "qemu-perf-exporter: the counters of qemu-perf-helper are at "
        "/metrics\n";

    if (strcmp(path, "/") != 0) {
        soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
        return;
    }
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    soup_server_message_set_response(msg, "text/plain; charset=utf-8",
                                     SOUP_MEMORY_STATIC, page,
                                     sizeof(page) - 1);
}

static gboolean
on_basic_auth(SoupAuthDomain *domain, SoupServerMessage *msg,
              const char *user, const char *password, gpointer data)
{
    return qpe_auth_check(data, user, password);
}

QpeServer *
qpe_server_new(const QpeServerConfig *config, QpeExporter *ex,
               GError **error)
{
    g_autoptr(QpeServer) s = g_new0(QpeServer, 1);
    g_autoptr(GSocketAddress) addr = parse_listen(config->listen, error);
    g_autoptr(GTlsCertificate) cert = NULL;
    SoupServerListenOptions options = 0;
    GSList *uris;

    if (addr == NULL) {
        return NULL;
    }
    if ((config->tls_cert == NULL) != (config->tls_key == NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "--tls-cert and --tls-key go together");
        return NULL;
    }
    s->ex = ex;
    s->soup = soup_server_new("server-header", "qemu-perf-exporter ", NULL);
    if (config->tls_cert != NULL) {
        cert = g_tls_certificate_new_from_files(config->tls_cert,
                                                config->tls_key, error);
        if (cert == NULL) {
            g_prefix_error(error, "unable to load the TLS certificate: ");
            return NULL;
        }
        g_object_set(s->soup, "tls-certificate", cert, NULL);
        options |= SOUP_SERVER_LISTEN_HTTPS;
    }
    if (config->auth_file != NULL) {
        SoupAuthDomain *domain;

        s->auth = qpe_auth_load(config->auth_file, error);
        if (s->auth == NULL) {
            return NULL;
        }
        domain = soup_auth_domain_basic_new("realm", REALM, NULL);
        soup_auth_domain_basic_set_auth_callback(domain, on_basic_auth,
                                                 s->auth, NULL);
        soup_auth_domain_add_path(domain, "/");
        soup_server_add_auth_domain(s->soup, domain);
        g_object_unref(domain);
    }
    soup_server_add_handler(s->soup, "/metrics", on_metrics, s, NULL);
    soup_server_add_handler(s->soup, "/", on_root, s, NULL);
    if (!soup_server_listen(s->soup, addr, options, error)) {
        g_prefix_error(error, "unable to listen on %s: ", config->listen);
        return NULL;
    }

    uris = soup_server_get_uris(s->soup);
    for (GSList *l = uris; l != NULL; l = l->next) {
        g_autofree char *text = g_uri_to_string(l->data);
        g_message("listening on %smetrics", text);
    }
    g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
    if (config->tls_cert == NULL &&
        !g_inet_address_get_is_loopback(g_inet_socket_address_get_address(
            G_INET_SOCKET_ADDRESS(addr)))) {
        g_warning("listening beyond loopback without TLS: counters and any "
                  "basic-auth password travel in clear (see --tls-cert)");
    }
    return g_steal_pointer(&s);
}

void
qpe_server_free(QpeServer *s)
{
    if (s == NULL) {
        return;
    }
    if (s->soup != NULL) {
        soup_server_disconnect(s->soup);
        g_object_unref(s->soup);
    }
    qpe_auth_free(s->auth);
    g_free(s);
}
