//! The real update chain (issue 22): signed `.fw` archives served by the
//! dev server with the `firmware_meta` of their meta.conf, applied by the
//! real fwup to the inactive slot of an A/B disk image, the U-Boot
//! environment switching slots, and the join after a simulated reboot
//! reporting the new firmware. Every refusal leaves the active slot alone.
//! Fixtures: tests/fixtures (see tests/common/fwup_fixture.rs).

mod common;
#[path = "common/device_wait.rs"]
mod device_wait;
#[path = "common/fwup_fixture.rs"]
mod fwup_fixture;

use std::sync::Arc;
use std::time::Duration;

use common::{device_socket_config, json, server};
use device_wait::{connected, received, wait, wait_status};
use fwup_fixture::{FwupFixture, ENV_SIZE};
use nerves_hub_channel::nerves_hub::device::Device;
use nerves_hub_channel::nerves_hub::device_config::DeviceConfig;
use nerves_hub_channel::nerves_hub::device_events::DeviceEvent;
use nerves_hub_channel::nerves_hub::fwup_keys::REFUSED_NO_KEYS;
use nerves_hub_channel::nerves_hub::metadata::FirmwareMetadata;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateInfo, UpdateOptions};
use nerves_hub_channel::nerves_hub::{UbootEnvLayout, UpdatePolicy};
use nhc_devserver::DevServer;
use serde_json::Value;

/// A device booted from the fixture's disk: metadata and validation read
/// from its U-Boot environment, updates applied to it with fwup.
fn booted(server: &DevServer, fx: &FwupFixture, policy_auto: bool) -> DeviceConfig {
    let mut config = DeviceConfig::new(device_socket_config(server, "nhc-fwup-device"));
    config.metadata =
        FirmwareMetadata::from_uboot_env_image(fx.disk(), ENV_SIZE, UbootEnvLayout::Single)
            .expect("metadata from the disk");
    let disk = fx.disk();
    config.firmware_validated = Some(Arc::new(move || {
        let env = nerves_hub_channel::nerves_hub::uboot_env::read(
            &disk,
            ENV_SIZE,
            UbootEnvLayout::Single,
        )
        .ok()?;
        env.get("nerves_fw_validated").map(|v| v == "1")
    }));
    config.validation_poll_interval = Duration::from_millis(20);
    if policy_auto {
        config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(fwup_sink(fx)));
    }
    config
}

fn fwup_sink(fx: &FwupFixture) -> SinkSpec {
    SinkSpec::Fwup {
        command: fx.fwup.display().to_string(),
        args: fx.apply_args(),
    }
}

async fn finished(device: &Device) -> (bool, Option<String>) {
    match wait(device, "UpdateFinished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { .. })
    })
    .await
    {
        DeviceEvent::UpdateFinished { ok, reason } => (ok, reason),
        _ => unreachable!(),
    }
}

/// A dev server that sends the fixture's public key to devices asking for keys.
async fn keyed_server(fx: &FwupFixture) -> DevServer {
    let server = server().await;
    server
        .control()
        .set_public_keys(Some(vec![fx.public_key("key")]), None)
        .await;
    server
}

/// Serves `file` as an update, its firmware_meta read from its meta.conf.
fn offer(server: &DevServer, fx: &FwupFixture, file: &str) -> Value {
    let fwup = fx.fwup.display().to_string();
    server
        .firmware()
        .add_fw(file, fx.bytes(file), &fwup)
        .expect("a .fw the dev server reads")["update"]
        .clone()
}

#[tokio::test]
async fn a_signed_update_switches_slots_and_the_next_boot_reports_it() {
    let Some(fx) = FwupFixture::new("signed") else {
        return;
    };
    let server = keyed_server(&fx).await;
    let before = fx.env();
    assert_eq!(before["nerves_fw_active"], "a");
    let device = connected(booted(&server, &fx, true)).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(join["nerves_fw_uuid"], fx.uuid("v1.fw"));
    assert_eq!(
        join["fwup_public_keys"], "on_connect",
        "automatic fwup updates need keys"
    );
    wait(
        &device,
        "the server's keys",
        |e| matches!(e, DeviceEvent::FwupPublicKeys(k) if *k == [fx.public_key("key")]),
    )
    .await;

    let update = offer(&server, &fx, "v2.fw");
    let uuid = fx.uuid("v2.fw");
    assert_eq!(
        update["firmware_meta"]["uuid"], uuid,
        "as NervesHub reads meta.conf"
    );
    assert_eq!(update["firmware_meta"]["version"], "2.0.0");
    assert_eq!(update["firmware_meta"]["product"], "nhc-fixture");
    let n = server
        .control()
        .push("device", "update", json(update))
        .await;
    assert_eq!(n, 1);
    assert_eq!(finished(&device).await, (true, None));
    let statuses = wait_status(&server, "completed").await;
    assert_eq!(statuses[0]["status"], "received");

    // fwup's framed progress, throttled: increasing, in the updating
    // stage, ending with 100.
    let values: Vec<u64> = server
        .control()
        .received()
        .await
        .iter()
        .filter(|r| r.message.event == "fwup_progress")
        .map(|r| r.message.payload.to_value().expect("JSON"))
        .inspect(|p| assert_eq!(p["stage"], "updating"))
        .map(|p| p["value"].as_u64().expect("integer"))
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1] || w[1] == 100),
        "{values:?}"
    );
    assert_eq!(values.last(), Some(&100), "{values:?}");

    // The disk now boots slot b, holding the update, not yet validated.
    let after = fx.env();
    assert_eq!(after["nerves_fw_active"], "b");
    assert_eq!(after["b.nerves_fw_uuid"], uuid);
    assert_eq!(after["b.nerves_fw_version"], "2.0.0");
    assert_eq!(after["nerves_fw_validated"], "0");
    assert_eq!(after["a.nerves_fw_uuid"], before["a.nerves_fw_uuid"]);

    // Reboot: a new device reads the environment again.
    drop(device);
    server.control().reset().await;
    server
        .control()
        .set_public_keys(Some(vec![fx.public_key("key")]), None)
        .await;
    let device = connected(booted(&server, &fx, true)).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(join["nerves_fw_uuid"], uuid);
    assert_eq!(join["nerves_fw_version"], "2.0.0");
    assert_eq!(join["meta"]["firmware_validated"], false);

    // The new firmware validates itself; the device tells the server.
    fx.validate("v2.fw");
    received(&server, "firmware_validated", 1).await;
    assert_eq!(fx.env()["nerves_fw_validated"], "1");

    // The same firmware offered again is ignored (it runs already).
    let again = offer(&server, &fx, "v2.fw");
    server.control().push("device", "update", json(again)).await;
    let ignored = wait_status(&server, "ignored").await;
    assert_eq!(
        ignored.last().expect("ignored")["reason"],
        "this firmware is already running"
    );
    drop(device);
}

#[tokio::test]
async fn refused_firmware_is_reported_and_leaves_the_active_slot() {
    let Some(fx) = FwupFixture::new("refused") else {
        return;
    };
    let server = keyed_server(&fx).await;
    let before = fx.env();
    let device = connected(booted(&server, &fx, true)).await;
    wait(&device, "the server's keys", |e| {
        matches!(e, DeviceEvent::FwupPublicKeys(_))
    })
    .await;

    // A body corrupted on the way, every time: the part checksums stop it
    // before fwup sees a byte.
    let mut corrupted = offer(&server, &fx, "v2.fw");
    let mut bytes = fx.bytes("v2.fw");
    bytes[1000] ^= 0x55;
    let bad = server
        .firmware()
        .add("v2-corrupted", bytes)
        .expect("stored");
    corrupted["firmware_url"] = bad["url"].clone();

    let cases = [
        (
            offer(&server, &fx, "unsigned.fw"),
            "FWUP error : \"Expecting signed firmware archive.\"",
        ),
        (
            offer(&server, &fx, "other-key.fw"),
            "FWUP error : \"Firmware archive's meta.conf fails digital signature verification.\"",
        ),
        (corrupted, "Checksum mismatch : "),
    ];
    for (i, (update, reason)) in cases.into_iter().enumerate() {
        server
            .control()
            .push("device", "update", json(update))
            .await;
        let (ok, why) = finished(&device).await;
        let why = why.expect("a reason");
        assert!(!ok && why.starts_with(reason), "case {i}: {why}");
        let statuses = wait_status(&server, "failed").await;
        assert_eq!(
            statuses.last().expect("failed")["reason"],
            why.as_str(),
            "case {i}"
        );
        assert!(
            statuses.iter().all(|s| s["status"] != "completed"),
            "case {i}: {statuses:?}"
        );
        assert_eq!(fx.env(), before, "case {i}: the environment is untouched");
        server.control().reset().await;
    }
}

#[tokio::test]
async fn without_keys_fwup_updates_are_refused_unless_allowed() {
    let Some(fx) = FwupFixture::new("nokeys") else {
        return;
    };
    let server = server().await;
    server.control().set_public_keys(Some(vec![]), None).await;
    let before = fx.env();

    // Automatic: refused before `received`, as nerves_hub_link does.
    let device = connected(booted(&server, &fx, true)).await;
    let update = offer(&server, &fx, "v2.fw");
    server
        .control()
        .push("device", "update", json(update.clone()))
        .await;
    let ignored = wait(&device, "UpdateIgnored", |e| {
        matches!(e, DeviceEvent::UpdateIgnored { .. })
    })
    .await;
    assert!(
        matches!(&ignored, DeviceEvent::UpdateIgnored { reason, .. } if reason == REFUSED_NO_KEYS),
        "{ignored:?}"
    );
    let statuses = received(&server, "status_update", 1).await;
    assert_eq!(statuses[0]["status"], "failed");
    assert_eq!(statuses[0]["reason"], REFUSED_NO_KEYS);
    drop(device);

    // Manual: apply_update with a fwup sink is refused and reported too.
    server.control().reset().await;
    server.control().set_public_keys(Some(vec![]), None).await;
    let device = connected(booted(&server, &fx, false)).await;
    let info = UpdateInfo::parse(&update).expect("update");
    let err = device
        .apply_update(&info, UpdateOptions::new(fwup_sink(&fx)))
        .expect_err("refused");
    assert!(err.to_string().contains(REFUSED_NO_KEYS), "{err}");
    let statuses = received(&server, "status_update", 1).await;
    assert_eq!(statuses[0]["reason"], REFUSED_NO_KEYS);
    assert_eq!(
        finished(&device).await,
        (false, Some(REFUSED_NO_KEYS.into()))
    );
    assert_eq!(fx.env(), before, "nothing was applied");
    drop(device);

    // The explicit opt-out: fwup then applies even an unsigned archive.
    server.control().reset().await;
    server.control().set_public_keys(Some(vec![]), None).await;
    let mut config = booted(&server, &fx, true);
    config.allow_unverified_firmware = true;
    let device = connected(config).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert!(
        join.get("fwup_public_keys").is_none(),
        "keys are not needed"
    );
    server
        .control()
        .push("device", "update", json(offer(&server, &fx, "unsigned.fw")))
        .await;
    assert_eq!(finished(&device).await, (true, None));
    assert_eq!(fx.env()["nerves_fw_active"], "b");
    assert_eq!(fx.env()["b.nerves_fw_uuid"], fx.uuid("unsigned.fw"));
}
