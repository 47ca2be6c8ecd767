//! Phoenix V2 channel semantics for one decoded client message
//! (phoenix-channels-client.md section 2.4).

use std::time::Instant;

use nerves_hub_channel::message::{events, Message, Payload, Reply};
use serde_json::json;

use crate::demo;
use crate::device_messages::{self, Answer};
use crate::hub;
use crate::state::{Conn, Received, State};

/// Topics a router would match for a connection: NervesHub's device-facing
/// channels only on an authenticated device socket (`authenticated`: the
/// connection has an identity), plus test rooms on any socket.
///
/// NervesHub's `DeviceSocket` refuses anonymous devices at the upgrade, and
/// its anonymous `UserSocket` has no `device`, `console` or `extensions`
/// topics, so Phoenix answers their join with "unmatched topic".
pub fn is_routed(topic: &str, authenticated: bool) -> bool {
    if hub::is_device_facing(topic) {
        return authenticated;
    }
    topic.starts_with("room:") || topic.starts_with("test:")
}

fn ok(response: Payload) -> Reply {
    Reply {
        status: "ok".into(),
        response,
    }
}

fn unmatched_topic() -> Reply {
    Reply {
        status: "error".into(),
        response: Payload::json(&json!({"reason": "unmatched topic"})),
    }
}

/// A server-initiated channel message whose ref is the join_ref (phx_close, phx_error).
pub(crate) fn lifecycle(
    topic: &str,
    join_ref: &Option<String>,
    event: &str,
    payload: Payload,
) -> Message {
    Message {
        join_ref: join_ref.clone(),
        msg_ref: join_ref.clone(),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload,
    }
}

fn record(received: &mut Vec<Received>, id: u64, conn: &Conn, message: Message, demo: bool) {
    if demo {
        demo::print_received(conn.identity.as_deref(), &message);
    }
    received.push(Received {
        connection: id,
        identity: conn.identity.clone(),
        message,
        at: Instant::now(),
    });
}

/// Applies one message from connection `id`. Frames it causes are queued on the connection.
pub(crate) fn handle(state: &mut State, id: u64, msg: Message, demo: bool) {
    let State {
        conns,
        received,
        joins,
        join_replies,
        answer_heartbeats,
        hub: settings,
        demo_update,
        updates_blocked_until,
        ..
    } = state;
    let Some(conn) = conns.get_mut(&id) else {
        // The control API already closed this connection; what it still sends is moot.
        return;
    };
    let (join_ref, msg_ref) = (msg.join_ref.as_deref(), msg.msg_ref.as_deref());

    if msg.topic == events::PHOENIX_TOPIC && msg.event == events::HEARTBEAT {
        if *answer_heartbeats {
            conn.reply(None, msg_ref, &msg.topic, &ok(Payload::empty()));
        }
        return;
    }

    let current = conn.channels.get(&msg.topic).cloned();
    let stale = matches!((&current, join_ref), (Some(Some(cur)), Some(got)) if cur != got);

    match msg.event.as_str() {
        events::JOIN => {
            if !is_routed(&msg.topic, conn.identity.is_some()) {
                conn.reply(None, msg_ref, &msg.topic, &unmatched_topic());
                record(received, id, conn, msg, demo);
                return;
            }
            if let Some(old) = conn.channels.remove(&msg.topic) {
                let close = lifecycle(&msg.topic, &old, events::CLOSE, Payload::empty());
                conn.send_message(&close);
            }
            let new_ref = msg.join_ref.clone().or_else(|| msg.msg_ref.clone());
            let reply = match join_replies.get(&msg.topic) {
                Some(reply) => reply.clone(),
                None if msg.topic == "extensions" => hub::extensions_reply(&msg.payload, settings),
                None => ok(Payload::empty()),
            };
            conn.reply(new_ref.as_deref(), msg_ref, &msg.topic, &reply);
            if reply.is_ok() {
                conn.channels.insert(msg.topic.clone(), new_ref.clone());
                *joins.entry(msg.topic.clone()).or_default() += 1;
                if msg.topic == "extensions" {
                    conn.attached_extensions = attached_names(&reply.response);
                }
                if msg.topic == "device" {
                    hub::after_device_join(conn, &msg.payload, settings);
                    let blocked = updates_blocked_until
                        .get(&conn.identity)
                        .is_some_and(|until| *until > std::time::SystemTime::now());
                    if demo && !blocked {
                        demo::offer_update(conn, &new_ref, &msg.payload, demo_update.as_ref());
                    }
                }
            }
            record(received, id, conn, msg, demo);
        }
        events::LEAVE => {
            if stale {
                // "The client raced a server close": Phoenix ignores it.
                return;
            }
            match current {
                Some(cur) => {
                    conn.reply(cur.as_deref(), msg_ref, &msg.topic, &ok(Payload::empty()));
                    let close = lifecycle(&msg.topic, &cur, events::CLOSE, Payload::empty());
                    conn.send_message(&close);
                    conn.channels.remove(&msg.topic);
                }
                None => conn.reply(join_ref, msg_ref, &msg.topic, &ok(Payload::empty())),
            }
            record(received, id, conn, msg, demo);
        }
        _ => {
            if stale {
                return;
            }
            match current {
                None => conn.reply(None, msg_ref, &msg.topic, &unmatched_topic()),
                Some(cur) if hub::is_device_facing(&msg.topic) => {
                    let attached = &conn.attached_extensions;
                    match device_messages::answer(&msg.topic, &msg.event, &msg.payload, attached) {
                        Answer::Silent if msg.topic == "extensions" => {
                            hub::after_extension_push(conn, &cur, &msg.event, attached);
                        }
                        Answer::Silent => {}
                        Answer::Reply(reply) => {
                            conn.reply(cur.as_deref(), msg_ref, &msg.topic, &reply)
                        }
                        Answer::Block(until) => {
                            updates_blocked_until.insert(conn.identity.clone(), until);
                        }
                        Answer::Crash(reason) => {
                            log::info!("{} channel crashed: {reason}", msg.topic);
                            let payload = Payload::json(&json!({"reason": "channel_crash"}));
                            conn.send_message(&lifecycle(&msg.topic, &cur, events::ERROR, payload));
                            conn.channels.remove(&msg.topic);
                        }
                    }
                }
                Some(cur) => {
                    if let Some(reply) = echo(&msg) {
                        conn.reply(cur.as_deref(), msg_ref, &msg.topic, &reply);
                    }
                }
            }
            record(received, id, conn, msg, demo);
        }
    }
}

/// The names an `extensions` join reply attaches (a list of strings).
fn attached_names(response: &Payload) -> Vec<String> {
    match response.to_value() {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The test channel's answer to a push: none for `noreply*`, an error for
/// `error*`, otherwise ok; the payload is echoed as the response either way.
fn echo(msg: &Message) -> Option<Reply> {
    if msg.event.starts_with("noreply") {
        return None;
    }
    let status = if msg.event.starts_with("error") {
        "error"
    } else {
        "ok"
    };
    Some(Reply {
        status: status.into(),
        response: msg.payload.clone(),
    })
}
