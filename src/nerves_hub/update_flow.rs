//! The device's side of an update: who may start one, and the reporter that
//! turns the updater's progress into `status_update` / `fwup_progress`
//! pushes and `DeviceEvent`s.

use std::sync::{Arc, Weak};

use serde_json::json;

use super::device::Core;
use super::device_events::DeviceEvent;
use super::fwup_keys::{with_keys, REFUSED_NO_KEYS};
use super::sink::SinkSpec;
use super::update::{
    start_update, Stage, UpdateHandle, UpdateOptions, UpdateReporter, UpdateStatus, CANCELLED,
};
use super::update_info::UpdateInfo;
use crate::error::{Error, Result};

/// Where the device is with updates. One per device, so its size is moot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum UpdatePhase {
    Idle,
    /// Offered and `received` sent; waiting for the user's decision.
    Pending(UpdateInfo),
    /// Being downloaded and applied. The handle arrives once the updater started.
    Applying {
        uuid: String,
        handle: Option<UpdateHandle>,
    },
}

/// Whether an update into `sink` (`None`: not chosen yet) is refused for
/// want of fwup public keys: always with `require_fwup_keys`, and for a
/// fwup sink unless unverified firmware is allowed (fwup given no key
/// checks no signature; link refuses then too).
pub(crate) fn refused(core: &Core, sink: Option<&SinkSpec>) -> bool {
    !core.fwup_keys.available()
        && (core.require_fwup_keys
            || (!core.allow_unverified && sink.is_some_and(SinkSpec::runs_fwup)))
}

/// Starts applying `info`. Fails if another update is being applied, or
/// if no key is known and the sink needs one: then the server is told
/// `failed` (unless `require_fwup_keys` refused the offer already).
pub(crate) fn apply(core: &Arc<Core>, info: UpdateInfo, mut options: UpdateOptions) -> Result<()> {
    let uuid = info.firmware_meta.uuid.clone();
    let runtime = crate::runtime::handle()?;
    if refused(core, Some(&options.sink)) {
        if !refused(core, None) {
            let reason = refuse(core, &uuid);
            core.emit(DeviceEvent::UpdateFinished {
                ok: false,
                reason: Some(reason),
            });
        }
        return Err(Error::InvalidArgument(format!(
            "{REFUSED_NO_KEYS}: configure fwup_public_keys or let the server send them"
        )));
    }
    options.sink = with_keys(options.sink, &core.fwup_keys.get());
    {
        let mut phase = core.lock_update();
        if let UpdatePhase::Applying { uuid: current, .. } = &*phase {
            return Err(Error::InvalidArgument(format!(
                "update {current} is already being applied"
            )));
        }
        *phase = UpdatePhase::Applying {
            uuid: uuid.clone(),
            handle: None,
        };
    }
    core.join.set_downloading(Some(uuid.clone()));
    let reporter = Arc::new(DeviceReporter {
        core: Arc::downgrade(core),
    });
    match start_update(info, options, reporter) {
        Ok(handle) => {
            {
                let mut phase = core.lock_update();
                if let UpdatePhase::Applying {
                    uuid: current,
                    handle: slot @ None,
                } = &mut *phase
                {
                    if *current == uuid {
                        *slot = Some(handle.clone());
                    }
                }
            }
            let weak = Arc::downgrade(core);
            runtime.spawn(async move {
                let outcome = handle.outcome().await;
                if let Some(core) = weak.upgrade() {
                    ended(&core, &uuid, outcome);
                }
            });
            Ok(())
        }
        Err(e) => {
            finish(core, &uuid);
            let reason = format!("Update failed : {e}");
            core.report(&UpdateStatus::Failed {
                reason: reason.clone(),
            });
            core.emit(DeviceEvent::UpdateFinished {
                ok: false,
                reason: Some(reason),
            });
            Err(e)
        }
    }
}

/// Tells the server that `uuid` is refused for want of keys; the reason.
pub(crate) fn refuse(core: &Core, uuid: &str) -> String {
    let reason = REFUSED_NO_KEYS.to_owned();
    log::warn!("update {uuid} refused: {reason}");
    core.report(&UpdateStatus::Failed {
        reason: reason.clone(),
    });
    reason
}

/// The updater is done: `completed` / `failed` were reported by it, except
/// for a cancellation, which the device reports.
fn ended(core: &Core, uuid: &str, outcome: std::result::Result<(), String>) {
    finish(core, uuid);
    let event = match outcome {
        Ok(()) => DeviceEvent::UpdateFinished {
            ok: true,
            reason: None,
        },
        Err(reason) => {
            if reason == CANCELLED {
                core.report(&UpdateStatus::Failed {
                    reason: reason.clone(),
                });
            }
            DeviceEvent::UpdateFinished {
                ok: false,
                reason: Some(reason),
            }
        }
    };
    core.emit(event);
}

/// Cancels the update being applied, if any; true if there was one.
/// With `keep`, a resumable sink keeps its bytes (`UpdateHandle::suspend`).
pub(crate) fn cancel(core: &Core, keep: bool) -> bool {
    match &*core.lock_update() {
        UpdatePhase::Applying {
            handle: Some(handle),
            ..
        } => {
            if keep {
                handle.suspend();
            } else {
                handle.cancel();
            }
            true
        }
        _ => false,
    }
}

/// Back to idle if `uuid` is still the update being applied.
fn finish(core: &Core, uuid: &str) {
    let mut phase = core.lock_update();
    if matches!(&*phase, UpdatePhase::Applying { uuid: current, .. } if current == uuid) {
        *phase = UpdatePhase::Idle;
        core.join.set_downloading(None);
    }
}

/// Reports one update on the device channel. Holds the device weakly: an
/// update outliving its device has no one left to report to.
struct DeviceReporter {
    core: Weak<Core>,
}

impl UpdateReporter for DeviceReporter {
    fn status(&self, status: UpdateStatus) {
        if let Some(core) = self.core.upgrade() {
            core.report(&status);
        }
    }

    fn progress(&self, stage: Stage, percent: u8) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        core.cast(
            "fwup_progress",
            json!({"stage": stage.as_str(), "value": percent}),
        );
        core.emit(DeviceEvent::UpdateProgress { stage, percent });
    }
}
