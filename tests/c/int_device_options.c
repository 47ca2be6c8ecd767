/*
 * The device options added after the first version, through the C ABI:
 * the console's PTY shell (command, environment, inactivity timeout),
 * required fwup public keys (an update refused without keys), metadata from
 * a binary U-Boot environment image, and the checks of each.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static tl_server srv;

typedef struct ctx {
    tl_rec rec;
} ctx;

static void on_event(const nhc_device_event *e, void *context) {
    ctx *c = context;
    if (e->kind == NHC_DEVICE_EVENT_STATE) return;
    tl_rec_add(&c->rec, "kind=%d topic=%s uuid=%s reason=%s json=%s", (int)e->kind, e->topic,
               e->uuid, e->reason, e->payload.json);
}

static void count_drop(void *context) {
    tl_rec *r = context;
    pthread_mutex_lock(&r->lock);
    r->drops++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static void options(nhc_device_options *o, nhc_socket_options *s, ctx *c) {
    tl_fast_options(s, &srv);
    s->url = srv.wss_url;
    s->ca_file = srv.ca;
    s->cert_file = srv.device_cert;
    s->key_file = srv.device_key;
    CHECK_OK(nhc_device_options_default(o));
    o->socket = s;
    nhc_device_event_closure cl = {c, on_event, count_drop};
    o->on_event = cl;
}

static nhc_device *start(nhc_device_options *o) {
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(o, &dev));
    CHECK_OK(nhc_device_connect(dev));
    return dev;
}

static void finish(ctx *c, nhc_device *dev) {
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&c->rec) == 1);
    tl_rec_destroy(&c->rec);
}

/* Waits until one of the `up` pushes the server received contains `needle`. */
static bool console_printed(const char *needle, int timeout_ms) {
    static char body[65536];
    for (int n = 1; n <= 64; n++) {
        if (!tl_ctl_wait_body(&srv, "console", "up", n, timeout_ms, body, sizeof body)) return false;
        if (strstr(body, needle)) return true;
    }
    return false;
}

static void console_shell_settings(void) {
    tl_ctl_post(&srv, "/reset", "{}");
    ctx c;
    memset(&c, 0, sizeof c);
    tl_rec_init(&c.rec);
    nhc_socket_options s;
    nhc_device_options o;
    options(&o, &s, &c);
    /* The shell's own output proves the command and the environment were used. */
    const char *command[] = {"/bin/sh", "-c", "echo \"$NHC_GREETING-$((6 * 7))\"; exec cat"};
    nhc_key_value env[] = {{"NHC_GREETING", "hello"}};
    o.console_enabled = true;
    o.console_shell = true;
    o.console_shell_command = command;
    o.console_shell_command_len = 3;
    o.console_shell_env = env;
    o.console_shell_env_len = 1;
    o.console_shell_timeout_ms = 500;
    nhc_device *dev = start(&o);
    CHECK(tl_rec_wait(&c.rec, "topic=console", 1, 10000));
    CHECK(tl_ctl_wait_joined(&srv, "console", 1, 10000));
    /* The shell starts on the first keystroke. */
    CHECK(tl_ctl_push(&srv, "console", "dn", "{\"data\":\"\\n\"}") == 1);
    CHECK(console_printed("hello-42", 10000));
    /* No input for 500 ms ends the session with a notice. */
    CHECK(console_printed("Session timeout due to inactivity", 10000));
    finish(&c, dev);
}

static void bad_console_settings_are_refused(void) {
    ctx c;
    memset(&c, 0, sizeof c);
    tl_rec_init(&c.rec);
    nhc_socket_options s;
    nhc_device_options o;
    options(&o, &s, &c);
    const char *command[] = {"/bin/sh"};
    o.console_shell_command = command;
    o.console_shell_command_len = 1;
    nhc_device *dev = (nhc_device *)0x1;
    CHECK_RC(nhc_device_new(&o, &dev), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "need console_shell") != NULL);
    CHECK(dev == (nhc_device *)0x1);
    CHECK(tl_rec_drops(&c.rec) == 1);

    options(&o, &s, &c);
    o.console_enabled = true;
    o.console_shell = true;
    o.console_shell_timeout_ms = 0;
    CHECK_RC(nhc_device_new(&o, &dev), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "console_shell_timeout_ms") != NULL);

    options(&o, &s, &c);
    o.console_enabled = true;
    o.console_shell = true;
    o.console_shell_command = NULL;
    o.console_shell_command_len = 2;
    CHECK_RC(nhc_device_new(&o, &dev), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "console_shell_command is NULL") != NULL);

    options(&o, &s, &c);
    const char *keys[] = {"not a key"};
    o.fwup_public_keys = keys;
    o.fwup_public_keys_len = 1;
    CHECK_RC(nhc_device_new(&o, &dev), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "fwup public key") != NULL);
    CHECK(tl_rec_drops(&c.rec) == 4);
    tl_rec_destroy(&c.rec);
}

static void updates_need_keys_when_required(void) {
    tl_ctl_post(&srv, "/reset", "{}");
    tl_ctl_post(&srv, "/public_keys", "{\"fwup\":[]}");
    ctx c;
    memset(&c, 0, sizeof c);
    tl_rec_init(&c.rec);
    nhc_socket_options s;
    nhc_device_options o;
    options(&o, &s, &c);
    o.require_fwup_public_keys = true;
    nhc_device *dev = start(&o);
    /* No key list at all for an organisation without keys (NervesHub sends
     * none); extensions:get comes where the keys would have come before it. */
    char kind[32];
    snprintf(kind, sizeof kind, "kind=%d ", (int)NHC_DEVICE_EVENT_EXTENSIONS_GET);
    CHECK(tl_rec_wait(&c.rec, kind, 1, 10000));
    snprintf(kind, sizeof kind, "kind=%d ", (int)NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS);
    CHECK(tl_rec_count(&c.rec, kind) == 0);
    CHECK(tl_ctl_push(&srv, "device", "update",
                      "{\"update_available\":true,\"firmware_url\":\"http://127.0.0.1:1/f\","
                      "\"firmware_meta\":{\"uuid\":\"44444444-4444-4444-4444-444444444444\"}}") == 1);
    snprintf(kind, sizeof kind, "kind=%d ", (int)NHC_DEVICE_EVENT_UPDATE_IGNORED);
    CHECK(tl_rec_wait(&c.rec, kind, 1, 10000));
    CHECK(tl_rec_count(&c.rec, "reason=Refusing unverified firmware : no public keys available") ==
          1);
    char body[4096];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 1, 10000, body, sizeof body));
    CHECK(strstr(body, "\"status\":\"failed\"") != NULL);
    CHECK(strstr(body, "no public keys available") != NULL);
    snprintf(kind, sizeof kind, "kind=%d ", (int)NHC_DEVICE_EVENT_UPDATE_AVAILABLE);
    CHECK(tl_rec_count(&c.rec, kind) == 0);
    finish(&c, dev);
    tl_ctl_post(&srv, "/reset", "{}");
}

static uint32_t crc32(const unsigned char *p, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

/* A redundant U-Boot environment image (CRC, flag, entries) of `size` bytes. */
static void write_uboot_env(const char *path, size_t size) {
    const char *entries[] = {"a.nerves_fw_uuid=55555555-5555-5555-5555-555555555555",
                             "a.nerves_fw_product=uboot-image", "nerves_fw_active=a"};
    unsigned char *img = calloc(1, size);
    CHECK(img != NULL);
    size_t at = 5;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        size_t n = strlen(entries[i]) + 1;
        memcpy(img + at, entries[i], n);
        at += n;
    }
    img[4] = 1;
    uint32_t crc = crc32(img + 5, size - 5);
    for (int i = 0; i < 4; i++) img[i] = (unsigned char)(crc >> (8 * i));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(img, 1, size, f) == size);
    CHECK(fclose(f) == 0);
    free(img);
}

static void metadata_from_a_uboot_image(void) {
    tl_ctl_post(&srv, "/reset", "{}");
    char path[256];
    snprintf(path, sizeof path, "/tmp/nhc-uboot-%ld.env", (long)getpid());
    write_uboot_env(path, 8192);
    ctx c;
    memset(&c, 0, sizeof c);
    tl_rec_init(&c.rec);
    nhc_socket_options s;
    nhc_device_options o;
    options(&o, &s, &c);
    o.uboot_env_path = path;
    o.uboot_env_size = 8192;
    /* The wrong layout shifts the data by one byte: a CRC error, named. */
    nhc_device *dev = NULL;
    CHECK_RC(nhc_device_new(&o, &dev), NHC_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nhc_last_error_message(), "CRC mismatch") != NULL);
    CHECK(strstr(nhc_last_error_message(), path) != NULL);
    options(&o, &s, &c);
    o.uboot_env_path = path;
    o.uboot_env_size = 8192;
    o.uboot_env_redundant = true;
    dev = start(&o);
    char body[8192];
    CHECK(tl_ctl_wait_body(&srv, "device", "phx_join", 1, 10000, body, sizeof body));
    CHECK(strstr(body, "\"nerves_fw_uuid\":\"55555555-5555-5555-5555-555555555555\"") != NULL);
    CHECK(strstr(body, "\"nerves_fw_product\":\"uboot-image\"") != NULL);
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&c.rec) == 2);
    tl_rec_destroy(&c.rec);
    unlink(path);
}

int main(void) {
    tl_server_load(&srv);
    bad_console_settings_are_refused();
    console_shell_settings();
    updates_need_keys_when_required();
    metadata_from_a_uboot_image();
    nhc_shutdown();
    tl_ctl_post(&srv, "/reset", "{}");
    printf("int_device_options: ok\n");
    return 0;
}
