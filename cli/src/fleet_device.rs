//! One simulated device's event handler: turns its events into the shard's
//! metrics, and hands update offers to the decision thread, which answers
//! them the way the device's behaviour says. Handlers run on the library's
//! dispatcher thread (shared by every device), so they only count and
//! forward; the decision thread holds the devices (a handler holding its own
//! device would keep it alive forever).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::device::DEVICE_TOPIC;
use nerves_hub_channel::nerves_hub::update::{ImageSink, SinkSpec, UpdateInfo, UpdateOptions};
use nerves_hub_channel::nerves_hub::{Device, DeviceEvent};
use nerves_hub_channel::Event;

use crate::behaviour::Behaviour;
use crate::fleet_metrics::FleetMetrics;

/// An offer to answer: the device's place in the shard's list, and the offer.
pub type Offer = (usize, UpdateInfo);

/// One device's view, so the shared gauges move only on real transitions.
pub struct Tracker {
    pub metrics: Arc<FleetMetrics>,
    pub slot: usize,
    pub behaviour: Behaviour,
    pub offers: Sender<Offer>,
    connected: bool,
    joined: bool,
    ever_connected: bool,
    attempt_started: Option<Instant>,
    update_started: Option<Instant>,
}

impl Tracker {
    pub fn new(
        metrics: Arc<FleetMetrics>,
        slot: usize,
        behaviour: Behaviour,
        offers: Sender<Offer>,
    ) -> Tracker {
        Tracker {
            metrics,
            slot,
            behaviour,
            offers,
            connected: false,
            joined: false,
            ever_connected: false,
            attempt_started: None,
            update_started: None,
        }
    }

    /// Runs on the dispatcher thread.
    pub fn see(&mut self, event: DeviceEvent) {
        let m = &*self.metrics;
        match event {
            DeviceEvent::Socket(event) => self.see_socket(&event),
            DeviceEvent::UpdateAvailable(info) => {
                m.updates_received.inc();
                if self.behaviour == Behaviour::Accept {
                    self.update_started = Some(Instant::now());
                }
                // The receiver lives as long as the devices do.
                let _ = self.offers.send((self.slot, info));
            }
            DeviceEvent::UpdateFinished { ok, .. } => {
                if ok {
                    m.updates_applied.inc();
                } else {
                    m.updates_failed.inc();
                }
                if let Some(started) = self.update_started.take() {
                    m.update_duration.observe(started.elapsed());
                }
            }
            _ => {}
        }
    }

    fn see_socket(&mut self, event: &Event) {
        let m = &*self.metrics;
        match event {
            Event::Connecting { .. } => self.attempt_started = Some(Instant::now()),
            Event::Connected => {
                if self.ever_connected {
                    m.reconnects.inc();
                }
                self.ever_connected = true;
                self.set_connected(true);
            }
            Event::Disconnected { reason, .. } => {
                if self.connected {
                    m.disconnects.inc(reason.kind());
                } else {
                    m.connect_failures.inc(reason.kind());
                }
                self.set_connected(false);
                self.set_joined(false);
            }
            Event::Closed => {
                self.set_connected(false);
                self.set_joined(false);
            }
            Event::AuthError { .. } => m.auth_errors.inc(),
            Event::Joined { topic, .. } if topic == DEVICE_TOPIC => {
                // A rejoin on the same connection is not a connect.
                if let Some(started) = self.attempt_started.take() {
                    m.join_latency.observe(started.elapsed());
                }
                self.set_joined(true);
            }
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
            bump(&self.metrics.connected, now);
        }
    }

    fn set_joined(&mut self, now: bool) {
        if now != self.joined {
            self.joined = now;
            bump(&self.metrics.joined, now);
        }
    }
}

fn bump(g: &crate::metrics::Gauge, up: bool) {
    if up {
        g.inc()
    } else {
        g.dec()
    }
}

/// Counts the verified bytes and keeps none: the download, checksum and
/// chunk checks run as on a real device, without the disk.
pub struct DiscardSink {
    pub metrics: Arc<FleetMetrics>,
}

impl ImageSink for DiscardSink {
    fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
        Ok(())
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        self.metrics.bytes_downloaded.add(chunk.len() as u64);
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        Ok(())
    }

    fn abort(&self, _reason: &str) {}
}

/// How the decision thread answers.
pub struct Answers {
    pub behaviours: Vec<Behaviour>,
    pub reschedule_after: Duration,
    pub metrics: Arc<FleetMetrics>,
}

/// The decision thread: answers each offer until every sender is gone.
pub fn answer_offers(devices: Arc<Vec<Device>>, offers: Receiver<Offer>, answers: Answers) {
    let sink = SinkSpec::Custom(Arc::new(DiscardSink {
        metrics: answers.metrics.clone(),
    }));
    let m = &answers.metrics;
    for (slot, info) in offers {
        let (Some(device), Some(behaviour)) = (devices.get(slot), answers.behaviours.get(slot))
        else {
            continue;
        };
        let result = match behaviour {
            Behaviour::Accept => device.apply_update(&info, UpdateOptions::new(sink.clone())),
            Behaviour::Decline => {
                m.updates_declined.inc();
                device.ignore_update("declined by nhc simulate's behaviour mix")
            }
            Behaviour::Reschedule => {
                m.updates_rescheduled.inc();
                device.reschedule_update(
                    answers.reschedule_after,
                    Some("rescheduled by nhc simulate's behaviour mix"),
                )
            }
        };
        if let Err(e) = result {
            log::warn!(
                "device {slot}: cannot {} the update: {e}",
                behaviour.as_str()
            );
            if *behaviour == Behaviour::Accept {
                m.updates_failed.inc();
            }
        }
    }
}
