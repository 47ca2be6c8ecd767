/*
 * A C program must never die of SIGPIPE when the peer vanishes while the
 * library writes. SIGPIPE keeps its default (fatal) action here, and the
 * library must not change it: it writes with MSG_NOSIGNAL semantics instead.
 * Each round queues a burst of large casts (more than the loopback socket
 * buffers hold) and has the server drop every connection at once, so the
 * connection task is still writing when its peer is gone. The bursts are
 * bounded: the server keeps what it receives.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define ROUNDS 10
#define BURST 48
#define BLOB (64 * 1024)

static bool sigpipe_is_default(void) {
    struct sigaction sa;
    CHECK(sigaction(SIGPIPE, NULL, &sa) == 0);
    return sa.sa_handler == SIG_DFL;
}

int main(void) {
    /* Make SIGPIPE fatal whatever the test runner left us. */
    signal(SIGPIPE, SIG_DFL);
    tl_server srv;
    tl_server_load(&srv);
    tl_ctl_post(&srv, "/reset", "{}");
    tl_rec rec;
    tl_rec_init(&rec);

    nhc_socket_options o;
    tl_fast_options(&o, &srv);
    o.on_state = tl_state_closure(&rec);
    o.outbound_capacity = BURST;
    nhc_socket *sock = NULL;
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_socket_new(&o, &sock));
    CHECK_OK(nhc_channel_new(sock, "test:sigpipe", NULL, &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(&rec)));
    CHECK_OK(nhc_socket_connect(sock));
    CHECK_OK(nhc_channel_join(ch, 0));

    size_t len = BLOB + 11;
    char *json = malloc(len);
    memcpy(json, "{\"blob\":\"", 9);
    memset(json + 9, 'x', BLOB);
    memcpy(json + 9 + BLOB, "\"}", 2);

    for (int round = 1; round <= ROUNDS; round++) {
        CHECK(tl_rec_wait(&rec, "join OK", round, 10000));
        int queued = 0;
        for (int i = 0; i < BURST; i++) {
            nhc_result rc = nhc_channel_cast(ch, "noreply_blob", json, len, 5000, NULL);
            CHECK(rc == NHC_OK || rc == NHC_ERR_BUFFER_FULL);
            queued += rc == NHC_OK;
        }
        CHECK(queued > 0);
        tl_ctl_post(&srv, "/drop", "{}");
        CHECK(tl_rec_wait(&rec, "state DISCONNECTED", round, 10000));
    }
    CHECK(tl_rec_wait(&rec, "join OK", ROUNDS + 1, 10000));
    free(json);
    printf("disconnects survived while writing: %d\n", ROUNDS);

    CHECK(sigpipe_is_default());
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    nhc_shutdown();
    CHECK(sigpipe_is_default());
    /* The server keeps what it receives: let it forget the blobs. */
    tl_ctl_post(&srv, "/reset", "{}");
    tl_rec_destroy(&rec);
    printf("int_sigpipe: ok\n");
    return 0;
}
