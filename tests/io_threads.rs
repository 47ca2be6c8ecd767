//! The I/O thread pool: `runtime::configure(n)` starts n I/O threads, the
//! sockets carried by them all work, and `shutdown` stops them all. In its
//! own test binary, since the pool is process-wide.

mod common;

use common::*;
use nerves_hub_channel::{runtime, Error, PushOutcome};
use serde_json::json as j;

fn io_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "nhc-io")
        .count()
}

#[tokio::test]
async fn several_io_threads_carry_sockets_and_stop_on_shutdown() {
    runtime::configure(3).expect("configure before first use");
    let server = server().await;
    let mut sockets = Vec::new();
    for i in 0..6 {
        sockets.push(joined(&server, &format!("room:{i}")).await);
    }
    assert_eq!(io_threads(), 3);
    // Every socket works, whichever thread carries it.
    for (i, (_, chan)) in sockets.iter().enumerate() {
        let outcome = chan
            .push("ping", json(j!({"n": i})))
            .expect("push sent")
            .await
            .expect("socket alive");
        assert_eq!(outcome, PushOutcome::Ok(json(j!({"n": i}))));
    }
    assert!(matches!(
        runtime::configure(2),
        Err(Error::InvalidArgument(_))
    ));
    // From outside any runtime, shutdown waits for the threads to end.
    std::thread::spawn(runtime::shutdown)
        .join()
        .expect("shutdown returns");
    assert_eq!(io_threads(), 0);
    for (sock, _) in &sockets {
        wait_for(sock, "the socket's end", |e| {
            matches!(e, nerves_hub_channel::Event::Closed)
        })
        .await;
    }
}
