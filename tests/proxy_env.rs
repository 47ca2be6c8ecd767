//! The proxy environment variables, in a test binary of their own: the
//! process environment is shared by every test of a binary.

mod common;

use common::*;
use nerves_hub_channel::{Error, Event, ProxyConfig, Socket};

#[tokio::test]
async fn environment_variables_choose_the_proxy_unless_switched_off() {
    let server = server().await;
    let proxy = server.proxy();
    for name in [
        "https_proxy",
        "HTTPS_PROXY",
        "http_proxy",
        "no_proxy",
        "NO_PROXY",
    ] {
        std::env::remove_var(name);
    }
    // http_proxy is the one for ws:// URLs.
    std::env::set_var("http_proxy", proxy.url());
    joined_device_channel(device_socket_config(&server, "env-1")).await;
    assert_eq!(proxy.tunnels().len(), 1);

    // no_proxy lists the host: direct.
    std::env::set_var("no_proxy", "example.com,127.0.0.1");
    joined_device_channel(device_socket_config(&server, "env-2")).await;
    assert_eq!(proxy.tunnels().len(), 1);
    std::env::remove_var("no_proxy");

    // Switched off: direct whatever the environment says.
    let mut direct = device_socket_config(&server, "env-3");
    direct.proxy = ProxyConfig::direct();
    joined_device_channel(direct).await;
    assert_eq!(proxy.tunnels().len(), 1);

    // An explicit proxy wins over the environment (which points nowhere).
    std::env::set_var("http_proxy", "http://127.0.0.1:1");
    let mut explicit = device_socket_config(&server, "env-4");
    explicit.proxy = ProxyConfig::via(proxy.url());
    joined_device_channel(explicit).await;
    assert_eq!(proxy.tunnels().len(), 2);

    // The environment's dead proxy: a proxy error naming the variable.
    let sock = Socket::new(device_socket_config(&server, "env-5")).expect("valid config");
    sock.connect().expect("connect");
    let event = wait_for(&sock, "a failed attempt", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    match event {
        Event::Disconnected {
            reason:
                Error::Proxy {
                    status: None,
                    message,
                },
            ..
        } => assert!(
            message.contains("cannot reach the proxy") && message.contains("http_proxy"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }

    // A proxy the library cannot use is refused when the socket is made.
    std::env::set_var("http_proxy", "socks5://127.0.0.1:1080");
    let err = Socket::new(device_socket_config(&server, "env-6"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("http_proxy"), "{err}");
    std::env::remove_var("http_proxy");
}
