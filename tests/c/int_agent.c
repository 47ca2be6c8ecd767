/*
 * Runs examples/c/agent.c against the dev server: with mutual TLS it
 * applies an offered update into a file (progress, `completed`, the file's
 * bytes) and "reboots"; with an NH1 shared secret it identifies and
 * reboots when asked.
 *   int_agent AGENT_BINARY
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

extern char **environ;

static tl_server srv;

typedef struct child {
    pid_t pid;
    int out;
    char text[65536];
    size_t len;
} child;

static void spawn(child *c, char *const argv[]) {
    int out[2];
    CHECK(pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    CHECK(posix_spawn(&c->pid, argv[0], &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    c->out = out[0];
    c->len = 0;
    c->text[0] = '\0';
}

/* Reads the child's output until it exits (EOF), within a deadline. */
static int finish(child *c, int timeout_ms) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        long left = tl_ms(timeout_ms) - elapsed;
        struct pollfd p = {c->out, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            kill(c->pid, SIGKILL);
            fprintf(stderr, "agent did not exit; output so far:\n%s\n", c->text);
            tl_fail(__FILE__, __LINE__, "agent exit", NULL);
        }
        ssize_t n = read(c->out, c->text + c->len, sizeof c->text - c->len - 1);
        if (n <= 0) break;
        c->len += (size_t)n;
        c->text[c->len] = '\0';
    }
    close(c->out);
    int status = 0;
    CHECK(waitpid(c->pid, &status, 0) == c->pid);
    printf("---- agent output ----\n%s----\n", c->text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The "update" object of the dev server's POST /firmware answer. */
static void update_of(const char *answer, char *out, size_t cap) {
    const char *p = strstr(answer, "\"update\":{");
    CHECK(p != NULL);
    p += strlen("\"update\":");
    int depth = 0;
    const char *q = p;
    for (; *q; q++) {
        if (*q == '{') depth++;
        if (*q == '}' && --depth == 0) break;
    }
    CHECK(*q && (size_t)(q - p + 2) <= cap);
    memcpy(out, p, (size_t)(q - p + 1));
    out[q - p + 1] = '\0';
}

static void mtls_update(char *binary) {
    tl_ctl_post(&srv, "/reset", "{}");
    char path[256];
    snprintf(path, sizeof path, "/tmp/nhc-int-agent-%d.fw", (int)getpid());
    unlink(path);
    char *argv[] = {binary, srv.wss_url, path, "--ca", srv.ca, "--cert", srv.device_cert,
                    "--key", srv.device_key, "--uuid", "agent-old-uuid", NULL};
    child c;
    spawn(&c, argv);
    CHECK(tl_ctl_wait_joined(&srv, "device", 1, 10000));
    CHECK(tl_ctl_wait(&srv, "device", "firmware_validated", 1, 10000));
    char answer[16384], update[16384];
    CHECK(tl_http(&srv, "POST", "/firmware", "{\"name\":\"c-agent\",\"size\":150000,\"seed\":5}",
                  answer, sizeof answer) == 200);
    update_of(answer, update, sizeof update);
    CHECK(tl_ctl_push(&srv, "device", "update", update) >= 1);
    CHECK(finish(&c, 30000) == 0);
    CHECK(strstr(c.text, "connected") != NULL);
    CHECK(strstr(c.text, "joined device") != NULL);
    CHECK(strstr(c.text, "update available: ") != NULL);
    CHECK(strstr(c.text, "progress: updating 100%") != NULL);
    CHECK(strstr(c.text, "update finished: ok") != NULL);
    char statuses[16384];
    CHECK(tl_ctl_wait_body(&srv, "device", "status_update", 3, 5000, statuses, sizeof statuses));
    CHECK(strstr(statuses, "\"status\":\"completed\"") != NULL);
    size_t len = 0;
    char *bytes = tl_read_file(path, &len);
    CHECK(len == 150000);
    free(bytes);
    unlink(path);
}

static void nh1_reboot(char *binary) {
    tl_ctl_post(&srv, "/reset", "{}");
    tl_ctl_post(&srv, "/shared_secret",
                "{\"key\":\"nhp_cagent\",\"secret\":\"agent-secret-42\"}");
    char *argv[] = {binary, srv.device_socket_url, "/tmp/nhc-int-agent-unused.fw", "--shared-secret",
                    "nhp_cagent:agent-secret-42:agent-serial-9", NULL};
    child c;
    spawn(&c, argv);
    CHECK(tl_ctl_wait_joined(&srv, "device", 1, 10000));
    char conns[4096];
    CHECK(tl_http(&srv, "GET", "/connections", NULL, conns, sizeof conns) == 200);
    CHECK(strstr(conns, "agent-serial-9") != NULL);
    CHECK(tl_ctl_push(&srv, "device", "identify", "{}") == 1);
    CHECK(tl_ctl_push(&srv, "device", "reboot", "{}") == 1);
    CHECK(finish(&c, 10000) == 0);
    CHECK(strstr(c.text, "identify: *blink*") != NULL);
    CHECK(strstr(c.text, "reboot requested") != NULL);
    CHECK(tl_ctl_wait(&srv, "device", "rebooting", 1, 5000));
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    signal(SIGPIPE, SIG_IGN);
    tl_server_load(&srv);
    mtls_update(argv[1]);
    nh1_reboot(argv[1]);
    tl_ctl_post(&srv, "/reset", "{}"); /* the next test counts joins from zero */
    printf("int_agent: ok\n");
    return 0;
}
