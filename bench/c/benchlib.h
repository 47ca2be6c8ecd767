/*
 * Shared by the C benchmark programs: the dev server's ready line, its
 * control API, clocks, CPU time and the process's memory and threads.
 * Plain POSIX; no dependency on the library, so that the raw websocket
 * reader stays a baseline that links nothing of ours.
 */
#ifndef NHC_BENCHLIB_H
#define NHC_BENCHLIB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bl_server {
    char ws_url[512];
    char wss_url[512];
    char control_url[512];
    char ca[1024];
    char device_cert[1024];
    char device_key[1024];
    char control_host[256];
    int control_port;
} bl_server;

/* Exits with a message naming the failed step. */
void bl_die(const char *what, const char *detail);

/* Reads the server's JSON ready line from `path`. */
void bl_server_load(bl_server *s, const char *path);

/* One POST to the control API; returns the HTTP status (-1 on a network
 * failure) and copies the body into `out` (NUL-terminated, truncated). */
int bl_post(const bl_server *s, const char *path, const char *body, char *out, size_t cap);

/* POST /flood {topic, event, count, size}; exits on failure. */
void bl_flood(const bl_server *s, const char *topic, const char *event, long count, int size);

/* Floods after this are paced: `per_second` messages a second, each sent
 * alone (the dev server's `rate`); 0: as fast as the client reads. */
void bl_set_flood_rate(long per_second);

/* Starts bl_flood on a new thread (the answer may wait for the delivery,
 * which the caller must be free to read); bl_flood_join waits for it. */
void bl_flood_async(const bl_server *s, const char *topic, const char *event, long count, int size);
void bl_flood_join(void);

double bl_now(void);         /* monotonic seconds */
double bl_cpu_seconds(void); /* user + system CPU of this process */
long bl_voluntary_switches(void); /* of every thread of this process (ru_nvcsw) */
long bl_rss_kib(void);       /* VmRSS */
long bl_hwm_kib(void);       /* VmHWM */
long bl_anon_kib(void);      /* RssAnon: heap, stacks, private data */
long bl_file_kib(void);      /* RssFile: mapped code and data, shared libc included */
int bl_threads(void);        /* Threads */

/* Sorts `v` in place and returns the p-quantile (0..1), nearest rank. */
double bl_quantile(double *v, size_t n, double p);

/* Prints `"flood":{...}` for `total` floods of n messages: with more than
 * one, the first was a warm-up and the medians of the others are given,
 * with each run's CPU per 10,000 messages. Sorts `rate` and `cpu`. */
void bl_print_flood(long n, long size, double *rate, double *cpu, long total);

#endif
