//! Deadline-bounded waits for NervesHub device tests: the device's events,
//! and what the dev server received on `device` (never sleeps).
#![allow(dead_code)]

use nerves_hub_channel::nerves_hub::device::Device;
use nerves_hub_channel::nerves_hub::device_config::DeviceConfig;
use nerves_hub_channel::nerves_hub::device_events::DeviceEvent;
use nerves_hub_channel::Event;
use nhc_devserver::DevServer;
use serde_json::Value;

use super::common::WAIT;

/// A device made from `config`, connected and joined on `device`.
pub async fn connected(config: DeviceConfig) -> Device {
    let device = Device::new(config).expect("valid device config");
    device.connect().expect("connect");
    wait(
        &device,
        "device joined",
        |e| matches!(e, DeviceEvent::Socket(Event::Joined { topic, .. }) if topic == "device"),
    )
    .await;
    device
}

/// Waits for the first device event matching `pred`, failing with what was seen.
pub async fn wait(
    device: &Device,
    what: &str,
    mut pred: impl FnMut(&DeviceEvent) -> bool,
) -> DeviceEvent {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, device.next_event()).await {
            Ok(Some(event)) if pred(&event) => return event,
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("event stream ended while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

/// Waits for the end of an update, which must have succeeded.
pub async fn update_finished_ok(device: &Device) {
    let finished = wait(device, "UpdateFinished", |e| {
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
}

/// The payloads of the `count` first `event`s the server received on `device`.
pub async fn received(server: &DevServer, event: &str, count: usize) -> Vec<Value> {
    server
        .control()
        .wait_for("device", event, count, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.message.payload.to_value().expect("JSON payload"))
        .collect()
}

/// Waits until the server received a `status_update` with this status;
/// every `status_update` up to it.
pub async fn wait_status(server: &DevServer, status: &str) -> Vec<Value> {
    let mut count = 1;
    loop {
        let all = received(server, "status_update", count).await;
        if all.last().is_some_and(|s| s["status"] == status) {
            return all;
        }
        count += 1;
    }
}
