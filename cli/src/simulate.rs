//! `nhc simulate`: one shard of a simulated fleet in one process, for
//! load-testing a NervesHub. Devices `<prefix><n>` for the shard's slice of
//! `n` (see `shard`), started at a bounded rate, answering update offers as
//! the behaviour mix says, with optional churn and health reports. Prints
//! one summary line per second and serves Prometheus metrics.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::Device;
use nerves_hub_channel::ConnectionState;

use crate::args::{Extension, SimulateArgs};
use crate::behaviour::{splitmix64, Plan};
use crate::connection::device_config;
use crate::fleet_device::{answer_offers, Answers, Tracker};
use crate::fleet_metrics::FleetMetrics;
use crate::shard::Shard;
use crate::signals;

pub fn run(o: SimulateArgs) -> Result<(), String> {
    let fleet = u64::from(o.devices);
    let shard = Shard::new(o.shards, o.shard, fleet)?;
    let slice = shard.range(fleet);
    if o.connection.shared_secret.is_none() && o.cert_dir.is_none() && fleet > 1 {
        return Err("simulating several devices needs distinct identities: \
                    --shared-secret with a product key, or --cert-dir"
            .into());
    }
    let mut knobs = o.knobs.clone();
    if o.health_interval.is_some() && !knobs.extensions.contains(&Extension::Health) {
        knobs.extensions.push(Extension::Health);
    }
    nerves_hub_channel::runtime::configure(o.workers as usize).map_err(|e| e.to_string())?;
    let metrics = Arc::new(FleetMetrics::new(shard));
    metrics.devices.set((slice.end - slice.start) as i64);
    if let Some(addr) = &o.metrics_listen {
        let render = metrics.clone();
        let bound = crate::metrics_http::serve(addr, Arc::new(move || render.render()))?;
        say(format_args!("metrics on http://{bound}/metrics"));
    }
    let plan = Plan::new(o.mix, o.seed, fleet);
    let (offers, offers_rx) = mpsc::channel();
    let mut devices = Vec::new();
    let mut behaviours = Vec::new();
    for (slot, n) in slice.enumerate() {
        let identity = format!("{}{n}", o.prefix);
        let mut config = device_config(
            &o.connection,
            &knobs,
            o.cert_dir.as_deref(),
            Some(&identity),
        )?;
        config.metadata.set("nerves_fw_product", "nhc-simulate");
        let device = Device::new(config).map_err(|e| format!("{identity}: {e}"))?;
        let behaviour = plan.behaviour(n);
        metrics.behaviour(behaviour).inc();
        let mut tracker = Tracker::new(metrics.clone(), slot, behaviour, offers.clone());
        device.set_handler(Some(Box::new(move |event| tracker.see(event))));
        devices.push(device);
        behaviours.push(behaviour);
    }
    drop(offers);
    let devices = Arc::new(devices);
    let answers = Answers {
        behaviours,
        reschedule_after: Duration::from_secs(o.reschedule_after),
        metrics: metrics.clone(),
    };
    spawn("nhc-offers", {
        let devices = devices.clone();
        move || answer_offers(devices, offers_rx, answers)
    })?;
    signals::install();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    spawn("nhc-ramp", {
        let (devices, metrics, stop) = (devices.clone(), metrics.clone(), stop.clone());
        move || ramp(&devices, o.connect_rate, &metrics, &stop)
    })?;
    if let Some(rate) = o.churn_rate {
        let (devices, metrics, stop) = (devices.clone(), metrics.clone(), stop.clone());
        let how = Churn {
            rate,
            downtime: Duration::from_secs_f64(o.churn_downtime),
            seed: o.seed,
        };
        spawn("nhc-churn", move || churn(&devices, how, &metrics, &stop))?;
    }
    if let Some(secs) = o.health_interval {
        let (devices, metrics, stop) = (devices.clone(), metrics.clone(), stop.clone());
        spawn("nhc-health", move || {
            health(&devices, Duration::from_secs(secs), &metrics, &stop)
        })?;
    }
    let result = summarise(&o, &metrics, started);
    stop.store(true, Ordering::Relaxed);
    for device in devices.iter() {
        device.close();
    }
    result
}

/// The one-line-per-second summary, until a signal, the duration, or (with
/// --exit-when-joined) every device joined.
fn summarise(o: &SimulateArgs, metrics: &FleetMetrics, started: Instant) -> Result<(), String> {
    let devices_wanted = metrics.devices.get();
    let mut all_joined_at = None;
    let mut next_line = started + Duration::from_secs(1);
    loop {
        if let Some(signal) = signals::stop_requested() {
            say(format_args!("{signal}: stopping"));
            return Ok(());
        }
        let now = Instant::now();
        if now < next_line {
            std::thread::sleep((next_line - now).min(Duration::from_millis(100)));
            continue;
        }
        next_line += Duration::from_secs(1);
        // Read before the clock, so `started <= rate * elapsed` holds.
        let connects_started = metrics.connects_started.get();
        let joined = metrics.joined.get();
        if joined >= devices_wanted && all_joined_at.is_none() {
            all_joined_at = Some(started.elapsed());
        }
        say(format_args!(
            "devices {} connected {} joined {} auth_errors {} started {} rss_kib {} elapsed_s {:.2}{}",
            devices_wanted,
            metrics.connected.get(),
            joined,
            metrics.auth_errors.get(),
            connects_started,
            rss_kib().map_or("?".into(), |k| k.to_string()),
            started.elapsed().as_secs_f64(),
            all_joined_at.map_or(String::new(), |t| format!(
                " all_joined_after_s {:.2}",
                t.as_secs_f64()
            )),
        ));
        let over = o
            .duration
            .is_some_and(|d| started.elapsed() >= Duration::from_secs(d));
        if (o.exit_when_joined && all_joined_at.is_some()) || over {
            break;
        }
    }
    match all_joined_at {
        Some(_) => Ok(()),
        None => Err(format!(
            "only {} of {} devices joined",
            metrics.joined.get(),
            devices_wanted
        )),
    }
}

/// A stdout line; a closed stdout (the reader went away) does not stop the
/// simulation, which also reports on /metrics.
fn say(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

/// Sleeps until `due` in short steps; false if asked to stop meanwhile.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}

/// Starts device `i` no earlier than `i / rate` seconds after the ramp's
/// start, so `started <= rate * elapsed + 1` at any time.
fn ramp(devices: &[Device], rate: Option<f64>, metrics: &FleetMetrics, stop: &AtomicBool) {
    let start = Instant::now();
    for (i, device) in devices.iter().enumerate() {
        if let Some(rate) = rate {
            if !sleep_until(start + Duration::from_secs_f64(i as f64 / rate), stop) {
                return;
            }
        }
        if let Err(e) = device.connect() {
            log::warn!("device {i}: cannot connect: {e}");
        }
        metrics.connects_started.inc();
    }
}

/// Disconnects `rate` connected devices per second, chosen by the seed;
/// each stays offline for `downtime`, like a device that reboots, then
/// connects again.
fn churn(devices: &[Device], churn: Churn, metrics: &FleetMetrics, stop: &AtomicBool) {
    let start = Instant::now();
    let mut offline: VecDeque<(Instant, usize)> = VecDeque::new();
    let (mut k, mut next_churn) = (0u64, start);
    loop {
        let due = offline
            .front()
            .map_or(next_churn, |(back, _)| (*back).min(next_churn));
        if !sleep_until(due, stop) {
            return;
        }
        let now = Instant::now();
        while let Some(&(back, slot)) = offline.front() {
            if back > now {
                break;
            }
            offline.pop_front();
            if let Err(e) = devices[slot].connect() {
                log::warn!("device {slot}: cannot reconnect: {e}");
            }
        }
        if now < next_churn {
            continue;
        }
        let pick = splitmix64(churn.seed ^ k.wrapping_mul(0x9e37_79b9)) % devices.len() as u64;
        k += 1;
        next_churn = start + Duration::from_secs_f64(k as f64 / churn.rate);
        let slot = pick as usize;
        if devices[slot].state() != ConnectionState::Connected {
            continue;
        }
        if devices[slot].disconnect().is_ok() {
            metrics.churned.inc();
            offline.push_back((now + churn.downtime, slot));
        }
    }
}

#[derive(Clone, Copy)]
struct Churn {
    rate: f64,
    downtime: Duration,
    seed: u64,
}

/// Each device's health report every `interval`, spread evenly over it.
fn health(devices: &[Device], interval: Duration, metrics: &FleetMetrics, stop: &AtomicBool) {
    let start = Instant::now();
    let step = interval.as_secs_f64() / devices.len() as f64;
    for k in 0u64.. {
        // The first round starts after one interval, as a timer would.
        let due = start + interval + Duration::from_secs_f64(k as f64 * step);
        if !sleep_until(due, stop) {
            return;
        }
        let device = &devices[(k % devices.len() as u64) as usize];
        if let Some(Ok(true)) = device.extensions().map(|e| e.send_health_report()) {
            metrics.health_reports.inc();
        }
    }
}

/// Resident memory of this process, from /proc (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
