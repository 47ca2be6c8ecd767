//! Pushes: buffered until joined, sent, matched with replies, expired.
//!
//! Every push ends exactly once: replied, errored, timed out or not sent.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::channels::Phase;
use super::{Actor, PushRequest, ReplyTo};
use crate::error::Error;
use crate::event::{ChannelId, Event, PushId, PushOutcome};
use crate::message::{Message, Payload};

pub(super) struct PushRecord {
    channel: ChannelId,
    event: String,
    /// Taken when the push goes on the wire.
    payload: Option<Payload>,
    reply: ReplyTo,
    /// The message ref once sent.
    sent_ref: Option<String>,
    /// Still counted in the handles' outbound limit.
    counted: bool,
}

impl PushRecord {
    pub(super) fn unsent(req: PushRequest) -> PushRecord {
        PushRecord {
            channel: req.channel,
            event: req.event,
            payload: Some(req.payload),
            reply: req.reply,
            sent_ref: None,
            counted: true,
        }
    }
}

impl Actor {
    pub(super) async fn push(&mut self, req: PushRequest) {
        let deadline = Instant::now() + req.timeout;
        let (id, channel) = (req.push, req.channel);
        self.pushes.insert(id, PushRecord::unsent(req));
        let phase = self.channels.get(&channel).map(|ch| ch.phase());
        match phase {
            None => {
                // As in the reference client: join() first, then push.
                let error = Error::Closed("the channel is not joined; call join() first".into());
                self.finish_push(id, PushOutcome::NotSent(error));
            }
            Some(Phase::Leaving) => {
                let error = Error::Closed("the channel is leaving".into());
                self.finish_push(id, PushOutcome::NotSent(error));
            }
            Some(Phase::Joined) if self.ws.is_some() => {
                self.deadlines.push(Reverse((deadline, id)));
                self.send_push(id).await;
            }
            Some(_) => {
                self.deadlines.push(Reverse((deadline, id)));
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.buffer.push_back(id);
                }
            }
        }
    }

    pub(super) async fn send_push(&mut self, id: PushId) {
        let r = self.make_ref();
        let Some(record) = self.pushes.get_mut(&id) else {
            return;
        };
        let Some(ch) = self.channels.get(&record.channel) else {
            return;
        };
        let Some(payload) = record.payload.take() else {
            return;
        };
        let msg = Message {
            join_ref: ch.join_ref.clone(),
            msg_ref: Some(r.clone()),
            topic: ch.topic.clone(),
            event: std::mem::take(&mut record.event),
            payload,
        };
        record.sent_ref = Some(r.clone());
        if record.counted {
            record.counted = false;
            self.shared.outbound.fetch_sub(1, Ordering::AcqRel);
        }
        let is_cast = matches!(record.reply, ReplyTo::Cast);
        if is_cast {
            self.pushes.remove(&id);
        } else {
            self.inflight.insert(r, id);
        }
        // If the write fails the connection is gone and no reply can come,
        // but the push may have left: like the reference client, it then
        // ends in a timeout rather than a guess.
        self.send(&msg).await;
    }

    /// Ends a push exactly once and reports the outcome where it was asked for.
    pub(super) fn finish_push(&mut self, id: PushId, outcome: PushOutcome) {
        let Some(record) = self.pushes.remove(&id) else {
            return;
        };
        if record.counted {
            self.shared.outbound.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(r) = &record.sent_ref {
            self.inflight.remove(r);
        } else if let Some(ch) = self.channels.get_mut(&record.channel) {
            ch.buffer.retain(|p| *p != id);
        }
        match record.reply {
            ReplyTo::Future(tx) => {
                let _ = tx.send(outcome);
            }
            ReplyTo::Event => self.emit(Event::Reply {
                channel: record.channel,
                push: id,
                outcome,
            }),
            ReplyTo::Cast => {
                if !matches!(outcome, PushOutcome::Ok(_)) {
                    self.emit(Event::Reply {
                        channel: record.channel,
                        push: id,
                        outcome,
                    });
                }
            }
        }
    }

    pub(super) fn expire_pushes(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            // Already finished pushes are simply skipped (lazy deletion).
            if self.pushes.contains_key(&id) {
                self.finish_push(id, PushOutcome::Timeout);
            }
        }
    }
}
