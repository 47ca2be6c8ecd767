//! Sockets must not run out of descriptors for their connections because of
//! the timer each connection task keeps: on Linux a timerfd, a descriptor of
//! its own, rationed to an eighth of the process's limit (src/actor/timer.rs).
//! Without the ration, a fleet simulator with 10,000 sockets and a limit of
//! 20,000 descriptors left some sockets retrying forever on EMFILE.
//!
//! Its own test binary: it lowers the process's descriptor limit.

mod common;

use common::{connect_and_join, fast_config, server};
use nerves_hub_channel::{PushOutcome, Socket};

/// Listing /proc/self/fd needs a descriptor itself: at the limit it fails.
fn open_descriptors() -> std::io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

fn set_soft_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_the_timerfd_ration_still_connect_and_join() {
    let server = server().await;
    // The runtime, its I/O threads and the server's listeners exist after a
    // first joined socket: what is open then is the base.
    let first = Socket::new(fast_config(&server.ws_url())).expect("valid config");
    connect_and_join(&first, "room:first").await;
    let base = open_descriptors().expect("/proc/self/fd is readable");

    // Each further socket needs two descriptors (our end and the server's).
    // The limit leaves room for those and a slack larger than the ration
    // (an eighth of the limit), but not for a timerfd per socket as well.
    const SOCKETS: u64 = 64;
    let slack = (base + 2 * SOCKETS) / 7 + 8;
    let limit = base + 2 * SOCKETS + slack;
    assert!(
        base + 3 * SOCKETS > limit,
        "the test needs a limit timerfds would break"
    );
    set_soft_limit(limit);

    let mut sockets = Vec::new();
    for i in 0..SOCKETS {
        let sock = Socket::new(fast_config(&server.ws_url())).expect("valid config");
        let topic = format!("room:{i}");
        let joining = connect_and_join(&sock, &topic);
        let Ok(chan) = tokio::time::timeout(common::WAIT, joining).await else {
            panic!(
                "socket {i} not joined within {:?}; open descriptors: {:?}, limit {limit}",
                common::WAIT,
                open_descriptors()
            );
        };
        sockets.push((sock, chan));
    }
    let open = open_descriptors().expect("a descriptor is left to list them");
    assert!(open <= limit, "{open} descriptors open, limit {limit}");

    // The last socket (beyond the ration, on tokio's timer) works: a push is
    // answered.
    let (_, chan) = sockets.last().expect("sockets");
    let payload = common::json(serde_json::json!({"n": 1}));
    let outcome = chan
        .push("ping", payload.clone())
        .expect("push accepted")
        .await
        .expect("socket alive");
    assert_eq!(outcome, PushOutcome::Ok(payload));
}
