//! `nhc simulate`: N devices with distinct identities in one process, for
//! load-testing a NervesHub; reports connected and joined counts and memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::device::DEVICE_TOPIC;
use nerves_hub_channel::nerves_hub::{Device, DeviceEvent};
use nerves_hub_channel::Event;

use crate::args::SimulateArgs;
use crate::connection::device_config;

#[derive(Default)]
struct Counts {
    connected: AtomicUsize,
    joined: AtomicUsize,
    auth_errors: AtomicUsize,
}

pub fn run(o: SimulateArgs) -> Result<(), String> {
    let devices_wanted = o.devices as usize;
    if o.connection.shared_secret.is_none() && o.cert_dir.is_none() && devices_wanted > 1 {
        return Err("simulating several devices needs distinct identities: \
                    --shared-secret with a product key, or --cert-dir"
            .into());
    }
    nerves_hub_channel::runtime::configure(o.workers as usize).map_err(|e| e.to_string())?;
    let counts = Arc::new(Counts::default());
    let mut devices = Vec::with_capacity(devices_wanted);
    let started = Instant::now();
    for n in 0..devices_wanted {
        let identity = format!("{}{n}", o.prefix);
        let mut config = device_config(
            &o.connection,
            &o.knobs,
            o.cert_dir.as_deref(),
            Some(&identity),
        )?;
        config.metadata.set("nerves_fw_product", "nhc-simulate");
        let device = Device::new(config).map_err(|e| format!("{identity}: {e}"))?;
        let mut tracker = Tracker {
            counts: counts.clone(),
            connected: false,
            joined: false,
        };
        device.set_handler(Some(Box::new(move |event| tracker.see(&event))));
        device.connect().map_err(|e| format!("{identity}: {e}"))?;
        devices.push(device);
    }
    let mut all_joined_at = None;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let joined = counts.joined.load(Ordering::Relaxed);
        if joined >= devices_wanted && all_joined_at.is_none() {
            all_joined_at = Some(started.elapsed());
        }
        println!(
            "devices {} connected {} joined {} auth_errors {} rss_kib {} elapsed_s {:.1}{}",
            devices_wanted,
            counts.connected.load(Ordering::Relaxed),
            joined,
            counts.auth_errors.load(Ordering::Relaxed),
            rss_kib().map_or("?".into(), |k| k.to_string()),
            started.elapsed().as_secs_f64(),
            all_joined_at.map_or(String::new(), |t| format!(
                " all_joined_after_s {:.2}",
                t.as_secs_f64()
            )),
        );
        let over = o
            .duration
            .is_some_and(|d| started.elapsed() >= Duration::from_secs(d));
        if (o.exit_when_joined && all_joined_at.is_some()) || over {
            break;
        }
    }
    for device in &devices {
        device.close();
    }
    match all_joined_at {
        Some(_) => Ok(()),
        None => Err(format!(
            "only {} of {} devices joined",
            counts.joined.load(Ordering::Relaxed),
            devices_wanted
        )),
    }
}

/// One device's view, so the shared counts move only on real transitions.
struct Tracker {
    counts: Arc<Counts>,
    connected: bool,
    joined: bool,
}

impl Tracker {
    /// Runs on the dispatcher thread.
    fn see(&mut self, event: &DeviceEvent) {
        let DeviceEvent::Socket(event) = event else {
            return;
        };
        match event {
            Event::Connected => self.set_connected(true),
            Event::Disconnected { .. } | Event::Closed => {
                self.set_connected(false);
                self.set_joined(false);
            }
            Event::AuthError { .. } => {
                self.counts.auth_errors.fetch_add(1, Ordering::Relaxed);
            }
            Event::Joined { topic, .. } if topic == DEVICE_TOPIC => self.set_joined(true),
            Event::ChannelError { topic, .. } | Event::ChannelClosed { topic, .. }
                if topic == DEVICE_TOPIC =>
            {
                self.set_joined(false)
            }
            _ => {}
        }
    }

    fn set_connected(&mut self, now: bool) {
        if now != self.connected {
            self.connected = now;
            bump(&self.counts.connected, now);
        }
    }

    fn set_joined(&mut self, now: bool) {
        if now != self.joined {
            self.joined = now;
            bump(&self.counts.joined, now);
        }
    }
}

fn bump(counter: &AtomicUsize, up: bool) {
    if up {
        counter.fetch_add(1, Ordering::Relaxed);
    } else {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resident memory of this process, from /proc (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
