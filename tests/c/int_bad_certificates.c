/*
 * The bad-certificate matrix through the C ABI: each way the TLS material
 * can be wrong gives NHC_ERR_TLS with a message saying which one it is, from
 * nhc_socket_new (bad files) or in the DISCONNECTED state event (the
 * handshake). Same cases as tests/bad_certificates.rs, except the expired
 * certificates, which need a certificate generator or a second TLS server
 * (covered in Rust and Python).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;
static char other_ca[1100], rogue_cert[1100], rogue_key[1100];
static char missing[1100], garbage[1100], bad_base64[1100];

static void pki_path(char *out, size_t size, const char *file) {
    snprintf(out, size, "%s/%s", srv.pki_dir, file);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

static void device_options(nhc_socket_options *o) {
    tl_fast_options(o, &srv);
    o->url = srv.wss_url;
    o->ca_file = srv.ca;
    o->cert_file = srv.device_cert;
    o->key_file = srv.device_key;
}

/* nhc_socket_new refuses the options with NHC_ERR_TLS and a message containing `phrase`. */
static void refused_early(const char *name, nhc_socket_options *o, const char *phrase) {
    nhc_socket *sock = NULL;
    nhc_result rc = nhc_socket_new(o, &sock);
    const char *message = nhc_last_error_message();
    if (rc != NHC_ERR_TLS || sock != NULL || !strstr(message, phrase)) {
        fprintf(stderr, "%s: rc=%d message=\"%s\", expected NHC_ERR_TLS and \"%s\"\n", name,
                (int)rc, message, phrase);
        tl_fail(__FILE__, __LINE__, name, message);
    }
    printf("  %-34s %s\n", name, message);
}

/* The connection attempt fails with NHC_ERR_TLS and a reason containing `phrase`. */
static void refused_at_connect(const char *name, nhc_socket_options *o, const char *phrase) {
    tl_rec rec;
    tl_rec_init(&rec);
    o->on_state = tl_state_closure(&rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    if (!tl_rec_wait(&rec, "state DISCONNECTED err=-2", 1, tl_ms(10000)) ||
        tl_rec_count2(&rec, "state DISCONNECTED err=-2", phrase) < 1) {
        tl_fail(__FILE__, __LINE__, name, phrase);
    }
    CHECK(tl_rec_count(&rec, "state CONNECTED") == 0);
    printf("  %-34s refused with \"%s\"\n", name, phrase);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

int main(void) {
    tl_server_load(&srv);
    CHECK(srv.pki_dir[0] != '\0');
    pki_path(other_ca, sizeof other_ca, "other-ca.pem");
    pki_path(rogue_cert, sizeof rogue_cert, "rogue.pem");
    pki_path(rogue_key, sizeof rogue_key, "rogue-key.pem");
    pki_path(missing, sizeof missing, "c-bad-certificates-missing.pem");
    pki_path(garbage, sizeof garbage, "c-bad-certificates-garbage.pem");
    pki_path(bad_base64, sizeof bad_base64, "c-bad-certificates-bad-base64.pem");
    write_file(garbage, "this is not a certificate\n");
    write_file(bad_base64,
               "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n");
    nhc_socket_options o;

    device_options(&o);
    o.ca_file = other_ca;
    refused_at_connect("wrong CA", &o, "server certificate is not signed by any CA in");

    char url[512];
    device_options(&o);
    snprintf(url, sizeof url, "%s", srv.wss_url);
    char *host = strstr(url, "localhost");
    CHECK(host != NULL);
    /* wss://localhost:PORT -> wss://127.0.0.1:PORT, and a name the certificate lacks. */
    char rest[512];
    snprintf(rest, sizeof rest, "%s", host + strlen("localhost"));
    snprintf(host, sizeof url - (size_t)(host - url), "127.0.0.1%s", rest);
    o.url = url;
    o.server_name = "devices.example.com";
    refused_at_connect("wrong hostname", &o,
                       "server certificate is not valid for host \"devices.example.com\"");

    device_options(&o);
    o.cert_file = rogue_cert;
    o.key_file = rogue_key;
    refused_at_connect("rogue client certificate", &o,
                       "(alert: unknown_ca); the server does not trust its issuer");

    device_options(&o);
    o.ca_file = missing;
    refused_early("unreadable CA file", &o, "cannot read CA file");
    device_options(&o);
    o.cert_file = missing;
    refused_early("unreadable certificate file", &o, "cannot read client certificate file");
    device_options(&o);
    o.key_file = missing;
    refused_early("unreadable key file", &o, "cannot read private key file");
    device_options(&o);
    o.cert_file = garbage;
    refused_early("garbage instead of PEM", &o, "contains no PEM certificate");
    device_options(&o);
    o.cert_file = bad_base64;
    refused_early("PEM with broken base64", &o, "a PEM block contains invalid base64");
    device_options(&o);
    o.key_file = garbage;
    refused_early("garbage instead of a key", &o, "contains no private key");
    device_options(&o);
    o.key_file = rogue_key;
    refused_early("key not matching the certificate", &o, "does not match the certificate");

    remove(garbage);
    remove(bad_base64);
    nhc_shutdown();
    printf("int_bad_certificates: ok\n");
    return 0;
}
