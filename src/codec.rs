//! The Phoenix V2 wire codec: JSON text frames and the binary frame kinds
//! (push, reply, broadcast) in both directions. The MessagePack serializer
//! (vsn 3.0.0) is in `msgpack`; `Serializer` picks one of the two.
//!
//! Binary frames are asymmetric: a client-to-server push carries a ref, a
//! server-to-client push does not, and only the server sends replies and
//! broadcasts. Hence separate functions per direction.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::message::{events, Inbound, JsonText, Message, Payload, Reply};

pub mod msgpack;
mod msgpack_time;
mod msgpack_value;
mod scan;
mod serializer;

pub use serializer::Serializer;

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// A websocket data frame, independent of the websocket library.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(msg.into()))
}

// ---------------------------------------------------------------- client side

/// Encodes a message the client sends. A binary payload gives a binary frame of kind 0.
pub fn encode_client(msg: &Message) -> Result<Frame, CodecError> {
    match &msg.payload {
        Payload::Json(raw) => Ok(Frame::Text(encode_json(msg, raw))),
        Payload::Binary(data) => {
            let fields = [
                opt(&msg.join_ref),
                opt(&msg.msg_ref),
                msg.topic.as_str(),
                msg.event.as_str(),
            ];
            Ok(Frame::Binary(encode_binary(KIND_PUSH, &fields, data)?))
        }
    }
}

/// Decodes a frame the client received from the server.
pub fn decode_server(frame: &Frame) -> Result<Inbound, CodecError> {
    match frame {
        Frame::Text(text) => decode_server_text(text),
        Frame::Binary(bytes) => decode_server_binary(bytes),
    }
}

/// Decodes a text frame the client received from the server.
pub fn decode_server_text(text: &str) -> Result<Inbound, CodecError> {
    let msg = decode_json(text)?;
    if msg.event != events::REPLY {
        return Ok(Inbound::Message(msg));
    }
    let Payload::Json(raw) = &msg.payload else {
        return err("phx_reply payload is not JSON");
    };
    let reply = decode_reply_body(raw)?;
    Ok(Inbound::Reply {
        join_ref: msg.join_ref,
        msg_ref: msg.msg_ref,
        topic: msg.topic,
        reply,
    })
}

/// Decodes a binary frame the client received from the server.
pub fn decode_server_binary(bytes: &[u8]) -> Result<Inbound, CodecError> {
    let Some((&kind, rest)) = bytes.split_first() else {
        return err("empty binary frame");
    };
    match kind {
        KIND_PUSH => {
            let (f, data) = split_fields::<3>(rest)?;
            Ok(Inbound::Message(Message {
                join_ref: none_if_empty(f[0]),
                msg_ref: None,
                topic: f[1].to_owned(),
                event: f[2].to_owned(),
                payload: Payload::Binary(data.to_vec()),
            }))
        }
        KIND_REPLY => {
            let (f, data) = split_fields::<4>(rest)?;
            Ok(Inbound::Reply {
                join_ref: none_if_empty(f[0]),
                msg_ref: none_if_empty(f[1]),
                topic: f[2].to_owned(),
                reply: Reply {
                    status: f[3].to_owned(),
                    response: Payload::Binary(data.to_vec()),
                },
            })
        }
        KIND_BROADCAST => {
            let (f, data) = split_fields::<2>(rest)?;
            Ok(Inbound::Message(Message {
                join_ref: None,
                msg_ref: None,
                topic: f[0].to_owned(),
                event: f[1].to_owned(),
                payload: Payload::Binary(data.to_vec()),
            }))
        }
        other => err(format!("unknown binary frame kind {other}")),
    }
}

// ---------------------------------------------------------------- server side

/// Decodes a frame a server received from a client.
pub fn decode_client(frame: &Frame) -> Result<Message, CodecError> {
    match frame {
        Frame::Text(text) => decode_json(text),
        Frame::Binary(bytes) => {
            let Some((&kind, rest)) = bytes.split_first() else {
                return err("empty binary frame");
            };
            if kind != KIND_PUSH {
                return err(format!("clients may only send binary kind 0, got {kind}"));
            }
            let (f, data) = split_fields::<4>(rest)?;
            Ok(Message {
                join_ref: none_if_empty(f[0]),
                msg_ref: none_if_empty(f[1]),
                topic: f[2].to_owned(),
                event: f[3].to_owned(),
                payload: Payload::Binary(data.to_vec()),
            })
        }
    }
}

/// Encodes a push or broadcast sent by a server (`msg_ref` is not carried in binary frames).
pub fn encode_server_message(msg: &Message) -> Result<Frame, CodecError> {
    match &msg.payload {
        Payload::Json(raw) => Ok(Frame::Text(encode_json(msg, raw))),
        Payload::Binary(data) => match &msg.join_ref {
            None => {
                let fields = [msg.topic.as_str(), msg.event.as_str()];
                Ok(Frame::Binary(encode_binary(KIND_BROADCAST, &fields, data)?))
            }
            Some(join_ref) => {
                let fields = [join_ref.as_str(), msg.topic.as_str(), msg.event.as_str()];
                Ok(Frame::Binary(encode_binary(KIND_PUSH, &fields, data)?))
            }
        },
    }
}

/// Encodes a `phx_reply` sent by a server.
pub fn encode_server_reply(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    reply: &Reply,
) -> Result<Frame, CodecError> {
    match &reply.response {
        Payload::Json(raw) => {
            let mut body = String::with_capacity(raw.get().len() + 32);
            body.push_str("{\"status\":");
            push_json_str(&mut body, &reply.status);
            body.push_str(",\"response\":");
            body.push_str(raw.get());
            body.push('}');
            let mut out = String::with_capacity(body.len() + topic.len() + 48);
            out.push('[');
            push_opt(&mut out, join_ref);
            out.push(',');
            push_opt(&mut out, msg_ref);
            out.push(',');
            push_json_str(&mut out, topic);
            out.push_str(",\"phx_reply\",");
            out.push_str(&body);
            out.push(']');
            Ok(Frame::Text(out))
        }
        Payload::Binary(data) => {
            let fields = [
                join_ref.unwrap_or(""),
                msg_ref.unwrap_or(""),
                topic,
                reply.status.as_str(),
            ];
            Ok(Frame::Binary(encode_binary(KIND_REPLY, &fields, data)?))
        }
    }
}

// ---------------------------------------------------------------- helpers

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

fn none_if_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn encode_json(msg: &Message, payload: &JsonText) -> String {
    let payload = payload.get();
    let mut out = String::with_capacity(payload.len() + msg.topic.len() + msg.event.len() + 32);
    out.push('[');
    push_opt(&mut out, msg.join_ref.as_deref());
    out.push(',');
    push_opt(&mut out, msg.msg_ref.as_deref());
    out.push(',');
    push_json_str(&mut out, &msg.topic);
    out.push(',');
    push_json_str(&mut out, &msg.event);
    out.push(',');
    out.push_str(payload);
    out.push(']');
    out
}

fn push_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

pub(crate) fn push_json_str(out: &mut String, s: &str) {
    let needs_escape = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if needs_escape {
        // serde_json's string escaping cannot fail for a &str.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

#[derive(Deserialize)]
struct WireMessage<'a>(
    Option<String>,
    Option<String>,
    String,
    String,
    #[serde(borrow)] &'a RawValue,
);

fn decode_json(text: &str) -> Result<Message, CodecError> {
    match scan::envelope(text) {
        Some(m) => Ok(Message {
            join_ref: m.join_ref.map(str::to_owned),
            msg_ref: m.msg_ref.map(str::to_owned),
            topic: m.topic.to_owned(),
            event: m.event.to_owned(),
            payload: Payload::Json(JsonText::validated(m.payload)),
        }),
        None => decode_json_serde(text),
    }
}

/// The general decoder: frames the scanner does not take (escaped strings,
/// deep nesting) and every error message.
#[doc(hidden)]
pub fn decode_json_serde(text: &str) -> Result<Message, CodecError> {
    let WireMessage(join_ref, msg_ref, topic, event, payload) = serde_json::from_str(text)
        .map_err(|e| {
            CodecError(format!(
                "not a V2 message [join_ref, ref, topic, event, payload]: {e}"
            ))
        })?;
    Ok(Message {
        join_ref,
        msg_ref,
        topic,
        event,
        payload: Payload::Json(JsonText::validated(payload.get())),
    })
}

#[derive(Deserialize)]
struct ReplyBody<'a> {
    status: String,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

fn decode_reply_body(raw: &JsonText) -> Result<Reply, CodecError> {
    if let Some((status, response)) = scan::reply_body(raw.get()) {
        return Ok(Reply {
            status: status.to_owned(),
            // serde reads `"response": null` as an absent response.
            response: match response {
                Some(text) if text != "null" => Payload::Json(JsonText::validated(text)),
                _ => Payload::empty(),
            },
        });
    }
    decode_reply_body_serde(raw.get())
}

#[doc(hidden)]
pub fn decode_reply_body_serde(text: &str) -> Result<Reply, CodecError> {
    let body: ReplyBody = serde_json::from_str(text).map_err(|e| {
        CodecError(format!(
            "phx_reply payload is not {{status, response}}: {e}"
        ))
    })?;
    Ok(Reply {
        status: body.status,
        response: match body.response {
            Some(raw) => Payload::Json(JsonText::validated(raw.get())),
            None => Payload::empty(),
        },
    })
}

fn encode_binary(kind: u8, fields: &[&str], data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let meta: usize = fields.iter().map(|f| f.len()).sum();
    let mut out = Vec::with_capacity(1 + fields.len() + meta + data.len());
    out.push(kind);
    for field in fields {
        let len = u8::try_from(field.len()).map_err(|_| {
            CodecError(format!(
                "binary frame field is {} bytes, the limit is 255: {:.40}",
                field.len(),
                field
            ))
        })?;
        out.push(len);
    }
    for field in fields {
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

fn split_fields<const N: usize>(rest: &[u8]) -> Result<([&str; N], &[u8]), CodecError> {
    if rest.len() < N {
        return err(format!(
            "binary frame header needs {N} length bytes, got {}",
            rest.len()
        ));
    }
    let (lens, mut body) = rest.split_at(N);
    let mut fields = [""; N];
    for (i, &len) in lens.iter().enumerate() {
        let len = usize::from(len);
        if body.len() < len {
            return err("binary frame is shorter than its header says");
        }
        let (field, tail) = body.split_at(len);
        fields[i] = std::str::from_utf8(field)
            .map_err(|_| CodecError("binary frame header field is not UTF-8".into()))?;
        body = tail;
    }
    Ok((fields, body))
}

#[cfg(test)]
mod tests;
