/*
 * The MessagePack serializer (vsn 3.0.0) from C: a socket joins, pushes and
 * receives with payloads still handed over as JSON text; a device joins
 * `device` and `console` and exchanges console data (api_errors.c checks
 * that an unknown serializer value is refused).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;

static void socket_over_msgpack(void) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.serializer = NHC_SERIALIZER_MSGPACK;
    o.on_state = tl_state_closure(&rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 10000));

    char conns[2048];
    CHECK(tl_http(&srv, "GET", "/connections", NULL, conns, sizeof conns) == 200);
    CHECK(strstr(conns, "\"serializer\":\"msgpack\"") != NULL);

    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, "test:msgpack", NULL, &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    CHECK_OK(nhc_channel_join(ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK test:msgpack", 1, 10000));
    const char *payload = "{\"echo\":[1,2.5,null,\"\\u00e9\"]}";
    CHECK_OK(nhc_channel_push(ch, "echo", payload, strlen(payload), 0, tl_reply_closure(&rec)));
    CHECK(tl_rec_wait(&rec, "reply OK", 1, 10000));
    /* The reply's response is JSON text again (serde_json's form of it). */
    CHECK(tl_rec_count(&rec, "{\"echo\":[1,2.5,null,\"\xc3\xa9\"]}") == 1);

    CHECK(tl_ctl_push(&srv, "test:msgpack", "news", "{\"big\":18446744073709551615}") == 1);
    CHECK(tl_rec_wait(&rec, "event MESSAGE test:msgpack news {\"big\":18446744073709551615}", 1,
                      10000));
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

typedef struct {
    tl_rec rec;
} dev_ctx;

static void on_device_event(const nhc_device_event *e, void *context) {
    dev_ctx *c = context;
    tl_rec_add(&c->rec, "dev %s topic=%s text=%s", nhc_device_event_kind_str((int)e->kind), e->topic,
               e->text);
}

static void no_drop(void *context) { (void)context; }

static void device_over_msgpack(void) {
    dev_ctx c;
    tl_rec_init(&c.rec);
    nhc_socket_options s;
    nhc_device_options o;
    tl_nh1_device_options(&o, &s, &srv, "c-msgpack-device");
    s.serializer = NHC_SERIALIZER_MSGPACK;
    o.console_enabled = true;
    nhc_device_event_closure cl = {&c, on_device_event, no_drop};
    o.on_event = cl;
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(&o, &dev));
    CHECK_OK(nhc_device_connect(dev));
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=device", 1, 10000));
    CHECK(tl_rec_wait(&c.rec, "dev JOINED topic=console", 1, 10000));
    CHECK(tl_ctl_push(&srv, "console", "dn", "{\"data\":\"uname\\n\"}") == 1);
    CHECK(tl_rec_wait(&c.rec, "dev CONSOLE_INPUT topic= text=uname\n", 1, 10000));
    const char *out = "Linux \xc3\xa9\r\n";
    CHECK_OK(nhc_device_console_output(dev, out, strlen(out)));
    char body[4096];
    CHECK(tl_ctl_wait_body(&srv, "console", "up", 1, 10000, body, sizeof body));
    CHECK(strstr(body, "Linux \xc3\xa9\\r\\n") != NULL);
    nhc_device_free(dev);
    tl_rec_destroy(&c.rec);
}

int main(void) {
    tl_server_load(&srv);
    socket_over_msgpack();
    device_over_msgpack();
    nhc_shutdown();
    printf("int_msgpack: ok\n");
    return 0;
}
