//! Chaos: sockets pushing continuously through a fault-injecting proxy while
//! connections are reset, closed, stalled, delayed and cut mid-frame,
//! channels crash or are closed, and the whole server restarts.
//!
//! Invariants checked: every push ends exactly once (replied, errored, timed
//! out or not sent, never lost in between), every acknowledged push carries
//! our own payload back, every channel is joined and working again once the
//! faults stop, and nothing panics. `NHC_CHAOS_FAULTS` sets the number of
//! faults (default 60); see docs/chaos.md for the long run and its figures.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nerves_hub_channel::{Backoff, Channel, ChannelState, Event, PushOutcome, Socket};
use nhc_devserver::{Config, DevServer};
use proxy::{Fault, Proxy};
use serde_json::{json as j, Value};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

const SOCKETS: usize = 4;
const CHANNELS_PER_SOCKET: usize = 3;
const IN_FLIGHT_PER_CHANNEL: usize = 4;
const PUSH_TIMEOUT: Duration = Duration::from_millis(1000);
const NOREPLY_TIMEOUT: Duration = Duration::from_millis(150);
/// How long after its own timeout a push may take to resolve before it counts as lost.
const GRACE: Duration = Duration::from_secs(5);
/// Once the faults stop, every channel must be back within this.
const RECOVERY: Duration = Duration::from_secs(30);

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// splitmix64: a seeded, reproducible fault schedule without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Reset,
    Close,
    Stall,
    Delay,
    Truncate,
    ChannelCrash,
    ChannelClose,
    DropAll,
    ServerRestart,
}

/// Relative weights of the fault kinds.
const SCHEDULE: &[(Kind, usize)] = &[
    (Kind::Reset, 14),
    (Kind::Close, 10),
    (Kind::Stall, 10),
    (Kind::Delay, 10),
    (Kind::Truncate, 12),
    (Kind::ChannelCrash, 18),
    (Kind::ChannelClose, 12),
    (Kind::DropAll, 8),
    (Kind::ServerRestart, 6),
];

/// The schedule, limited to the kinds named in `NHC_CHAOS_KINDS` (comma
/// separated, e.g. `Reset,Stall`) when set: to chase a problem to one kind.
fn schedule() -> Vec<(Kind, usize)> {
    let Ok(names) = std::env::var("NHC_CHAOS_KINDS") else {
        return SCHEDULE.to_vec();
    };
    let chosen: Vec<(Kind, usize)> = SCHEDULE
        .iter()
        .filter(|(kind, _)| names.split(',').any(|n| n.trim() == format!("{kind:?}")))
        .copied()
        .collect();
    assert!(
        !chosen.is_empty(),
        "NHC_CHAOS_KINDS={names:?} names no kind of {SCHEDULE:?}"
    );
    chosen
}

fn pick(rng: &mut Rng, schedule: &[(Kind, usize)]) -> Kind {
    let total: usize = schedule.iter().map(|(_, w)| w).sum();
    let mut at = rng.below(total);
    for (kind, weight) in schedule {
        if at < *weight {
            return *kind;
        }
        at -= weight;
    }
    unreachable!("weights cover the range")
}

/// How every push ended.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    ok: u64,
    error: u64,
    /// Refused by the server because it had already dropped the channel.
    unmatched: u64,
    /// Pushes the server never answers, by design, timing out as they must.
    noreply_timeout: u64,
    /// Answerable pushes whose reply was lost with their connection.
    timeout: u64,
    not_sent: BTreeMap<&'static str, u64>,
    /// `push` refused at once (outbound buffer full).
    refused: u64,
    /// Ended with something other than what was pushed, or a reply of the wrong kind.
    wrong: Vec<String>,
    /// The future ended without an outcome (socket gone) or never resolved.
    lost: u64,
}

impl Tally {
    fn ended(&self) -> u64 {
        self.ok
            + self.error
            + self.unmatched
            + self.noreply_timeout
            + self.timeout
            + self.not_sent.values().sum::<u64>()
            + self.wrong.len() as u64
            + self.lost
    }
}

/// What one socket's event stream showed.
#[derive(Debug, Default, Clone)]
struct Seen {
    joined: u64,
    join_failed: u64,
    channel_errors: u64,
    channel_closed: u64,
    disconnects: u64,
    protocol_errors: u64,
}

/// The server behind the proxy; replaced on a restart.
struct Backend {
    server: tokio::sync::Mutex<DevServer>,
    pki_dir: PathBuf,
}

impl Backend {
    async fn start(pki_dir: PathBuf) -> DevServer {
        DevServer::start(Config {
            pki_dir: Some(pki_dir),
            ..Config::default()
        })
        .await
        .expect("dev server starts")
    }

    /// Stops the server (every connection dies, nothing is accepted for a
    /// moment) and starts a new one, which the proxy then forwards to.
    async fn restart(&self, proxy: &Proxy) {
        let mut server = self.server.lock().await;
        proxy.set_upstream(None);
        let fresh = Backend::start(self.pki_dir.clone()).await;
        let old = std::mem::replace(&mut *server, fresh);
        old.shutdown().await;
        proxy.set_upstream(Some(ws_addr(&server.ws_url())));
    }
}

fn ws_addr(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("dev server URL");
    SocketAddr::from(([127, 0, 0, 1], url.port().expect("port")))
}

fn topic(s: usize, c: usize) -> String {
    format!("room:chaos-{s}-{c}")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn config(url: &str) -> nerves_hub_channel::SocketConfig {
    let mut config = fast_config(url);
    config.heartbeat_interval = Duration::from_millis(100);
    config.heartbeat_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_secs(1);
    config.default_timeout = Duration::from_secs(1);
    config.rejoin_after = Duration::from_millis(20);
    // A server phx_close is one of the faults; the channel must come back.
    config.rejoin_after_close = true;
    config.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
        jitter: 0.5,
    };
    config
}

/// Drains a socket's events (a socket stops reading when nobody does) and counts them.
async fn drain(sock: Socket, seen: Arc<Mutex<Seen>>, changed: Arc<Notify>) {
    while let Some(event) = sock.next_event().await {
        {
            let mut seen = seen.lock().expect("seen lock");
            match event {
                Event::Joined { .. } => seen.joined += 1,
                Event::JoinFailed { .. } => seen.join_failed += 1,
                // With rejoin_after_close a server phx_close is reported as an error too.
                Event::ChannelError { reason, .. } if reason == "phx_close" => {
                    seen.channel_closed += 1
                }
                Event::ChannelError { .. } => seen.channel_errors += 1,
                Event::ChannelClosed { .. } => seen.channel_closed += 1,
                Event::Disconnected { .. } => seen.disconnects += 1,
                Event::ProtocolError { .. } => seen.protocol_errors += 1,
                _ => {}
            }
        }
        changed.notify_waiters();
    }
}

/// The push of number `n` on a channel: mostly echoes, some errors, a few never answered.
fn push_kind(n: u64) -> (&'static str, Duration) {
    match n % 20 {
        0 => ("noreply_probe", NOREPLY_TIMEOUT),
        1 | 11 => ("error_probe", PUSH_TIMEOUT),
        _ => ("echo", PUSH_TIMEOUT),
    }
}

fn classify(event: &str, sent: &Value, outcome: PushOutcome, tally: &mut Tally) {
    let parse = |p: &nerves_hub_channel::Payload| p.to_value();
    match outcome {
        PushOutcome::Ok(p) if event == "echo" && parse(&p).as_ref() == Some(sent) => tally.ok += 1,
        PushOutcome::Error { status, response }
            if event == "error_probe"
                && status == "error"
                && parse(&response).as_ref() == Some(sent) =>
        {
            tally.error += 1
        }
        // The server forgot the channel (crash, close, restart) before the
        // client heard of it: Phoenix refuses pushes on an unjoined topic.
        PushOutcome::Error { status, response }
            if status == "error" && parse(&response) == Some(j!({"reason": "unmatched topic"})) =>
        {
            tally.unmatched += 1
        }
        PushOutcome::Timeout if event.starts_with("noreply") => tally.noreply_timeout += 1,
        PushOutcome::Timeout => tally.timeout += 1,
        PushOutcome::NotSent(e) => *tally.not_sent.entry(e.kind()).or_default() += 1,
        other => tally
            .wrong
            .push(format!("{event} {sent} ended as {other:?}")),
    }
}

/// Pushes on one channel until `stop`, keeping a few pushes in flight.
async fn push_loop(
    chan: Channel,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    progress: Arc<Notify>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_CHANNEL));
    let mut pending = JoinSet::new();
    // Pacing of the workload (not synchronisation): about 50 pushes/s per channel.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        // Reap finished pushes: a JoinSet keeps every finished task until joined.
        while let Some(done) = pending.try_join_next() {
            if done.is_err() {
                PANICS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        n += 1;
        let (event, timeout) = push_kind(n);
        let sent = j!({"topic": chan.topic(), "n": n});
        let reply = match chan.push_with_timeout(event, json(sent.clone()), timeout) {
            Ok(reply) => reply,
            Err(e) => {
                // Refused at once, so it has no outcome to wait for.
                assert_eq!(e.kind(), "buffer_full", "{e}");
                tally.lock().expect("tally lock").refused += 1;
                continue;
            }
        };
        tally.lock().expect("tally lock").sent += 1;
        let (tally, progress) = (tally.clone(), progress.clone());
        pending.spawn(async move {
            let outcome = tokio::time::timeout(timeout + GRACE, reply).await;
            let mut tally = tally.lock().expect("tally lock");
            match outcome {
                Ok(Ok(outcome)) => classify(event, &sent, outcome, &mut tally),
                Ok(Err(_)) | Err(_) => tally.lost += 1,
            }
            drop(tally);
            progress.notify_waiters();
            drop(slot);
        });
    }
    while let Some(done) = pending.join_next().await {
        if done.is_err() {
            PANICS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Injected {
    per_kind: BTreeMap<Kind, u64>,
    attempts: u64,
    /// RSS (KiB) after every 100 faults: a leak grows steadily, allocator warm-up levels off.
    rss_kib: Vec<u64>,
}

/// Injects `target` faults, one per pacing tick, into whatever exists at that moment.
async fn inject_faults(
    target: u64,
    pace: Duration,
    seed: u64,
    proxy: &Proxy,
    backend: &Backend,
) -> Injected {
    let mut rng = Rng(seed);
    let schedule = schedule();
    let mut injected = Injected {
        per_kind: BTreeMap::new(),
        attempts: 0,
        rss_kib: Vec::new(),
    };
    let mut done = 0;
    let mut tick = tokio::time::interval(pace);
    while done < target {
        tick.tick().await;
        injected.attempts += 1;
        assert!(
            injected.attempts < target * 20 + 100,
            "could not inject {target} faults: only {done} found a target"
        );
        let kind = pick(&mut rng, &schedule);
        let applied = match kind {
            Kind::Reset | Kind::Close | Kind::Stall | Kind::Delay | Kind::Truncate => {
                let conns = proxy.connections();
                if conns.is_empty() {
                    false
                } else {
                    let id = conns[rng.below(conns.len())];
                    let fault = match kind {
                        Kind::Reset => Fault::Reset,
                        Kind::Close => Fault::Close,
                        Kind::Stall => Fault::Stall,
                        Kind::Delay => {
                            Fault::Delay(Duration::from_millis(5 + rng.below(45) as u64))
                        }
                        _ => Fault::Truncate,
                    };
                    proxy.inject(id, fault)
                }
            }
            Kind::ChannelCrash | Kind::ChannelClose => {
                let t = topic(rng.below(SOCKETS), rng.below(CHANNELS_PER_SOCKET));
                let control = backend.server.lock().await.control();
                let delivered = if kind == Kind::ChannelCrash {
                    control.crash_channel(&t).await
                } else {
                    control.close_channel(&t).await
                };
                delivered > 0
            }
            Kind::DropAll => {
                let control = backend.server.lock().await.control();
                control.drop_connections().await > 0
            }
            Kind::ServerRestart => {
                backend.restart(proxy).await;
                true
            }
        };
        if !applied {
            continue;
        }
        done += 1;
        *injected.per_kind.entry(kind).or_default() += 1;
        if done % 100 == 0 {
            // Housekeeping, not a fault: the server records every message it
            // receives; forget them so the memory figures show the client.
            backend.server.lock().await.control().reset().await;
            injected.rss_kib.push(rss_kib());
        }
    }
    injected
}

/// Waits until every channel is joined and answers a push with its own payload.
async fn recovered(channels: &[Channel], changed: &Notify) -> Duration {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    for chan in channels {
        loop {
            let notified = changed.notified();
            if chan.state() == ChannelState::Joined {
                let sent = j!({"topic": chan.topic(), "final": true});
                let outcome = chan
                    .push_with_timeout("echo", json(sent.clone()), PUSH_TIMEOUT)
                    .expect("push queued")
                    .await
                    .expect("socket alive");
                match outcome {
                    PushOutcome::Ok(p) => {
                        assert_eq!(p.to_value(), Some(sent), "final echo on {}", chan.topic());
                        break;
                    }
                    // A stall injected last may still be waiting for its
                    // heartbeat timeout: try again (each try is bounded).
                    other => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "{} joined but not answering {RECOVERY:?} after the faults stopped: {other:?}",
                            chan.topic()
                        );
                        continue;
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} not back {RECOVERY:?} after the faults stopped (state {:?})",
                    chan.topic(),
                    chan.state()
                );
            }
        }
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_survive_injected_faults_and_every_channel_comes_back() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    let target = env_number("NHC_CHAOS_FAULTS", 60);
    let seed = env_number("NHC_CHAOS_SEED", 1);
    let pace = Duration::from_millis(env_number("NHC_CHAOS_PACE_MS", 50));

    let pki_dir = std::env::temp_dir().join(format!("nhc-chaos-{}", std::process::id()));
    let server = Backend::start(pki_dir.clone()).await;
    let proxy = Proxy::start(ws_addr(&server.ws_url()))
        .await
        .expect("proxy starts");
    let backend = Backend {
        server: tokio::sync::Mutex::new(server),
        pki_dir: pki_dir.clone(),
    };
    let url = format!("ws://{}/socket/websocket", proxy.addr());

    let changed = Arc::new(Notify::new());
    let mut sockets = Vec::new();
    let mut channels = Vec::new();
    let mut seen = Vec::new();
    let mut drains = JoinSet::new();
    for s in 0..SOCKETS {
        let sock = Socket::new(config(&url)).expect("valid config");
        let socket_seen = Arc::new(Mutex::new(Seen::default()));
        drains.spawn(drain(sock.clone(), socket_seen.clone(), changed.clone()));
        seen.push(socket_seen);
        sock.connect().expect("connect");
        for c in 0..CHANNELS_PER_SOCKET {
            let chan = sock.channel(&topic(s, c), no_params()).expect("channel");
            chan.join()
                .expect("join sent")
                .await
                .expect("socket alive")
                .expect("first join ok");
            channels.push(chan);
        }
        sockets.push(sock);
    }
    let initial_joins = channels.len() as u64;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Notify::new());
    let mut workers = JoinSet::new();
    for chan in &channels {
        workers.spawn(push_loop(
            chan.clone(),
            stop.clone(),
            tally.clone(),
            progress.clone(),
        ));
    }
    // Warm up (allocator pools, buffers) before the memory baseline.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answered = progress.notified();
        if tally.lock().expect("tally lock").ok >= 200 {
            break;
        }
        tokio::time::timeout_at(deadline, answered)
            .await
            .expect("pushes answered before the faults start");
    }
    let (rss_before, fds_before) = (rss_kib(), open_fds());

    let started = Instant::now();
    let injected = inject_faults(target, pace, seed, &proxy, &backend).await;
    let fault_time = started.elapsed();

    let recovery = recovered(&channels, &changed).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = workers.join_next().await {
        if done.is_err() {
            PANICS.fetch_add(1, Ordering::Relaxed);
        }
    }
    backend.server.lock().await.control().reset().await;
    let (rss_after, fds_after) = (rss_kib(), open_fds());

    for sock in &sockets {
        sock.close();
    }
    while let Some(done) = drains.join_next().await {
        if done.is_err() {
            PANICS.fetch_add(1, Ordering::Relaxed);
        }
    }

    let tally = tally.lock().expect("tally lock");
    let seen: Vec<Seen> = seen
        .iter()
        .map(|s| s.lock().expect("seen lock").clone())
        .collect();
    let sum = |f: fn(&Seen) -> u64| seen.iter().map(f).sum::<u64>();
    let (joined, join_failed) = (sum(|s| s.joined), sum(|s| s.join_failed));
    let rejoins = joined - initial_joins;
    let rejoin_rate = 100.0 * rejoins as f64 / (rejoins + join_failed).max(1) as f64;
    let proxy_stats = proxy.stats();
    println!("chaos report (seed {seed}, pace {pace:?})");
    println!(
        "  faults injected: {} in {fault_time:.1?} ({} ticks): {:?}",
        injected.per_kind.values().sum::<u64>(),
        injected.attempts,
        injected.per_kind
    );
    println!(
        "  connections: {} through the proxy, {} refused while the server restarted; {} disconnects seen",
        proxy_stats.accepted,
        proxy_stats.upstream_refused,
        sum(|s| s.disconnects)
    );
    println!(
        "  channels: {} interruptions ({} errors, {} closes), {rejoins} rejoins, {join_failed} failed join attempts: rejoin success rate {rejoin_rate:.1}%; all {} back {recovery:.1?} after the last fault",
        sum(|s| s.channel_errors) + sum(|s| s.channel_closed),
        sum(|s| s.channel_errors),
        sum(|s| s.channel_closed),
        channels.len()
    );
    println!(
        "  pushes: {} sent: {} ok (echo verified), {} error (verified), {} error \"unmatched topic\" (channel already gone on the server), {} timeout (of noreply probes, as expected), {} timeout (reply lost with the connection), not sent {:?}, {} refused (buffer full), {} wrong, {} lost",
        tally.sent,
        tally.ok,
        tally.error,
        tally.unmatched,
        tally.noreply_timeout,
        tally.timeout,
        tally.not_sent,
        tally.refused,
        tally.wrong.len(),
        tally.lost
    );
    println!("  protocol errors reported: {}", sum(|s| s.protocol_errors));
    println!(
        "  memory: RSS {rss_before} KiB before, {rss_after} KiB after ({:+} KiB); open fds {fds_before} before, {fds_after} after",
        rss_after as i64 - rss_before as i64
    );
    println!("  RSS every 100 faults (KiB): {:?}", injected.rss_kib);
    println!("  panics: {}", PANICS.load(Ordering::Relaxed));

    let _ = std::fs::remove_dir_all(&pki_dir);
    assert_eq!(
        injected.per_kind.values().sum::<u64>(),
        target,
        "faults injected"
    );
    assert!(tally.wrong.is_empty(), "wrong outcomes: {:#?}", tally.wrong);
    assert_eq!(tally.lost, 0, "pushes that never ended");
    assert_eq!(tally.ended(), tally.sent, "every push ends exactly once");
    assert!(tally.ok > 0 && tally.error > 0, "{tally:?}");
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "panics");
}
