//! Demo mode: greet a device that joins `device` and show what it sends.

use std::io::Write;

use nerves_hub_channel::message::{Message, Payload};
use serde_json::json;

use crate::httpdate::unix_now;
use crate::state::Conn;

const ANONYMOUS: &str = "anonymous";

pub(crate) fn hello(conn: &Conn, join_ref: &Option<String>) {
    let who = conn.identity.as_deref().unwrap_or(ANONYMOUS);
    let payload = json!({"message": format!("welcome, {who}"), "server_time": unix_now()});
    conn.send_message(&Message {
        join_ref: join_ref.clone(),
        msg_ref: None,
        topic: "device".into(),
        event: "hello".into(),
        payload: Payload::json(&payload),
    });
}

/// One stdout line per message, for a person watching the demo.
pub(crate) fn print_received(identity: Option<&str>, msg: &Message) {
    let payload = match &msg.payload {
        Payload::Json(raw) => raw.get().to_owned(),
        Payload::Binary(bytes) => format!("<{} bytes>", bytes.len()),
    };
    let who = identity.unwrap_or(ANONYMOUS);
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the server down.
    let _ = writeln!(out, "{who} -> {} {} {payload}", msg.topic, msg.event);
    let _ = out.flush();
}
