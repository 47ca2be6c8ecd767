//! Channel behaviour against the dev server: joins, rejoins, pushes, routing.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nerves_hub_channel::{
    ChannelState, Error, Event, JoinFailure, JoinParams, Payload, PushOutcome, Socket,
};
use serde_json::json as j;

#[tokio::test]
async fn push_gets_the_servers_reply() {
    let server = server().await;
    let (_sock, chan) = joined(&server, "room:1").await;
    let outcome = chan
        .push("ping", json(j!({"n": 1})))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Ok(json(j!({"n": 1}))));
    let outcome = chan
        .push("error_please", json(j!({"why": "x"})))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Error {
            status: "error".into(),
            response: json(j!({"why": "x"}))
        }
    );
}

#[tokio::test]
async fn join_to_unmatched_topic_is_refused_and_retried() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    let chan = sock.channel("nowhere", no_params()).unwrap();
    sock.connect().unwrap();
    let result = chan.join().unwrap().await.unwrap();
    assert_eq!(
        result,
        Err(JoinFailure::Refused(json(
            j!({"reason": "unmatched topic"})
        )))
    );
    // A refused join is retried after rejoin_after, like the reference client.
    wait_for(&sock, "a second refusal", |e| {
        matches!(e, Event::JoinFailed { .. })
    })
    .await;
    wait_for(&sock, "a third refusal", |e| {
        matches!(
            e,
            Event::JoinFailed {
                rejoin_in: Some(_),
                ..
            }
        )
    })
    .await;
}

#[tokio::test]
async fn push_without_reply_times_out() {
    let server = server().await;
    let (_sock, chan) = joined(&server, "room:1").await;
    let outcome = chan
        .push_with_timeout(
            "noreply_please",
            Payload::empty(),
            Duration::from_millis(100),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Timeout);
}

#[tokio::test]
async fn pushes_made_before_join_are_sent_after_it() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    // join() is called first (as in the reference client), but the socket is
    // not connected yet: the push waits in the buffer for the join reply.
    let join = chan.join().unwrap();
    let early = chan.push("early", json(j!({"i": 1}))).unwrap();
    sock.connect().unwrap();
    join.await.unwrap().unwrap();
    assert_eq!(early.await.unwrap(), PushOutcome::Ok(json(j!({"i": 1}))));
    let events: Vec<String> = server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.message.topic == "room:1")
        .map(|r| r.message.event)
        .collect();
    assert_eq!(events, ["phx_join", "early"]);
}

#[tokio::test]
async fn buffered_push_expires_unsent_when_never_joined() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    let join = chan.join().unwrap();
    let push = chan
        .push_with_timeout("late", Payload::empty(), Duration::from_millis(50))
        .unwrap();
    assert_eq!(push.await.unwrap(), PushOutcome::Timeout);
    sock.connect().unwrap();
    join.await.unwrap().unwrap();
    chan.push("marker", Payload::empty())
        .unwrap()
        .await
        .unwrap();
    let sent: Vec<String> = server
        .control()
        .received()
        .await
        .into_iter()
        .map(|r| r.message.event)
        .collect();
    assert!(
        !sent.contains(&"late".to_owned()),
        "an expired push was sent: {sent:?}"
    );
}

#[tokio::test]
async fn outbound_buffer_overflow_is_an_immediate_error() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.outbound_capacity = 2;
    let sock = Socket::new(config).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    let _join = chan.join().unwrap();
    let first = chan.push("a", Payload::empty()).unwrap();
    let second = chan.push("b", Payload::empty()).unwrap();
    let third = chan.push("c", Payload::empty());
    assert!(
        matches!(third, Err(Error::BufferFull(_))),
        "third push: {:?}",
        third.err()
    );
    // The two accepted pushes are not lost: they go out once joined.
    sock.connect().unwrap();
    assert!(matches!(first.await.unwrap(), PushOutcome::Ok(_)));
    assert!(matches!(second.await.unwrap(), PushOutcome::Ok(_)));
    // And the room is available again.
    assert!(matches!(
        chan.push("d", Payload::empty()).unwrap().await.unwrap(),
        PushOutcome::Ok(_)
    ));
}

#[tokio::test]
async fn push_on_a_channel_never_joined_is_not_sent() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    let other = sock.channel("room:2", no_params()).unwrap();
    let outcome = other.push("x", Payload::empty()).unwrap().await.unwrap();
    assert!(
        matches!(outcome, PushOutcome::NotSent(Error::Closed(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn server_push_reaches_the_channel_and_stale_join_ref_is_dropped() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    let control = server.control();
    assert_eq!(
        control
            .push_with_join_ref("room:1", "stale", Payload::empty(), "999")
            .await,
        1
    );
    assert_eq!(
        control
            .push("room:1", "fresh", json(j!({"ok": true})))
            .await,
        1
    );
    let event = wait_for(&sock, "a message", |e| matches!(e, Event::Message { .. })).await;
    let Event::Message { event, payload, .. } = event else {
        unreachable!()
    };
    assert_eq!((event.as_str(), payload), ("fresh", json(j!({"ok": true}))));
}

#[tokio::test]
async fn broadcasts_reach_the_channel() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    server
        .control()
        .broadcast("room:1", "news", json(j!({"n": 7})))
        .await;
    let event = wait_for(&sock, "the broadcast", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    assert!(matches!(event, Event::Message { event, .. } if event == "news"));
}

#[tokio::test]
async fn phx_error_makes_the_channel_rejoin_with_fresh_params() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let params = {
        let counter = counter.clone();
        JoinParams::Dynamic(Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Payload::json(&j!({"n": n}))
        }))
    };
    let chan = sock.channel("room:1", params).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().unwrap();
    assert_eq!(server.control().crash_channel("room:1").await, 1);
    wait_for(
        &sock,
        "the channel error",
        |e| matches!(e, Event::ChannelError { reason, .. } if reason == "channel_crash"),
    )
    .await;
    wait_for(&sock, "the rejoin", is_joined("room:1")).await;
    let joins: Vec<serde_json::Value> = server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.message.event == "phx_join")
        .filter_map(|r| r.message.payload.to_value())
        .collect();
    assert_eq!(joins, [j!({"n": 1}), j!({"n": 2})]);
    // The rejoined channel works.
    assert!(matches!(
        chan.push("x", Payload::empty()).unwrap().await.unwrap(),
        PushOutcome::Ok(_)
    ));
}

#[tokio::test]
async fn phx_close_does_not_rejoin() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.rejoin_after = Duration::ZERO;
    let sock = Socket::new(config).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().unwrap();
    assert_eq!(server.control().close_channel("room:1").await, 1);
    wait_for(
        &sock,
        "the close",
        |e| matches!(e, Event::ChannelClosed { reason, .. } if reason == "phx_close"),
    )
    .await;
    // A rejoin would be due at once; two round trips on another channel give it every chance.
    let other = sock.channel("room:2", no_params()).unwrap();
    other.join().unwrap().await.unwrap().unwrap();
    other.push("x", Payload::empty()).unwrap().await.unwrap();
    let joins = server
        .control()
        .received()
        .await
        .into_iter()
        .filter(|r| r.message.event == "phx_join" && r.message.topic == "room:1")
        .count();
    assert_eq!(joins, 1);
    let outcome = chan
        .push("after_close", Payload::empty())
        .unwrap()
        .await
        .unwrap();
    assert!(matches!(outcome, PushOutcome::NotSent(_)), "{outcome:?}");
}

#[tokio::test]
async fn leave_closes_the_channel() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    chan.leave().unwrap().await.unwrap();
    wait_for(
        &sock,
        "the close",
        |e| matches!(e, Event::ChannelClosed { reason, .. } if reason == "left"),
    )
    .await;
    server
        .control()
        .wait_for("room:1", "phx_leave", 1, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn channel_state_follows_join_error_and_leave() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    assert_eq!(chan.state(), ChannelState::Closed);
    let join = chan.join().unwrap();
    sock.connect().unwrap();
    join.await.unwrap().unwrap();
    assert_eq!(chan.state(), ChannelState::Joined);
    server
        .control()
        .wait_joined("room:1", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(server.control().crash_channel("room:1").await, 1);
    wait_for(&sock, "the channel error", |e| {
        matches!(e, Event::ChannelError { .. })
    })
    .await;
    assert!(
        matches!(chan.state(), ChannelState::Errored | ChannelState::Joining),
        "{:?}",
        chan.state()
    );
    wait_for(&sock, "the rejoin", |e| matches!(e, Event::Joined { .. })).await;
    assert_eq!(chan.state(), ChannelState::Joined);
    chan.leave().unwrap().await.unwrap();
    assert_eq!(chan.state(), ChannelState::Closed);
}

#[tokio::test]
async fn several_channels_share_one_socket() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).unwrap();
    sock.connect().unwrap();
    let mut chans = Vec::new();
    for i in 0..5 {
        let chan = sock.channel(&format!("room:{i}"), no_params()).unwrap();
        chan.join().unwrap().await.unwrap().unwrap();
        chans.push(chan);
    }
    for (i, chan) in chans.iter().enumerate() {
        let outcome = chan.push("who", json(j!({"i": i}))).unwrap().await.unwrap();
        assert_eq!(outcome, PushOutcome::Ok(json(j!({"i": i}))));
    }
    assert_eq!(server.control().connections().await.len(), 1);
}

#[tokio::test]
async fn binary_payloads_travel_both_ways() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    let bytes: Vec<u8> = (0..=255).collect();
    let outcome = chan
        .push("blob", Payload::Binary(bytes.clone()))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Ok(Payload::Binary(bytes.clone())));
    server
        .control()
        .push("room:1", "blob_down", Payload::Binary(vec![1, 2, 3]))
        .await;
    let event = wait_for(&sock, "the binary push", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    assert!(matches!(event, Event::Message { payload: Payload::Binary(b), .. } if b == [1, 2, 3]));
    let sent = server
        .control()
        .wait_for("room:1", "blob", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(sent[0].message.payload, Payload::Binary(bytes));
}

#[tokio::test]
async fn tracked_push_reply_arrives_as_an_event() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    let id = chan.push_tracked("ping", json(j!({"t": 1})), WAIT).unwrap();
    let event = wait_for(&sock, "the reply", |e| matches!(e, Event::Reply { .. })).await;
    assert_eq!(
        event,
        Event::Reply {
            channel: chan.id(),
            push: id,
            outcome: PushOutcome::Ok(json(j!({"t": 1})))
        }
    );
}

#[tokio::test]
async fn cast_is_sent_without_awaiting_a_reply() {
    let server = server().await;
    let (_sock, chan) = joined(&server, "room:1").await;
    chan.cast("noreply_status", json(j!({"s": "ok"})), WAIT)
        .unwrap();
    let got = server
        .control()
        .wait_for("room:1", "noreply_status", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].message.payload, json(j!({"s": "ok"})));
    // Every message of a channel carries its join_ref.
    assert!(got[0].message.join_ref.is_some());
}
