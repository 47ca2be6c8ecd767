//! Downloading an archive (the `archive` event): the firmware download
//! pipeline (redirects, Range resume, retries, size check, sinks) without
//! the update's status reports, which NervesHub defines only for firmware.

use std::sync::Arc;

use super::device_events::ArchiveInfo;
use super::update::{
    start_update, Stage, UpdateHandle, UpdateOptions, UpdateReporter, UpdateStatus,
};
use super::update_info::{FirmwareMeta, UpdateInfo};
use crate::error::Result;

/// Archives are not reported to the server: nothing to do with progress.
struct Silent;

impl UpdateReporter for Silent {
    fn status(&self, _status: UpdateStatus) {}
    fn progress(&self, _stage: Stage, _percent: u8) {}
}

/// Starts downloading `archive` into the options' sink. The archive payload
/// carries no checksum: verifying it (e.g. `fwup --verify` with the archive
/// public keys) is the sink's job, as in nerves_hub_link.
pub fn start_archive_download(
    archive: &ArchiveInfo,
    options: UpdateOptions,
) -> Result<UpdateHandle> {
    let info = UpdateInfo {
        update_available: true,
        firmware_url: archive.url.clone(),
        firmware_meta: FirmwareMeta {
            uuid: archive.uuid.clone(),
            version: archive.version.clone(),
            description: archive.description.clone(),
            platform: archive.platform.clone(),
            architecture: archive.architecture.clone(),
            ..FirmwareMeta::default()
        },
        size: archive.size,
        checksum: None,
        partials_checksums: Vec::new(),
        deployment_id: None,
        raw: archive.raw.clone(),
    };
    start_update(info, options, Arc::new(Silent))
}
