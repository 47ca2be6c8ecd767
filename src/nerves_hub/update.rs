//! One firmware update after the application decided to apply it:
//! download → verify → sink, reported to NervesHub as it goes.
//!
//! Statuses sent here: `started` per HTTP connection, progress of one stage
//! (`downloading` for sinks that store the image, `updating` for sinks that
//! apply it as it streams), `updating 100` then `completed`, or `failed`
//! with a reason. `received`, `ignored` and `rescheduled` belong to the
//! Device, which makes that decision.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use url::Url;

use super::download::{Download, DownloadEvent, Failure};
use super::fwup_framing::FWUP_ERROR;
use super::http::HttpClient;
use super::progress::{percent, Clock, SystemClock, Throttle};
use super::sink_stage::{SinkStage, Stopped};
use super::verify::{Pipeline, Verified};
use crate::error::{Error, Result};

pub use super::download::DownloadOptions;
pub use super::sink::{FileSink, FwupSink, ImageSink, SinkSpec};
pub use super::update_info::UpdateInfo;

/// A `status_update` (protocol §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    Received,
    /// An HTTP connection for the download was made, over this interface.
    Started {
        interface: Option<String>,
    },
    Downloading {
        progress: u8,
    },
    Updating {
        progress: u8,
    },
    Completed,
    Ignored {
        reason: String,
    },
    /// Sent as `delay_for` in milliseconds: nerves_hub_web adds it to
    /// "now" with `NaiveDateTime.add(delay_for, :millisecond)`.
    Rescheduled {
        delay: Duration,
        reason: Option<String>,
    },
    Failed {
        reason: String,
    },
}

impl UpdateStatus {
    /// The `status_update` payload.
    pub fn to_payload(&self) -> Value {
        match self {
            UpdateStatus::Received => json!({"status": "received"}),
            UpdateStatus::Started { interface } => {
                json!({"status": "started", "downloader_network_interface": interface})
            }
            UpdateStatus::Downloading { progress } => {
                json!({"status": "downloading", "progress": progress})
            }
            UpdateStatus::Updating { progress } => {
                json!({"status": "updating", "progress": progress})
            }
            UpdateStatus::Completed => json!({"status": "completed"}),
            UpdateStatus::Ignored { reason } => json!({"status": "ignored", "reason": reason}),
            UpdateStatus::Rescheduled { delay, reason } => {
                let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                let mut p = json!({"status": "rescheduled", "delay_for": millis});
                if let Some(reason) = reason {
                    p["reason"] = json!(reason);
                }
                p
            }
            UpdateStatus::Failed { reason } => json!({"status": "failed", "reason": reason}),
        }
    }
}

/// The `stage` of `fwup_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Downloading,
    Updating,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Downloading => "downloading",
            Stage::Updating => "updating",
        }
    }
}

/// Where the update reports to (the Device casts these to the server).
/// Called from library threads; must not block for long.
pub trait UpdateReporter: Send + Sync + 'static {
    /// A `status_update`.
    fn status(&self, status: UpdateStatus);
    /// `fwup_progress {stage, value}`, already throttled.
    fn progress(&self, stage: Stage, percent: u8);
}

/// How to run an update. There is no default sink: say where the image goes.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    pub sink: SinkSpec,
    pub download: DownloadOptions,
}

impl UpdateOptions {
    /// Default download options.
    pub fn new(sink: SinkSpec) -> UpdateOptions {
        UpdateOptions {
            sink,
            download: DownloadOptions::default(),
        }
    }
}

type Outcome = std::result::Result<(), String>;

struct HandleInner {
    cancel: watch::Sender<bool>,
    /// Set by `suspend`: the cancellation keeps the sink's bytes.
    keep_stored: AtomicBool,
    done: watch::Sender<Option<Outcome>>,
    /// The same outcome for blocking waiters.
    blocking: Mutex<Option<Outcome>>,
    cond: Condvar,
}

impl HandleInner {
    fn set(&self, outcome: Outcome) {
        *self.blocking.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome.clone());
        self.cond.notify_all();
        self.done.send_replace(Some(outcome));
    }
}

/// Gives waiters an outcome even if the task is dropped without one (the
/// runtime was shut down).
struct OutcomeGuard(Arc<HandleInner>);

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        let unset = self
            .0
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        if unset {
            self.0
                .set(Err("Update stopped : the library was shut down".into()));
        }
    }
}

/// A running update. Dropping the handle does not cancel it.
#[derive(Clone)]
pub struct UpdateHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for UpdateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateHandle")
            .field("outcome", &self.try_outcome())
            .finish()
    }
}

/// The outcome of a cancelled update. Cancelling reports nothing to the
/// server: the caller decides what to tell it.
pub const CANCELLED: &str = "Update cancelled";

impl UpdateHandle {
    /// Stops the download and aborts the sink; the outcome becomes
    /// `Err("Update cancelled")` unless the update already ended.
    pub fn cancel(&self) {
        self.inner.cancel.send_replace(true);
    }

    /// Cancels because the program is leaving: like `cancel` (same
    /// outcome), but a sink that can resume ([`ImageSink::suspend`], e.g.
    /// [`FileSink`]) keeps what it stored, and the next run of the same
    /// update (same firmware UUID and URL path) re-verifies those bytes and
    /// downloads only the rest, with an HTTP `Range` request.
    pub fn suspend(&self) {
        self.inner.keep_stored.store(true, Ordering::SeqCst);
        self.cancel();
    }

    /// Waits for the end: `Ok(())` after `completed`, `Err(reason)` otherwise.
    pub async fn outcome(&self) -> Outcome {
        let mut rx = self.inner.done.subscribe();
        loop {
            if let Some(outcome) = rx.borrow_and_update().clone() {
                return outcome;
            }
            if rx.changed().await.is_err() {
                return Err("the update task ended without an outcome".into());
            }
        }
    }

    /// Blocking wait of at most `timeout`; `None` if still running. Not on
    /// an async runtime thread.
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        let guard = self
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .inner
            .cond
            .wait_timeout_while(guard, timeout, |o| o.is_none())
            .unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    /// The outcome if the update ended.
    pub fn try_outcome(&self) -> Option<Outcome> {
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts downloading and applying `info` on the library runtime.
/// Fails now only for unusable input (no update, bad URL or options);
/// everything later is reported as `failed` and as the handle's outcome.
pub fn start_update(
    info: UpdateInfo,
    options: UpdateOptions,
    reporter: Arc<dyn UpdateReporter>,
) -> Result<UpdateHandle> {
    if !info.update_available {
        return Err(Error::InvalidArgument(
            "update_available is false: there is nothing to download".into(),
        ));
    }
    let url = Url::parse(&info.firmware_url).map_err(|e| {
        Error::InvalidArgument(format!(
            "firmware_url {}: {e}",
            crate::config::redact_query(&info.firmware_url)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidArgument(format!(
            "firmware_url must be http or https, not {}",
            url.scheme()
        )));
    }
    options.download.validate()?;
    let runtime = crate::runtime::handle()?;
    let inner = Arc::new(HandleInner {
        cancel: watch::channel(false).0,
        keep_stored: AtomicBool::new(false),
        done: watch::channel(None).0,
        blocking: Mutex::new(None),
        cond: Condvar::new(),
    });
    let task_inner = OutcomeGuard(inner.clone());
    let mut cancelled = inner.cancel.subscribe();
    runtime.spawn(async move {
        // The one owner of the sink: a cancel, the max_total timeout or a
        // failure waits for a running begin/finish before it aborts.
        let sink = Arc::new(SinkStage::new(options.sink.build()));
        let max_total = options.download.max_total;
        let job = Job {
            info,
            url,
            options,
            sink: sink.clone(),
            reporter: reporter.clone(),
        };
        let (result, cancel) = tokio::select! {
            r = tokio::time::timeout(max_total, job.run()) => match r {
                Ok(r) => (r.map_err(|f| describe(&f)), false),
                Err(_) => (Err(describe(&Failure::Download(format!("not finished within {max_total:?}")))), false),
            },
            _ = async { cancelled.wait_for(|c| *c).await.map(|_| ()) } => {
                (Err(CANCELLED.to_owned()), true)
            }
        };
        let keep = cancel && task_inner.0.keep_stored.load(Ordering::SeqCst);
        let result = match result {
            Ok(()) => Ok(()),
            Err(reason) => match stop(sink, reason.clone(), keep).await {
                // finish succeeded while the stop waited: the image is applied.
                Stopped::Finished => {
                    completed(reporter.as_ref());
                    Ok(())
                }
                Stopped::Aborted => {
                    // A cancellation is reported by the caller.
                    if !cancel {
                        log::warn!("firmware update failed: {reason}");
                        reporter.status(UpdateStatus::Failed {
                            reason: reason.clone(),
                        });
                    }
                    Err(reason)
                }
            },
        };
        task_inner.0.set(result);
    });
    Ok(UpdateHandle { inner })
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Download(m) => format!("Download failed : {m}"),
        Failure::Checksum(m) => format!("Checksum mismatch : {m}"),
        // fwup's own message, already in nerves_hub_link's wording.
        Failure::Sink(m) if m.starts_with(FWUP_ERROR) => m.clone(),
        Failure::Sink(m) => format!("Sink error : {m}"),
    }
}

/// Stops the sink on the blocking pool (it may wait for `begin`/`finish`);
/// with `keep`, a resumable sink keeps its bytes.
async fn stop(sink: Arc<SinkStage>, reason: String, keep: bool) -> Stopped {
    tokio::task::spawn_blocking(move || sink.stop_keeping(&reason, keep))
        .await
        .unwrap_or(Stopped::Aborted)
}

/// The end of a successful update.
fn completed(reporter: &dyn UpdateReporter) {
    // For hubs that only mark completion through progress (link does the same).
    reporter.progress(Stage::Updating, 100);
    reporter.status(UpdateStatus::Completed);
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Sink(format!("the sink panicked: {e}")))
}

/// Throttled progress of one stage.
struct ProgressReporter {
    stage: Stage,
    reporter: Arc<dyn UpdateReporter>,
    throttle: Mutex<Throttle>,
    clock: SystemClock,
}

impl ProgressReporter {
    fn offer(&self, percent: u8) {
        let admitted = self
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(percent, self.clock.now());
        if admitted {
            self.reporter.progress(self.stage, percent.min(100));
        }
    }
}

struct Job {
    info: UpdateInfo,
    url: Url,
    options: UpdateOptions,
    sink: Arc<SinkStage>,
    reporter: Arc<dyn UpdateReporter>,
}

impl Job {
    async fn run(self) -> std::result::Result<(), Failure> {
        let stage = self.sink.stage();
        let progress = Arc::new(ProgressReporter {
            stage,
            reporter: self.reporter.clone(),
            throttle: Mutex::new(Throttle::new()),
            clock: SystemClock,
        });
        // fwup reports how far it applied the image; other sinks are as far
        // as the bytes written to them.
        let sink_reports = {
            let progress = progress.clone();
            self.sink
                .report_progress(Arc::new(move |percent| progress.offer(percent)))
        };
        // Bytes a suspended run of this update stored are checked again
        // and kept; the download continues after them.
        let (sink, info) = (self.sink.clone(), self.info.clone());
        let from = blocking(move || {
            let (partials, checksum) = (&info.partials_checksums, info.checksum.as_deref());
            let from = match sink.stored(&info) {
                Some((len, mut reader)) => {
                    Verified::from_stored(partials, checksum, info.size, len, &mut *reader)
                }
                None => Verified::fresh(partials, checksum),
            };
            sink.begin_at(&info, from.offset()).map(|()| from)
        })
        .await?
        .map_err(Failure::Sink)?;
        let start = from.offset();
        if start > 0 {
            log::info!("resuming the firmware download after {start} stored bytes");
        }

        // 0 = not known yet; learned from the update or the first response.
        let total = Arc::new(AtomicU64::new(self.info.size.unwrap_or(0)));
        let on_written = {
            let (total, progress) = (total.clone(), progress.clone());
            move |written| {
                let t = total.load(Ordering::Relaxed);
                if stage == Stage::Updating && !sink_reports && t > 0 {
                    progress.offer(percent(written, t));
                }
            }
        };
        let mut pipeline = Pipeline::start(
            &self.info.partials_checksums,
            self.info.checksum.as_deref(),
            from,
            self.sink.clone() as Arc<dyn ImageSink>,
            on_written,
        );
        let mut events = {
            let reporter = self.reporter.clone();
            move |event: DownloadEvent| match event {
                DownloadEvent::Connected { interface } => {
                    reporter.status(UpdateStatus::Started { interface })
                }
                DownloadEvent::Received { done, total: t } => {
                    if let Some(t) = t.filter(|t| *t > 0) {
                        total.store(t, Ordering::Relaxed);
                        if stage == Stage::Downloading {
                            progress.offer(percent(done, t));
                        }
                    }
                }
            }
        };
        let download = &self.options.download;
        let client = HttpClient::new(
            download.tls.clone(),
            download.headers.clone(),
            download.idle_timeout,
        );
        Download::new(
            &client,
            &self.url,
            download,
            self.info.size,
            start,
            &mut pipeline,
            &mut events,
        )
        .run()
        .await?;
        // Waits for the last writes, then checks the whole-file checksum.
        let released = pipeline.finish().await?;
        if let Some(size) = self.info.size {
            if released != size {
                return Err(Failure::Download(format!(
                    "size mismatch: received {released} bytes, the update announced {size}"
                )));
            }
        }
        let sink = self.sink.clone();
        blocking(move || sink.finish())
            .await?
            .map_err(Failure::Sink)?;
        completed(self.reporter.as_ref());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_payloads_match_the_protocol() {
        let cases = [
            (UpdateStatus::Received, json!({"status": "received"})),
            (
                UpdateStatus::Started {
                    interface: Some("wlan0".into()),
                },
                json!({"status": "started", "downloader_network_interface": "wlan0"}),
            ),
            (
                UpdateStatus::Started { interface: None },
                json!({"status": "started", "downloader_network_interface": null}),
            ),
            (
                UpdateStatus::Downloading { progress: 5 },
                json!({"status": "downloading", "progress": 5}),
            ),
            (
                UpdateStatus::Updating { progress: 99 },
                json!({"status": "updating", "progress": 99}),
            ),
            (UpdateStatus::Completed, json!({"status": "completed"})),
            (
                UpdateStatus::Ignored {
                    reason: "same uuid".into(),
                },
                json!({"status": "ignored", "reason": "same uuid"}),
            ),
            (
                UpdateStatus::Rescheduled {
                    delay: Duration::from_millis(1500),
                    reason: None,
                },
                json!({"status": "rescheduled", "delay_for": 1500}),
            ),
            (
                UpdateStatus::Rescheduled {
                    delay: Duration::from_secs(30 * 60),
                    reason: Some("busy".into()),
                },
                json!({"status": "rescheduled", "delay_for": 1_800_000, "reason": "busy"}),
            ),
            (
                UpdateStatus::Failed {
                    reason: "Download failed : x".into(),
                },
                json!({"status": "failed", "reason": "Download failed : x"}),
            ),
        ];
        for (status, payload) in cases {
            assert_eq!(status.to_payload(), payload);
        }
        assert_eq!(Stage::Downloading.as_str(), "downloading");
        assert_eq!(Stage::Updating.as_str(), "updating");
    }

    struct Nobody;
    impl UpdateReporter for Nobody {
        fn status(&self, _: UpdateStatus) {}
        fn progress(&self, _: Stage, _: u8) {}
    }

    #[test]
    fn refuses_what_cannot_be_downloaded() {
        let options = || UpdateOptions::new(SinkSpec::File("/tmp/x".into()));
        let none = UpdateInfo::parse(&json!({"update_available": false})).unwrap();
        assert!(matches!(
            start_update(none, options(), Arc::new(Nobody)),
            Err(Error::InvalidArgument(_))
        ));
        let info = UpdateInfo::parse(&json!({
            "update_available": true, "firmware_url": "http://h/f", "firmware_meta": {"uuid": "u"}
        }))
        .unwrap();
        let mut bad = options();
        bad.download.headers.push(("Bad Name".into(), "v".into()));
        assert!(matches!(
            start_update(info, bad, Arc::new(Nobody)),
            Err(Error::InvalidArgument(_))
        ));
    }
}
