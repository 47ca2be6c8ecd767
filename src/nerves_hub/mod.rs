//! The NervesHub device layer, built on the channels core.
//!
//! A [`device::Device`] owns a [`crate::Socket`], joins the `device` topic
//! with NervesHub's join parameters (firmware metadata, API version, update
//! state), and turns what the server sends into one ordered stream of
//! typed device events, delivered through the same machinery as the core
//! (async, blocking, polled fd, threaded handler).
//!
//! Sub-modules, one concept each: metadata (firmware metadata sources),
//! device events, the agent task that consumes socket events, update
//! download/verification (update_info, update, ...), NH1 shared-secret
//! authentication (nh1), console and extensions.

mod agent;
pub mod archive;
pub mod console;
pub mod device;
pub mod device_config;
pub mod device_events;
pub mod download;
pub mod extensions;
pub mod file_transfer;
pub mod fwup_framing;
pub mod fwup_keys;
pub mod http;
mod join;
pub mod metadata;
pub mod nh1;
mod no_sigpipe;
pub mod progress;
#[cfg(target_os = "linux")]
mod pty;
mod shell;
pub mod sink;
mod sink_stage;
pub mod uboot_env;
pub mod update;
mod update_flow;
pub mod update_info;
pub mod verify;

pub use device::Device;
pub use device_config::{DeviceConfig, FirmwareValidatedFn, UpdatePolicy, DEFAULT_DEVICE_REJOIN};
pub use device_events::{ArchiveInfo, DeviceEvent};
pub use metadata::FirmwareMetadata;
pub use uboot_env::UbootEnvLayout;
