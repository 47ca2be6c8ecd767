//! `nhc device`: one device that prints its events and applies updates.

use std::path::PathBuf;
use std::time::Duration;

use nerves_hub_channel::event::identity_in_use_reason;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, DeviceEvent};
use nerves_hub_channel::Event;

use crate::args::Options;
use crate::connection::device_config;

pub fn run(o: Options) -> Result<(), String> {
    let config = device_config(&o, None)?;
    let firmware_dir = o.firmware_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let device = Device::new(config).map_err(|e| e.to_string())?;
    device.connect().map_err(|e| e.to_string())?;
    loop {
        // Wake up now and then so a closed stdout or a signal is noticed.
        let Some(event) = device.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        match event {
            DeviceEvent::UpdateAvailable(info) => {
                let path = firmware_dir.join(format!("{}.fw", info.firmware_meta.uuid));
                println!("update: {} -> {}", info.firmware_meta.uuid, path.display());
                let options = UpdateOptions::new(SinkSpec::File(path));
                if let Err(e) = device.apply_update(&info, options) {
                    println!("update: cannot apply: {e}");
                }
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
                    device.close();
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
