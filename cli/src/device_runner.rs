//! The event loop of one device, shared by `nhc device` (interactive) and
//! `nhc agent` (daemon): shows each event, applies updates the way the plan
//! says, reboots when the plan has a reboot command, and leaves cleanly on
//! SIGTERM/SIGINT, at the deadline, or after the first update.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::fwup_keys::REFUSED_NO_KEYS;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, DeviceEvent};
use nerves_hub_channel::{Event, Payload};
use serde_json::json;

use crate::event_output::Output;
use crate::signals;

/// What the loop does besides showing events.
pub struct Plan {
    pub output: Output,
    /// Manual policy: each offered update is stored as `<dir>/<uuid>.fw`.
    /// `None`: the device decides itself (`UpdatePolicy::Auto`).
    pub firmware_dir: Option<PathBuf>,
    /// Manual policy without a directory: offers are declined (`ignored`).
    pub ignore_offers: bool,
    pub exit_after_update: bool,
    pub deadline: Option<Instant>,
    /// Run after a successful update (after `rebooting` is sent) and when
    /// the server asks for a reboot. `None`: the host is never rebooted.
    pub reboot_command: Option<Vec<String>>,
}

pub fn run(device: &Device, plan: &Plan) -> Result<(), String> {
    device.connect().map_err(|e| e.to_string())?;
    loop {
        if let Some(signal) = signals::stop_requested() {
            return stop(device, plan, signal);
        }
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            plan.output.show(
                &json!({"event": "stopping", "reason": "duration"}),
                "duration over: stopping",
            );
            close(device);
            return Ok(());
        }
        // Wake up now and then so a signal or the deadline is noticed.
        let Some(event) = device.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        plan.output.event(&event);
        match event {
            DeviceEvent::UpdateAvailable(info) => {
                if let Some(dir) = &plan.firmware_dir {
                    let path = dir.join(format!("{}.fw", info.firmware_meta.uuid));
                    plan.output.show(
                        &json!({"event": "update_applying", "path": path}),
                        &format!("update: {} -> {}", info.firmware_meta.uuid, path.display()),
                    );
                    let options = UpdateOptions::new(SinkSpec::File(path));
                    if let Err(e) = device.apply_update(&info, options) {
                        plan.output.show(
                            &json!({"event": "update_error", "reason": e.to_string()}),
                            &format!("update: cannot apply: {e}"),
                        );
                    }
                } else if plan.ignore_offers {
                    let _ = device.ignore_update("no firmware sink is configured");
                }
            }
            // Refused for want of keys (reported `failed`): the update ended.
            DeviceEvent::UpdateIgnored { reason, .. }
                if plan.exit_after_update && reason == REFUSED_NO_KEYS =>
            {
                close(device);
                return Err("the update failed".into());
            }
            DeviceEvent::UpdateFinished { ok, .. } => {
                if ok && plan.reboot_command.is_some() {
                    // As nerves_hub_link: tell the server, then reboot.
                    let _ = device.device_channel().cast(
                        "rebooting",
                        Payload::json(&json!({})),
                        Duration::from_secs(10),
                    );
                    return reboot(device, plan);
                }
                if plan.exit_after_update {
                    close(device);
                    return if ok {
                        Ok(())
                    } else {
                        Err("the update failed".into())
                    };
                }
            }
            // `rebooting` was sent by the library.
            DeviceEvent::Reboot if plan.reboot_command.is_some() => return reboot(device, plan),
            DeviceEvent::Reboot => plan.output.show(
                &json!({"event": "reboot_skipped", "reason": "no reboot command"}),
                "nhc does not reboot the host",
            ),
            DeviceEvent::ScriptRun { script_ref, .. } => {
                // The CLI runs no server-sent code; it says so.
                let _ =
                    device.script_result(&script_ref, "error", "", "scripts are not run by nhc");
            }
            DeviceEvent::Socket(Event::Closed) => return Ok(()),
            _ => {}
        }
    }
}

/// Leaves on a signal: an update in progress is reported (the server hears
/// `failed` "Update cancelled" and offers it again at the next join).
fn stop(device: &Device, plan: &Plan, signal: &str) -> Result<(), String> {
    let updating = device.update_in_progress();
    plan.output.show(
        &json!({"event": "stopping", "reason": signal, "update_in_progress": updating}),
        &format!("{signal}: stopping (update in progress: {updating})"),
    );
    // A file sink keeps what it stored: the next run of the same update resumes.
    if updating && device.suspend_update() {
        // The cancelled update reports `failed` from its own task: wait for
        // its end (bounded) so the report is queued before the close.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(event) = device.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            plan.output.event(&event);
            if matches!(event, DeviceEvent::UpdateFinished { .. }) {
                break;
            }
        }
    }
    close(device);
    Ok(())
}

/// Flushes (the `rebooting` report goes out first), then runs the command.
fn reboot(device: &Device, plan: &Plan) -> Result<(), String> {
    let Some((program, args)) = plan.reboot_command.as_ref().and_then(|c| c.split_first()) else {
        return Err("no reboot command".into());
    };
    plan.output.show(
        &json!({"event": "rebooting", "command": plan.reboot_command}),
        &format!("rebooting with {program}"),
    );
    close(device);
    // Its stdout would mix with the JSON events.
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run the reboot command {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the reboot command {program} failed ({status})"))
    }
}

/// Closes the connection once what was queued (the last status report) is
/// sent: `close` only asks for it, and `Closed`, the last event, says it is
/// done. Bounded, in case the library's thread is gone.
pub fn close(device: &Device) {
    device.close();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(DeviceEvent::Socket(Event::Closed)) =
            device.recv_timeout(Duration::from_millis(200))
        {
            return;
        }
    }
}
