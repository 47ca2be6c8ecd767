#define _POSIX_C_SOURCE 200809L
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void tl_fail(const char *file, int line, const char *what, const char *detail) {
    fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, what, detail ? ": " : "",
            detail ? detail : "");
    fprintf(stderr, "  last error message: \"%s\"\n", nhc_last_error_message());
    exit(1);
}

void tl_fail_rc(const char *file, int line, const char *what, nhc_result got, nhc_result want) {
    char detail[512];
    snprintf(detail, sizeof detail, "got %d (%s), want %d (%s)", (int)got, nhc_result_str(got),
             (int)want, nhc_result_str(want));
    tl_fail(file, line, what, detail);
}

int tl_ms(int ms) {
    const char *scale = getenv("NHC_TEST_TIMEOUT_SCALE");
    int k = scale ? atoi(scale) : 1;
    return ms * (k > 0 ? k : 1);
}

static struct timespec deadline_after(int ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec += 1;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* --- recorder ----------------------------------------------------------- */

void tl_rec_init(tl_rec *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
}

void tl_rec_destroy(tl_rec *r) {
    for (size_t i = 0; i < r->len; i++) free(r->lines[i]);
    free(r->lines);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
}

void tl_rec_add(tl_rec *r, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (getenv("NHC_TEST_VERBOSE")) fprintf(stderr, "  [rec] %s\n", buf);
    pthread_mutex_lock(&r->lock);
    if (r->len == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->lines = realloc(r->lines, r->cap * sizeof *r->lines);
        if (!r->lines) abort();
    }
    r->lines[r->len++] = strdup(buf);
    r->last_thread = pthread_self();
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static int count_locked(tl_rec *r, const char *needle) {
    int n = 0;
    for (size_t i = 0; i < r->len; i++)
        if (strstr(r->lines[i], needle)) n++;
    return n;
}

int tl_rec_count2(tl_rec *r, const char *needle, const char *also) {
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->len; i++)
        if (strstr(r->lines[i], needle) && (!also || strstr(r->lines[i], also))) n++;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int tl_rec_count(tl_rec *r, const char *needle) {
    pthread_mutex_lock(&r->lock);
    int n = count_locked(r, needle);
    pthread_mutex_unlock(&r->lock);
    return n;
}

int tl_rec_find(tl_rec *r, const char *needle, int from) {
    int found = -1;
    pthread_mutex_lock(&r->lock);
    for (size_t i = (size_t)(from < 0 ? 0 : from); i < r->len; i++) {
        if (strstr(r->lines[i], needle)) {
            found = (int)i;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

void tl_rec_print(tl_rec *r) {
    pthread_mutex_lock(&r->lock);
    fprintf(stderr, "  recorded (%zu lines, %d drops):\n", r->len, r->drops);
    for (size_t i = 0; i < r->len; i++) fprintf(stderr, "    %s\n", r->lines[i]);
    pthread_mutex_unlock(&r->lock);
}

bool tl_rec_wait(tl_rec *r, const char *needle, int count, int timeout_ms) {
    struct timespec until = deadline_after(tl_ms(timeout_ms));
    bool ok = true;
    pthread_mutex_lock(&r->lock);
    while (count_locked(r, needle) < count) {
        if (pthread_cond_timedwait(&r->changed, &r->lock, &until) == ETIMEDOUT) {
            ok = count_locked(r, needle) >= count;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok) {
        fprintf(stderr, "timed out waiting for %d x \"%s\"\n", count, needle);
        tl_rec_print(r);
    }
    return ok;
}

bool tl_rec_absent(tl_rec *r, const char *needle, int ms) {
    struct timespec until = deadline_after(ms);
    pthread_mutex_lock(&r->lock);
    while (count_locked(r, needle) == 0)
        if (pthread_cond_timedwait(&r->changed, &r->lock, &until) == ETIMEDOUT) break;
    bool absent = count_locked(r, needle) == 0;
    pthread_mutex_unlock(&r->lock);
    return absent;
}

bool tl_rec_wait_drops(tl_rec *r, int drops, int timeout_ms) {
    struct timespec until = deadline_after(tl_ms(timeout_ms));
    bool ok = true;
    pthread_mutex_lock(&r->lock);
    while (r->drops < drops) {
        if (pthread_cond_timedwait(&r->changed, &r->lock, &until) == ETIMEDOUT) {
            ok = r->drops >= drops;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok) {
        fprintf(stderr, "timed out waiting for %d drops\n", drops);
        tl_rec_print(r);
    }
    return ok;
}

int tl_rec_drops(tl_rec *r) {
    pthread_mutex_lock(&r->lock);
    int n = r->drops;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void rec_drop(void *context) {
    tl_rec *r = context;
    pthread_mutex_lock(&r->lock);
    r->drops++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static void on_state(const nhc_state_event *e, void *context) {
    tl_rec_add(context, "state %s err=%d reconnect=%lld attempt=%u reason=%s",
               nhc_state_str((int)e->state), (int)e->error, (long long)e->reconnect_in_ms,
               (unsigned)e->attempt, e->reason);
}

static const char *join_name(nhc_join_status s) {
    switch (s) {
    case NHC_JOIN_OK: return "OK";
    case NHC_JOIN_REFUSED: return "REFUSED";
    case NHC_JOIN_TIMEOUT: return "TIMEOUT";
    case NHC_JOIN_CLOSED: return "CLOSED";
    }
    return "?";
}

static void on_join(const nhc_join_event *e, void *context) {
    /* The header promises NUL-terminated JSON and never-NULL strings. */
    if (!e->topic || !e->reason || !e->response.json || e->response.json[e->response.json_len])
        tl_fail(__FILE__, __LINE__, "join event strings", NULL);
    tl_rec_add(context, "join %s %s %s rejoin=%lld reason=%s", join_name(e->status), e->topic,
               e->response.json, (long long)e->rejoin_in_ms, e->reason);
}

static void on_event(const nhc_event *e, void *context) {
    if (!e->topic || !e->event || !e->reason || !e->payload.json || !e->payload.binary)
        tl_fail(__FILE__, __LINE__, "event strings", NULL);
    switch (e->kind) {
    case NHC_EVENT_MESSAGE:
        if (e->payload.is_binary)
            tl_rec_add(context, "event BINARY %s %s len=%zu", e->topic, e->event,
                       e->payload.binary_len);
        else
            tl_rec_add(context, "event MESSAGE %s %s %.*s", e->topic, e->event,
                       (int)e->payload.json_len, e->payload.json);
        break;
    case NHC_EVENT_CHANNEL_ERROR:
        tl_rec_add(context, "event CHANNEL_ERROR %s %s", e->topic, e->reason);
        break;
    case NHC_EVENT_CHANNEL_CLOSED:
        tl_rec_add(context, "event CHANNEL_CLOSED %s %s", e->topic, e->reason);
        break;
    case NHC_EVENT_CAST_FAILED:
        tl_rec_add(context, "event CAST_FAILED %s id=%llu err=%d %s", e->topic,
                   (unsigned long long)e->push_id, (int)e->error, e->reason);
        break;
    }
}

static const char *reply_name(nhc_reply_status s) {
    switch (s) {
    case NHC_REPLY_OK: return "OK";
    case NHC_REPLY_ERROR: return "ERROR";
    case NHC_REPLY_TIMEOUT: return "TIMEOUT";
    case NHC_REPLY_NOT_SENT: return "NOT_SENT";
    }
    return "?";
}

static void on_reply(const nhc_reply *e, void *context) {
    if (!e->topic || !e->status_text || !e->reason || !e->response.json)
        tl_fail(__FILE__, __LINE__, "reply strings", NULL);
    if (e->response.is_binary)
        tl_rec_add(context, "reply %s id=%llu %s %s binary=%zu err=%d", reply_name(e->status),
                   (unsigned long long)e->push_id, e->topic, e->status_text,
                   e->response.binary_len, (int)e->error);
    else
        tl_rec_add(context, "reply %s id=%llu %s %s %s err=%d reason=%s", reply_name(e->status),
                   (unsigned long long)e->push_id, e->topic, e->status_text, e->response.json,
                   (int)e->error, e->reason);
}

nhc_state_closure tl_state_closure(tl_rec *r) {
    nhc_state_closure c = {r, on_state, rec_drop};
    return c;
}

nhc_join_closure tl_join_closure(tl_rec *r) {
    nhc_join_closure c = {r, on_join, rec_drop};
    return c;
}

nhc_event_closure tl_event_closure(tl_rec *r) {
    nhc_event_closure c = {r, on_event, rec_drop};
    return c;
}

nhc_reply_closure tl_reply_closure(tl_rec *r) {
    nhc_reply_closure c = {r, on_reply, rec_drop};
    return c;
}

nhc_reply_closure tl_drop_only_reply(tl_rec *r) {
    nhc_reply_closure c = {r, NULL, rec_drop};
    return c;
}

/* --- files and JSON ------------------------------------------------------ */

char *tl_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) tl_fail(__FILE__, __LINE__, "fopen", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

bool tl_json_string(const char *json, const char *key, char *out, size_t cap) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return false;
    p += strlen(pattern);
    while (*p == ' ' || *p == ':') p++;
    if (*p != '"') return false;
    p++;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (*p == '\\' && p[1]) {
            p++;
            out[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
            p++;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return *p == '"';
}

/* --- the dev server ------------------------------------------------------ */

void tl_server_load(tl_server *s) {
    memset(s, 0, sizeof *s);
    const char *path = getenv("NHC_TEST_SERVER_INFO");
    if (!path) tl_fail(__FILE__, __LINE__, "NHC_TEST_SERVER_INFO is not set", NULL);
    char *info = tl_read_file(path, NULL);
    bool ok = tl_json_string(info, "ws_url", s->ws_url, sizeof s->ws_url) &&
              tl_json_string(info, "wss_url", s->wss_url, sizeof s->wss_url) &&
              tl_json_string(info, "device_socket_url", s->device_socket_url,
                             sizeof s->device_socket_url) &&
              tl_json_string(info, "control_url", s->control_url, sizeof s->control_url) &&
              tl_json_string(info, "ca", s->ca, sizeof s->ca) &&
              tl_json_string(info, "device_cert", s->device_cert, sizeof s->device_cert) &&
              tl_json_string(info, "device_key", s->device_key, sizeof s->device_key);
    tl_json_string(info, "pki_dir", s->pki_dir, sizeof s->pki_dir);
    if (!ok) tl_fail(__FILE__, __LINE__, "server info", info);
    free(info);
    /* control_url is http://HOST:PORT[/...] */
    const char *h = strstr(s->control_url, "://");
    h = h ? h + 3 : s->control_url;
    const char *colon = strrchr(h, ':');
    if (!colon) tl_fail(__FILE__, __LINE__, "control_url has no port", s->control_url);
    size_t hl = (size_t)(colon - h);
    if (hl >= sizeof s->host) hl = sizeof s->host - 1;
    memcpy(s->host, h, hl);
    s->host[hl] = '\0';
    s->port = atoi(colon + 1);
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

int tl_http(const tl_server *s, const char *method, const char *path, const char *body, char *out,
            size_t cap) {
    int fd = connect_to(s->host, s->port);
    if (fd < 0) return -1;
    size_t blen = body ? strlen(body) : 0;
    size_t rlen = blen + 512;
    char *req = malloc(rlen);
    int n = snprintf(req, rlen,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, s->host, s->port, blen, body ? body : "");
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(req);
    size_t rcap = 8192, got = 0;
    char *resp = malloc(rcap);
    for (;;) {
        if (got + 1 >= rcap) {
            rcap *= 2;
            resp = realloc(resp, rcap);
        }
        ssize_t r = recv(fd, resp + got, rcap - got - 1, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = -1;
    if (out && cap) {
        const char *b = strstr(resp, "\r\n\r\n");
        b = b ? b + 4 : "";
        snprintf(out, cap, "%s", b);
    }
    free(resp);
    return status;
}

void tl_ctl_post(const tl_server *s, const char *path, const char *body) {
    char out[1024];
    int status = tl_http(s, "POST", path, body, out, sizeof out);
    if (status != 200) {
        fprintf(stderr, "POST %s %s -> %d %s\n", path, body, status, out);
        tl_fail(__FILE__, __LINE__, "control API call", path);
    }
}

int tl_ctl_push(const tl_server *s, const char *topic, const char *event, const char *payload) {
    char body[8192], out[1024];
    snprintf(body, sizeof body, "{\"topic\":\"%s\",\"event\":\"%s\",\"payload\":%s}", topic, event,
             payload);
    if (tl_http(s, "POST", "/push", body, out, sizeof out) != 200) return -1;
    const char *d = strstr(out, "\"delivered\"");
    if (!d) return -1;
    d = strchr(d, ':');
    return d ? atoi(d + 1) : -1;
}

bool tl_ctl_wait(const tl_server *s, const char *topic, const char *event, int count,
                 int timeout_ms) {
    char out[4096];
    return tl_ctl_wait_body(s, topic, event, count, timeout_ms, out, sizeof out);
}

bool tl_ctl_wait_body(const tl_server *s, const char *topic, const char *event, int count,
                      int timeout_ms, char *out, size_t cap) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"topic\":\"%s\",\"event\":\"%s\",\"count\":%d,\"timeout_ms\":%d}", topic, event,
             count, tl_ms(timeout_ms));
    int status = tl_http(s, "POST", "/wait", body, out, cap);
    if (status != 200) fprintf(stderr, "POST /wait %s -> %d %s\n", body, status, out);
    return status == 200;
}

bool tl_ctl_wait_joined(const tl_server *s, const char *topic, int count, int timeout_ms) {
    char body[1024], out[4096];
    snprintf(body, sizeof body, "{\"topic\":\"%s\",\"count\":%d,\"timeout_ms\":%d}", topic, count,
             tl_ms(timeout_ms));
    int status = tl_http(s, "POST", "/wait_joined", body, out, sizeof out);
    if (status != 200) fprintf(stderr, "POST /wait_joined %s -> %d %s\n", body, status, out);
    return status == 200;
}

void tl_fast_options(nhc_socket_options *o, const tl_server *s) {
    if (nhc_socket_options_default(o) != NHC_OK) tl_fail(__FILE__, __LINE__, "defaults", NULL);
    o->url = s->ws_url;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 200;
    o->rejoin_after_ms = 50;
    o->default_timeout_ms = (uint32_t)tl_ms(5000);
}

void tl_nh1_device_options(nhc_device_options *o, nhc_socket_options *s, const tl_server *srv,
                           const char *identifier) {
    tl_fast_options(s, srv);
    s->url = srv->device_socket_url;
    if (nhc_device_options_default(o) != NHC_OK) tl_fail(__FILE__, __LINE__, "defaults", NULL);
    o->socket = s;
    o->nh1_key = TL_PRODUCT_KEY;
    o->nh1_secret = TL_PRODUCT_SECRET;
    o->nh1_identifier = identifier;
}

/* Copies the JSON value of "key" (an object) out of `json`: brace matching,
 * enough for the dev server's answers (no braces inside its strings). */
bool tl_json_object(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":{", key);
    const char *p = strstr(json, pat);
    if (!p) return false;
    p += strlen(pat) - 1;
    int depth = 0;
    const char *q = p;
    for (; *q; q++) {
        if (*q == '{') depth++;
        if (*q == '}' && --depth == 0) break;
    }
    if (!*q || (size_t)(q - p + 2) > cap) return false;
    memcpy(out, p, (size_t)(q - p + 1));
    out[q - p + 1] = '\0';
    return true;
}

/* Standard base64 (with padding); free with free(). */
char *tl_base64(const unsigned char *in, size_t len) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    CHECK(out != NULL);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

void tl_join_and_echo(tl_rec *rec, nhc_socket *sock, const char *topic) {
    nhc_channel *ch = NULL;
    CHECK_OK(nhc_channel_new(sock, topic, NULL, &ch));
    CHECK_OK(nhc_channel_on_join(ch, tl_join_closure(rec)));
    CHECK_OK(nhc_channel_join(ch, 0));
    char want[128];
    snprintf(want, sizeof want, "join OK %s", topic);
    CHECK(tl_rec_wait(rec, want, 1, 10000));
    /* Counts are relative: a test may pass one recorder to several sockets. */
    int replies = tl_rec_count(rec, "reply OK");
    int echoes = tl_rec_count(rec, "{\"echo\":1}");
    CHECK_OK(nhc_channel_push(ch, "echo", "{\"echo\":1}", 10, 0, tl_reply_closure(rec)));
    CHECK(tl_rec_wait(rec, "reply OK", replies + 1, 10000));
    CHECK(tl_rec_count(rec, "{\"echo\":1}") == echoes + 1);
    nhc_channel_free(ch);
}
