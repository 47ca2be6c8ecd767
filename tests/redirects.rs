//! Redirects of the websocket upgrade, as a load balancer in front of
//! NervesHub sends them (the dev server's `/lb/<n>/...` and `/lb-plain/...`
//! paths): up to two are followed, as nerves_hub_link does; never one from
//! TLS to plain text.

mod common;

use common::*;
use nerves_hub_channel::{Error, ProxyConfig, Socket, SocketConfig};

fn behind_lb(url: &str, hops: u32) -> String {
    url.replacen("/device-socket/", &format!("/lb/{hops}/device-socket/"), 1)
        .replacen(
            "/socket/websocket",
            &format!("/lb/{hops}/socket/websocket"),
            1,
        )
}

async fn first_failure(config: SocketConfig) -> (Socket, Error) {
    let sock = Socket::new(config).expect("valid config");
    sock.connect().expect("connect");
    let reason = next_failure(&sock).await;
    (sock, reason)
}

#[tokio::test]
async fn two_redirects_are_followed_with_the_signature_headers() {
    let server = server().await;
    let mut config = device_socket_config(&server, "lb-2");
    config.url = behind_lb(&config.url, 2);
    let sock = joined_device_channel(config).await;
    // NH1-authenticated on the final hop: the headers went along.
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].identity.as_deref(), Some("lb-2"));
    drop(sock);
}

#[tokio::test]
async fn a_third_redirect_is_not_followed() {
    let server = server().await;
    let mut config = device_socket_config(&server, "lb-3");
    config.url = behind_lb(&config.url, 3);
    let (_sock, reason) = first_failure(config).await;
    assert!(
        matches!(&reason, Error::Connect(m) if m.contains("more than 2 redirects")),
        "{reason:?}"
    );
    assert!(server.control().connections().await.is_empty());
}

#[tokio::test]
async fn never_from_wss_to_ws() {
    let server = server().await;
    let mut config = fast_config(
        &server
            .wss_url()
            .replacen("/socket/", "/lb-plain/socket/", 1),
    );
    config.tls = device_tls(&server);
    let (_sock, reason) = first_failure(config).await;
    assert!(
        matches!(&reason, Error::Connect(m) if m.contains("from TLS to plain text")),
        "{reason:?}"
    );
    // And over wss a redirect is followed like over ws.
    let mut config = fast_config(&behind_lb(&server.wss_url(), 1));
    config.tls = device_tls(&server);
    drop(joined_device_channel(config).await);
}

#[tokio::test]
async fn each_hop_goes_through_the_proxy() {
    let server = server().await;
    let mut config = device_socket_config(&server, "lb-proxy");
    config.url = behind_lb(&config.url, 2);
    config.proxy = ProxyConfig::via(server.proxy().url());
    drop(joined_device_channel(config).await);
    let statuses: Vec<u16> = server.proxy().tunnels().iter().map(|t| t.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
}
