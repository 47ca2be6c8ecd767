/*
 * Runs the examples against the dev server: the mTLS device (update,
 * fwup_progress, reboot) and the single-threaded poll() loop.
 *   int_examples DEVICE_BINARY POLL_LOOP_BINARY
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
    int out; /* its stdout */
    int in;  /* its stdin */
    char text[65536];
    size_t len;
} child;

static void spawn(child *c, char *const argv[]) {
    int out[2], in[2];
    CHECK(pipe(out) == 0 && pipe(in) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    CHECK(posix_spawn(&c->pid, argv[0], &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(in[0]);
    c->out = out[0];
    c->in = in[1];
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
            fprintf(stderr, "child did not exit; output so far:\n%s\n", c->text);
            tl_fail(__FILE__, __LINE__, "child exit", NULL);
        }
        ssize_t n = read(c->out, c->text + c->len, sizeof c->text - c->len - 1);
        if (n <= 0) break;
        c->len += (size_t)n;
        c->text[c->len] = '\0';
    }
    close(c->out);
    close(c->in);
    int status = 0;
    CHECK(waitpid(c->pid, &status, 0) == c->pid);
    printf("---- output ----\n%s----\n", c->text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void device_example(char *binary) {
    char *argv[] = {binary, srv.wss_url, srv.ca, srv.device_cert, srv.device_key, NULL};
    child c;
    spawn(&c, argv);
    CHECK(tl_ctl_wait_joined(&srv, "device", 1, 10000));
    CHECK(tl_ctl_push(&srv, "device", "update", "{\"firmware_url\":\"https://fw.example/1.1.0.fw\"}") >= 1);
    char progress[8192];
    CHECK(tl_ctl_wait_body(&srv, "device", "fwup_progress", 5, 10000, progress, sizeof progress));
    CHECK(strstr(progress, "{\"value\":100}") != NULL);
    CHECK(tl_ctl_push(&srv, "device", "reboot", "{}") >= 1);
    CHECK(finish(&c, 10000) == 0);
    CHECK(strstr(c.text, "connected") != NULL);
    CHECK(strstr(c.text, "joined device") != NULL);
    CHECK(strstr(c.text, "update: {\"firmware_url\":\"https://fw.example/1.1.0.fw\"}") != NULL);
    CHECK(strstr(c.text, "reboot requested") != NULL);
}

static void poll_loop_example(char *binary) {
    char *argv[] = {binary, srv.ws_url, "test:poll_example", "100", NULL};
    child c;
    spawn(&c, argv);
    CHECK(tl_ctl_wait_joined(&srv, "test:poll_example", 1, 10000));
    const char *line = "hello \"world\"\n";
    CHECK(write(c.in, line, strlen(line)) == (ssize_t)strlen(line));
    CHECK(tl_ctl_wait(&srv, "test:poll_example", "shout", 1, 10000));
    CHECK(tl_ctl_wait(&srv, "test:poll_example", "ping", 2, 10000));
    CHECK(tl_ctl_push(&srv, "test:poll_example", "stop", "{\"why\":\"test\"}") == 1);
    CHECK(finish(&c, 10000) == 0);
    CHECK(strstr(c.text, "event test:poll_example stop {\"why\":\"test\"}") != NULL);
    CHECK(strstr(c.text, "hello \\\"world\\\"") != NULL); /* the shout's echo reply */
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    signal(SIGPIPE, SIG_IGN); /* our pipes to the children, not the library */
    tl_server_load(&srv);
    device_example(argv[1]);
    poll_loop_example(argv[2]);
    printf("int_examples: ok\n");
    return 0;
}
