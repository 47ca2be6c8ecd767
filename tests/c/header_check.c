/* Compiled (not run) by ctest as C99 and as C++ with -Wall -Wextra
 * -Wpedantic -Werror: the header must stay clean in both languages. It is
 * included twice to check the include guard. */
#include "nerves_hub_channel.h"
#include "nerves_hub_channel.h"

static void on_state(const nhc_state_event *e, void *context) {
    (void)e;
    (void)context;
}

static void on_drop(void *context) { (void)context; }

int main(void) {
    nhc_socket_options opts;
    nhc_socket *sock = NULL;
    nhc_channel *ch = NULL;
    nhc_state_closure sc = {NULL, on_state, on_drop};
    nhc_key_value header = {"x-a", "1"};
    int fd = -1;
    nhc_state state = NHC_STATE_DISCONNECTED;
    struct nhc_event *copy = NULL;
    uint64_t id = 0;
    nhc_result rc = nhc_socket_options_default(&opts);
    opts.url = "ws://localhost:4000/socket/websocket";
    opts.headers = &header;
    opts.headers_len = 1;
    opts.delivery = NHC_DELIVERY_POLLED;
    opts.on_state = sc;
    if (rc == NHC_OK) rc = nhc_socket_new(&opts, &sock);
    if (rc == NHC_OK) rc = nhc_socket_fd(sock, &fd);
    if (rc == NHC_OK) rc = nhc_socket_state(sock, &state);
    if (rc == NHC_OK) rc = nhc_channel_new(sock, "room:lobby", NULL, &ch);
    if (rc == NHC_OK) rc = nhc_channel_cast(ch, "hello", "{}", 2, 0, &id);
    (void)nhc_event_clone(NULL, &copy);
    nhc_event_free(copy);
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    nhc_shutdown();
    return rc == NHC_OK && NHC_VERSION_NUMBER >= 100 && nhc_result_str(rc) != NULL &&
                   nhc_version() != NULL && nhc_last_error_message() != NULL
               ? 0
               : 1;
}
