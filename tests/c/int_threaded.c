/*
 * Threaded delivery against the dev server: state changes, join outcomes,
 * server pushes, every kind of push reply, casts, binary payloads, channel
 * errors and closes, and every closure dropped exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;

/* Keeps a copy of the first message, to check nhc_event_clone from a callback. */
typedef struct keeper {
    tl_rec *rec;
    nhc_event *kept;
    pthread_t thread;
} keeper;

static void keep_first(const nhc_event *e, void *context) {
    keeper *k = context;
    if (e->kind == NHC_EVENT_MESSAGE && !k->kept) {
        CHECK_OK(nhc_event_clone(e, &k->kept));
        k->thread = pthread_self();
        tl_rec_add(k->rec, "kept %s", e->event);
    }
}

static void keeper_drop(void *context) {
    keeper *k = context;
    tl_rec_add(k->rec, "keeper dropped");
}

int main(void) {
    tl_server_load(&srv);
    tl_rec rec;
    tl_rec_init(&rec);

    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.on_state = tl_state_closure(&rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));

    const char *topic = "test:threaded";
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, topic, "{\"hello\":\"world\"}", &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    /* Join before connecting: it waits for the connection. */
    CHECK_OK(nhc_channel_join(ch, 0));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK(tl_rec_wait(&rec, "state CONNECTED", 1, 5000));
    CHECK(tl_rec_wait(&rec, "join OK test:threaded", 1, 5000));
    CHECK(tl_rec_find(&rec, "state CONNECTING", 0) < tl_rec_find(&rec, "state CONNECTED", 0));
    CHECK(tl_rec_count(&rec, "attempt=1") == 1);
    nhc_state st;
    CHECK_OK(nhc_socket_state(sock, &st));
    CHECK(st == NHC_STATE_CONNECTED);
    nhc_channel_phase phase;
    CHECK_OK(nhc_channel_state(ch, &phase));
    CHECK(phase == NHC_CHANNEL_JOINED);
    /* Callbacks run on the library's dispatcher thread, not ours. */
    CHECK(!pthread_equal(rec.last_thread, pthread_self()));

    /* Server pushes reach the event closure with their JSON payload. */
    CHECK(tl_ctl_push(&srv, topic, "update", "{\"firmware_url\":\"http://x/fw\",\"n\":[1,2]}") == 1);
    CHECK(tl_rec_wait(&rec, "event MESSAGE test:threaded update {\"firmware_url\":\"http://x/fw\",\"n\":[1,2]}", 1, 5000));

    /* Push replies: ok (echo), error, timeout; in order, each once. */
    CHECK_OK(nhc_channel_push(ch, "echo", "{\"a\":1}", 7, 0, tl_reply_closure(&rec)));
    CHECK_OK(nhc_channel_push(ch, "error_please", "{\"b\":2}", 7, 0, tl_reply_closure(&rec)));
    CHECK_OK(nhc_channel_push(ch, "noreply_please", NULL, 0, 300, tl_reply_closure(&rec)));
    CHECK(tl_rec_wait(&rec, "reply OK id=1 test:threaded ok {\"a\":1} err=0", 1, 5000));
    CHECK(tl_rec_wait(&rec, "reply ERROR id=2 test:threaded error", 1, 5000));
    CHECK(tl_rec_wait(&rec, "reply TIMEOUT id=3 test:threaded", 1, 5000));
    CHECK(tl_rec_count(&rec, "err=-7") == 1);
    CHECK(tl_rec_find(&rec, "id=1", 0) < tl_rec_find(&rec, "id=2", 0));
    CHECK(tl_rec_wait_drops(&rec, 3, 5000));
    CHECK(tl_ctl_wait(&srv, topic, "noreply_please", 1, 5000));

    /* Binary pushes and casts reach the server. */
    static const uint8_t bytes[] = {0, 1, 2, 255};
    CHECK_OK(nhc_channel_push_binary(ch, "noreply_bin", bytes, sizeof bytes, 200, tl_drop_only_reply(&rec)));
    uint64_t cast_id = 0;
    CHECK_OK(nhc_channel_cast(ch, "noreply_progress", "{\"value\":42}", 12, 0, &cast_id));
    CHECK(cast_id == 5);
    CHECK(tl_ctl_wait(&srv, topic, "noreply_bin", 1, 5000));
    CHECK(tl_ctl_wait(&srv, topic, "noreply_progress", 1, 5000));
    CHECK(tl_rec_wait_drops(&rec, 4, 5000));
    CHECK(tl_rec_count(&rec, "CAST_FAILED") == 0);

    /* A copy made in a callback outlives it. */
    keeper k = {&rec, NULL, pthread_self()};
    nhc_event_closure kc = {&k, keep_first, keeper_drop};
    CHECK_OK(nhc_channel_on_event(ch, kc)); /* replaces (drops) the recorder's */
    CHECK(tl_rec_drops(&rec) == 5);
    CHECK(tl_ctl_push(&srv, topic, "reboot", "{}") == 1);
    CHECK(tl_rec_wait(&rec, "kept reboot", 1, 5000));
    CHECK(strcmp(k.kept->event, "reboot") == 0 && strcmp(k.kept->topic, topic) == 0);
    CHECK(strcmp(k.kept->payload.json, "{}") == 0 && k.kept->payload.json_len == 2);
    nhc_event_free(k.kept);
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    CHECK(tl_rec_count(&rec, "keeper dropped") == 1);

    /* A refused join reports the server's response and the rejoin delay. */
    nhc_channel *bad = NULL;
    CHECK_OK(nhc_channel_new(sock, "nope:nothing", NULL, &bad));
    CHECK_OK(nhc_channel_on_join(bad, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_join(bad, 0));
    CHECK(tl_rec_wait(&rec, "join REFUSED nope:nothing", 1, 5000));
    CHECK(tl_rec_count(&rec, "unmatched topic") >= 1);
    CHECK(tl_rec_count(&rec, "join REFUSED nope:nothing {\"reason\":\"unmatched topic\"} rejoin=50") >= 1);
    nhc_channel_free(bad); /* leaves: no more rejoins */
    /* As on NervesHub, an anonymous socket routes no device topics. */
    nhc_channel *device = NULL;
    CHECK_OK(nhc_channel_new(sock, "device", NULL, &device));
    CHECK_OK(nhc_channel_on_join(device, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_join(device, 0));
    CHECK(tl_rec_wait(&rec, "join REFUSED device {\"reason\":\"unmatched topic\"}", 1, 5000));
    nhc_channel_free(device);
    int refused = tl_rec_count(&rec, "join REFUSED");

    /* phx_error: CHANNEL_ERROR, then a rejoin by itself. */
    tl_ctl_post(&srv, "/crash", "{\"topic\":\"test:threaded\"}");
    CHECK(tl_rec_wait(&rec, "event CHANNEL_ERROR test:threaded", 1, 5000));
    CHECK(tl_rec_wait(&rec, "join OK test:threaded", 2, 5000));

    /* phx_close: CHANNEL_CLOSED, no rejoin; joining again works. */
    tl_ctl_post(&srv, "/close", "{\"topic\":\"test:threaded\"}");
    CHECK(tl_rec_wait(&rec, "event CHANNEL_CLOSED test:threaded phx_close", 1, 5000));
    CHECK_OK(nhc_channel_join(ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK test:threaded", 3, 5000));

    /* Leave: CHANNEL_CLOSED "left"; pushes then end NOT_SENT. */
    CHECK_OK(nhc_channel_leave(ch));
    CHECK(tl_rec_wait(&rec, "event CHANNEL_CLOSED test:threaded left", 1, 5000));
    CHECK_OK(nhc_channel_push(ch, "echo", "{}", 2, 0, tl_reply_closure(&rec)));
    CHECK(tl_rec_wait(&rec, "reply NOT_SENT", 1, 5000));
    CHECK(tl_rec_count(&rec, "join REFUSED") == refused);

    /* Disconnect: DISCONNECTED with NHC_ERR_CLOSED and no reconnect. */
    CHECK_OK(nhc_socket_disconnect(sock));
    CHECK(tl_rec_wait(&rec, "state DISCONNECTED err=-8 reconnect=-1", 1, 5000));

    int before = tl_rec_drops(&rec);
    nhc_channel_free(ch); /* join + event closures */
    CHECK(tl_rec_drops(&rec) == before + 2);
    nhc_socket_free(sock); /* state closure */
    CHECK(tl_rec_drops(&rec) == before + 3);
    /* Nothing is called after free returned. */
    int lines = (int)rec.len;
    nhc_shutdown();
    CHECK((int)rec.len == lines);
    tl_rec_destroy(&rec);
    printf("int_threaded: ok\n");
    return 0;
}
