/*
 * The real update chain through the C ABI (issue 22; tests/fwup_chain.rs
 * has every case): a signed .fw applied by the real fwup to the inactive
 * slot of an A/B disk image, the next boot reporting it and validating,
 * and unsigned firmware refused with fwup's message, the slot unchanged.
 * Fixtures: tests/fixtures/fwup-fixture.sh ($NHC_FWUP_FIXTURE) run with
 * $NHC_FWUP. Without fwup the test fails in CI and is skipped elsewhere.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

/* ctest's SKIP_RETURN_CODE for this test. */
#define SKIPPED 77
/* The U-Boot environment's size in tests/fixtures/fwup.conf, at the disk's start. */
#define ENV_SIZE 8192

static tl_server srv;
static const char *fwup;
static char dir[256], disk[300], key[128];

static const char *kind_name(nhc_device_event_kind k) {
    switch (k) {
    case NHC_DEVICE_EVENT_JOINED: return "JOINED";
    case NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS: return "FWUP_PUBLIC_KEYS";
    case NHC_DEVICE_EVENT_UPDATE_FINISHED: return "UPDATE_FINISHED";
    case NHC_DEVICE_EVENT_UPDATE_PROGRESS: return "UPDATE_PROGRESS";
    default: return "OTHER";
    }
}

/* "dev <KIND> topic=<t> ok=<0|1> percent=<p> reason=<r>" */
static void on_event(const nhc_device_event *e, void *context) {
    tl_rec_add(context, "dev %s topic=%s ok=%d percent=%u reason=%s", kind_name(e->kind), e->topic,
               (int)e->ok, e->percent, e->reason);
}

static void no_drop(void *context) { (void)context; }

/* Whether the disk's U-Boot environment holds the entry "key=value". */
static bool env_has(const char *entry) {
    size_t len = 0;
    char *image = tl_read_file(disk, &len);
    bool found = false;
    size_t n = strlen(entry);
    /* Entries start after the 4-byte CRC and end in a NUL. */
    for (size_t i = 4; i + n < len && i < ENV_SIZE && image[i] != '\0';) {
        if (memcmp(image + i, entry, n) == 0 && image[i + n] == '\0') found = true;
        i += strlen(image + i) + 1;
    }
    free(image);
    return found;
}

static int validated(void *context) {
    (void)context;
    return env_has("nerves_fw_validated=1") ? 1 : 0;
}

static void run(const char *command) {
    int rc = system(command);
    if (rc != 0) tl_fail(__FILE__, __LINE__, "command failed", command);
}

/* Stores `file` of the fixture as a .fw update; `update` gets its payload
 * (firmware_meta from its meta.conf), `uuid` the firmware UUID. */
static void offer(const char *file, char *update, size_t cap, char *uuid, size_t uuid_cap) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len = 0;
    char *bytes = tl_read_file(path, &len);
    char *b64 = tl_base64((const unsigned char *)bytes, len);
    size_t blen = strlen(b64) + 128;
    char *body = malloc(blen);
    CHECK(body != NULL);
    snprintf(body, blen, "{\"name\":\"c-%s\",\"base64\":\"%s\",\"fw\":true}", file, b64);
    static char answer[65536];
    CHECK(tl_http(&srv, "POST", "/firmware", body, answer, sizeof answer) == 200);
    CHECK(tl_json_object(answer, "update", update, cap));
    char meta[4096];
    CHECK(tl_json_object(update, "firmware_meta", meta, sizeof meta));
    CHECK(tl_json_string(meta, "uuid", uuid, uuid_cap));
    free(body);
    free(b64);
    free(bytes);
}

static void server_keys(void) {
    char body[256];
    snprintf(body, sizeof body, "{\"fwup\":[\"%s\"]}", key);
    tl_ctl_post(&srv, "/public_keys", body);
}

/* A device booted from the disk, applying updates to it with fwup. */
static nhc_device *boot(tl_rec *rec) {
    nhc_socket_options s;
    static const char *args[6];
    args[0] = "--apply";
    args[1] = "--no-unmount";
    args[2] = "-d";
    args[3] = disk;
    args[4] = "--task";
    args[5] = "upgrade";
    nhc_update_options u;
    CHECK_OK(nhc_update_options_default(&u));
    u.fwup_command = fwup;
    u.fwup_args = args;
    u.fwup_args_len = 6;
    u.idle_timeout_ms = (uint32_t)tl_ms(10000);
    nhc_device_options o;
    tl_nh1_device_options(&o, &s, &srv, "c-fwup-device");
    o.uboot_env_path = disk;
    o.uboot_env_size = ENV_SIZE;
    o.auto_update = &u;
    nhc_validated_closure v = {NULL, validated, no_drop};
    o.firmware_validated = v;
    o.validation_poll_interval_ms = 20;
    nhc_device_event_closure cl = {rec, on_event, no_drop};
    o.on_event = cl;
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(&o, &dev));
    CHECK_OK(nhc_device_connect(dev));
    CHECK(tl_rec_wait(rec, "dev FWUP_PUBLIC_KEYS", 1, 10000));
    return dev;
}

static void signed_update_then_reboot(void) {
    tl_ctl_post(&srv, "/reset", "{}");
    server_keys();
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_device *dev = boot(&rec);
    static char update[16384];
    char uuid[64], entry[128];
    offer("v2.fw", update, sizeof update, uuid, sizeof uuid);
    CHECK(tl_ctl_push(&srv, "device", "update", update) == 1);
    CHECK(tl_rec_wait(&rec, "dev UPDATE_FINISHED", 1, 30000));
    CHECK(tl_rec_count2(&rec, "dev UPDATE_FINISHED", "ok=1") == 1);
    CHECK(tl_rec_count(&rec, "dev UPDATE_PROGRESS") >= 1);
    static char statuses[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 3, 5000, statuses, sizeof statuses));
    CHECK(strstr(statuses, "\"status\":\"completed\"") != NULL);
    CHECK(env_has("nerves_fw_active=b"));
    snprintf(entry, sizeof entry, "b.nerves_fw_uuid=%s", uuid);
    CHECK(env_has(entry));
    CHECK(env_has("nerves_fw_validated=0"));
    nhc_device_free(dev);
    tl_rec_destroy(&rec);

    /* The next boot reads the environment again. */
    tl_ctl_post(&srv, "/reset", "{}");
    server_keys();
    tl_rec_init(&rec);
    dev = boot(&rec);
    static char joins[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "phx_join", 1, 5000, joins, sizeof joins));
    snprintf(entry, sizeof entry, "\"nerves_fw_uuid\":\"%s\"", uuid);
    CHECK(strstr(joins, entry) != NULL);
    CHECK(strstr(joins, "\"firmware_validated\":false") != NULL);
    char command[1024];
    snprintf(command, sizeof command, "'%s' -a -q -U -t validate -d '%s' -i '%s/v2.fw'", fwup, disk,
             dir);
    run(command);
    CHECK(tl_ctl_wait(&srv, "device", "firmware_validated", 1, 5000));
    nhc_device_free(dev);
    tl_rec_destroy(&rec);
}

static void unsigned_firmware_is_refused(void) {
    tl_ctl_post(&srv, "/reset", "{}");
    server_keys();
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_device *dev = boot(&rec);
    size_t before_len = 0, after_len = 0;
    char *before = tl_read_file(disk, &before_len);
    static char update[16384];
    char uuid[64];
    offer("unsigned.fw", update, sizeof update, uuid, sizeof uuid);
    CHECK(tl_ctl_push(&srv, "device", "update", update) == 1);
    CHECK(tl_rec_wait(&rec, "dev UPDATE_FINISHED", 1, 30000));
    const char *reason = "reason=FWUP error : \"Expecting signed firmware archive.\"";
    CHECK(tl_rec_count2(&rec, "dev UPDATE_FINISHED", reason) == 1);
    static char statuses[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 2, 5000, statuses, sizeof statuses));
    CHECK(strstr(statuses, "\"status\":\"failed\"") != NULL);
    CHECK(strstr(statuses, "Expecting signed firmware archive.") != NULL);
    char *after = tl_read_file(disk, &after_len);
    CHECK(before_len == after_len && memcmp(before, after, ENV_SIZE) == 0);
    free(before);
    free(after);
    nhc_device_free(dev);
    tl_rec_destroy(&rec);
}

int main(void) {
    fwup = getenv("NHC_FWUP");
    const char *fixture = getenv("NHC_FWUP_FIXTURE");
    if (!fwup || !*fwup || access(fwup, X_OK) != 0 || !fixture) {
        const char *ci = getenv("CI");
        fprintf(stderr, "int_fwup_chain: fwup not found (NHC_FWUP=%s): run scripts/setup.sh\n",
                fwup ? fwup : "(unset)");
        return ci && strcmp(ci, "true") == 0 ? 1 : SKIPPED;
    }
    tl_server_load(&srv);
    snprintf(dir, sizeof dir, "/tmp/nhc-c-fwup-%d", (int)getpid());
    snprintf(disk, sizeof disk, "%s/disk.img", dir);
    char command[1024];
    snprintf(command, sizeof command, "rm -rf '%s' && bash '%s' '%s' '%s'", dir, fixture, fwup, dir);
    run(command);
    char keyfile[300];
    snprintf(keyfile, sizeof keyfile, "%s/key.pub", dir);
    char *text = tl_read_file(keyfile, NULL);
    snprintf(key, sizeof key, "%.*s", (int)strcspn(text, "\r\n"), text);
    free(text);

    signed_update_then_reboot();
    unsigned_firmware_is_refused();

    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    run(command);
    nhc_shutdown();
    tl_ctl_post(&srv, "/reset", "{}");
    printf("int_fwup_chain: ok\n");
    return 0;
}
