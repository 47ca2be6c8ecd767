//! The Phoenix V2 message model shared by the client, the codec and the dev server.

use serde_json::value::RawValue;
use serde_json::Value;

/// JSON text that was validated once and is kept as text, so that handing it
/// to C or Python costs no re-serialisation.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// Validates `text` as one JSON value.
    pub fn parse(text: &str) -> Result<JsonText, serde_json::Error> {
        RawValue::from_string(text.to_owned()).map(JsonText::from)
    }

    /// Text the codec's scanner has validated.
    pub(crate) fn validated(text: &str) -> JsonText {
        JsonText(text.into())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

impl From<Box<RawValue>> for JsonText {
    fn from(raw: Box<RawValue>) -> JsonText {
        JsonText(raw.into())
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message payload.
#[derive(Debug, Clone)]
pub enum Payload {
    /// JSON text, already validated.
    Json(JsonText),
    /// Raw bytes, carried in a binary websocket frame.
    Binary(Vec<u8>),
}

impl Payload {
    /// The empty JSON object `{}`.
    pub fn empty() -> Payload {
        Payload::Json(raw_json("{}"))
    }

    /// Serialises a JSON value.
    pub fn json(value: &Value) -> Payload {
        Payload::Json(raw_json(&value.to_string()))
    }

    /// Validates `text` as JSON and keeps it as is.
    pub fn from_json_text(text: &str) -> Result<Payload, serde_json::Error> {
        JsonText::parse(text).map(Payload::Json)
    }

    /// The JSON text, or `None` for a binary payload.
    pub fn json_text(&self) -> Option<&str> {
        match self {
            Payload::Json(raw) => Some(raw.get()),
            Payload::Binary(_) => None,
        }
    }

    /// Parses a JSON payload into a `Value` (`None` for binary payloads).
    pub fn to_value(&self) -> Option<Value> {
        match self {
            Payload::Json(raw) => serde_json::from_str(raw.get()).ok(),
            Payload::Binary(_) => None,
        }
    }

    /// The bytes of a binary payload.
    pub fn binary(&self) -> Option<&[u8]> {
        match self {
            Payload::Binary(bytes) => Some(bytes),
            Payload::Json(_) => None,
        }
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Payload {
        Payload::json(&value)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload::Binary(bytes)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        match (self, other) {
            (Payload::Binary(a), Payload::Binary(b)) => a == b,
            (Payload::Json(_), Payload::Json(_)) => self.to_value() == other.to_value(),
            _ => false,
        }
    }
}

fn raw_json(text: &str) -> JsonText {
    // Only called with text produced by serde_json or a literal, so it is valid JSON.
    JsonText::parse(text).unwrap_or_else(|_| JsonText::validated("null"))
}

/// One channel message: `[join_ref, ref, topic, event, payload]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Payload,
}

/// The body of a `phx_reply`: `{"status": ..., "response": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: String,
    pub response: Payload,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// A frame as seen by a client: either a reply to one of its pushes or any other message.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Reply {
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: String,
        reply: Reply,
    },
    Message(Message),
}

/// The reserved Phoenix event names.
pub mod events {
    pub const JOIN: &str = "phx_join";
    pub const LEAVE: &str = "phx_leave";
    pub const REPLY: &str = "phx_reply";
    pub const ERROR: &str = "phx_error";
    pub const CLOSE: &str = "phx_close";
    pub const HEARTBEAT: &str = "heartbeat";
    pub const PHOENIX_TOPIC: &str = "phoenix";
}
