//! NervesHub extensions (`extensions` topic, protocol section 4): optional
//! features the server turns on per product and device.
//!
//! Negotiation: when the server pushes `extensions:get` on `device`, the
//! Device calls [`Extensions::on_extensions_get`], which joins `extensions`
//! with `{"<name>": "0.0.1"}` for each enabled extension. The join reply is
//! the array of names the server attaches; for each one we implement we push
//! `<name>:attached {}`, for any other `<name>:error
//! {"reason":"unknown_extension"}`. Only then does the server start using it.
//! Later `attach` / `detach` pushes (`{"extensions": [..] | "all" | "name"}`)
//! start or stop extensions (`detach` is answered with `<name>:detached`). A
//! reply `{"status":"error","response":"detach"}` to an `<name>:attached`
//! push means the server will not use that extension: it is detached
//! quietly. Every (re)join of the channel starts negotiation afresh, and an
//! errored or closed channel detaches everything.
//!
//! Only the `attached` pushes are tracked; the others are casts, since the
//! server does not reply to them (and the rare `detach` error reply to a
//! cast would have nowhere to go).

pub mod geo;
pub mod health;
pub mod local_shell;
pub mod logging;
pub mod time;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::event::{Event, PushId, PushOutcome};
use crate::message::Payload;
use crate::nerves_hub::shell::ShellOptions;
use crate::{Channel, JoinParams, Socket};

pub use geo::{GeoProvider, Location};
pub use health::{Check, HealthOptions, Reported};
pub use logging::LogLevel;

use health::HealthSampler;
use local_shell::LocalShell;
use logging::{Admit, LogLimiter};

pub const HEALTH: &str = "health";
pub const GEO: &str = "geo";
pub const LOGGING: &str = "logging";
pub const LOCAL_SHELL: &str = local_shell::NAME;
/// The version offered for each extension (the server matches `~> 0.0.1`).
pub const VERSION: &str = "0.0.1";

/// How long extension pushes may wait for the connection.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `<name>:attached` push waits for a possible `detach` reply
/// (the server sends none when all is well, so this always ends in a timeout).
const ATTACH_REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// Shortest pause of the dropped-lines summary timer.
const MIN_FLUSH_DELAY: Duration = Duration::from_millis(50);

/// Which extensions the device offers.
#[derive(Clone, Default)]
pub struct ExtensionsOptions {
    /// `Some`: offer `health` and answer `health:check` with this report.
    pub health: Option<HealthOptions>,
    /// `Some`: offer `geo` and answer `geo:location:request` from this provider.
    pub geo: Option<Arc<dyn GeoProvider>>,
    /// Offer `logging` (lines sent with [`Extensions::log`]).
    pub logging: bool,
    /// `Some`: offer `local_shell`, a shell on a pty started when the server
    /// asks (Linux only). Off by default, like the console shell: it gives
    /// whoever may use the device's console in NervesHub a shell as the
    /// device's user.
    pub local_shell: Option<ShellOptions>,
}

impl fmt::Debug for ExtensionsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionsOptions")
            .field("health", &self.health)
            .field("geo", &self.geo.is_some())
            .field("logging", &self.logging)
            .field("local_shell", &self.local_shell)
            .finish()
    }
}

/// What happened on the extensions channel, for the application's information
/// (the extensions already answered the server).
#[derive(Debug, Clone, PartialEq)]
pub enum ExtensionEvent {
    /// The channel (re)joined: the server attached `attached`; `rejected` are
    /// names it returned that this device does not implement (answered with
    /// `<name>:error`).
    Negotiated {
        attached: Vec<String>,
        rejected: Vec<String>,
    },
    /// Extensions started later (server `attach`).
    Attached { names: Vec<String> },
    /// Extensions stopped: server `detach`, a `detach` reply, or the channel
    /// errored/closed (everything detached until the next join).
    Detached { names: Vec<String> },
    /// The server asked for a health report; it is being sent.
    HealthCheck,
    /// The server asked for the location; the answer is being sent.
    LocationRequest,
    /// The server asked `local_shell` to start (`request_shell`) or stop
    /// (`kill_shell`) the shell; it is done. Input and resizes are not reported.
    LocalShell { event: String },
    /// Any other message on the extensions topic.
    Other { event: String, payload: Payload },
}

#[derive(Default)]
struct State {
    attached: BTreeSet<String>,
    /// `<name>:attached` pushes whose reply may say `detach`.
    attach_pushes: HashMap<PushId, String>,
}

struct Logging {
    limiter: LogLimiter,
    flush_scheduled: bool,
}

struct Inner {
    channel: Channel,
    offered: Vec<&'static str>,
    health: Option<Mutex<HealthSampler>>,
    geo: Option<Arc<dyn GeoProvider>>,
    logging_enabled: bool,
    local_shell: Option<LocalShell>,
    state: Mutex<State>,
    logging: Mutex<Logging>,
    reported: Mutex<Reported>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The device's extensions. Owned by the Device, which calls
/// [`Extensions::handle`] for every event of the socket. Cheap to clone.
#[derive(Clone)]
pub struct Extensions {
    inner: Arc<Inner>,
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("offered", &self.offered())
            .field("attached", &self.attached())
            .finish()
    }
}

impl Extensions {
    /// Prepares the `extensions` channel on `socket`; nothing is sent until
    /// [`Extensions::on_extensions_get`].
    pub fn new(socket: &Socket, opts: ExtensionsOptions) -> Result<Extensions> {
        let offered = offered_names(&opts);
        let params: serde_json::Map<String, Value> = offered
            .iter()
            .map(|n| ((*n).to_owned(), json!(VERSION)))
            .collect();
        let channel = socket.channel(
            "extensions",
            JoinParams::Static(Payload::json(&Value::Object(params))),
        )?;
        let local_shell = opts
            .local_shell
            .map(|shell| LocalShell::new(shell, channel.clone()))
            .transpose()?;
        Ok(Extensions {
            inner: Arc::new(Inner {
                channel,
                offered,
                health: opts.health.map(|h| Mutex::new(HealthSampler::new(h))),
                geo: opts.geo,
                logging_enabled: opts.logging,
                local_shell,
                state: Mutex::new(State::default()),
                logging: Mutex::new(Logging {
                    limiter: LogLimiter::new(Instant::now()),
                    flush_scheduled: false,
                }),
                reported: Mutex::new(Reported::default()),
            }),
        })
    }

    /// The server asked (`extensions:get` on `device`): join `extensions`.
    /// Joining an already joined channel does nothing; the channel rejoins by
    /// itself after reconnects, and each join renegotiates.
    pub fn on_extensions_get(&self) -> Result<()> {
        self.inner.channel.join().map(drop)
    }

    /// The extensions channel, to match core events to it.
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// Names offered on join, in a stable order.
    pub fn offered(&self) -> &[&'static str] {
        &self.inner.offered
    }

    fn implements(&self, name: &str) -> bool {
        self.inner.offered.contains(&name)
    }

    /// Names currently attached.
    pub fn attached(&self) -> Vec<String> {
        lock(&self.inner.state).attached.iter().cloned().collect()
    }

    pub fn is_attached(&self, name: &str) -> bool {
        lock(&self.inner.state).attached.contains(name)
    }

    /// Sets a metric sent with every later health report (replacing a
    /// previous value of the same name). Non-finite values are ignored, since
    /// JSON cannot carry them.
    pub fn report_metric(&self, name: &str, value: f64) {
        if !value.is_finite() {
            log::warn!("health: metric {name:?} ignored: {value} is not a finite number");
            return;
        }
        lock(&self.inner.reported)
            .metrics
            .insert(name.to_owned(), value);
    }

    /// Raises alarm `name` with `description` in every later health report
    /// (replacing an earlier description) until [`Extensions::clear_alarm`].
    /// These come after `HealthOptions::alarms`, so they win on a shared name.
    pub fn set_alarm(&self, name: &str, description: &str) {
        lock(&self.inner.reported)
            .alarms
            .insert(name.to_owned(), description.to_owned());
    }

    /// Clears an alarm set with [`Extensions::set_alarm`]; `false` if it was
    /// not set.
    pub fn clear_alarm(&self, name: &str) -> bool {
        lock(&self.inner.reported).alarms.remove(name).is_some()
    }

    /// Sets health check `name` in every later report (replacing an earlier
    /// result) until [`Extensions::clear_check`]. Wins over
    /// `HealthOptions::checks` on a shared name.
    pub fn set_check(&self, name: &str, check: Check) {
        lock(&self.inner.reported)
            .checks
            .insert(name.to_owned(), check);
    }

    /// Removes a check set with [`Extensions::set_check`]; `false` if it was
    /// not set.
    pub fn clear_check(&self, name: &str) -> bool {
        lock(&self.inner.reported).checks.remove(name).is_some()
    }

    /// Sends one log line (`logging:send`) if the `logging` extension is
    /// attached, within the device-side rate limit (5 lines/s, burst 10; see
    /// `logging.rs` for what happens to the excess). Lines logged while the
    /// extension is not attached are dropped: `Ok` either way. Errors: the
    /// extension is not enabled in the options, or the push cannot be queued.
    pub fn log(&self, level: LogLevel, message: &str, meta: &[(&str, &str)]) -> Result<()> {
        if !self.inner.logging_enabled {
            return Err(Error::InvalidArgument(
                "the logging extension is not enabled; set ExtensionsOptions::logging".into(),
            ));
        }
        if !self.is_attached(LOGGING) {
            log::debug!("logging extension not attached; line dropped");
            return Ok(());
        }
        let now = SystemTime::now();
        let mut logging = lock(&self.inner.logging);
        match logging.limiter.admit(Instant::now()) {
            Admit::Send { summary } => {
                if let Some(n) = summary {
                    self.cast("logging:send", logging::summary_payload(n, now))?;
                }
                drop(logging);
                self.cast(
                    "logging:send",
                    logging::line_payload(level, message, meta, now),
                )
            }
            Admit::Dropped => {
                if !logging.flush_scheduled {
                    logging.flush_scheduled = true;
                    drop(logging);
                    self.schedule_flush();
                }
                Ok(())
            }
        }
    }

    /// Sends the dropped-lines summary once a token is back. Runs on the
    /// library's runtime; ends when the summary is sent or nothing is pending.
    fn schedule_flush(&self) {
        let weak = Arc::downgrade(&self.inner);
        let task = async move {
            loop {
                let delay = {
                    let Some(inner) = weak.upgrade() else { return };
                    let mut logging = lock(&inner.logging);
                    logging.limiter.until_flush(Instant::now())
                };
                tokio::time::sleep(delay.max(MIN_FLUSH_DELAY)).await;
                let Some(inner) = weak.upgrade() else { return };
                let ext = Extensions { inner };
                let mut logging = lock(&ext.inner.logging);
                if logging.limiter.dropped() == 0 {
                    logging.flush_scheduled = false;
                    return;
                }
                if let Some(n) = logging.limiter.flush(Instant::now()) {
                    logging.flush_scheduled = false;
                    drop(logging);
                    if ext.is_attached(LOGGING) {
                        let payload = logging::summary_payload(n, SystemTime::now());
                        if let Err(e) = ext.cast("logging:send", payload) {
                            log::warn!("logging: cannot send the dropped-lines summary: {e}");
                        }
                    }
                    return;
                }
            }
        };
        match crate::runtime::handle() {
            Ok(rt) => {
                rt.spawn(task);
            }
            Err(e) => {
                log::warn!("logging: no runtime for the dropped-lines summary: {e}");
                lock(&self.inner.logging).flush_scheduled = false;
            }
        }
    }

    fn cast(&self, event: &str, payload: Value) -> Result<()> {
        self.inner
            .channel
            .cast(event, Payload::json(&payload), PUSH_TIMEOUT)
            .map(drop)
    }

    /// Decodes a core event and answers the server. `Some` for events of the
    /// extensions channel (messages, joins, errors, the `attached` replies).
    pub fn handle(&self, event: &Event) -> Option<ExtensionEvent> {
        let ours = self.inner.channel.id();
        match event {
            Event::Joined {
                channel, response, ..
            } if *channel == ours => Some(self.negotiate(response)),
            Event::JoinFailed { channel, .. }
            | Event::ChannelError { channel, .. }
            | Event::ChannelClosed { channel, .. }
                if *channel == ours =>
            {
                let names = self.reset();
                (!names.is_empty()).then_some(ExtensionEvent::Detached { names })
            }
            Event::Reply {
                channel,
                push,
                outcome,
            } if *channel == ours => self.on_reply(*push, outcome),
            Event::Message {
                channel,
                event,
                payload,
                ..
            } if *channel == ours => self.on_message(event, payload),
            _ => None,
        }
    }

    /// Forgets every attachment; returns what was attached.
    fn reset(&self) -> Vec<String> {
        let mut state = lock(&self.inner.state);
        state.attach_pushes.clear();
        let names = std::mem::take(&mut state.attached);
        drop(state);
        for name in &names {
            self.stopped(name);
        }
        names.into_iter().collect()
    }

    fn negotiate(&self, response: &Payload) -> ExtensionEvent {
        self.reset();
        let names = match response.to_value() {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            other => {
                log::warn!(
                    "extensions: the join reply should be an array of names, got {}; nothing attached",
                    other.map(|v| v.to_string()).unwrap_or_else(|| "binary".into())
                );
                Vec::new()
            }
        };
        let (attached, rejected) = self.attach_names(names);
        ExtensionEvent::Negotiated { attached, rejected }
    }

    /// Attaches the names we implement (pushing `attached`), rejects the
    /// others (pushing `error`). Already attached names are left alone.
    fn attach_names(&self, names: Vec<String>) -> (Vec<String>, Vec<String>) {
        let (mut attached, mut rejected) = (Vec::new(), Vec::new());
        for name in names {
            if !self.implements(&name) {
                let payload = json!({"reason": "unknown_extension"});
                if let Err(e) = self.cast(&format!("{name}:error"), payload) {
                    log::warn!("extensions: cannot refuse {name:?}: {e}");
                }
                rejected.push(name);
                continue;
            }
            if !lock(&self.inner.state).attached.insert(name.clone()) {
                continue;
            }
            let pushed = self.inner.channel.push_tracked(
                &format!("{name}:attached"),
                Payload::empty(),
                ATTACH_REPLY_TIMEOUT,
            );
            match pushed {
                Ok(id) => {
                    lock(&self.inner.state)
                        .attach_pushes
                        .insert(id, name.clone());
                }
                Err(e) => log::warn!("extensions: cannot confirm {name:?}: {e}"),
            }
            attached.push(name);
        }
        (attached, rejected)
    }

    fn detach_names(&self, names: Vec<String>) -> Vec<String> {
        let mut detached = Vec::new();
        for name in names {
            if !lock(&self.inner.state).attached.remove(&name) {
                continue;
            }
            self.stopped(&name);
            if let Err(e) = self.cast(&format!("{name}:detached"), json!({})) {
                log::warn!("extensions: cannot confirm detaching {name:?}: {e}");
            }
            detached.push(name);
        }
        detached
    }

    fn on_reply(&self, push: PushId, outcome: &PushOutcome) -> Option<ExtensionEvent> {
        let name = lock(&self.inner.state).attach_pushes.remove(&push)?;
        let PushOutcome::Error { response, .. } = outcome else {
            return None;
        };
        if response.to_value() != Some(Value::String("detach".into())) {
            log::warn!("extensions: {name}:attached was refused: {response:?}");
            return None;
        }
        // The server will not use it: stop quietly, no `detached` push.
        if !lock(&self.inner.state).attached.remove(&name) {
            return None;
        }
        self.stopped(&name);
        Some(ExtensionEvent::Detached { names: vec![name] })
    }

    /// Drops what a detached extension holds.
    fn stopped(&self, name: &str) {
        match name {
            LOGGING => lock(&self.inner.logging).limiter.clear(),
            LOCAL_SHELL => {
                if let Some(shell) = &self.inner.local_shell {
                    shell.stop();
                }
            }
            _ => {}
        }
    }

    /// `{"extensions": [names] | "all" | "name"}`.
    fn names_in(&self, payload: &Payload) -> Vec<String> {
        match payload
            .to_value()
            .as_ref()
            .and_then(|v| v.get("extensions"))
        {
            Some(Value::String(s)) if s == "all" => {
                self.offered().iter().map(|n| (*n).to_owned()).collect()
            }
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn on_message(&self, event: &str, payload: &Payload) -> Option<ExtensionEvent> {
        if let (Some(shell), Some(action)) =
            (&self.inner.local_shell, event.strip_prefix("local_shell:"))
        {
            if let Some(request) = local_shell::decode(action, payload) {
                let reported = matches!(
                    request,
                    local_shell::Request::Open | local_shell::Request::Kill
                );
                shell.handle(request);
                return reported.then(|| ExtensionEvent::LocalShell {
                    event: action.to_owned(),
                });
            }
        }
        let event = match event {
            "attach" => {
                let names = self.names_in(payload);
                ExtensionEvent::Attached {
                    names: self.attach_names(names).0,
                }
            }
            "detach" => {
                let names = self.names_in(payload);
                ExtensionEvent::Detached {
                    names: self.detach_names(names),
                }
            }
            "health:check" if self.inner.health.is_some() => {
                self.spawn_blocking(|ext| ext.send_health_report());
                ExtensionEvent::HealthCheck
            }
            "geo:location:request" => {
                match &self.inner.geo {
                    Some(_) => self.spawn_blocking(|ext| ext.send_location()),
                    None => {
                        let payload = geo::no_provider_payload();
                        if let Err(e) = self.cast("geo:location:update", payload) {
                            log::warn!("geo: cannot answer: {e}");
                        }
                    }
                }
                ExtensionEvent::LocationRequest
            }
            _ => ExtensionEvent::Other {
                event: event.to_owned(),
                payload: payload.clone(),
            },
        };
        Some(event)
    }

    /// Runs user providers and file reads off the caller's thread (the
    /// Device's agent must not block).
    fn spawn_blocking(&self, work: fn(&Extensions)) {
        let ext = self.clone();
        match crate::runtime::handle() {
            Ok(rt) => {
                rt.spawn_blocking(move || work(&ext));
            }
            Err(e) => {
                log::warn!("extensions: no runtime ({e}); answering on the caller's thread");
                work(&ext);
            }
        }
    }

    fn send_health_report(&self) {
        let Some(sampler) = &self.inner.health else {
            return;
        };
        let reported = lock(&self.inner.reported).clone();
        let report = lock(sampler).report(&reported, SystemTime::now());
        if let Err(e) = self.cast("health:report", report) {
            log::warn!("health: cannot send the report: {e}");
        }
    }

    fn send_location(&self) {
        let Some(provider) = &self.inner.geo else {
            return;
        };
        let payload = geo::update_payload(&provider.locate());
        if let Err(e) = self.cast("geo:location:update", payload) {
            log::warn!("geo: cannot send the location: {e}");
        }
    }
}

fn offered_names(opts: &ExtensionsOptions) -> Vec<&'static str> {
    let mut v = Vec::new();
    if opts.health.is_some() {
        v.push(HEALTH);
    }
    if opts.geo.is_some() {
        v.push(GEO);
    }
    if opts.logging {
        v.push(LOGGING);
    }
    if opts.local_shell.is_some() {
        v.push(LOCAL_SHELL);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SocketConfig;

    /// A socket that never connects: pushes are accepted (and end unsent),
    /// which is all the negotiation logic needs.
    fn offline() -> Extensions {
        let socket =
            Socket::new(SocketConfig::new("ws://127.0.0.1:9/socket/websocket")).expect("socket");
        let opts = ExtensionsOptions {
            health: Some(HealthOptions::default()),
            logging: true,
            ..ExtensionsOptions::default()
        };
        Extensions::new(&socket, opts).expect("extensions")
    }

    fn joined(ext: &Extensions, names: Value) -> Event {
        Event::Joined {
            channel: ext.channel().id(),
            topic: "extensions".into(),
            response: Payload::json(&names),
        }
    }

    fn attach_push(ext: &Extensions, name: &str) -> PushId {
        let state = lock(&ext.inner.state);
        let found = state.attach_pushes.iter().find(|(_, n)| *n == name);
        *found.expect("attach push tracked").0
    }

    #[test]
    fn a_detach_reply_to_attached_detaches_quietly() {
        let ext = offline();
        ext.handle(&joined(&ext, json!(["health", "logging"])));
        assert_eq!(ext.attached(), ["health", "logging"]);
        let push = attach_push(&ext, "health");
        let reply = Event::Reply {
            channel: ext.channel().id(),
            push,
            outcome: PushOutcome::Error {
                status: "error".into(),
                response: Payload::json(&json!("detach")),
            },
        };
        assert_eq!(
            ext.handle(&reply),
            Some(ExtensionEvent::Detached {
                names: vec!["health".into()]
            })
        );
        assert_eq!(ext.attached(), ["logging"]);
        // The same reply again (or any other reply) changes nothing.
        assert_eq!(ext.handle(&reply), None);
        let timeout = Event::Reply {
            channel: ext.channel().id(),
            push: attach_push(&ext, "logging"),
            outcome: PushOutcome::Timeout,
        };
        assert_eq!(ext.handle(&timeout), None);
        assert_eq!(ext.attached(), ["logging"]);
    }

    #[test]
    fn a_join_reply_that_is_not_an_array_attaches_nothing() {
        let ext = offline();
        assert_eq!(
            ext.handle(&joined(&ext, json!({}))),
            Some(ExtensionEvent::Negotiated {
                attached: vec![],
                rejected: vec![]
            })
        );
        assert!(ext.attached().is_empty());
    }

    #[test]
    fn a_rejoin_starts_from_scratch() {
        let ext = offline();
        ext.handle(&joined(&ext, json!(["health", "logging"])));
        let got = ext.handle(&joined(&ext, json!(["logging", "geo"])));
        assert_eq!(
            got,
            Some(ExtensionEvent::Negotiated {
                attached: vec!["logging".into()],
                rejected: vec!["geo".into()],
            })
        );
        assert_eq!(ext.attached(), ["logging"]);
    }

    #[test]
    fn events_of_other_channels_are_not_ours() {
        let ext = offline();
        let other = Event::Message {
            channel: ext.channel().id() + 1,
            topic: "device".into(),
            event: "health:check".into(),
            payload: Payload::empty(),
        };
        assert_eq!(ext.handle(&other), None);
        assert_eq!(ext.handle(&Event::Connected), None);
    }
}
