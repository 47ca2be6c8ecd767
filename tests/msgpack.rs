//! The MessagePack serializer (vsn 3.0.0) end to end against the dev server,
//! which speaks it as nerves_hub_web does: a plain socket (join, push,
//! reply, server push, malformed frames) and the full device flow (join,
//! update with progress, console, extensions with a health report).

mod common;
#[path = "common/device_wait.rs"]
mod device_wait;

use common::{device_socket_config, fast_config, json, no_params, server, wait_for, WAIT};
use device_wait::{connected, received, update_finished_ok, wait, wait_status};
use nerves_hub_channel::codec::Serializer;
use nerves_hub_channel::nerves_hub::console::{ConsoleEvent, ConsoleOptions};
use nerves_hub_channel::nerves_hub::device_config::DeviceConfig;
use nerves_hub_channel::nerves_hub::device_events::DeviceEvent;
use nerves_hub_channel::nerves_hub::extensions::{
    ExtensionEvent, ExtensionsOptions, HealthOptions,
};
use nerves_hub_channel::nerves_hub::metadata::FirmwareMetadata;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::{Event, PushOutcome, Socket};
use nhc_devserver::random_image;
use serde_json::json as j;

#[tokio::test]
async fn a_socket_joins_pushes_and_receives_over_msgpack() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.serializer = Serializer::MsgPack;
    assert!(config
        .endpoint_url()
        .unwrap()
        .as_str()
        .ends_with("vsn=3.0.0"));
    let sock = Socket::new(config).expect("valid config");
    let chan = sock.channel("room:1", no_params()).expect("channel");
    sock.connect().expect("connect");
    chan.join()
        .expect("join sent")
        .await
        .expect("alive")
        .expect("join ok");
    let control = server.control();
    assert_eq!(
        control.connections().await[0].serializer,
        Serializer::MsgPack
    );

    let payload = j!({"n": 1, "s": "é\n", "f": 2.5, "l": [null, true], "big": u64::MAX});
    let outcome = chan
        .push("ping", json(payload.clone()))
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(&outcome, PushOutcome::Ok(p) if p.to_value() == Some(payload.clone())),
        "{outcome:?}"
    );
    let got = control
        .wait_for("room:1", "ping", 1, WAIT)
        .await
        .expect("recorded");
    assert_eq!(got[0].message.payload.to_value(), Some(payload));

    assert_eq!(
        control.push("room:1", "news", json(j!({"a": "b"}))).await,
        1
    );
    let event = wait_for(
        &sock,
        "news",
        |e| matches!(e, Event::Message { event, .. } if event == "news"),
    )
    .await;
    let Event::Message { payload, .. } = event else {
        unreachable!()
    };
    assert_eq!(payload.to_value(), Some(j!({"a": "b"})));

    // A text frame, truncated MessagePack, and a wrong envelope: each is
    // reported and dropped, and the connection carries on.
    control
        .send_raw_text(r#"[null,null,"room:1","news",{}]"#)
        .await;
    control.send_raw_binary(vec![0x95, 0xc0]).await;
    control.send_raw_binary(vec![0x93, 1, 2, 3]).await;
    let mut details = Vec::new();
    for i in 0..3 {
        let e = wait_for(&sock, &format!("protocol error {i}"), |e| {
            matches!(e, Event::ProtocolError { .. })
        })
        .await;
        let Event::ProtocolError { detail } = e else {
            unreachable!()
        };
        details.push(detail);
    }
    assert!(
        details[0].contains("text frame under vsn 3.0.0"),
        "{details:?}"
    );
    assert!(details[1].contains("truncated"), "{details:?}");
    assert!(details[2].contains("5-element array"), "{details:?}");
    let outcome = chan
        .push("still_alive", json(j!({})))
        .unwrap()
        .await
        .unwrap();
    assert!(matches!(outcome, PushOutcome::Ok(_)));
}

fn device_config(server: &nhc_devserver::DevServer) -> DeviceConfig {
    let mut socket = device_socket_config(server, "nhc-msgpack-device");
    socket.serializer = Serializer::MsgPack;
    let mut config = DeviceConfig::new(socket);
    config.metadata = FirmwareMetadata::from_pairs([
        ("nerves_fw_uuid", "11111111-1111-1111-1111-111111111111"),
        ("nerves_fw_product", "demo"),
        ("nerves_fw_version", "1.0.0"),
    ]);
    config.fwup_version = Some("1.13.2".into());
    config.console = Some(ConsoleOptions::default());
    config.extensions = Some(ExtensionsOptions {
        health: Some(HealthOptions::default()),
        ..ExtensionsOptions::default()
    });
    config
}

#[tokio::test]
async fn the_device_flow_runs_over_msgpack() {
    let server = server().await;
    let control = server.control();
    let device = connected(device_config(&server)).await;
    assert_eq!(
        control.connections().await[0].serializer,
        Serializer::MsgPack
    );
    let join = &received(&server, "phx_join", 1).await[0];
    assert_eq!(
        join["nerves_fw_uuid"],
        "11111111-1111-1111-1111-111111111111"
    );

    // Extensions: negotiated after extensions:get, then a health report.
    control
        .wait_for("extensions", "health:attached", 1, WAIT)
        .await
        .expect("health attached");
    assert_eq!(
        control
            .push("extensions", "health:check", json(j!({})))
            .await,
        1
    );
    wait(&device, "HealthCheck", |e| {
        matches!(e, DeviceEvent::Extension(ExtensionEvent::HealthCheck))
    })
    .await;
    let report = control
        .wait_for("extensions", "health:report", 1, WAIT)
        .await
        .expect("report");
    let value = report[0].message.payload.to_value().expect("JSON")["value"].clone();
    // Sent as a MessagePack timestamp; NervesHub (and the dev server) read it as this text.
    let ts = value["timestamp"].as_str().unwrap_or_default().to_owned();
    assert!(
        ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{value}"
    );
    assert!(value["metrics"].is_object(), "{value}");

    // Console both ways.
    control
        .wait_joined("console", 1, WAIT)
        .await
        .expect("console joined");
    assert_eq!(
        control
            .push("console", "dn", json(j!({"data": "ls\n"})))
            .await,
        1
    );
    let event = wait(&device, "Console", |e| matches!(e, DeviceEvent::Console(_))).await;
    assert!(
        matches!(&event, DeviceEvent::Console(ConsoleEvent::Input(d)) if d == "ls\n"),
        "{event:?}"
    );
    device
        .console()
        .expect("console")
        .send_output("file.txt\r\n")
        .expect("sent");
    let up = control
        .wait_for("console", "up", 1, WAIT)
        .await
        .expect("up");
    assert_eq!(
        up[0].message.payload.to_value(),
        Some(j!({"data": "file.txt\r\n"}))
    );

    // An update, with statuses and progress.
    let image = random_image(200_000, 3);
    let added = server
        .firmware()
        .add("fw-mp", image.clone())
        .expect("image added");
    assert_eq!(
        control
            .push("device", "update", json(added["update"].clone()))
            .await,
        1
    );
    let DeviceEvent::UpdateAvailable(info) = wait(&device, "UpdateAvailable", |e| {
        matches!(e, DeviceEvent::UpdateAvailable(_))
    })
    .await
    else {
        unreachable!()
    };
    let dir = std::env::temp_dir().join(format!("nhc-msgpack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fw.img");
    device
        .apply_update(&info, UpdateOptions::new(SinkSpec::File(path.clone())))
        .expect("update starts");
    update_finished_ok(&device).await;
    assert_eq!(std::fs::read(&path).expect("image written"), image);
    std::fs::remove_dir_all(&dir).ok();
    let statuses = wait_status(&server, "completed").await;
    assert_eq!(statuses[0]["status"], "received");
    let progress = received(&server, "fwup_progress", 1).await;
    assert!(
        progress[0]["value"].is_u64() && progress[0]["stage"].is_string(),
        "{progress:?}"
    );
}
