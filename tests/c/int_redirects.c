/*
 * Redirects of the websocket upgrade from C, against the dev server's load
 * balancer paths: two redirects (/lb/2/...) are followed, also through the
 * proxy; a third (/lb/3/...) and one from wss to ws (/lb-plain/...) are
 * NHC_ERR_CONNECT states saying why, retried with the backoff.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;

/* `url` with "/socket/websocket" behind `prefix` ("lb/2", "lb-plain"). */
static void behind(char *out, size_t cap, const char *url, const char *prefix) {
    const char *path = strstr(url, "/socket/websocket");
    CHECK(path != NULL);
    int n = snprintf(out, cap, "%.*s/%s%s", (int)(path - url), url, prefix, path);
    CHECK(n > 0 && (size_t)n < cap);
}

static nhc_socket *connected(tl_rec *rec, nhc_socket_options *o, const char *url) {
    o->url = url;
    o->on_state = tl_state_closure(rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    return sock;
}

/* The first attempt fails with NHC_ERR_CONNECT naming `why`, and is retried. */
static void refused(nhc_socket_options *o, const char *url, const char *why) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket *sock = connected(&rec, o, url);
    char want[64];
    snprintf(want, sizeof want, "state DISCONNECTED err=%d", (int)NHC_ERR_CONNECT);
    CHECK(tl_rec_wait(&rec, want, 2, 10000));
    CHECK(tl_rec_count2(&rec, want, why) >= 2);
    CHECK(tl_rec_count2(&rec, want, "reconnect=-1") == 0);
    CHECK(tl_rec_count(&rec, "state CONNECTED") == 0);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

int main(void) {
    tl_server_load(&srv);
    tl_ctl_post(&srv, "/proxy", "{}");
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");

    char url[600];
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;

    /* Two redirects: followed. */
    tl_fast_options(&o, &srv);
    behind(url, sizeof url, srv.ws_url, "lb/2");
    nhc_socket *a = connected(&rec, &o, url);
    tl_join_and_echo(&rec, a, "test:lb-2");
    nhc_socket_free(a);

    /* Through the proxy: one tunnel per hop. */
    char info[4096], proxy_url[256];
    CHECK(tl_http(&srv, "GET", "/proxy", NULL, info, sizeof info) == 200);
    CHECK(tl_json_string(info, "url", proxy_url, sizeof proxy_url));
    o.proxy_url = proxy_url;
    nhc_socket *b = connected(&rec, &o, url);
    tl_join_and_echo(&rec, b, "test:lb-2-proxy");
    nhc_socket_free(b);
    char tunnels[16384];
    CHECK(tl_http(&srv, "GET", "/proxy", NULL, tunnels, sizeof tunnels) == 200);
    int granted = 0;
    for (const char *p = tunnels; (p = strstr(p, "\"status\":200")) != NULL; p++) granted++;
    CHECK(granted == 3);
    tl_rec_destroy(&rec);

    /* A third redirect: refused. */
    tl_fast_options(&o, &srv);
    behind(url, sizeof url, srv.ws_url, "lb/3");
    refused(&o, url, "more than 2 redirects");

    /* From wss to ws: refused, though the certificates are right. */
    tl_fast_options(&o, &srv);
    o.ca_file = srv.ca;
    o.cert_file = srv.device_cert;
    o.key_file = srv.device_key;
    behind(url, sizeof url, srv.wss_url, "lb-plain");
    refused(&o, url, "from TLS to plain text");

    tl_ctl_post(&srv, "/proxy", "{}");
    puts("int_redirects: ok");
    return 0;
}
