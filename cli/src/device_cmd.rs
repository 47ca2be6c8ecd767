//! `nhc device`: one device in the foreground, the interactive front-end of
//! the agent's code (`device_runner`): prints its events (text or `--json`)
//! and applies updates into a directory or with fwup; never reboots the host.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::fwup_keys::validate_key;
use nerves_hub_channel::nerves_hub::update::{SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, UpdatePolicy};

use crate::args::DeviceArgs;
use crate::connection::{apply_metadata, detect_fwup_version, device_config};
use crate::device_runner::{self, Plan};
use crate::event_output::Output;

pub fn run(o: DeviceArgs) -> Result<(), String> {
    let mut config = device_config(&o.connection, &o.knobs, None, None)?;
    apply_metadata(&mut config, &o.metadata)?;
    if let Some(disk) = &o.fwup_device {
        for key in &o.fwup_public_key {
            validate_key(key).map_err(|e| format!("--fwup-public-key: {e}"))?;
        }
        let fwup = o.fwup.clone().unwrap_or_else(|| "fwup".into());
        if config.fwup_version.is_none() {
            config.fwup_version = detect_fwup_version(&fwup);
        }
        config.fwup_public_keys = o.fwup_public_key.clone();
        config.allow_unverified_firmware = o.allow_unverified_firmware;
        // Automatic, as nerves_hub_link: the library skips the firmware that
        // already runs, asks the server for keys when none is given, and
        // refuses (fail closed) while it knows none.
        config.update_policy = UpdatePolicy::Auto(UpdateOptions::new(fwup_sink(
            fwup,
            &disk.display().to_string(),
            &o.fwup_task,
        )));
    }
    crate::signals::install();
    let device = Device::new(config).map_err(|e| e.to_string())?;
    let plan = Plan {
        output: if o.json { Output::Json } else { Output::Text },
        firmware_dir: match o.fwup_device {
            Some(_) => None,
            None => Some(o.firmware_dir.unwrap_or_else(|| PathBuf::from("."))),
        },
        ignore_offers: false,
        exit_after_update: o.exit_after_update,
        deadline: o
            .duration
            .map(|secs| Instant::now() + Duration::from_secs(secs)),
        reboot_command: None,
    };
    device_runner::run(&device, &plan)
}

/// `fwup --apply --no-unmount -d DISK --task TASK` (the library adds
/// `--framing` and the public keys).
pub fn fwup_sink(command: String, disk: &str, task: &str) -> SinkSpec {
    SinkSpec::Fwup {
        command,
        args: ["--apply", "--no-unmount", "-d", disk, "--task", task]
            .map(str::to_owned)
            .to_vec(),
    }
}
