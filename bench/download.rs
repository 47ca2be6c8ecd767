//! Firmware download with verification against `curl` on the same file, for
//! bench/run.sh: the dev server (already running) serves a generated image
//! (`POST /firmware`); the device layer's update pipeline downloads it into
//! a file sink, checking the partial SHA-256 checksums (which make the
//! whole-image one redundant), with `fsync` before the final rename, and
//! `curl` downloads the same URL into a file. Best of three runs each; one
//! JSON object on stdout.
//!
//!   cargo bench --bench download -- SERVER_JSON SIZE_MIB
//! (`cargo bench` also passes `--bench`, which is ignored.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::update::{
    start_update, SinkSpec, Stage, UpdateInfo, UpdateOptions, UpdateReporter, UpdateStatus,
};
use serde_json::{json, Value};

const RUNS: usize = 3;
const MIB: f64 = 1024.0 * 1024.0;

type BenchResult<T> = Result<T, String>;

/// Reports go nowhere: only the download is measured.
struct Silent;

impl UpdateReporter for Silent {
    fn status(&self, _status: UpdateStatus) {}
    fn progress(&self, _stage: Stage, _percent: u8) {}
}

fn control(control_url: &str, path: &str, body: &Value) -> BenchResult<Value> {
    let addr = control_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("control API {addr}: {e}"))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("control API write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("control API read: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("control API: no HTTP body in {response:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("POST {path}: {head} {body}"));
    }
    serde_json::from_str(body).map_err(|e| format!("POST {path}: bad JSON ({e}): {body}"))
}

fn ours(update: &Value, dir: &Path) -> BenchResult<f64> {
    let info = UpdateInfo::parse(update).map_err(|e| format!("update payload: {e}"))?;
    let target = dir.join("ours.fw");
    let _ = std::fs::remove_file(&target);
    let start = Instant::now();
    let handle = start_update(
        info,
        UpdateOptions::new(SinkSpec::File(target.clone())),
        Arc::new(Silent),
    )
    .map_err(|e| format!("start_update: {e}"))?;
    match handle.wait(Duration::from_secs(600)) {
        Some(Ok(())) => Ok(start.elapsed().as_secs_f64()),
        Some(Err(reason)) => Err(format!("the update failed: {reason}")),
        None => Err("the update did not end within 600 s".into()),
    }
}

fn curl(url: &str, dir: &Path) -> BenchResult<f64> {
    let target = dir.join("curl.fw");
    let start = Instant::now();
    let status = Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(&target)
        .arg(url)
        .status()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let elapsed = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("curl failed: {status}"));
    }
    Ok(elapsed)
}

fn run(args: &[String]) -> BenchResult<Value> {
    let [info_path, size_mib] = args else {
        return Err("usage: download SERVER_JSON SIZE_MIB".into());
    };
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(info_path).map_err(|e| format!("{info_path}: {e}"))?,
    )
    .map_err(|e| format!("{info_path}: {e}"))?;
    let control_url = info["control_url"]
        .as_str()
        .ok_or("the server info has no control_url")?;
    let size_mib: u64 = size_mib
        .parse()
        .map_err(|_| format!("SIZE_MIB is not a number: {size_mib}"))?;
    let size = size_mib << 20;
    let added = control(
        control_url,
        "/firmware",
        &json!({"name": "bench.fw", "size": size, "seed": 7}),
    )?;
    let url = added["url"].as_str().ok_or("POST /firmware gave no url")?;
    let update = &added["update"];

    let dir: PathBuf =
        std::env::temp_dir().join(format!("nhc-bench-download-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut best_ours = f64::MAX;
    let mut best_curl = f64::MAX;
    // Alternating spreads any drift of the machine over both.
    for _ in 0..RUNS {
        best_ours = best_ours.min(ours(update, &dir)?);
        best_curl = best_curl.min(curl(url, &dir)?);
    }
    let same = std::fs::read(dir.join("ours.fw")).ok() == std::fs::read(dir.join("curl.fw")).ok();
    let _ = std::fs::remove_dir_all(&dir);
    if !same {
        return Err("the two downloads differ".into());
    }
    let rate = |seconds: f64| size as f64 / MIB / seconds;
    Ok(json!({
        "client": "download",
        "size_mib": size_mib,
        "runs": RUNS,
        "ours_s": best_ours,
        "ours_mib_s": rate(best_ours),
        "curl_s": best_curl,
        "curl_mib_s": rate(best_curl),
        "curl_version": Command::new("curl").arg("--version").output().ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned)),
    }))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match run(&args) {
        Ok(result) => println!("{result}"),
        Err(e) => {
            eprintln!("download bench: {e}");
            std::process::exit(1);
        }
    }
}
