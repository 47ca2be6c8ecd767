/*
 * A complete NervesHub device agent in C, on the library's device layer:
 * authenticates with mutual TLS or an NH1 shared secret, joins with its
 * firmware metadata, applies every offered update into a file (with
 * progress), marks the running firmware validated, answers identify, and
 * "reboots" (prints and exits 0) after a finished update or when the
 * server asks. Single-threaded: poll() on the device's descriptor, then
 * nhc_device_dispatch (NHC_DELIVERY_POLLED).
 *
 *   agent URL FIRMWARE_PATH [options]
 *     --ca FILE --cert FILE --key FILE       mutual TLS (URL .../socket/websocket)
 *     --shared-secret KEY:SECRET:IDENTIFIER  NH1 (URL .../device-socket/websocket)
 *     --fw-env FILE                          metadata from `fw_printenv` output
 *     --uuid UUID --version VERSION          metadata of the running firmware
 *   The same from the environment: NHC_CA, NHC_CERT, NHC_KEY, NHC_SHARED_SECRET.
 *
 * Exit status: 0 after a reboot, 1 on a failed update or bad arguments,
 * 2 if interrupted.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nerves_hub_channel.h"

typedef struct agent {
    nhc_device *dev;
    const char *firmware_path;
    int exit_code; /* -1 while running */
    int validated;
} agent;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void say(const char *fmt, const char *a, const char *b) {
    printf(fmt, a, b);
    fflush(stdout);
}

static void apply(agent *a, const nhc_device_event *e) {
    say("update available: %s (version %s)\n", e->uuid, *e->version ? e->version : "?");
    nhc_update_options u;
    nhc_update_options_default(&u);
    u.file_path = a->firmware_path;
    nhc_result rc = nhc_device_apply_update(a->dev, &u);
    if (rc != NHC_OK) say("cannot apply the update: %s (%s)\n", nhc_result_str(rc),
                          nhc_last_error_message());
}

static void on_event(const nhc_device_event *e, void *context) {
    agent *a = context;
    switch (e->kind) {
    case NHC_DEVICE_EVENT_STATE:
        if (e->state == NHC_STATE_CONNECTED) say("connected%s%s\n", "", "");
        if (e->state == NHC_STATE_DISCONNECTED || e->state == NHC_STATE_AUTH_ERROR)
            say("disconnected: %s (%s)\n", e->reason, nhc_result_str(e->error));
        break;
    case NHC_DEVICE_EVENT_JOINED:
        say("joined %s%s\n", e->topic, "");
        if (!a->validated && strcmp(e->topic, "device") == 0) {
            /* We got this far on this firmware: tell the server it is good. */
            a->validated = nhc_device_firmware_validated(a->dev) == NHC_OK;
        }
        break;
    case NHC_DEVICE_EVENT_UPDATE_AVAILABLE: apply(a, e); break;
    case NHC_DEVICE_EVENT_UPDATE_PROGRESS:
        printf("progress: %s %u%%\n",
               e->stage == NHC_UPDATE_STAGE_UPDATING ? "updating" : "downloading", e->percent);
        fflush(stdout);
        break;
    case NHC_DEVICE_EVENT_UPDATE_FINISHED:
        if (e->ok) {
            say("update finished: ok, written to %s; rebooting into it%s\n", a->firmware_path, "");
            a->exit_code = 0;
        } else {
            say("update finished: failed: %s%s\n", e->reason, "");
            a->exit_code = 1;
        }
        break;
    case NHC_DEVICE_EVENT_REBOOT:
        say("reboot requested%s%s\n", "", "");
        a->exit_code = 0;
        break;
    case NHC_DEVICE_EVENT_IDENTIFY: say("identify: *blink*%s%s\n", "", ""); break;
    case NHC_DEVICE_EVENT_OTHER: say("event %s: %s\n", e->event, e->payload.json); break;
    default: break;
    }
}

static const char *arg_or_env(const char *value, const char *env) {
    return value ? value : getenv(env);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL FIRMWARE_PATH [--ca F --cert F --key F | "
                        "--shared-secret KEY:SECRET:IDENTIFIER] [--fw-env F] [--uuid U] "
                        "[--version V]\n", argv[0]);
        return 1;
    }
    const char *ca = NULL, *cert = NULL, *key = NULL, *secret = NULL, *fw_env = NULL;
    const char *uuid = "00000000-0000-0000-0000-000000000000", *version = "0.0.1";
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (strcmp(opt, "--ca") == 0) ca = val;
        else if (strcmp(opt, "--cert") == 0) cert = val;
        else if (strcmp(opt, "--key") == 0) key = val;
        else if (strcmp(opt, "--shared-secret") == 0) secret = val;
        else if (strcmp(opt, "--fw-env") == 0) fw_env = val;
        else if (strcmp(opt, "--uuid") == 0) uuid = val;
        else if (strcmp(opt, "--version") == 0) version = val;
        else {
            fprintf(stderr, "unknown option %s\n", opt);
            return 1;
        }
    }
    ca = arg_or_env(ca, "NHC_CA");
    cert = arg_or_env(cert, "NHC_CERT");
    key = arg_or_env(key, "NHC_KEY");
    secret = arg_or_env(secret, "NHC_SHARED_SECRET");

    agent a = {NULL, argv[2], -1, 0};
    nhc_socket_options s;
    nhc_socket_options_default(&s);
    s.url = argv[1];
    s.ca_file = ca;
    s.cert_file = cert;
    s.key_file = key;
    s.delivery = NHC_DELIVERY_POLLED;

    nhc_device_options o;
    nhc_device_options_default(&o);
    o.socket = &s;
    nhc_device_event_closure cl = {&a, on_event, NULL};
    o.on_event = cl;
    nhc_key_value meta[] = {{"nerves_fw_uuid", uuid},
                            {"nerves_fw_version", version},
                            {"nerves_fw_product", "nhc-c-agent"},
                            {"nerves_fw_platform", "host"},
                            {"nerves_fw_architecture", "generic"}};
    o.metadata = meta;
    o.metadata_len = sizeof meta / sizeof meta[0];
    o.fwup_env_path = fw_env;
    o.fwup_version = "1.13.2";
    o.console_enabled = true;
    /* KEY:SECRET:IDENTIFIER; the secret cannot contain ':'. */
    char nh1[1024];
    if (secret) {
        snprintf(nh1, sizeof nh1, "%s", secret);
        char *c1 = strchr(nh1, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
            fprintf(stderr, "--shared-secret wants KEY:SECRET:IDENTIFIER\n");
            return 1;
        }
        *c1 = *c2 = '\0';
        o.nh1_key = nh1;
        o.nh1_secret = c1 + 1;
        o.nh1_identifier = c2 + 1;
    }

    nhc_result rc = nhc_device_new(&o, &a.dev);
    if (rc != NHC_OK) {
        fprintf(stderr, "cannot create the device: %s\n", nhc_last_error_message());
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int fd = -1;
    if (nhc_device_fd(a.dev, &fd) != NHC_OK || nhc_device_connect(a.dev) != NHC_OK) {
        fprintf(stderr, "cannot start: %s\n", nhc_last_error_message());
        nhc_device_free(a.dev);
        return 1;
    }
    while (a.exit_code < 0 && !interrupted) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 1000);
        if (n < 0 && errno != EINTR) break;
        if (n > 0) {
            rc = nhc_device_dispatch(a.dev, 0);
            if (rc != NHC_OK && rc != NHC_ERR_TIMEOUT) break;
        }
    }
    nhc_device_free(a.dev);
    nhc_shutdown();
    if (a.exit_code < 0) return 2;
    /* A real device would reboot here (or exec the new firmware). */
    return a.exit_code;
}
