//! What one `nhc simulate` shard counts, and how it reads on `/metrics`.
//! Every name starts with `nhc_sim_`; sums over the shards' series are the
//! fleet's totals (docs/fleet-simulation.md has the PromQL).

use crate::behaviour::Behaviour;
use crate::metrics::{Counter, Exposition, Gauge, Histogram, LabeledCounter};
use crate::shard::Shard;

/// Connect + TLS + join: from a few milliseconds on a LAN to the timeouts
/// of an overloaded server.
const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Whole updates: seconds to an hour.
const UPDATE_BOUNDS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

pub struct FleetMetrics {
    pub shard: Shard,
    pub devices: Gauge,
    pub connected: Gauge,
    pub joined: Gauge,
    /// Devices of this shard per behaviour (fixed at start).
    pub behaviours: [(Behaviour, Gauge); 3],
    pub connects_started: Counter,
    pub connect_failures: LabeledCounter,
    pub auth_errors: Counter,
    pub disconnects: LabeledCounter,
    pub reconnects: Counter,
    pub churned: Counter,
    pub updates_received: Counter,
    pub updates_applied: Counter,
    pub updates_failed: Counter,
    pub updates_declined: Counter,
    pub updates_rescheduled: Counter,
    pub bytes_downloaded: Counter,
    pub health_reports: Counter,
    pub join_latency: Histogram,
    pub update_duration: Histogram,
}

impl FleetMetrics {
    pub fn new(shard: Shard) -> FleetMetrics {
        FleetMetrics {
            shard,
            devices: Gauge::default(),
            connected: Gauge::default(),
            joined: Gauge::default(),
            behaviours: Behaviour::ALL.map(|b| (b, Gauge::default())),
            connects_started: Counter::default(),
            connect_failures: LabeledCounter::new("reason"),
            auth_errors: Counter::default(),
            disconnects: LabeledCounter::new("reason"),
            reconnects: Counter::default(),
            churned: Counter::default(),
            updates_received: Counter::default(),
            updates_applied: Counter::default(),
            updates_failed: Counter::default(),
            updates_declined: Counter::default(),
            updates_rescheduled: Counter::default(),
            bytes_downloaded: Counter::default(),
            health_reports: Counter::default(),
            join_latency: Histogram::new(LATENCY_BOUNDS),
            update_duration: Histogram::new(UPDATE_BOUNDS),
        }
    }

    pub fn behaviour(&self, b: Behaviour) -> &Gauge {
        let slot = self.behaviours.iter().find(|(x, _)| *x == b);
        // ALL holds every variant, so the find cannot miss.
        &slot.unwrap_or(&self.behaviours[0]).1
    }

    /// The exposition text of this shard.
    pub fn render(&self) -> String {
        let mut e = Exposition::default();
        e.gauges(
            "nhc_sim_shard_info",
            "This process's shard index (the label) out of nhc_sim_shards.",
            "shard",
            &[(&self.shard.index.to_string(), 1)],
        );
        e.gauge(
            "nhc_sim_shards",
            "How many shards the fleet is split into.",
            i64::from(self.shard.count),
        );
        e.gauge(
            "nhc_sim_devices",
            "Simulated devices in this shard.",
            self.devices.get(),
        );
        e.gauge(
            "nhc_sim_connected",
            "Devices with an open connection.",
            self.connected.get(),
        );
        e.gauge(
            "nhc_sim_joined",
            "Devices whose device channel is joined.",
            self.joined.get(),
        );
        let behaviours: Vec<(&str, i64)> = self
            .behaviours
            .iter()
            .map(|(b, g)| (b.as_str(), g.get()))
            .collect();
        e.gauges(
            "nhc_sim_behaviour_devices",
            "Devices per answer to update offers.",
            "behaviour",
            &behaviours,
        );
        let counters = [
            (
                "nhc_sim_connects_started_total",
                "Devices started (paced by --connect-rate).",
                &self.connects_started,
            ),
            (
                "nhc_sim_auth_errors_total",
                "Connections refused with 401.",
                &self.auth_errors,
            ),
            (
                "nhc_sim_reconnects_total",
                "Connections made after a device's first.",
                &self.reconnects,
            ),
            (
                "nhc_sim_churn_total",
                "Disconnects made on purpose (--churn-rate).",
                &self.churned,
            ),
            (
                "nhc_sim_updates_received_total",
                "Update offers received.",
                &self.updates_received,
            ),
            (
                "nhc_sim_updates_applied_total",
                "Updates downloaded, verified and written to the sink.",
                &self.updates_applied,
            ),
            (
                "nhc_sim_updates_failed_total",
                "Accepted updates that failed.",
                &self.updates_failed,
            ),
            (
                "nhc_sim_updates_declined_total",
                "Offers answered ignored.",
                &self.updates_declined,
            ),
            (
                "nhc_sim_updates_rescheduled_total",
                "Offers answered rescheduled.",
                &self.updates_rescheduled,
            ),
            (
                "nhc_sim_download_bytes_total",
                "Verified firmware bytes downloaded.",
                &self.bytes_downloaded,
            ),
            (
                "nhc_sim_health_reports_total",
                "Health reports sent on the --health-interval schedule.",
                &self.health_reports,
            ),
        ];
        for (name, help, c) in counters {
            e.counter(name, help, c);
        }
        e.labeled_counter(
            "nhc_sim_disconnects_total",
            "Open connections that ended, by error kind.",
            &self.disconnects,
        );
        e.labeled_counter(
            "nhc_sim_connect_failures_total",
            "Connection attempts that failed before opening, by error kind.",
            &self.connect_failures,
        );
        e.histogram(
            "nhc_sim_join_latency_seconds",
            "From a connection attempt's start to the device channel's join (TCP, TLS, upgrade, join).",
            &self.join_latency,
        );
        e.histogram(
            "nhc_sim_update_duration_seconds",
            "From accepting an offer to the update's end.",
            &self.update_duration,
        );
        e.finish()
    }
}
