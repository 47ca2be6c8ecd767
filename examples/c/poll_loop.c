/*
 * A single-threaded poll() main loop (NHC_DELIVERY_POLLED): the library's
 * descriptor sits beside the program's own (here stdin), callbacks run
 * only inside nhc_socket_dispatch on this thread, and the poll timeout
 * doubles as a timer that pushes "ping" and prints the reply. Lines typed
 * on stdin are pushed as "shout" events. Exits on a "stop" event or EOF.
 *
 *   poll_loop ws://HOST:PORT/socket/websocket room:lobby [PING_MS]
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nerves_hub_channel.h"

static int running = 1;
static int joined;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_state(const nhc_state_event *e, void *context) {
    (void)context;
    printf("state %d %s\n", (int)e->state, e->reason);
}

static void on_join(const nhc_join_event *e, void *context) {
    (void)context;
    joined = e->status == NHC_JOIN_OK;
    printf("join %s: %d %s\n", e->topic, (int)e->status, e->response.json);
}

static void on_event(const nhc_event *e, void *context) {
    (void)context;
    if (e->kind == NHC_EVENT_MESSAGE) {
        printf("event %s %s %.*s\n", e->topic, e->event, (int)e->payload.json_len,
               e->payload.json);
        if (strcmp(e->event, "stop") == 0) running = 0;
    } else {
        printf("channel %s: %s\n", e->topic, e->reason);
    }
}

static void on_reply(const nhc_reply *r, void *context) {
    (void)context;
    printf("reply %llu: %d %s\n", (unsigned long long)r->push_id, (int)r->status,
           r->response.json);
}

/* Pushes one line of stdin as {"text": ...}, escaped the simple way. */
static void shout(nhc_channel *ch, const char *line) {
    char json[1200];
    size_t n = 0;
    n += (size_t)snprintf(json, sizeof json, "{\"text\":\"");
    for (const char *p = line; *p && *p != '\n' && n < sizeof json - 8; p++) {
        if (*p == '"' || *p == '\\') json[n++] = '\\';
        if ((unsigned char)*p >= 0x20) json[n++] = *p;
    }
    n += (size_t)snprintf(json + n, sizeof json - n, "\"}");
    nhc_reply_closure reply = {NULL, on_reply, NULL};
    if (nhc_channel_push(ch, "shout", json, n, 0, reply) != NHC_OK)
        fprintf(stderr, "shout: %s\n", nhc_last_error_message());
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL TOPIC [PING_MS]\n", argv[0]);
        return 2;
    }
    int ping_ms = argc > 3 ? atoi(argv[3]) : 5000;
    setvbuf(stdout, NULL, _IOLBF, 0);

    nhc_socket_options opts;
    nhc_socket_options_default(&opts);
    opts.url = argv[1];
    opts.delivery = NHC_DELIVERY_POLLED;
    nhc_state_closure state = {NULL, on_state, NULL};
    opts.on_state = state;
    nhc_socket *sock = NULL;
    nhc_channel *ch = NULL;
    int fd = -1;
    nhc_join_closure join = {NULL, on_join, NULL};
    nhc_event_closure events = {NULL, on_event, NULL};
    if (nhc_socket_new(&opts, &sock) != NHC_OK || nhc_socket_fd(sock, &fd) != NHC_OK ||
        nhc_channel_new(sock, argv[2], NULL, &ch) != NHC_OK ||
        nhc_channel_on_join(ch, join) != NHC_OK || nhc_channel_on_event(ch, events) != NHC_OK ||
        nhc_channel_join(ch, 0) != NHC_OK || nhc_socket_connect(sock) != NHC_OK) {
        fprintf(stderr, "start: %s\n", nhc_last_error_message());
        nhc_channel_free(ch);
        nhc_socket_free(sock);
        return 1;
    }

    long long next_ping = now_ms() + ping_ms;
    struct pollfd fds[2] = {{fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int nfds = 2;
    while (running) {
        long long wait = next_ping - now_ms();
        if (poll(fds, (nfds_t)nfds, wait > 0 ? (int)wait : 0) < 0) break;
        if (fds[0].revents & POLLIN) nhc_socket_dispatch(sock, 0);
        if (nfds > 1 && (fds[1].revents & (POLLIN | POLLHUP))) {
            char line[1024];
            if (fgets(line, sizeof line, stdin)) {
                shout(ch, line);
            } else {
                running = 0;
            }
        }
        if (now_ms() >= next_ping) {
            next_ping += ping_ms;
            nhc_reply_closure reply = {NULL, on_reply, NULL};
            if (joined) nhc_channel_push(ch, "ping", "{}", 2, 0, reply);
        }
    }

    nhc_channel_free(ch);
    nhc_socket_free(sock);
    nhc_shutdown();
    return 0;
}
