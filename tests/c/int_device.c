/*
 * The NervesHub device through the C ABI, against the dev server: mTLS join
 * with metadata, an update applied into a file and into C sink callbacks,
 * a corrupted image reported as failed, reboot, identify, ignore and
 * reschedule, the console round trip, NH1 shared secrets, polled delivery
 * with a free from inside the callback.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static tl_server srv;

/* --- a recorder for device events ---------------------------------------- */

typedef struct dev_ctx {
    tl_rec rec;
    nhc_device *dev;       /* set by the test, for callbacks that act */
    bool free_on_joined;   /* polled test: free the device from its own callback */
    bool check_rebooting;  /* reboot test: look at the server from the callback */
    nhc_device_event *kept; /* a copy of the first UPDATE_AVAILABLE */
} dev_ctx;

/* One line per event:
 *   "dev STATE <state> err=<code> reason=<text>"
 *   "dev <KIND> topic=<t> event=<e> uuid=<u> size=<n> version=<v> checksum=<c>
 *        stage=<s> percent=<p> ok=<0|1> ref=<r> text=<t> wh=<w>x<h> reason=<r> json=<json>" */
static void on_device_event(const nhc_device_event *e, void *context) {
    dev_ctx *c = context;
    if (e->kind == NHC_DEVICE_EVENT_STATE) {
        tl_rec_add(&c->rec, "dev STATE %s err=%d reason=%s", nhc_state_str((int)e->state), (int)e->error,
                   e->reason);
        return;
    }
    if (e->kind == NHC_DEVICE_EVENT_REBOOT && c->check_rebooting) {
        /* The device pushed `rebooting` before calling us. */
        bool seen = tl_ctl_wait(&srv, "device", "rebooting", 1, 5000);
        tl_rec_add(&c->rec, "rebooting pushed before the callback: %d", (int)seen);
    }
    /* Before the line is recorded: the test thread reads the copy after it. */
    if (e->kind == NHC_DEVICE_EVENT_UPDATE_AVAILABLE && !c->kept)
        CHECK_OK(nhc_device_event_clone(e, &c->kept));
    CHECK(e->payload.json[e->payload.json_len] == '\0');
    CHECK(strlen(e->text) == e->text_len);
    tl_rec_add(&c->rec,
               "dev %s topic=%s event=%s uuid=%s size=%lld version=%s checksum=%s stage=%d "
               "percent=%u ok=%d ref=%s text=%s wh=%ux%u url=%s reason=%s json=%s",
               nhc_device_event_kind_str((int)e->kind), e->topic, e->event, e->uuid, (long long)e->size, e->version,
               e->checksum, (int)e->stage, e->percent, (int)e->ok, e->script_ref, e->text,
               e->width, e->height, e->url, e->reason, e->payload.json);
    if (e->kind == NHC_DEVICE_EVENT_JOINED && c->free_on_joined && c->dev) {
        nhc_device *dev = c->dev;
        c->dev = NULL;
        nhc_device_free(dev); /* deferred until this callback returns */
        tl_rec_add(&c->rec, "freed from the callback");
    }
}

static void count_drop(void *context) {
    tl_rec *r = context;
    pthread_mutex_lock(&r->lock);
    r->drops++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* count_drop gets the dev_ctx, whose first member is the recorder. */
static nhc_device_event_closure device_closure(dev_ctx *c) {
    nhc_device_event_closure cl = {c, on_device_event, count_drop};
    return cl;
}

static void ctx_init(dev_ctx *c) {
    memset(c, 0, sizeof *c);
    tl_rec_init(&c->rec);
}

static void reset_server(void) { tl_ctl_post(&srv, "/reset", "{}"); }

/* mTLS options on the wss URL (the device path /socket/websocket). */
static void mtls_socket(nhc_socket_options *s) {
    tl_fast_options(s, &srv);
    s->url = srv.wss_url;
    s->ca_file = srv.ca;
    s->cert_file = srv.device_cert;
    s->key_file = srv.device_key;
}

static nhc_device *start(dev_ctx *c, nhc_device_options *o) {
    o->on_event = device_closure(c);
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(o, &dev));
    c->dev = dev;
    CHECK_OK(nhc_device_connect(dev));
    return dev;
}

static void finish(dev_ctx *c, nhc_device *dev) {
    nhc_device_free(dev);
    nhc_device_event_free(c->kept);
    /* The event closure is dropped by nhc_device_free itself. */
    CHECK(tl_rec_drops(&c->rec) == 1);
    tl_rec_destroy(&c->rec);
}

/* --- firmware images ------------------------------------------------------ */

static unsigned char *make_image(size_t len, unsigned seed) {
    unsigned char *b = malloc(len);
    CHECK(b != NULL);
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16);
    }
    return b;
}

/* Stores `image` on the dev server as `name`; `answer` gets its JSON reply. */
static void store_firmware(const char *name, const unsigned char *image, size_t len, char *answer,
                           size_t cap) {
    char *b64 = tl_base64(image, len);
    size_t blen = strlen(b64) + 128;
    char *body = malloc(blen);
    snprintf(body, blen, "{\"name\":\"%s\",\"base64\":\"%s\"}", name, b64);
    CHECK(tl_http(&srv, "POST", "/firmware", body, answer, cap) == 200);
    free(body);
    free(b64);
}

static void update_options(nhc_update_options *u, const char *path) {
    CHECK_OK(nhc_update_options_default(u));
    u->file_path = path;
    u->idle_timeout_ms = (uint32_t)tl_ms(5000);
    u->retry_delay_ms = 50;
}

static void wait_update_available(dev_ctx *c, const char *update_json) {
    CHECK(tl_ctl_push(&srv, "device", "update", update_json) == 1);
    CHECK(tl_rec_wait(&c->rec, "dev UPDATE_AVAILABLE", 1, 10000));
    CHECK(tl_ctl_wait(&srv, "device", "status_update", 1, 5000));
}

static void file_matches(const char *path, const unsigned char *image, size_t len) {
    size_t got = 0;
    char *bytes = tl_read_file(path, &got);
    CHECK(got == len);
    CHECK(memcmp(bytes, image, len) == 0);
    free(bytes);
}

/* --- tests -------------------------------------------------------------- */

static bool validated_called;

static int say_validated(void *context) {
    (void)context;
    validated_called = true;
    return 1;
}

static void validated_drop(void *context) { count_drop(context); }

static void join_with_metadata(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    tl_rec vrec;
    tl_rec_init(&vrec);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_key_value meta[] = {{"nerves_fw_uuid", "c-uuid-1"},
                            {"nerves_fw_version", "1.0.0"},
                            {"nerves_fw_product", "c-agent"}};
    o.metadata = meta;
    o.metadata_len = 3;
    o.fwup_version = "1.13.2";
    o.request_fwup_public_keys = true;
    nhc_validated_closure v = {&vrec, say_validated, validated_drop};
    o.firmware_validated = v;
    nhc_device *dev = start(&c, &o);
    CHECK(validated_called);
    CHECK(tl_rec_wait(&c.rec, "dev STATE CONNECTED", 1, 10000));
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    CHECK(tl_rec_wait(&c.rec, "dev FWUP_PUBLIC_KEYS", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "json=[\"") == 1); /* the keys as a JSON array */
    char join[8192];
    CHECK(tl_ctl_wait_body(&srv, "device", "phx_join", 1, 5000, join, sizeof join));
    CHECK(strstr(join, "\"nerves_fw_uuid\":\"c-uuid-1\"") != NULL);
    CHECK(strstr(join, "\"nerves_fw_product\":\"c-agent\"") != NULL);
    CHECK(strstr(join, "\"fwup_version\":\"1.13.2\"") != NULL);
    CHECK(strstr(join, "\"device_api_version\":\"2.3.0\"") != NULL);
    CHECK(strstr(join, "\"firmware_validated\":true") != NULL);
    char conns[4096];
    CHECK(tl_http(&srv, "GET", "/connections", NULL, conns, sizeof conns) == 200);
    CHECK(strstr(conns, "nhc-demo-0001") != NULL); /* the certificate's CN */
    nhc_state st;
    CHECK_OK(nhc_device_state(dev, &st));
    CHECK(st == NHC_STATE_CONNECTED);
    CHECK_OK(nhc_device_firmware_validated(dev));
    CHECK(tl_ctl_wait(&srv, "device", "firmware_validated", 1, 5000));
    /* The device reported the socket's interface after the join by itself. */
    char netif[2048];
    CHECK(tl_ctl_wait_body(&srv, "device", "report_network_interface", 1, 5000, netif,
                           sizeof netif));
    CHECK(strstr(netif, "\"interface\":\"lo\"") != NULL);
    CHECK_OK(nhc_device_report_network_interface(dev, "eth0"));
    CHECK(tl_ctl_wait_body(&srv, "device", "report_network_interface", 2, 5000, netif,
                           sizeof netif));
    CHECK(strstr(netif, "\"interface\":\"eth0\"") != NULL);
    finish(&c, dev);
    /* The validated closure goes with the device's tasks. */
    CHECK(tl_rec_wait_drops(&vrec, 1, 10000));
    tl_rec_destroy(&vrec);
}

static void update_into_file(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));

    size_t len = 1200 * 1024 + 17; /* two parts, the second short */
    unsigned char *image = make_image(len, 1);
    char answer[16384], update[16384];
    store_firmware("c-device-update", image, len, answer, sizeof answer);
    CHECK(tl_json_object(answer, "update", update, sizeof update));
    wait_update_available(&c, update);
    char line[64];
    snprintf(line, sizeof line, "size=%zu", len);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_AVAILABLE", line) == 1);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_AVAILABLE", "url=http://") == 1);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_AVAILABLE", "\"partials_checksums\"") == 1);
    /* The copy outlives its callback. */
    CHECK(c.kept != NULL);
    CHECK(c.kept->kind == NHC_DEVICE_EVENT_UPDATE_AVAILABLE);
    CHECK(c.kept->size == (int64_t)len);
    CHECK(strncmp(c.kept->url, "http://", 7) == 0);
    CHECK(strlen(c.kept->checksum) == 64 && strlen(c.kept->uuid) > 0);
    CHECK(strstr(c.kept->payload.json, c.kept->uuid) != NULL);
    CHECK(c.kept->payload.json_len == strlen(c.kept->payload.json));
    CHECK(*c.kept->reason == '\0' && c.kept->text_len == 0);

    char path[256];
    snprintf(path, sizeof path, "/tmp/nhc-int-device-%d.fw", (int)getpid());
    unlink(path);
    nhc_update_options u;
    update_options(&u, path);
    CHECK_OK(nhc_device_apply_update(dev, &u));
    /* One update at a time. */
    CHECK_RC(nhc_device_apply_update(dev, &u), NHC_ERR_INVALID_STATE);
    CHECK(tl_rec_wait(&c.rec, "dev UPDATE_FINISHED", 1, 30000));
    CHECK(tl_rec_count(&c.rec, "dev UPDATE_FINISHED topic= event= uuid= size=-1 version= "
                               "checksum= stage=0 percent=0 ok=1") == 1);
    CHECK(tl_rec_count(&c.rec, "dev UPDATE_PROGRESS") >= 1);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_PROGRESS", "stage=2 percent=100") == 1);
    /* Progress comes before the end. */
    CHECK(tl_rec_find(&c.rec, "percent=100", 0) < tl_rec_find(&c.rec, "dev UPDATE_FINISHED", 0));
    char statuses[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 3, 5000, statuses, sizeof statuses));
    CHECK(strstr(statuses, "\"status\":\"received\"") != NULL);
    CHECK(strstr(statuses, "\"status\":\"started\"") != NULL);
    CHECK(strstr(statuses, "\"status\":\"completed\"") != NULL);
    CHECK(strstr(statuses, "\"status\":\"failed\"") == NULL);
    file_matches(path, image, len);
    unlink(path);
    CHECK_RC(nhc_device_cancel_update(dev), NHC_ERR_INVALID_STATE);
    free(image);
    finish(&c, dev);
}

/* A sink in memory, checking the order of the calls. */
typedef struct mem_sink {
    tl_rec *rec;
    unsigned char *data;
    size_t len, cap;
    int begins, finishes, aborts;
} mem_sink;

static int sink_begin(const char *uuid, int64_t size, void *context) {
    mem_sink *m = context;
    m->begins++;
    tl_rec_add(m->rec, "sink begin uuid=%s size=%lld", uuid, (long long)size);
    return 0;
}

static int sink_write(const uint8_t *data, size_t len, void *context) {
    mem_sink *m = context;
    if (m->len + len > m->cap) return -1;
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return 0;
}

static int sink_finish(void *context) {
    mem_sink *m = context;
    m->finishes++;
    tl_rec_add(m->rec, "sink finish len=%zu", m->len);
    return 0;
}

static void sink_abort(const char *reason, void *context) {
    mem_sink *m = context;
    m->aborts++;
    tl_rec_add(m->rec, "sink abort %s", reason);
}

static void sink_drop(void *context) {
    mem_sink *m = context;
    count_drop(m->rec);
}

static void update_into_callbacks(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    tl_rec srec;
    tl_rec_init(&srec);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    size_t len = 300 * 1024;
    unsigned char *image = make_image(len, 2);
    char answer[16384], update[16384];
    store_firmware("c-device-sink", image, len, answer, sizeof answer);
    CHECK(tl_json_object(answer, "update", update, sizeof update));
    wait_update_available(&c, update);

    mem_sink m = {&srec, malloc(len), 0, len, 0, 0, 0};
    nhc_update_options u;
    update_options(&u, NULL);
    u.file_path = NULL;
    nhc_update_sink sink = {&m, sink_begin, sink_write, sink_finish, sink_abort, sink_drop};
    u.sink = sink;
    CHECK_OK(nhc_device_apply_update(dev, &u));
    CHECK(tl_rec_wait(&c.rec, "dev UPDATE_FINISHED", 1, 30000));
    CHECK(tl_rec_count(&c.rec, "ok=1") == 1);
    CHECK(tl_rec_wait_drops(&srec, 1, 10000)); /* dropped once the update is over */
    CHECK(m.begins == 1 && m.finishes == 1 && m.aborts == 0);
    CHECK(tl_rec_count2(&srec, "sink begin", "size=307200") == 1);
    CHECK(m.len == len && memcmp(m.data, image, len) == 0);
    CHECK(tl_ctl_wait(&srv, "device", "status_update", 3, 5000)); /* received, started, completed */
    free(m.data);
    free(image);
    finish(&c, dev);
    CHECK(tl_rec_drops(&srec) == 1);
    tl_rec_destroy(&srec);
}

/* The image piped into a program's stdin, as into fwup. */
static void update_into_command(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    size_t len = 100 * 1024 + 3;
    unsigned char *image = make_image(len, 4);
    char answer[16384], update[16384];
    store_firmware("c-device-command", image, len, answer, sizeof answer);
    CHECK(tl_json_object(answer, "update", update, sizeof update));
    wait_update_available(&c, update);
    char path[256], script[512];
    snprintf(path, sizeof path, "/tmp/nhc-int-device-cmd-%d.fw", (int)getpid());
    snprintf(script, sizeof script, "cat > '%s'", path);
    unlink(path);
    nhc_update_options u;
    update_options(&u, NULL);
    u.fwup_command = "/bin/sh";
    const char *args[] = {"-c", script};
    u.fwup_args = args;
    u.fwup_args_len = 2;
    CHECK_OK(nhc_device_apply_update(dev, &u));
    CHECK(tl_rec_wait(&c.rec, "dev UPDATE_FINISHED", 1, 30000));
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_FINISHED", "ok=1") == 1);
    /* A command applies as it streams: the stage is "updating". */
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_PROGRESS", "stage=1") == 0);
    file_matches(path, image, len);
    /* Reported before the device goes (the next test resets the server). */
    char statuses[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 3, 5000, statuses, sizeof statuses));
    CHECK(strstr(statuses, "\"status\":\"completed\"") != NULL);
    unlink(path);
    free(image);
    finish(&c, dev);
}

static void corrupted_image_fails(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    size_t len = 200 * 1024;
    unsigned char *image = make_image(len, 3);
    char answer[16384];
    store_firmware("c-device-corrupt", image, len, answer, sizeof answer);
    tl_ctl_post(&srv, "/firmware_faults", "{\"name\":\"c-device-corrupt\",\"corrupt_at\":1000}");
    /* Without per-part checksums only the whole-image checksum can catch it. */
    char url[512], checksum[128], update[2048];
    CHECK(tl_json_string(answer, "url", url, sizeof url));
    CHECK(tl_json_string(answer, "checksum", checksum, sizeof checksum));
    snprintf(update, sizeof update,
             "{\"update_available\":true,\"firmware_url\":\"%s\",\"size\":%zu,\"checksum\":\"%s\","
             "\"firmware_meta\":{\"uuid\":\"c-corrupt-uuid\",\"version\":\"9.9.9\"}}",
             url, len, checksum);
    wait_update_available(&c, update);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_AVAILABLE", "uuid=c-corrupt-uuid") == 1);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_AVAILABLE", "version=9.9.9") == 1);
    char path[256];
    snprintf(path, sizeof path, "/tmp/nhc-int-device-corrupt-%d.fw", (int)getpid());
    unlink(path);
    nhc_update_options u;
    update_options(&u, path);
    CHECK_OK(nhc_device_apply_update(dev, &u));
    CHECK(tl_rec_wait(&c.rec, "dev UPDATE_FINISHED", 1, 30000));
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_FINISHED", "ok=0") == 1);
    CHECK(tl_rec_count2(&c.rec, "dev UPDATE_FINISHED", "Checksum mismatch") == 1);
    char failed[16384]; /* received, started, failed */
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 3, 5000, failed, sizeof failed));
    CHECK(strstr(failed, "\"status\":\"failed\"") != NULL);
    CHECK(strstr(failed, "\"status\":\"completed\"") == NULL);
    CHECK(access(path, F_OK) != 0); /* never renamed into place */
    free(image);
    finish(&c, dev);
}

static void reboot_identify_decisions(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    c.check_rebooting = true;
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));

    CHECK(tl_ctl_push(&srv, "device", "reboot", "{}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev REBOOT", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "rebooting pushed before the callback: 1") == 1);
    CHECK(tl_ctl_push(&srv, "device", "identify", "{}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev IDENTIFY", 1, 10000));

    /* No decision pending yet. */
    CHECK_RC(nhc_device_ignore_update(dev, "nothing"), NHC_ERR_INVALID_STATE);
    const char *offer = "{\"update_available\":true,\"firmware_url\":\"http://127.0.0.1:1/x.fw\","
                        "\"firmware_meta\":{\"uuid\":\"c-decide-uuid\"}}";
    wait_update_available(&c, offer);
    CHECK_OK(nhc_device_ignore_update(dev, "not today"));
    char body[8192];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 2, 5000, body, sizeof body));
    CHECK(strstr(body, "\"status\":\"ignored\"") != NULL);
    CHECK(strstr(body, "\"reason\":\"not today\"") != NULL);
    CHECK_RC(nhc_device_ignore_update(dev, "again"), NHC_ERR_INVALID_STATE);

    CHECK(tl_ctl_push(&srv, "device", "update", offer) == 1);
    CHECK(tl_rec_wait(&c.rec, "dev UPDATE_AVAILABLE", 2, 10000));
    CHECK_RC(nhc_device_reschedule_update(dev, 0, NULL), NHC_ERR_INVALID_ARGUMENT);
    CHECK_OK(nhc_device_reschedule_update(dev, 10 * 60 * 1000, "on the charger"));
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 4, 5000, body, sizeof body));
    CHECK(strstr(body, "\"status\":\"rescheduled\"") != NULL);
    CHECK(strstr(body, "\"delay_for\":600000") != NULL);
    CHECK(strstr(body, "\"reason\":\"on the charger\"") != NULL);
    CHECK_RC(nhc_device_reschedule_update(dev, 1000, NULL), NHC_ERR_INVALID_STATE);

    /* Unknown events pass through. */
    CHECK(tl_ctl_push(&srv, "device", "something_new", "{\"x\":1}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev OTHER topic=device event=something_new", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "json={\"x\":1}") == 1);
    finish(&c, dev);
}

static void console_round_trip(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    o.console_enabled = true;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=console", 1, 10000));
    CHECK(tl_ctl_push(&srv, "console", "dn", "{\"data\":\"uname -a\\n\"}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev CONSOLE_INPUT", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "text=uname -a\n") == 1);
    CHECK(tl_ctl_push(&srv, "console", "window_size", "{\"width\":120,\"height\":40}") == 1);
    CHECK(tl_rec_wait(&c.rec, "wh=120x40", 1, 10000));
    const char *out = "Linux nhc \xc3\xa9\r\n";
    CHECK_OK(nhc_device_console_output(dev, out, strlen(out)));
    char body[4096];
    CHECK(tl_ctl_wait_body(&srv, "console", "up", 1, 5000, body, sizeof body));
    CHECK(strstr(body, "Linux nhc \xc3\xa9\\r\\n") != NULL);
    CHECK_RC(nhc_device_console_output(dev, "\xff", 1), NHC_ERR_INVALID_ARGUMENT);
    CHECK(tl_ctl_push(&srv, "console", "restart", "{}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev CONSOLE_RESTART", 1, 10000));
    finish(&c, dev);
}

static int here(nhc_location *out, void *context) {
    (void)context;
    out->latitude = 52.5;
    out->longitude = 13.25;
    out->accuracy = 10;
    out->source = "gps";
    return 0;
}

/* local_shell_enabled offers the extension; the server's request_shell (sent
 * when the device confirms the attach) opens a shell that runs input. */
static void local_shell(void) {
    reset_server();
    tl_ctl_post(&srv, "/extensions", "{\"enabled\":[\"local_shell\"]}");
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    CHECK(!o.local_shell_enabled);
    o.socket = &s;
    o.local_shell_enabled = true;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev EXTENSION topic=extensions event=local_shell:request_shell", 1,
                      10000));
    char body[16384];
    CHECK(tl_ctl_wait_body(&srv, "extensions", "local_shell:request_status", 1, 10000, body,
                           sizeof body));
    CHECK(strstr(body, "\"started\"") != NULL);
    CHECK(tl_ctl_push(&srv, "extensions", "local_shell:shell_input",
                      "{\"data\":\"echo c-$((6*7))\\n\"}") == 1);
    bool seen = false;
    for (int n = 1; n <= 50 && !seen; n++) {
        if (!tl_ctl_wait_body(&srv, "extensions", "local_shell:shell_output", n, 10000, body,
                              sizeof body))
            break;
        seen = strstr(body, "c-42") != NULL;
    }
    CHECK(seen);
    finish(&c, dev);
}

static void extensions_scripts_archive(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    tl_rec grec;
    tl_rec_init(&grec);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    o.scripts_enabled = true;
    o.health_enabled = true;
    o.logging_enabled = true;
    nhc_geo_closure geo = {&grec, here, count_drop};
    o.geo = geo;
    nhc_device *dev = start(&c, &o);
    /* The server asks (extensions:get); the device joins `extensions`. */
    CHECK(tl_rec_wait(&c.rec, "dev EXTENSIONS_GET", 1, 10000));
    CHECK(tl_rec_wait(&c.rec, "dev EXTENSION topic=extensions event=negotiated", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "\"logging\"") >= 1);
    CHECK_OK(nhc_device_log(dev, NHC_LOG_WARNING, "disk almost full"));
    char body[16384];
    CHECK(tl_ctl_wait_body(&srv, "extensions", "logging:send", 1, 5000, body, sizeof body));
    CHECK(strstr(body, "disk almost full") != NULL);
    CHECK(strstr(body, "warning") != NULL);
    CHECK_OK(nhc_device_report_metric(dev, "battery_percent", 87.5));
    CHECK_OK(nhc_device_set_alarm(dev, "BatteryLow", "below 90 %"));
    CHECK_OK(nhc_device_set_alarm(dev, "Gone", "cleared before the report"));
    CHECK_OK(nhc_device_clear_alarm(dev, "Gone"));
    CHECK_OK(nhc_device_set_check(dev, "modem", false, "no SIM"));
    CHECK(tl_ctl_push(&srv, "extensions", "health:check", "{}") == 1);
    CHECK(tl_ctl_wait_body(&srv, "extensions", "health:report", 1, 10000, body, sizeof body));
    CHECK(strstr(body, "\"battery_percent\":87.5") != NULL);
    CHECK(strstr(body, "\"alarms\":{\"BatteryLow\":\"below 90 %\"}") != NULL);
    CHECK(strstr(body, "\"Gone\"") == NULL);
    CHECK(strstr(body, "\"modem\":{") != NULL);
    CHECK(strstr(body, "\"note\":\"no SIM\"") != NULL);
    CHECK(strstr(body, "\"pass\":false") != NULL);
    CHECK(tl_ctl_push(&srv, "extensions", "geo:location:request", "{}") == 1);
    CHECK(tl_ctl_wait_body(&srv, "extensions", "geo:location:update", 1, 10000, body, sizeof body));
    CHECK(strstr(body, "\"latitude\":52.5") != NULL);
    CHECK(strstr(body, "\"source\":\"gps\"") != NULL);

    /* A support script, answered by the application. */
    CHECK(tl_ctl_push(&srv, "device", "scripts/run", "{\"ref\":\"s-1\",\"text\":\"uptime\"}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev SCRIPT_RUN", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "ref=s-1 text=uptime") == 1);
    CHECK_OK(nhc_device_script_result(dev, "s-1", "completed", "up 3 days", ":ok"));
    CHECK(tl_ctl_wait_body(&srv, "device", "scripts/run", 1, 5000, body, sizeof body));
    CHECK(strstr(body, "\"ref\":\"s-1\"") != NULL);
    CHECK(strstr(body, "\"output\":\"up 3 days\"") != NULL);

    /* An archive, and a known event with a bad payload. */
    CHECK(tl_ctl_push(&srv, "device", "archive",
                      "{\"uuid\":\"a-1\",\"url\":\"https://x/a.tar\",\"size\":99,\"version\":\"2\"}") ==
          1);
    CHECK(tl_rec_wait(&c.rec, "dev ARCHIVE", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "uuid=a-1 size=99 version=2") == 1);
    CHECK(tl_rec_count(&c.rec, "url=https://x/a.tar") == 1);
    CHECK(tl_ctl_push(&srv, "device", "archive", "{\"uuid\":7}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev INVALID_MESSAGE topic=device event=archive", 1, 10000));
    finish(&c, dev);
    CHECK(tl_rec_wait_drops(&grec, 1, 10000));
    tl_rec_destroy(&grec);
}

static void archive_download(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    mtls_socket(&s);
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    char path[256];
    snprintf(path, sizeof path, "/tmp/nhc-int-archive-%d.bin", (int)getpid());
    unlink(path);
    nhc_update_options u;
    update_options(&u, path);
    /* Nothing offered yet. */
    CHECK_RC(nhc_device_download_archive(dev, &u, 0), NHC_ERR_INVALID_STATE);

    size_t len = 700 * 1024 + 3;
    unsigned char *image = make_image(len, 4);
    char answer[16384], url[512], offer[1024];
    store_firmware("c-archive", image, len, answer, sizeof answer);
    CHECK(tl_json_string(answer, "url", url, sizeof url));
    /* Cut twice: resumed with Range, as firmware is. */
    tl_ctl_post(&srv, "/firmware_faults", "{\"name\":\"c-archive\",\"cut_after_bytes\":200000,\"cuts\":2}");
    snprintf(offer, sizeof offer, "{\"uuid\":\"a-9\",\"url\":\"%s\",\"size\":%zu,\"version\":\"3\"}",
             url, len);
    CHECK(tl_ctl_push(&srv, "device", "archive", offer) == 1);
    CHECK(tl_rec_wait(&c.rec, "dev ARCHIVE", 1, 10000));
    update_options(&u, path);
    CHECK_OK(nhc_device_download_archive(dev, &u, (uint32_t)tl_ms(30000)));
    file_matches(path, image, len);
    unlink(path);

    /* A missing archive is a download error with the reason. */
    CHECK(tl_ctl_push(&srv, "device", "archive",
                      "{\"uuid\":\"a-10\",\"url\":\"http://127.0.0.1:1/none\",\"size\":5}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev ARCHIVE", 2, 10000));
    update_options(&u, path);
    u.max_disconnects = 0;
    CHECK_RC(nhc_device_download_archive(dev, &u, (uint32_t)tl_ms(30000)), NHC_ERR_CONNECT);
    CHECK(strstr(nhc_last_error_message(), "Download failed") != NULL);
    CHECK(access(path, F_OK) != 0);
    free(image);
    finish(&c, dev);
}

static void nh1_shared_secret(void) {
    reset_server();
    tl_ctl_post(&srv, "/shared_secret",
                "{\"key\":\"nhp_ctest\",\"secret\":\"c-test-secret-0123456789\"}");
    dev_ctx c;
    ctx_init(&c);
    nhc_socket_options s;
    tl_fast_options(&s, &srv);
    s.url = srv.device_socket_url;
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    o.nh1_key = "nhp_ctest";
    o.nh1_secret = "c-test-secret-0123456789";
    o.nh1_identifier = "c-nh1-serial-7";
    o.nh1_digest = "sha256";
    nhc_device *dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    char conns[4096];
    CHECK(tl_http(&srv, "GET", "/connections", NULL, conns, sizeof conns) == 200);
    CHECK(strstr(conns, "c-nh1-serial-7") != NULL);
    finish(&c, dev);

    /* A clock 10 minutes ahead (told by the offset): refused once as from
     * the server's future, then the refusal's Date corrects it and the retry
     * comes at the first backoff step; the slow end (60-90 s here) would
     * outlast the wait. */
    ctx_init(&c);
    s.backoff_max_ms = 60000;
    o.nh1_clock_offset_s = 600;
    dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "dev STATE AUTH_ERROR") == 1);
    finish(&c, dev);
    o.nh1_clock_offset_s = 0;
    s.backoff_max_ms = 200;

    /* A wrong secret: an auth error, retried. */
    ctx_init(&c);
    o.nh1_secret = "not-the-secret";
    dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev STATE AUTH_ERROR err=-3", 1, 10000));
    CHECK(tl_rec_count(&c.rec, "dev JOINED") == 0);
    finish(&c, dev);

    /* No credentials at all on the device endpoint: NervesHub's 401 with
     * its nh-connection-error-reason, never a join. */
    ctx_init(&c);
    o.nh1_key = NULL;
    o.nh1_secret = NULL;
    o.nh1_identifier = NULL;
    o.nh1_digest = NULL;
    dev = start(&c, &o);
    CHECK(tl_rec_wait(&c.rec, "dev STATE AUTH_ERROR err=-3", 1, 10000));
    CHECK(tl_rec_count2(&c.rec, "dev STATE AUTH_ERROR", "no certificate pair or shared secrets") >= 1);
    CHECK(tl_rec_count(&c.rec, "dev JOINED") == 0);
    finish(&c, dev);
}

/* Two devices with one certificate: the server closes the older socket at
 * every connect; both are told, and the backoff escalates. */
static void identity_in_use(void) {
    reset_server();
    dev_ctx a, b;
    ctx_init(&a);
    ctx_init(&b);
    nhc_socket_options s;
    mtls_socket(&s);
    s.stable_after_ms = 1000; /* above backoff_max_ms, as the defaults are */
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *da = start(&a, &o);
    CHECK(tl_rec_wait(&a.rec, "dev JOINED topic=device", 1, 10000));
    nhc_device *db = start(&b, &o);
    CHECK(tl_rec_wait(&a.rec, "dev IDENTITY_IN_USE", 1, 10000));
    CHECK(tl_rec_wait(&b.rec, "dev IDENTITY_IN_USE", 1, 10000));
    CHECK(tl_rec_count(&a.rec, "identity (certificate or NH1 identifier) seems to be in use") == 1);
    char kicks[256];
    CHECK(tl_http(&srv, "GET", "/kicks", NULL, kicks, sizeof kicks) == 200);
    long n = 0;
    const char *at = strstr(kicks, "\"kicks\":");
    CHECK(at != NULL);
    n = strtol(at + 8, NULL, 10);
    CHECK(n >= 6);
    finish(&a, da);
    finish(&b, db);
}

static void polled_free_in_callback(void) {
    reset_server();
    dev_ctx c;
    ctx_init(&c);
    c.free_on_joined = true;
    nhc_socket_options s;
    mtls_socket(&s);
    s.delivery = NHC_DELIVERY_POLLED;
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device *dev = start(&c, &o);
    int fd = -1;
    CHECK_OK(nhc_device_fd(dev, &fd));
    CHECK(fd >= 0);
    for (int i = 0; i < 200 && c.dev; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        CHECK(poll(&p, 1, tl_ms(5000)) == 1);
        nhc_result rc = nhc_device_dispatch(dev, 0);
        CHECK(rc == NHC_OK || rc == NHC_ERR_TIMEOUT);
    }
    CHECK(c.dev == NULL);
    CHECK(tl_rec_count(&c.rec, "freed from the callback") == 1);
    CHECK(tl_rec_count(&c.rec, "dev STATE CONNECTED") == 1);
    /* Dropped once, after that callback returned. */
    CHECK(tl_rec_drops(&c.rec) == 1);
    tl_rec_destroy(&c.rec);
}

int main(void) {
    tl_server_load(&srv);
    join_with_metadata();
    update_into_file();
    update_into_callbacks();
    update_into_command();
    corrupted_image_fails();
    reboot_identify_decisions();
    console_round_trip();
    extensions_scripts_archive();
    local_shell();
    archive_download();
    nh1_shared_secret();
    identity_in_use();
    polled_free_in_callback();
    nhc_shutdown();
    /* The next test of this shared server counts joins from zero. */
    reset_server();
    printf("int_device: ok\n");
    return 0;
}
