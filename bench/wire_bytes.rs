//! Bytes on the wire of a typical device session, measured: every
//! connection goes through the dev server's CONNECT proxy, which counts
//! the bytes it relays each way (TCP payload: TLS records, websocket
//! frames, HTTP heads; not IP/TCP headers).
//!   cargo bench --bench wire_bytes -- [--serializer json|msgpack] [--out FILE]
//! Writes a Markdown section (default bench/wire_bytes.md, which
//! bench/report.py copies into docs/benchmarks.md). Light: about twenty
//! seconds on one core.
//!
//! Both serializers are measured by default, V2 JSON (vsn 2.0.0) and
//! MessagePack (vsn 3.0.0), so the table compares them row by row;
//! `--serializer` measures one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::codec::Serializer;
use nerves_hub_channel::nerves_hub::device::Device;
use nerves_hub_channel::nerves_hub::device_config::DeviceConfig;
use nerves_hub_channel::nerves_hub::device_events::DeviceEvent;
use nerves_hub_channel::nerves_hub::metadata::FirmwareMetadata;
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, SharedSecret};
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::{
    Event, JoinParams, Payload, PemSource, ProxyConfig, Socket, SocketConfig, TlsOptions,
};
use nhc_devserver::{random_image, Config, DevServer, SharedSecretEntry, TunnelRecord};
use serde_json::json;

const KEY: &str = "nhp_bench";
const SECRET: &str = "bench-secret";
/// The heartbeat interval of this library and of nerves_hub_link (30 s).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// Heartbeats observed per measurement (at a short interval; the bytes of
/// one heartbeat do not depend on the interval).
const HEARTBEATS: usize = 20;
const MESSAGES: usize = 1000;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    /// ws, NH1 shared secret.
    Ws,
    /// wss, mutual TLS (TLS 1.3).
    Wss,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws (NH1)",
            Transport::Wss => "wss (mTLS, TLS 1.3)",
        }
    }
}

fn socket_config(server: &DevServer, transport: Transport, vsn: Serializer) -> SocketConfig {
    let mut config = match transport {
        Transport::Ws => {
            let mut c = SocketConfig::new(server.device_socket_url());
            let secret = SharedSecret::new(KEY, SECRET, "bench-device");
            c.header_provider = Some(Arc::new(Nh1Auth::new(secret).expect("secret")));
            c
        }
        Transport::Wss => {
            let mut c = SocketConfig::new(server.wss_url());
            let pki = server.pki();
            c.tls = TlsOptions {
                ca: Some(PemSource::File(pki.ca.clone())),
                client_cert: Some(PemSource::File(pki.device_cert.clone())),
                client_key: Some(PemSource::File(pki.device_key.clone())),
                server_name: None,
                client_signer: None,
            };
            c
        }
    };
    config.proxy = ProxyConfig::via(server.proxy().url());
    config.serializer = vsn;
    config
}

fn device_config(
    server: &DevServer,
    transport: Transport,
    vsn: Serializer,
    hb: Duration,
) -> DeviceConfig {
    let mut socket = socket_config(server, transport, vsn);
    socket.heartbeat_interval = hb;
    let mut config = DeviceConfig::new(socket);
    // A typical nerves_hub_link join: the firmware metadata of a real board.
    config.metadata = FirmwareMetadata::from_pairs([
        ("nerves_fw_uuid", "4a1b1f32-9f3e-5d2c-8b7a-0f1e2d3c4b5a"),
        ("nerves_fw_product", "hello_nerves"),
        ("nerves_fw_version", "1.4.2"),
        ("nerves_fw_architecture", "arm"),
        ("nerves_fw_platform", "rpi4"),
        ("nerves_fw_author", "The Nerves Team"),
        ("nerves_fw_description", "A Nerves device"),
        (
            "nerves_fw_vcs_identifier",
            "8b9a3c1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
        ),
        ("nerves_fw_misc", ""),
    ]);
    config.fwup_version = Some("1.13.2".into());
    config
}

fn websocket(server: &DevServer, port: u16) -> TunnelRecord {
    server
        .proxy()
        .tunnels()
        .into_iter()
        .rev()
        .find(|t| t.target.ends_with(&format!(":{port}")) && t.status == 200)
        .expect("a websocket tunnel")
}

fn port(url: &str) -> u16 {
    url::Url::parse(url)
        .expect("URL")
        .port()
        .expect("explicit port")
}

async fn next(device: &Device, what: &str, pred: impl Fn(&DeviceEvent) -> bool) -> DeviceEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, device.next_event()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            _ => panic!("no {what}"),
        }
    }
}

struct Session {
    /// Bytes up, down: TCP (+ TLS) + upgrade + join, until joined.
    join: (u64, u64),
    /// Bytes up, down per heartbeat exchange.
    heartbeat: (f64, f64),
    /// Bytes up, down on the websocket from the update offer to `completed`.
    update: (u64, u64),
    /// Status and progress messages the device sent in that cycle.
    update_messages: usize,
    /// Bytes down on the download connection beyond the image itself.
    download_overhead: (u64, u64),
}

async fn joined_device(
    server: &DevServer,
    transport: Transport,
    vsn: Serializer,
    heartbeat: Duration,
) -> Device {
    let device = Device::new(device_config(server, transport, vsn, heartbeat)).expect("device");
    device.connect().expect("connect");
    next(
        &device,
        "join",
        |e| matches!(e, DeviceEvent::Socket(Event::Joined { topic, .. }) if topic == "device"),
    )
    .await;
    device
}

/// Polls the proxy's counters until the device's `device` channel saw `count` `event`s.
async fn wait_status(server: &DevServer, status: &str) {
    let mut count = 1;
    loop {
        let seen = server
            .control()
            .wait_for("device", "status_update", count, WAIT)
            .await
            .expect("statuses");
        let found = seen.iter().any(|r| {
            r.message
                .payload
                .to_value()
                .and_then(|v| v["status"].as_str().map(str::to_owned))
                .as_deref()
                == Some(status)
        });
        if found {
            return;
        }
        count = seen.len() + 1;
    }
}

async fn device_session(server: &DevServer, transport: Transport, vsn: Serializer) -> Session {
    let ws_port = match transport {
        Transport::Ws => port(&server.device_socket_url()),
        Transport::Wss => port(&server.wss_url()),
    };
    server.proxy().set_rules(Default::default());
    server.control().reset().await;

    // Heartbeats, at a short interval so that HEARTBEATS of them pass
    // quickly: every change of the upward count is one heartbeat (the
    // device is otherwise idle); its reply follows within milliseconds.
    let device = joined_device(server, transport, vsn, Duration::from_millis(100)).await;
    let mut last = websocket(server, ws_port);
    let start = last.clone();
    let mut beats = 0;
    let deadline = Instant::now() + WAIT;
    while beats < HEARTBEATS {
        assert!(Instant::now() < deadline, "heartbeats stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = websocket(server, ws_port);
        if now.to_server != last.to_server {
            beats += 1;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let end = websocket(server, ws_port);
    assert_eq!(
        end.to_server, last.to_server,
        "a heartbeat started while settling"
    );
    let heartbeat = (
        (end.to_server - start.to_server) as f64 / beats as f64,
        (end.to_client - start.to_client) as f64 / beats as f64,
    );
    device.close();

    // Join, then an update cycle (image excluded) on a device whose
    // heartbeats do not fall into the measurement.
    server.control().reset().await;
    let device = joined_device(server, transport, vsn, Duration::from_secs(3600)).await;
    let joined = websocket(server, ws_port);
    let join = (joined.to_server, joined.to_client);
    let size = 1 << 20;
    let added = server
        .firmware()
        .add(&format!("bench-{ws_port}"), random_image(size, 3))
        .expect("firmware");
    let before = websocket(server, ws_port);
    let tunnels_before = server.proxy().tunnels().len();
    server
        .control()
        .push("device", "update", Payload::json(&added["update"]))
        .await;
    let DeviceEvent::UpdateAvailable(info) = next(&device, "update", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await
    else {
        unreachable!()
    };
    let path = std::env::temp_dir().join(format!("nhc-wire-bytes-{}.fw", std::process::id()));
    device
        .apply_update(&info, UpdateOptions::new(SinkSpec::File(path.clone())))
        .expect("update starts");
    next(&device, "update finished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { ok: true, .. })
    })
    .await;
    let _ = std::fs::remove_file(&path);
    wait_status(server, "completed").await;
    let after = websocket(server, ws_port);
    let messages = server
        .control()
        .received()
        .await
        .iter()
        .filter(|r| {
            r.message.topic == "device"
                && matches!(r.message.event.as_str(), "status_update" | "fwup_progress")
        })
        .count();
    let download = server.proxy().tunnels()[tunnels_before..]
        .iter()
        .filter(|t| !t.target.ends_with(&format!(":{ws_port}")))
        .fold((0, 0), |(up, down), t| {
            (up + t.to_server, down + t.to_client)
        });
    device.close();
    Session {
        join,
        heartbeat,
        update: (
            after.to_server - before.to_server,
            after.to_client - before.to_client,
        ),
        update_messages: messages,
        download_overhead: (download.0, download.1.saturating_sub(size as u64)),
    }
}

/// A 1,000-message exchange on a joined socket: pushes of a small JSON
/// payload, each answered with a reply carrying it back.
async fn exchange(server: &DevServer, transport: Transport, vsn: Serializer) -> (f64, f64) {
    let mut config = socket_config(server, transport, vsn);
    config.url = match transport {
        Transport::Ws => server.ws_url(),
        Transport::Wss => server.wss_url(),
    };
    config.header_provider = None;
    config.heartbeat_interval = Duration::from_secs(3600);
    let ws_port = port(&config.url);
    let sock = Socket::new(config).expect("socket");
    let chan = sock
        .channel("test:bytes", JoinParams::Static(Payload::empty()))
        .expect("channel");
    sock.connect().expect("connect");
    chan.join()
        .expect("join")
        .await
        .expect("alive")
        .expect("joined");
    let before = websocket(server, ws_port);
    let payload = Payload::json(&json!({"sensor": "temperature", "value": 21.5, "seq": 12345}));
    for _ in 0..MESSAGES {
        chan.push("echo", payload.clone())
            .expect("push")
            .await
            .expect("reply");
    }
    let after = websocket(server, ws_port);
    sock.disconnect().expect("disconnect");
    (
        (after.to_server - before.to_server) as f64 / MESSAGES as f64,
        (after.to_client - before.to_client) as f64 / MESSAGES as f64,
    )
}

fn kib(bytes: f64) -> String {
    if bytes >= 10_240.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

fn main() {
    let mut serializers = vec![Serializer::Json, Serializer::MsgPack];
    let mut out = PathBuf::from("bench/wire_bytes.md");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--serializer" => {
                let name = args.next().expect("--serializer json|msgpack");
                serializers = vec![name.parse().expect("--serializer json|msgpack")];
            }
            "--out" => out = PathBuf::from(args.next().expect("--out FILE")),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let text = runtime.block_on(async {
        let server = DevServer::start(Config {
            shared_secrets: vec![SharedSecretEntry::new(KEY, SECRET, None)],
            ..Config::default()
        })
        .await
        .expect("dev server");
        let mut rows = Vec::new();
        for transport in [Transport::Ws, Transport::Wss] {
            for &vsn in &serializers {
                let s = device_session(&server, transport, vsn).await;
                let x = exchange(&server, transport, vsn).await;
                rows.push((transport, vsn, s, x));
            }
        }
        render(&rows)
    });
    std::fs::write(&out, &text).expect("write the report");
    print!("{text}");
}

fn render(rows: &[(Transport, Serializer, Session, (f64, f64))]) -> String {
    let per_hour = 3600.0 / DEFAULT_HEARTBEAT.as_secs_f64();
    let mut t = String::new();
    t.push_str("## Bytes on the wire\n\n");
    t.push_str(&format!(
        "Measured by `cargo bench --bench wire_bytes` on {}, for V2 JSON (vsn 2.0.0) and \
         MessagePack (vsn 3.0.0, [messagepack.md](messagepack.md)): every \
         connection goes through the dev server's CONNECT proxy, which counts the bytes it relays \
         (TCP payload: TLS records, websocket frames, HTTP heads; IP and TCP headers, about 52 bytes \
         per segment and per ACK, come on top). Up: device to server.\n\n",
        today()
    ));
    t.push_str("| | transport | serializer | up | down |\n|---|---|---|---|---|\n");
    for (transport, vsn, s, x) in rows {
        let name = format!("{} | {} {}", transport.name(), vsn.name(), vsn.vsn());
        t.push_str(&format!(
            "| connect + upgrade + join `device` | {name} | {} | {} |\n",
            kib(s.join.0 as f64),
            kib(s.join.1 as f64)
        ));
        t.push_str(&format!(
            "| one heartbeat and its reply | {name} | {} | {} |\n",
            kib(s.heartbeat.0),
            kib(s.heartbeat.1)
        ));
        t.push_str(&format!(
            "| joined, idle, per hour (heartbeat every 30 s) | {name} | {} | {} |\n",
            kib(s.heartbeat.0 * per_hour),
            kib(s.heartbeat.1 * per_hour)
        ));
        t.push_str(&format!(
            "| update cycle on the websocket, image excluded ({} messages up) | {name} | {} | {} |\n",
            s.update_messages,
            kib(s.update.0 as f64),
            kib(s.update.1 as f64)
        ));
        t.push_str(&format!(
            "| firmware download connection beyond the 1 MiB image | {name} | {} | {} |\n",
            kib(s.download_overhead.0 as f64),
            kib(s.download_overhead.1 as f64)
        ));
        t.push_str(&format!(
            "| 1,000-message exchange (push + reply, 58-byte payload), per message | {name} | {} | {} |\n",
            kib(x.0),
            kib(x.1)
        ));
    }
    t
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
