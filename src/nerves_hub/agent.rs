//! The agent task: consumes the socket's events, answers what NervesHub
//! expects an answer to, and turns the rest into `DeviceEvent`s, in order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use serde_json::json;

use super::device::Core;
use super::device_config::UpdatePolicy;
use super::device_events::{parse_keys, parse_script, ArchiveInfo, DeviceEvent};
use super::http::netif::interface_for;
use super::update::UpdateStatus;
use super::update_flow::{self, UpdatePhase};
use super::update_info::UpdateInfo;
use crate::channel::ChannelState;
use crate::event::Event;
use crate::message::Payload;

const NO_SCRIPTS: &str = "scripts are not supported on this device";

pub(crate) async fn run(core: Arc<Core>) {
    while let Some(event) = core.socket.next_event().await {
        if !wait_for_room(&core).await {
            // Nobody will read: keep draining the socket until it has closed.
            continue;
        }
        handle(&core, event);
    }
    core.queue.close();
}

/// Back-pressure: while the device queue is full the agent stops taking
/// socket events, so the socket stops reading. False once the device is gone.
async fn wait_for_room(core: &Core) -> bool {
    loop {
        if core.is_abandoned.load(Ordering::Acquire) {
            return false;
        }
        if !core.queue.is_full() {
            return true;
        }
        tokio::select! {
            () = core.queue.space_available() => {}
            () = core.abandoned.notified() => {}
        }
    }
}

fn handle(core: &Arc<Core>, event: Event) {
    if let Some(console) = &core.console {
        if let Some(decoded) = console.handle(&event) {
            core.emit(DeviceEvent::Console(decoded));
            return;
        }
    }
    if let Some(extensions) = &core.extensions {
        if concerns(extensions.channel().id(), &event) {
            // Messages and replies of the extensions channel are theirs;
            // lifecycle events also pass through, like any channel's.
            let lifecycle = !matches!(event, Event::Message { .. } | Event::Reply { .. });
            let decoded = extensions.handle(&event);
            if lifecycle {
                core.emit(DeviceEvent::Socket(event));
            }
            if let Some(decoded) = decoded {
                core.emit(DeviceEvent::Extension(decoded));
            }
            return;
        }
    }
    match event {
        Event::Message {
            channel,
            topic,
            event,
            payload,
        } if channel == core.channel.id() => device_message(core, topic, event, payload),
        Event::Joined { channel, .. } if channel == core.channel.id() => {
            report_interface(core);
            if core.join.validated() == Some(false) {
                start_validation_poller(core);
            }
            core.emit(DeviceEvent::Socket(event));
        }
        Event::ChannelClosed {
            channel,
            ref reason,
            ..
        } if channel == core.channel.id() && reason == "phx_close" => {
            // NervesHub has no reason to end the device channel for good:
            // by default rejoin rather than sit un-joined.
            if let Some(delay) = core.rejoin_after_close {
                schedule_rejoin(core, delay);
            }
            core.emit(DeviceEvent::Socket(event));
        }
        other => core.emit(DeviceEvent::Socket(other)),
    }
}

/// After every `device` join, the interface the socket uses, as
/// nerves_hub_link 2.11+ does, so the server shows how the device is
/// connected. `Device::report_network_interface` can still say otherwise.
fn report_interface(core: &Core) {
    let Some(addr) = core.socket.local_addr() else {
        return;
    };
    match interface_for(addr.ip()) {
        Some(name) => core.cast("report_network_interface", json!({"interface": name})),
        None => log::warn!(
            "no network interface owns {}: report_network_interface not sent",
            addr.ip()
        ),
    }
}

fn concerns(id: crate::event::ChannelId, event: &Event) -> bool {
    match event {
        Event::Joined { channel, .. }
        | Event::JoinFailed { channel, .. }
        | Event::ChannelError { channel, .. }
        | Event::ChannelClosed { channel, .. }
        | Event::Message { channel, .. }
        | Event::Reply { channel, .. } => *channel == id,
        _ => false,
    }
}

fn invalid(core: &Core, event: String, detail: String, payload: Payload) {
    log::warn!("device event {event:?} ignored: {detail}");
    core.emit(DeviceEvent::InvalidMessage {
        event,
        detail,
        payload,
    });
}

fn device_message(core: &Arc<Core>, topic: String, event: String, payload: Payload) {
    let value = payload.to_value();
    let Some(value) = value.filter(|_| is_known(&event)) else {
        core.emit(DeviceEvent::Other {
            topic,
            event,
            payload,
        });
        return;
    };
    match event.as_str() {
        "update" => match UpdateInfo::parse(&value) {
            Ok(info) if !info.update_available => core.emit(DeviceEvent::Other {
                topic,
                event,
                payload,
            }),
            Ok(info) => update(core, info),
            Err(e) => unusable_update(core, event, e.to_string(), payload),
        },
        "reboot" => {
            // The server expects the acknowledgement before the device goes away.
            core.cast("rebooting", json!({}));
            core.emit(DeviceEvent::Reboot);
        }
        "identify" => core.emit(DeviceEvent::Identify),
        "archive" => match ArchiveInfo::parse(&value) {
            Ok(info) => {
                *core.archive.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
                core.emit(DeviceEvent::Archive(info))
            }
            Err(e) => invalid(core, event, e, payload),
        },
        "fwup_public_keys" => match parse_keys(&value) {
            Ok(keys) => {
                core.fwup_keys.replace(&keys);
                core.emit(DeviceEvent::FwupPublicKeys(keys))
            }
            Err(e) => invalid(core, event, e, payload),
        },
        "archive_public_keys" => match parse_keys(&value) {
            Ok(keys) => core.emit(DeviceEvent::ArchivePublicKeys(keys)),
            Err(e) => invalid(core, event, e, payload),
        },
        "scripts/run" => match parse_script(&value) {
            Ok((script_ref, text)) if core.scripts => {
                core.emit(DeviceEvent::ScriptRun { script_ref, text })
            }
            Ok((script_ref, _)) => core.cast(
                "scripts/run",
                json!({"ref": script_ref, "result": "error", "output": NO_SCRIPTS, "return": "nil"}),
            ),
            Err(e) => invalid(core, event, e, payload),
        },
        "extensions:get" => {
            extensions_get(core);
            core.emit(DeviceEvent::ExtensionsGet);
        }
        _ => core.emit(DeviceEvent::Other {
            topic,
            event,
            payload,
        }),
    }
}

/// An `update` the device cannot use is a failed update for the server:
/// it must hear `failed` with the reason, or it waits for an update that
/// never starts (nerves_hub_web accepts a status without an update in
/// flight). While another update is being applied the status would speak
/// for that one, so then it is only logged and emitted.
fn unusable_update(core: &Core, event: String, detail: String, payload: Payload) {
    if !matches!(*core.lock_update(), UpdatePhase::Applying { .. }) {
        core.report(&UpdateStatus::Failed {
            reason: format!("Update failed : {detail}"),
        });
    }
    invalid(core, event, detail, payload);
}

fn is_known(event: &str) -> bool {
    matches!(
        event,
        "update"
            | "reboot"
            | "identify"
            | "archive"
            | "fwup_public_keys"
            | "archive_public_keys"
            | "scripts/run"
            | "extensions:get"
    )
}

fn update(core: &Arc<Core>, info: UpdateInfo) {
    let uuid = info.firmware_meta.uuid.clone();
    {
        let mut phase = core.lock_update();
        if matches!(*phase, UpdatePhase::Applying { .. }) {
            // As in nerves_hub_link: one update at a time; the server re-offers later.
            log::info!("update {uuid} offered while another is being applied; ignored");
            return;
        }
        let auto_sink = match &core.policy {
            UpdatePolicy::Auto(options) => Some(&options.sink),
            UpdatePolicy::Manual => None,
        };
        if update_flow::refused(core, auto_sink) {
            *phase = UpdatePhase::Idle;
            drop(phase);
            // Before `received`, as link does: the offer is never considered.
            let reason = update_flow::refuse(core, &uuid);
            core.emit(DeviceEvent::UpdateIgnored { uuid, reason });
            return;
        }
        *phase = match &core.policy {
            UpdatePolicy::Manual => UpdatePhase::Pending(info.clone()),
            UpdatePolicy::Auto(_) => UpdatePhase::Idle,
        };
    }
    core.report(&UpdateStatus::Received);
    core.emit(DeviceEvent::UpdateAvailable(info.clone()));
    let UpdatePolicy::Auto(options) = &core.policy else {
        return;
    };
    if core.join.running_uuid().as_deref() == Some(uuid.as_str()) {
        let reason = "this firmware is already running".to_owned();
        core.report(&UpdateStatus::Ignored {
            reason: reason.clone(),
        });
        core.emit(DeviceEvent::UpdateIgnored { uuid, reason });
        return;
    }
    if let Err(e) = update_flow::apply(core, info, options.clone()) {
        log::warn!("automatic update {uuid} could not start: {e}");
    }
}

/// Joins `extensions` with what the device offers; a device without
/// extensions stays silent, as link does when it has none.
fn extensions_get(core: &Arc<Core>) {
    if let Some(extensions) = &core.extensions {
        if let Err(e) = extensions.on_extensions_get() {
            log::warn!("cannot join extensions: {e}");
        }
    }
}

fn schedule_rejoin(core: &Arc<Core>, delay: std::time::Duration) {
    let weak: Weak<Core> = Arc::downgrade(core);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Some(core) = weak.upgrade() else { return };
        if core.is_abandoned.load(Ordering::Acquire) || core.channel.state() != ChannelState::Closed
        {
            return;
        }
        if let Err(e) = core.channel.join() {
            log::debug!("device channel rejoin not sent: {e}");
        }
    });
}

/// Polls the firmware-validated provider (off the I/O threads) until it
/// says true, then tells the server once.
fn start_validation_poller(core: &Arc<Core>) {
    let Some(provider) = core.validated_fn.clone() else {
        return;
    };
    {
        let mut running = core
            .poller_running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *running {
            return;
        }
        *running = true;
    }
    let weak: Weak<Core> = Arc::downgrade(core);
    let interval = core.poll_interval;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(core) = weak.upgrade() else { return };
            if core.is_abandoned.load(Ordering::Acquire) || core.join.validated() == Some(true) {
                break;
            }
            let provider = provider.clone();
            let answer = tokio::task::spawn_blocking(move || provider())
                .await
                .unwrap_or_else(|_| {
                    log::error!("the firmware_validated provider panicked");
                    None
                });
            if answer == Some(true) {
                core.join.set_validated(Some(true));
                core.cast("firmware_validated", json!({}));
                break;
            }
        }
        if let Some(core) = weak.upgrade() {
            *core
                .poller_running
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = false;
        }
    });
}
