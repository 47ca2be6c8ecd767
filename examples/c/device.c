/*
 * A minimal NervesHub device in C: connects with mutual TLS, joins
 * "device" with its firmware metadata, prints "update" and "reboot"
 * events, reports download progress with "fwup_progress", and exits on
 * "reboot" (where a real device would reboot). Callbacks run on the
 * library's dispatcher thread (NHC_DELIVERY_THREADED).
 *
 *   device wss://HOST:PORT/socket/websocket ca.pem device.pem device-key.pem
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nerves_hub_channel.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done;
static volatile sig_atomic_t interrupted;

static void finish(void) {
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&lock);
}

static void on_state(const nhc_state_event *e, void *context) {
    (void)context;
    switch (e->state) {
    case NHC_STATE_CONNECTING: printf("connecting (attempt %u)\n", e->attempt); break;
    case NHC_STATE_CONNECTED: printf("connected\n"); break;
    case NHC_STATE_DISCONNECTED:
    case NHC_STATE_AUTH_ERROR:
        printf("disconnected: %s (%s); retry in %lld ms\n", e->reason, nhc_result_str(e->error),
               (long long)e->reconnect_in_ms);
        break;
    case NHC_STATE_PROTOCOL_ERROR: printf("protocol error: %s\n", e->reason); break;
    case NHC_STATE_CLOSED: printf("closed\n"); break;
    }
    fflush(stdout);
}

static void on_join(const nhc_join_event *e, void *context) {
    (void)context;
    if (e->status == NHC_JOIN_OK)
        printf("joined %s: %s\n", e->topic, e->response.json);
    else
        printf("join of %s failed: %s %s; rejoin in %lld ms\n", e->topic, e->reason,
               e->response.json, (long long)e->rejoin_in_ms);
    fflush(stdout);
}

/* Pretends to download and apply the firmware, reporting progress. A real
 * device would do this on its own thread rather than in the callback. */
static void apply_update(nhc_channel *device) {
    for (int percent = 0; percent <= 100; percent += 25) {
        char json[32];
        int len = snprintf(json, sizeof json, "{\"value\":%d}", percent);
        /* NervesHub never replies to device events: fire and forget. */
        nhc_result rc = nhc_channel_cast(device, "fwup_progress", json, (size_t)len, 0, NULL);
        if (rc != NHC_OK) printf("fwup_progress: %s\n", nhc_last_error_message());
    }
}

static void on_event(const nhc_event *e, void *context) {
    nhc_channel *device = context;
    if (e->kind == NHC_EVENT_MESSAGE && strcmp(e->event, "update") == 0) {
        /* e->payload.json is borrowed: copy what must outlive this call. */
        printf("update: %.*s\n", (int)e->payload.json_len, e->payload.json);
        apply_update(device);
    } else if (e->kind == NHC_EVENT_MESSAGE && strcmp(e->event, "reboot") == 0) {
        printf("reboot requested\n");
        finish();
    } else if (e->kind == NHC_EVENT_MESSAGE) {
        printf("event %s: %.*s\n", e->event, (int)e->payload.json_len, e->payload.json);
    } else {
        printf("channel %s: %s\n", e->topic, e->reason);
    }
    fflush(stdout);
}

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL CA_PEM CERT_PEM KEY_PEM\n", argv[0]);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    nhc_socket_options opts;
    nhc_socket_options_default(&opts);
    opts.url = argv[1];
    opts.ca_file = argv[2];
    opts.cert_file = argv[3];
    opts.key_file = argv[4];
    nhc_state_closure state = {NULL, on_state, NULL};
    opts.on_state = state;

    nhc_socket *sock = NULL;
    nhc_channel *device = NULL;
    if (nhc_socket_new(&opts, &sock) != NHC_OK) {
        fprintf(stderr, "socket: %s\n", nhc_last_error_message());
        return 1;
    }
    const char *metadata =
        "{\"device_api_version\":\"2.3.0\",\"nerves_fw_version\":\"1.0.0\","
        "\"nerves_fw_platform\":\"host\",\"nerves_fw_architecture\":\"x86_64\"}";
    nhc_join_closure join = {NULL, on_join, NULL};
    if (nhc_channel_new(sock, "device", metadata, &device) != NHC_OK ||
        nhc_channel_on_join(device, join) != NHC_OK) {
        fprintf(stderr, "channel: %s\n", nhc_last_error_message());
        nhc_socket_free(sock);
        return 1;
    }
    nhc_event_closure events = {device, on_event, NULL};
    if (nhc_channel_on_event(device, events) != NHC_OK || nhc_channel_join(device, 0) != NHC_OK ||
        nhc_socket_connect(sock) != NHC_OK) {
        fprintf(stderr, "start: %s\n", nhc_last_error_message());
        nhc_channel_free(device);
        nhc_socket_free(sock);
        return 1;
    }

    /* The main thread has nothing else to do: wait for "reboot" or a signal. */
    pthread_mutex_lock(&lock);
    while (!done && !interrupted) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&done_cond, &lock, &t);
    }
    pthread_mutex_unlock(&lock);

    nhc_channel_free(device);
    nhc_socket_free(sock);
    nhc_shutdown();
    return 0;
}
