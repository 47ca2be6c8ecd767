/* Links against the installed library and exercises it without a server:
 * version agreement, a socket, a channel, an event-free dispatch, a clean
 * shutdown. Exit status 0 on success. */
#include <stdio.h>
#include <string.h>

#include <nerves_hub_channel.h>

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
    const char *header = STR(NHC_VERSION_MAJOR) "." STR(NHC_VERSION_MINOR) "." STR(NHC_VERSION_PATCH);
    printf("nerves_hub_channel header %s, library %s\n", header, nhc_version());
    if (strcmp(header, nhc_version()) != 0) return 1;

    nhc_socket_options opts;
    nhc_socket *sock = NULL;
    nhc_channel *ch = NULL;
    if (nhc_socket_options_default(&opts) != NHC_OK) return 2;
    opts.url = "ws://127.0.0.1:9/socket/websocket";
    opts.delivery = NHC_DELIVERY_POLLED;
    if (nhc_socket_new(&opts, &sock) != NHC_OK) {
        fprintf(stderr, "nhc_socket_new: %s\n", nhc_last_error_message());
        return 3;
    }
    if (nhc_channel_new(sock, "room:lobby", "{}", &ch) != NHC_OK) return 4;
    if (nhc_socket_dispatch(sock, 0) != NHC_ERR_TIMEOUT) return 5;
    nhc_channel_free(ch);
    nhc_socket_free(sock);
    nhc_shutdown();
    printf("consumer: ok\n");
    return 0;
}
