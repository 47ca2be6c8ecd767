//! Sharded `nhc simulate` against the in-process dev server, standing in for
//! a Kubernetes Indexed Job: shard processes told apart only by
//! `JOB_COMPLETION_INDEX`, their `/metrics` scraped and parsed, their sums
//! compared with what the server saw. Waits are on output lines, on what
//! the server received, or on a scraped condition, never on a fixed sleep.

#[path = "common/nh1_server.rs"]
mod nh1_server;
#[path = "common/stdout_lines.rs"]
mod stdout_lines;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nerves_hub_channel::Payload;
use nhc_devserver::{DevServer, Received};
use stdout_lines::StdoutLines;

const KEY: &str = "nhp_fleet_product_key";
const SECRET: &str = "fleet-test-secret";
const WAIT: Duration = Duration::from_secs(60);

async fn server() -> DevServer {
    nh1_server::with_product_key(KEY, SECRET).await
}

/// One `nhc simulate` process and its stdout lines.
struct Shard {
    child: Child,
    lines: StdoutLines<String>,
    metrics: Option<String>,
}

impl Shard {
    fn start(args: &[String], index: Option<u32>) -> Shard {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nhc"));
        command
            .arg("simulate")
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(i) = index {
            command.env("JOB_COMPLETION_INDEX", i.to_string());
        }
        let mut child = command.spawn().unwrap();
        let lines = StdoutLines::read(child.stdout.take().unwrap(), |line| line);
        let mut shard = Shard {
            child,
            lines,
            metrics: None,
        };
        if args.iter().any(|a| a == "--metrics-listen") {
            let line = shard.wait_line(|l| l.starts_with("metrics on "));
            let addr = line
                .trim_start_matches("metrics on http://")
                .trim_end_matches("/metrics");
            shard.metrics = Some(addr.to_owned());
        }
        shard
    }

    /// The first line (from now on) that satisfies `want`.
    fn wait_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        self.lines.wait("such line", WAIT, |l: &String| want(l))
    }

    fn scrape(&self) -> Exposition {
        let addr = self.metrics.as_deref().expect("--metrics-listen");
        let (status, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
    }

    /// SIGTERM, then the exit status and every line printed.
    fn stop(self) -> (std::process::ExitStatus, Vec<String>) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.finish()
    }

    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        (status, self.lines.all())
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    if status == 200 {
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|l| l.parse::<usize>().ok());
        assert_eq!(length, Some(body.len()), "{head}");
    }
    (status, body.to_owned())
}

/// Samples by name and sorted label pairs.
type Exposition = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses the text format (0.0.4) strictly enough to catch what Prometheus
/// would refuse: every sample belongs to a family declared once by `# TYPE`
/// before it, names and labels are well-formed, values are numbers,
/// histogram buckets are cumulative and end with `+Inf` equal to `_count`.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Exposition::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
            if !["counter", "gauge", "histogram"].contains(&kind) || !valid_name(name) {
                return Err(format!("bad TYPE: {line}"));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(format!("TYPE given twice: {line}"));
            }
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("unknown comment: {line}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().map_err(|_| format!("bad value: {line}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').ok_or(line)?)?),
            None => (series, Vec::new()),
        };
        if !valid_name(name) {
            return Err(format!("bad name: {line}"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        let kind = types.get(family).ok_or(format!("no TYPE before: {line}"))?;
        if kind == "counter" && !name.ends_with("_total") {
            return Err(format!("counter without _total: {line}"));
        }
        if samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(format!("sample given twice: {line}"));
        }
    }
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|((n, _), _)| *n == format!("{family}_bucket"))
            .map(|((_, l), v)| {
                let le = &l.iter().find(|(k, _)| k == "le").expect("le").1;
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("le")
                    },
                    *v,
                )
            })
            .collect();
        let mut sorted = buckets.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        if sorted.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{family}: buckets are not cumulative"));
        }
        let count = samples.get(&(format!("{family}_count"), vec![]));
        match sorted.last() {
            Some((le, v)) if le.is_infinite() && Some(v) == count => {}
            _ => return Err(format!("{family}: +Inf bucket and _count differ")),
        }
    }
    Ok(samples)
}

fn parse_labels(mut s: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").ok_or(format!("bad labels: {s}"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err(format!("bad escape: {s}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label: {s}")),
            }
        };
        labels.push((name.to_owned(), value));
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels.sort();
    Ok(labels)
}

/// The value of `name` with exactly these labels (0 when absent).
fn value(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    key.sort();
    e.get(&(name.to_owned(), key)).copied().unwrap_or(0.0)
}

/// Summed over every label set of `name`.
fn total(e: &Exposition, name: &str) -> f64 {
    e.iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

fn sum(shards: &[Exposition], name: &str, labels: &[(&str, &str)]) -> f64 {
    shards.iter().map(|e| value(e, name, labels)).sum()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A fleet of `devices` named `<prefix><n>` signing with the product key on
/// the dev server's /device-socket, then `more` flags.
fn nh1_fleet(server: &DevServer, prefix: &str, devices: &str, more: &[&str]) -> Vec<String> {
    let secret = format!("{KEY}:{SECRET}");
    let url = server.device_socket_url();
    let base = [
        "--url",
        &url,
        "--shared-secret",
        &secret,
        "--prefix",
        prefix,
        "--devices",
        devices,
    ];
    strings(&[&base[..], more].concat())
}

/// The status each identity reported last, from `status_update`s.
fn last_statuses(received: &[Received]) -> BTreeMap<String, String> {
    received
        .iter()
        .filter(|r| r.message.topic == "device" && r.message.event == "status_update")
        .filter_map(|r| {
            let status = r.message.payload.to_value()?["status"].as_str()?.to_owned();
            Some((r.identity.clone()?, status))
        })
        .collect()
}

fn final_status(s: &str) -> bool {
    matches!(s, "completed" | "ignored" | "rescheduled" | "failed")
}

fn device_identities(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.message.topic == "device" && r.message.event == "phx_join")
        .filter_map(|r| r.identity.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn four_shards_split_the_fleet_and_their_metrics_add_up() {
    let server = server().await;
    let image = nhc_devserver::random_image(200_000, 11);
    let offer = server.firmware().add("fleet.fw", image.clone()).unwrap();
    let args = nh1_fleet(
        &server,
        "fleet-",
        "24",
        &[
            "--shards",
            "4",
            "--mix",
            "accept=0.5,decline=0.25,reschedule=0.25",
            "--seed",
            "7",
            "--health-interval",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
            "--duration",
            "300",
        ],
    );
    let mut shards: Vec<Shard> =
        tokio::task::spawn_blocking(move || (0..4).map(|i| Shard::start(&args, Some(i))).collect())
            .await
            .unwrap();
    let control = server.control();
    control.wait_joined("device", 24, WAIT).await.unwrap();
    // Every shard sees its 6 devices joined (its own count, not the server's).
    let shards = tokio::task::spawn_blocking(move || {
        for shard in &mut shards {
            shard.wait_line(|l| l.starts_with("devices 6 connected 6 joined 6 "));
        }
        shards
    })
    .await
    .unwrap();

    let update = Payload::json(&offer["update"]);
    assert_eq!(control.push("device", "update", update).await, 24);
    let received = control
        .wait_received(WAIT, |r| {
            let last = last_statuses(r);
            last.len() == 24 && last.values().all(|s| final_status(s))
        })
        .await
        .unwrap();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for status in last_statuses(&received).into_values() {
        *by_status.entry(status).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [("completed", 12), ("ignored", 6), ("rescheduled", 6)]
        .map(|(s, n)| (s.to_owned(), n))
        .into();
    assert_eq!(by_status, expected);

    // Every device reports its health on the schedule.
    control
        .wait_received(WAIT, |r| {
            r.iter()
                .filter(|r| r.message.topic == "extensions" && r.message.event == "health:report")
                .filter_map(|r| r.identity.as_deref())
                .collect::<BTreeSet<_>>()
                .len()
                == 24
        })
        .await
        .unwrap();

    // The shards count an update's end once their handler saw it, which may
    // follow the server's receipt of `completed`: scrape until it shows.
    let (shards, scraped) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        loop {
            let scraped: Vec<Exposition> = shards.iter().map(Shard::scrape).collect();
            let ended = sum(&scraped, "nhc_sim_updates_applied_total", &[]) == 12.0
                && sum(&scraped, "nhc_sim_update_duration_seconds_count", &[]) == 12.0;
            if ended || Instant::now() > deadline {
                return (shards, scraped);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();

    let shard_labels: BTreeSet<String> = scraped
        .iter()
        .flat_map(|e| e.keys())
        .filter(|(n, _)| n == "nhc_sim_shard_info")
        .map(|(_, l)| l[0].1.clone())
        .collect();
    assert_eq!(shard_labels, ["0", "1", "2", "3"].map(String::from).into());
    for e in &scraped {
        assert_eq!(value(e, "nhc_sim_devices", &[]), 6.0);
        assert_eq!(value(e, "nhc_sim_shards", &[]), 4.0);
    }
    let fleet = |name: &str| sum(&scraped, name, &[]);
    assert_eq!(fleet("nhc_sim_devices"), 24.0);
    assert_eq!(fleet("nhc_sim_connected"), 24.0);
    assert_eq!(fleet("nhc_sim_joined"), 24.0);
    assert_eq!(fleet("nhc_sim_connects_started_total"), 24.0);
    assert_eq!(fleet("nhc_sim_auth_errors_total"), 0.0);
    assert_eq!(fleet("nhc_sim_reconnects_total"), 0.0);
    for (behaviour, n) in [("accept", 12.0), ("decline", 6.0), ("reschedule", 6.0)] {
        let got = sum(
            &scraped,
            "nhc_sim_behaviour_devices",
            &[("behaviour", behaviour)],
        );
        assert_eq!(got, n, "{behaviour}");
    }
    assert_eq!(fleet("nhc_sim_updates_received_total"), 24.0);
    assert_eq!(fleet("nhc_sim_updates_applied_total"), 12.0);
    assert_eq!(fleet("nhc_sim_updates_failed_total"), 0.0);
    assert_eq!(fleet("nhc_sim_updates_declined_total"), 6.0);
    assert_eq!(fleet("nhc_sim_updates_rescheduled_total"), 6.0);
    assert_eq!(
        fleet("nhc_sim_download_bytes_total"),
        12.0 * image.len() as f64
    );
    assert_eq!(fleet("nhc_sim_update_duration_seconds_count"), 12.0);
    assert_eq!(fleet("nhc_sim_join_latency_seconds_count"), 24.0);
    assert!(fleet("nhc_sim_health_reports_total") >= 24.0);
    assert_eq!(
        scraped
            .iter()
            .map(|e| total(e, "nhc_sim_disconnects_total"))
            .sum::<f64>(),
        0.0
    );
    // The server: every device, each identity once, nobody kicked out.
    let identities = device_identities(&received);
    let distinct: BTreeSet<String> = identities.iter().cloned().collect();
    let all: BTreeSet<String> = (0..24).map(|n| format!("fleet-{n}")).collect();
    assert_eq!(distinct, all);
    assert_eq!(
        identities.len(),
        24,
        "a device joined twice: {identities:?}"
    );
    assert_eq!(control.kicks().await, 0);
    let downloads = server.firmware().requests("fleet.fw").unwrap();
    assert_eq!(downloads.len(), 12, "{downloads:?}");

    let (status, body) = http_get(shards[0].metrics.as_deref().unwrap(), "/other");
    assert_eq!(status, 404, "{body}");
    tokio::task::spawn_blocking(move || {
        for shard in shards {
            let (status, lines) = shard.stop();
            assert!(status.success(), "{status}: {lines:#?}");
            assert_eq!(lines.last().map(String::as_str), Some("SIGTERM: stopping"));
        }
    })
    .await
    .unwrap();
}

/// The dev server's certificate for `cn`, where `--cert-dir` wants it.
async fn issue(server: &DevServer, dir: &std::path::Path, cn: &str) {
    let (cert, key) = server.pki().issue_device(cn).unwrap();
    std::fs::copy(cert, dir.join(format!("{cn}.pem"))).unwrap();
    std::fs::copy(key, dir.join(format!("{cn}-key.pem"))).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_mtls_shards_use_disjoint_certificates_of_one_cert_dir() {
    let server = server().await;
    let dir: PathBuf = std::env::temp_dir().join(format!("nhc-fleet-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Only shard 1's certificates are missing at first: shard 0 must not
    // need them.
    for n in 0..3 {
        issue(&server, &dir, &format!("mtls-{n}")).await;
    }
    let ca = server.pki().ca.clone();
    let args = |index: &str| {
        strings(&[
            "--url",
            &server.wss_url(),
            "--ca",
            &ca.to_string_lossy(),
            "--cert-dir",
            &dir.to_string_lossy(),
            "--prefix",
            "mtls-",
            "--devices",
            "6",
            "--shards",
            "2",
            "--shard",
            index,
            "--exit-when-joined",
            "--duration",
            "60",
        ])
    };
    let first = args("0");
    let out = tokio::task::spawn_blocking(move || Shard::start(&first, None).finish())
        .await
        .unwrap();
    assert!(out.0.success(), "{:#?}", out.1);
    let control = server.control();
    let joined: BTreeSet<String> = device_identities(&control.received().await)
        .into_iter()
        .collect();
    assert_eq!(
        joined,
        ["mtls-0", "mtls-1", "mtls-2"].map(String::from).into()
    );

    for n in 3..6 {
        issue(&server, &dir, &format!("mtls-{n}")).await;
    }
    let second = args("1");
    let out = tokio::task::spawn_blocking(move || Shard::start(&second, None).finish())
        .await
        .unwrap();
    assert!(out.0.success(), "{:#?}", out.1);
    let identities = device_identities(&control.received().await);
    let distinct: BTreeSet<String> = identities.iter().cloned().collect();
    assert_eq!(distinct.len(), 6, "{identities:?}");
    assert_eq!(
        identities.len(),
        6,
        "a certificate was used twice: {identities:?}"
    );
    assert_eq!(control.kicks().await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_rate_bounds_how_many_devices_have_started() {
    let server = server().await;
    let args = nh1_fleet(
        &server,
        "rate-",
        "20",
        &[
            "--connect-rate",
            "8",
            "--exit-when-joined",
            "--duration",
            "60",
        ],
    );
    let (status, lines) = tokio::task::spawn_blocking(move || Shard::start(&args, None).finish())
        .await
        .unwrap();
    assert!(status.success(), "{lines:#?}");
    let field = |line: &str, name: &str| -> f64 {
        let mut words = line.split_whitespace();
        words.find(|w| *w == name);
        words
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let summaries: Vec<&String> = lines.iter().filter(|l| l.starts_with("devices ")).collect();
    for line in &summaries {
        let (started, elapsed) = (field(line, "started"), field(line, "elapsed_s"));
        // Device i starts no earlier than i/8 s: at most 8*t + 1 by time t
        // (+0.005 s: the printed elapsed time is rounded).
        assert!(started <= 8.0 * (elapsed + 0.005) + 1.0, "{line}");
    }
    assert!(
        summaries.iter().any(|l| field(l, "started") < 20.0),
        "the rate did not hold anything back: {summaries:#?}"
    );
    let last = summaries.last().expect("a summary line");
    assert_eq!(field(last, "joined"), 20.0, "{last}");
    assert_eq!(field(last, "started"), 20.0, "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn churn_disconnects_devices_that_then_come_back() {
    let server = server().await;
    let args = nh1_fleet(
        &server,
        "churn-",
        "4",
        &[
            "--churn-rate",
            "4",
            "--churn-downtime",
            "0.5",
            "--metrics-listen",
            "127.0.0.1:0",
            "--duration",
            "120",
        ],
    );
    let shard = tokio::task::spawn_blocking(move || Shard::start(&args, None))
        .await
        .unwrap();
    // 4 first joins, then at least 4 more after churned disconnects.
    server
        .control()
        .wait_joined("device", 8, WAIT)
        .await
        .unwrap();
    let (shard, e) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = shard.scrape();
            if value(&e, "nhc_sim_reconnects_total", &[]) >= 4.0 || Instant::now() > deadline {
                return (shard, e);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(value(&e, "nhc_sim_reconnects_total", &[]) >= 4.0);
    assert!(value(&e, "nhc_sim_churn_total", &[]) >= 4.0);
    assert!(total(&e, "nhc_sim_disconnects_total") >= 4.0);
    let (status, lines) = tokio::task::spawn_blocking(move || shard.stop())
        .await
        .unwrap();
    assert!(status.success(), "{lines:#?}");
}

#[test]
fn bad_shard_and_mix_settings_exit_with_2_and_say_why() {
    let run = |extra: &[&str], env_index: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nhc"));
        c.args([
            "simulate",
            "--url",
            "ws://127.0.0.1:1/device-socket/websocket",
        ])
        .args(["--shared-secret", "nhp_k:s", "--devices", "8"])
        .args(extra)
        .env_remove("JOB_COMPLETION_INDEX");
        if let Some(i) = env_index {
            c.env("JOB_COMPLETION_INDEX", i);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--shards", "4"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("JOB_COMPLETION_INDEX"), "{err}");
    let (code, err) = run(&["--shards", "4"], Some("4"));
    assert_eq!(code, Some(2));
    assert!(err.contains("out of range"), "{err}");
    let (code, err) = run(&["--mix", "accept=0.5"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("add up"), "{err}");
    let (code, err) = run(&["--connect-rate", "0"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("rate > 0"), "{err}");
}
