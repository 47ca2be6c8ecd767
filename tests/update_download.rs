//! The firmware update pipeline against the dev server's firmware endpoint:
//! resume, verification, faults, sinks and what is reported to the hub.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nerves_hub_channel::nerves_hub::update::{
    start_update, DownloadOptions, ImageSink, SinkSpec, Stage, UpdateHandle, UpdateInfo,
    UpdateOptions, UpdateReporter, UpdateStatus, CANCELLED,
};
use nhc_devserver::{random_image, DevServer, FirmwareFaults, FirmwareRequest};
use serde_json::Value;

const MIB: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    Status(UpdateStatus),
    Progress(Stage, u8),
}

#[derive(Default)]
struct Recorder {
    reports: Mutex<Vec<Report>>,
    changed: tokio::sync::Notify,
}

impl UpdateReporter for Recorder {
    fn status(&self, status: UpdateStatus) {
        self.reports.lock().unwrap().push(Report::Status(status));
        self.changed.notify_waiters();
    }
    fn progress(&self, stage: Stage, percent: u8) {
        self.reports
            .lock()
            .unwrap()
            .push(Report::Progress(stage, percent));
    }
}

impl Recorder {
    fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }
    fn statuses(&self) -> Vec<UpdateStatus> {
        self.reports()
            .into_iter()
            .filter_map(|r| match r {
                Report::Status(s) => Some(s),
                Report::Progress(..) => None,
            })
            .collect()
    }
    fn progress(&self, stage: Stage) -> Vec<u8> {
        self.reports()
            .into_iter()
            .filter_map(|r| match r {
                Report::Progress(s, p) if s == stage => Some(p),
                _ => None,
            })
            .collect()
    }
}

/// A per-test scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nhc-update-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fast() -> DownloadOptions {
    DownloadOptions {
        retry_delay: Duration::from_millis(5),
        idle_timeout: Duration::from_secs(10),
        ..DownloadOptions::default()
    }
}

struct Setup {
    server: DevServer,
    image: Vec<u8>,
    update: Value,
}

async fn setup(name: &str, size: usize, seed: u64) -> Setup {
    let server = common::server().await;
    let image = random_image(size, seed);
    let answer = server.firmware().add(name, image.clone()).unwrap();
    Setup {
        server,
        image,
        update: answer["update"].clone(),
    }
}

fn faults(server: &DevServer, name: &str, faults: FirmwareFaults) {
    server.firmware().set_faults(name, faults).unwrap();
}

fn requests(server: &DevServer, name: &str) -> Vec<FirmwareRequest> {
    server.firmware().requests(name).unwrap()
}

async fn run(
    update: &Value,
    sink: SinkSpec,
    download: DownloadOptions,
) -> (Result<(), String>, Arc<Recorder>) {
    let (handle, recorder) = start(update, sink, download);
    (outcome(&handle).await, recorder)
}

fn start(
    update: &Value,
    sink: SinkSpec,
    download: DownloadOptions,
) -> (UpdateHandle, Arc<Recorder>) {
    let info = UpdateInfo::parse(update).expect("a valid update payload");
    let recorder = Arc::new(Recorder::default());
    let handle = start_update(info, UpdateOptions { sink, download }, recorder.clone())
        .expect("update starts");
    (handle, recorder)
}

async fn outcome(handle: &UpdateHandle) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(60), handle.outcome())
        .await
        .expect("the update ends in time")
}

fn failed_reason(recorder: &Recorder) -> String {
    match recorder.statuses().last() {
        Some(UpdateStatus::Failed { reason }) => reason.clone(),
        other => panic!("expected a final failed status, got {other:?}"),
    }
}

fn assert_strictly_increasing(values: &[u8]) {
    for pair in values.windows(2) {
        assert!(pair[1] > pair[0], "progress not increasing: {values:?}");
    }
}

/// Records what it receives; `finish`/`abort` are counted.
#[derive(Default)]
struct MemorySink {
    bytes: Mutex<Vec<u8>>,
    calls: Mutex<Vec<String>>,
}

impl ImageSink for MemorySink {
    fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
        self.calls.lock().unwrap().push("begin".into());
        Ok(())
    }
    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        self.bytes.lock().unwrap().extend_from_slice(chunk);
        Ok(())
    }
    fn finish(&self) -> Result<(), String> {
        self.calls.lock().unwrap().push("finish".into());
        Ok(())
    }
    fn abort(&self, reason: &str) {
        self.calls.lock().unwrap().push(format!("abort: {reason}"));
    }
}

#[tokio::test]
async fn happy_path_into_a_file_is_bit_exact_and_reported() {
    let s = setup("happy", 2 * MIB + 12_345, 1).await;
    let dir = scratch("happy");
    let path = dir.join("fw.img");
    let (result, rec) = run(&s.update, SinkSpec::File(path.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    assert!(
        std::fs::read(&path).unwrap() == s.image,
        "file differs from the image"
    );
    assert!(!dir.join("fw.img.partial").exists());

    let statuses = rec.statuses();
    assert!(
        matches!(&statuses[0], UpdateStatus::Started { interface: Some(i) } if !i.is_empty()),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&UpdateStatus::Completed));
    let downloading = rec.progress(Stage::Downloading);
    assert!(!downloading.is_empty());
    assert_strictly_increasing(&downloading);
    // `updating 100` comes right before `completed`.
    let reports = rec.reports();
    assert_eq!(
        &reports[reports.len() - 2..],
        &[
            Report::Progress(Stage::Updating, 100),
            Report::Status(UpdateStatus::Completed)
        ]
    );

    let seen = requests(&s.server, "happy");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(seen[0].retry_number.as_deref(), Some("0"));
    assert!(seen[0]
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("nerves_hub_channel/")));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn ten_cuts_resume_with_range_and_end_bit_exact() {
    let s = setup("cuts", 3 * MIB, 2).await;
    let cut = 250_000u64;
    faults(
        &s.server,
        "cuts",
        FirmwareFaults {
            cut_after_bytes: Some(cut),
            cuts: Some(10),
            ..Default::default()
        },
    );
    let dir = scratch("cuts");
    let path = dir.join("fw.img");
    let (result, rec) = run(&s.update, SinkSpec::File(path.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    assert!(std::fs::read(&path).unwrap() == s.image);

    let seen = requests(&s.server, "cuts");
    assert_eq!(seen.len(), 11, "{seen:?}");
    assert_eq!(seen[0].range, None);
    for (i, r) in seen.iter().enumerate().skip(1) {
        assert_eq!(r.range, Some(format!("bytes={}-", i as u64 * cut)));
        assert_eq!(r.status, 206);
        assert_eq!(r.retry_number, Some(i.to_string()));
    }
    let started = rec
        .statuses()
        .iter()
        .filter(|s| matches!(s, UpdateStatus::Started { .. }))
        .count();
    assert_eq!(started, 11, "one started per connection");
    assert_strictly_increasing(&rec.progress(Stage::Downloading));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn more_interruptions_than_allowed_fail_and_remove_the_partial_file() {
    let s = setup("flaky", MIB, 3).await;
    faults(
        &s.server,
        "flaky",
        FirmwareFaults {
            cut_after_bytes: Some(1000),
            cuts: Some(3),
            ..Default::default()
        },
    );
    let dir = scratch("flaky");
    let path = dir.join("fw.img");
    let options = DownloadOptions {
        max_disconnects: 2,
        ..fast()
    };
    let (result, rec) = run(&s.update, SinkSpec::File(path.clone()), options).await;
    let reason = failed_reason(&rec);
    assert_eq!(result, Err(reason.clone()));
    assert!(
        reason.starts_with("Download failed : gave up after 2 interruptions"),
        "{reason}"
    );
    assert!(!path.exists() && !dir.join("fw.img.partial").exists());
    assert_eq!(requests(&s.server, "flaky").len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_corrupt_byte_is_refetched_and_never_reaches_the_sink() {
    let s = setup("corrupt", 3 * MIB, 4).await;
    let at = MIB + MIB / 2;
    faults(
        &s.server,
        "corrupt",
        FirmwareFaults {
            corrupt_at: Some(at as u64),
            ..Default::default()
        },
    );
    let sink = Arc::new(MemorySink::default());
    let (result, _rec) = run(&s.update, SinkSpec::Custom(sink.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    // Bit-exact means the corrupted part was never written, not even once.
    assert!(*sink.bytes.lock().unwrap() == s.image);
    assert_eq!(*sink.calls.lock().unwrap(), vec!["begin", "finish"]);
    let seen = requests(&s.server, "corrupt");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].corrupted);
    assert_eq!(seen[1].range, Some(format!("bytes={MIB}-")));
}

#[tokio::test]
async fn a_corrupt_part_before_an_interruption_is_refetched_from_its_start() {
    // Parts are checked while later ones arrive: the mismatch of part 1 may
    // be noticed before or after the cut at 2.5 MiB and the reconnection.
    let s = setup("corrupt-cut", 4 * MIB, 8).await;
    faults(
        &s.server,
        "corrupt-cut",
        FirmwareFaults {
            corrupt_at: Some((MIB + MIB / 2) as u64),
            cut_after_bytes: Some((2 * MIB + MIB / 2) as u64),
            ..Default::default()
        },
    );
    let sink = Arc::new(MemorySink::default());
    let (result, _rec) = run(&s.update, SinkSpec::Custom(sink.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    assert!(
        *sink.bytes.lock().unwrap() == s.image,
        "each good byte once, no bad one"
    );
    assert_eq!(*sink.calls.lock().unwrap(), vec!["begin", "finish"]);
    let seen = requests(&s.server, "corrupt-cut");
    assert!(seen[0].corrupted && seen[0].cut, "{seen:?}");
    let refetch = Some(format!("bytes={MIB}-"));
    assert!(seen.iter().any(|r| r.range == refetch), "{seen:?}");
}

#[tokio::test]
async fn a_part_that_never_verifies_fails_after_three_attempts() {
    let mut s = setup("badpart", 2 * MIB + 10, 5).await;
    s.update["partials_checksums"][1] = Value::String("00".repeat(32));
    let sink = Arc::new(MemorySink::default());
    let (result, rec) = run(&s.update, SinkSpec::Custom(sink.clone()), fast()).await;
    let reason = failed_reason(&rec);
    assert_eq!(result, Err(reason.clone()));
    assert!(reason.starts_with("Checksum mismatch : part 1"), "{reason}");
    assert!(reason.ends_with("gave up after 3 attempts"), "{reason}");
    // Only the verified first part reached the sink, then it was aborted.
    assert!(*sink.bytes.lock().unwrap() == s.image[..MIB]);
    let calls = sink.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].starts_with("abort: Checksum mismatch"),
        "{calls:?}"
    );
    let ranges: Vec<_> = requests(&s.server, "badpart")
        .into_iter()
        .map(|r| r.range)
        .collect();
    let resume = Some(format!("bytes={MIB}-"));
    assert_eq!(ranges, vec![None, resume.clone(), resume]);
}

#[tokio::test]
async fn a_whole_file_checksum_mismatch_fails_and_removes_the_partial_file() {
    let mut s = setup("whole", MIB + 77, 6).await;
    s.update["partials_checksums"] = Value::Null;
    s.update["checksum"] = Value::String("AB".repeat(32));
    let dir = scratch("whole");
    let path = dir.join("fw.img");
    let (result, rec) = run(&s.update, SinkSpec::File(path.clone()), fast()).await;
    let reason = failed_reason(&rec);
    assert_eq!(result, Err(reason.clone()));
    assert!(
        reason.starts_with("Checksum mismatch : the image has SHA-256"),
        "{reason}"
    );
    assert!(!path.exists() && !dir.join("fw.img.partial").exists());
    assert!(!rec.statuses().contains(&UpdateStatus::Completed));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn http_errors_stop_with_the_status_and_never_show_the_query() {
    let s = setup("exists", 1000, 7).await;
    let mut update = s.update.clone();
    update["firmware_url"] = Value::String(format!(
        "{}/firmware/missing?X-Amz-Signature=secret",
        s.server.control_url()
    ));
    let sink = Arc::new(MemorySink::default());
    let (result, rec) = run(&update, SinkSpec::Custom(sink.clone()), fast()).await;
    let reason = failed_reason(&rec);
    assert_eq!(result, Err(reason.clone()));
    assert_eq!(
        reason,
        format!(
            "Download failed : HTTP 404 Not Found from {}/firmware/missing?<redacted>",
            s.server.control_url()
        )
    );

    faults(
        &s.server,
        "exists",
        FirmwareFaults {
            status: Some(503),
            ..Default::default()
        },
    );
    let (result, _) = run(&s.update, SinkSpec::Custom(sink.clone()), fast()).await;
    let reason = result.unwrap_err();
    assert!(reason.starts_with("Download failed : HTTP 503"), "{reason}");
    // One request: a status >= 400 is not retried.
    assert_eq!(requests(&s.server, "exists").len(), 1);
}

#[tokio::test]
async fn redirects_are_followed_on_every_connection() {
    let s = setup("moved", 2 * MIB, 8).await;
    faults(
        &s.server,
        "moved",
        FirmwareFaults {
            redirect: true,
            cut_after_bytes: Some(300_000),
            cuts: Some(2),
            ..Default::default()
        },
    );
    let sink = Arc::new(MemorySink::default());
    let (result, _) = run(&s.update, SinkSpec::Custom(sink.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    assert!(*sink.bytes.lock().unwrap() == s.image);
    let statuses: Vec<u16> = requests(&s.server, "moved")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![302, 200, 302, 206, 302, 206]);
}

#[tokio::test]
async fn a_server_ignoring_range_still_gives_a_correct_image() {
    let s = setup("norange", 2 * MIB + 1, 9).await;
    faults(
        &s.server,
        "norange",
        FirmwareFaults {
            ignore_range: true,
            cut_after_bytes: Some(700_000),
            cuts: Some(3),
            ..Default::default()
        },
    );
    let dir = scratch("norange");
    let path = dir.join("fw.img");
    let (result, _) = run(&s.update, SinkSpec::File(path.clone()), fast()).await;
    assert_eq!(result, Ok(()));
    assert!(std::fs::read(&path).unwrap() == s.image);
    let seen = requests(&s.server, "norange");
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.status == 200), "{seen:?}");
    assert!(seen[1].range.is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_wrong_announced_size_fails() {
    let mut s = setup("size", 5000, 10).await;
    s.update["size"] = Value::from(4000);
    let sink = Arc::new(MemorySink::default());
    let (result, _) = run(&s.update, SinkSpec::Custom(sink), fast()).await;
    let reason = result.unwrap_err();
    assert!(
        reason.starts_with("Download failed : size mismatch"),
        "{reason}"
    );
}

#[tokio::test]
async fn fwup_sink_streams_into_a_command_and_reports_updating() {
    let s = setup("fwup", 2 * MIB + 3, 11).await;
    let dir = scratch("fwup");
    let out = dir.join("applied.bin");
    let sink = SinkSpec::Fwup {
        command: "sh".into(),
        args: vec!["-c".into(), format!("cat > '{}'", out.display())],
    };
    let (result, rec) = run(&s.update, sink, fast()).await;
    assert_eq!(result, Ok(()));
    assert!(std::fs::read(&out).unwrap() == s.image);
    assert!(rec.progress(Stage::Downloading).is_empty());
    let updating = rec.progress(Stage::Updating);
    assert_eq!(updating.last(), Some(&100));
    assert_strictly_increasing(&updating[..updating.len() - 1]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_failing_fwup_command_fails_the_update_with_its_stderr() {
    let s = setup("fwupfail", 100_000, 12).await;
    let sink = SinkSpec::Fwup {
        command: "sh".into(),
        args: vec![
            "-c".into(),
            "cat >/dev/null; echo 'Fwup error: signature check failed' >&2; exit 1".into(),
        ],
    };
    let (result, rec) = run(&s.update, sink, fast()).await;
    let reason = failed_reason(&rec);
    assert_eq!(result, Err(reason.clone()));
    assert_eq!(
        reason,
        "Sink error : sh exited with status 1: Fwup error: signature check failed"
    );
}

/// Blocks in `write` until aborted, like a stuck flash write.
#[derive(Default)]
struct StuckSink {
    aborted: Mutex<Option<String>>,
    cond: Condvar,
}

impl ImageSink for StuckSink {
    fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
        Ok(())
    }
    fn write(&self, _chunk: &[u8]) -> Result<(), String> {
        let guard = self.aborted.lock().unwrap();
        let _guard = self.cond.wait_while(guard, |a| a.is_none()).unwrap();
        Err("aborted".into())
    }
    fn finish(&self) -> Result<(), String> {
        Ok(())
    }
    fn abort(&self, reason: &str) {
        *self.aborted.lock().unwrap() = Some(reason.to_owned());
        self.cond.notify_all();
    }
}

#[tokio::test]
async fn cancel_aborts_a_stuck_sink_and_reports_nothing() {
    let s = setup("cancel", 2 * MIB, 13).await;
    let sink = Arc::new(StuckSink::default());
    let (handle, rec) = start(&s.update, SinkSpec::Custom(sink.clone()), fast());
    // Wait until the download is under way (the first connection was reported).
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let changed = rec.changed.notified();
        if !rec.statuses().is_empty() {
            break;
        }
        tokio::time::timeout_at(deadline, changed)
            .await
            .expect("a started status");
    }
    handle.cancel();
    assert_eq!(outcome(&handle).await, Err(CANCELLED.to_owned()));
    assert_eq!(sink.aborted.lock().unwrap().as_deref(), Some(CANCELLED));
    assert!(!rec
        .statuses()
        .iter()
        .any(|s| matches!(s, UpdateStatus::Failed { .. } | UpdateStatus::Completed)));
    assert_eq!(handle.try_outcome(), Some(Err(CANCELLED.to_owned())));
}

#[test]
fn blocking_wait_gives_the_outcome() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup("blocking", 10_000, 14));
    let sink = Arc::new(MemorySink::default());
    let (handle, _rec) = start(&s.update, SinkSpec::Custom(sink.clone()), fast());
    assert_eq!(handle.wait(Duration::from_secs(30)), Some(Ok(())));
    assert!(*sink.bytes.lock().unwrap() == s.image);
    drop(s);
}

/// A TLS front for the dev server's plain-HTTP firmware endpoint, with the
/// dev PKI's `localhost` server certificate. Returns its port.
async fn tls_front(server: &DevServer) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let pki = server.pki();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = server
        .control_url()
        .trim_start_matches("http://")
        .to_owned();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn https_downloads_verify_the_server_and_resume() {
    use nerves_hub_channel::{PemSource, TlsOptions};

    let mut s = setup("tls", 2 * MIB + 5, 15).await;
    let port = tls_front(&s.server).await;
    s.update["firmware_url"] = Value::String(format!("https://localhost:{port}/firmware/tls"));
    faults(
        &s.server,
        "tls",
        FirmwareFaults {
            cut_after_bytes: Some(400_000),
            cuts: Some(2),
            ..Default::default()
        },
    );
    let trusted = DownloadOptions {
        tls: TlsOptions {
            ca: Some(PemSource::File(s.server.pki().ca.clone())),
            ..TlsOptions::default()
        },
        ..fast()
    };
    let sink = Arc::new(MemorySink::default());
    let (result, _) = run(&s.update, SinkSpec::Custom(sink.clone()), trusted.clone()).await;
    assert_eq!(result, Ok(()));
    assert!(*sink.bytes.lock().unwrap() == s.image);
    assert_eq!(requests(&s.server, "tls").len(), 3);

    // A plain-http URL that redirects to https is followed.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = plain.accept().await {
            let mut head = vec![0u8; 4096];
            let _ = tcp.read(&mut head).await;
            let answer = format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: https://localhost:{port}/firmware/tls\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    let mut via_http = s.update.clone();
    via_http["firmware_url"] = Value::String(format!("http://127.0.0.1:{plain_port}/fw"));
    let sink = Arc::new(MemorySink::default());
    let (result, _) = run(&via_http, SinkSpec::Custom(sink.clone()), trusted.clone()).await;
    assert_eq!(result, Ok(()));
    assert!(*sink.bytes.lock().unwrap() == s.image);
    assert_eq!(requests(&s.server, "tls").len(), 4);

    let untrusted = DownloadOptions {
        tls: TlsOptions {
            ca: Some(PemSource::File(s.server.pki().other_ca.clone())),
            ..TlsOptions::default()
        },
        max_disconnects: 0,
        ..fast()
    };
    let (result, _) = run(
        &s.update,
        SinkSpec::Custom(Arc::new(MemorySink::default())),
        untrusted,
    )
    .await;
    let reason = result.unwrap_err();
    assert!(
        reason.contains("server certificate is not signed by any CA in"),
        "{reason}"
    );
    assert_eq!(
        requests(&s.server, "tls").len(),
        4,
        "nothing reached the server"
    );
}
