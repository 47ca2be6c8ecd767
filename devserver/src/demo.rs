//! Demo mode: offer the demo firmware to a device that joins `device` and
//! show what it sends. Nothing else is sent: NervesHub has no greeting.

use std::io::Write;

use nerves_hub_channel::message::{Message, Payload};
use serde_json::Value;

use crate::state::Conn;

const ANONYMOUS: &str = "anonymous";

/// Offers the demo firmware to a device that joined `device`, unless the
/// join says it already runs it.
pub(crate) fn offer_update(
    conn: &Conn,
    join_ref: &Option<String>,
    join_params: &Payload,
    update: Option<&Value>,
) {
    let running = join_params.to_value().and_then(|v| {
        v.get("nerves_fw_uuid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let offered = update
        .and_then(|u| u.pointer("/firmware_meta/uuid"))
        .and_then(Value::as_str);
    let (Some(update), Some(uuid)) = (update, offered) else {
        return;
    };
    if running.as_deref() == Some(uuid) {
        return;
    }
    conn.send_message(&Message {
        join_ref: join_ref.clone(),
        msg_ref: None,
        topic: "device".into(),
        event: "update".into(),
        payload: Payload::json(update),
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
