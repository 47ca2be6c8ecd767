//! `nhc device --fwup-device` against the in-process dev server (issue 22):
//! a signed `.fw` applied by the real fwup to the inactive slot of an A/B
//! disk image, the next run reporting it from the image's U-Boot
//! environment; unsigned firmware refused with fwup's message, and without
//! keys refused unless allowed. Fixtures and the fwup rule (fail under
//! CI=true when missing, skip otherwise): tests/common/fwup_fixture.rs.

#[path = "../../tests/common/fwup_fixture.rs"]
mod fwup_fixture;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fwup_fixture::{FwupFixture, ENV_SIZE};
use nerves_hub_channel::nerves_hub::fwup_keys::REFUSED_NO_KEYS;
use nerves_hub_channel::Payload;
use nhc_devserver::{Config, DevServer, SharedSecretEntry};
use serde_json::Value;

const KEY: &str = "nhp_cli_fwup_product_key";
const SECRET: &str = "cli-fwup-test-secret";
const WAIT: Duration = Duration::from_secs(30);

async fn server(fwup_keys: Vec<String>) -> DevServer {
    let server = DevServer::start(Config::default()).await.unwrap();
    server
        .add_shared_secret(SharedSecretEntry::new(KEY, SECRET, None))
        .unwrap();
    server
        .control()
        .set_public_keys(Some(fwup_keys), None)
        .await;
    server
}

/// `nhc device` booted from the fixture's disk, updating it with fwup.
fn nhc_device(server: &DevServer, fx: &FwupFixture, extra: &[&str]) -> Command {
    let url = server.device_socket_url();
    let disk = fx.disk().display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nhc"));
    cmd.args(["device", "--url", &url, "--identifier", "cli-fwup-device"])
        .args(["--shared-secret", &format!("{KEY}:{SECRET}")])
        .args(["--fwup-device", &disk, "--fwup"])
        .arg(&fx.fwup)
        .args([
            "--uboot-env",
            &disk,
            "--uboot-env-size",
            &ENV_SIZE.to_string(),
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `nhc device --exit-after-update`, pushes `update` once it joined,
/// and returns its output and its join payload.
async fn update_with(
    server: &DevServer,
    fx: &FwupFixture,
    update: Value,
    extra: &[&str],
) -> (Output, Value) {
    let mut cmd = nhc_device(server, fx, extra);
    cmd.arg("--exit-after-update");
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let join = joined(server).await;
    assert_eq!(
        server
            .control()
            .push("device", "update", Payload::json(&update))
            .await,
        1
    );
    let out = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    (out, join)
}

/// The device's join payload, once it joined.
async fn joined(server: &DevServer) -> Value {
    let joins = server
        .control()
        .wait_for("device", "phx_join", 1, WAIT)
        .await
        .unwrap();
    server
        .control()
        .wait_joined("device", 1, WAIT)
        .await
        .unwrap();
    joins[0].message.payload.to_value().unwrap()
}

/// Every `status_update` the server received, up to the first with `status`.
async fn statuses_until(server: &DevServer, status: &str) -> Vec<Value> {
    for count in 1.. {
        let all: Vec<Value> = server
            .control()
            .wait_for("device", "status_update", count, WAIT)
            .await
            .unwrap()
            .iter()
            .map(|r| r.message.payload.to_value().unwrap())
            .collect();
        if all.last().is_some_and(|s| s["status"] == status) {
            return all;
        }
    }
    unreachable!()
}

/// Serves a fixture `.fw` as NervesHub does: firmware_meta from its meta.conf.
fn offer(server: &DevServer, fx: &FwupFixture, file: &str) -> Value {
    let fwup = fx.fwup.display().to_string();
    server
        .firmware()
        .add_fw(file, fx.bytes(file), &fwup)
        .unwrap()["update"]
        .clone()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_update_is_applied_by_fwup_and_the_next_run_reports_it() {
    let Some(fx) = FwupFixture::new("cli-signed") else {
        return;
    };
    let server = server(vec![fx.public_key("key")]).await;
    let before = fx.env();
    assert_eq!(before["nerves_fw_active"], "a");
    let update = offer(&server, &fx, "v2.fw");
    let uuid = fx.uuid("v2.fw");

    let (out, join) = update_with(&server, &fx, update, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(join["nerves_fw_uuid"], fx.uuid("v1.fw"), "from the disk");
    assert_eq!(join["fwup_public_keys"], "on_connect", "keys are needed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fwup public keys: 1 from the server"),
        "{stdout}"
    );
    assert!(stdout.contains("update: updating 100%"), "{stdout}");
    assert!(stdout.contains("update: finished ok=true"), "{stdout}");
    let statuses = statuses_until(&server, "completed").await;
    assert_eq!(statuses[0]["status"], "received", "{statuses:?}");

    let after = fx.env();
    assert_eq!(after["nerves_fw_active"], "b");
    assert_eq!(after["b.nerves_fw_uuid"], uuid);
    assert_eq!(after["nerves_fw_validated"], "0");
    assert_eq!(after["a.nerves_fw_uuid"], before["a.nerves_fw_uuid"]);

    // Rebooted: a new run reads the environment again.
    server.control().reset().await;
    let mut child = nhc_device(&server, &fx, &[]).spawn().unwrap();
    let join = joined(&server).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(join["nerves_fw_uuid"], uuid);
    assert_eq!(join["nerves_fw_version"], "2.0.0");
    assert_eq!(join["meta"]["firmware_validated"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_firmware_is_reported_and_leaves_the_active_slot() {
    let Some(fx) = FwupFixture::new("cli-refused") else {
        return;
    };
    let server = server(vec![fx.public_key("key")]).await;
    let before = fx.env();

    // Unsigned: fwup refuses it, in its own words.
    let unsigned = offer(&server, &fx, "unsigned.fw");
    let (out, _) = update_with(&server, &fx, unsigned.clone(), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let reason = "FWUP error : \"Expecting signed firmware archive.\"";
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("update: finished ok=false: {reason}")),
        "{stdout}"
    );
    let statuses = statuses_until(&server, "failed").await;
    let failed = statuses.last().unwrap()["reason"].as_str().unwrap();
    assert!(failed.starts_with(reason), "{failed}");
    assert_eq!(fx.env(), before, "the environment is untouched");

    // No key anywhere: refused before fwup runs (fail closed).
    server.control().reset().await;
    server.control().set_public_keys(Some(vec![]), None).await;
    let v2 = offer(&server, &fx, "v2.fw");
    let (out, _) = update_with(&server, &fx, v2, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(REFUSED_NO_KEYS),
        "{}",
        text(&out)
    );
    let statuses = statuses_until(&server, "failed").await;
    assert_eq!(statuses.last().unwrap()["reason"], REFUSED_NO_KEYS);
    assert_eq!(fx.env(), before, "nothing was applied");

    // The explicit opt-out: fwup then applies even an unsigned archive.
    server.control().reset().await;
    let allow = ["--allow-unverified-firmware"];
    let (out, join) = update_with(&server, &fx, unsigned, &allow).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(join.get("fwup_public_keys").is_none(), "{join}");
    assert_eq!(fx.env()["nerves_fw_active"], "b");
    assert_eq!(fx.env()["b.nerves_fw_uuid"], fx.uuid("unsigned.fw"));
}

#[test]
fn bad_fwup_arguments_exit_with_2_and_say_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_nhc"))
        .args(["device", "--url", "ws://127.0.0.1:1/socket/websocket"])
        .args([
            "--fwup-device",
            "disk.img",
            "--fwup-public-key",
            "not-a-key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--fwup-public-key: ") && stderr.contains("base64"),
        "{stderr}"
    );
}
