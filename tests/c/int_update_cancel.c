/*
 * Cancelling (nhc_device_cancel_update) or freeing (nhc_device_free) a
 * device while its C update sink is inside begin, write or finish. The
 * sink's contract: abort never overlaps begin or finish, never follows a
 * successful finish, and nothing follows abort. The sink blocks in one
 * callback until the test releases it (a condition variable, never a sleep).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"

static tl_server srv;

enum stage { BEGIN, WRITE, FINISH };
static const char *const stage_names[] = {"begin", "write", "finish"};

typedef struct gate_sink {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    enum stage block;    /* the callback that waits until `released` */
    bool entered;        /* it is waiting */
    bool released;
    const char *running; /* "begin" or "finish" while one runs */
    bool finish_ok;      /* finish returned 0 */
    int begins, writes, finishes, aborts, drops;
    int violations;
    char why[256];
} gate_sink;

static void violation(gate_sink *g, const char *what) {
    g->violations++;
    snprintf(g->why, sizeof g->why, "%s", what);
    fprintf(stderr, "sink contract broken: %s\n", what);
}

/* Called with the lock held: waits for the release if `s` is the blocked stage. */
static void maybe_block(gate_sink *g, enum stage s) {
    if (g->block != s) return;
    g->entered = true;
    pthread_cond_broadcast(&g->changed);
    while (!g->released) pthread_cond_wait(&g->changed, &g->lock);
}

static int gate_begin(const char *uuid, int64_t size, void *context) {
    (void)uuid;
    (void)size;
    gate_sink *g = context;
    pthread_mutex_lock(&g->lock);
    if (g->aborts) violation(g, "begin after abort");
    g->begins++;
    g->running = "begin";
    maybe_block(g, BEGIN);
    g->running = NULL;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static int gate_write(const uint8_t *data, size_t len, void *context) {
    (void)data;
    (void)len;
    gate_sink *g = context;
    pthread_mutex_lock(&g->lock);
    if (g->aborts) violation(g, "write after abort");
    if (g->running) violation(g, "write during begin or finish");
    g->writes++;
    if (g->writes == 1) maybe_block(g, WRITE); /* abort may come meanwhile */
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static int gate_finish(void *context) {
    gate_sink *g = context;
    pthread_mutex_lock(&g->lock);
    if (g->aborts) violation(g, "finish after abort");
    g->finishes++;
    g->running = "finish";
    maybe_block(g, FINISH);
    g->running = NULL;
    g->finish_ok = true;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static void gate_abort(const char *reason, void *context) {
    (void)reason;
    gate_sink *g = context;
    pthread_mutex_lock(&g->lock);
    if (g->running) violation(g, g->running[0] == 'b' ? "abort during begin" : "abort during finish");
    if (g->finish_ok) violation(g, "abort after a successful finish");
    g->aborts++;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

static void gate_drop(void *context) {
    gate_sink *g = context;
    pthread_mutex_lock(&g->lock);
    g->drops++;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

/* Waits until *field >= want (or `entered` if field is NULL); false on timeout. */
static bool gate_wait(gate_sink *g, const int *field, int want, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->lock);
    int rc = 0;
    while (rc != ETIMEDOUT && !(field ? *field >= want : g->entered))
        rc = pthread_cond_timedwait(&g->changed, &g->lock, &deadline);
    bool ok = field ? *field >= want : g->entered;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

static void gate_release(gate_sink *g) {
    pthread_mutex_lock(&g->lock);
    g->released = true;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

/* "dev UPDATE_AVAILABLE" and "dev UPDATE_FINISHED ok=<0|1> reason=<r>". */
static void on_event(const nhc_device_event *e, void *context) {
    tl_rec *r = context;
    if (e->kind == NHC_DEVICE_EVENT_UPDATE_AVAILABLE) tl_rec_add(r, "dev UPDATE_AVAILABLE");
    if (e->kind == NHC_DEVICE_EVENT_UPDATE_FINISHED)
        tl_rec_add(r, "dev UPDATE_FINISHED ok=%d reason=%s", (int)e->ok, e->reason);
    if (e->kind == NHC_DEVICE_EVENT_JOINED) tl_rec_add(r, "dev JOINED");
}

/* An image of zeros: its base64 is all 'A' (len is a multiple of 3). */
#define IMAGE_LEN (300 * 1024)

static void push_update(const char *name) {
    size_t b64 = IMAGE_LEN / 3 * 4;
    char *body = malloc(b64 + 128);
    CHECK(body != NULL);
    int n = snprintf(body, 128, "{\"name\":\"%s\",\"base64\":\"", name);
    memset(body + n, 'A', b64);
    strcpy(body + n + b64, "\"}");
    char answer[16384], url[512], checksum[128], update[2048];
    CHECK(tl_http(&srv, "POST", "/firmware", body, answer, sizeof answer) == 200);
    free(body);
    CHECK(tl_json_string(answer, "url", url, sizeof url));
    CHECK(tl_json_string(answer, "checksum", checksum, sizeof checksum));
    snprintf(update, sizeof update,
             "{\"update_available\":true,\"firmware_url\":\"%s\",\"size\":%d,\"checksum\":\"%s\","
             "\"firmware_meta\":{\"uuid\":\"%s-uuid\",\"version\":\"1.0.1\"}}",
             url, IMAGE_LEN, checksum, name);
    CHECK(tl_ctl_push(&srv, "device", "update", update) == 1);
}

static void cancel_or_free_during(enum stage stage, bool free_it) {
    printf("%s during %s\n", free_it ? "free" : "cancel", stage_names[stage]);
    tl_ctl_post(&srv, "/reset", "{}");
    tl_rec rec;
    tl_rec_init(&rec);
    nhc_socket_options s;
    tl_fast_options(&s, &srv);
    s.url = srv.wss_url;
    s.ca_file = srv.ca;
    s.cert_file = srv.device_cert;
    s.key_file = srv.device_key;
    nhc_device_options o;
    CHECK_OK(nhc_device_options_default(&o));
    o.socket = &s;
    nhc_device_event_closure ev = {&rec, on_event, NULL};
    o.on_event = ev;
    nhc_device *dev = NULL;
    CHECK_OK(nhc_device_new(&o, &dev));
    CHECK_OK(nhc_device_connect(dev));
    CHECK(tl_rec_wait(&rec, "dev JOINED", 1, 10000));
    char name[64];
    snprintf(name, sizeof name, "c-cancel-%s-%d", stage_names[stage], (int)free_it);
    push_update(name);
    CHECK(tl_rec_wait(&rec, "dev UPDATE_AVAILABLE", 1, 10000));

    gate_sink *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->changed, NULL);
    g->block = stage;
    nhc_update_options u;
    CHECK_OK(nhc_update_options_default(&u));
    u.idle_timeout_ms = (uint32_t)tl_ms(5000);
    nhc_update_sink sink = {g, gate_begin, gate_write, gate_finish, gate_abort, gate_drop};
    u.sink = sink;
    CHECK_OK(nhc_device_apply_update(dev, &u));
    CHECK(gate_wait(g, NULL, 0, tl_ms(20000)));

    if (free_it) {
        nhc_device_free(dev);
        dev = NULL;
    } else {
        CHECK_OK(nhc_device_cancel_update(dev));
    }
    if (stage == WRITE) {
        /* abort may cancel a blocked write: it comes before the release. */
        CHECK(gate_wait(g, &g->aborts, 1, tl_ms(10000)));
    } else {
        /* A bounded negative check: an abort racing begin/finish would
         * show up here (and be counted as a violation). */
        CHECK(!gate_wait(g, &g->aborts, 1, 300));
    }
    gate_release(g);
    if (!free_it) CHECK(tl_rec_wait(&rec, "dev UPDATE_FINISHED", 1, 20000));
    /* The sink is dropped once the update is over, after its last call. */
    CHECK(gate_wait(g, &g->drops, 1, tl_ms(20000)));

    pthread_mutex_lock(&g->lock);
    if (g->violations) tl_fail(__FILE__, __LINE__, "sink contract", g->why);
    CHECK(g->begins == 1 && g->drops == 1);
    switch (stage) {
    case BEGIN:
        CHECK(g->aborts == 1 && g->writes == 0 && g->finishes == 0);
        break;
    case WRITE:
        CHECK(g->aborts == 1 && g->writes == 1 && g->finishes == 0);
        break;
    case FINISH:
        /* finish succeeded: the update is complete, never aborted. */
        CHECK(g->aborts == 0 && g->finishes == 1 && g->finish_ok);
        break;
    }
    pthread_mutex_unlock(&g->lock);
    if (!free_it) {
        if (stage == FINISH) {
            CHECK(tl_rec_count(&rec, "dev UPDATE_FINISHED ok=1") == 1);
        } else {
            CHECK(tl_rec_count(&rec, "dev UPDATE_FINISHED ok=0 reason=Update cancelled") == 1);
        }
        nhc_device_free(dev);
    }
    pthread_cond_destroy(&g->changed);
    pthread_mutex_destroy(&g->lock);
    free(g);
    tl_rec_destroy(&rec);
}

int main(void) {
    tl_server_load(&srv);
    for (int free_it = 0; free_it <= 1; free_it++) {
        cancel_or_free_during(BEGIN, free_it);
        cancel_or_free_during(WRITE, free_it);
        cancel_or_free_during(FINISH, free_it);
    }
    nhc_shutdown();
    tl_ctl_post(&srv, "/reset", "{}");
    printf("int_update_cancel: ok\n");
    return 0;
}
