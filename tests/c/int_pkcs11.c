/*
 * A key on a PKCS#11 token (SoftHSM2) through nhc_socket_options.key: the
 * key is generated on the token, a CSR is signed on the token (OpenSSL's
 * pkcs11 engine), the dev server's CA issues the certificate, and the
 * socket joins over mutual TLS. Then each configuration mistake: wrong
 * PIN, missing module, bad URI, missing key, two PIN sources.
 *
 * Exit 77 (skipped) when SoftHSM2, OpenSC or the engine is missing, except
 * in CI (CI=true), where that is a failure: scripts/setup.sh installs them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static tl_server srv;
static char dir[256];
static char module[256];
static char uri[256];
static char pin_file[512];

static const char *modules[] = {
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
};

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) {
        fprintf(stderr, "command failed: %s\n", cmd);
        exit(1);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* 0 with the tools present; otherwise skip (77) or, in CI, fail. */
static int require_tools(void) {
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
        if (access(modules[i], R_OK) == 0) {
            snprintf(module, sizeof module, "%s", modules[i]);
            break;
        }
    }
    bool ok = module[0] != '\0' &&
              system("command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null && "
                     "OPENSSL_CONF=/dev/null openssl engine pkcs11 >/dev/null 2>&1") == 0;
    if (ok) return 0;
    const char *ci = getenv("CI");
    fprintf(stderr, "int_pkcs11: SoftHSM2 (softhsm2), pkcs11-tool (opensc) or the OpenSSL pkcs11 "
                    "engine (libengine-pkcs11-openssl) is missing: run scripts/setup.sh\n");
    if (ci != NULL && strcmp(ci, "true") == 0) exit(1);
    fprintf(stderr, "SKIPPED\n");
    exit(77);
}

/* A token with an EC P-256 key made on it, and its certificate from the dev CA. */
static void provision(char *cert_path, size_t cap) {
    snprintf(dir, sizeof dir, "/tmp/nhc-c-softhsm-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/tokens", dir);
    sh("mkdir -p '%s'%s", path, "");
    snprintf(text, sizeof text,
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", path);
    snprintf(path, sizeof path, "%s/softhsm2.conf", dir);
    write_file(path, text);
    setenv("SOFTHSM2_CONF", path, 1);
    sh("softhsm2-util --init-token --free --label nhc-c --so-pin 87654321 --pin 2468 >/dev/null%s%s",
       "", "");
    sh("pkcs11-tool --module '%s' --token-label nhc-c --login --pin 2468 --keypairgen "
       "--key-type EC:prime256v1 --label device --id 01 >/dev/null 2>&1%s",
       module, "");
    snprintf(text, sizeof text,
             "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n"
             "[pkcs11]\nMODULE_PATH = %s\n",
             module);
    snprintf(path, sizeof path, "%s/openssl.cnf", dir);
    write_file(path, text);
    char csr_path[512];
    snprintf(csr_path, sizeof csr_path, "%s/device.csr", dir);
    sh("OPENSSL_CONF='%s' openssl req -new -engine pkcs11 -keyform engine -key "
       "'pkcs11:token=nhc-c;object=device;type=private;pin-value=2468' -subj /CN=nhc-c-hsm "
       "-out '%s' 2>/dev/null",
       path, csr_path);

    size_t len;
    char *csr = tl_read_file(csr_path, &len);
    char *body = malloc(len * 2 + 64);
    CHECK(body != NULL);
    char *w = body + sprintf(body, "{\"cn\":\"nhc-c-hsm\",\"csr\":\"");
    for (size_t i = 0; i < len; i++) {
        if (csr[i] == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        } else {
            *w++ = csr[i];
        }
    }
    strcpy(w, "\"}");
    char out[2048];
    CHECK(tl_http(&srv, "POST", "/issue_device", body, out, sizeof out) == 200);
    CHECK(tl_json_string(out, "cert", cert_path, cap));
    free(body);
    free(csr);

    snprintf(uri, sizeof uri, "pkcs11:token=nhc-c;object=device;type=private");
    snprintf(pin_file, sizeof pin_file, "%s/pin", dir);
    write_file(pin_file, "2468\n");
}

static void options(nhc_socket_options *o, const char *cert) {
    tl_fast_options(o, &srv);
    o->url = srv.wss_url;
    o->ca_file = srv.ca;
    o->cert_file = cert;
    o->key.pkcs11_module = module;
    o->key.pkcs11_uri = uri;
    o->key.pkcs11_pin_file = pin_file;
}

static void token_key_joins(const char *cert) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    options(&o, cert);
    o.on_state = tl_state_closure(&rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 10000));
    tl_join_and_echo(&rec, sock, "test:pkcs11");
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

static void refused(nhc_socket_options *o, nhc_result want, const char *message) {
    nhc_socket *sock = NULL;
    CHECK_RC(nhc_socket_new(o, &sock), want);
    const char *got = nhc_last_error_message();
    if (strstr(got, message) == NULL) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", message, got);
        exit(1);
    }
    CHECK(strstr(got, "1357") == NULL); /* the wrong PIN is never echoed */
}

static void every_mistake_is_a_clear_error(const char *cert) {
    nhc_socket_options o;
    options(&o, cert);
    o.key.pkcs11_pin_file = NULL;
    o.key.pkcs11_pin = "1357";
    refused(&o, NHC_ERR_TLS, "CKR_PIN_INCORRECT");

    options(&o, cert);
    o.key.pkcs11_module = "/nonexistent/libnothing.so";
    refused(&o, NHC_ERR_TLS, "PKCS#11 module /nonexistent/libnothing.so does not exist");

    options(&o, cert);
    o.key.pkcs11_uri = "pkcs11:token=nhc-c;label=device";
    refused(&o, NHC_ERR_INVALID_ARGUMENT, "unsupported path attribute \"label\"");

    options(&o, cert);
    o.key.pkcs11_uri = "pkcs11:token=nhc-c;object=nothing";
    refused(&o, NHC_ERR_TLS, "no private key labelled \"nothing\"");

    options(&o, cert);
    o.key.pkcs11_pin = "1357";
    refused(&o, NHC_ERR_INVALID_ARGUMENT, "set at most one of key.pkcs11_pin");

    options(&o, cert);
    o.key_file = srv.device_key;
    refused(&o, NHC_ERR_TLS, "set only one");
}

int main(void) {
    require_tools();
    tl_server_load(&srv);
    char cert[1024];
    provision(cert, sizeof cert);
    /* Mistakes first: PKCS#11 login state is per process and token, so a
     * wrong PIN is only noticed before the first successful login. */
    every_mistake_is_a_clear_error(cert);
    token_key_joins(cert);
    sh("rm -rf '%s'%s", dir, "");
    printf("int_pkcs11: OK\n");
    return 0;
}
