//! Floods: many server messages to every channel joined on a topic, for
//! throughput benchmarks.
//!
//! Each channel gets its own task that queues one chunk of messages at a time
//! and then waits until the connection's writer has taken the previous chunk
//! (the writer's sink applies the socket's back-pressure). At most two chunks
//! per channel wait in the server, so a client that reads slowly slows its
//! flood down instead of growing the server's memory.
//!
//! A paced flood (`rate`) sends one message at a time on a schedule instead,
//! each written on its own, so that a client sees a trickle: every message
//! arrives alone and wakes it (see `paced`).

use std::sync::Arc;

use nerves_hub_channel::codec::{Frame, Serializer};
use nerves_hub_channel::message::{Message, Payload};
use tokio::sync::oneshot;

use crate::state::{Out, Shared};

/// Messages queued at once per channel: the writer's batch size.
const CHUNK: u64 = 64;

/// `{"i":` + `,"pad":"` + `"}`: a payload's size without its digits and padding.
const PAYLOAD_OVERHEAD: usize = 15;

/// What to send, and how.
#[derive(Debug, Clone)]
pub struct Flood {
    pub topic: String,
    pub event: String,
    /// Messages per channel.
    pub count: u64,
    /// Bytes of each JSON payload `{"i":n,"pad":"xx..."}` (at least its
    /// smallest form, which holds `i` and an empty `pad`).
    pub size: usize,
    /// `false`: fastlane broadcasts `[null,null,...]`; `true`: channel pushes
    /// carrying the channel's join_ref, as `POST /push` sends.
    pub with_join_ref: bool,
    /// Messages per second, each sent alone at its time; `None`: as fast as
    /// the client reads.
    pub rate: Option<u32>,
}

impl Flood {
    /// The `i`th message's payload, padded to `size` bytes.
    fn payload(&self, i: u64, pad: &str) -> Payload {
        let digits = i.checked_ilog10().map_or(1, |d| d as usize + 1);
        let pad_len = self.size.saturating_sub(PAYLOAD_OVERHEAD + digits);
        let text = format!(r#"{{"i":{i},"pad":"{}"}}"#, &pad[..pad_len.min(pad.len())]);
        // Digits and 'x' only: always valid JSON.
        Payload::from_json_text(&text).unwrap_or_else(|_| Payload::empty())
    }

    pub(crate) fn frame(
        &self,
        serializer: Serializer,
        i: u64,
        join_ref: &Option<String>,
        pad: &str,
    ) -> Option<Frame> {
        let msg = Message {
            join_ref: if self.with_join_ref {
                join_ref.clone()
            } else {
                None
            },
            msg_ref: None,
            topic: self.topic.clone(),
            event: self.event.clone(),
            payload: self.payload(i, pad),
        };
        match serializer.encode_server_message(&msg) {
            Ok(frame) => Some(frame),
            Err(e) => {
                log::warn!("flood on {}: cannot encode a message: {e}", self.topic);
                None
            }
        }
    }
}

/// Starts flooding every channel joined on `flood.topic` and returns how many
/// there are. The floods run in the background; each one ends early when its
/// channel is left, rejoined or disconnected.
pub(crate) fn start(shared: &Arc<Shared>, flood: Flood) -> usize {
    let targets: Vec<(u64, Option<String>, Serializer)> = shared
        .lock()
        .conns
        .iter()
        .filter_map(|(id, conn)| {
            conn.channels
                .get(&flood.topic)
                .map(|r| (*id, r.clone(), conn.serializer))
        })
        .collect();
    let flood = Arc::new(flood);
    for (id, join_ref, serializer) in &targets {
        match flood.rate {
            Some(rate) => crate::paced::start(
                shared.clone(),
                flood.clone(),
                rate,
                *id,
                join_ref.clone(),
                *serializer,
            ),
            None => {
                tokio::spawn(run(
                    shared.clone(),
                    flood.clone(),
                    *id,
                    join_ref.clone(),
                    *serializer,
                ));
            }
        }
    }
    targets.len()
}

async fn run(
    shared: Arc<Shared>,
    flood: Arc<Flood>,
    id: u64,
    join_ref: Option<String>,
    serializer: Serializer,
) {
    let pad = "x".repeat(flood.size);
    let mut sent = 0u64;
    let mut previous: Option<oneshot::Receiver<()>> = None;
    while sent < flood.count {
        let n = CHUNK.min(flood.count - sent);
        // Encoded outside the lock, which every connection needs.
        let frames: Vec<Frame> = (sent..sent + n)
            .filter_map(|i| flood.frame(serializer, i, &join_ref, &pad))
            .collect();
        let (taken, taken_rx) = oneshot::channel();
        let queued = {
            let state = shared.lock();
            match state.conns.get(&id) {
                Some(conn) if conn.channels.get(&flood.topic) == Some(&join_ref) => {
                    for frame in frames {
                        conn.send_frame(frame);
                    }
                    conn.out.send(Out::Taken(taken)).is_ok()
                }
                _ => false,
            }
        };
        if !queued {
            log::debug!(
                "flood on {} to connection {id} ends after {sent} messages: the channel is gone",
                flood.topic
            );
            return;
        }
        sent += n;
        if let Some(prev) = previous.replace(taken_rx) {
            if prev.await.is_err() {
                // The writer stopped: the connection is ending.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tokio::sync::{mpsc, Notify};

    use super::*;
    use crate::state::Conn;

    /// A connection joined on `room:t` whose writer is the test itself.
    fn joined_conn(shared: &Shared) -> mpsc::UnboundedReceiver<Out> {
        let (out, rx) = mpsc::unbounded_channel();
        shared.register(Conn {
            identity: None,
            path: "/socket/websocket".into(),
            serializer: Serializer::Json,
            channels: BTreeMap::from([("room:t".to_owned(), Some("1".to_owned()))]),
            attached_extensions: Vec::new(),
            out,
            abort: std::sync::Arc::new(Notify::new()),
        });
        rx
    }

    /// Lets the (single-threaded) runtime run the flood until it waits.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    /// Everything queued so far: (frames, marks).
    fn drain(rx: &mut mpsc::UnboundedReceiver<Out>) -> (u64, Vec<oneshot::Sender<()>>) {
        let (mut frames, mut marks) = (0, Vec::new());
        while let Ok(out) = rx.try_recv() {
            match out {
                Out::Frame(_) => frames += 1,
                Out::Taken(mark) => marks.push(mark),
                Out::Close(..) => panic!("a flood never closes"),
            }
        }
        (frames, marks)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flood_queues_two_chunks_until_the_writer_takes_them() {
        let shared = Shared::new(Duration::from_secs(60), false);
        let mut rx = joined_conn(&shared);
        let flood = Flood {
            count: 1000,
            ..flood(32)
        };
        assert_eq!(start(&shared, flood), 1);
        settle().await;
        let (frames, mut marks) = drain(&mut rx);
        assert_eq!((frames, marks.len()), (2 * CHUNK, 2));

        // Nothing more while the writer is stuck on the first chunk.
        settle().await;
        assert_eq!(drain(&mut rx).0, 0);

        // Taking one chunk lets exactly one more in.
        let _ = marks.remove(0).send(());
        settle().await;
        let (frames, more) = drain(&mut rx);
        assert_eq!((frames, more.len()), (CHUNK, 1));
    }

    fn flood(size: usize) -> Flood {
        Flood {
            topic: "room:t".into(),
            event: "e".into(),
            count: 1,
            size,
            with_join_ref: false,
            rate: None,
        }
    }

    #[test]
    fn payloads_have_the_requested_size_when_it_fits() {
        let f = flood(256);
        let pad = "x".repeat(f.size);
        for i in [0, 9, 10, 12_345, u64::MAX] {
            let text = f.payload(i, &pad).json_text().map(str::len);
            assert_eq!(text, Some(256), "i = {i}");
        }
    }

    #[test]
    fn tiny_sizes_still_give_the_counter() {
        let f = flood(0);
        let payload = f.payload(42, "");
        assert_eq!(payload.json_text(), Some(r#"{"i":42,"pad":""}"#));
    }
}
