//! HTTP CONNECT proxies: the websocket (ws and wss) and firmware downloads
//! through the dev server's scripted proxy and through tinyproxy, and the
//! failures each gets a clear error and a retry for: the proxy refuses,
//! wants credentials, or drops the tunnel in the middle of a download.

mod common;
#[path = "common/tinyproxy_fixture.rs"]
mod tinyproxy_fixture;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use nerves_hub_channel::nerves_hub::update::{
    start_update, DownloadOptions, ImageSink, SinkSpec, Stage, UpdateInfo, UpdateOptions,
    UpdateReporter, UpdateStatus,
};
use nerves_hub_channel::{Error, Event, ProxyConfig, Socket, SocketConfig};
use nhc_devserver::{random_image, ProxyRules};
use serde_json::Value;
use tinyproxy_fixture::tinyproxy;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret:with@odd/chars";
/// `PASSWORD` percent-encoded for a URL's user info.
const PASSWORD_ENCODED: &str = "s3cret%3Awith%40odd%2Fchars";
/// tinyproxy's configuration takes letters and digits only.
const TINY_PASSWORD: &str = "tinyS3cret";

fn with_credentials(proxy_url: &str, password: &str) -> String {
    proxy_url.replacen("http://", &format!("http://{USER}:{password}@"), 1)
}

fn via(mut config: SocketConfig, proxy_url: &str) -> SocketConfig {
    config.proxy = ProxyConfig::via(proxy_url);
    config
}

fn port_of(url: &str) -> String {
    let url = url::Url::parse(url).expect("URL");
    format!(":{}", url.port().expect("port"))
}

#[tokio::test]
async fn ws_and_wss_go_through_the_tunnel() {
    let server = server().await;
    let proxy = server.proxy().url();
    let ws = joined_device_channel(via(device_socket_config(&server, "px-ws"), &proxy)).await;
    let mut wss_config = via(fast_config(&server.wss_url()), &proxy);
    wss_config.tls = device_tls(&server);
    let wss = joined_device_channel(wss_config).await;
    let tunnels = server.proxy().tunnels();
    assert_eq!(tunnels.len(), 2, "{tunnels:?}");
    assert!(tunnels[0]
        .target
        .ends_with(&port_of(&server.device_socket_url())));
    assert!(tunnels[1].target.ends_with(&port_of(&server.wss_url())));
    for t in &tunnels {
        assert_eq!(t.status, 200);
        assert!(!t.credentials_sent);
        assert!(t.to_client > 0 && t.to_server > 0, "{t:?}");
    }
    // The server saw both devices, the wss one by its certificate.
    let identities: Vec<Option<String>> = server
        .control()
        .connections()
        .await
        .into_iter()
        .map(|c| c.identity)
        .collect();
    assert!(
        identities.contains(&Some("nhc-demo-0001".into())),
        "{identities:?}"
    );
    drop((ws, wss));
}

#[tokio::test]
async fn a_refusing_proxy_is_a_proxy_error_retried_with_backoff() {
    let server = server().await;
    server.proxy().set_rules(ProxyRules {
        refuse: Some(403),
        ..ProxyRules::default()
    });
    let sock = Socket::new(via(
        device_socket_config(&server, "px-403"),
        &server.proxy().url(),
    ))
    .unwrap();
    let chan = sock.channel("device", no_params()).unwrap();
    let _join = chan.join().unwrap();
    sock.connect().unwrap();
    for _ in 0..2 {
        match next_failure(&sock).await {
            Error::Proxy {
                status: Some(403),
                message,
            } => assert!(
                message.contains("refused to open a tunnel") && message.contains("HTTP 403"),
                "{message}"
            ),
            other => panic!("expected a proxy 403, got {other:?}"),
        }
    }
    // Attempts count up: the backoff schedule advances.
    wait_for(
        &sock,
        "a third attempt",
        |e| matches!(e, Event::Connecting { attempt } if *attempt >= 3),
    )
    .await;
    // Once the proxy lets it through, the device joins.
    server.proxy().set_rules(ProxyRules::default());
    wait_for(&sock, "the join", is_joined("device")).await;
    assert!(server.proxy().tunnels().iter().any(|t| t.status == 200));
    drop(chan);
}

#[tokio::test]
async fn a_proxy_wanting_credentials_gets_them_from_the_url() {
    let server = server().await;
    let proxy = server.proxy().url();
    server.proxy().set_rules(ProxyRules {
        credentials: Some(format!("{USER}:{PASSWORD}")),
        ..ProxyRules::default()
    });
    // Without credentials: 407, with a message saying where to put them.
    let sock = Socket::new(via(device_socket_config(&server, "px-407"), &proxy)).unwrap();
    sock.connect().unwrap();
    match next_failure(&sock).await {
        Error::Proxy {
            status: Some(407),
            message,
        } => assert!(
            message.contains("requires authentication")
                && message.contains("http://user:password@"),
            "{message}"
        ),
        other => panic!("expected a proxy 407, got {other:?}"),
    }
    sock.disconnect().unwrap();
    // Wrong credentials: 407, told apart.
    let wrong = with_credentials(&proxy, "nope");
    let sock = Socket::new(via(device_socket_config(&server, "px-407b"), &wrong)).unwrap();
    sock.connect().unwrap();
    let err = next_failure(&sock).await;
    assert!(
        err.to_string()
            .contains("refused the configured credentials"),
        "{err}"
    );
    assert!(!err.to_string().contains("nope"), "{err}");
    sock.disconnect().unwrap();
    // The right ones (percent-encoded in the URL): joined.
    let good = with_credentials(&proxy, PASSWORD_ENCODED);
    let sock = joined_device_channel(via(device_socket_config(&server, "px-ok"), &good)).await;
    let last = server.proxy().tunnels().pop().expect("a tunnel");
    assert_eq!((last.status, last.credentials_sent), (200, true));
    drop(sock);
}

#[derive(Default)]
struct MemorySink(Mutex<Vec<u8>>);

impl ImageSink for MemorySink {
    fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
        Ok(())
    }
    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(chunk);
        Ok(())
    }
    fn finish(&self) -> Result<(), String> {
        Ok(())
    }
    fn abort(&self, _reason: &str) {}
}

struct Ignore;
impl UpdateReporter for Ignore {
    fn status(&self, _: UpdateStatus) {}
    fn progress(&self, _: Stage, _: u8) {}
}

async fn download(update: &Value, proxy: ProxyConfig) -> (Result<(), String>, Vec<u8>) {
    let sink = Arc::new(MemorySink::default());
    let options = UpdateOptions {
        sink: SinkSpec::Custom(sink.clone()),
        download: DownloadOptions {
            retry_delay: Duration::from_millis(5),
            idle_timeout: Duration::from_secs(10),
            proxy: Some(proxy),
            ..DownloadOptions::default()
        },
    };
    let info = UpdateInfo::parse(update).expect("a valid update payload");
    let handle = start_update(info, options, Arc::new(Ignore)).expect("update starts");
    let result = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
        .await
        .expect("the update ends in time");
    let bytes = sink.0.lock().unwrap().clone();
    (result, bytes)
}

#[tokio::test]
async fn a_download_resumes_after_the_proxy_drops_the_tunnel() {
    let server = server().await;
    let image = random_image(1 << 20, 21);
    let update = server.firmware().add("px", image.clone()).unwrap()["update"].clone();
    server.proxy().set_rules(ProxyRules {
        cut_after_bytes: Some(200_000),
        cuts: Some(2),
        ..ProxyRules::default()
    });
    let (result, bytes) = download(&update, ProxyConfig::via(server.proxy().url())).await;
    assert_eq!(result, Ok(()));
    assert!(bytes == image, "the image arrived intact");
    let tunnels = server.proxy().tunnels();
    let cut: Vec<bool> = tunnels.iter().map(|t| t.cut).collect();
    assert_eq!(cut, [true, true, false], "{tunnels:?}");
    // Resumed with Range requests, not restarted.
    let ranges: Vec<Option<String>> = server
        .firmware()
        .requests("px")
        .unwrap()
        .into_iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(ranges[1..].iter().all(|r| r.is_some()), "{ranges:?}");
}

#[tokio::test]
async fn a_download_through_a_refusing_proxy_retries_then_gives_up_clearly() {
    let server = server().await;
    let update = server
        .firmware()
        .add("px-refused", random_image(10_000, 5))
        .unwrap()["update"]
        .clone();
    server.proxy().set_rules(ProxyRules {
        credentials: Some(format!("{USER}:{PASSWORD}")),
        ..ProxyRules::default()
    });
    let options = |proxy: ProxyConfig| DownloadOptions {
        retry_delay: Duration::from_millis(5),
        max_disconnects: 2,
        proxy: Some(proxy),
        ..DownloadOptions::default()
    };
    let sink = Arc::new(MemorySink::default());
    let info = UpdateInfo::parse(&update).unwrap();
    let handle = start_update(
        info,
        UpdateOptions {
            sink: SinkSpec::Custom(sink),
            download: options(ProxyConfig::via(server.proxy().url())),
        },
        Arc::new(Ignore),
    )
    .unwrap();
    let reason = handle.outcome().await.unwrap_err();
    assert!(
        reason.contains("gave up after 2 interruptions")
            && reason.contains("requires authentication"),
        "{reason}"
    );
    // One attempt and two retries, each refused by the proxy.
    assert_eq!(server.proxy().tunnels().len(), 3);
    assert!(server.firmware().requests("px-refused").unwrap().is_empty());
    let good = with_credentials(&server.proxy().url(), PASSWORD_ENCODED);
    let (result, _) = download(&update, ProxyConfig::via(good)).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn no_proxy_hosts_connect_directly() {
    let server = server().await;
    let mut config = via(
        device_socket_config(&server, "px-bypass"),
        &server.proxy().url(),
    );
    config.proxy.no_proxy = Some("localhost, 127.0.0.1".into());
    let sock = joined_device_channel(config).await;
    assert!(server.proxy().tunnels().is_empty());
    drop(sock);
}

#[tokio::test]
async fn tinyproxy_carries_the_websocket_and_the_download() {
    let server = server().await;
    let Some(tp) = tinyproxy(Some((USER, TINY_PASSWORD))) else {
        return;
    };
    // No credentials: tinyproxy's 407.
    let sock = Socket::new(via(device_socket_config(&server, "tp-407"), &tp.url())).unwrap();
    sock.connect().unwrap();
    match next_failure(&sock).await {
        Error::Proxy {
            status: Some(407), ..
        } => {}
        other => panic!("expected tinyproxy's 407, got {other:?}"),
    }
    sock.disconnect().unwrap();
    let good = with_credentials(&tp.url(), TINY_PASSWORD);
    let sock = joined_device_channel(via(device_socket_config(&server, "tp-ok"), &good)).await;
    let mut wss_config = via(fast_config(&server.wss_url()), &good);
    wss_config.tls = device_tls(&server);
    let wss = joined_device_channel(wss_config).await;
    let image = random_image(300_000, 8);
    let update = server.firmware().add("tp", image.clone()).unwrap()["update"].clone();
    let (result, bytes) = download(&update, ProxyConfig::via(good)).await;
    assert_eq!(result, Ok(()));
    assert!(bytes == image);
    drop((sock, wss));
}
