//! End-to-end loopback benchmark against the dev server (a separate process,
//! so the client's CPU time is measured alone):
//!   cargo build --release -p nhc-devserver && cargo bench --bench loopback
//! Reports push/reply round trips (sequential and 100 outstanding) and an
//! inbound flood with client CPU seconds per 10,000 messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nerves_hub_channel::{Event, JoinParams, Payload, PushOutcome, Socket, SocketConfig};
use serde_json::{json, Value};

struct Server {
    child: Child,
    info: Value,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn devserver_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NHC_DEVSERVER") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/loopback-xxxx -> target/<profile>/nhc-devserver
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("nhc-devserver")
}

fn start_server() -> Server {
    let pki = std::env::temp_dir().join(format!("nhc-bench-pki-{}", std::process::id()));
    let mut child = Command::new(devserver_path())
        .args(["--pki-dir", pki.to_str().expect("utf-8 temp dir")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nhc-devserver (build it: cargo build --release -p nhc-devserver)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server info line");
    Server {
        child,
        info: serde_json::from_str(&line).expect("server info JSON"),
    }
}

fn control(server: &Server, path: &str, body: &Value) -> Value {
    let base = server.info["control_url"].as_str().expect("control_url");
    let addr = base.trim_start_matches("http://");
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).expect("control connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("control write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("control read");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let server = start_server();
    let url = server.info["ws_url"].as_str().expect("ws_url").to_owned();
    let mut config = SocketConfig::new(url);
    config.outbound_capacity = 4096;
    config.event_capacity = 4096;
    let sock = Socket::new(config).expect("socket");
    let chan = sock
        .channel("room:bench", JoinParams::Static(Payload::empty()))
        .expect("channel");
    sock.connect().expect("connect");
    chan.join()
        .expect("join")
        .await
        .expect("alive")
        .expect("joined");
    let payload = Payload::json(&json!({"value": 42}));

    let n = 5_000;
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let outcome = chan
            .push("ping", payload.clone())
            .expect("push")
            .await
            .expect("alive");
        assert!(matches!(outcome, PushOutcome::Ok(_)), "{outcome:?}");
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    println!(
        "sequential push/reply: {:.0} round trips/s, median {:?}, p99 {:?} ({n} pushes)",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    let total = 50_000;
    let window = 100;
    let start = Instant::now();
    let cpu = cpu_seconds();
    let mut pending = std::collections::VecDeque::with_capacity(window);
    for _ in 0..total {
        if pending.len() == window {
            let reply: nerves_hub_channel::PendingReply<PushOutcome> =
                pending.pop_front().expect("pending");
            assert!(matches!(reply.await.expect("alive"), PushOutcome::Ok(_)));
        }
        pending.push_back(chan.push("ping", payload.clone()).expect("push"));
    }
    for reply in pending {
        assert!(matches!(reply.await.expect("alive"), PushOutcome::Ok(_)));
    }
    let elapsed = start.elapsed();
    println!(
        "pipelined push/reply ({window} outstanding): {:.0} round trips/s, client CPU {:.2} s per 10,000 ({total} pushes)",
        total as f64 / elapsed.as_secs_f64(),
        (cpu_seconds() - cpu) * 10_000.0 / total as f64
    );

    while sock.try_recv().is_some() {}
    let count = 50_000u64;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let flood = control(
        &server,
        "/flood",
        &json!({"topic": "room:bench", "event": "flood", "count": count, "size": 256}),
    );
    assert!(flood.get("error").is_none(), "flood refused: {flood}");
    let mut received = 0u64;
    while received < count {
        match tokio::time::timeout(Duration::from_secs(30), sock.next_event()).await {
            Ok(Some(Event::Message { .. })) => received += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("flood stalled after {received} messages"),
        }
    }
    let elapsed = start.elapsed();
    println!(
        "inbound flood of {count} x 256 B: {:.0} messages/s, client CPU {:.3} s per 10,000 messages",
        count as f64 / elapsed.as_secs_f64(),
        (cpu_seconds() - cpu) * 10_000.0 / count as f64
    );
    sock.close();
}
