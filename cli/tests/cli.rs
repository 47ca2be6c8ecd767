//! `nhc` against the in-process dev server: a fleet simulation and a device
//! applying an update.

#[path = "common/nh1_server.rs"]
mod nh1_server;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nerves_hub_channel::Payload;
use nhc_devserver::DevServer;

const KEY: &str = "nhp_cli_product_key";
const SECRET: &str = "cli-test-secret-value";

async fn server() -> DevServer {
    nh1_server::with_product_key(KEY, SECRET).await
}

fn device_url(server: &DevServer) -> String {
    server.device_socket_url()
}

async fn nhc(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_nhc"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_joins_every_device_with_its_own_identity() {
    let server = server().await;
    let secret = format!("{KEY}:{SECRET}");
    let url = device_url(&server);
    let out = nhc(strings(&[
        "simulate",
        "--url",
        &url,
        "--devices",
        "25",
        "--shared-secret",
        &secret,
        "--prefix",
        "sim-",
        "--exit-when-joined",
        "--duration",
        "60",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("joined 25 ") && last.contains("all_joined_after_s"),
        "{stdout}"
    );
    assert!(last.contains("rss_kib "), "{last}");
    let mut identities: Vec<String> = server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.message.topic == "device" && r.message.event == "phx_join")
        .filter_map(|r| r.identity)
        .collect();
    identities.sort();
    identities.dedup();
    assert_eq!(identities.len(), 25, "{identities:?}");
    assert!(identities.iter().all(|i| i.starts_with("sim-")));
}

#[tokio::test(flavor = "multi_thread")]
async fn device_applies_an_update_into_the_firmware_dir() {
    let server = server().await;
    let dir = std::env::temp_dir().join(format!("nhc-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = nhc_devserver::random_image(1_200_000, 5);
    let offer = server.firmware().add("cli.fw", image.clone()).unwrap();
    let secret = format!("{KEY}:{SECRET}");
    let url = device_url(&server);
    let dir_arg = dir.to_string_lossy().into_owned();
    let run = tokio::spawn(nhc(strings(&[
        "device",
        "--url",
        &url,
        "--shared-secret",
        &secret,
        "--identifier",
        "cli-device",
        "--meta",
        "nerves_fw_version=1.0.0",
        "--firmware-dir",
        &dir_arg,
        "--exit-after-update",
    ])));
    server
        .control()
        .wait_joined("device", 1, Duration::from_secs(20))
        .await
        .unwrap();
    let update = Payload::json(&offer["update"]);
    assert_eq!(server.control().push("device", "update", update).await, 1);
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("update: finished ok=true"), "{stdout}");
    let uuid = offer["update"]["firmware_meta"]["uuid"].as_str().unwrap();
    let written = std::fs::read(dir.join(format!("{uuid}.fw"))).unwrap();
    assert!(
        written == image,
        "the applied image differs from the served one"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_exit_with_2_and_say_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args([
            "simulate",
            "--url",
            "ws://127.0.0.1:1/socket/websocket",
            "--devices",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("distinct identities"));
}
