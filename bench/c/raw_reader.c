/*
 * The baseline of bench/run.sh: a websocket client that frames and counts
 * but parses no JSON, on one blocking TCP socket (plain ws, like the other
 * clients' push and flood workloads). Its CPU per inbound message is the
 * floor a Phoenix client is compared with; its pipelined rate, which sends
 * each batch of pushes in one write, approximates the dev server's limit.
 *
 *   raw_reader SERVER_JSON [seq=5000] [pipe=50000] [window=100] [flood=50000] [size=256]
 *              [flood_runs=1] [rate=0] [tls=0]
 *
 * flood_runs > 1: one warm-up flood, then the median of that many.
 * rate=R > 0: the measured floods are paced (R messages a second, each sent
 * alone: the trickle benchmark) after a warm-up at full speed, also with
 * flood_runs=1; seq=0 and pipe=0 skip
 * those workloads.
 * tls=1: over the server's wss URL with mutual TLS (OpenSSL, the CA and the
 * device certificate of the ready line), for the flood over wss; TLS costs
 * the same records and decryption a TLS client of any kind must pay, so
 * the floor stays a floor.
 */
#define _POSIX_C_SOURCE 200809L
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchlib.h"

static int fd = -1;
static SSL *ssl; /* non-NULL over wss */
static unsigned char in[1 << 16];
static size_t in_len, in_pos;
static unsigned long long next_ref = 1;

static void send_all(const unsigned char *buf, size_t len) {
    while (len) {
        ssize_t w = ssl ? SSL_write(ssl, buf, (int)len) : send(fd, buf, len, MSG_NOSIGNAL);
        if (w <= 0) bl_die("websocket write failed", NULL);
        buf += w;
        len -= (size_t)w;
    }
}

/* Appends a masked text frame (mask key 0: the bytes go out unchanged). */
static size_t frame(unsigned char *out, const char *text, size_t len) {
    size_t h = 0;
    out[h++] = 0x81;
    if (len < 126) {
        out[h++] = (unsigned char)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    }
    memset(out + h, 0, 4);
    h += 4;
    memcpy(out + h, text, len);
    return h + len;
}

static size_t push_frame(unsigned char *out, const char *topic, const char *event) {
    char text[256];
    int n = snprintf(text, sizeof text, "[\"1\",\"%llu\",\"%s\",\"%s\",{\"value\":42}]", next_ref++,
                     topic, event);
    return frame(out, text, (size_t)n);
}

static void fill(void) {
    if (in_pos < in_len) memmove(in, in + in_pos, in_len - in_pos);
    in_len -= in_pos;
    in_pos = 0;
    ssize_t r = ssl ? SSL_read(ssl, in + in_len, (int)(sizeof in - in_len))
                    : recv(fd, in + in_len, sizeof in - in_len, 0);
    if (r <= 0) bl_die("websocket read failed (connection closed?)", NULL);
    in_len += (size_t)r;
}

/* Skips over the next complete data frame in the buffer; false if none is
 * complete yet. Control frames are skipped too but not counted. */
static int next_frame(int *counted) {
    size_t avail = in_len - in_pos;
    const unsigned char *p = in + in_pos;
    if (avail < 2) return 0;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (avail < 4) return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (avail < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        h = 10;
    }
    if (len > sizeof in - 16) bl_die("frame larger than the read buffer", NULL);
    if (avail < h + len) return 0;
    in_pos += h + (size_t)len;
    *counted = (p[0] & 0x0f) < 8;
    return 1;
}

/* Blocks until `n` data frames were read. */
static void read_frames(long n) {
    long got = 0;
    while (got < n) {
        int counted;
        while (got < n && next_frame(&counted)) got += counted;
        if (got < n) fill();
    }
}

/* Verifies the server against the ready line's CA and its host name, and
 * presents the device certificate (the dev server's wss asks for one). */
static void start_tls(const bl_server *s, const char *host) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) bl_die("SSL_CTX_new", NULL);
    if (SSL_CTX_load_verify_locations(ctx, s->ca, NULL) != 1) bl_die("cannot load the CA", s->ca);
    if (SSL_CTX_use_certificate_file(ctx, s->device_cert, SSL_FILETYPE_PEM) != 1)
        bl_die("cannot load the device certificate", s->device_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, s->device_key, SSL_FILETYPE_PEM) != 1)
        bl_die("cannot load the device key", s->device_key);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1 ||
        SSL_set1_host(ssl, host) != 1)
        bl_die("SSL setup", host);
    /* The connection keeps its own reference to the context. */
    SSL_CTX_free(ctx);
    if (SSL_connect(ssl) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        bl_die("TLS handshake", err);
    }
}

static void open_ws(const bl_server *s, int tls) {
    char host[256], path[256] = "/socket/websocket";
    int port;
    const char *url = tls ? s->wss_url : s->ws_url;
    if (sscanf(url, tls ? "wss://%255[^:]:%d%255s" : "ws://%255[^:]:%d%255s", host, &port, path) < 2)
        bl_die("cannot parse the server URL", url);
    char *q = strchr(path, '?');
    if (q) *q = '\0';
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res) bl_die("resolve", host);
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) bl_die("connect", url);
    freeaddrinfo(res);
    if (tls) start_tls(s, host);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s?vsn=2.0.0 HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
    send_all((const unsigned char *)req, (size_t)n);
    for (;;) {
        fill();
        in[in_len < sizeof in ? in_len : sizeof in - 1] = '\0';
        char *end = strstr((char *)in, "\r\n\r\n");
        if (!end) continue;
        if (strncmp((char *)in, "HTTP/1.1 101", 12) != 0) bl_die("upgrade refused", (char *)in);
        in_pos = (size_t)(end + 4 - (char *)in);
        break;
    }
}

static void join(const char *topic) {
    char text[256];
    int n = snprintf(text, sizeof text, "[\"1\",\"%llu\",\"%s\",\"phx_join\",{}]", next_ref++, topic);
    unsigned char out[300];
    send_all(out, frame(out, text, (size_t)n));
    read_frames(1);
}

static long arg_long(int argc, char **argv, const char *name, long fallback) {
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') return atol(argv[i] + len + 1);
    return fallback;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SERVER_JSON [seq=N] [pipe=N] [window=N] [flood=N] [size=N]\n",
                argv[0]);
        return 2;
    }
    bl_server s;
    bl_server_load(&s, argv[1]);
    long seq = arg_long(argc, argv, "seq", 5000), pipe = arg_long(argc, argv, "pipe", 50000),
         window = arg_long(argc, argv, "window", 100), flood = arg_long(argc, argv, "flood", 50000),
         size = arg_long(argc, argv, "size", 256), runs = arg_long(argc, argv, "flood_runs", 1),
         paced = arg_long(argc, argv, "rate", 0), tls = arg_long(argc, argv, "tls", 0);
    open_ws(&s, tls != 0);
    const char *topic = "room:raw";
    join(topic);
    printf("{\"client\":\"raw\",\"transport\":\"%s\",", tls ? "wss" : "ws");

    unsigned char out[300];
    double elapsed, cpu0, t0;
    if (seq > 0) {
        double *us = calloc((size_t)seq, sizeof *us);
        double start = bl_now();
        for (long i = 0; i < seq; i++) {
            double t1 = bl_now();
            send_all(out, push_frame(out, topic, "ping"));
            read_frames(1);
            us[i] = (bl_now() - t1) * 1e6;
        }
        elapsed = bl_now() - start;
        double median = bl_quantile(us, (size_t)seq, 0.5), p99 = bl_quantile(us, (size_t)seq, 0.99);
        printf("\"sequential\":{\"n\":%ld,\"median_us\":%.1f,\"p99_us\":%.1f,\"per_s\":%.0f},",
               seq, median, p99, (double)seq / elapsed);
        free(us);
    }

    /* Pipelined: every batch of replies read is answered by one write of
     * as many new pushes, keeping `window` outstanding. */
    if (pipe > 0) {
        unsigned char *batch = malloc((size_t)window * 128);
        if (!batch) bl_die("out of memory", NULL);
        long sent = 0, done = 0;
        cpu0 = bl_cpu_seconds();
        t0 = bl_now();
        size_t blen = 0;
        for (; sent < window && sent < pipe; sent++) blen += push_frame(batch + blen, topic, "ping");
        send_all(batch, blen);
        while (done < pipe) {
            fill();
            int counted;
            long replies = 0;
            while (next_frame(&counted)) replies += counted;
            done += replies;
            blen = 0;
            for (long i = 0; i < replies && sent < pipe; i++, sent++)
                blen += push_frame(batch + blen, topic, "ping");
            if (blen) send_all(batch, blen);
        }
        elapsed = bl_now() - t0;
        double cpu = bl_cpu_seconds() - cpu0;
        printf("\"pipelined\":{\"n\":%ld,\"window\":%ld,\"per_s\":%.0f,\"cpu_s_per_10k\":%.4f},",
               pipe, window, (double)pipe / elapsed, cpu * 1e4 / (double)pipe);
        free(batch);
    }

    if (flood <= 0) {
        printf("\"flood\":null}\n");
        return 0;
    }
    long total = runs > 1 || paced > 0 ? runs + 1 : 1; /* paced: always a warm-up */
    double *rates = calloc((size_t)total, sizeof *rates), *cpus = calloc((size_t)total, sizeof *cpus),
           *switches = calloc((size_t)total, sizeof *switches);
    for (long r = 0; r < total; r++) {
        bl_set_flood_rate(r > 0 || total == 1 ? paced : 0);
        cpu0 = bl_cpu_seconds();
        t0 = bl_now();
        long sw0 = bl_voluntary_switches();
        bl_flood_async(&s, topic, "flood", flood, (int)size);
        read_frames(flood);
        elapsed = bl_now() - t0;
        cpus[r] = (bl_cpu_seconds() - cpu0) * 1e4 / (double)flood;
        switches[r] = (double)(bl_voluntary_switches() - sw0) / (double)flood;
        rates[r] = (double)flood / elapsed;
        bl_flood_join();
    }
    bl_print_flood(flood, size, rates, cpus, total);
    if (paced > 0) {
        long first = total > 1 ? 1 : 0;
        printf(",\"rate\":%ld,\"switches_per_msg_runs\":[", paced);
        for (long r = first; r < total; r++) printf("%s%.3f", r > first ? "," : "", switches[r]);
        printf("],\"switches_per_msg\":%.3f",
               bl_quantile(switches + first, (size_t)(total - first), 0.5));
    }
    printf("}\n");
    free(switches);
    free(rates);
    free(cpus);
    close(fd);
    return 0;
}
