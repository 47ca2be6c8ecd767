/*
 * Reconnect and rejoin seen through the callbacks: the server drops the
 * connection (and later stops answering heartbeats); the socket reports it,
 * reconnects with backoff, and the channel rejoins with parameters computed
 * again by its params closure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;

typedef struct params_ctx {
    tl_rec *rec;
    int calls;
    char json[64];
    pthread_t thread;
} params_ctx;

/* Runs on an I/O thread: quick, no nhc_ calls, result kept until the next call. */
static const char *params_json(void *context) {
    params_ctx *p = context;
    p->calls++;
    p->thread = pthread_self();
    snprintf(p->json, sizeof p->json, "{\"n\":%d,\"fw\":\"1.0.%d\"}", p->calls, p->calls);
    return p->json;
}

static void params_drop(void *context) {
    params_ctx *p = context;
    tl_rec_add(p->rec, "params dropped after %d calls", p->calls);
}

int main(void) {
    tl_server_load(&srv);
    tl_rec rec;
    tl_rec_init(&rec);
    tl_ctl_post(&srv, "/heartbeats", "{\"answer\":true}");

    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.on_state = tl_state_closure(&rec);
    o.heartbeat_interval_ms = 300;
    o.heartbeat_timeout_ms = 300;
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));

    const char *topic = "test:reconnect";
    params_ctx pc = {&rec, 0, "", pthread_self()};
    nhc_params_closure params = {&pc, params_json, params_drop};
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new_with_params(sock, topic, params, &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK test:reconnect", 1, 5000));
    CHECK(tl_ctl_wait_joined(&srv, topic, 1, 5000));

    /* The server vanishes: DISCONNECTED with a planned reconnect, then back. */
    tl_ctl_post(&srv, "/drop", "{}");
    CHECK(tl_rec_wait(&rec, "state DISCONNECTED", 1, 5000));
    CHECK(tl_rec_count2(&rec, "state DISCONNECTED", "reconnect=-1") == 0);
    CHECK(tl_rec_wait(&rec, "event CHANNEL_ERROR test:reconnect", 1, 5000));
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 2, 5000));
    CHECK(tl_rec_wait(&rec, "join OK test:reconnect", 2, 5000));
    CHECK(tl_ctl_wait_joined(&srv, topic, 2, 5000));
    int disc = tl_rec_find(&rec, "state DISCONNECTED", 0);
    CHECK(disc < tl_rec_find(&rec, "join OK", disc));
    /* The rejoin carried freshly computed params, computed on an I/O thread. */
    CHECK(pc.calls >= 2);
    CHECK(!pthread_equal(pc.thread, pthread_self()));
    char joins[8192];
    CHECK(tl_ctl_wait_body(&srv, topic, "phx_join", 2, 5000, joins, sizeof joins));
    CHECK(strstr(joins, "\"fw\":\"1.0.1\"") != NULL);
    CHECK(strstr(joins, "\"fw\":\"1.0.2\"") != NULL);

    /* Heartbeats unanswered: the socket takes the server for dead and reconnects. */
    int connected = tl_rec_count(&rec, "state CONNECTED");
    tl_ctl_post(&srv, "/heartbeats", "{\"answer\":false}");
    CHECK(tl_rec_wait(&rec, "state DISCONNECTED err=-7", 1, 10000));
    tl_ctl_post(&srv, "/heartbeats", "{\"answer\":true}");
    CHECK(tl_rec_wait(&rec, "state CONNECTED", connected + 1, 10000));
    CHECK(tl_rec_wait(&rec, "join OK test:reconnect", 3, 10000));

    int drops = tl_rec_drops(&rec);
    nhc_channel_free(ch);
    CHECK(tl_rec_count(&rec, "params dropped") == 1);
    CHECK(tl_rec_drops(&rec) == drops + 2);
    nhc_socket_free(sock);
    CHECK(tl_rec_drops(&rec) == drops + 3);
    nhc_shutdown();
    tl_rec_destroy(&rec);
    printf("int_reconnect: ok\n");
    return 0;
}
