/*
 * Polled delivery in a single-threaded poll() main loop: callbacks run only
 * inside nhc_socket_dispatch, on this thread; the descriptor is readable
 * exactly while events wait.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "testlib.h"

static tl_server srv;
static tl_rec rec;
static nhc_socket *sock;
static int fd = -1;
static pthread_t main_thread;

/* One turn of the main loop: poll the library's descriptor, dispatch. */
static void loop_once(int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, tl_ms(timeout_ms));
    CHECK(n >= 0);
    if (n == 1) {
        CHECK(p.revents & POLLIN);
        CHECK_OK(nhc_socket_dispatch(sock, 0));
    }
}

static void loop_until(const char *needle, int count, int timeout_ms) {
    for (int i = 0; i < 1000 && tl_rec_count(&rec, needle) < count; i++) loop_once(timeout_ms);
    if (tl_rec_count(&rec, needle) < count) {
        tl_rec_print(&rec);
        tl_fail(__FILE__, __LINE__, "loop_until", needle);
    }
    CHECK(pthread_equal(rec.last_thread, main_thread));
}

static bool readable(int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, tl_ms(timeout_ms)) == 1;
}

int main(void) {
    main_thread = pthread_self();
    tl_server_load(&srv);
    tl_rec_init(&rec);

    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.delivery = NHC_DELIVERY_POLLED;
    o.on_state = tl_state_closure(&rec);
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_socket_fd(sock, &fd));
    int fd2 = -1;
    CHECK_OK(nhc_socket_fd(sock, &fd2));
    CHECK(fd == fd2);
    CHECK(!readable(0));

    const char *topic = "test:polled";
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, topic, NULL, &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_channel_on_event(ch, tl_event_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(ch, 0));
    loop_until("join OK test:polled", 1, 5000);
    CHECK(tl_rec_find(&rec, "state CONNECTED", 0) >= 0);
    CHECK(tl_rec_find(&rec, "state CONNECTED", 0) < tl_rec_find(&rec, "join OK", 0));

    /* An event waits for dispatch: the descriptor turns readable, nothing is called. */
    while (readable(0)) CHECK_OK(nhc_socket_dispatch(sock, 0));
    int lines = (int)rec.len;
    CHECK(tl_ctl_push(&srv, topic, "update", "{\"v\":1}") == 1);
    CHECK(readable(5000));
    CHECK((int)rec.len == lines);
    CHECK_OK(nhc_socket_dispatch(sock, 0));
    CHECK(tl_rec_count(&rec, "event MESSAGE test:polled update {\"v\":1}") == 1);
    CHECK(!readable(0));
    CHECK_RC(nhc_socket_dispatch(sock, 0), NHC_ERR_TIMEOUT);

    /* Several events: one dispatch handles them in order. */
    for (int i = 0; i < 5; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "{\"i\":%d}", i);
        CHECK(tl_ctl_push(&srv, topic, "tick", payload) == 1);
    }
    CHECK_OK(nhc_channel_push(ch, "echo", "{\"last\":true}", 13, 0, tl_reply_closure(&rec)));
    loop_until("reply OK", 1, 5000);
    for (int i = 0; i < 5; i++) {
        char line[64];
        snprintf(line, sizeof line, "tick {\"i\":%d}", i);
        int at = tl_rec_find(&rec, line, 0);
        CHECK(at >= 0);
        if (i > 0) {
            snprintf(line, sizeof line, "tick {\"i\":%d}", i - 1);
            CHECK(tl_rec_find(&rec, line, 0) < at);
        }
    }

    /* A blocking dispatch with a timeout returns when an event arrives. */
    CHECK(tl_ctl_push(&srv, topic, "late", "[]") == 1);
    CHECK_OK(nhc_socket_dispatch(sock, tl_ms(5000)));
    loop_until("late []", 1, 5000);

    /* Free from outside any callback: closures dropped before return. */
    int drops = tl_rec_drops(&rec);
    nhc_channel_free(ch);
    CHECK(tl_rec_drops(&rec) == drops + 2);
    nhc_socket_free(sock);
    CHECK(tl_rec_drops(&rec) == drops + 3);
    nhc_shutdown();
    tl_rec_destroy(&rec);
    printf("int_polled: ok\n");
    return 0;
}
