//! The one owner of a sink during an update: it keeps the calls in the
//! order [`ImageSink`] promises when the update is cancelled, times out or
//! is freed while `begin` or `finish` runs.
//!
//! Those run on tokio's blocking pool; cancelling the update stops waiting
//! for them but cannot stop them. Without one owner `abort` would start on
//! another thread at the same time, or after a `finish` that then
//! succeeded (the firmware applied, and then told to discard itself).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::sink::ImageSink;
use super::update::Stage;
use super::update_info::UpdateInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `begin` was not called.
    Idle,
    /// `begin` or `finish` is running: `abort` waits for it.
    Busy,
    /// `begin` returned (success or not): writes, `finish` or `abort` may follow.
    Open,
    /// `finish` succeeded: the image is applied; `abort` must not follow.
    Finished,
    /// Stopped: nothing else reaches the sink.
    Aborted,
}

/// What [`SinkStage::stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The sink was aborted (or never begun, and now never will be).
    Aborted,
    /// `finish` had succeeded (possibly while `stop` waited for it): the
    /// update is complete and the sink was left alone.
    Finished,
}

pub(crate) struct SinkStage {
    sink: Arc<dyn ImageSink>,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    step: Step,
    /// `stop` was called: no call but its `abort` starts any more.
    stopping: bool,
}

/// Leaves `Busy` even if the sink panics (the blocking task catches it).
struct BusyGuard<'a> {
    stage: &'a SinkStage,
    after: Step,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.stage.lock().step = self.after;
        self.stage.changed.notify_all();
    }
}

impl SinkStage {
    pub(crate) fn new(sink: Arc<dyn ImageSink>) -> SinkStage {
        SinkStage {
            sink,
            state: Mutex::new(State {
                step: Step::Idle,
                stopping: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the stage busy if it is at `from` and not stopping.
    fn enter(&self, from: Step, after: Step) -> Option<BusyGuard<'_>> {
        let mut st = self.lock();
        if st.step != from || st.stopping {
            return None;
        }
        st.step = Step::Busy;
        Some(BusyGuard { stage: self, after })
    }

    /// Stops the update: waits for a running `begin` or `finish`, then
    /// aborts the sink unless `finish` succeeded. Only the first call acts.
    pub(crate) fn stop(&self, reason: &str) -> Stopped {
        self.stop_keeping(reason, false)
    }

    /// `stop`; with `keep`, the sink is suspended (keeps what it stored for
    /// a resume) instead of aborted.
    pub(crate) fn stop_keeping(&self, reason: &str, keep: bool) -> Stopped {
        let mut st = self.lock();
        st.stopping = true;
        self.changed.notify_all();
        while st.step == Step::Busy {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        match std::mem::replace(&mut st.step, Step::Aborted) {
            Step::Finished => {
                st.step = Step::Finished;
                Stopped::Finished
            }
            // Nothing was begun: there is nothing to discard.
            Step::Idle | Step::Aborted => Stopped::Aborted,
            Step::Open | Step::Busy => {
                drop(st);
                if keep {
                    self.sink.suspend(reason);
                } else {
                    self.sink.abort(reason);
                }
                Stopped::Aborted
            }
        }
    }

    /// Returns once `stop` was called and waits for `begin`/`finish`.
    #[cfg(test)]
    fn wait_for_stopper(&self) {
        let mut st = self.lock();
        while !(st.stopping && st.step == Step::Busy) {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The sink's calls, in the order `ImageSink` promises. `abort` is `stop`.
impl ImageSink for SinkStage {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String> {
        self.begin_at(info, 0)
    }

    fn stored(&self, info: &UpdateInfo) -> Option<(u64, Box<dyn std::io::Read + Send>)> {
        self.sink.stored(info)
    }

    fn begin_at(&self, info: &UpdateInfo, offset: u64) -> Result<(), String> {
        let _busy = self
            .enter(Step::Idle, Step::Open)
            .ok_or("the update was stopped before the sink began")?;
        if offset == 0 {
            self.sink.begin(info)
        } else {
            self.sink.begin_at(info, offset)
        }
    }

    /// Not serialised with `stop`: `abort` may cancel a blocked write. But
    /// no write starts once `stop` decided to abort.
    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        let st = self.lock();
        if st.step != Step::Open || st.stopping {
            return Err("the update was stopped".into());
        }
        drop(st);
        self.sink.write(chunk)
    }

    fn finish(&self) -> Result<(), String> {
        let mut busy = self
            .enter(Step::Open, Step::Open)
            .ok_or("the update was stopped before the sink finished")?;
        let result = self.sink.finish();
        if result.is_ok() {
            busy.after = Step::Finished;
        }
        result
    }

    fn abort(&self, reason: &str) {
        self.stop(reason);
    }

    fn stage(&self) -> Stage {
        self.sink.stage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[derive(Default)]
    struct GateState {
        log: Vec<&'static str>,
        running: Option<&'static str>,
        released: bool,
    }

    /// Records its calls; the `block` call waits until the test releases
    /// it, and `abort` checks it never overlaps `begin` or `finish`.
    #[derive(Default)]
    struct Gate {
        block: &'static str,
        finish_fails: bool,
        state: Mutex<GateState>,
        changed: Condvar,
    }

    impl Gate {
        fn call(&self, name: &'static str) {
            let mut st = self.state.lock().unwrap();
            st.log.push(name);
            st.running = Some(name);
            self.changed.notify_all();
            while name == self.block && !st.released {
                st = self.changed.wait(st).unwrap();
            }
            st.running = None;
        }

        fn wait_running(&self, name: &str) {
            let mut st = self.state.lock().unwrap();
            while st.running != Some(name) {
                st = self.changed.wait(st).unwrap();
            }
        }

        fn release(&self) {
            self.state.lock().unwrap().released = true;
            self.changed.notify_all();
        }

        fn log(&self) -> Vec<&'static str> {
            self.state.lock().unwrap().log.clone()
        }
    }

    impl ImageSink for Gate {
        fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
            self.call("begin");
            Ok(())
        }
        fn write(&self, _chunk: &[u8]) -> Result<(), String> {
            self.state.lock().unwrap().log.push("write");
            Ok(())
        }
        fn finish(&self) -> Result<(), String> {
            self.call("finish");
            if self.finish_fails {
                Err("flash full".into())
            } else {
                Ok(())
            }
        }
        fn abort(&self, _reason: &str) {
            let mut st = self.state.lock().unwrap();
            assert_eq!(st.running, None, "abort overlapped a call");
            st.log.push("abort");
        }
    }

    fn info() -> UpdateInfo {
        UpdateInfo::parse(&serde_json::json!({"update_available": false})).unwrap()
    }

    /// Stops the stage from another thread while the gate holds its
    /// `block` call, releases the call only once `stop` waits for it, and
    /// returns what `stop` found and the sink's calls.
    fn stop_during(gate: Gate) -> (Stopped, Vec<&'static str>) {
        let gate = Arc::new(gate);
        let stage = Arc::new(SinkStage::new(gate.clone()));
        let s = stage.clone();
        let worker = thread::spawn(move || {
            let begun = s.begin(&info());
            if begun.is_ok() && s.write(b"x").is_ok() {
                let _ = s.finish();
            }
        });
        gate.wait_running(gate.block);
        let s = stage.clone();
        let stopper = thread::spawn(move || s.stop("cancelled"));
        stage.wait_for_stopper();
        gate.release();
        let stopped = stopper.join().unwrap();
        worker.join().unwrap();
        (stopped, gate.log())
    }

    #[test]
    fn stop_during_begin_waits_for_it_then_aborts() {
        let (stopped, log) = stop_during(Gate {
            block: "begin",
            ..Gate::default()
        });
        assert_eq!(stopped, Stopped::Aborted);
        // The worker's write and finish come after the abort: refused.
        assert_eq!(log, ["begin", "abort"]);
    }

    #[test]
    fn stop_during_a_successful_finish_leaves_the_sink_alone() {
        let (stopped, log) = stop_during(Gate {
            block: "finish",
            ..Gate::default()
        });
        assert_eq!(stopped, Stopped::Finished);
        assert_eq!(log, ["begin", "write", "finish"]);
    }

    #[test]
    fn stop_during_a_failing_finish_aborts_after_it() {
        let (stopped, log) = stop_during(Gate {
            block: "finish",
            finish_fails: true,
            ..Gate::default()
        });
        assert_eq!(stopped, Stopped::Aborted);
        assert_eq!(log, ["begin", "write", "finish", "abort"]);
    }

    #[test]
    fn nothing_reaches_the_sink_after_stop() {
        let gate = Arc::new(Gate::default());
        let stage = SinkStage::new(gate.clone());
        // Stopped before begin: nothing to discard, and begin never runs.
        assert_eq!(stage.stop("cancelled"), Stopped::Aborted);
        assert!(stage.begin(&info()).is_err());
        assert!(gate.log().is_empty());

        let stage = SinkStage::new(gate.clone());
        stage.begin(&info()).unwrap();
        stage.write(b"a").unwrap();
        assert_eq!(stage.stop("cancelled"), Stopped::Aborted);
        assert_eq!(stage.stop("again"), Stopped::Aborted);
        assert!(stage.write(b"b").is_err());
        assert!(stage.finish().is_err());
        assert_eq!(gate.log(), ["begin", "write", "abort"]);
    }
}
