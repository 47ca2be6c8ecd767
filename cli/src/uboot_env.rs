//! The running firmware's metadata and validation state from a binary U-Boot
//! environment at an offset of a file or block device (what `fw_env.config`
//! names), decoded by the library: after an update and a reboot the next
//! run reports the slot fwup switched to.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use nerves_hub_channel::nerves_hub::{
    uboot_env, FirmwareMetadata, FirmwareValidatedFn, UbootEnvLayout,
};

use crate::args::UbootEnv;

impl UbootEnv {
    fn layout(&self) -> UbootEnvLayout {
        if self.redundant {
            UbootEnvLayout::Redundant
        } else {
            UbootEnvLayout::Single
        }
    }

    /// Every `key=value` of the environment, read fresh from the device.
    fn entries(&self) -> Result<BTreeMap<String, String>, String> {
        let copies = if self.redundant { 2 } else { 1 };
        let mut image = Vec::with_capacity(copies * self.size);
        let where_ = format!("{} at offset {}", self.path.display(), self.offset);
        File::open(&self.path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(self.offset))?;
                // A redundant environment may hold one copy only: take what is there.
                f.take((copies * self.size) as u64).read_to_end(&mut image)
            })
            .map_err(|e| format!("cannot read the U-Boot environment {where_}: {e}"))?;
        uboot_env::parse(&image, self.size, self.layout()).map_err(|e| format!("{where_}: {e}"))
    }

    /// The active slot's `nerves_fw_*` keys.
    pub fn metadata(&self) -> Result<FirmwareMetadata, String> {
        FirmwareMetadata::from_env_entries(&self.entries()?).map_err(|e| e.to_string())
    }

    /// `nerves_fw_validated` (`1`: validated), re-read at every poll.
    pub fn validated_fn(&self) -> FirmwareValidatedFn {
        let env = self.clone();
        Arc::new(move || {
            let entries = env.entries().ok()?;
            entries.get("nerves_fw_validated").map(|v| v == "1")
        })
    }
}
