//! The `health` extension: answers `health:check` with `health:report`
//! `{"value": DeviceStatus}` (protocol section 4).
//!
//! System metrics use link's names, read from Linux's /proc, /sys and
//! statvfs. Every source is optional: a missing or unparsable file omits its
//! metrics, never fails the report. Reports are built on a blocking worker
//! thread, since statvfs on a network file system can stall. The parsers are pure functions over the
//! files' text, tested on fixtures.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::time::iso8601;

/// User metrics, read at every report.
pub type MetricsProvider = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;
/// User alarms (`{name: description}`), read at every report.
pub type AlarmsProvider = Arc<dyn Fn() -> BTreeMap<String, String> + Send + Sync>;
/// User health checks, read at every report.
pub type ChecksProvider = Arc<dyn Fn() -> BTreeMap<String, Check> + Send + Sync>;

/// One named health check in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub pass: bool,
    pub note: String,
}

/// Values the application set through `Extensions` (`report_metric`,
/// `set_alarm`, `set_check`); they win over the providers' on a shared name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    pub metrics: BTreeMap<String, f64>,
    pub alarms: BTreeMap<String, String>,
    pub checks: BTreeMap<String, Check>,
}

/// What the health report contains.
#[derive(Clone)]
pub struct HealthOptions {
    /// Report the Linux system metrics (CPU, load, memory, disk, temperature, network).
    pub system_metrics: bool,
    /// The file system whose usage is reported (`disk_*` metrics); default "/".
    pub disk_path: PathBuf,
    /// Where procfs is mounted; default "/proc".
    pub proc_dir: PathBuf,
    /// Millidegrees Celsius; default /sys/class/thermal/thermal_zone0/temp.
    pub cpu_temp_path: PathBuf,
    /// Sent as the report's `metadata`.
    pub metadata: BTreeMap<String, String>,
    pub metrics: Option<MetricsProvider>,
    pub alarms: Option<AlarmsProvider>,
    pub checks: Option<ChecksProvider>,
}

impl Default for HealthOptions {
    fn default() -> HealthOptions {
        HealthOptions {
            system_metrics: true,
            disk_path: PathBuf::from("/"),
            proc_dir: PathBuf::from("/proc"),
            cpu_temp_path: PathBuf::from("/sys/class/thermal/thermal_zone0/temp"),
            metadata: BTreeMap::new(),
            metrics: None,
            alarms: None,
            checks: None,
        }
    }
}

impl fmt::Debug for HealthOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthOptions")
            .field("system_metrics", &self.system_metrics)
            .field("disk_path", &self.disk_path)
            .field("proc_dir", &self.proc_dir)
            .field("cpu_temp_path", &self.cpu_temp_path)
            .field("metadata", &self.metadata)
            .field("metrics", &self.metrics.is_some())
            .field("alarms", &self.alarms.is_some())
            .field("checks", &self.checks.is_some())
            .finish()
    }
}

/// Cumulative CPU time from the first line of /proc/stat, in jiffies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Parses the aggregate `cpu` line of /proc/stat. Idle time is idle + iowait;
/// guest time is already inside user time, so it is not added again.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// CPU use between two samples, in percent; without a previous sample, the
/// average since boot. `None` when no time passed.
pub fn cpu_usage_percent(prev: Option<CpuTimes>, now: CpuTimes) -> Option<f64> {
    let base = prev.unwrap_or(CpuTimes { busy: 0, total: 0 });
    let total = now.total.checked_sub(base.total)?;
    let busy = now.busy.checked_sub(base.busy)?;
    if total == 0 {
        return None;
    }
    Some(round2(busy as f64 * 100.0 / total as f64))
}

/// The three load averages of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// MemTotal and MemAvailable of /proc/meminfo, in KiB. Kernels before 3.14
/// have no MemAvailable: MemFree + Buffers + Cached approximates it.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some(Ok(kb)) = rest.split_whitespace().next().map(str::parse::<u64>) {
            fields.insert(key.trim(), kb);
        }
    }
    let total = *fields.get("MemTotal")?;
    let available = match fields.get("MemAvailable") {
        Some(a) => *a,
        None => ["MemFree", "Buffers", "Cached"]
            .iter()
            .map(|k| fields.get(k).copied())
            .sum::<Option<u64>>()?,
    };
    Some((total, available.min(total)))
}

/// `mem_size_mb`, `mem_used_mb`, `mem_used_percent` (used = total - available).
pub fn memory_metrics(total_kb: u64, available_kb: u64) -> Vec<(&'static str, f64)> {
    if total_kb == 0 {
        return Vec::new();
    }
    let used = total_kb.saturating_sub(available_kb);
    vec![
        ("mem_size_mb", (total_kb / 1024) as f64),
        ("mem_used_mb", (used / 1024) as f64),
        (
            "mem_used_percent",
            round2(used as f64 * 100.0 / total_kb as f64),
        ),
    ]
}

/// A thermal zone's `temp` file (millidegrees Celsius) in degrees Celsius.
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    text.trim()
        .parse::<i64>()
        .ok()
        .map(|m| round2(m as f64 / 1000.0))
}

/// `disk_total_kb`, `disk_available_kb`, `disk_used_percentage` from statvfs
/// fields. Used percent is computed like df: used / (used + available to
/// unprivileged users), so the root-reserved blocks count as not available.
pub fn disk_metrics(
    blocks: u64,
    free: u64,
    available: u64,
    fragment_size: u64,
) -> Vec<(&'static str, f64)> {
    let kb = |n: u64| (n as u128 * fragment_size as u128 / 1024) as f64;
    let used = blocks.saturating_sub(free);
    let mut out = vec![
        ("disk_total_kb", kb(blocks)),
        ("disk_available_kb", kb(available)),
    ];
    if used + available > 0 {
        out.push((
            "disk_used_percentage",
            round2(used as f64 * 100.0 / (used + available) as f64),
        ));
    }
    out
}

/// Received and sent byte counters per interface from /proc/net/dev
/// (loopback excluded).
pub fn parse_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.is_empty() {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            Some((name.to_owned(), *fields.first()?, *fields.get(8)?))
        })
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn statvfs(path: &Path) -> Option<(u64, u64, u64, u64)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: all-zero bytes are a valid value of the plain C struct statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid struct to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between libcs
    Some((
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_frsize as u64,
    ))
}

/// Builds reports; keeps the previous CPU sample for usage deltas.
pub(crate) struct HealthSampler {
    opts: HealthOptions,
    prev_cpu: Option<CpuTimes>,
}

impl HealthSampler {
    pub fn new(opts: HealthOptions) -> HealthSampler {
        HealthSampler {
            opts,
            prev_cpu: None,
        }
    }

    fn read(&self, path: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    /// Linux metrics; missing sources are skipped.
    pub fn system_metrics(&mut self) -> BTreeMap<String, f64> {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            m.insert(k.to_owned(), v);
        };
        let proc_dir = self.opts.proc_dir.clone();
        if let Some(now) = self
            .read(proc_dir.join("stat"))
            .and_then(|s| parse_cpu_times(&s))
        {
            if let Some(pct) = cpu_usage_percent(self.prev_cpu, now) {
                put("cpu_usage_percent", pct);
            }
            self.prev_cpu = Some(now);
        }
        if let Some((l1, l5, l15)) = self
            .read(proc_dir.join("loadavg"))
            .and_then(|s| parse_loadavg(&s))
        {
            put("load_1min", l1);
            put("load_5min", l5);
            put("load_15min", l15);
        }
        if let Some((total, avail)) = self
            .read(proc_dir.join("meminfo"))
            .and_then(|s| parse_meminfo(&s))
        {
            for (k, v) in memory_metrics(total, avail) {
                put(k, v);
            }
        }
        if let Some((blocks, free, avail, frsize)) = statvfs(&self.opts.disk_path) {
            for (k, v) in disk_metrics(blocks, free, avail, frsize) {
                put(k, v);
            }
        }
        if let Some(t) = self
            .read(&self.opts.cpu_temp_path)
            .and_then(|s| parse_millidegrees(&s))
        {
            put("cpu_temp", t);
        }
        if let Some(text) = self.read(proc_dir.join("net/dev")) {
            for (iface, rx, tx) in parse_net_dev(&text) {
                put(&format!("{iface}_bytes_received_total"), rx as f64);
                put(&format!("{iface}_bytes_sent_total"), tx as f64);
            }
        }
        m
    }

    /// The `health:report` payload. `reported` holds what the application
    /// set through `Extensions`; it wins over providers and system metrics.
    pub fn report(&mut self, reported: &Reported, now: SystemTime) -> Value {
        let mut metrics = if self.opts.system_metrics {
            self.system_metrics()
        } else {
            BTreeMap::new()
        };
        if let Some(provider) = &self.opts.metrics {
            metrics.extend(provider());
        }
        metrics.extend(reported.metrics.iter().map(|(k, v)| (k.clone(), *v)));
        // JSON has no NaN or infinity; such a value would become null.
        let metrics: Map<String, Value> = metrics
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k, json!(v)))
            .collect();
        let mut alarms = self.opts.alarms.as_ref().map(|f| f()).unwrap_or_default();
        alarms.extend(reported.alarms.clone());
        let mut checks = self.opts.checks.as_ref().map(|f| f()).unwrap_or_default();
        checks.extend(reported.checks.clone());
        let checks: Map<String, Value> = checks
            .into_iter()
            .map(|(k, c)| (k, json!({"pass": c.pass, "note": c.note})))
            .collect();
        json!({
            "value": {
                "timestamp": iso8601(now),
                "metadata": self.opts.metadata,
                "alarms": alarms,
                "metrics": metrics,
                "checks": checks,
                "connectivity": {},
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 150 1120 16250 520 0 30 0 0 0\n\
                        cpu0 2000 100 500 8000 300 0 20 0 0 0\n\
                        intr 114930548 113199788 3 0 5 263 0 4 [...]\n";

    #[test]
    fn cpu_times_from_proc_stat() {
        let t = parse_cpu_times(STAT).expect("parses");
        assert_eq!(t.total, 4705 + 150 + 1120 + 16250 + 520 + 30);
        assert_eq!(t.busy, 4705 + 150 + 1120 + 30);
        assert_eq!(parse_cpu_times("intr 1 2 3\n"), None);
        assert_eq!(parse_cpu_times("cpu  a b c d\n"), None);
        assert_eq!(parse_cpu_times(""), None);
    }

    #[test]
    fn cpu_usage_between_samples() {
        let a = CpuTimes {
            busy: 100,
            total: 1000,
        };
        let b = CpuTimes {
            busy: 175,
            total: 1100,
        };
        assert_eq!(cpu_usage_percent(Some(a), b), Some(75.0));
        assert_eq!(cpu_usage_percent(None, a), Some(10.0));
        assert_eq!(cpu_usage_percent(Some(a), a), None);
        // A counter that went backwards (a different machine's file) is not a delta.
        assert_eq!(cpu_usage_percent(Some(b), a), None);
    }

    #[test]
    fn load_averages() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some((0.52, 0.58, 0.59))
        );
        assert_eq!(parse_loadavg("0.52 x"), None);
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn meminfo_with_and_without_mem_available() {
        let modern = "MemTotal:        2048000 kB\nMemFree:          100000 kB\n\
                      MemAvailable:     512000 kB\nBuffers:           1000 kB\n";
        assert_eq!(parse_meminfo(modern), Some((2_048_000, 512_000)));
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old), Some((1000, 400)));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn memory_metric_values() {
        let m: BTreeMap<_, _> = memory_metrics(2_048_000, 512_000).into_iter().collect();
        assert_eq!(m["mem_size_mb"], 2000.0);
        assert_eq!(m["mem_used_mb"], 1500.0);
        assert_eq!(m["mem_used_percent"], 75.0);
        assert!(memory_metrics(0, 0).is_empty());
    }

    #[test]
    fn thermal_zone_temperature() {
        assert_eq!(parse_millidegrees("48312\n"), Some(48.31));
        assert_eq!(parse_millidegrees("-5000"), Some(-5.0));
        assert_eq!(parse_millidegrees("hot"), None);
    }

    #[test]
    fn disk_metric_values() {
        // 1000 blocks of 4 KiB, 300 free of which 250 available to users.
        let m: BTreeMap<_, _> = disk_metrics(1000, 300, 250, 4096).into_iter().collect();
        assert_eq!(m["disk_total_kb"], 4000.0);
        assert_eq!(m["disk_available_kb"], 1000.0);
        assert_eq!(m["disk_used_percentage"], round2(700.0 * 100.0 / 950.0));
        let empty: BTreeMap<_, _> = disk_metrics(0, 0, 0, 4096).into_iter().collect();
        assert!(!empty.contains_key("disk_used_percentage"));
    }

    #[test]
    fn network_counters() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  \
            eth0: 123456 100 0 0 0 0 0 0 654321 90 0 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(text),
            vec![("eth0".to_owned(), 123_456, 654_321)]
        );
    }

    #[test]
    fn report_from_fixture_proc_dir() {
        let dir = std::env::temp_dir().join(format!("nhc-health-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net")).expect("temp dir");
        std::fs::write(dir.join("stat"), STAT).expect("write");
        std::fs::write(dir.join("loadavg"), "1.00 0.50 0.25 1/1 1\n").expect("write");
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal: 4096 kB\nMemAvailable: 1024 kB\n",
        )
        .expect("write");
        let opts = HealthOptions {
            proc_dir: dir.clone(),
            cpu_temp_path: dir.join("no-such-thermal-zone"),
            metadata: [("site".to_owned(), "lab".to_owned())].into(),
            metrics: Some(Arc::new(|| vec![("queue_depth".to_owned(), 3.0)])),
            checks: Some(Arc::new(|| {
                [("db", true, "ok"), ("disk", true, "")]
                    .map(|(n, pass, note)| (n.to_owned(), check(pass, note)))
                    .into()
            })),
            alarms: Some(Arc::new(|| [("Boot".to_owned(), "slow".to_owned())].into())),
            ..HealthOptions::default()
        };
        let mut sampler = HealthSampler::new(opts);
        let reported = Reported {
            metrics: [("custom".to_owned(), 1.5), ("bad".to_owned(), f64::NAN)].into(),
            alarms: [("Battery".to_owned(), "low".to_owned())].into(),
            checks: [("db".to_owned(), check(false, "unreachable"))].into(),
        };
        let r = sampler.report(&reported, std::time::UNIX_EPOCH);
        let v = &r["value"];
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["metadata"], json!({"site": "lab"}));
        assert_eq!(
            v["checks"],
            json!({"db": {"pass": false, "note": "unreachable"}, "disk": {"pass": true, "note": ""}}),
            "a check the application set wins over the provider's"
        );
        assert_eq!(v["alarms"], json!({"Boot": "slow", "Battery": "low"}));
        assert_eq!(v["connectivity"], json!({}));
        let m = &v["metrics"];
        assert_eq!(m["load_1min"], 1.0);
        assert_eq!(m["mem_used_percent"], 75.0);
        assert_eq!(m["queue_depth"], 3.0);
        assert_eq!(m["custom"], 1.5);
        assert!(m.get("bad").is_none(), "non-finite values are left out");
        assert!(m.get("cpu_usage_percent").is_some());
        assert!(
            m.get("cpu_temp").is_none(),
            "missing file => metric omitted"
        );
        assert!(m.get("disk_total_kb").is_some(), "statvfs of / works");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn check(pass: bool, note: &str) -> Check {
        Check {
            pass,
            note: note.into(),
        }
    }
}
