//! Verification off the I/O thread, in two stages on tokio's blocking pool:
//!
//!   I/O task ──parts──▶ check (partial SHA-256) ──verified parts──▶ write (whole SHA-256, sink)
//!      ▲                    │
//!      └─────verdicts───────┘
//!
//! The I/O task reads the socket straight into 1 MiB part buffers and hands
//! each full part on; hashing a part overlaps with receiving the next ones,
//! and the whole-file hash (only needed without partial checksums) runs on
//! the sink's thread. Channels hold one
//! part each, so a slow sink holds the download back with at most about
//! five parts in memory. Buffers go back to the I/O task once written.
//!
//! A rejected part makes the check stage report it and drop every part that
//! does not start where the image continues, until the I/O task re-fetched
//! the rejected part: parts read ahead on the old connection never reach
//! the sink, nor the whole-file hash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Checked, Verified, WholeHash, PART_SIZE};
use crate::nerves_hub::download::Failure;
use crate::nerves_hub::sink::ImageSink;

/// Buffers kept for reuse: enough for the parts in flight.
const SPARE_BUFFERS: usize = 6;

/// Bytes of the image starting at `offset`, in a buffer of [`PART_SIZE`]
/// bytes of which the first `len` are filled.
pub(crate) struct Part {
    pub offset: u64,
    pub buf: Vec<u8>,
    pub len: usize,
}

impl Part {
    /// An empty part at `offset`; its buffer comes from [`Pipeline::buffer`].
    pub(crate) fn empty(offset: u64) -> Part {
        Part {
            offset,
            buf: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Where the image continues after this part.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len as u64
    }
}

enum ToCheck {
    Part(Part),
    /// Answered with `Synced` once every byte before this offset verified.
    Sync(u64),
}

/// What the check stage tells the I/O task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Part `index` failed its check: download again from its start.
    Mismatch { index: usize, message: String },
    /// Everything up to the [`Pipeline::sync`] offset verified.
    Synced,
    /// The stages ended (the sink failed): [`Pipeline::sink_error`] says why.
    Stopped,
}

#[derive(Default)]
struct Spares(Mutex<Vec<Vec<u8>>>);

impl Spares {
    fn take(&self) -> Vec<u8> {
        let spare = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        // Zeroed once: reads into an initialised buffer never zero it again.
        spare.unwrap_or_else(|| vec![0u8; PART_SIZE])
    }

    fn put(&self, buf: Vec<u8>) {
        let mut spares = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if spares.len() < SPARE_BUFFERS {
            spares.push(buf);
        }
    }
}

pub(crate) struct Pipeline {
    to_check: Option<mpsc::Sender<ToCheck>>,
    verdicts: mpsc::UnboundedReceiver<Verdict>,
    check: Option<JoinHandle<()>>,
    write: Option<JoinHandle<Result<WholeHash, String>>>,
    spares: Arc<Spares>,
    /// Set when the pipeline is dropped: the stages stop at the next part.
    stop: Arc<AtomicBool>,
    partials: usize,
    checksum: Option<String>,
}

impl Pipeline {
    /// Starts both stages. `on_written(total_bytes)` runs after each write,
    /// on the sink's thread. `from` is what was verified before (nothing,
    /// or the stored prefix of a resumed update).
    pub(crate) fn start(
        partials: &[String],
        checksum: Option<&str>,
        from: Verified,
        sink: Arc<dyn ImageSink>,
        mut on_written: impl FnMut(u64) + Send + 'static,
    ) -> Pipeline {
        let (to_check, mut check_rx) = mpsc::channel::<ToCheck>(1);
        let (to_write, mut write_rx) = mpsc::channel::<Part>(1);
        let (verdict_tx, verdicts) = mpsc::unbounded_channel();
        let spares = Arc::new(Spares::default());
        let stop = Arc::new(AtomicBool::new(false));

        let Verified {
            parts: mut part_check,
            mut whole,
        } = from;
        let (check_spares, check_stop) = (spares.clone(), stop.clone());
        let check = tokio::task::spawn_blocking(move || {
            while let Some(message) = check_rx.blocking_recv() {
                if check_stop.load(Ordering::Relaxed) {
                    return;
                }
                let verdict = match message {
                    ToCheck::Sync(end) if part_check.verified() == end => Verdict::Synced,
                    // After a mismatch the I/O task re-fetches instead.
                    ToCheck::Sync(_) => continue,
                    ToCheck::Part(part) => match part_check.check(part.offset, part.bytes()) {
                        Checked::Accepted => {
                            if to_write.blocking_send(part).is_err() {
                                return; // the sink failed
                            }
                            continue;
                        }
                        Checked::Stale => {
                            check_spares.put(part.buf);
                            continue;
                        }
                        Checked::Rejected { index, message } => {
                            check_spares.put(part.buf);
                            Verdict::Mismatch { index, message }
                        }
                    },
                };
                if verdict_tx.send(verdict).is_err() {
                    return;
                }
            }
        });

        // With partial checksums every byte was already checked against a
        // SHA-256 from the same update message (both describe the file
        // served), so hashing the whole file again proves nothing more and
        // would double the CPU cost of a download; nerves_hub_link's
        // PartsUpdater likewise uses `checksum` only without partials.
        let (write_spares, write_stop) = (spares.clone(), stop.clone());
        let write = tokio::task::spawn_blocking(move || {
            while let Some(part) = write_rx.blocking_recv() {
                if write_stop.load(Ordering::Relaxed) {
                    return Err("the download stopped".to_owned());
                }
                whole.update(part.bytes());
                sink.write(part.bytes())?;
                on_written(whole.released());
                write_spares.put(part.buf);
            }
            Ok(whole)
        });

        Pipeline {
            to_check: Some(to_check),
            verdicts,
            check: Some(check),
            write: Some(write),
            spares,
            stop,
            partials: partials.len(),
            checksum: checksum.map(str::to_owned),
        }
    }

    /// A buffer of [`PART_SIZE`] bytes to read a part into.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.spares.take()
    }

    /// Hands a part (full, or the short last one) to the check stage.
    /// `Err` once the sink failed (`Verdict::Stopped` explains it too).
    pub(crate) async fn send(&mut self, part: Part) -> Result<(), ()> {
        match &self.to_check {
            Some(tx) => tx.send(ToCheck::Part(part)).await.map_err(|_| ()),
            None => Err(()),
        }
    }

    /// The next verdict; `Synced` only comes after a [`Pipeline::sync`].
    pub(crate) async fn verdict(&mut self) -> Verdict {
        self.verdicts.recv().await.unwrap_or(Verdict::Stopped)
    }

    /// A verdict already received, if any.
    pub(crate) fn try_verdict(&mut self) -> Option<Verdict> {
        match self.verdicts.try_recv() {
            Ok(verdict) => Some(verdict),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Verdict::Stopped),
        }
    }

    /// Waits until every part up to `end` (everything sent so far) was
    /// checked: `Synced`, or the `Mismatch` of the first bad one.
    pub(crate) async fn sync(&mut self, end: u64) -> Verdict {
        let sent = match &self.to_check {
            Some(tx) => tx.send(ToCheck::Sync(end)).await.is_ok(),
            None => false,
        };
        if !sent {
            return Verdict::Stopped;
        }
        self.verdict().await
    }

    /// Why the stages stopped early: the sink's error.
    pub(crate) async fn sink_error(&mut self) -> String {
        self.to_check = None;
        match self.join().await {
            Err(Failure::Sink(e)) => e,
            _ => "the sink stopped accepting data".into(),
        }
    }

    async fn join(&mut self) -> Result<WholeHash, Failure> {
        let panicked = |e: tokio::task::JoinError| Failure::Sink(format!("the sink panicked: {e}"));
        if let Some(check) = self.check.take() {
            check
                .await
                .map_err(|e| Failure::Checksum(format!("verification panicked: {e}")))?;
        }
        match self.write.take() {
            Some(write) => write.await.map_err(panicked)?.map_err(Failure::Sink),
            None => Err(Failure::Sink("the sink was already closed".into())),
        }
    }

    /// After the download synced: waits until every part was written, then
    /// checks the part count and the whole-file checksum. Returns the bytes
    /// written.
    pub(crate) async fn finish(mut self) -> Result<u64, Failure> {
        self.to_check = None;
        let whole = self.join().await?;
        let released = whole.released();
        whole
            .check(self.partials, self.checksum.as_deref())
            .map_err(Failure::Checksum)?;
        Ok(released)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // A failed or cancelled update: queued parts must not reach the sink.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::sha256_hex;
    use super::super::tests::{image, partials};
    use super::*;
    use crate::nerves_hub::update_info::UpdateInfo;

    fn start(
        partials: &[String],
        checksum: Option<&str>,
        sink: Arc<dyn ImageSink>,
        on_written: impl FnMut(u64) + Send + 'static,
    ) -> Pipeline {
        let from = Verified::fresh(partials, checksum);
        Pipeline::start(partials, checksum, from, sink, on_written)
    }

    #[derive(Default)]
    struct Memory {
        bytes: Mutex<Vec<u8>>,
        fail: bool,
    }

    impl ImageSink for Memory {
        fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
            Ok(())
        }
        fn write(&self, chunk: &[u8]) -> Result<(), String> {
            if self.fail {
                return Err("disk full".into());
            }
            self.bytes.lock().unwrap().extend_from_slice(chunk);
            Ok(())
        }
        fn finish(&self) -> Result<(), String> {
            Ok(())
        }
        fn abort(&self, _reason: &str) {}
    }

    fn part(pipeline: &Pipeline, data: &[u8], offset: usize, len: usize) -> Part {
        let mut buf = pipeline.buffer();
        buf[..len].copy_from_slice(&data[offset..offset + len]);
        Part {
            offset: offset as u64,
            buf,
            len,
        }
    }

    #[tokio::test]
    async fn verified_parts_reach_the_sink_and_the_whole_file_is_checked() {
        let data = image(2 * PART_SIZE + 123);
        let sink = Arc::new(Memory::default());
        let written = Arc::new(Mutex::new(Vec::new()));
        let seen = written.clone();
        let mut pipeline = start(
            &partials(&data),
            Some(&sha256_hex(&data)),
            sink.clone(),
            move |n| seen.lock().unwrap().push(n),
        );
        for (offset, len) in [(0, PART_SIZE), (PART_SIZE, PART_SIZE), (2 * PART_SIZE, 123)] {
            let p = part(&pipeline, &data, offset, len);
            pipeline.send(p).await.unwrap();
        }
        assert_eq!(pipeline.sync(data.len() as u64).await, Verdict::Synced);
        assert_eq!(pipeline.finish().await.unwrap(), data.len() as u64);
        assert!(*sink.bytes.lock().unwrap() == data);
        let total = data.len() as u64;
        assert_eq!(
            *written.lock().unwrap(),
            vec![PART_SIZE as u64, 2 * PART_SIZE as u64, total]
        );
    }

    #[tokio::test]
    async fn a_bad_part_is_reported_and_what_was_read_after_it_is_dropped() {
        let data = image(3 * PART_SIZE);
        let sink = Arc::new(Memory::default());
        let mut pipeline = start(
            &partials(&data),
            Some(&sha256_hex(&data)),
            sink.clone(),
            |_| {},
        );
        let mut bad = data.clone();
        bad[PART_SIZE + 5] ^= 1;
        for offset in [0, PART_SIZE, 2 * PART_SIZE] {
            let p = part(&pipeline, &bad, offset, PART_SIZE);
            pipeline.send(p).await.unwrap();
        }
        match pipeline.sync(data.len() as u64).await {
            Verdict::Mismatch { index, message } => {
                assert_eq!(index, 1);
                assert!(message.starts_with("part 1 (bytes 1048576..)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Re-fetched from the bad part's start.
        for offset in [PART_SIZE, 2 * PART_SIZE] {
            let p = part(&pipeline, &data, offset, PART_SIZE);
            pipeline.send(p).await.unwrap();
        }
        assert_eq!(pipeline.sync(data.len() as u64).await, Verdict::Synced);
        assert_eq!(pipeline.try_verdict(), None);
        assert_eq!(pipeline.finish().await.unwrap(), data.len() as u64);
        assert!(*sink.bytes.lock().unwrap() == data, "only good bytes, once");
    }

    #[tokio::test]
    async fn with_partials_a_missing_last_part_fails_finish() {
        let data = image(PART_SIZE + 10);
        let mut pipeline = start(
            &partials(&data),
            Some(&sha256_hex(&data)),
            Arc::new(Memory::default()),
            |_| {},
        );
        let p = part(&pipeline, &data, 0, PART_SIZE);
        pipeline.send(p).await.unwrap();
        assert_eq!(pipeline.sync(PART_SIZE as u64).await, Verdict::Synced);
        match pipeline.finish().await {
            Err(Failure::Checksum(m)) => assert!(m.contains("1 part(s) but 2 partial"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_whole_file_mismatch_fails_finish() {
        let data = image(1000);
        let mut pipeline = start(
            &[],
            Some(&sha256_hex(b"other")),
            Arc::new(Memory::default()),
            |_| {},
        );
        let p = part(&pipeline, &data, 0, 1000);
        pipeline.send(p).await.unwrap();
        assert_eq!(pipeline.sync(1000).await, Verdict::Synced);
        match pipeline.finish().await {
            Err(Failure::Checksum(m)) => assert!(m.starts_with("the image has SHA-256"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failing_sink_stops_the_pipeline_with_its_error() {
        let data = image(PART_SIZE);
        let sink = Arc::new(Memory {
            fail: true,
            ..Memory::default()
        });
        let mut pipeline = start(&partials(&data), None, sink, |_| {});
        let p = part(&pipeline, &data, 0, PART_SIZE);
        pipeline.send(p).await.unwrap();
        // The sync waits for the check stage; the write stage fails meanwhile
        // or right after. Either way the error is the sink's.
        let _ = pipeline.sync(PART_SIZE as u64).await;
        assert_eq!(pipeline.sink_error().await, "disk full");
    }
}
