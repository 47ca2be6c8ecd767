//! The delivery modes: threaded handler, polled descriptor, async stream; all in order.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use nerves_hub_channel::{on_dispatcher_thread, Event, Payload, PushOutcome, Socket};
use serde_json::json as j;

const COUNT: u64 = 300;

fn numbers(events: impl IntoIterator<Item = Event>) -> Vec<u64> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { payload, .. } => payload.to_value()?.get("n")?.as_u64(),
            _ => None,
        })
        .collect()
}

/// What a handler sent to `rx`, until `done` says it is all or nothing
/// came for `WAIT` (off the runtime: the receiver blocks).
async fn collect_until<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
    done: impl Fn(&[T]) -> bool + Send + 'static,
) -> Vec<T> {
    tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        while !done(&got) {
            match rx.recv_timeout(WAIT) {
                Ok(item) => got.push(item),
                Err(_) => break,
            }
        }
        got
    })
    .await
    .unwrap()
}

async fn push_numbered(server: &nhc_devserver::DevServer) {
    for n in 0..COUNT {
        server
            .control()
            .push("room:1", "n", Payload::json(&j!({"n": n})))
            .await;
    }
}

#[tokio::test]
async fn threaded_mode_delivers_in_order_on_the_dispatcher_thread() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    let (tx, rx) = mpsc::channel();
    sock.set_handler(Some(Box::new(move |event| {
        let _ = tx.send((on_dispatcher_thread(), event));
    })));
    push_numbered(&server).await;
    let got = collect_until(rx, |got: &[(bool, Event)]| {
        numbers(got.iter().map(|(_, e)| e.clone())).len() == COUNT as usize
    })
    .await;
    assert!(got.iter().all(|(on_dispatcher, _)| *on_dispatcher));
    assert_eq!(
        numbers(got.into_iter().map(|(_, e)| e)),
        (0..COUNT).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn inline_mode_delivers_in_order_on_the_io_thread_and_its_pushes_go_out() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    while sock.try_recv().is_some() {}
    let (tx, rx) = mpsc::channel();
    sock.set_inline_handler(Box::new(move |event| {
        let thread = std::thread::current().name().map(str::to_owned);
        // A push from inside the handler: queued for the connection task,
        // sent once the handler returns; its reply comes back inline too.
        if numbers([event.clone()]) == [0] {
            let _ = chan.push_tracked("ping", Payload::json(&j!({"from": "inline"})), WAIT);
        }
        let _ = tx.send((thread, event));
    }));
    push_numbered(&server).await;
    let got = collect_until(rx, |got: &[(Option<String>, Event)]| {
        numbers(got.iter().map(|(_, e)| e.clone())).len() == COUNT as usize
            && got.iter().any(|(_, e)| matches!(e, Event::Reply { .. }))
    })
    .await;
    assert!(
        got.iter()
            .all(|(thread, _)| thread.as_deref() == Some("nhc-io")),
        "every event on the I/O thread: {:?}",
        got.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    let reply = got.iter().find_map(|(_, e)| match e {
        Event::Reply { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(
        reply,
        Some(PushOutcome::Ok(Payload::json(&j!({"from": "inline"}))))
    );
    assert_eq!(
        numbers(got.into_iter().map(|(_, e)| e)),
        (0..COUNT).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_handler_can_remove_itself_and_is_dropped_after_its_call() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    let (tx, rx) = mpsc::channel::<&'static str>();
    struct OnDrop(mpsc::Sender<&'static str>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.send("dropped");
        }
    }
    let guard = OnDrop(tx.clone());
    let sock2 = sock.clone();
    sock.set_handler(Some(Box::new(move |event| {
        let _ = &guard;
        if matches!(event, Event::Message { .. }) {
            let _ = tx.send("call start");
            sock2.set_handler(None);
            let _ = tx.send("call end");
        }
    })));
    server
        .control()
        .push("room:1", "bye", Payload::empty())
        .await;
    let order = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| rx.recv_timeout(WAIT).unwrap_or("timeout"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(order, ["call start", "call end", "dropped"]);
}

#[tokio::test]
async fn polled_mode_fd_is_readable_while_events_are_pending() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    while sock.try_recv().is_some() {}
    let fd = sock.event_fd().unwrap();
    assert!(!readable(fd, 0), "readable with an empty queue");
    push_numbered(&server).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        while numbers(got.clone()).len() < COUNT as usize && readable(fd, 10_000) {
            while let Some(event) = sock.try_recv() {
                got.push(event);
            }
        }
        (got, readable(fd, 0))
    })
    .await
    .unwrap();
    assert_eq!(numbers(got.0), (0..COUNT).collect::<Vec<_>>());
    assert!(!got.1, "still readable after draining");
}

#[tokio::test]
async fn async_stream_delivers_in_order() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    push_numbered(&server).await;
    let mut got = Vec::new();
    while got.len() < COUNT as usize {
        let event = wait_for(&sock, "a numbered message", |e| {
            matches!(e, Event::Message { .. })
        })
        .await;
        got.extend(numbers([event]));
    }
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_slow_consumer_pauses_reading_without_losing_anything() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.event_capacity = 8;
    config.heartbeat_interval = Duration::from_millis(20);
    config.heartbeat_timeout = Duration::from_millis(40);
    let sock = Socket::new(config).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().unwrap();
    push_numbered(&server).await;
    // Consume only after the whole flood was sent: the socket must have
    // stopped reading at 8 events, and its stalled heartbeats must not be
    // taken for a dead server.
    let mut events = Vec::new();
    while numbers(events.clone()).len() < COUNT as usize {
        events.push(wait_for(&sock, "the flood", |_| true).await);
    }
    assert_eq!(numbers(events.clone()), (0..COUNT).collect::<Vec<_>>());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{events:?}"
    );
}

fn readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

#[test]
fn only_sockets_take_inline_delivery() {
    // Bindings ask the kind before they build a handle (Python's
    // delivery="inline"); the C API learns it from set_inline_handler.
    use nerves_hub_channel::nerves_hub::Device;
    use nerves_hub_channel::{Error, Handle};
    assert!(<Socket as Handle>::refuses_inline().is_none());
    assert!(matches!(
        <Device as Handle>::refuses_inline(),
        Some(Error::InvalidArgument(why)) if why.contains("for sockets")
    ));
}
