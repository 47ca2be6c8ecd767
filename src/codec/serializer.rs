//! The two serializers NervesHub's device endpoint negotiates through the
//! `vsn` query parameter: V2 JSON (`2.0.0`, the default) and MessagePack
//! (`3.0.0`). Everything above the codec is the same for both.

use std::fmt;
use std::str::FromStr;

use super::{msgpack, CodecError, Frame};
use crate::message::{Inbound, Message, Reply};

/// How messages are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serializer {
    /// Phoenix V2 JSON in text frames (binary payloads in V2 binary frames).
    #[default]
    Json,
    /// MessagePack in binary frames: fewer bytes for metered links. Needs a
    /// server that accepts vsn 3.0.0 (nerves_hub_web after July 2026).
    MsgPack,
}

impl Serializer {
    /// The `vsn` query parameter that selects it.
    pub fn vsn(self) -> &'static str {
        match self {
            Serializer::Json => "2.0.0",
            Serializer::MsgPack => "3.0.0",
        }
    }

    /// The name used in configuration: `json` or `msgpack`.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
        }
    }

    /// The serializer a server picks for a requested `vsn`, the way
    /// Phoenix matches `~> 3.0.0` and `~> 2.0.0`: any `3.0.x` or `2.0.x`
    /// version without a pre-release tag. `None` (absent, which Phoenix reads
    /// as 1.0.0, unparsable or unmatched) is a refusal.
    pub fn negotiate(vsn: Option<&str>) -> Option<Serializer> {
        let mut parts = vsn?.split('.');
        let mut number = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u64>().ok())
        };
        let (major, minor, _patch) = (number()?, number()?, number()?);
        if parts.next().is_some() {
            return None;
        }
        match (major, minor) {
            (3, 0) => Some(Serializer::MsgPack),
            (2, 0) => Some(Serializer::Json),
            _ => None,
        }
    }

    /// Encodes a message the client sends.
    pub fn encode_client(self, msg: &Message) -> Result<Frame, CodecError> {
        match self {
            Serializer::Json => super::encode_client(msg),
            Serializer::MsgPack => msgpack::encode_client(msg),
        }
    }

    /// Decodes a frame the client received.
    pub fn decode_server(self, frame: &Frame) -> Result<Inbound, CodecError> {
        match self {
            Serializer::Json => super::decode_server(frame),
            Serializer::MsgPack => msgpack::decode_server(frame),
        }
    }

    /// Decodes a frame a server received.
    pub fn decode_client(self, frame: &Frame) -> Result<Message, CodecError> {
        match self {
            Serializer::Json => super::decode_client(frame),
            Serializer::MsgPack => msgpack::decode_client(frame),
        }
    }

    /// Encodes a push or broadcast a server sends.
    pub fn encode_server_message(self, msg: &Message) -> Result<Frame, CodecError> {
        match self {
            Serializer::Json => super::encode_server_message(msg),
            Serializer::MsgPack => msgpack::encode_server_message(msg),
        }
    }

    /// Encodes a `phx_reply` a server sends.
    pub fn encode_server_reply(
        self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        reply: &Reply,
    ) -> Result<Frame, CodecError> {
        match self {
            Serializer::Json => super::encode_server_reply(join_ref, msg_ref, topic, reply),
            Serializer::MsgPack => msgpack::encode_server_reply(join_ref, msg_ref, topic, reply),
        }
    }
}

impl fmt::Display for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Serializer {
    type Err = String;

    /// `json` or `msgpack` (also `messagepack`), any case.
    fn from_str(s: &str) -> Result<Serializer, String> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Serializer::Json),
            "msgpack" | "messagepack" => Ok(Serializer::MsgPack),
            _ => Err(format!(
                "serializer {s:?} is not known: use \"json\" (vsn 2.0.0) or \"msgpack\" (vsn 3.0.0)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_phoenix_requirements() {
        assert_eq!(Serializer::negotiate(Some("2.0.0")), Some(Serializer::Json));
        assert_eq!(Serializer::negotiate(Some("2.0.7")), Some(Serializer::Json));
        assert_eq!(
            Serializer::negotiate(Some("3.0.0")),
            Some(Serializer::MsgPack)
        );
        for refused in [
            None,
            Some("1.0.0"),
            Some("2.1.0"),
            Some("3.1.0"),
            Some("3.0"),
            Some("3.0.0-rc.1"),
            Some("3.0.0.0"),
            Some(""),
            Some("x.0.0"),
        ] {
            assert_eq!(Serializer::negotiate(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn names_parse_back() {
        for s in [Serializer::Json, Serializer::MsgPack] {
            assert_eq!(s.name().parse::<Serializer>(), Ok(s));
            assert_eq!(Serializer::negotiate(Some(s.vsn())), Some(s));
        }
        assert_eq!("MsgPack".parse::<Serializer>(), Ok(Serializer::MsgPack));
        assert!("cbor"
            .parse::<Serializer>()
            .unwrap_err()
            .contains("\"json\""));
    }
}
