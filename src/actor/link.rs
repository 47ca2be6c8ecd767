//! The connection itself: connecting, reconnect policy, reading frames, heartbeats.

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{Actor, ConnectionState};
use crate::codec::{self, Serializer};
use crate::error::Error;
use crate::event::Event;
use crate::message::{events, Inbound, Message, Payload};
use crate::reconnect::Retry;

/// How long closing waits for the close frame to reach the socket buffer.
const CLOSE_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);
use crate::transport::{self, ConnectFailure, WsStream};

impl Actor {
    /// Starts an attempt now unless connected or already trying.
    pub(super) fn connect_now(&mut self) {
        self.want_connected = true;
        self.reconnect_at = None;
        if self.ws.is_some() || self.connecting.is_some() {
            return;
        }
        self.set_state(ConnectionState::Connecting);
        self.emit(Event::Connecting {
            attempt: self.reconnects.attempt(),
        });
        let config = self.config.clone();
        let url = self.url.clone();
        let tls = self.tls.clone();
        let headers = match &config.header_provider {
            Some(provider) => provider.headers(self.server_date.as_deref()),
            None => Vec::new(),
        };
        self.connecting = Some(Box::pin(async move {
            transport::open(&config, &url, tls.as_ref(), headers).await
        }));
    }

    pub(super) async fn on_connect_result(&mut self, result: Result<WsStream, ConnectFailure>) {
        match result {
            Ok(ws) => {
                *self
                    .shared
                    .local_addr
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = ws.get_ref().local_addr();
                self.ws = Some(ws);
                self.server_date = None;
                self.set_state(ConnectionState::Connected);
                self.emit(Event::Connected);
                self.heartbeat.pending = None;
                self.heartbeat.paused = false;
                self.heartbeat.next_at = Some(Instant::now() + self.config.heartbeat_interval);
                if !self.rejoin_all().await {
                    // Nothing to join: the connection itself is the session.
                    self.session_joined();
                }
            }
            Err(failure) => {
                let retry = match &failure.error {
                    // Credentials or configuration refused: retry at the slow
                    // end, since a clock or the server may recover; unless the
                    // refusal taught the signer something new (the server's
                    // clock), which the next attempt uses at once.
                    Error::Auth { .. } => {
                        let learned = self.config.header_provider.as_ref().is_some_and(|p| {
                            // Read the device clock now, when the refusal arrived.
                            p.refused(failure.server_date.as_deref())
                        });
                        if learned {
                            Retry::Soon
                        } else {
                            Retry::Slow
                        }
                    }
                    Error::Http { status: 403, .. } => Retry::Slow,
                    _ => Retry::Backoff,
                };
                if failure.server_date.is_some() {
                    self.server_date = failure.server_date;
                }
                self.after_failure(failure.error, retry);
            }
        }
    }

    /// The connection joined (its first channel, or connected with none).
    pub(super) fn session_joined(&mut self) {
        if self.joined_at.is_none() {
            self.joined_at = Some(Instant::now());
        }
    }

    /// Reports a failed or lost connection and schedules the next attempt.
    fn after_failure(&mut self, error: Error, retry: Retry) {
        self.set_state(ConnectionState::Disconnected);
        let delay = self.reconnects.next_delay(&self.config.backoff, retry);
        let reconnect_in = (self.want_connected && self.config.reconnect).then_some(delay);
        self.reconnect_at = reconnect_in.map(|d| Instant::now() + d);
        match error {
            Error::Auth { .. } => self.emit(Event::AuthError {
                error,
                reconnect_in,
            }),
            reason => self.emit(Event::Disconnected {
                reason,
                reconnect_in,
            }),
        }
    }

    /// The connection broke (or was taken for dead): error the channels and reconnect.
    pub(super) async fn connection_lost(&mut self, reason: Error) {
        self.session_ended(reason, false).await;
    }

    /// Ends the session; `by_server`: the server closed it.
    async fn session_ended(&mut self, reason: Error, by_server: bool) {
        if self.ws.take().is_none() {
            return;
        }
        self.dirty = false;
        self.heartbeat.next_at = None;
        self.heartbeat.pending = None;
        self.error_channels("connection lost");
        let joined_for = self.joined_at.take().map(|at| at.elapsed());
        let in_use = self
            .reconnects
            .session_ended(joined_for, by_server, self.config.stable_after);
        self.after_failure(reason, Retry::Backoff);
        if let Some(sessions) = in_use {
            log::warn!(
                "{}; reconnecting with an escalating backoff",
                crate::event::identity_in_use_reason(sessions)
            );
            self.emit(Event::IdentityInUse { sessions });
        }
    }

    /// Closes the connection on purpose; no reconnect until `connect_now`.
    pub(super) async fn disconnect(&mut self, reason: Error, _code: Option<u16>) {
        self.want_connected = false;
        self.reconnect_at = None;
        let was_connecting = self.connecting.take().is_some();
        let Some(mut ws) = self.ws.take() else {
            if was_connecting {
                self.set_state(ConnectionState::Disconnected);
                self.emit(Event::Disconnected {
                    reason,
                    reconnect_in: None,
                });
            }
            return;
        };
        // Bounded: a peer that stopped reading must not hold up a close
        // (and with it `Closed`, and a free waiting for the task's end).
        let _ = tokio::time::timeout(CLOSE_FLUSH_LIMIT, ws.close(None)).await;
        // A stable session still restarts the backoff for the next connect.
        let joined_for = self.joined_at.take().map(|at| at.elapsed());
        self.reconnects
            .session_ended(joined_for, false, self.config.stable_after);
        self.dirty = false;
        self.heartbeat.next_at = None;
        self.heartbeat.pending = None;
        self.error_channels("disconnected");
        self.set_state(ConnectionState::Disconnected);
        self.emit(Event::Disconnected {
            reason,
            reconnect_in: None,
        });
    }

    pub(super) async fn on_frame(&mut self, frame: Option<Result<WsMessage, WsError>>) {
        let inbound = match frame {
            Some(Ok(WsMessage::Text(text))) => match self.config.serializer {
                Serializer::Json => codec::decode_server_text(text.as_str()),
                Serializer::MsgPack => Err(codec::msgpack::text_frame()),
            },
            Some(Ok(WsMessage::Binary(bytes))) => match self.config.serializer {
                Serializer::Json => codec::decode_server_binary(&bytes),
                Serializer::MsgPack => codec::msgpack::decode_server_binary(&bytes),
            },
            Some(Ok(WsMessage::Ping(_))) => {
                // tungstenite queued the pong; make sure it leaves.
                self.dirty = true;
                return;
            }
            Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => return,
            Some(Ok(WsMessage::Close(frame))) => {
                let reason = match frame {
                    Some(f) => format!(
                        "server closed the connection (code {}: {})",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "server closed the connection".to_owned(),
                };
                self.session_ended(Error::Connect(reason), true).await;
                return;
            }
            Some(Err(e)) => {
                self.connection_lost(read_error(e, self.config.max_message_size))
                    .await;
                return;
            }
            None => {
                self.connection_lost(Error::Connect("server closed the connection".into()))
                    .await;
                return;
            }
        };
        match inbound {
            Ok(Inbound::Reply {
                msg_ref,
                topic,
                reply,
                ..
            }) => {
                if topic == events::PHOENIX_TOPIC && self.is_heartbeat_reply(msg_ref.as_deref()) {
                    self.heartbeat.pending = None;
                    self.heartbeat.paused = false;
                    self.heartbeat.next_at = Some(Instant::now() + self.config.heartbeat_interval);
                } else if let Some(msg_ref) = msg_ref {
                    self.on_reply(msg_ref, topic, reply).await;
                }
            }
            Ok(Inbound::Message(msg)) => self.on_message(msg).await,
            Err(e) => self.emit(Event::ProtocolError {
                detail: format!("dropped a malformed frame from the server: {e}"),
            }),
        }
    }

    fn is_heartbeat_reply(&self, msg_ref: Option<&str>) -> bool {
        matches!((&self.heartbeat.pending, msg_ref), (Some((pending, _)), Some(r)) if pending == r)
    }

    pub(super) async fn heartbeat_timers(&mut self, now: Instant) {
        if self.ws.is_none() {
            return;
        }
        if let Some((_, deadline)) = &self.heartbeat.pending {
            if *deadline > now {
                return;
            }
            if self.heartbeat.paused || self.queue.is_full() {
                // The reply may be sitting unread behind our own back-pressure.
                self.heartbeat.paused = false;
                self.heartbeat.pending = None;
                self.heartbeat.next_at = Some(now);
            } else {
                let timeout = self.config.heartbeat_timeout;
                self.connection_lost(Error::Timeout(format!(
                    "no heartbeat reply within {timeout:?}; the connection is taken for dead"
                )))
                .await;
                return;
            }
        }
        if self.heartbeat.next_at.is_some_and(|at| at <= now) {
            let r = self.make_ref();
            self.heartbeat.next_at = None;
            self.heartbeat.pending = Some((r.clone(), now + self.config.heartbeat_timeout));
            self.heartbeat.paused = false;
            let msg = Message {
                join_ref: None,
                msg_ref: Some(r),
                topic: events::PHOENIX_TOPIC.into(),
                event: events::HEARTBEAT.into(),
                payload: Payload::empty(),
            };
            self.send(&msg).await;
        }
    }
}

fn read_error(e: WsError, max: usize) -> Error {
    match e {
        WsError::Capacity(detail) => Error::Protocol(format!(
            "the server sent a message larger than max_message_size ({max} bytes): {detail}"
        )),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            Error::Connect("connection lost: reset without a closing handshake".into())
        }
        WsError::Protocol(detail) => {
            Error::Protocol(format!("websocket protocol violation: {detail}"))
        }
        WsError::Utf8(detail) => Error::Protocol(format!("text frame is not UTF-8: {detail}")),
        WsError::Io(e) => Error::Connect(format!("connection lost: {e}")),
        other => Error::Connect(format!("connection lost: {other}")),
    }
}
