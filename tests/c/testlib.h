/*
 * Helpers shared by the C tests: checks, deadlines, a recorder that
 * closures log into (waited on with a condition variable, never with
 * sleeps), and a tiny HTTP client for the dev server's control API.
 */
#ifndef NHC_TESTLIB_H
#define NHC_TESTLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "nerves_hub_channel.h"

#define CHECK(cond) \
    do { \
        if (!(cond)) tl_fail(__FILE__, __LINE__, #cond, NULL); \
    } while (0)

#define CHECK_RC(expr, want) \
    do { \
        nhc_result rc_ = (expr); \
        if (rc_ != (want)) tl_fail_rc(__FILE__, __LINE__, #expr, rc_, (want)); \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, NHC_OK)

void tl_fail(const char *file, int line, const char *what, const char *detail);
void tl_fail_rc(const char *file, int line, const char *what, nhc_result got, nhc_result want);

/* A timeout in ms, multiplied by $NHC_TEST_TIMEOUT_SCALE (valgrind is slow). */
int tl_ms(int ms);

/* --- recorder ---------------------------------------------------------- */

typedef struct tl_rec {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char **lines;
    size_t len;
    size_t cap;
    int drops;
    pthread_t last_thread;
} tl_rec;

void tl_rec_init(tl_rec *r);
void tl_rec_destroy(tl_rec *r);
void tl_rec_add(tl_rec *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Lines containing `needle` (and `also`, unless it is NULL). */
int tl_rec_count(tl_rec *r, const char *needle);
int tl_rec_count2(tl_rec *r, const char *needle, const char *also);
/* Waits until `count` lines contain `needle`; false (and the log printed) on timeout. */
bool tl_rec_wait(tl_rec *r, const char *needle, int count, int timeout_ms);
/* True if no line contains `needle` for `ms` (a bounded negative check). */
bool tl_rec_absent(tl_rec *r, const char *needle, int ms);
/* Waits until `drops` closures logging into `r` were dropped. */
bool tl_rec_wait_drops(tl_rec *r, int drops, int timeout_ms);
int tl_rec_drops(tl_rec *r);
/* Index of the first line containing `needle` (searching from `from`), or -1. */
int tl_rec_find(tl_rec *r, const char *needle, int from);
void tl_rec_print(tl_rec *r);

/* Closures that log every call as one line and count their drops in `r`:
 *   "state CONNECTED err=0 reconnect=-1 attempt=0 reason=..."
 *   "join OK <topic> <json> rejoin=<ms> reason=..."
 *   "event MESSAGE <topic> <event> <json>" / "event BINARY <topic> <event> len=<n>"
 *   "event CHANNEL_ERROR <topic> <reason>" / "event CHANNEL_CLOSED <topic> <reason>"
 *   "event CAST_FAILED <topic> id=<n> err=<code>"
 *   "reply OK id=<n> <topic> <status> <json>" (status text of the server) */
nhc_state_closure tl_state_closure(tl_rec *r);
nhc_join_closure tl_join_closure(tl_rec *r);
nhc_event_closure tl_event_closure(tl_rec *r);
nhc_reply_closure tl_reply_closure(tl_rec *r);
/* A closure with a NULL call that only counts its drop. */
nhc_reply_closure tl_drop_only_reply(tl_rec *r);


/* --- the dev server ----------------------------------------------------- */

typedef struct tl_server {
    char ws_url[512];
    char wss_url[512];
    char device_socket_url[512];
    char control_url[512];
    char pki_dir[1024];
    char ca[1024];
    char device_cert[1024];
    char device_key[1024];
    char host[256];
    int port;
} tl_server;

/* Reads the info file named by $NHC_TEST_SERVER_INFO (the server's JSON line). */
void tl_server_load(tl_server *s);

/* One HTTP/1.1 request to the control API; returns the status (or -1) and
 * copies the body (NUL-terminated, truncated) into `out` if given. */
int tl_http(const tl_server *s, const char *method, const char *path, const char *body, char *out,
            size_t cap);
/* POST /push; returns the "delivered" count (or -1). */
int tl_ctl_push(const tl_server *s, const char *topic, const char *event, const char *payload_json);
/* POST /wait: true once the server has received `count` `event`s on `topic`. */
bool tl_ctl_wait(const tl_server *s, const char *topic, const char *event, int count,
                 int timeout_ms);
/* The same, copying the matching messages (a JSON array) into `out`. */
bool tl_ctl_wait_body(const tl_server *s, const char *topic, const char *event, int count,
                      int timeout_ms, char *out, size_t cap);
bool tl_ctl_wait_joined(const tl_server *s, const char *topic, int count, int timeout_ms);
void tl_ctl_post(const tl_server *s, const char *path, const char *body);

/* Joins `topic` on a connected socket, pushes "echo" {"echo":1} and waits
 * for its reply, recording into `rec`; exits on failure. */
void tl_join_and_echo(tl_rec *rec, nhc_socket *sock, const char *topic);

/* Options with fast reconnects and rejoins for tests, on the ws URL. */
void tl_fast_options(nhc_socket_options *o, const tl_server *s);

/* The NH1 product key the tests' dev server accepts (devserver.sh passes it). */
#define TL_PRODUCT_KEY "nhp_nhc_tests"
#define TL_PRODUCT_SECRET "nhc-tests-product-secret"

/* Default device options for an authenticated device, as NervesHub requires
 * for `device`, `console` and `extensions`: `s` gets the fast options on the
 * NH1 mount (`/device-socket/websocket`) and `o` signs as `identifier` with
 * the test product key. Give every device of a test its own identifier: the
 * server closes the older socket of a duplicate identity. */
void tl_nh1_device_options(nhc_device_options *o, nhc_socket_options *s, const tl_server *srv,
                           const char *identifier);

/* Reads a whole file (NUL-terminated too); exits on failure. Free with free(). */
char *tl_read_file(const char *path, size_t *len);

/* Finds "key":"string" in a flat JSON object and unescapes it into out. */
bool tl_json_string(const char *json, const char *key, char *out, size_t cap);

/* Copies the JSON object under "key" out of `json` (brace matching: enough
 * for the dev server's answers, which have no braces inside strings). */
bool tl_json_object(const char *json, const char *key, char *out, size_t cap);

/* Standard base64 of `len` bytes, NUL-terminated; free with free(). */
char *tl_base64(const unsigned char *in, size_t len);

#endif
