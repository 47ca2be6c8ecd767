/*
 * wss with mutual TLS against the dev server's PKI: certificates from files
 * and from memory; a missing client certificate is an AUTH_ERROR (HTTP
 * 401); a wrong CA or server name is a TLS error.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;

static nhc_socket *wss_socket(tl_rec *rec, nhc_socket_options *o) {
    o->url = srv.wss_url;
    o->on_state = tl_state_closure(rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    return sock;
}

static void mtls_from_files(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.ca_file = srv.ca;
    o.cert_file = srv.device_cert;
    o.key_file = srv.device_key;
    nhc_socket *sock = wss_socket(&rec, &o);
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 10000));
    tl_join_and_echo(&rec, sock, "test:tls_files");
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

static void mtls_from_memory(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    size_t ca_len, cert_len, key_len;
    char *ca = tl_read_file(srv.ca, &ca_len);
    char *cert = tl_read_file(srv.device_cert, &cert_len);
    char *key = tl_read_file(srv.device_key, &key_len);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.ca_pem = (const uint8_t *)ca;
    o.ca_pem_len = ca_len;
    o.cert_pem = (const uint8_t *)cert;
    o.cert_pem_len = cert_len;
    o.key_pem = (const uint8_t *)key;
    o.key_pem_len = key_len;
    nhc_socket *sock = wss_socket(&rec, &o);
    /* Copied by nhc_socket_new: the buffers may go at once. */
    memset(key, 0, key_len);
    free(ca);
    free(cert);
    free(key);
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 10000));
    tl_join_and_echo(&rec, sock, "test:tls_memory");
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

static void no_client_cert(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.ca_file = srv.ca;
    nhc_socket *sock = wss_socket(&rec, &o);
    CHECK(tl_rec_wait(&rec, "state AUTH_ERROR err=-3", 1, 10000));
    /* Retried at the slow end of the backoff, not given up. */
    CHECK(tl_rec_count(&rec, "state AUTH_ERROR err=-3 reconnect=-1") == 0);
    CHECK(tl_rec_count(&rec, "401") >= 1);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

static void bad_server_identity(const char *ca, const char *server_name) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.ca_file = ca;
    o.cert_file = srv.device_cert;
    o.key_file = srv.device_key;
    o.server_name = server_name;
    nhc_socket *sock = wss_socket(&rec, &o);
    CHECK(tl_rec_wait(&rec, "state DISCONNECTED err=-2", 1, 10000));
    CHECK(tl_rec_count(&rec, "state CONNECTED") == 0);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

int main(void) {
    tl_server_load(&srv);
    mtls_from_files();
    mtls_from_memory();
    no_client_cert();
    /* The device certificate is no CA of the server's certificate. */
    bad_server_identity(srv.device_cert, NULL);
    bad_server_identity(srv.ca, "not-the-server.example");
    nhc_shutdown();
    printf("int_tls: ok\n");
    return 0;
}
