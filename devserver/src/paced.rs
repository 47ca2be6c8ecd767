//! Paced floods: messages at a fixed rate, each written alone, for the
//! trickle benchmark (a client that is woken by every message, as devices
//! are, rather than one that finds many waiting per read).
//!
//! The schedule runs on a thread of its own: tokio's timer counts whole
//! milliseconds, which at 5,000 messages/s would send them in fives. Message
//! `i` is due `i / rate` seconds after the start; a late thread sends the
//! overdue ones at once, so the rate holds on average. Like a fast flood, at
//! most two marks' worth of messages wait in the server for a client that
//! reads slowly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use nerves_hub_channel::codec::Serializer;

use crate::flood::Flood;
use crate::state::{Out, Shared};

/// Messages between two marks of the writer's progress.
const MARK_EVERY: u64 = 64;

pub(crate) fn start(
    shared: Arc<Shared>,
    flood: Arc<Flood>,
    rate: u32,
    id: u64,
    join_ref: Option<String>,
    serializer: Serializer,
) {
    let spawned = std::thread::Builder::new()
        .name("devserver-paced".into())
        .spawn(move || run(&shared, &flood, rate.max(1), id, &join_ref, serializer));
    if let Err(e) = spawned {
        log::warn!("cannot start a paced flood: {e}");
    }
}

fn run(
    shared: &Shared,
    flood: &Flood,
    rate: u32,
    id: u64,
    join_ref: &Option<String>,
    serializer: Serializer,
) {
    let pad = "x".repeat(flood.size);
    let start = Instant::now();
    let mut previous: Option<oneshot::Receiver<()>> = None;
    for i in 0..flood.count {
        let due = start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / u64::from(rate));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let Some(frame) = flood.frame(serializer, i, join_ref, &pad) else {
            continue;
        };
        let mark = (i + 1) % MARK_EVERY == 0;
        let (taken, taken_rx) = oneshot::channel();
        let queued = {
            let state = shared.lock();
            match state.conns.get(&id) {
                Some(conn) if conn.channels.get(&flood.topic) == Some(join_ref) => {
                    conn.send_frame(frame);
                    !mark || conn.out.send(Out::Taken(taken)).is_ok()
                }
                _ => false,
            }
        };
        if !queued {
            log::debug!(
                "paced flood on {} to connection {id} ends after {i} messages: the channel is gone",
                flood.topic
            );
            return;
        }
        if mark {
            if let Some(prev) = previous.replace(taken_rx) {
                if prev.blocking_recv().is_err() {
                    return; // the writer stopped: the connection is ending
                }
            }
        }
    }
}
