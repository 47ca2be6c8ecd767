//! The NervesHub device layer against the in-process dev server: join
//! parameters, typed events, update decisions and the answers NervesHub
//! expects. Every wait is bounded and driven by events, never by sleeps.

mod common;
#[path = "common/device_wait.rs"]
mod device_wait;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{device_socket_config, fast_config, json, server, WAIT};
use device_wait::{connected, received, wait, wait_status};
use nerves_hub_channel::nerves_hub::console::{ConsoleEvent, ConsoleOptions};
use nerves_hub_channel::nerves_hub::device::Device;
use nerves_hub_channel::nerves_hub::device_config::DeviceConfig;
use nerves_hub_channel::nerves_hub::device_events::DeviceEvent;
use nerves_hub_channel::nerves_hub::extensions::{ExtensionEvent, ExtensionsOptions};
use nerves_hub_channel::nerves_hub::metadata::FirmwareMetadata;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{UbootEnvLayout, UpdatePolicy};
use nerves_hub_channel::{Event, Payload};
use nhc_devserver::{random_image, DevServer, DUMMY_PUBLIC_KEY};
use serde_json::{json as j, Value};

fn config(server: &DevServer) -> DeviceConfig {
    let mut config = DeviceConfig::new(device_socket_config(server, "nhc-test-device"));
    config.metadata = FirmwareMetadata::from_pairs([
        ("nerves_fw_uuid", "11111111-1111-1111-1111-111111111111"),
        ("nerves_fw_product", "demo"),
        ("nerves_fw_version", "1.0.0"),
    ]);
    config.fwup_version = Some("1.13.2".into());
    config.device_rejoin_after_close = Some(Duration::from_millis(20));
    config
}

async fn push(server: &DevServer, event: &str, payload: Value) {
    let n = server.control().push("device", event, json(payload)).await;
    assert_eq!(n, 1, "one device channel gets {event}");
}

fn update_payload(uuid: &str) -> Value {
    j!({
        "update_available": true,
        "firmware_url": "http://127.0.0.1:1/fw.fw?X-Amz-Signature=secret",
        "firmware_meta": {"uuid": uuid, "product": "demo", "version": "1.1.0",
                          "architecture": "arm", "platform": "rpi4"},
        "size": 1024,
        "checksum": null,
        "partials_checksums": [],
        "deployment_id": 7
    })
}

#[tokio::test]
async fn join_params_carry_metadata_api_version_and_meta() {
    let server = server().await;
    let mut config = config(&server);
    config.firmware_validated = Some(Arc::new(|| Some(true)));
    let _device = connected(config).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(join["device_api_version"], "2.3.0");
    assert_eq!(
        join["nerves_fw_uuid"],
        "11111111-1111-1111-1111-111111111111"
    );
    assert_eq!(join["nerves_fw_product"], "demo");
    assert_eq!(join["fwup_version"], "1.13.2");
    assert_eq!(join["update_tool"], "fwup");
    assert_eq!(join["currently_downloading_uuid"], Value::Null);
    assert_eq!(
        join["meta"],
        j!({"firmware_validated": true, "firmware_auto_revert_detected": false})
    );
    assert!(join.get("fwup_public_keys").is_none());
}

#[tokio::test]
async fn params_are_re_evaluated_on_rejoin_and_validation_is_polled() {
    let server = server().await;
    let valid = Arc::new(AtomicBool::new(false));
    let mut config = config(&server);
    let flag = valid.clone();
    config.firmware_validated = Some(Arc::new(move || Some(flag.load(Ordering::SeqCst))));
    config.validation_poll_interval = Duration::from_millis(20);
    let device = connected(config).await;
    assert_eq!(
        received(&server, "phx_join", 1).await[0]["meta"]["firmware_validated"],
        false
    );

    valid.store(true, Ordering::SeqCst);
    assert_eq!(received(&server, "firmware_validated", 1).await[0], j!({}));

    device.set_metadata(FirmwareMetadata::from_pairs([("nerves_fw_uuid", "u-2")]));
    assert_eq!(server.control().crash_channel("device").await, 1);
    let joins = received(&server, "phx_join", 2).await;
    assert_eq!(joins[1]["nerves_fw_uuid"], "u-2");
    assert_eq!(joins[1]["meta"]["firmware_validated"], true);
}

#[tokio::test]
async fn metadata_comes_from_the_active_slot_of_an_fw_env_file() {
    let server = server().await;
    let dir = std::env::temp_dir().join(format!("nhc-device-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fw_env.txt");
    std::fs::write(
        &path,
        "a.nerves_fw_uuid=aaa\na.nerves_fw_version=1.0.0\nb.nerves_fw_uuid=bbb\n\
         b.nerves_fw_version=2.0.0\nnerves_fw_active=b\nnerves_fw_devpath=/dev/mmcblk0\n",
    )
    .unwrap();
    let mut config = config(&server);
    config.metadata = FirmwareMetadata::from_env_file(&path).expect("env file parses");
    let _device = connected(config).await;
    std::fs::remove_dir_all(&dir).ok();
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(join["nerves_fw_uuid"], "bbb");
    assert_eq!(join["nerves_fw_version"], "2.0.0");
    assert_eq!(join["nerves_fw_devpath"], "/dev/mmcblk0");
    assert!(join.get("a.nerves_fw_uuid").is_none());
}

#[tokio::test]
async fn an_update_is_received_then_ignored_with_a_reason() {
    let server = server().await;
    let device = connected(config(&server)).await;
    push(
        &server,
        "update",
        update_payload("22222222-2222-2222-2222-222222222222"),
    )
    .await;
    let DeviceEvent::UpdateAvailable(info) = wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(
        info.firmware_meta.uuid,
        "22222222-2222-2222-2222-222222222222"
    );
    assert_eq!(info.deployment_id, Some(7));
    assert!(
        !format!("{info:?}").contains("secret"),
        "the signed query is redacted"
    );
    assert_eq!(
        device.pending_update().map(|u| u.firmware_meta.uuid),
        Some(info.firmware_meta.uuid)
    );

    device
        .ignore_update("battery low")
        .expect("an update is pending");
    let statuses = received(&server, "status_update", 2).await;
    assert_eq!(statuses[0], j!({"status": "received"}));
    assert_eq!(
        statuses[1],
        j!({"status": "ignored", "reason": "battery low"})
    );
    assert!(device.pending_update().is_none());
    let err = device.ignore_update("again").unwrap_err();
    assert_eq!(err.kind(), "invalid_argument");
}

#[tokio::test]
async fn an_update_is_rescheduled_in_milliseconds() {
    let server = server().await;
    let device = connected(config(&server)).await;
    push(
        &server,
        "update",
        update_payload("33333333-3333-3333-3333-333333333333"),
    )
    .await;
    wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await;
    let zero = device.reschedule_update(Duration::ZERO, None).unwrap_err();
    assert_eq!(zero.kind(), "invalid_argument");
    assert!(
        device.pending_update().is_some(),
        "a refused call keeps the offer"
    );
    device
        .reschedule_update(Duration::from_millis(30 * 60 * 1000 + 250), Some("busy"))
        .expect("an update is pending");
    let statuses = received(&server, "status_update", 2).await;
    assert_eq!(
        statuses[1],
        j!({"status": "rescheduled", "delay_for": 1_800_250, "reason": "busy"})
    );
}

#[tokio::test]
async fn reboot_is_acknowledged_before_the_event_and_identify_is_delivered() {
    let server = server().await;
    let device = connected(config(&server)).await;
    push(&server, "reboot", j!({})).await;
    wait(&device, "Reboot", |e| matches!(e, DeviceEvent::Reboot)).await;
    assert_eq!(received(&server, "rebooting", 1).await[0], j!({}));
    push(&server, "identify", j!({})).await;
    wait(&device, "Identify", |e| matches!(e, DeviceEvent::Identify)).await;
}

#[tokio::test]
async fn scripts_are_refused_by_default() {
    let server = server().await;
    let device = connected(config(&server)).await;
    push(
        &server,
        "scripts/run",
        j!({"ref": "abc123", "text": "1 + 1"}),
    )
    .await;
    let answer = &received(&server, "scripts/run", 1).await[0];
    assert_eq!(
        answer,
        &j!({"ref": "abc123", "result": "error",
             "output": "scripts are not supported on this device", "return": "nil"})
    );
    drop(device);
}

#[tokio::test]
async fn scripts_are_delivered_when_enabled_and_answered_by_the_user() {
    let server = server().await;
    let mut config = config(&server);
    config.scripts = true;
    let device = connected(config).await;
    push(&server, "scripts/run", j!({"ref": "r1", "text": "uptime"})).await;
    let event = wait(&device, "ScriptRun", |e| {
        matches!(e, DeviceEvent::ScriptRun { .. })
    })
    .await;
    let DeviceEvent::ScriptRun { script_ref, text } = event else {
        unreachable!()
    };
    assert_eq!((script_ref.as_str(), text.as_str()), ("r1", "uptime"));
    device
        .script_result(&script_ref, "completed", "up 3 days", "0")
        .expect("answer sent");
    assert_eq!(
        received(&server, "scripts/run", 1).await[0],
        j!({"ref": "r1", "result": "completed", "output": "up 3 days", "return": "0"})
    );
    assert!(device.script_result("r1", "maybe", "", "").is_err());
}

#[tokio::test]
async fn unknown_events_pass_through_and_bad_payloads_are_reported() {
    let server = server().await;
    let device = connected(config(&server)).await;
    push(&server, "future_event", j!({"x": 1})).await;
    let event = wait(&device, "Other", |e| matches!(e, DeviceEvent::Other { .. })).await;
    let DeviceEvent::Other {
        topic,
        event,
        payload,
    } = event
    else {
        unreachable!()
    };
    assert_eq!((topic.as_str(), event.as_str()), ("device", "future_event"));
    assert_eq!(payload, Payload::json(&j!({"x": 1})));

    push(&server, "update", j!({"update_available": true})).await;
    let event = wait(&device, "InvalidMessage", |e| {
        matches!(e, DeviceEvent::InvalidMessage { .. })
    })
    .await;
    let DeviceEvent::InvalidMessage { event, detail, .. } = event else {
        unreachable!()
    };
    assert_eq!(event, "update");
    assert!(detail.contains("firmware_url is missing"), "{detail}");
    assert!(device.pending_update().is_none());
    let failed = received(&server, "status_update", 1).await;
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(
        failed[0]["reason"],
        format!("Update failed : {detail}"),
        "the server hears why"
    );

    // A URL that is not http(s), and no firmware_meta: each one is reported.
    let mut ftp = update_payload("55555555-5555-5555-5555-555555555555");
    ftp["firmware_url"] = j!("ftp://example.com/fw.fw");
    push(&server, "update", ftp).await;
    let mut no_meta = update_payload("66666666-6666-6666-6666-666666666666");
    no_meta
        .as_object_mut()
        .expect("object")
        .remove("firmware_meta");
    push(&server, "update", no_meta).await;
    let failed = received(&server, "status_update", 3).await;
    let reasons: Vec<&str> = failed.iter().filter_map(|s| s["reason"].as_str()).collect();
    assert!(reasons[1].contains("http or https"), "{reasons:?}");
    assert!(
        reasons[2].contains("firmware_meta is missing"),
        "{reasons:?}"
    );
    assert!(failed.iter().all(|s| s["status"] == "failed"));
}

#[tokio::test]
async fn requested_keys_and_extensions_get_arrive_after_join() {
    let server = server().await;
    let mut config = config(&server);
    config.request_fwup_public_keys = true;
    let device = connected(config).await;
    let event = wait(&device, "FwupPublicKeys", |e| {
        matches!(e, DeviceEvent::FwupPublicKeys(_))
    })
    .await;
    let DeviceEvent::FwupPublicKeys(keys) = event else {
        unreachable!()
    };
    assert_eq!(keys, vec![DUMMY_PUBLIC_KEY.to_owned()]);
    wait(&device, "ExtensionsGet", |e| {
        matches!(e, DeviceEvent::ExtensionsGet)
    })
    .await;
    assert_eq!(
        received(&server, "phx_join", 1).await[0]["fwup_public_keys"],
        "on_connect"
    );
}

#[tokio::test]
async fn extensions_get_joins_extensions_with_what_the_device_offers() {
    let server = server().await;
    let mut config = config(&server);
    config.extensions = Some(ExtensionsOptions {
        logging: true,
        ..ExtensionsOptions::default()
    });
    let device = connected(config).await;
    wait(&device, "ExtensionsGet", |e| {
        matches!(e, DeviceEvent::ExtensionsGet)
    })
    .await;
    wait(
        &device,
        "extensions joined",
        |e| matches!(e, DeviceEvent::Socket(Event::Joined { topic, .. }) if topic == "extensions"),
    )
    .await;
    let event = wait(&device, "Negotiated", |e| {
        matches!(e, DeviceEvent::Extension(_))
    })
    .await;
    assert_eq!(
        event_negotiated(event),
        (vec!["logging".to_owned()], Vec::<String>::new())
    );
    let offer = server
        .control()
        .wait_for("extensions", "phx_join", 1, WAIT)
        .await
        .expect("extensions join");
    assert_eq!(
        offer[0].message.payload.to_value(),
        Some(j!({"logging": "0.0.1"}))
    );
    server
        .control()
        .wait_for("extensions", "logging:attached", 1, WAIT)
        .await
        .expect("attached");
}

fn event_negotiated(event: DeviceEvent) -> (Vec<String>, Vec<String>) {
    match event {
        DeviceEvent::Extension(ExtensionEvent::Negotiated { attached, rejected }) => {
            (attached, rejected)
        }
        other => panic!("expected Negotiated, got {other:?}"),
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nhc-device-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("image.fw")
}

#[tokio::test]
async fn an_applied_update_is_downloaded_reported_and_finished() {
    let server = server().await;
    let image = random_image(300_000, 7);
    let added = server
        .firmware()
        .add("fw1", image.clone())
        .expect("image added");
    let device = connected(config(&server)).await;
    push(&server, "update", added["update"].clone()).await;
    let DeviceEvent::UpdateAvailable(info) = wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await
    else {
        unreachable!()
    };
    let path = temp_path("apply");
    device
        .apply_update(&info, UpdateOptions::new(SinkSpec::File(path.clone())))
        .expect("update starts");
    assert!(device.update_in_progress() || device.pending_update().is_none());
    let finished = wait(&device, "UpdateFinished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { .. })
    })
    .await;
    assert!(
        matches!(
            finished,
            DeviceEvent::UpdateFinished {
                ok: true,
                reason: None
            }
        ),
        "{finished:?}"
    );
    assert!(!device.update_in_progress());
    assert_eq!(std::fs::read(&path).expect("image written"), image);
    std::fs::remove_dir_all(path.parent().expect("dir")).ok();

    let statuses: Vec<Value> = received(&server, "status_update", 3)
        .await
        .into_iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(statuses[0], "received");
    assert_eq!(statuses[1], "started");
    wait_status(&server, "completed").await;
    let progress = received(&server, "fwup_progress", 1).await;
    assert!(progress[0]["value"].is_u64(), "{progress:?}");
    assert!(progress[0]["stage"].is_string(), "{progress:?}");
}

#[tokio::test]
async fn a_second_update_during_an_update_is_ignored_and_cancel_reports_failed() {
    let server = server().await;
    // A firmware server that accepts and never answers keeps the update running.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/fw.fw", silent.local_addr().expect("addr"));
    let device = connected(config(&server)).await;
    let mut offer = update_payload("44444444-4444-4444-4444-444444444444");
    offer["firmware_url"] = j!(url);
    push(&server, "update", offer).await;
    let DeviceEvent::UpdateAvailable(info) = wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await
    else {
        unreachable!()
    };
    device
        .apply_update(
            &info,
            UpdateOptions::new(SinkSpec::File(temp_path("second"))),
        )
        .expect("update starts");
    let _conn = tokio::time::timeout(WAIT, silent.accept())
        .await
        .expect("the download connects")
        .expect("accept");
    assert!(device.update_in_progress());

    push(
        &server,
        "update",
        update_payload("55555555-5555-5555-5555-555555555555"),
    )
    .await;
    push(&server, "identify", j!({})).await;
    // Events are handled in order: once Identify is out, the second update was seen.
    let event = wait(&device, "Identify", |e| {
        matches!(e, DeviceEvent::Identify | DeviceEvent::UpdateAvailable(_))
    })
    .await;
    assert!(matches!(event, DeviceEvent::Identify), "{event:?}");
    device.report_network_interface("eth0").expect("cast");
    // The first one is the automatic report after the join.
    received(&server, "report_network_interface", 2).await;
    let received_count = server
        .control()
        .received()
        .await
        .iter()
        .filter(|r| r.message.event == "status_update")
        .filter(|r| {
            r.message
                .payload
                .to_value()
                .map(|v| v["status"] == "received")
                == Some(true)
        })
        .count();
    assert_eq!(received_count, 1, "no second flow while updating");

    // A rejoin mid-update tells the server which update is in flight.
    assert_eq!(server.control().crash_channel("device").await, 1);
    let joins = received(&server, "phx_join", 2).await;
    assert_eq!(
        joins[1]["currently_downloading_uuid"],
        "44444444-4444-4444-4444-444444444444"
    );

    assert!(device.cancel_update());
    let finished = wait(&device, "UpdateFinished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { .. })
    })
    .await;
    assert!(
        matches!(&finished, DeviceEvent::UpdateFinished { ok: false, reason: Some(r) } if r == "Update cancelled"),
        "{finished:?}"
    );
    // The socket never reached the silent server's HTTP answer, so no
    // `started`: `received`, then the cancellation.
    let statuses = received(&server, "status_update", 2).await;
    assert_eq!(
        statuses[1],
        j!({"status": "failed", "reason": "Update cancelled"})
    );
    assert!(!device.update_in_progress());
}

#[tokio::test]
async fn auto_policy_applies_new_firmware_and_ignores_the_running_one() {
    let server = server().await;
    let image = random_image(10_000, 9);
    let added = server
        .firmware()
        .add("auto", image.clone())
        .expect("image added");
    let path = temp_path("auto");
    let mut config = config(&server);
    config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(SinkSpec::File(path.clone())));
    let device = connected(config).await;

    push(
        &server,
        "update",
        update_payload("11111111-1111-1111-1111-111111111111"),
    )
    .await;
    let event = wait(&device, "UpdateIgnored", |e| {
        matches!(e, DeviceEvent::UpdateIgnored { .. })
    })
    .await;
    assert!(
        matches!(event, DeviceEvent::UpdateIgnored { .. }),
        "{event:?}"
    );

    push(&server, "update", added["update"].clone()).await;
    let finished = wait(&device, "UpdateFinished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { .. })
    })
    .await;
    assert!(
        matches!(finished, DeviceEvent::UpdateFinished { ok: true, .. }),
        "{finished:?}"
    );
    assert_eq!(std::fs::read(&path).expect("image"), image);
    std::fs::remove_dir_all(path.parent().expect("dir")).ok();
    let statuses = received(&server, "status_update", 2).await;
    assert_eq!(statuses[1]["status"], "ignored");
}

#[tokio::test]
async fn console_messages_and_archives_become_typed_events() {
    let server = server().await;
    let mut config = config(&server);
    config.console = Some(ConsoleOptions::default());
    config.request_archive_public_keys = true;
    let device = connected(config).await;
    let event = wait(&device, "ArchivePublicKeys", |e| {
        matches!(e, DeviceEvent::ArchivePublicKeys(_))
    })
    .await;
    assert!(matches!(event, DeviceEvent::ArchivePublicKeys(keys) if keys.len() == 1));
    server
        .control()
        .wait_joined("console", 1, WAIT)
        .await
        .expect("console joined");
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(
        join["console_version"], "1.0.0",
        "no file transfer configured"
    );

    let n = server
        .control()
        .push("console", "dn", json(j!({"data": "ls\n"})))
        .await;
    assert_eq!(n, 1);
    let event = wait(&device, "Console", |e| matches!(e, DeviceEvent::Console(_))).await;
    assert!(
        matches!(&event, DeviceEvent::Console(ConsoleEvent::Input(data)) if data == "ls\n"),
        "{event:?}"
    );
    device
        .console()
        .expect("console configured")
        .send_output("file.txt\r\n")
        .expect("output sent");
    let up = server
        .control()
        .wait_for("console", "up", 1, WAIT)
        .await
        .expect("up");
    assert_eq!(
        up[0].message.payload.to_value(),
        Some(j!({"data": "file.txt\r\n"}))
    );

    push(
        &server,
        "archive",
        j!({"uuid": "arch-1", "url": "http://h/a?sig=secret",
        "size": 12, "version": "1.0.0", "uploaded_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let event = wait(&device, "Archive", |e| matches!(e, DeviceEvent::Archive(_))).await;
    let DeviceEvent::Archive(archive) = event else {
        unreachable!()
    };
    assert_eq!((archive.uuid.as_str(), archive.size), ("arch-1", Some(12)));
    push(&server, "archive", j!({"uuid": 5})).await;
    wait(
        &device,
        "bad archive",
        |e| matches!(e, DeviceEvent::InvalidMessage { event, .. } if event == "archive"),
    )
    .await;
}

/// The interface the dev server's loopback connections use.
fn loopback_name() -> &'static str {
    if cfg!(target_os = "linux") {
        "lo"
    } else {
        "lo0"
    }
}

#[tokio::test]
async fn the_device_channel_rejoins_after_a_server_close_and_reports_its_interface() {
    let server = server().await;
    let device = connected(config(&server)).await;
    // Like nerves_hub_link 2.11+: after every join, the socket's interface.
    let reports = received(&server, "report_network_interface", 1).await;
    assert_eq!(reports[0], j!({"interface": loopback_name()}));
    assert_eq!(server.control().close_channel("device").await, 1);
    wait(&device, "ChannelClosed", |e| {
        matches!(e, DeviceEvent::Socket(Event::ChannelClosed { .. }))
    })
    .await;
    wait(
        &device,
        "joined again",
        |e| matches!(e, DeviceEvent::Socket(Event::Joined { topic, .. }) if topic == "device"),
    )
    .await;
    let reports = received(&server, "report_network_interface", 2).await;
    assert_eq!(reports[1], j!({"interface": loopback_name()}));
    // The manual call still works and says what the application wants.
    device.report_network_interface("wwan0").expect("sent");
    let reports = received(&server, "report_network_interface", 3).await;
    assert_eq!(reports[2], j!({"interface": "wwan0"}));
}

#[tokio::test]
async fn the_device_channel_can_stay_closed_after_a_server_close() {
    let server = server().await;
    let mut never = config(&server);
    never.device_rejoin_after_close = None;
    let device = connected(never).await;
    assert_eq!(server.control().close_channel("device").await, 1);
    wait(&device, "ChannelClosed", |e| {
        matches!(e, DeviceEvent::Socket(Event::ChannelClosed { .. }))
    })
    .await;
    // With the default 20 ms of these tests it would rejoin well within this.
    let rejoined = server
        .control()
        .wait_joined("device", 2, Duration::from_millis(500))
        .await;
    assert!(rejoined.is_err(), "the device channel rejoined by itself");
    device.connect().expect("connect rejoins");
    server
        .control()
        .wait_joined("device", 2, WAIT)
        .await
        .expect("joined again on connect");

    let mut zero = config(&server);
    zero.device_rejoin_after_close = Some(Duration::ZERO);
    let err = Device::new(zero).err().expect("zero is refused");
    assert!(
        err.to_string().contains("device_rejoin_after_close"),
        "{err}"
    );
}

#[tokio::test]
async fn threaded_and_blocking_delivery_work_like_the_socket() {
    let server = server().await;
    let device = Device::new(config(&server)).expect("valid");
    let (tx, rx) = std::sync::mpsc::channel();
    device.set_handler(Some(Box::new(move |event| {
        let _ = tx.send(event);
    })));
    device.connect().expect("connect");
    let joined = tokio::task::spawn_blocking(move || loop {
        match rx.recv_timeout(WAIT) {
            Ok(DeviceEvent::Socket(Event::Joined { topic, .. })) => return topic,
            Ok(_) => continue,
            Err(e) => panic!("no Joined event from the handler: {e}"),
        }
    })
    .await
    .expect("handler thread");
    assert_eq!(joined, "device");
    device.set_handler(None);
    push(&server, "identify", j!({})).await;
    let blocking = device.clone();
    let got = tokio::task::spawn_blocking(move || loop {
        match blocking.recv_timeout(WAIT) {
            Some(DeviceEvent::Identify) => return true,
            Some(_) => continue,
            None => return false,
        }
    })
    .await
    .expect("blocking receiver");
    assert!(got, "Identify through recv_timeout");
    assert!(device.event_fd().expect("fd") >= 0);
    device.close();
    wait(&device, "Closed", |e| {
        matches!(e, DeviceEvent::Socket(Event::Closed))
    })
    .await;
    assert!(
        device.next_event().await.is_none(),
        "the stream ends after Closed"
    );
}

#[test]
fn a_non_device_url_is_refused() {
    let config = DeviceConfig::new(nerves_hub_channel::SocketConfig::new(
        "ws://127.0.0.1:1/other/websocket",
    ));
    let err = Device::new(config).err().expect("refused");
    assert_eq!(err.kind(), "invalid_argument");
    assert!(
        err.to_string().contains("/device-socket/websocket"),
        "{err}"
    );
}

#[tokio::test]
async fn an_offered_archive_downloads_into_a_file() {
    let server = server().await;
    let device = connected(config(&server)).await;
    let bytes = random_image(1_500_000, 9);
    let offer = server
        .firmware()
        .add("archive-1.bin", bytes.clone())
        .expect("stored");
    push(
        &server,
        "archive",
        j!({"uuid": "arch-2", "url": offer["url"], "size": bytes.len(), "version": "2.0.0"}),
    )
    .await;
    let DeviceEvent::Archive(archive) =
        wait(&device, "Archive", |e| matches!(e, DeviceEvent::Archive(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        device.pending_archive().map(|a| a.uuid),
        Some("arch-2".to_owned())
    );
    // Interrupted twice: resumed with Range like firmware.
    let faults = nhc_devserver::FirmwareFaults {
        cut_after_bytes: Some(400_000),
        cuts: Some(2),
        ..Default::default()
    };
    server
        .firmware()
        .set_faults("archive-1.bin", faults)
        .expect("faults");
    let dir = std::env::temp_dir().join(format!("nhc-archive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("archive.bin");
    let mut options = UpdateOptions::new(SinkSpec::File(path.clone()));
    options.download.retry_delay = Duration::from_millis(10);
    let handle = device.download_archive(&archive, options).expect("started");
    let outcome = tokio::time::timeout(WAIT, handle.outcome())
        .await
        .expect("in time");
    assert_eq!(outcome, Ok(()));
    assert!(
        std::fs::read(&path).expect("archive") == bytes,
        "archive differs"
    );
    let requests = server
        .firmware()
        .requests("archive-1.bin")
        .expect("requests");
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[1].range.is_some(), "{requests:?}");
    // Archives are not firmware: no status_update was sent for it.
    let statuses: Vec<_> = server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.message.event == "status_update")
        .collect();
    assert!(statuses.is_empty(), "{statuses:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn updates_are_refused_without_fwup_keys_when_keys_are_required() {
    let server = server().await;
    server.control().set_public_keys(Some(vec![]), None).await;
    let mut config = config(&server);
    config.require_fwup_public_keys = true;
    let device = connected(config).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(join["fwup_public_keys"], "on_connect", "keys are requested");
    // An organisation without keys gets no key list at all (web main), so
    // extensions:get, pushed after the keys, is the first post-join push.
    let event = wait(&device, "ExtensionsGet", |e| {
        matches!(
            e,
            DeviceEvent::ExtensionsGet | DeviceEvent::FwupPublicKeys(_)
        )
    })
    .await;
    assert!(matches!(event, DeviceEvent::ExtensionsGet), "{event:?}");
    assert!(device.fwup_public_keys().is_empty());

    push(
        &server,
        "update",
        update_payload("22222222-2222-2222-2222-222222222222"),
    )
    .await;
    let event = wait(&device, "UpdateIgnored", |e| {
        matches!(
            e,
            DeviceEvent::UpdateIgnored { .. } | DeviceEvent::UpdateAvailable(_)
        )
    })
    .await;
    let DeviceEvent::UpdateIgnored { reason, .. } = event else {
        panic!("the update must be refused, got {event:?}");
    };
    assert_eq!(
        reason,
        "Refusing unverified firmware : no public keys available"
    );
    let status = &received(&server, "status_update", 1).await[0];
    assert_eq!(
        *status,
        j!({"status": "failed", "reason": "Refusing unverified firmware : no public keys available"})
    );
    assert!(device.pending_update().is_none());

    // Keys sent later (e.g. after an org key was added) lift the refusal.
    push(
        &server,
        "fwup_public_keys",
        j!({"keys": [DUMMY_PUBLIC_KEY]}),
    )
    .await;
    wait(&device, "FwupPublicKeys", |e| {
        matches!(e, DeviceEvent::FwupPublicKeys(_))
    })
    .await;
    assert_eq!(device.fwup_public_keys(), vec![DUMMY_PUBLIC_KEY]);
    push(
        &server,
        "update",
        update_payload("22222222-2222-2222-2222-222222222222"),
    )
    .await;
    wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await;
    wait_status(&server, "received").await;
}

#[tokio::test]
async fn configured_fwup_keys_reach_the_fwup_command() {
    let server = server().await;
    let image = random_image(5_000, 3);
    let added = server
        .firmware()
        .add("keys", image.clone())
        .expect("image added");
    let dir = temp_path("keys");
    let dir = dir.parent().expect("dir").to_owned();
    let (out, args) = (dir.join("image"), dir.join("args"));
    let script = format!(
        "cat > '{}'; echo \"$@\" > '{}'",
        out.display(),
        args.display()
    );
    let mut config = config(&server);
    config.require_fwup_public_keys = true;
    config.fwup_public_keys = vec![DUMMY_PUBLIC_KEY.into()];
    config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(SinkSpec::Fwup {
        command: "sh".into(),
        args: vec!["-c".into(), script, "sh".into()],
    }));
    let device = connected(config).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert!(
        join.get("fwup_public_keys").is_none(),
        "configured keys suffice"
    );
    push(&server, "update", added["update"].clone()).await;
    let finished = wait(&device, "UpdateFinished", |e| {
        matches!(e, DeviceEvent::UpdateFinished { .. })
    })
    .await;
    assert!(
        matches!(finished, DeviceEvent::UpdateFinished { ok: true, .. }),
        "{finished:?}"
    );
    assert_eq!(std::fs::read(&out).expect("image"), image);
    assert_eq!(
        std::fs::read_to_string(&args).expect("args").trim(),
        format!("--public-key {DUMMY_PUBLIC_KEY}")
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn malformed_configured_fwup_keys_are_refused() {
    let mut config = DeviceConfig::new(fast_config("ws://127.0.0.1:1/socket/websocket"));
    config.fwup_public_keys = vec!["not a key".into()];
    let err = Device::new(config).err().expect("refused");
    assert!(err.to_string().contains("fwup public key"), "{err}");
}

#[tokio::test]
async fn metadata_comes_from_a_binary_uboot_environment_image() {
    let server = server().await;
    let mut data = Vec::new();
    for entry in [
        "a.nerves_fw_uuid=aaaa",
        "b.nerves_fw_uuid=33333333-3333-3333-3333-333333333333",
        "b.nerves_fw_product=from-image",
        "nerves_fw_active=b",
    ] {
        data.extend_from_slice(entry.as_bytes());
        data.push(0);
    }
    data.push(0);
    data.resize(8192 - 4, 0);
    let mut image = crc32(&data).to_le_bytes().to_vec();
    image.extend(&data);
    let path = temp_path("uboot.env");
    std::fs::write(&path, &image).expect("write image");
    let mut config = config(&server);
    config.metadata = FirmwareMetadata::from_uboot_env_image(&path, 8192, UbootEnvLayout::Single)
        .expect("valid image");
    let _device = connected(config).await;
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(
        join["nerves_fw_uuid"],
        "33333333-3333-3333-3333-333333333333"
    );
    assert_eq!(join["nerves_fw_product"], "from-image");
    std::fs::remove_dir_all(path.parent().expect("dir")).ok();
}

/// CRC-32 (IEEE), written out here so the test does not trust the code under test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
