//! The `log` facade's backend: records on stderr. Under systemd (stderr
//! connected to the journal, `JOURNAL_STREAM` set) lines carry no timestamp
//! (journald adds its own) and start with the `<N>` syslog priority prefix
//! journald reads, so `journalctl -p warning` works; elsewhere they carry
//! seconds since the epoch and the level.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    journal: bool,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.journal {
            let priority = match record.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            writeln!(err, "<{priority}>{}", record.args())
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            writeln!(
                err,
                "{}.{:03} {:5} {}",
                now.as_secs(),
                now.subsec_millis(),
                record.level(),
                record.args()
            )
        };
    }

    fn flush(&self) {}
}

/// Whether stderr goes to the journal.
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger {
        journal: under_journald(),
    }));
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}
