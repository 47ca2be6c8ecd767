//! `nhc device`: one device that prints its events and applies updates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nerves_hub_channel::event::identity_in_use_reason;
use nerves_hub_channel::nerves_hub::fwup_keys::{validate_key, REFUSED_NO_KEYS};
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, DeviceEvent, UpdatePolicy};
use nerves_hub_channel::Event;

use crate::args::Options;
use crate::connection::device_config;

pub fn run(o: Options) -> Result<(), String> {
    let mut config = device_config(&o, None)?;
    if let Some(disk) = &o.fwup_device {
        for key in &o.fwup_public_keys {
            validate_key(key).map_err(|e| format!("--fwup-public-key: {e}"))?;
        }
        config.fwup_public_keys = o.fwup_public_keys.clone();
        config.allow_unverified_firmware = o.allow_unverified_firmware;
        // Automatic, as nerves_hub_link: the library skips the firmware that
        // already runs, asks the server for keys when none is given, and
        // refuses (fail closed) while it knows none.
        let sink = SinkSpec::Fwup {
            command: o.fwup.clone().unwrap_or_else(|| "fwup".into()),
            args: vec![
                "--apply".into(),
                "--no-unmount".into(),
                "-d".into(),
                disk.display().to_string(),
                "--task".into(),
                o.fwup_task.clone(),
            ],
        };
        config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(sink));
    }
    let firmware_dir = o.firmware_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let device = Device::new(config).map_err(|e| e.to_string())?;
    device.connect().map_err(|e| e.to_string())?;
    loop {
        // Wake up now and then so a closed stdout or a signal is noticed.
        let Some(event) = device.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        match event {
            DeviceEvent::UpdateAvailable(info) => match &o.fwup_device {
                Some(disk) => println!(
                    "update: {} -> fwup task {} on {}",
                    info.firmware_meta.uuid,
                    o.fwup_task,
                    disk.display()
                ),
                None => {
                    let path = firmware_dir.join(format!("{}.fw", info.firmware_meta.uuid));
                    println!("update: {} -> {}", info.firmware_meta.uuid, path.display());
                    let options = UpdateOptions::new(SinkSpec::File(path));
                    if let Err(e) = device.apply_update(&info, options) {
                        println!("update: cannot apply: {e}");
                    }
                }
            },
            DeviceEvent::UpdateIgnored { uuid, reason } => {
                println!("update: {uuid} not applied: {reason}");
                // Refused for want of keys (reported `failed`): the update ended.
                if o.exit_after_update && reason == REFUSED_NO_KEYS {
                    close(&device);
                    return Err("the update failed".into());
                }
            }
            DeviceEvent::FwupPublicKeys(keys) => {
                println!("fwup public keys: {} from the server", keys.len())
            }
            DeviceEvent::UpdateProgress { stage, percent } => {
                println!("update: {} {percent}%", stage.as_str())
            }
            DeviceEvent::UpdateFinished { ok, reason } => {
                match reason {
                    Some(r) => println!("update: finished ok={ok}: {r}"),
                    None => println!("update: finished ok={ok}"),
                }
                if o.exit_after_update {
                    close(&device);
                    return if ok {
                        Ok(())
                    } else {
                        Err("the update failed".into())
                    };
                }
            }
            DeviceEvent::Reboot => println!("reboot requested (nhc does not reboot the host)"),
            DeviceEvent::Identify => println!("identify requested"),
            DeviceEvent::Socket(Event::Closed) => return Ok(()),
            DeviceEvent::Socket(Event::IdentityInUse { sessions }) => {
                println!("identity in use: {}", identity_in_use_reason(sessions))
            }
            DeviceEvent::Socket(e) => println!("{e:?}"),
            other => println!("{other:?}"),
        }
    }
}

/// Closes the connection once what was queued (the last status report) is
/// sent: `close` only asks for it, and `Closed`, the last event, says it is
/// done. Bounded, in case the library's thread is gone.
fn close(device: &Device) {
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
