//! A child process's stdout, one item per line (the line, or a value parsed
//! from it), read on a thread: tests wait for what a process printed, with
//! a deadline, never for a fixed time.

use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub struct StdoutLines<T> {
    items: Receiver<T>,
    /// Everything received so far, for failure messages.
    pub seen: Vec<T>,
}

impl<T: Clone + Debug + Send + 'static> StdoutLines<T> {
    /// Reads `stdout` until it closes; `parse` turns each line into an item.
    pub fn read(stdout: ChildStdout, parse: impl Fn(String) -> T + Send + 'static) -> Self {
        let (tx, items) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(parse(line)).is_err() {
                    return;
                }
            }
        });
        StdoutLines {
            items,
            seen: Vec::new(),
        }
    }

    /// The first item (from now on) that `wanted` accepts, within `timeout`.
    pub fn wait(&mut self, what: &str, timeout: Duration, wanted: impl Fn(&T) -> bool) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.items.recv_timeout(left) {
                Ok(item) => {
                    self.seen.push(item.clone());
                    if wanted(&item) {
                        return item;
                    }
                }
                Err(e) => panic!("no {what} ({e}); saw {:#?}", self.seen),
            }
        }
    }

    /// Everything printed, once the process has closed its stdout.
    // Not every test crate that includes this module needs it.
    #[allow(dead_code)]
    pub fn all(mut self) -> Vec<T> {
        self.seen.extend(self.items.iter());
        self.seen
    }
}
