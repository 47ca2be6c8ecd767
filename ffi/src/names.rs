//! Static names of the enum values C programs print (`nhc_state`,
//! `nhc_device_event_kind`), so that no program keeps its own table.
//! They take any integer: a value from a newer library (or a stray one)
//! gets "UNKNOWN" rather than undefined behaviour.

use std::ffi::c_char;

use crate::boundary::boundary_or;
use crate::device_types::nhc_device_event_kind as K;
use crate::types::nhc_state as S;

const UNKNOWN: &[u8] = b"UNKNOWN\0";

/// The name of an `nhc_state` value without its prefix ("CONNECTED",
/// "AUTH_ERROR", ...), or "UNKNOWN". Static: never NULL, never freed.
#[no_mangle]
pub extern "C" fn nhc_state_str(state: i32) -> *const c_char {
    boundary_or(c"?".as_ptr(), || state_name(state).as_ptr().cast())
}

/// The name of an `nhc_device_event_kind` value without its prefix
/// ("UPDATE_AVAILABLE", "REBOOT", ...), or "UNKNOWN". Static: never NULL,
/// never freed.
#[no_mangle]
pub extern "C" fn nhc_device_event_kind_str(kind: i32) -> *const c_char {
    boundary_or(c"?".as_ptr(), || event_kind_name(kind).as_ptr().cast())
}

fn state_name(state: i32) -> &'static [u8] {
    const ALL: [(S, &[u8]); 6] = [
        (S::NHC_STATE_DISCONNECTED, b"DISCONNECTED\0"),
        (S::NHC_STATE_CONNECTING, b"CONNECTING\0"),
        (S::NHC_STATE_CONNECTED, b"CONNECTED\0"),
        (S::NHC_STATE_CLOSED, b"CLOSED\0"),
        (S::NHC_STATE_AUTH_ERROR, b"AUTH_ERROR\0"),
        (S::NHC_STATE_PROTOCOL_ERROR, b"PROTOCOL_ERROR\0"),
    ];
    lookup(&ALL, state, |s| s as i32)
}

fn event_kind_name(kind: i32) -> &'static [u8] {
    const ALL: [(K, &[u8]); 25] = [
        (K::NHC_DEVICE_EVENT_STATE, b"STATE\0"),
        (K::NHC_DEVICE_EVENT_JOINED, b"JOINED\0"),
        (K::NHC_DEVICE_EVENT_JOIN_FAILED, b"JOIN_FAILED\0"),
        (K::NHC_DEVICE_EVENT_CHANNEL_ERROR, b"CHANNEL_ERROR\0"),
        (K::NHC_DEVICE_EVENT_CHANNEL_CLOSED, b"CHANNEL_CLOSED\0"),
        (K::NHC_DEVICE_EVENT_REPORT_FAILED, b"REPORT_FAILED\0"),
        (K::NHC_DEVICE_EVENT_UPDATE_AVAILABLE, b"UPDATE_AVAILABLE\0"),
        (K::NHC_DEVICE_EVENT_UPDATE_IGNORED, b"UPDATE_IGNORED\0"),
        (K::NHC_DEVICE_EVENT_UPDATE_PROGRESS, b"UPDATE_PROGRESS\0"),
        (K::NHC_DEVICE_EVENT_UPDATE_FINISHED, b"UPDATE_FINISHED\0"),
        (K::NHC_DEVICE_EVENT_REBOOT, b"REBOOT\0"),
        (K::NHC_DEVICE_EVENT_IDENTIFY, b"IDENTIFY\0"),
        (K::NHC_DEVICE_EVENT_ARCHIVE, b"ARCHIVE\0"),
        (K::NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS, b"FWUP_PUBLIC_KEYS\0"),
        (
            K::NHC_DEVICE_EVENT_ARCHIVE_PUBLIC_KEYS,
            b"ARCHIVE_PUBLIC_KEYS\0",
        ),
        (K::NHC_DEVICE_EVENT_SCRIPT_RUN, b"SCRIPT_RUN\0"),
        (K::NHC_DEVICE_EVENT_EXTENSIONS_GET, b"EXTENSIONS_GET\0"),
        (K::NHC_DEVICE_EVENT_CONSOLE_INPUT, b"CONSOLE_INPUT\0"),
        (
            K::NHC_DEVICE_EVENT_CONSOLE_WINDOW_SIZE,
            b"CONSOLE_WINDOW_SIZE\0",
        ),
        (K::NHC_DEVICE_EVENT_CONSOLE_RESTART, b"CONSOLE_RESTART\0"),
        (K::NHC_DEVICE_EVENT_CONSOLE_FILE, b"CONSOLE_FILE\0"),
        (K::NHC_DEVICE_EVENT_EXTENSION, b"EXTENSION\0"),
        (K::NHC_DEVICE_EVENT_INVALID_MESSAGE, b"INVALID_MESSAGE\0"),
        (K::NHC_DEVICE_EVENT_OTHER, b"OTHER\0"),
        (K::NHC_DEVICE_EVENT_IDENTITY_IN_USE, b"IDENTITY_IN_USE\0"),
    ];
    lookup(&ALL, kind, |k| k as i32)
}

fn lookup<T: Copy>(all: &[(T, &'static [u8])], value: i32, code: fn(T) -> i32) -> &'static [u8] {
    all.iter()
        .find(|(v, _)| code(*v) == value)
        .map_or(UNKNOWN, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_nul_terminated_and_unknown_values_are_named_so() {
        for v in -1..30 {
            for name in [state_name(v), event_kind_name(v)] {
                assert_eq!(name.iter().filter(|b| **b == 0).count(), 1);
                assert_eq!(name.last(), Some(&0));
            }
        }
        assert_eq!(state_name(2), b"CONNECTED\0");
        assert_eq!(state_name(6), UNKNOWN);
        assert_eq!(event_kind_name(23), b"OTHER\0");
        assert_eq!(event_kind_name(24), b"IDENTITY_IN_USE\0");
        assert_eq!(event_kind_name(25), UNKNOWN);
    }
}
