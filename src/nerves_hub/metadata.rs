//! Firmware metadata sent in the `device` join: the running firmware's
//! `nerves_fw_*` keys, given by the user, read from a fwup/U-Boot
//! environment dump (`fw_printenv` output), or decoded from a binary U-Boot
//! environment image (see [`super::uboot_env`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::uboot_env::{self, UbootEnvLayout};
use crate::error::{Error, Result};

/// The key NervesHub identifies the running firmware by.
pub const UUID_KEY: &str = "nerves_fw_uuid";
const ACTIVE_KEY: &str = "nerves_fw_active";
const VALIDATED_KEY: &str = "nerves_fw_validated";

/// Metadata of the running firmware, as `key -> value` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirmwareMetadata {
    entries: BTreeMap<String, String>,
    /// The previous slot failed validation and the bootloader went back to
    /// this one (reported as `meta.firmware_auto_revert_detected`).
    pub auto_revert_detected: bool,
}

impl FirmwareMetadata {
    pub fn new() -> FirmwareMetadata {
        FirmwareMetadata::default()
    }

    /// Metadata from `(key, value)` pairs, e.g. `nerves_fw_uuid`, `nerves_fw_product`.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> FirmwareMetadata
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut metadata = FirmwareMetadata::new();
        for (k, v) in pairs {
            metadata.set(k, v);
        }
        metadata
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// `nerves_fw_uuid`, which NervesHub identifies the firmware by.
    pub fn uuid(&self) -> Option<&str> {
        self.get(UUID_KEY)
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// Reads a `fw_printenv`-style file (see [`FirmwareMetadata::parse_env`]).
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<FirmwareMetadata> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot read the firmware environment {}: {e}",
                path.display()
            ))
        })?;
        FirmwareMetadata::parse_env(&text).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses `key=value` lines as printed by `fw_printenv` (or a fwup
    /// U-Boot environment in text form). With A/B slots, the keys of the slot
    /// named by `nerves_fw_active` (`a.` or `b.` prefix) are kept with the
    /// prefix stripped; unprefixed `nerves_*` keys are kept too (the active
    /// slot wins on a clash). Everything else is ignored.
    pub fn parse_env(text: &str) -> Result<FirmwareMetadata> {
        let mut all = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            // Values may contain '='; keys may not.
            if let Some((key, value)) = line.split_once('=') {
                all.insert(key.trim().to_owned(), value.to_owned());
            }
        }
        FirmwareMetadata::from_env_entries(&all)
    }

    /// Reads a binary U-Boot environment image (what `fw_printenv` reads
    /// from the environment partition) of `env_size` bytes per copy; the
    /// CRC is checked, and the keys are selected as by [`FirmwareMetadata::parse_env`].
    pub fn from_uboot_env_image(
        path: impl AsRef<Path>,
        env_size: usize,
        layout: UbootEnvLayout,
    ) -> Result<FirmwareMetadata> {
        let path = path.as_ref();
        let all = uboot_env::read(path, env_size, layout)?;
        FirmwareMetadata::from_env_entries(&all).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Decodes an in-memory binary U-Boot environment image (see
    /// [`FirmwareMetadata::from_uboot_env_image`]).
    pub fn parse_uboot_env_image(
        image: &[u8],
        env_size: usize,
        layout: UbootEnvLayout,
    ) -> Result<FirmwareMetadata> {
        FirmwareMetadata::from_env_entries(&uboot_env::parse(image, env_size, layout)?)
    }

    /// The metadata in a whole environment's `key -> value` entries: the
    /// active slot's keys, prefix stripped, and the unprefixed `nerves_*` keys.
    pub fn from_env_entries(all: &BTreeMap<String, String>) -> Result<FirmwareMetadata> {
        let mut metadata = FirmwareMetadata::new();
        for (key, value) in all {
            if key.starts_with("nerves_") {
                metadata.set(key.clone(), value.clone());
            }
        }
        let Some(active) = all.get(ACTIVE_KEY).map(|s| s.trim().to_owned()) else {
            return Ok(metadata);
        };
        let prefix = format!("{active}.");
        let mut found = false;
        for (key, value) in all {
            if let Some(stripped) = key.strip_prefix(&prefix) {
                metadata.set(stripped, value.clone());
                found = true;
            }
        }
        if !found {
            return Err(Error::InvalidArgument(format!(
                "nerves_fw_active is {active:?} but there is no {prefix:?}-prefixed key"
            )));
        }
        let other = match active.as_str() {
            "a" => Some("b"),
            "b" => Some("a"),
            _ => None,
        };
        if let Some(other) = other {
            metadata.auto_revert_detected = revert_detected(all, other);
        }
        Ok(metadata)
    }
}

/// Link's heuristic: the other slot holds a real firmware that was never
/// validated, so the bootloader must have reverted from it.
fn revert_detected(all: &BTreeMap<String, String>, slot: &str) -> bool {
    let get = |k: &str| all.get(&format!("{slot}.{k}")).map(|v| v.trim());
    let present = |k: &str| get(k).is_some_and(|v| !v.is_empty());
    get(VALIDATED_KEY) == Some("0")
        && present("nerves_fw_platform")
        && present("nerves_fw_architecture")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "\
a.nerves_fw_uuid=aaaa-1
a.nerves_fw_product=demo
a.nerves_fw_version=1.0.0
a.nerves_fw_platform=rpi4
a.nerves_fw_architecture=arm
b.nerves_fw_uuid=bbbb-2
b.nerves_fw_version=1.1.0
b.nerves_fw_platform=rpi4
b.nerves_fw_architecture=arm
b.nerves_fw_validated=0
nerves_fw_active=b
nerves_fw_devpath=/dev/mmcblk0
nerves_serial_number=1234
bootcmd=run x=y
";

    #[test]
    fn active_slot_keys_are_stripped_and_kept() {
        let m = FirmwareMetadata::parse_env(ENV).unwrap();
        assert_eq!(m.uuid(), Some("bbbb-2"));
        assert_eq!(m.get("nerves_fw_version"), Some("1.1.0"));
        assert_eq!(m.get("nerves_fw_product"), None, "a.* keys are not active");
        assert_eq!(m.get("nerves_fw_devpath"), Some("/dev/mmcblk0"));
        assert_eq!(m.get("nerves_serial_number"), Some("1234"));
        assert_eq!(m.get("bootcmd"), None);
        assert_eq!(m.get("nerves_fw_validated"), Some("0"));
        assert!(!m.auto_revert_detected);
    }

    #[test]
    fn revert_is_detected_from_the_other_slot() {
        let env = ENV.replace("nerves_fw_active=b", "nerves_fw_active=a");
        let m = FirmwareMetadata::parse_env(&env).unwrap();
        assert_eq!(m.uuid(), Some("aaaa-1"));
        assert!(m.auto_revert_detected);
    }

    #[test]
    fn values_keep_equal_signs_and_blank_lines_are_skipped() {
        let m = FirmwareMetadata::parse_env("\n# c\nnerves_fw_misc=a=b\r\n").unwrap();
        assert_eq!(m.get("nerves_fw_misc"), Some("a=b"));
    }

    #[test]
    fn an_active_slot_without_keys_is_an_error() {
        let err = FirmwareMetadata::parse_env("nerves_fw_active=c\n").unwrap_err();
        assert!(err.to_string().contains("\"c.\""), "{err}");
    }

    #[test]
    fn a_binary_uboot_image_gives_the_same_metadata_as_its_text_form() {
        let pairs: Vec<(&str, &str)> = ENV.lines().filter_map(|l| l.split_once('=')).collect();
        let image = crate::nerves_hub::uboot_env::tests::image(&pairs, 4096, Some(1));
        let from_image =
            FirmwareMetadata::parse_uboot_env_image(&image, 4096, UbootEnvLayout::Redundant)
                .unwrap();
        assert_eq!(from_image, FirmwareMetadata::parse_env(ENV).unwrap());

        let path = std::env::temp_dir().join(format!("nhc-uboot-{}.img", std::process::id()));
        std::fs::write(&path, &image).unwrap();
        let from_file =
            FirmwareMetadata::from_uboot_env_image(&path, 4096, UbootEnvLayout::Redundant);
        let wrong = FirmwareMetadata::from_uboot_env_image(&path, 4096, UbootEnvLayout::Single);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file.unwrap().uuid(), Some("bbbb-2"));
        let err = wrong.unwrap_err().to_string();
        assert!(
            err.contains("CRC mismatch") && err.contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = FirmwareMetadata::from_env_file("/nonexistent/fw.env").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/fw.env"), "{err}");
    }
}
