//! Counters, gauges and histograms in the Prometheus text exposition format
//! (version 0.0.4), written by hand: `nhc simulate` needs three metric kinds
//! and one label per family, which is a page of code, while a client crate
//! costs more binary than the whole of this (docs/fleet-simulation.md gives
//! the measurement). Updates are lock-free atomics: they run on the
//! library's dispatcher thread for every event of every device.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A value that only goes up.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters told apart by one label whose values are few and known in
/// advance (error kinds), so the series count stays bounded.
pub struct LabeledCounter {
    label: &'static str,
    values: Mutex<Vec<(String, u64)>>,
}

impl LabeledCounter {
    pub fn new(label: &'static str) -> LabeledCounter {
        LabeledCounter {
            label,
            values: Mutex::new(Vec::new()),
        }
    }

    pub fn inc(&self, value: &str) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        match values.iter_mut().find(|(v, _)| v == value) {
            Some((_, n)) => *n += 1,
            None => values.push((value.to_owned(), 1)),
        }
    }

    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        values.sort();
        values
    }
}

/// Observations counted into cumulative buckets (upper bounds in seconds).
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then +Inf; not cumulative (summed when written).
    counts: Vec<AtomicU64>,
    /// The sum in microseconds, so it stays an atomic integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Writes the exposition text, one family after another.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, v: i64) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.text, "{name} {v}");
    }

    /// A gauge family with one label.
    pub fn gauges(&mut self, name: &str, help: &str, label: &str, values: &[(&str, i64)]) {
        self.header(name, "gauge", help);
        for (value, v) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{}\"}} {v}", escape(value));
        }
    }

    /// `name` ends in `_total`, as the format's conventions want.
    pub fn counter(&mut self, name: &str, help: &str, c: &Counter) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {}", c.get());
    }

    pub fn labeled_counter(&mut self, name: &str, help: &str, c: &LabeledCounter) {
        self.header(name, "counter", help);
        for (value, n) in c.snapshot() {
            let _ = writeln!(
                self.text,
                "{name}{{{}=\"{}\"}} {n}",
                c.label,
                escape(&value)
            );
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let mut cumulative = 0;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(self.text, "{name}_sum {sum}");
        let _ = writeln!(self.text, "{name}_count {cumulative}");
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        let mut e = Exposition::default();
        e.histogram("x_seconds", "help", &h);
        let text = e.finish();
        assert!(text.contains("# TYPE x_seconds histogram\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"1\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_sum 4.05\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
    }

    #[test]
    fn labels_are_escaped_and_sorted() {
        let c = LabeledCounter::new("reason");
        c.inc("tls");
        c.inc("a\"b\\c\nd");
        c.inc("tls");
        let mut e = Exposition::default();
        e.labeled_counter("d_total", "help", &c);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "d_total{reason=\"a\\\"b\\\\c\\nd\"} 1",
                "d_total{reason=\"tls\"} 2"
            ]
        );
    }
}
