//! `update` payloads from the server: arbitrary JSON must parse into an
//! `UpdateInfo` or give an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = UpdateInfo::parse(&value);
    }
});
