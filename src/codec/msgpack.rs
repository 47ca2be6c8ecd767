//! The MessagePack serializer (vsn 3.0.0) of nerves_hub_web's
//! `DeviceMsgPackSerializer` and nerves_hub_link's `MsgPackSerializer`:
//! the V2 array `[join_ref, ref, topic, event, payload]` packed with
//! MessagePack, in binary websocket frames only, both ways. Replies are
//! `[join_ref, ref, topic, "phx_reply", {status, response}]`.
//!
//! Payloads reach the application as JSON (see `msgpack_value.rs`). A
//! top-level `bin` payload is a binary payload, as a V2 binary frame's.

use serde_json::Value;

use super::msgpack_value::{self as mpv, Head, Reader};
use super::{CodecError, Frame};
use crate::message::{events, Inbound, JsonText, Message, Payload, Reply};

/// Strings sent as MessagePack timestamps when they hold an RFC 3339 time:
/// (topic, event, path of object keys inside the payload). nerves_hub_link
/// sends these as Elixir `DateTime`s, which Msgpax packs as extension -1.
const TIMESTAMP_FIELDS: &[(&str, &str, &[&str])] =
    &[("extensions", "health:report", &["value", "timestamp"])];

fn timestamp_path(topic: &str, event: &str) -> Option<&'static [&'static str]> {
    TIMESTAMP_FIELDS
        .iter()
        .find(|(t, e, _)| *t == topic && *e == event)
        .map(|(_, _, path)| *path)
}

// ---------------------------------------------------------------- client side

/// Encodes a message the client sends.
pub fn encode_client(msg: &Message) -> Result<Frame, CodecError> {
    encode_message(msg)
}

/// Decodes a frame the client received. NervesHub sends binary frames only
/// under 3.0.0; a text frame is an error (the connection stays up, as in
/// nerves_hub_link).
pub fn decode_server(frame: &Frame) -> Result<Inbound, CodecError> {
    match frame {
        Frame::Binary(bytes) => decode_server_binary(bytes),
        Frame::Text(_) => Err(text_frame()),
    }
}

/// Why a text frame is refused under 3.0.0.
pub fn text_frame() -> CodecError {
    CodecError(
        "a text frame under vsn 3.0.0: the MessagePack serializer reads binary frames only".into(),
    )
}

/// Decodes a binary frame the client received.
pub fn decode_server_binary(bytes: &[u8]) -> Result<Inbound, CodecError> {
    let mut r = Reader::new(bytes);
    let (join_ref, msg_ref, topic, event) = envelope(&mut r)?;
    let inbound = if event == events::REPLY {
        Inbound::Reply {
            join_ref,
            msg_ref,
            topic,
            reply: reply_body(&mut r)?,
        }
    } else {
        Inbound::Message(Message {
            join_ref,
            msg_ref,
            topic,
            event,
            payload: payload(&mut r)?,
        })
    };
    finish(&r)?;
    Ok(inbound)
}

// ---------------------------------------------------------------- server side

/// Decodes a frame a server received. Like NervesHub, only binary frames
/// are read; integer refs become their decimal text.
pub fn decode_client(frame: &Frame) -> Result<Message, CodecError> {
    let Frame::Binary(bytes) = frame else {
        return Err(text_frame());
    };
    let mut r = Reader::new(bytes);
    let (join_ref, msg_ref, topic, event) = envelope(&mut r)?;
    let payload = payload(&mut r)?;
    finish(&r)?;
    Ok(Message {
        join_ref,
        msg_ref,
        topic,
        event,
        payload,
    })
}

/// Encodes a push or broadcast sent by a server.
pub fn encode_server_message(msg: &Message) -> Result<Frame, CodecError> {
    encode_message(msg)
}

/// Encodes a `phx_reply` sent by a server.
pub fn encode_server_reply(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    reply: &Reply,
) -> Result<Frame, CodecError> {
    let mut out = Vec::with_capacity(64);
    mpv::write_array_len(&mut out, 5)?;
    mpv::write_ref(&mut out, join_ref)?;
    mpv::write_ref(&mut out, msg_ref)?;
    mpv::write_str(&mut out, topic)?;
    mpv::write_str(&mut out, events::REPLY)?;
    mpv::write_map_len(&mut out, 2)?;
    mpv::write_str(&mut out, "status")?;
    mpv::write_str(&mut out, &reply.status)?;
    mpv::write_str(&mut out, "response")?;
    write_payload(&mut out, &reply.response, None)?;
    Ok(Frame::Binary(out))
}

// ---------------------------------------------------------------- helpers

fn encode_message(msg: &Message) -> Result<Frame, CodecError> {
    let mut out = Vec::with_capacity(64);
    mpv::write_array_len(&mut out, 5)?;
    mpv::write_ref(&mut out, msg.join_ref.as_deref())?;
    mpv::write_ref(&mut out, msg.msg_ref.as_deref())?;
    mpv::write_str(&mut out, &msg.topic)?;
    mpv::write_str(&mut out, &msg.event)?;
    write_payload(
        &mut out,
        &msg.payload,
        timestamp_path(&msg.topic, &msg.event),
    )?;
    Ok(Frame::Binary(out))
}

fn write_payload(
    out: &mut Vec<u8>,
    payload: &Payload,
    timestamp_at: Option<&[&str]>,
) -> Result<(), CodecError> {
    match payload {
        Payload::Json(raw) => {
            // JsonText is validated JSON; a failure here would be a bug, reported clearly.
            let value: Value = serde_json::from_str(raw.get())
                .map_err(|e| CodecError(format!("payload is not JSON: {e}")))?;
            mpv::write_value(out, &value, timestamp_at)
        }
        Payload::Binary(bytes) => mpv::write_bin(out, bytes),
    }
}

/// Reads `[join_ref, ref, topic, event,` and leaves the payload to read.
fn envelope(
    r: &mut Reader<'_>,
) -> Result<(Option<String>, Option<String>, String, String), CodecError> {
    match r.head()? {
        Head::Array(5) => {}
        Head::Array(n) => {
            return Err(r.error(format!(
            "expected the 5-element array [join_ref, ref, topic, event, payload], got {n} elements"
        )))
        }
        _ => {
            return Err(
                r.error("expected the 5-element array [join_ref, ref, topic, event, payload]")
            )
        }
    }
    let join_ref = r.reference("join_ref")?;
    let msg_ref = r.reference("ref")?;
    let topic = r.text("topic")?;
    let event = r.text("event")?;
    Ok((join_ref, msg_ref, topic, event))
}

fn payload(r: &mut Reader<'_>) -> Result<Payload, CodecError> {
    match r.head()? {
        Head::Bin(bytes) => Ok(Payload::Binary(bytes.to_vec())),
        head => {
            let mut text = String::new();
            r.json_from(head, &mut text, 0)?;
            Ok(Payload::Json(JsonText::validated(&text)))
        }
    }
}

/// `{"status": ..., "response": ...}`; other keys are skipped, an absent or
/// nil response is `{}` (as with JSON).
fn reply_body(r: &mut Reader<'_>) -> Result<Reply, CodecError> {
    let Head::Map(n) = r.head()? else {
        return Err(r.error("phx_reply payload is not a {status, response} map"));
    };
    let mut status = None;
    let mut response = None;
    for _ in 0..n {
        match r.text("phx_reply key")?.as_str() {
            "status" => status = Some(r.text("phx_reply status")?),
            "response" => response = Some(payload(r)?),
            _ => r.json(&mut String::new(), 1)?,
        }
    }
    let status = status.ok_or_else(|| r.error("phx_reply payload has no status"))?;
    let response = match response {
        Some(Payload::Json(text)) if text.get() == "null" => Payload::empty(),
        Some(p) => p,
        None => Payload::empty(),
    };
    Ok(Reply { status, response })
}

fn finish(r: &Reader<'_>) -> Result<(), CodecError> {
    if r.at_end() {
        Ok(())
    } else {
        Err(r.error("bytes after the message"))
    }
}

#[cfg(test)]
#[path = "msgpack_tests.rs"]
mod tests;
