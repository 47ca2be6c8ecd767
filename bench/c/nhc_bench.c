/*
 * The C API under the benchmark workloads of bench/run.sh, against a
 * running nhc-devserver. Prints one JSON object on stdout.
 *
 *   nhc_bench run  SERVER_JSON [latency=20] [seq=5000] [pipe=50000] [window=100]
 *                              [flood=50000] [size=256] [flood_runs=1]
 *                              [delivery=threaded|polled|inline] [read_buffer=BYTES]
 *   nhc_bench idle SERVER_JSON threaded|polled [SETTLE_SECONDS=15]
 *   nhc_bench many SERVER_JSON N ws|wss
 *   nhc_bench trickle SERVER_JSON rate=R [count=N] [runs=3] [size=256]
 *                                 [delivery=threaded|polled|inline] [tls=0]
 *                                 [read_buffer=BYTES]
 *
 * trickle: the dev server sends R messages a second, each alone (a paced
 * flood), so that every message wakes the client; after a warm-up flood at
 * full speed (also with runs=1), `runs` paced floods of N messages, with the
 * CPU time and the voluntary context switches (all threads) per message of each.
 * rate=0: the floods are not paced (the server writes as fast as the client
 * reads); a warm-up comes first when runs > 1. tls=1: over wss with mutual TLS.
 *
 * Threaded delivery (the default): callbacks run on the library's dispatcher
 * thread and signal the main thread through a condition variable. Polled
 * delivery: the main thread runs them itself in nhc_socket_dispatch while it
 * waits, like a single-threaded event loop. Inline delivery: callbacks run on
 * the socket's I/O thread as each message is read, and signal the main thread
 * as threaded ones do. Every wait has a deadline, after
 * which the program exits with a message.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "nerves_hub_channel.h"

static const char PAYLOAD[] = "{\"value\":42}";

/* --- a counter the main thread waits on ------------------------------ */

typedef struct counter {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    long value;
    long failures;
    /* What the waiter waits for: only reaching it wakes the waiter, so that
     * a flood does not cost a wake-up of the main thread per message. */
    long want;
} counter;

static void counter_init(counter *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->want = LONG_MAX;
}

/* Between runs, when no callback of the counter can still be running. */
static void counter_reset(counter *c) {
    pthread_mutex_lock(&c->lock);
    c->value = 0;
    c->failures = 0;
    c->want = LONG_MAX;
    pthread_mutex_unlock(&c->lock);
}

static void counter_add(counter *c, long ok, long failed) {
    pthread_mutex_lock(&c->lock);
    c->value += ok;
    c->failures += failed;
    if (c->value >= c->want || c->failures) pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

/* With `delivery=polled`, the socket whose callbacks the main thread runs
 * while it waits (the callbacks then run on the waiting thread itself). */
static nhc_socket *polled_socket;
static int32_t delivery_mode = NHC_DELIVERY_THREADED;

static void counter_wait_polled(counter *c, long want, double seconds, const char *what) {
    double deadline = bl_now() + seconds;
    while (c->value < want && c->failures == 0 && bl_now() < deadline) {
        nhc_result rc = nhc_socket_dispatch(polled_socket, 100);
        if (rc != NHC_OK && rc != NHC_ERR_TIMEOUT) {
            fprintf(stderr, "bench: %s: nhc_socket_dispatch: %s: %s\n", what, nhc_result_str(rc),
                    nhc_last_error_message());
            fflush(NULL);
            _exit(1);
        }
    }
    if (c->failures || c->value < want) {
        fprintf(stderr, "bench: %s: %ld of %ld done, %ld failed (%s)\n", what, c->value, want,
                c->failures, nhc_last_error_message());
        fflush(NULL);
        _exit(1);
    }
}

/* Waits until value >= want; exits after `seconds` or on a failure. */
static void counter_wait(counter *c, long want, double seconds, const char *what) {
    if (polled_socket) {
        counter_wait_polled(c, want, seconds, what);
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&c->lock);
    c->want = want;
    while (c->value < want && c->failures == 0) {
        if (pthread_cond_timedwait(&c->changed, &c->lock, &until) == ETIMEDOUT) break;
    }
    long value = c->value, failures = c->failures;
    pthread_mutex_unlock(&c->lock);
    if (failures || value < want) {
        fprintf(stderr, "bench: %s: %ld of %ld done, %ld failed (%s)\n", what, value, want,
                failures, nhc_last_error_message());
        fflush(NULL);
        _exit(1);
    }
}

/* `delivery=threaded|polled|inline` among the arguments (threaded if none):
 * sets delivery_mode and returns its name. */
static const char *parse_delivery(int argc, char **argv) {
    static const struct {
        const char *arg, *name;
        int32_t mode;
    } modes[] = {
        {"delivery=threaded", "threaded", NHC_DELIVERY_THREADED},
        {"delivery=polled", "polled", NHC_DELIVERY_POLLED},
        {"delivery=inline", "inline", NHC_DELIVERY_INLINE},
    };
    const char *name = "threaded";
    delivery_mode = NHC_DELIVERY_THREADED;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "delivery=", 9) != 0) continue;
        size_t m = 0;
        while (m < sizeof modes / sizeof modes[0] && strcmp(argv[i], modes[m].arg) != 0) m++;
        if (m == sizeof modes / sizeof modes[0]) bl_die("unknown delivery", argv[i]);
        name = modes[m].name;
        delivery_mode = modes[m].mode;
    }
    return name;
}

static void check(nhc_result rc, const char *what) {
    if (rc != NHC_OK) {
        fprintf(stderr, "bench: %s: %s: %s\n", what, nhc_result_str(rc), nhc_last_error_message());
        fflush(NULL);
        _exit(1);
    }
}

static void on_join(const nhc_join_event *e, void *context) {
    counter_add(context, e->status == NHC_JOIN_OK, e->status == NHC_JOIN_REFUSED);
}

/* `read_buffer=N` of the run command; 0: the library's default. */
static long read_buffer_size;

static nhc_socket *open_socket(const bl_server *s, bool tls, int32_t delivery) {
    nhc_socket_options o;
    check(nhc_socket_options_default(&o), "options");
    if (tls) {
        o.url = s->wss_url;
        o.ca_file = s->ca;
        o.cert_file = s->device_cert;
        o.key_file = s->device_key;
    } else {
        o.url = s->ws_url;
    }
    o.delivery = delivery;
    if (read_buffer_size > 0) o.read_buffer_size = (size_t)read_buffer_size;
    nhc_socket *sock;
    check(nhc_socket_new(&o, &sock), "nhc_socket_new");
    return sock;
}

/* A channel whose joins count into `joins`; join requested, not awaited. */
static nhc_channel *open_channel(nhc_socket *sock, const char *topic, counter *joins) {
    nhc_channel *ch;
    check(nhc_channel_new(sock, topic, NULL, &ch), "nhc_channel_new");
    nhc_join_closure jc = {joins, on_join, NULL};
    check(nhc_channel_on_join(ch, jc), "nhc_channel_on_join");
    check(nhc_channel_join(ch, 0), "nhc_channel_join");
    return ch;
}

static long arg_long(int argc, char **argv, const char *name, long fallback) {
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') return atol(argv[i] + len + 1);
    return fallback;
}

/* --- connect + TLS + join -------------------------------------------- */

static void bench_latency(const bl_server *s, long n) {
    double *ms = calloc((size_t)n, sizeof *ms);
    for (long i = 0; i < n; i++) {
        counter joins;
        counter_init(&joins);
        nhc_socket *sock = open_socket(s, true, delivery_mode);
        nhc_channel *ch = open_channel(sock, "room:c-latency", &joins);
        if (delivery_mode == NHC_DELIVERY_POLLED) polled_socket = sock;
        double t0 = bl_now();
        check(nhc_socket_connect(sock), "nhc_socket_connect");
        counter_wait(&joins, 1, 30, "connect + join");
        ms[i] = (bl_now() - t0) * 1e3;
        polled_socket = NULL;
        nhc_channel_free(ch);
        nhc_socket_free(sock);
    }
    printf("\"connect_join\":{\"n\":%ld,\"median_ms\":%.3f},", n, bl_quantile(ms, (size_t)n, 0.5));
    free(ms);
}

/* --- push/reply -------------------------------------------------------- */

static void on_reply_count(const nhc_reply *r, void *context) {
    counter_add(context, r->status == NHC_REPLY_OK, r->status != NHC_REPLY_OK);
}

static void bench_sequential(nhc_channel *ch, long n) {
    double *us = calloc((size_t)n, sizeof *us);
    counter replies;
    counter_init(&replies);
    double start = bl_now();
    for (long i = 0; i < n; i++) {
        nhc_reply_closure rc = {&replies, on_reply_count, NULL};
        double t0 = bl_now();
        check(nhc_channel_push(ch, "ping", PAYLOAD, sizeof PAYLOAD - 1, 0, rc), "push");
        counter_wait(&replies, i + 1, 30, "sequential push");
        us[i] = (bl_now() - t0) * 1e6;
    }
    double elapsed = bl_now() - start;
    double median = bl_quantile(us, (size_t)n, 0.5), p99 = bl_quantile(us, (size_t)n, 0.99);
    printf("\"sequential\":{\"n\":%ld,\"median_us\":%.1f,\"p99_us\":%.1f,\"per_s\":%.0f},", n,
           median, p99, (double)n / elapsed);
    free(us);
}

/* The reply callback sends the next push, so `window` stay outstanding. */
typedef struct pipeline {
    nhc_channel *ch;
    atomic_long sent;
    long total;
    counter done;
} pipeline;

static void on_pipeline_reply(const nhc_reply *r, void *context);

static void pipeline_send(pipeline *p) {
    if (atomic_fetch_add(&p->sent, 1) >= p->total) return;
    nhc_reply_closure rc = {p, on_pipeline_reply, NULL};
    nhc_result res = nhc_channel_push(p->ch, "ping", PAYLOAD, sizeof PAYLOAD - 1, 0, rc);
    if (res != NHC_OK) counter_add(&p->done, 0, 1);
}

/* Sends the next push before counting this reply: once the count reaches
 * the total, the waiter returns and `p` (on its stack) is gone. */
static void on_pipeline_reply(const nhc_reply *r, void *context) {
    pipeline *p = context;
    pipeline_send(p);
    counter_add(&p->done, r->status == NHC_REPLY_OK, r->status != NHC_REPLY_OK);
}

static void bench_pipelined(nhc_channel *ch, long total, long window) {
    pipeline p;
    p.ch = ch;
    atomic_init(&p.sent, 0);
    p.total = total;
    counter_init(&p.done);
    double cpu0 = bl_cpu_seconds(), t0 = bl_now();
    for (long i = 0; i < window; i++) pipeline_send(&p);
    counter_wait(&p.done, total, 120, "pipelined pushes");
    double elapsed = bl_now() - t0, cpu = bl_cpu_seconds() - cpu0;
    printf("\"pipelined\":{\"n\":%ld,\"window\":%ld,\"per_s\":%.0f,\"cpu_s_per_10k\":%.4f},", total,
           window, (double)total / elapsed, cpu * 1e4 / (double)total);
}

/* --- inbound flood ----------------------------------------------------- */

/* Like every client's handler: read the payload's index, check the order,
 * count. The payload is {"i":N,"pad":"..."}. */
static void on_flood_event(const nhc_event *e, void *context) {
    counter *c = context;
    if (e->kind != NHC_EVENT_MESSAGE || strcmp(e->event, "flood") != 0) return;
    const char *i = strstr(e->payload.json, "\"i\":");
    long index = i ? strtol(i + 4, NULL, 10) : -1;
    /* Only this callback writes c->value, so reading it unlocked is safe. */
    counter_add(c, index == c->value, index != c->value);
}

/* With bench_flood's `paced`: the voluntary context switches of each run. */
static double flood_switches[64];

/* `runs` > 1: one warm-up flood, then the median of `runs` floods. `paced`:
 * the measured floods are paced (bl_set_flood_rate), the warm-up is not. */
static void bench_flood(const bl_server *s, nhc_socket *sock, long n, int size, long runs,
                        long paced) {
    counter joins, received;
    counter_init(&joins);
    counter_init(&received);
    nhc_channel *ch = open_channel(sock, "room:c-flood", &joins);
    nhc_event_closure ec = {&received, on_flood_event, NULL};
    check(nhc_channel_on_event(ch, ec), "nhc_channel_on_event");
    counter_wait(&joins, 1, 30, "flood join");
    /* A paced flood always warms up first (at full speed). */
    long total = runs > 1 || paced > 0 ? runs + 1 : 1;
    if (total > (long)(sizeof flood_switches / sizeof *flood_switches)) bl_die("too many runs", NULL);
    double *rate = calloc((size_t)total, sizeof *rate), *cpu = calloc((size_t)total, sizeof *cpu);
    for (long r = 0; r < total; r++) {
        counter_reset(&received);
        bl_set_flood_rate(r > 0 || total == 1 ? paced : 0);
        /* At 100 messages a second a run takes minutes at worst. */
        double limit = paced > 0 ? 300 + 2.0 * (double)n / (double)paced : 300;
        double cpu0 = bl_cpu_seconds(), t0 = bl_now();
        long sw0 = bl_voluntary_switches();
        bl_flood_async(s, "room:c-flood", "flood", n, size);
        counter_wait(&received, n, limit, "flood");
        double elapsed = bl_now() - t0;
        cpu[r] = (bl_cpu_seconds() - cpu0) * 1e4 / (double)n;
        flood_switches[r] = (double)(bl_voluntary_switches() - sw0) / (double)n;
        rate[r] = (double)n / elapsed;
        bl_flood_join();
    }
    bl_print_flood(n, size, rate, cpu, total);
    printf(",");
    free(rate);
    free(cpu);
    nhc_channel_free(ch);
}

static int cmd_run(const bl_server *s, int argc, char **argv) {
    long latency = arg_long(argc, argv, "latency", 20), seq = arg_long(argc, argv, "seq", 5000),
         pipe = arg_long(argc, argv, "pipe", 50000), window = arg_long(argc, argv, "window", 100),
         flood = arg_long(argc, argv, "flood", 50000), size = arg_long(argc, argv, "size", 256),
         flood_runs = arg_long(argc, argv, "flood_runs", 1);
    const char *mode = parse_delivery(argc, argv);
    read_buffer_size = arg_long(argc, argv, "read_buffer", 0);
    printf("{\"client\":\"c\",\"version\":\"%s\",\"delivery\":\"%s\",", nhc_version(), mode);
    bench_latency(s, latency);

    counter joins;
    counter_init(&joins);
    nhc_socket *sock = open_socket(s, false, delivery_mode);
    if (delivery_mode == NHC_DELIVERY_POLLED) polled_socket = sock;
    nhc_channel *ch = open_channel(sock, "room:c-push", &joins);
    check(nhc_socket_connect(sock), "nhc_socket_connect");
    counter_wait(&joins, 1, 30, "join");
    bench_sequential(ch, seq);
    bench_pipelined(ch, pipe, window);
    if (flood > 0) bench_flood(s, sock, flood, (int)size, flood_runs, 0);
    polled_socket = NULL;
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    printf("\"transport\":\"ws for pushes and flood, wss+mTLS for connect_join\"}\n");
    nhc_shutdown();
    return 0;
}

/* --- trickle: a paced flood ------------------------------------------------ */

static int cmd_trickle(const bl_server *s, int argc, char **argv) {
    long rate = arg_long(argc, argv, "rate", 0), count = arg_long(argc, argv, "count", 10000),
         runs = arg_long(argc, argv, "runs", 3), size = arg_long(argc, argv, "size", 256),
         tls = arg_long(argc, argv, "tls", 0);
    if (rate < 0 || count <= 0 || runs <= 0) bl_die("trickle needs rate=R >= 0 (count, runs > 0)", NULL);
    const char *mode = parse_delivery(argc, argv);
    read_buffer_size = arg_long(argc, argv, "read_buffer", 0);
    counter joins;
    counter_init(&joins);
    nhc_socket *sock = open_socket(s, tls != 0, delivery_mode);
    if (delivery_mode == NHC_DELIVERY_POLLED) polled_socket = sock;
    check(nhc_socket_connect(sock), "nhc_socket_connect");
    printf("{\"client\":\"c\",\"version\":\"%s\",\"delivery\":\"%s\",\"rate\":%ld,"
           "\"transport\":\"%s\",",
           nhc_version(), mode, rate, tls ? "wss" : "ws");
    bench_flood(s, sock, count, (int)size, runs, rate);
    /* bench_flood warmed up first when it was paced or ran more than once */
    long total = rate > 0 || runs > 1 ? runs + 1 : 1, first = total > 1 ? 1 : 0;
    printf("\"switches_per_msg_runs\":[");
    for (long r = first; r < total; r++) printf("%s%.3f", r > first ? "," : "", flood_switches[r]);
    printf("],\"switches_per_msg\":%.3f}\n",
           bl_quantile(flood_switches + first, (size_t)(total - first), 0.5));
    polled_socket = NULL;
    nhc_socket_free(sock);
    nhc_shutdown();
    return 0;
}

/* --- idle footprint ------------------------------------------------------ */

/* Lets `seconds` pass; a polled socket's events are dispatched meanwhile. */
static void idle_for(nhc_socket *sock, bool polled, int seconds) {
    if (!polled) {
        struct timespec t = {seconds, 0};
        nanosleep(&t, NULL);
        return;
    }
    double until = bl_now() + seconds;
    for (double left; (left = until - bl_now()) > 0;) {
        nhc_result rc = nhc_socket_dispatch(sock, (int32_t)(left * 1000) + 1);
        if (rc != NHC_OK && rc != NHC_ERR_TIMEOUT) check(rc, "nhc_socket_dispatch");
    }
}

static int cmd_idle(const bl_server *s, const char *mode, int settle_s) {
    bool polled = strcmp(mode, "polled") == 0;
    long rss_before = bl_rss_kib();
    counter joins;
    counter_init(&joins);
    nhc_socket *sock = open_socket(s, true, polled ? NHC_DELIVERY_POLLED : NHC_DELIVERY_THREADED);
    nhc_channel *ch = open_channel(sock, "device", &joins);
    check(nhc_socket_connect(sock), "nhc_socket_connect");
    if (polled) {
        double deadline = bl_now() + 30;
        while (joins.value < 1 && bl_now() < deadline) {
            nhc_result rc = nhc_socket_dispatch(sock, 100);
            if (rc != NHC_OK && rc != NHC_ERR_TIMEOUT) check(rc, "nhc_socket_dispatch");
        }
    }
    counter_wait(&joins, 1, 30, "idle join");
    /* Idle means idle: the footprint is read 1 s after the join, and again
     * once the runtime's blocking-pool threads (used for the DNS lookup of
     * "localhost"; they end after 10 s unused) are gone. These sleeps are the
     * measurement intervals, not synchronisation. */
    idle_for(sock, polled, 1);
    long rss = bl_rss_kib(), hwm = bl_hwm_kib(), anon = bl_anon_kib(), file = bl_file_kib();
    int threads = bl_threads();
    if (settle_s > 1) idle_for(sock, polled, settle_s - 1);
    printf("{\"client\":\"c\",\"mode\":\"%s\",\"rss_before_kib\":%ld,\"rss_kib\":%ld,"
           "\"anon_kib\":%ld,\"file_kib\":%ld,\"hwm_kib\":%ld,\"threads\":%d,"
           "\"settled\":{\"after_s\":%d,\"rss_kib\":%ld,\"anon_kib\":%ld,\"threads\":%d}}\n",
           mode, rss_before, rss, anon, file, hwm, threads, settle_s, bl_rss_kib(),
           bl_anon_kib(), bl_threads());
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    nhc_shutdown();
    return 0;
}

/* --- many connections in one process -------------------------------------- */

static int cmd_many(const bl_server *s, long n, bool tls) {
    nhc_socket **socks = calloc((size_t)n, sizeof *socks);
    nhc_channel **chans = calloc((size_t)n, sizeof *chans);
    if (!socks || !chans) bl_die("out of memory", NULL);
    counter joins;
    counter_init(&joins);
    /* Start the runtime first so that its fixed cost is not counted per connection. */
    nhc_socket *warm = open_socket(s, tls, NHC_DELIVERY_THREADED);
    long rss_before = bl_rss_kib();
    double t0 = bl_now();
    for (long i = 0; i < n; i++) {
        nhc_socket_options o;
        check(nhc_socket_options_default(&o), "options");
        o.url = tls ? s->wss_url : s->ws_url;
        /* A generic topic: device topics need an identity of their own.
         * Known gap: over wss every connection presents the same device
         * certificate, and the server (like NervesHub) closes the older
         * socket of an identity that connects again; this workload needs a
         * certificate per connection (POST /issue_device) before it measures
         * wss again. */
        if (tls) {
            o.ca_file = s->ca;
            o.cert_file = s->device_cert;
            o.key_file = s->device_key;
        }
        /* Thousands of handshakes at once queue up: no premature retries. */
        o.connect_timeout_ms = 120000;
        o.default_timeout_ms = 120000;
        check(nhc_socket_new(&o, &socks[i]), "nhc_socket_new");
        chans[i] = open_channel(socks[i], "room:many", &joins);
        check(nhc_socket_connect(socks[i]), "nhc_socket_connect");
    }
    counter_wait(&joins, n, 600, "many joins");
    double elapsed = bl_now() - t0;
    long rss = bl_rss_kib();
    printf("{\"client\":\"c\",\"connections\":%ld,\"tls\":%s,\"join_all_s\":%.3f,"
           "\"rss_before_kib\":%ld,\"rss_kib\":%ld,\"rss_per_conn_kib\":%.2f,\"threads\":%d}\n",
           n, tls ? "true" : "false", elapsed, rss_before, rss,
           (double)(rss - rss_before) / (double)n, bl_threads());
    fflush(stdout);
    for (long i = 0; i < n; i++) {
        nhc_channel_free(chans[i]);
        nhc_socket_free(socks[i]);
    }
    nhc_socket_free(warm);
    nhc_shutdown();
    free(socks);
    free(chans);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s run|idle|many|trickle SERVER_JSON [...]\n", argv[0]);
        return 2;
    }
    bl_server s;
    bl_server_load(&s, argv[2]);
    if (strcmp(argv[1], "run") == 0) return cmd_run(&s, argc - 3, argv + 3);
    if (strcmp(argv[1], "trickle") == 0) return cmd_trickle(&s, argc - 3, argv + 3);
    if (strcmp(argv[1], "idle") == 0 && argc >= 4)
        return cmd_idle(&s, argv[3], argc >= 5 ? atoi(argv[4]) : 15);
    if (strcmp(argv[1], "many") == 0 && argc >= 5)
        return cmd_many(&s, atol(argv[3]), strcmp(argv[4], "wss") == 0);
    fprintf(stderr, "usage: %s run|idle|many|trickle SERVER_JSON [...]\n", argv[0]);
    return 2;
}
