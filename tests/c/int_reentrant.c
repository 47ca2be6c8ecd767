/*
 * Re-entrant calls from callbacks: push from on_event, leave from a join
 * callback, free the channel or the socket from their own callbacks (in
 * every delivery mode), and a free from another thread that waits for the
 * running callback. Drops always come after the last call. Threaded
 * callbacks run on the dispatcher thread, inline ones on the I/O thread.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testlib.h"

static tl_server srv;

typedef struct ctx {
    tl_rec *rec;
    nhc_socket *sock;
    nhc_channel *ch;
    const char *name;
} ctx;

static void ctx_drop(void *context) {
    ctx *c = context;
    tl_rec_add(c->rec, "%s dropped", c->name);
}

static nhc_socket *threaded_socket(tl_rec *rec, int delivery, nhc_state_closure state) {
    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.delivery = delivery;
    o.on_state = state.call ? state : tl_state_closure(rec);
    nhc_socket *sock = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    return sock;
}

/* --- push from on_event ---------------------------------------------------- */

static const char *delivery_name(int delivery) {
    return delivery == NHC_DELIVERY_INLINE ? "inline" : "threaded";
}

/* The library thread a callback of this delivery runs on. */
static const char *callback_thread(int delivery) {
    return delivery == NHC_DELIVERY_INLINE ? "nhc-io" : "nhc-dispatch";
}

static void ping_pong(const nhc_event *e, void *context) {
    ctx *c = context;
    if (e->kind == NHC_EVENT_MESSAGE && strcmp(e->event, "ping") == 0) {
        char thread[16] = "";
        CHECK(pthread_getname_np(pthread_self(), thread, sizeof thread) == 0);
        tl_rec_add(c->rec, "ping on %s", thread);
        CHECK_OK(nhc_channel_push(c->ch, "pong", e->payload.json, e->payload.json_len, 0,
                                  tl_reply_closure(c->rec)));
        CHECK_OK(nhc_channel_cast(c->ch, "noreply_pong", "{}", 2, 0, NULL));
        tl_rec_add(c->rec, "ping handled");
    }
}

static void push_from_event(int delivery) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_state_closure none = {0};
    nhc_socket *sock = threaded_socket(&rec, delivery, none);
    ctx c = {&rec, sock, NULL, "ping_pong"};
    CHECK_OK(nhc_channel_new(sock, "test:reentrant", NULL, &c.ch));
    nhc_event_closure ec = {&c, ping_pong, ctx_drop};
    CHECK_OK(nhc_channel_on_event(c.ch, ec));
    CHECK_OK(nhc_channel_on_join(c.ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(c.ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK", 1, 5000));
    CHECK(tl_ctl_push(&srv, "test:reentrant", "ping", "{\"seq\":7}") == 1);
    CHECK(tl_rec_wait(&rec, "reply OK id=1 test:reentrant ok {\"seq\":7}", 1, 5000));
    CHECK(tl_ctl_wait(&srv, "test:reentrant", "pong", 1, 5000));
    CHECK(tl_ctl_wait(&srv, "test:reentrant", "noreply_pong", 1, 5000));
    char on_thread[64];
    snprintf(on_thread, sizeof on_thread, "ping on %s", callback_thread(delivery));
    CHECK(tl_rec_count(&rec, on_thread) == 1);
    nhc_channel_free(c.ch);
    CHECK(tl_rec_count(&rec, "ping_pong dropped") == 1);
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

/* --- leave from a join callback ------------------------------------------- */

static void leave_on_join(const nhc_join_event *e, void *context) {
    ctx *c = context;
    tl_rec_add(c->rec, "join status=%d", (int)e->status);
    if (e->status == NHC_JOIN_OK) CHECK_OK(nhc_channel_leave(c->ch));
}

static void leave_from_join(int delivery) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_state_closure none = {0};
    nhc_socket *sock = threaded_socket(&rec, delivery, none);
    ctx c = {&rec, sock, NULL, "leaver"};
    CHECK_OK(nhc_channel_new(sock, "test:leave", NULL, &c.ch));
    nhc_join_closure jc = {&c, leave_on_join, ctx_drop};
    CHECK_OK(nhc_channel_on_join(c.ch, jc));
    CHECK_OK(nhc_channel_on_event(c.ch, tl_event_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(c.ch, 0));
    CHECK(tl_rec_wait(&rec, "event CHANNEL_CLOSED test:leave left", 1, 5000));
    CHECK(tl_rec_count(&rec, "join status=0") == 1);
    nhc_channel_free(c.ch);
    nhc_socket_free(sock);
    CHECK(tl_rec_count(&rec, "leaver dropped") == 1);
    CHECK(tl_rec_drops(&rec) == 2); /* the event closure and the state closure */
    tl_rec_destroy(&rec);
}

/* --- free the channel from its own event callback -------------------------- */

static void free_on_message(const nhc_event *e, void *context) {
    ctx *c = context;
    if (e->kind == NHC_EVENT_MESSAGE && strcmp(e->event, "free_me") == 0) {
        nhc_channel_free(c->ch);
        c->ch = NULL;
        /* Still inside the call: our drop must not have run yet. */
        CHECK(tl_rec_count(c->rec, "self_free dropped") == 0);
        tl_rec_add(c->rec, "self_free returning");
    }
}

static void free_channel_from_event(int delivery) {
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_state_closure none = {0};
    nhc_socket *sock = threaded_socket(&rec, delivery, none);
    ctx c = {&rec, sock, NULL, "self_free"};
    CHECK_OK(nhc_channel_new(sock, "test:self_free", NULL, &c.ch));
    nhc_event_closure ec = {&c, free_on_message, ctx_drop};
    CHECK_OK(nhc_channel_on_event(c.ch, ec));
    CHECK_OK(nhc_channel_on_join(c.ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(c.ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK", 1, 5000));
    CHECK(tl_ctl_push(&srv, "test:self_free", "free_me", "{}") == 1);
    CHECK(tl_rec_wait(&rec, "self_free dropped", 1, 5000));
    CHECK(tl_rec_find(&rec, "self_free returning", 0) < tl_rec_find(&rec, "self_free dropped", 0));
    CHECK(tl_rec_drops(&rec) == 1); /* the join closure, dropped by the free */
    nhc_socket_free(sock);
    tl_rec_destroy(&rec);
}

/* --- free the socket from its state callback (threaded and polled) --------- */

static void free_on_connected(const nhc_state_event *e, void *context) {
    ctx *c = context;
    if (e->state == NHC_STATE_CONNECTED && c->sock) {
        nhc_socket *s = c->sock;
        c->sock = NULL;
        if (c->ch) {
            /* Polled: a dispatch from inside a callback is refused. */
            CHECK_RC(nhc_socket_dispatch(s, 0), NHC_ERR_INVALID_STATE);
        }
        nhc_socket_free(s);
        CHECK(tl_rec_count(c->rec, "state_free dropped") == 0);
        tl_rec_add(c->rec, "state_free returning");
    }
}

static void free_socket_from_state(int delivery) {
    tl_rec rec;
    tl_rec_init(&rec);
    ctx c = {&rec, NULL, NULL, "state_free"};
    nhc_state_closure sc = {&c, free_on_connected, ctx_drop};
    c.sock = threaded_socket(&rec, delivery, sc);
    nhc_socket *sock = c.sock;
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, "test:state_free", NULL, &ch));
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    if (delivery == NHC_DELIVERY_POLLED) c.ch = ch;
    CHECK_OK(nhc_socket_connect(sock));
    if (delivery == NHC_DELIVERY_POLLED) {
        /* The dispatch that runs the freeing callback returns NHC_OK, then stops. */
        while (c.sock) CHECK_OK(nhc_socket_dispatch(c.sock, tl_ms(5000)));
    }
    CHECK(tl_rec_wait(&rec, "state_free dropped", 1, 5000));
    CHECK(tl_rec_find(&rec, "state_free returning", 0) < tl_rec_find(&rec, "state_free dropped", 0));
    /* The channel's closures went with the socket; the handle still fails cleanly. */
    CHECK(tl_rec_drops(&rec) == 1);
    CHECK_RC(nhc_channel_join(ch, 0), NHC_ERR_CLOSED);
    nhc_channel_free(ch);
    tl_rec_destroy(&rec);
}

/* --- free from another thread waits for the running callback --------------- */

typedef struct blocker {
    tl_rec *rec;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool in_callback;
    bool release;
    nhc_socket *sock;
} blocker;

static void block_on_message(const nhc_event *e, void *context) {
    blocker *b = context;
    if (e->kind != NHC_EVENT_MESSAGE) return;
    pthread_mutex_lock(&b->lock);
    b->in_callback = true;
    pthread_cond_broadcast(&b->cond);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += tl_ms(10000) / 1000;
    while (!b->release)
        if (pthread_cond_timedwait(&b->cond, &b->lock, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&b->lock);
    tl_rec_add(b->rec, "blocker callback returning");
}

static void blocker_drop(void *context) {
    blocker *b = context;
    tl_rec_add(b->rec, "blocker dropped");
}

static void *free_thread(void *arg) {
    blocker *b = arg;
    tl_rec_add(b->rec, "free called");
    nhc_socket_free(b->sock);
    tl_rec_add(b->rec, "free returned");
    return NULL;
}

static void free_waits_for_callback(int delivery) {
    tl_rec rec;
    tl_rec_init(&rec);
    blocker b = {&rec, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, NULL};
    nhc_state_closure none = {0};
    b.sock = threaded_socket(&rec, delivery, none);
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(b.sock, "test:blocker", NULL, &ch));
    nhc_event_closure ec = {&b, block_on_message, blocker_drop};
    CHECK_OK(nhc_channel_on_event(ch, ec));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_socket_connect(b.sock));
    CHECK_OK(nhc_channel_join(ch, 0));
    CHECK(tl_rec_wait(&rec, "join OK", 1, 5000));
    CHECK(tl_ctl_push(&srv, "test:blocker", "hold", "{}") == 1);

    pthread_mutex_lock(&b.lock);
    while (!b.in_callback) pthread_cond_wait(&b.cond, &b.lock);
    pthread_mutex_unlock(&b.lock);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_thread, &b) == 0);
    CHECK(tl_rec_wait(&rec, "free called", 1, 5000));
    /* The free must not return while the callback runs (a bounded negative check). */
    CHECK(tl_rec_absent(&rec, "free returned", 300));
    pthread_mutex_lock(&b.lock);
    b.release = true;
    pthread_cond_broadcast(&b.cond);
    pthread_mutex_unlock(&b.lock);
    CHECK(pthread_join(t, NULL) == 0);
    int ret = tl_rec_find(&rec, "blocker callback returning", 0);
    int dropped = tl_rec_find(&rec, "blocker dropped", 0);
    int freed = tl_rec_find(&rec, "free returned", 0);
    CHECK(ret >= 0 && dropped > ret && freed > dropped);
    nhc_channel_free(ch);
    tl_rec_destroy(&rec);
}

int main(void) {
    tl_server_load(&srv);
    const int callbacks[] = {NHC_DELIVERY_THREADED, NHC_DELIVERY_INLINE};
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++) {
        int delivery = callbacks[i];
        printf("int_reentrant: %s callbacks\n", delivery_name(delivery));
        push_from_event(delivery);
        leave_from_join(delivery);
        free_channel_from_event(delivery);
        free_socket_from_state(delivery);
        free_waits_for_callback(delivery);
    }
    free_socket_from_state(NHC_DELIVERY_POLLED);
    nhc_shutdown();
    printf("int_reentrant: ok\n");
    return 0;
}
