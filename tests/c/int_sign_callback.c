/*
 * The TLS client signature from an nhc_sign_closure (a secure element's
 * SDK in real life; OpenSSL with the dev server's device key here):
 * joining over mutual TLS, a callback that fails, one that never answers
 * (the attempt times out with a TLS error), and one that is slow while
 * another socket on the same I/O thread connects, joins and echoes.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "testlib.h"

static tl_server srv;

typedef struct signer {
    EVP_PKEY *key;
    int fail_with;       /* nonzero: return this instead of signing */
    bool gated;          /* wait for `open` before answering */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int calls;
    int drops;
} signer;

static void signer_init(signer *s, int fail_with, bool gated) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(srv.device_key, "r");
    CHECK(f != NULL);
    s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    CHECK(s->key != NULL);
    s->fail_with = fail_with;
    s->gated = gated;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void signer_open(signer *s) {
    pthread_mutex_lock(&s->mu);
    s->open = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int signer_calls(signer *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits until *counter (guarded by s->mu) reaches want. */
static bool signer_wait(signer *s, const int *counter, int want, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += tl_ms(timeout_ms) / 1000 + 1;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (*counter < want && rc == 0) rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
    bool reached = *counter >= want;
    pthread_mutex_unlock(&s->mu);
    return reached;
}

/* The closure's drop ran exactly once (it runs once its last call returned). */
static bool dropped_once(signer *s) {
    return signer_wait(s, &s->drops, 1, 10000) && s->drops == 1;
}

/* The closure's drop has already run, exactly once: what nhc_socket_free
 * promises when no signature is pending. */
static bool dropped_before_free_returned(signer *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->drops;
    pthread_mutex_unlock(&s->mu);
    return n == 1;
}

static void signer_destroy(signer *s) {
    EVP_PKEY_free(s->key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* ECDSA over the digest with OpenSSL, converted from DER to raw r || s. */
static int sign_call(nhc_sign_algorithm algorithm, const uint8_t *message, size_t message_len,
                     const uint8_t *digest, size_t digest_len, uint8_t *signature,
                     size_t *signature_len, void *context) {
    (void)message;
    (void)message_len;
    signer *s = context;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    pthread_cond_broadcast(&s->cv);
    while (s->gated && !s->open) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->fail_with != 0) return s->fail_with;
    if (algorithm != NHC_SIGN_ECDSA_P256_SHA256 || digest_len != 32 || *signature_len < 64) return -1;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(s->key, NULL);
    unsigned char der[80];
    size_t der_len = sizeof der;
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_sign(ctx, der, &der_len, digest, digest_len) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) return -2;
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL) return -3;
    const BIGNUM *r, *sv;
    ECDSA_SIG_get0(sig, &r, &sv);
    ok = BN_bn2binpad(r, signature, 32) == 32 && BN_bn2binpad(sv, signature + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    if (!ok) return -4;
    *signature_len = 64;
    return 0;
}

static void sign_drop(void *context) {
    signer *s = context;
    pthread_mutex_lock(&s->mu);
    s->drops++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static nhc_socket *callback_socket(tl_rec *rec, signer *s, uint32_t timeout_ms) {
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.url = srv.wss_url;
    o.ca_file = srv.ca;
    o.cert_file = srv.device_cert;
    o.on_state = tl_state_closure(rec);
    o.key.sign.context = s;
    o.key.sign.call = sign_call;
    o.key.sign.drop = sign_drop;
    o.key.sign_key_type = NHC_KEY_EC_P256;
    o.key.sign_timeout_ms = timeout_ms;
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    return sock;
}

static void openssl_callback_joins(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    signer s;
    signer_init(&s, 0, false);
    nhc_socket *sock = callback_socket(&rec, &s, 0);
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 10000));
    tl_join_and_echo(&rec, sock, "test:sign_callback");
    CHECK(signer_calls(&s) >= 1);
    nhc_socket_free(sock);
    CHECK(dropped_before_free_returned(&s));
    signer_destroy(&s);
    tl_rec_destroy(&rec);
}

static void failing_callback_is_a_tls_error(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    signer s;
    signer_init(&s, -5, false);
    nhc_socket *sock = callback_socket(&rec, &s, 0);
    CHECK(tl_rec_wait(&rec, "signing with the signing callback (ecdsa_secp256r1_sha256) failed: the "
                            "callback returned -5", 1, 10000));
    CHECK(tl_rec_count(&rec, "state CONNECTED") == 0);
    nhc_socket_free(sock);
    CHECK(dropped_before_free_returned(&s));
    signer_destroy(&s);
    tl_rec_destroy(&rec);
}

/* A slow element: while its signature is pending, another socket on the
 * same I/O thread connects, joins and gets its echo; then it answers and
 * its socket connects. A second one never answers within its timeout. */
static void slow_callback_blocks_no_other_socket(void) {
    tl_rec slow_rec, other_rec, stuck_rec;
    tl_rec_init(&slow_rec);
    tl_rec_init(&other_rec);
    tl_rec_init(&stuck_rec);
    signer slow, stuck;
    signer_init(&slow, 0, true);
    signer_init(&stuck, 0, true);

    nhc_socket *slow_sock = callback_socket(&slow_rec, &slow, 60000);
    CHECK(signer_wait(&slow, &slow.calls, 1, 10000));

    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.url = srv.wss_url;
    o.ca_file = srv.ca;
    o.cert_file = srv.device_cert;
    o.key_file = srv.device_key;
    o.on_state = tl_state_closure(&other_rec);
    nhc_socket *other = NULL;
    CHECK_OK(nhc_socket_new(&o, &other));
    CHECK_OK(nhc_socket_connect(other));
    CHECK(tl_rec_wait(&other_rec, "state CONNECTED", 1, 10000));
    tl_join_and_echo(&other_rec, other, "test:sign_meanwhile");
    CHECK(tl_rec_count(&slow_rec, "state CONNECTED") == 0);
    nhc_socket_free(other);

    signer_open(&slow);
    CHECK(tl_rec_wait(&slow_rec, "state CONNECTED", 1, 10000));

    nhc_socket *stuck_sock = callback_socket(&stuck_rec, &stuck, (uint32_t)tl_ms(300));
    char want[64];
    snprintf(want, sizeof want, "no signature within %d ms", tl_ms(300));
    CHECK(tl_rec_wait(&stuck_rec, want, 1, 10000));

    nhc_socket_free(slow_sock);
    /* Let the late calls finish so that drop can run. */
    signer_open(&stuck);
    nhc_socket_free(stuck_sock);
    CHECK(dropped_once(&slow));
    CHECK(dropped_once(&stuck));
    signer_destroy(&slow);
    signer_destroy(&stuck);
    tl_rec_destroy(&slow_rec);
    tl_rec_destroy(&other_rec);
    tl_rec_destroy(&stuck_rec);
}

/* A refused configuration still drops the closure, exactly once. */
static void refused_options_drop_the_closure(void) {
    signer s;
    signer_init(&s, 0, false);
    nhc_socket_options o;
    nhc_socket_options_default(&o);
    o.url = srv.wss_url;
    o.cert_file = srv.device_cert;
    o.key.sign.context = &s;
    o.key.sign.call = sign_call;
    o.key.sign.drop = sign_drop;
    o.key.sign_key_type = 7;
    nhc_socket *sock = NULL;
    CHECK_RC(nhc_socket_new(&o, &sock), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "sign_key_type 7") != NULL);
    CHECK(dropped_once(&s));

    /* A callback together with a PEM key is refused too. */
    o.key.sign_key_type = NHC_KEY_EC_P256;
    o.key_file = srv.device_key;
    CHECK_RC(nhc_socket_new(&o, &sock), NHC_ERR_TLS);
    CHECK(strstr(nhc_last_error_message(), "set only one") != NULL);
    CHECK(signer_wait(&s, &s.drops, 2, 10000) && s.drops == 2);
    signer_destroy(&s);
}

int main(void) {
    tl_server_load(&srv);
    openssl_callback_joins();
    failing_callback_is_a_tls_error();
    slow_callback_blocks_no_other_socket();
    refused_options_drop_the_closure();
    printf("int_sign_callback: OK\n");
    return 0;
}
