//! C ABI of nerves_hub_channel: opaque handles, `{context, call, drop}`
//! closures, `nhc_result` codes. It translates between C and the core and
//! maps the core's ordered event stream to callbacks; it adds no protocol
//! logic. The header `include/nerves_hub_channel.h` is generated from this
//! crate by cbindgen (scripts/gen-header.sh).

#![allow(clippy::missing_safety_doc)]
// Each function's safety is in its doc comment.
// Every unsafe operation sits in its own block with a `// SAFETY:` comment.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The order of these groups is the order of the generated header.
mod error;
mod result_text;

mod runtime;

mod types;

mod closure;

mod sign_closure;

mod key_options;

mod options;

mod socket;

mod channel;

mod keep;

mod device_types;

mod device_closure;

mod update_options;

mod device_options;

mod device;

mod device_health;

mod device_keep;

mod names;

// Internal helpers.
mod args;
mod boundary;
mod cbool;
mod cstring;
mod ctext;
mod device_router;
mod gate;
mod handle;
mod kept;
mod params;
mod router;
mod versioned;

#[cfg(test)]
mod abi_layout;

pub use channel::*;
pub use closure::{
    nhc_event_closure, nhc_join_closure, nhc_params_closure, nhc_reply_closure, nhc_state_closure,
};
pub use device::*;
pub use device_closure::{
    nhc_device_event_closure, nhc_geo_closure, nhc_location, nhc_update_sink, nhc_validated_closure,
};
pub use device_keep::*;
pub use device_options::{nhc_device_options, nhc_device_options_init};
pub use device_types::*;
pub use error::nhc_result;
pub use keep::*;
pub use key_options::nhc_key_options;
pub use names::{nhc_device_event_kind_str, nhc_state_str};
pub use options::{
    nhc_delivery, nhc_key_value, nhc_serializer, nhc_socket_options, nhc_socket_options_init,
};
pub use result_text::{nhc_last_error_message, nhc_result_str};
pub use runtime::*;
pub use sign_closure::{nhc_key_type, nhc_sign_algorithm, nhc_sign_closure};
pub use socket::*;
pub use types::*;
pub use update_options::{nhc_update_options, nhc_update_options_init};
