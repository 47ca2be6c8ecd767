//! One websocket connection: a reader that applies client frames to the
//! shared state, and a writer that drains the connection's outbound queue.
//!
//! They are separate tasks so that a client which stops reading never stops
//! the server from reading it (heartbeats, pushes), which is what the
//! client's back-pressure tests need.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nerves_hub_channel::codec::{Frame, Serializer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::channels;
use crate::handshake::Accepted;
use crate::state::{deadline_after, Conn, Out, Shared};

/// How long a closing connection may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames written before one flush, so floods go out in few syscalls.
const WRITE_BATCH: usize = 64;

/// Bandit's code for an idle connection.
const CLOSE_IDLE: u16 = 1002;
const CLOSE_UNSUPPORTED: u16 = 1003;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

pub(crate) async fn run<S>(shared: Arc<Shared>, ws: WebSocketStream<S>, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let abort = Arc::new(Notify::new());
    let id = shared.register(Conn {
        identity: accepted.identity.clone(),
        path: accepted.path,
        serializer: accepted.serializer,
        channels: BTreeMap::new(),
        attached_extensions: Vec::new(),
        out: tx.clone(),
        abort: abort.clone(),
    });
    let _registration = Registration {
        shared: &shared,
        id,
    };
    log::info!("connection {id} open (identity {:?})", accepted.identity);
    let (sink, stream) = ws.split();
    let mut writer = AbortOnDrop(tokio::spawn(write_loop(sink, rx)));

    let mut reader = Box::pin(read_loop(&shared, id, accepted.serializer, stream, &tx));
    let mut writer_done = false;
    let aborted = tokio::select! {
        () = &mut reader => false,
        // The writer stops after a close frame (or a dead socket): the client
        // gets CLOSE_GRACE to answer it.
        _ = &mut writer.0 => {
            writer_done = true;
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
            false
        }
        () = abort.notified() => true,
        () = shared.stopped() => true,
    };
    shared.unregister(id);
    drop(reader);
    drop(tx);
    // Otherwise the writer ends once its queue is drained (a pending close frame goes out first).
    if !writer_done
        && (aborted
            || tokio::time::timeout(CLOSE_GRACE, &mut writer.0)
                .await
                .is_err())
    {
        writer.0.abort();
        let _ = (&mut writer.0).await;
    }
    log::info!(
        "connection {id} closed{}",
        if aborted { " abruptly" } else { "" }
    );
}

/// Removes the connection from the state however the session ends, even
/// when its future is dropped at shutdown.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

/// Stops the writer with the session: a writer blocked on a client that
/// never reads would otherwise outlive it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(out) = next.take() {
            let result = match out {
                Out::Frame(msg) => sink.feed(msg).await,
                Out::Taken(taken) => {
                    let _ = taken.send(());
                    Ok(())
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    return;
                }
            };
            if result.is_err() {
                return;
            }
            batch += 1;
            if batch < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

fn close_code(error: &WsError) -> Option<u16> {
    match error {
        WsError::Capacity(_) => Some(CLOSE_TOO_BIG),
        WsError::Utf8(_) => Some(CLOSE_INVALID),
        WsError::Protocol(_) => Some(CLOSE_IDLE),
        _ => None,
    }
}

async fn read_loop<S>(
    shared: &Shared,
    id: u64,
    serializer: Serializer,
    mut stream: SplitStream<WebSocketStream<S>>,
    out: &mpsc::UnboundedSender<Out>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Set once the server has sent a close frame: from then on only the
    // client's answering close is awaited, for at most CLOSE_GRACE.
    let mut closing: Option<Instant> = None;
    let close = |closing: &mut Option<Instant>, code: u16, reason: &'static str| {
        let _ = out.send(Out::Close(code, reason));
        *closing = Some(Instant::now() + CLOSE_GRACE);
    };
    loop {
        let deadline = closing.unwrap_or_else(|| deadline_after(shared.idle_timeout));
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(next) => next,
            Err(_) if closing.is_some() => return,
            Err(_) => {
                log::info!(
                    "connection {id}: idle for {:?}, closing",
                    shared.idle_timeout
                );
                close(&mut closing, CLOSE_IDLE, "idle timeout");
                continue;
            }
        };
        let frame = match next {
            None => return,
            Some(Err(e)) => {
                log::warn!("connection {id}: {e}");
                match close_code(&e) {
                    Some(code) if closing.is_none() => {
                        // The writer still sends the close frame after the reader stops.
                        let _ = out.send(Out::Close(code, "bad frame"));
                    }
                    _ => {}
                }
                return;
            }
            Some(Ok(_)) if closing.is_some() => continue,
            Some(Ok(WsMessage::Text(text))) => Frame::Text(text.as_str().to_owned()),
            Some(Ok(WsMessage::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
            // Pings are answered by tungstenite; any frame resets the idle timer.
            Some(Ok(_)) => continue,
        };
        // Under 3.0.0 NervesHub's serializer raises on a text frame or bad
        // MessagePack, which ends the socket: so does this.
        match serializer.decode_client(&frame) {
            Ok(msg) => shared.update(|state| channels::handle(state, id, msg, shared.demo)),
            Err(e) => {
                log::warn!("connection {id}: malformed frame: {e}");
                let code = match (&frame, serializer) {
                    (Frame::Text(_), Serializer::MsgPack) => CLOSE_UNSUPPORTED,
                    (Frame::Binary(bytes), Serializer::Json) if bytes.first() != Some(&0) => {
                        CLOSE_UNSUPPORTED
                    }
                    _ => CLOSE_INVALID,
                };
                close(&mut closing, code, "malformed frame");
            }
        }
    }
}
