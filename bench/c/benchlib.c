#define _POSIX_C_SOURCE 200809L
#include "benchlib.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void bl_die(const char *what, const char *detail) {
    fprintf(stderr, "bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    /* _exit: this may run on a helper thread while the library's threads
     * are busy; atexit handlers and destructors would race with them. */
    fflush(NULL);
    _exit(1);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) bl_die("cannot open the server info file", path);
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    if (!buf) bl_die("out of memory", NULL);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) bl_die("out of memory", NULL);
        }
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* "key":"value" in a flat JSON object; the values here hold no escapes
 * other than \/ and \\, which are unescaped. */
static bool json_string(const char *json, const char *key, char *out, size_t cap) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return false;
    p += strlen(pattern);
    while (*p == ' ' || *p == ':') p++;
    if (*p++ != '"') return false;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (*p == '\\' && p[1]) p++;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return *p == '"';
}

void bl_server_load(bl_server *s, const char *path) {
    memset(s, 0, sizeof *s);
    char *info = read_file(path);
    if (!json_string(info, "ws_url", s->ws_url, sizeof s->ws_url) ||
        !json_string(info, "wss_url", s->wss_url, sizeof s->wss_url) ||
        !json_string(info, "control_url", s->control_url, sizeof s->control_url) ||
        !json_string(info, "ca", s->ca, sizeof s->ca) ||
        !json_string(info, "device_cert", s->device_cert, sizeof s->device_cert) ||
        !json_string(info, "device_key", s->device_key, sizeof s->device_key))
        bl_die("the server info file lacks a field", info);
    free(info);
    const char *h = strstr(s->control_url, "://");
    h = h ? h + 3 : s->control_url;
    const char *colon = strrchr(h, ':');
    if (!colon) bl_die("control_url has no port", s->control_url);
    size_t hl = (size_t)(colon - h);
    if (hl >= sizeof s->control_host) bl_die("control_url host too long", s->control_url);
    memcpy(s->control_host, h, hl);
    s->control_host[hl] = '\0';
    s->control_port = atoi(colon + 1);
}

static int connect_to(const char *host, int port) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, service, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int bl_post(const bl_server *s, const char *path, const char *body, char *out, size_t cap) {
    int fd = connect_to(s->control_host, s->control_port);
    if (fd < 0) return -1;
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, s->control_host, s->control_port, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req) bl_die("control request too long", path);
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (int)w;
    }
    char resp[8192];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof resp && (r = recv(fd, resp + got, sizeof resp - got - 1, 0)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = -1;
    if (out && cap) {
        const char *b = strstr(resp, "\r\n\r\n");
        snprintf(out, cap, "%s", b ? b + 4 : "");
    }
    return status;
}

static long flood_rate;

void bl_set_flood_rate(long per_second) { flood_rate = per_second; }

void bl_flood(const bl_server *s, const char *topic, const char *event, long count, int size) {
    char body[512], out[1024], rate[48] = "";
    if (flood_rate > 0) snprintf(rate, sizeof rate, ",\"rate\":%ld", flood_rate);
    /* with_join_ref: channel pushes carrying the join's join_ref, which every
     * client accepts (some drop fastlane broadcasts); the same bytes for all. */
    snprintf(body, sizeof body,
             "{\"topic\":\"%s\",\"event\":\"%s\",\"count\":%ld,\"size\":%d,"
             "\"with_join_ref\":true%s}",
             topic, event, count, size, rate);
    int status = bl_post(s, "/flood", body, out, sizeof out);
    if (status != 200) {
        fprintf(stderr, "bench: POST /flood %s -> %d %s\n", body, status, out);
        bl_die("the dev server refused the flood (does it have POST /flood?)", NULL);
    }
}

static struct {
    const bl_server *s;
    char topic[256];
    char event[64];
    long count;
    int size;
    pthread_t thread;
} flood_job;

static void *flood_main(void *arg) {
    (void)arg;
    bl_flood(flood_job.s, flood_job.topic, flood_job.event, flood_job.count, flood_job.size);
    return NULL;
}

void bl_flood_async(const bl_server *s, const char *topic, const char *event, long count, int size) {
    flood_job.s = s;
    snprintf(flood_job.topic, sizeof flood_job.topic, "%s", topic);
    snprintf(flood_job.event, sizeof flood_job.event, "%s", event);
    flood_job.count = count;
    flood_job.size = size;
    if (pthread_create(&flood_job.thread, NULL, flood_main, NULL) != 0)
        bl_die("pthread_create", NULL);
}

void bl_flood_join(void) { pthread_join(flood_job.thread, NULL); }

double bl_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

double bl_cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

long bl_voluntary_switches(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_nvcsw;
}

static long status_field(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t len = strlen(name);
    long value = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            value = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

long bl_rss_kib(void) { return status_field("VmRSS"); }
long bl_hwm_kib(void) { return status_field("VmHWM"); }
long bl_anon_kib(void) { return status_field("RssAnon"); }
long bl_file_kib(void) { return status_field("RssFile"); }
int bl_threads(void) { return (int)status_field("Threads"); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bl_print_flood(long n, long size, double *rate, double *cpu, long total) {
    long first = total > 1 ? 1 : 0, measured = total - first;
    printf("\"flood\":{\"n\":%ld,\"size\":%ld,\"runs\":%ld,\"cpu_runs\":[", n, size, measured);
    for (long r = first; r < total; r++) printf("%s%.4f", r > first ? "," : "", cpu[r]);
    printf("],\"per_s\":%.0f,\"cpu_s_per_10k\":%.4f}", bl_quantile(rate + first, (size_t)measured, 0.5),
           bl_quantile(cpu + first, (size_t)measured, 0.5));
}

double bl_quantile(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)((double)(n - 1) * p + 0.5);
    return v[i];
}
