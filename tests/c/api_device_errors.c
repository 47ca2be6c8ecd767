/*
 * The device API refuses every bad input with the right code and a message,
 * leaves out-parameters alone and drops every closure exactly once, also
 * on failure; calls after nhc_shutdown fail cleanly. Needs no server.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testlib.h"

#define SENTINEL ((void *)0x1)

static void expect_rc(nhc_result rc, nhc_result want, const char *needle, int line) {
    if (rc != want) tl_fail_rc(__FILE__, line, "result", rc, want);
    const char *msg = nhc_last_error_message();
    if (!strstr(msg, needle)) {
        fprintf(stderr, "line %d: message \"%s\" lacks \"%s\"\n", line, msg, needle);
        tl_fail(__FILE__, line, "error message", needle);
    }
}
#define EXPECT_INVALID(expr, needle) expect_rc((expr), NHC_ERR_INVALID_ARGUMENT, (needle), __LINE__)
#define EXPECT_STATE(expr, needle) expect_rc((expr), NHC_ERR_INVALID_STATE, (needle), __LINE__)

static void count_drop(void *context) {
    tl_rec *r = context;
    pthread_mutex_lock(&r->lock);
    r->drops++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static void ignore_event(const nhc_device_event *e, void *context) {
    (void)e;
    (void)context;
}

static int sink_ok(void *context) {
    (void)context;
    return 0;
}

static int sink_write(const uint8_t *data, size_t len, void *context) {
    (void)data;
    (void)len;
    (void)context;
    return 0;
}

static int sink_begin(const char *uuid, int64_t size, void *context) {
    (void)uuid;
    (void)size;
    (void)context;
    return 0;
}

static nhc_device_event_closure event_closure(tl_rec *r) {
    nhc_device_event_closure c = {r, ignore_event, count_drop};
    return c;
}

/* Device options on a closed port; every closure counts its drop in `r`. */
static void base_options(nhc_device_options *o, nhc_socket_options *s, tl_rec *r) {
    CHECK_OK(nhc_socket_options_default(s));
    s->url = "ws://127.0.0.1:9/socket/websocket";
    CHECK_OK(nhc_device_options_default(o));
    o->socket = s;
    o->on_event = event_closure(r);
}

static void expect_new_fails(nhc_device_options *o, tl_rec *r, const char *needle, int line) {
    int before = tl_rec_drops(r);
    nhc_device *dev = SENTINEL;
    expect_rc(nhc_device_new(o, &dev), NHC_ERR_INVALID_ARGUMENT, needle, line);
    if (dev != SENTINEL) tl_fail(__FILE__, line, "out written on failure", NULL);
    if (tl_rec_drops(r) != before + 1) tl_fail(__FILE__, line, "on_event not dropped once", NULL);
}
#define EXPECT_NEW_FAILS(o, r, needle) expect_new_fails((o), (r), (needle), __LINE__)

static void options_errors(void) {
    tl_rec r;
    tl_rec_init(&r);
    EXPECT_INVALID(nhc_device_options_default((nhc_device_options *)NULL), "NULL");
    EXPECT_INVALID(nhc_update_options_default((nhc_update_options *)NULL), "NULL");
    nhc_device_options o;
    EXPECT_INVALID(nhc_device_options_init(&o, 8), "smaller");
    nhc_device *dev = SENTINEL;
    EXPECT_INVALID(nhc_device_new(NULL, &dev), "opts is NULL");
    CHECK(dev == SENTINEL);

    nhc_socket_options s;
    base_options(&o, &s, &r);
    EXPECT_INVALID(nhc_device_new(&o, NULL), "out is NULL");
    CHECK(tl_rec_drops(&r) == 1);

    base_options(&o, &s, &r);
    o.socket = NULL;
    EXPECT_NEW_FAILS(&o, &r, "socket");

    base_options(&o, &s, &r);
    s.url = "ws://127.0.0.1:9/other/websocket";
    EXPECT_NEW_FAILS(&o, &r, "/device-socket/websocket");

    base_options(&o, &s, &r);
    s.url = "\xff";
    EXPECT_NEW_FAILS(&o, &r, "UTF-8");

    /* Inline delivery is for sockets: device events come from several threads. */
    base_options(&o, &s, &r);
    s.delivery = NHC_DELIVERY_INLINE;
    EXPECT_NEW_FAILS(&o, &r, "inline delivery is for sockets");

    base_options(&o, &s, &r);
    s.delivery = 3;
    EXPECT_NEW_FAILS(&o, &r, "not an nhc_delivery value");

    base_options(&o, &s, &r);
    nhc_key_value bad_meta[] = {{"nerves_fw_uuid", "\xc3\x28"}};
    o.metadata = bad_meta;
    o.metadata_len = 1;
    EXPECT_NEW_FAILS(&o, &r, "metadata[0].value");

    base_options(&o, &s, &r);
    o.metadata_len = 2; /* NULL array */
    EXPECT_NEW_FAILS(&o, &r, "metadata is NULL");

    base_options(&o, &s, &r);
    o.nh1_key = "nhp_x";
    EXPECT_NEW_FAILS(&o, &r, "nh1_secret is NULL");

    base_options(&o, &s, &r);
    o.nh1_secret = "s";
    EXPECT_NEW_FAILS(&o, &r, "need nh1_key");

    base_options(&o, &s, &r);
    o.nh1_key = "nhp_x";
    o.nh1_secret = "s";
    o.nh1_identifier = "id";
    o.nh1_digest = "md5";
    EXPECT_NEW_FAILS(&o, &r, "nh1_digest");

    base_options(&o, &s, &r);
    o.fwup_env_path = "/nonexistent/fw_env.txt";
    EXPECT_NEW_FAILS(&o, &r, "cannot read the firmware environment");

    base_options(&o, &s, &r);
    o.report_timeout_ms = 0;
    EXPECT_NEW_FAILS(&o, &r, "report_timeout_ms");

    base_options(&o, &s, &r);
    o.console_shell = true;
    EXPECT_NEW_FAILS(&o, &r, "console_enabled");

    /* Rejoining device after phx_close: default 5 s, negative = never, 0 refused. */
    base_options(&o, &s, &r);
    CHECK(o.device_rejoin_after_close_ms == 5000);
    o.device_rejoin_after_close_ms = 0;
    EXPECT_NEW_FAILS(&o, &r, "device_rejoin_after_close");

    /* The socket's on_state is moved in too, and refused if it has a call. */
    base_options(&o, &s, &r);
    s.on_state = tl_state_closure(&r);
    int before = tl_rec_drops(&r);
    EXPECT_INVALID(nhc_device_new(&o, &dev), "on_state");
    CHECK(tl_rec_drops(&r) == before + 2);

    /* Every closure of the options is dropped once on failure. */
    base_options(&o, &s, &r);
    nhc_validated_closure v = {&r, NULL, count_drop};
    o.firmware_validated = v;
    nhc_update_options auto_update;
    CHECK_OK(nhc_update_options_default(&auto_update));
    nhc_update_sink sink = {&r, sink_begin, sink_write, sink_ok, NULL, count_drop};
    auto_update.sink = sink;
    o.auto_update = &auto_update;
    o.validation_poll_interval_ms = 0;
    before = tl_rec_drops(&r);
    EXPECT_INVALID(nhc_device_new(&o, &dev), "validation_poll_interval_ms");
    CHECK(tl_rec_drops(&r) == before + 3);
    CHECK(dev == SENTINEL);
    tl_rec_destroy(&r);
}

static nhc_device *good_device(tl_rec *r, bool console, bool logging) {
    nhc_socket_options s;
    nhc_device_options o;
    base_options(&o, &s, r);
    o.console_enabled = console;
    o.logging_enabled = logging;
    o.health_enabled = logging;
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(&o, &dev));
    CHECK(dev != NULL);
    return dev;
}

static void function_errors(void) {
    tl_rec r;
    tl_rec_init(&r);
    nhc_device *dev = good_device(&r, false, false);

    EXPECT_INVALID(nhc_device_connect(NULL), "dev is NULL");
    EXPECT_INVALID(nhc_device_disconnect(NULL), "dev is NULL");
    nhc_state st = NHC_STATE_CLOSED;
    EXPECT_INVALID(nhc_device_state(NULL, &st), "dev is NULL");
    EXPECT_INVALID(nhc_device_state(dev, NULL), "out is NULL");
    CHECK_OK(nhc_device_state(dev, &st));
    CHECK(st == NHC_STATE_DISCONNECTED);
    int fd = 12345;
    EXPECT_INVALID(nhc_device_fd(NULL, &fd), "dev is NULL");
    EXPECT_INVALID(nhc_device_fd(dev, NULL), "fd is NULL");
    EXPECT_STATE(nhc_device_fd(dev, &fd), "POLLED");
    CHECK(fd == 12345);
    EXPECT_INVALID(nhc_device_dispatch(NULL, 0), "dev is NULL");
    EXPECT_STATE(nhc_device_dispatch(dev, 0), "POLLED");

    /* Update decisions without an update. */
    EXPECT_INVALID(nhc_device_apply_update(dev, NULL), "NULL");
    nhc_update_options u;
    CHECK_OK(nhc_update_options_default(&u));
    u.file_path = "/tmp/nhc-never.fw";
    EXPECT_STATE(nhc_device_apply_update(dev, &u), "no update is waiting");
    EXPECT_INVALID(nhc_device_apply_update(NULL, &u), "dev is NULL");
    u.file_path = NULL;
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "exactly one sink");
    u.file_path = "\xff";
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "file_path is not valid UTF-8");
    u.file_path = "/tmp/x.fw";
    u.fwup_command = "fwup";
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "2 are set");
    u.file_path = NULL;
    u.fwup_args_len = 1;
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "fwup_args is NULL");
    const char *bad_args[] = {"--apply", "\xff"};
    u.fwup_args = bad_args;
    u.fwup_args_len = 2;
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "fwup_args[1]");
    u.fwup_command = NULL;
    u.fwup_args_len = 0;
    u.file_path = "/tmp/x.fw";
    u.idle_timeout_ms = 0;
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "idle_timeout_ms");
    /* A sink is moved in and dropped once, whatever fails. */
    tl_rec sr;
    tl_rec_init(&sr);
    CHECK_OK(nhc_update_options_default(&u));
    nhc_update_sink sink = {&sr, sink_begin, NULL, sink_ok, NULL, count_drop};
    u.sink = sink;
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "sink.write");
    CHECK(tl_rec_drops(&sr) == 1);
    sink.write = sink_write;
    u.sink = sink;
    EXPECT_STATE(nhc_device_apply_update(dev, &u), "no update is waiting");
    CHECK(tl_rec_drops(&sr) == 2);
    u.file_path = "/tmp/x.fw";
    EXPECT_INVALID(nhc_device_apply_update(dev, &u), "exactly one sink");
    CHECK(tl_rec_drops(&sr) == 3);
    EXPECT_INVALID(nhc_device_apply_update(NULL, &u), "dev is NULL");
    CHECK(tl_rec_drops(&sr) == 4);
    tl_rec_destroy(&sr);

    EXPECT_INVALID(nhc_device_ignore_update(NULL, "r"), "dev is NULL");
    EXPECT_INVALID(nhc_device_ignore_update(dev, NULL), "reason is NULL");
    EXPECT_INVALID(nhc_device_ignore_update(dev, "\xff"), "UTF-8");
    EXPECT_STATE(nhc_device_ignore_update(dev, "r"), "no update is waiting");
    EXPECT_INVALID(nhc_device_reschedule_update(NULL, 1, NULL), "dev is NULL");
    EXPECT_INVALID(nhc_device_reschedule_update(dev, 1, "\xff"), "UTF-8");
    EXPECT_STATE(nhc_device_reschedule_update(dev, 1, NULL), "no update is waiting");
    EXPECT_INVALID(nhc_device_cancel_update(NULL), "dev is NULL");
    EXPECT_STATE(nhc_device_cancel_update(dev), "no update is being applied");

    EXPECT_INVALID(nhc_device_firmware_validated(NULL), "dev is NULL");
    EXPECT_INVALID(nhc_device_script_result(NULL, "r", "completed", "", ""), "dev is NULL");
    EXPECT_INVALID(nhc_device_script_result(dev, NULL, "completed", "", ""), "script_ref is NULL");
    EXPECT_INVALID(nhc_device_script_result(dev, "r", "maybe", "", ""), "completed");
    EXPECT_INVALID(nhc_device_script_result(dev, "r", "error", "\xff", ""), "output");
    EXPECT_INVALID(nhc_device_script_result(dev, "r", "error", "", NULL), "returned is NULL");
    EXPECT_INVALID(nhc_device_report_network_interface(NULL, "eth0"), "dev is NULL");
    EXPECT_INVALID(nhc_device_report_network_interface(dev, NULL), "name is NULL");
    EXPECT_INVALID(nhc_device_report_network_interface(dev, ""), "empty");
    EXPECT_INVALID(nhc_device_report_network_interface(dev, "\xff"), "UTF-8");

    /* Components that were not enabled. */
    EXPECT_STATE(nhc_device_console_output(dev, "x", 1), "console_enabled");
    EXPECT_STATE(nhc_device_log(dev, NHC_LOG_INFO, "x"), "logging_enabled");
    EXPECT_STATE(nhc_device_report_metric(dev, "m", 1.0), "health_enabled");
    EXPECT_STATE(nhc_device_set_alarm(dev, "a", "d"), "health_enabled");
    EXPECT_STATE(nhc_device_clear_alarm(dev, "a"), "health_enabled");
    EXPECT_STATE(nhc_device_set_check(dev, "c", true, "n"), "health_enabled");
    EXPECT_STATE(nhc_device_clear_check(dev, "c"), "health_enabled");
    EXPECT_STATE(nhc_device_send_health_report(dev, NULL), "health_enabled");

    EXPECT_INVALID(nhc_device_set_metadata(NULL, NULL, 0), "dev is NULL");
    EXPECT_INVALID(nhc_device_set_metadata(dev, NULL, 1), "metadata is NULL");
    nhc_key_value kv[] = {{NULL, "v"}};
    EXPECT_INVALID(nhc_device_set_metadata(dev, kv, 1), "metadata[0].key is NULL");
    nhc_key_value good[] = {{"nerves_fw_uuid", "u2"}};
    CHECK_OK(nhc_device_set_metadata(dev, good, 1));
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&r) == 1);

    /* With the console and extensions enabled: argument checks. */
    dev = good_device(&r, true, true);
    EXPECT_INVALID(nhc_device_console_output(NULL, "x", 1), "dev is NULL");
    EXPECT_INVALID(nhc_device_console_output(dev, NULL, 3), "data is NULL");
    EXPECT_INVALID(nhc_device_console_output(dev, "\xc3", 1), "UTF-8");
    EXPECT_INVALID(nhc_device_log(NULL, NHC_LOG_INFO, "x"), "dev is NULL");
    EXPECT_INVALID(nhc_device_log(dev, 7, "x"), "nhc_log_level");
    EXPECT_INVALID(nhc_device_log(dev, NHC_LOG_INFO, NULL), "message is NULL");
    EXPECT_INVALID(nhc_device_log(dev, NHC_LOG_INFO, "\xff"), "UTF-8");
    CHECK_OK(nhc_device_log(dev, NHC_LOG_INFO, "not attached: dropped"));
    /* The last error's text as the next call's argument: it stays valid
     * while that call reads it (a use after free under ASan and valgrind
     * if the call dropped the text first), on success and on failure. */
    EXPECT_INVALID(nhc_device_log(dev, 7, "x"), "nhc_log_level");
    CHECK_OK(nhc_device_log(dev, NHC_LOG_WARNING, nhc_last_error_message()));
    CHECK(strcmp(nhc_last_error_message(), "") == 0);
    EXPECT_INVALID(nhc_device_log(dev, 7, "x"), "nhc_log_level");
    EXPECT_INVALID(nhc_device_set_check(dev, nhc_last_error_message(), true, "\xff"), "UTF-8");
    EXPECT_INVALID(nhc_device_report_metric(NULL, "m", 1.0), "dev is NULL");
    EXPECT_INVALID(nhc_device_report_metric(dev, NULL, 1.0), "name is NULL");
    EXPECT_INVALID(nhc_device_report_metric(dev, "", 1.0), "empty");
    EXPECT_INVALID(nhc_device_report_metric(dev, "m", NAN), "finite");
    EXPECT_INVALID(nhc_device_report_metric(dev, "m", INFINITY), "finite");
    CHECK_OK(nhc_device_report_metric(dev, "battery", 0.5));
    EXPECT_INVALID(nhc_device_send_health_report(NULL, NULL), "dev is NULL");
    bool sent = true;
    CHECK_OK(nhc_device_send_health_report(dev, &sent));
    CHECK(!sent); /* not connected: health is not attached */
    CHECK_OK(nhc_device_send_health_report(dev, NULL));
    EXPECT_INVALID(nhc_device_set_alarm(NULL, "a", "d"), "dev is NULL");
    EXPECT_INVALID(nhc_device_set_alarm(dev, NULL, "d"), "name is NULL");
    EXPECT_INVALID(nhc_device_set_alarm(dev, "", "d"), "empty");
    EXPECT_INVALID(nhc_device_set_alarm(dev, "\xff", "d"), "UTF-8");
    EXPECT_INVALID(nhc_device_set_alarm(dev, "a", "\xff"), "description");
    CHECK_OK(nhc_device_set_alarm(dev, "a", NULL));
    EXPECT_INVALID(nhc_device_clear_alarm(NULL, "a"), "dev is NULL");
    EXPECT_INVALID(nhc_device_clear_alarm(dev, NULL), "name is NULL");
    CHECK_OK(nhc_device_clear_alarm(dev, "a"));
    CHECK_OK(nhc_device_clear_alarm(dev, "never raised"));
    EXPECT_INVALID(nhc_device_set_check(NULL, "c", true, "n"), "dev is NULL");
    EXPECT_INVALID(nhc_device_set_check(dev, NULL, true, "n"), "name is NULL");
    EXPECT_INVALID(nhc_device_set_check(dev, "", true, "n"), "empty");
    EXPECT_INVALID(nhc_device_set_check(dev, "c", true, "\xff"), "note");
    CHECK_OK(nhc_device_set_check(dev, "c", false, NULL));
    EXPECT_INVALID(nhc_device_clear_check(NULL, "c"), "dev is NULL");
    EXPECT_INVALID(nhc_device_clear_check(dev, ""), "empty");
    CHECK_OK(nhc_device_clear_check(dev, "c"));
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&r) == 2);
    nhc_device_free(NULL);

    /* After nhc_shutdown a device is closed for good. */
    dev = good_device(&r, false, false);
    nhc_shutdown();
    nhc_result rc = nhc_device_connect(dev);
    CHECK(rc == NHC_ERR_CLOSED);
    CHECK_OK(nhc_device_state(dev, &st));
    CHECK(st == NHC_STATE_CLOSED);
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&r) == 3);
    tl_rec_destroy(&r);
}

static void clone_errors(void) {
    nhc_device_event *out = SENTINEL;
    EXPECT_INVALID(nhc_device_event_clone(NULL, &out), "event is NULL");
    CHECK(out == SENTINEL);
    nhc_device_event_free(NULL);
}

/* A bool field holding a byte other than 0 or 1 (as ctypes, Go, Zig or a
 * memset may leave it) counts as true; 0 as false. */
static void bool_bytes(void) {
    tl_rec r;
    tl_rec_init(&r);
    nhc_socket_options s;
    nhc_device_options o;
    base_options(&o, &s, &r);
    memset(&o.logging_enabled, 2, sizeof o.logging_enabled);
    memset(&o.health_enabled, 0, sizeof o.health_enabled);
    memset(&s.reconnect, 0x80, sizeof s.reconnect);
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(&o, &dev));
    CHECK_OK(nhc_device_log(dev, NHC_LOG_INFO, "logging is enabled"));
    EXPECT_STATE(nhc_device_report_metric(dev, "m", 1.0), "health_enabled");
    nhc_device_free(dev);
    CHECK(tl_rec_drops(&r) == 1);
    tl_rec_destroy(&r);
}

int main(void) {
    clone_errors();
    options_errors();
    function_errors();
    bool_bytes();
    nhc_shutdown();
    printf("api_device_errors: ok\n");
    return 0;
}
