/*
 * HTTP CONNECT proxies from C: the dev server's proxy chosen explicitly
 * (proxy_url), through http_proxy (proxy_from_env, the default), bypassed
 * by no_proxy, and switched off; a proxy that wants credentials gives
 * NHC_ERR_PROXY and a retry, and lets the socket through with them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;
static char proxy_url[256];

/* Tunnels the proxy opened since its rules were last set. */
static int tunnels(void) {
    char body[16384];
    CHECK(tl_http(&srv, "GET", "/proxy", NULL, body, sizeof body) == 200);
    int n = 0;
    for (const char *p = body; (p = strstr(p, "\"target\"")) != NULL; p++) n++;
    return n;
}

static nhc_socket *echo_socket(tl_rec *rec, const char *proxy, int from_env, const char *topic) {
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.on_state = tl_state_closure(rec);
    o.proxy_url = proxy;
    o.proxy_from_env = from_env;
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    tl_join_and_echo(rec, sock, topic);
    return sock;
}

int main(void) {
    tl_server_load(&srv);
    char info[4096];
    CHECK(tl_http(&srv, "GET", "/proxy", NULL, info, sizeof info) == 200);
    CHECK(tl_json_string(info, "url", proxy_url, sizeof proxy_url));
    tl_ctl_post(&srv, "/proxy", "{}");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    unsetenv("http_proxy");

    /* The default reads the environment. */
    nhc_socket_options d;
    CHECK_OK(nhc_socket_options_default(&d));
    CHECK(d.proxy_from_env && d.proxy_url == NULL && d.no_proxy == NULL);

    tl_rec rec;
    tl_rec_init(&rec);
    /* Explicit. */
    nhc_socket *a = echo_socket(&rec, proxy_url, 0, "test:proxy-explicit");
    CHECK(tunnels() == 1);
    /* From http_proxy (ws:// URLs), then bypassed with no_proxy. */
    CHECK(setenv("http_proxy", proxy_url, 1) == 0);
    nhc_socket *b = echo_socket(&rec, NULL, 1, "test:proxy-env");
    CHECK(tunnels() == 2);
    CHECK(setenv("no_proxy", "localhost,127.0.0.1", 1) == 0);
    nhc_socket *c = echo_socket(&rec, NULL, 1, "test:proxy-bypass");
    CHECK(tunnels() == 2);
    unsetenv("no_proxy");
    /* Environment lookup off: direct. */
    nhc_socket *e = echo_socket(&rec, NULL, 0, "test:proxy-off");
    CHECK(tunnels() == 2);
    unsetenv("http_proxy");
    nhc_socket_free(a);
    nhc_socket_free(b);
    nhc_socket_free(c);
    nhc_socket_free(e);

    /* The proxy wants credentials: NHC_ERR_PROXY, retried. */
    tl_ctl_post(&srv, "/proxy", "{\"credentials\":\"alice:c-s3cret\"}");
    tl_rec denied;
    tl_rec_init(&denied);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.on_state = tl_state_closure(&denied);
    o.proxy_url = proxy_url;
    nhc_socket *f = NULL;
    CHECK_OK(nhc_socket_new(&o, &f));
    CHECK_OK(nhc_socket_connect(f));
    char want[64];
    snprintf(want, sizeof want, "state DISCONNECTED err=%d", (int)NHC_ERR_PROXY);
    CHECK(tl_rec_wait(&denied, want, 2, 5000));
    CHECK(tl_rec_count2(&denied, want, "requires authentication") >= 2);
    CHECK(tl_rec_count2(&denied, want, "reconnect=-1") == 0);
    nhc_socket_free(f);
    CHECK(strcmp(nhc_result_str(NHC_ERR_PROXY), "HTTP proxy error") == 0);

    /* With them (in the URL's user info): through. */
    char with_creds[320];
    snprintf(with_creds, sizeof with_creds, "http://alice:c-s3cret@%s", proxy_url + strlen("http://"));
    nhc_socket *g = echo_socket(&rec, with_creds, 0, "test:proxy-auth");
    char body[16384];
    CHECK(tl_http(&srv, "GET", "/proxy", NULL, body, sizeof body) == 200);
    CHECK(strstr(body, "\"credentials_sent\":true") != NULL);
    nhc_socket_free(g);

    /* A proxy URL the library cannot use: refused at creation, password not echoed. */
    o.proxy_url = "https://alice:c-s3cret@proxy.example:3128";
    memset(&o.on_state, 0, sizeof o.on_state);
    nhc_socket *h = NULL;
    CHECK_RC(nhc_socket_new(&o, &h), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "only http://") != NULL);
    CHECK(strstr(nhc_last_error_message(), "c-s3cret") == NULL);

    tl_ctl_post(&srv, "/proxy", "{}");
    tl_rec_destroy(&denied);
    tl_rec_destroy(&rec);
    puts("int_proxy: ok");
    return 0;
}
