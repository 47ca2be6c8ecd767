/*
 * Every bad input is refused with the right code, a message, untouched
 * out-parameters and closures dropped exactly once; calls after close fail
 * cleanly. Needs no server.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define SENTINEL ((void *)0x1)

static void expect_invalid(nhc_result rc, const char *needle, int line) {
    if (rc != NHC_ERR_INVALID_ARGUMENT) {
        char what[64];
        snprintf(what, sizeof what, "line %d", line);
        tl_fail_rc(__FILE__, line, what, rc, NHC_ERR_INVALID_ARGUMENT);
    }
    const char *msg = nhc_last_error_message();
    if (!strstr(msg, needle)) {
        fprintf(stderr, "line %d: message \"%s\" lacks \"%s\"\n", line, msg, needle);
        tl_fail(__FILE__, line, "error message", needle);
    }
}
#define EXPECT_INVALID(expr, needle) expect_invalid((expr), (needle), __LINE__)

static nhc_socket *new_socket(tl_rec *rec, int delivery) {
    nhc_socket_options o;
    CHECK_OK(nhc_socket_options_default(&o));
    o.url = "ws://127.0.0.1:9/socket/websocket";
    o.delivery = delivery;
    o.on_state = tl_state_closure(rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK(sock != NULL);
    return sock;
}

static void result_strings(void) {
    const char *seen[14];
    for (int code = 0; code >= NHC_ERR_PROXY; code--) {
        const char *s = nhc_result_str(code);
        CHECK(s && *s && strcmp(s, "unknown error code") != 0);
        for (int j = 0; j < -code; j++) CHECK(strcmp(seen[j], s) != 0);
        seen[-code] = s;
    }
    CHECK(strcmp(nhc_result_str(-999), "unknown error code") == 0);
    CHECK(strcmp(nhc_result_str(42), "unknown error code") == 0);

    /* State and device event kind names: static, every value named, unknown ones too. */
    CHECK(strcmp(nhc_state_str(NHC_STATE_CONNECTED), "CONNECTED") == 0);
    CHECK(strcmp(nhc_state_str(NHC_STATE_AUTH_ERROR), "AUTH_ERROR") == 0);
    CHECK(strcmp(nhc_state_str(NHC_STATE_PROTOCOL_ERROR), "PROTOCOL_ERROR") == 0);
    CHECK(strcmp(nhc_state_str(-1), "UNKNOWN") == 0);
    CHECK(strcmp(nhc_state_str(NHC_STATE_PROTOCOL_ERROR + 1), "UNKNOWN") == 0);
    CHECK(nhc_state_str(NHC_STATE_CLOSED) == nhc_state_str(NHC_STATE_CLOSED));
    CHECK(strcmp(nhc_device_event_kind_str(NHC_DEVICE_EVENT_STATE), "STATE") == 0);
    CHECK(strcmp(nhc_device_event_kind_str(NHC_DEVICE_EVENT_UPDATE_AVAILABLE), "UPDATE_AVAILABLE") == 0);
    CHECK(strcmp(nhc_device_event_kind_str(NHC_DEVICE_EVENT_OTHER), "OTHER") == 0);
    CHECK(strcmp(nhc_device_event_kind_str(NHC_DEVICE_EVENT_IDENTITY_IN_USE), "IDENTITY_IN_USE") == 0);
    CHECK(strcmp(nhc_device_event_kind_str(NHC_DEVICE_EVENT_IDENTITY_IN_USE + 1), "UNKNOWN") == 0);
    for (int k = NHC_DEVICE_EVENT_STATE; k <= NHC_DEVICE_EVENT_IDENTITY_IN_USE; k++) {
        CHECK(strcmp(nhc_device_event_kind_str(k), "UNKNOWN") != 0);
    }
    for (int s = NHC_STATE_DISCONNECTED; s <= NHC_STATE_PROTOCOL_ERROR; s++) {
        CHECK(strcmp(nhc_state_str(s), "UNKNOWN") != 0);
    }
    CHECK(NHC_ERR_PROXY == -13);
    CHECK(NHC_ERR_INVALID_STATE == -12 && NHC_ERR_FORKED == -11 && NHC_ERR_PANIC == -10);
}

static void options_errors(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    nhc_socket *out = SENTINEL;

    EXPECT_INVALID(nhc_socket_options_default((nhc_socket_options *)NULL), "opts is NULL");
    EXPECT_INVALID(nhc_socket_options_init(&o, 8), "struct_size");
    CHECK(strcmp(nhc_last_error_message(), "") != 0);
    CHECK_OK(nhc_socket_options_default(&o));
    CHECK(strcmp(nhc_last_error_message(), "") == 0); /* cleared by a successful call */
    CHECK(o.struct_size == sizeof o);
    CHECK(o.reconnect && !o.rejoin_after_close && o.delivery == NHC_DELIVERY_THREADED);
    CHECK(o.connect_timeout_ms == 15000 && o.heartbeat_interval_ms == 30000);
    CHECK(o.default_timeout_ms == 10000 && o.backoff_initial_ms == 1000);
    CHECK(o.backoff_max_ms == 60000 && o.backoff_jitter == 0.5);
    CHECK(o.event_capacity == 1024 && o.outbound_capacity == 1024);
    CHECK(o.on_state.call == NULL && o.url == NULL);

    EXPECT_INVALID(nhc_socket_new(NULL, &out), "opts is NULL");

    /* Each failing new drops the state closure exactly once. */
    int drops = 0;
#define NEW_FAILS(setup, needle) \
    do { \
        CHECK_OK(nhc_socket_options_default(&o)); \
        o.url = "ws://localhost/socket/websocket"; \
        o.on_state = tl_state_closure(&rec); \
        setup; \
        EXPECT_INVALID(nhc_socket_new(&o, &out), needle); \
        CHECK(out == SENTINEL); \
        CHECK(tl_rec_drops(&rec) == ++drops); \
    } while (0)

    nhc_key_value bad_header = {"x-a", "1\r\nx-b: 2"};
    nhc_key_value null_key = {NULL, "v"};
    nhc_key_value bad_utf8 = {"k", "\xc3\x28"};
    nhc_key_value other_vsn = {"vsn", "3.0.0"};
    static const uint8_t pem[] = "-----BEGIN CERTIFICATE-----\n";
    CHECK_OK(nhc_socket_options_default(&o));
    o.url = "ws://localhost/socket/websocket";
    o.on_state = tl_state_closure(&rec);
    EXPECT_INVALID(nhc_socket_new(&o, NULL), "out is NULL");
    CHECK(tl_rec_drops(&rec) == ++drops);
    NEW_FAILS(o.url = NULL, "url is NULL");
    NEW_FAILS(o.url = "\xff\xfe", "not valid UTF-8");
    NEW_FAILS(o.url = "http://localhost/socket", "scheme");
    NEW_FAILS(o.url = "not a url", "URL");
    /* A vsn other than the library's is refused, never silently replaced. */
    NEW_FAILS(o.url = "ws://localhost/socket/websocket?vsn=1.0.0", "vsn=\"1.0.0\" does not match the json serializer");
    NEW_FAILS((o.params = &other_vsn, o.params_len = 1), "set the serializer option");
    NEW_FAILS(o.delivery = 7, "delivery 7");
    NEW_FAILS(o.delivery = -1, "delivery -1");
    NEW_FAILS(o.serializer = 7, "serializer 7 is not an nhc_serializer value");
    NEW_FAILS((o.ca_file = "/etc/ssl/ca.pem", o.ca_pem = pem, o.ca_pem_len = sizeof pem), "not both");
    NEW_FAILS((o.cert_pem = NULL, o.cert_pem_len = 10), "cert_pem is NULL");
    NEW_FAILS((o.headers = NULL, o.headers_len = 1), "headers is NULL");
    NEW_FAILS((o.headers = &bad_header, o.headers_len = 1), "control character");
    NEW_FAILS((o.headers = &null_key, o.headers_len = 1), "headers[0].key is NULL");
    NEW_FAILS((o.params = &bad_utf8, o.params_len = 1), "params[0].value is not valid UTF-8");
    NEW_FAILS(o.server_name = "\xc3\x28", "server_name");
    NEW_FAILS(o.backoff_jitter = NAN, "backoff_jitter");
    NEW_FAILS(o.backoff_jitter = -1.0, "backoff_jitter");
    NEW_FAILS(o.connect_timeout_ms = 0, "connect_timeout");
    NEW_FAILS(o.heartbeat_interval_ms = 0, "heartbeat_interval");
    NEW_FAILS(o.default_timeout_ms = 0, "default_timeout");
    NEW_FAILS(o.event_capacity = 0, "capacities");
    NEW_FAILS(o.max_message_size = 100, "max_message_size");
    NEW_FAILS((o.backoff_initial_ms = 500, o.backoff_max_ms = 100), "backoff");
    NEW_FAILS(o.read_buffer_size = 0, "read_buffer_size");
#undef NEW_FAILS

    /* TLS material is checked when the socket is made. */
    CHECK_OK(nhc_socket_options_default(&o));
    o.url = "wss://localhost/socket/websocket";
    o.ca_file = "/nonexistent/ca.pem";
    o.on_state = tl_state_closure(&rec);
    CHECK_RC(nhc_socket_new(&o, &out), NHC_ERR_TLS);
    CHECK(out == SENTINEL);
    CHECK(strstr(nhc_last_error_message(), "ca.pem") != NULL);
    CHECK(tl_rec_drops(&rec) == ++drops);

    CHECK(tl_rec_count(&rec, "state") == 0); /* never called */
    tl_rec_destroy(&rec);
}

static void socket_errors(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_state st = NHC_STATE_CLOSED;
    int fd = -7;

    EXPECT_INVALID(nhc_socket_connect(NULL), "sock is NULL");
    EXPECT_INVALID(nhc_socket_disconnect(NULL), "sock is NULL");
    EXPECT_INVALID(nhc_socket_state(NULL, &st), "sock is NULL");
    EXPECT_INVALID(nhc_socket_fd(NULL, &fd), "sock is NULL");
    EXPECT_INVALID(nhc_socket_dispatch(NULL, 0), "sock is NULL");
    nhc_socket_free(NULL);

    nhc_socket *threaded = new_socket(&rec, NHC_DELIVERY_THREADED);
    EXPECT_INVALID(nhc_socket_state(threaded, NULL), "out is NULL");
    CHECK_OK(nhc_socket_state(threaded, &st));
    CHECK(st == NHC_STATE_DISCONNECTED);
    CHECK_RC(nhc_socket_fd(threaded, &fd), NHC_ERR_INVALID_STATE);
    CHECK(fd == -7);
    CHECK_RC(nhc_socket_dispatch(threaded, 0), NHC_ERR_INVALID_STATE);
    CHECK(strstr(nhc_last_error_message(), "POLLED") != NULL);

    nhc_socket *polled = new_socket(&rec, NHC_DELIVERY_POLLED);
    EXPECT_INVALID(nhc_socket_fd(polled, NULL), "fd is NULL");
    CHECK_OK(nhc_socket_fd(polled, &fd));
    CHECK(fd >= 0);
    CHECK_RC(nhc_socket_dispatch(polled, 0), NHC_ERR_TIMEOUT);
    CHECK_RC(nhc_socket_dispatch(polled, 10), NHC_ERR_TIMEOUT);

    nhc_socket_free(threaded);
    nhc_socket_free(polled);
    CHECK(tl_rec_drops(&rec) == 2);
    tl_rec_destroy(&rec);
}

static const char *params_cb(void *context) {
    (void)context;
    return "{}";
}

static void params_drop(void *context) {
    tl_rec_add(context, "params dropped");
}

static void channel_errors(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket *sock = new_socket(&rec, NHC_DELIVERY_POLLED);
    nhc_channel *out = SENTINEL;
    nhc_params_closure pc = {&rec, params_cb, params_drop};

    EXPECT_INVALID(nhc_channel_new(NULL, "room:a", NULL, &out), "sock is NULL");
    EXPECT_INVALID(nhc_channel_new(sock, NULL, NULL, &out), "topic is NULL");
    EXPECT_INVALID(nhc_channel_new(sock, "", NULL, &out), "topic must not be empty");
    EXPECT_INVALID(nhc_channel_new(sock, "room:\xc3\x28", NULL, &out), "topic is not valid UTF-8");
    EXPECT_INVALID(nhc_channel_new(sock, "room:a", "{", &out), "params_json is not valid JSON");
    EXPECT_INVALID(nhc_channel_new(sock, "room:a", "\"\xff\"", &out), "params_json is not valid UTF-8");
    EXPECT_INVALID(nhc_channel_new(sock, "room:a", "{}", NULL), "out is NULL");
    CHECK(out == SENTINEL);
    EXPECT_INVALID(nhc_channel_new_with_params(NULL, "room:a", pc, &out), "sock is NULL");
    CHECK(tl_rec_count(&rec, "params dropped") == 1);
    EXPECT_INVALID(nhc_channel_new_with_params(sock, "", pc, &out), "topic");
    CHECK(tl_rec_count(&rec, "params dropped") == 2);
    CHECK(out == SENTINEL);

    /* Closures handed to failing calls are dropped once and never called. */
    int drops = tl_rec_drops(&rec);
    EXPECT_INVALID(nhc_channel_on_join(NULL, tl_join_closure(&rec)), "ch is NULL");
    EXPECT_INVALID(nhc_channel_on_event(NULL, tl_event_closure(&rec)), "ch is NULL");
    EXPECT_INVALID(nhc_channel_push(NULL, "e", "{}", 2, 0, tl_reply_closure(&rec)), "ch is NULL");
    CHECK(tl_rec_drops(&rec) == drops + 3);

    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, "room:a", "{\"a\":1}", &ch));
    CHECK(strcmp(nhc_channel_topic(ch), "room:a") == 0);
    CHECK(nhc_channel_topic(NULL) == NULL);
    nhc_channel_phase phase = NHC_CHANNEL_JOINED;
    EXPECT_INVALID(nhc_channel_state(NULL, &phase), "ch is NULL");
    EXPECT_INVALID(nhc_channel_state(ch, NULL), "out is NULL");
    CHECK_OK(nhc_channel_state(ch, &phase));
    CHECK(phase == NHC_CHANNEL_CLOSED);
    drops = tl_rec_drops(&rec);
    EXPECT_INVALID(nhc_channel_push(ch, NULL, "{}", 2, 0, tl_reply_closure(&rec)), "event is NULL");
    EXPECT_INVALID(nhc_channel_push(ch, "", "{}", 2, 0, tl_reply_closure(&rec)), "event must not be empty");
    EXPECT_INVALID(nhc_channel_push(ch, "e", "{", 1, 0, tl_reply_closure(&rec)), "json is not valid JSON");
    EXPECT_INVALID(nhc_channel_push(ch, "e", "{\"a\":1} x", 9, 0, tl_reply_closure(&rec)), "not valid JSON");
    EXPECT_INVALID(nhc_channel_push(ch, "e", "\"\xc3\x28\"", 4, 0, tl_reply_closure(&rec)), "not valid UTF-8");
    EXPECT_INVALID(nhc_channel_push(ch, "e", NULL, 5, 0, tl_reply_closure(&rec)), "json is NULL");
    EXPECT_INVALID(nhc_channel_push(ch, "\xff", "{}", 2, 0, tl_reply_closure(&rec)), "event is not valid UTF-8");
    EXPECT_INVALID(nhc_channel_push_binary(ch, "e", NULL, 3, 0, tl_reply_closure(&rec)), "data is NULL");
    CHECK(tl_rec_drops(&rec) == drops + 8);
    CHECK(tl_rec_count(&rec, "reply") == 0);
    uint64_t id = 77;
    EXPECT_INVALID(nhc_channel_cast(ch, "e", "[1,", 3, 0, &id), "not valid JSON");
    EXPECT_INVALID(nhc_channel_cast(NULL, "e", "{}", 2, 0, &id), "ch is NULL");
    CHECK(id == 77);
    EXPECT_INVALID(nhc_channel_join(NULL, 0), "ch is NULL");
    EXPECT_INVALID(nhc_channel_leave(NULL), "ch is NULL");

    /* A push on a channel that is not joined ends NOT_SENT, through dispatch. */
    CHECK_OK(nhc_channel_push(ch, "e", NULL, 0, 1000, tl_reply_closure(&rec)));
    CHECK_OK(nhc_channel_push(ch, "e", "[1,2]", 5, 1000, tl_drop_only_reply(&rec)));
    CHECK_OK(nhc_channel_push_binary(ch, "bin", (const uint8_t *)"\0\1", 2, 1000, tl_reply_closure(&rec)));
    drops = tl_rec_drops(&rec);
    for (int i = 0; i < 3 && tl_rec_count(&rec, "reply NOT_SENT") < 2; i++)
        CHECK_OK(nhc_socket_dispatch(sock, tl_ms(5000)));
    CHECK(tl_rec_count(&rec, "reply NOT_SENT") == 2);
    CHECK(tl_rec_count(&rec, "err=-8") == 2); /* NHC_ERR_CLOSED: not joined */
    CHECK(tl_rec_drops(&rec) == drops + 3);

    /* Calls after the socket is freed fail with NHC_ERR_CLOSED. */
    nhc_socket_free(sock);
    drops = tl_rec_drops(&rec);
    CHECK_RC(nhc_channel_join(ch, 0), NHC_ERR_CLOSED);
    CHECK_RC(nhc_channel_push(ch, "e", "{}", 2, 0, tl_reply_closure(&rec)), NHC_ERR_CLOSED);
    CHECK_RC(nhc_channel_on_event(ch, tl_event_closure(&rec)), NHC_ERR_CLOSED);
    CHECK_RC(nhc_channel_on_join(ch, tl_join_closure(&rec)), NHC_ERR_CLOSED);
    CHECK_RC(nhc_channel_cast(ch, "e", "{}", 2, 0, NULL), NHC_ERR_CLOSED);
    CHECK(tl_rec_drops(&rec) == drops + 3);
    nhc_channel *late = SENTINEL;
    nhc_channel_free(ch);
    CHECK(late == SENTINEL);
    nhc_channel_free(NULL);
    CHECK(tl_rec_count(&rec, "params dropped") == 2);
    tl_rec_destroy(&rec);
}

static void closure_lifetimes(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket *sock = new_socket(&rec, NHC_DELIVERY_THREADED);
    nhc_channel *a = NULL, *b = NULL;
    nhc_params_closure pc = {&rec, params_cb, params_drop};
    CHECK_OK(nhc_channel_new(sock, "room:a", NULL, &a));
    CHECK_OK(nhc_channel_new_with_params(sock, "room:b", pc, &b));
    CHECK_OK(nhc_channel_on_join(a, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_on_event(a, tl_event_closure(&rec)));
    CHECK(tl_rec_drops(&rec) == 0);
    /* Replacing drops the previous closure at once. */
    CHECK_OK(nhc_channel_on_event(a, tl_event_closure(&rec)));
    CHECK(tl_rec_drops(&rec) == 1);
    /* A closure with only a drop is fine. */
    nhc_event_closure drop_only = {&rec, NULL, tl_event_closure(&rec).drop};
    CHECK_OK(nhc_channel_on_event(b, drop_only));
    /* Free drops every closure before it returns. */
    nhc_channel_free(a);
    CHECK(tl_rec_drops(&rec) == 3);
    nhc_channel_free(b);
    CHECK(tl_rec_drops(&rec) == 4);
    CHECK(tl_rec_count(&rec, "params dropped") == 1);
    nhc_socket_free(sock);
    CHECK(tl_rec_drops(&rec) == 5);
    CHECK(tl_rec_count(&rec, "join") == 0);
    tl_rec_destroy(&rec);
}

static void event_clone(void) {
    nhc_event *copy = SENTINEL;
    EXPECT_INVALID(nhc_event_clone(NULL, &copy), "event is NULL");
    CHECK(copy == SENTINEL);
    nhc_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = NHC_EVENT_MESSAGE;
    ev.topic = "room:x";
    ev.event = "hello";
    ev.reason = "";
    ev.payload.json = "{\"a\":1}";
    ev.payload.json_len = 7;
    ev.payload.binary = (const uint8_t *)"";
    EXPECT_INVALID(nhc_event_clone(&ev, NULL), "out is NULL");
    CHECK_OK(nhc_event_clone(&ev, &copy));
    CHECK(copy != &ev && copy->topic != ev.topic);
    CHECK(strcmp(copy->topic, "room:x") == 0 && strcmp(copy->event, "hello") == 0);
    CHECK(copy->payload.json_len == 7 && strcmp(copy->payload.json, "{\"a\":1}") == 0);
    CHECK(!copy->payload.is_binary && copy->payload.binary_len == 0 && copy->payload.binary);
    nhc_event_free(copy);
    nhc_event_free(NULL);
}

static void runtime_and_fork(void) {
    EXPECT_INVALID(nhc_runtime_configure(0), "worker_threads");
    /* Sockets were created above, so the runtime runs: too late to size it. */
    EXPECT_INVALID(nhc_runtime_configure(2), "already running");

    /* The child reports through a pipe: under valgrind its exit status is
     * valgrind's, and the memory of threads lost in the fork counts as leaked. */
    int report[2];
    CHECK(pipe(report) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        nhc_socket_options o;
        nhc_socket *s = NULL;
        /* Filling a struct keeps working; everything else fails fast. */
        int ok = nhc_socket_options_default(&o) == NHC_OK;
        o.url = "ws://localhost/socket/websocket";
        ok = ok && nhc_socket_new(&o, &s) == NHC_ERR_FORKED && s == NULL;
        ok = ok && nhc_socket_connect(NULL) == NHC_ERR_FORKED;
        ok = ok && strstr(nhc_last_error_message(), "fork") != NULL;
        nhc_shutdown(); /* does nothing in the child, must not hang */
        char verdict = ok ? 'Y' : 'N';
        ssize_t w = write(report[1], &verdict, 1);
        _exit(w == 1 ? 0 : 3);
    }
    close(report[1]);
    char verdict = 0;
    CHECK(read(report[0], &verdict, 1) == 1);
    close(report[0]);
    CHECK(verdict == 'Y');
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);

    nhc_shutdown();
    nhc_shutdown();
    /* After a shutdown the runtime may be sized again and starts anew. */
    CHECK_OK(nhc_runtime_configure(2));
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket *sock = new_socket(&rec, NHC_DELIVERY_POLLED);
    CHECK_OK(nhc_socket_connect(sock));
    nhc_shutdown();
    /* The shut down socket delivers CLOSED, then dispatch reports the end. */
    while (tl_rec_count(&rec, "state CLOSED") == 0) CHECK_OK(nhc_socket_dispatch(sock, tl_ms(5000)));
    CHECK_RC(nhc_socket_dispatch(sock, 0), NHC_ERR_CLOSED);
    CHECK_RC(nhc_socket_connect(sock), NHC_ERR_CLOSED);
    nhc_socket_free(sock);
    CHECK(tl_rec_drops(&rec) == 1);
    tl_rec_destroy(&rec);
}

int main(void) {
    result_strings();
    options_errors();
    socket_errors();
    channel_errors();
    closure_lifetimes();
    event_clone();
    runtime_and_fork();
    nhc_shutdown();
    printf("api_errors: ok\n");
    return 0;
}
