//! Which `log` records may carry secrets this crate cannot redact.
//!
//! This crate never logs keys, shared secrets, NH1 signatures, header values
//! or signed-URL queries (tests/no_secrets_in_logs.rs). It sends the
//! websocket upgrade request itself (transport/upgrade.rs) so that the NH1
//! headers never pass through its websocket library, but tungstenite still
//! traces every frame at Trace level, and an `update` push carries the
//! signed `firmware_url`. A logger that forwards Trace must drop those
//! records; the Python bridge does, and Rust applications should (e.g.
//! `RUST_LOG=trace,tungstenite=debug,tokio_tungstenite=debug`).

/// True for records that may hold secrets and must not be emitted: Trace
/// records of tungstenite and tokio-tungstenite.
pub fn may_leak_secrets(metadata: &log::Metadata<'_>) -> bool {
    metadata.level() == log::Level::Trace && is_websocket_library(metadata.target())
}

fn is_websocket_library(target: &str) -> bool {
    ["tungstenite", "tokio_tungstenite"].iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(level: log::Level, target: &str) -> bool {
        may_leak_secrets(&log::Metadata::builder().level(level).target(target).build())
    }

    #[test]
    fn only_trace_records_of_the_websocket_library_are_dropped() {
        assert!(meta(log::Level::Trace, "tungstenite::handshake::client"));
        assert!(meta(log::Level::Trace, "tungstenite"));
        assert!(meta(log::Level::Trace, "tokio_tungstenite::compat"));
        assert!(!meta(log::Level::Debug, "tungstenite::handshake::client"));
        assert!(!meta(log::Level::Trace, "tungstenite_like"));
        assert!(!meta(log::Level::Trace, "nerves_hub_channel::transport"));
    }
}
