//! Turns a device's ordered `DeviceEvent` stream into calls of its C event
//! closure, with the socket router's guarantees: one consumer at a time,
//! the closure called without a lock held, and `close` waiting for a
//! callback running on another thread (not for one on its own thread).

use std::ffi::CString;
use std::sync::Arc;

use nerves_hub_channel::nerves_hub::console::ConsoleEvent;
use nerves_hub_channel::nerves_hub::extensions::ExtensionEvent;
use nerves_hub_channel::nerves_hub::update::Stage;
use nerves_hub_channel::nerves_hub::DeviceEvent;
use nerves_hub_channel::{Event, JoinFailure, Payload, PushOutcome};
use serde_json::json;

use crate::closure::Owned;
use crate::cstring::to_cstring;
use crate::device_closure::nhc_device_event_closure;
use crate::device_types::{nhc_device_event, nhc_device_event_kind as K, nhc_update_stage};
use crate::error::code_of;
use crate::gate::Gate;
use crate::handle::Route;
use crate::nhc_result::{self, NHC_OK};
use crate::types::{ms_or_minus_one, nhc_state, PayloadBuf};

type Shared = Arc<Owned<nhc_device_event_closure>>;

pub(crate) struct DeviceRouter {
    /// The event closure, behind the gate (taken out by `close`).
    gate: Gate<Option<Shared>>,
}

impl DeviceRouter {
    pub fn new(closure: Owned<nhc_device_event_closure>) -> Arc<DeviceRouter> {
        Arc::new(DeviceRouter {
            gate: Gate::new(Some(Arc::new(closure))),
        })
    }

    pub fn ended(&self) -> bool {
        self.gate.ended()
    }

    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    /// Stops every callback and hands the closure out, to be dropped by the
    /// caller without the lock (or, if a callback of this thread still runs,
    /// when it returns: it holds its own reference).
    pub fn close(&self) -> Option<Shared> {
        self.gate.close(Option::take)
    }

    /// Delivers one event. Called by the device's single consumer.
    pub fn route(&self, event: DeviceEvent) {
        let last = matches!(event, DeviceEvent::Socket(Event::Closed));
        let Some((_in_call, closure)) = self.gate.enter(last, Clone::clone) else {
            return;
        };
        if let (Some(closure), Some(draft)) = (closure, Draft::from_event(event)) {
            draft.deliver(&closure);
        }
        if last {
            self.gate.set_ended();
        }
    }
}

impl Route<DeviceEvent> for DeviceRouter {
    type Removed = Option<Shared>;
    fn route(&self, event: DeviceEvent) {
        DeviceRouter::route(self, event)
    }
    fn ended(&self) -> bool {
        DeviceRouter::ended(self)
    }
    fn is_closed(&self) -> bool {
        DeviceRouter::is_closed(self)
    }
    fn close(&self) -> Option<Shared> {
        DeviceRouter::close(self)
    }
}

/// An event in owned Rust form, before it is lent to C.
struct Draft {
    kind: K,
    state: nhc_state,
    error: nhc_result,
    reason: String,
    reconnect_in_ms: i64,
    attempt: u32,
    topic: String,
    event: String,
    payload: Option<Payload>,
    url: String,
    uuid: String,
    version: String,
    size: i64,
    checksum: String,
    stage: nhc_update_stage,
    percent: u32,
    ok: bool,
    script_ref: String,
    text: String,
    width: u16,
    height: u16,
}

fn size_of(v: Option<u64>) -> i64 {
    v.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1)
}

impl Draft {
    fn new(kind: K) -> Draft {
        Draft {
            kind,
            state: nhc_state::NHC_STATE_CONNECTED,
            error: NHC_OK,
            reason: String::new(),
            reconnect_in_ms: -1,
            attempt: 0,
            topic: String::new(),
            event: String::new(),
            payload: None,
            url: String::new(),
            uuid: String::new(),
            version: String::new(),
            size: -1,
            checksum: String::new(),
            stage: nhc_update_stage::NHC_UPDATE_STAGE_NONE,
            percent: 0,
            ok: false,
            script_ref: String::new(),
            text: String::new(),
            width: 0,
            height: 0,
        }
    }

    fn state(state: nhc_state) -> Draft {
        Draft {
            state,
            ..Draft::new(K::NHC_DEVICE_EVENT_STATE)
        }
    }

    fn message(kind: K, topic: &str, event: String, payload: Payload) -> Draft {
        Draft {
            topic: topic.to_owned(),
            event,
            payload: Some(payload),
            ..Draft::new(kind)
        }
    }

    /// `None` for events C programs do not get (replies of successful casts).
    fn from_event(event: DeviceEvent) -> Option<Draft> {
        Some(match event {
            DeviceEvent::Socket(e) => return Draft::from_socket(e),
            DeviceEvent::UpdateAvailable(info) => Draft {
                url: info.firmware_url.clone(),
                uuid: info.firmware_meta.uuid.clone(),
                version: info.firmware_meta.version.clone().unwrap_or_default(),
                size: size_of(info.size),
                checksum: info.checksum.clone().unwrap_or_default(),
                payload: Some(Payload::json(&info.raw)),
                ..Draft::new(K::NHC_DEVICE_EVENT_UPDATE_AVAILABLE)
            },
            DeviceEvent::UpdateIgnored { uuid, reason } => Draft {
                uuid,
                reason,
                ..Draft::new(K::NHC_DEVICE_EVENT_UPDATE_IGNORED)
            },
            DeviceEvent::UpdateProgress { stage, percent } => Draft {
                stage: match stage {
                    Stage::Downloading => nhc_update_stage::NHC_UPDATE_STAGE_DOWNLOADING,
                    Stage::Updating => nhc_update_stage::NHC_UPDATE_STAGE_UPDATING,
                },
                percent: u32::from(percent),
                ..Draft::new(K::NHC_DEVICE_EVENT_UPDATE_PROGRESS)
            },
            DeviceEvent::UpdateFinished { ok, reason } => Draft {
                ok,
                reason: reason.unwrap_or_default(),
                ..Draft::new(K::NHC_DEVICE_EVENT_UPDATE_FINISHED)
            },
            DeviceEvent::Reboot => Draft::new(K::NHC_DEVICE_EVENT_REBOOT),
            DeviceEvent::Identify => Draft::new(K::NHC_DEVICE_EVENT_IDENTIFY),
            DeviceEvent::Archive(a) => Draft {
                uuid: a.uuid.clone(),
                url: a.url.clone(),
                version: a.version.clone().unwrap_or_default(),
                size: size_of(a.size),
                payload: Some(Payload::json(&a.raw)),
                ..Draft::new(K::NHC_DEVICE_EVENT_ARCHIVE)
            },
            DeviceEvent::FwupPublicKeys(keys) => Draft {
                payload: Some(Payload::json(&json!(keys))),
                ..Draft::new(K::NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS)
            },
            DeviceEvent::ArchivePublicKeys(keys) => Draft {
                payload: Some(Payload::json(&json!(keys))),
                ..Draft::new(K::NHC_DEVICE_EVENT_ARCHIVE_PUBLIC_KEYS)
            },
            DeviceEvent::ScriptRun { script_ref, text } => Draft {
                script_ref,
                text,
                ..Draft::new(K::NHC_DEVICE_EVENT_SCRIPT_RUN)
            },
            DeviceEvent::ExtensionsGet => Draft::new(K::NHC_DEVICE_EVENT_EXTENSIONS_GET),
            DeviceEvent::Console(c) => Draft::from_console(c),
            DeviceEvent::Extension(e) => Draft::from_extension(e),
            DeviceEvent::InvalidMessage {
                event,
                detail,
                payload,
            } => Draft {
                reason: detail,
                ..Draft::message(
                    K::NHC_DEVICE_EVENT_INVALID_MESSAGE,
                    "device",
                    event,
                    payload,
                )
            },
            DeviceEvent::Other {
                topic,
                event,
                payload,
            } => Draft::message(K::NHC_DEVICE_EVENT_OTHER, &topic, event, payload),
        })
    }

    fn from_socket(event: Event) -> Option<Draft> {
        Some(match event {
            Event::Connecting { attempt } => Draft {
                attempt,
                ..Draft::state(nhc_state::NHC_STATE_CONNECTING)
            },
            Event::Connected => Draft::state(nhc_state::NHC_STATE_CONNECTED),
            Event::Disconnected {
                reason,
                reconnect_in,
            } => Draft {
                error: code_of(&reason),
                reason: reason.to_string(),
                reconnect_in_ms: ms_or_minus_one(reconnect_in),
                ..Draft::state(nhc_state::NHC_STATE_DISCONNECTED)
            },
            Event::AuthError {
                error,
                reconnect_in,
            } => Draft {
                error: code_of(&error),
                reason: error.to_string(),
                reconnect_in_ms: ms_or_minus_one(reconnect_in),
                ..Draft::state(nhc_state::NHC_STATE_AUTH_ERROR)
            },
            Event::ProtocolError { detail } => Draft {
                error: nhc_result::NHC_ERR_PROTOCOL,
                reason: detail,
                ..Draft::state(nhc_state::NHC_STATE_PROTOCOL_ERROR)
            },
            Event::Closed => Draft::state(nhc_state::NHC_STATE_CLOSED),
            Event::IdentityInUse { sessions } => Draft {
                attempt: sessions,
                reason: nerves_hub_channel::event::identity_in_use_reason(sessions),
                ..Draft::new(K::NHC_DEVICE_EVENT_IDENTITY_IN_USE)
            },
            Event::Joined {
                topic, response, ..
            } => Draft::message(K::NHC_DEVICE_EVENT_JOINED, &topic, String::new(), response),
            Event::JoinFailed {
                topic,
                failure,
                rejoin_in,
                ..
            } => {
                let mut d = Draft {
                    topic,
                    reconnect_in_ms: ms_or_minus_one(rejoin_in),
                    ..Draft::new(K::NHC_DEVICE_EVENT_JOIN_FAILED)
                };
                match failure {
                    JoinFailure::Refused(response) => {
                        d.reason = "the server refused the join".into();
                        d.payload = Some(response);
                    }
                    JoinFailure::Timeout => {
                        d.error = nhc_result::NHC_ERR_TIMEOUT;
                        d.reason = "no reply to the join within its timeout".into();
                    }
                    JoinFailure::Closed(e) => {
                        d.error = code_of(&e);
                        d.reason = e.to_string();
                    }
                }
                d
            }
            Event::ChannelError { topic, reason, .. } => Draft {
                topic,
                reason,
                ..Draft::new(K::NHC_DEVICE_EVENT_CHANNEL_ERROR)
            },
            Event::ChannelClosed { topic, reason, .. } => Draft {
                topic,
                reason,
                ..Draft::new(K::NHC_DEVICE_EVENT_CHANNEL_CLOSED)
            },
            Event::Message {
                topic,
                event,
                payload,
                ..
            } => Draft::message(K::NHC_DEVICE_EVENT_OTHER, &topic, event, payload),
            Event::Reply { outcome, .. } => {
                let (error, reason) = match outcome {
                    PushOutcome::NotSent(e) => (code_of(&e), e.to_string()),
                    PushOutcome::Timeout => (
                        nhc_result::NHC_ERR_TIMEOUT,
                        "no reply within the report's timeout".to_owned(),
                    ),
                    PushOutcome::Ok(_) | PushOutcome::Error { .. } => return None,
                };
                Draft {
                    topic: "device".into(),
                    error,
                    reason,
                    ..Draft::new(K::NHC_DEVICE_EVENT_REPORT_FAILED)
                }
            }
        })
    }

    fn from_console(event: ConsoleEvent) -> Draft {
        match event {
            ConsoleEvent::Input(text) => Draft {
                text,
                ..Draft::new(K::NHC_DEVICE_EVENT_CONSOLE_INPUT)
            },
            ConsoleEvent::WindowSize { width, height } => Draft {
                width,
                height,
                ..Draft::new(K::NHC_DEVICE_EVENT_CONSOLE_WINDOW_SIZE)
            },
            ConsoleEvent::Restart => Draft::new(K::NHC_DEVICE_EVENT_CONSOLE_RESTART),
            ConsoleEvent::File { event, payload } => Draft::message(
                K::NHC_DEVICE_EVENT_CONSOLE_FILE,
                "console",
                event,
                Payload::json(&payload),
            ),
            ConsoleEvent::Other { event, payload } => {
                Draft::message(K::NHC_DEVICE_EVENT_OTHER, "console", event, payload)
            }
        }
    }

    fn from_extension(event: ExtensionEvent) -> Draft {
        let (name, payload) = match event {
            ExtensionEvent::Negotiated { attached, rejected } => (
                "negotiated".to_owned(),
                Payload::json(&json!({"attached": attached, "rejected": rejected})),
            ),
            ExtensionEvent::Attached { names } => (
                "attached".to_owned(),
                Payload::json(&json!({"names": names})),
            ),
            ExtensionEvent::Detached { names } => (
                "detached".to_owned(),
                Payload::json(&json!({"names": names})),
            ),
            ExtensionEvent::HealthCheck => ("health_check".to_owned(), Payload::empty()),
            ExtensionEvent::LocationRequest => ("location_request".to_owned(), Payload::empty()),
            ExtensionEvent::LocalShell { event } => {
                (format!("local_shell:{event}"), Payload::empty())
            }
            ExtensionEvent::Other { event, payload } => (event, payload),
        };
        Draft::message(K::NHC_DEVICE_EVENT_EXTENSION, "extensions", name, payload)
    }

    fn deliver(self, closure: &Shared) {
        let c = |s: &str| -> CString { to_cstring(s) };
        let (reason, topic, event) = (c(&self.reason), c(&self.topic), c(&self.event));
        let (url, uuid, version) = (c(&self.url), c(&self.uuid), c(&self.version));
        let (checksum, script_ref, text) = (c(&self.checksum), c(&self.script_ref), c(&self.text));
        let payload = PayloadBuf::new(self.payload.as_ref());
        let event = nhc_device_event {
            kind: self.kind,
            state: self.state,
            error: self.error,
            reason: reason.as_ptr(),
            reconnect_in_ms: self.reconnect_in_ms,
            attempt: self.attempt,
            topic: topic.as_ptr(),
            event: event.as_ptr(),
            payload: payload.view(),
            url: url.as_ptr(),
            uuid: uuid.as_ptr(),
            version: version.as_ptr(),
            size: self.size,
            checksum: checksum.as_ptr(),
            stage: self.stage,
            percent: self.percent,
            ok: self.ok,
            script_ref: script_ref.as_ptr(),
            text: text.as_ptr(),
            text_len: text.as_bytes().len(),
            width: self.width,
            height: self.height,
        };
        closure.call(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;
    use nerves_hub_channel::Error;

    #[test]
    fn updates_carry_their_fields_and_the_whole_json() {
        let raw = json!({"update_available": true, "firmware_url": "http://h/f.fw?sig=1",
            "size": 10, "firmware_meta": {"uuid": "u-1", "version": "1.2.3"}});
        let info = UpdateInfo::parse(&raw).unwrap();
        let d = Draft::from_event(DeviceEvent::UpdateAvailable(info)).unwrap();
        assert_eq!(d.kind, K::NHC_DEVICE_EVENT_UPDATE_AVAILABLE);
        assert_eq!(
            (d.uuid.as_str(), d.version.as_str(), d.size),
            ("u-1", "1.2.3", 10)
        );
        assert_eq!(d.url, "http://h/f.fw?sig=1");
        let json = d.payload.and_then(|p| p.to_value()).unwrap();
        assert_eq!(json["firmware_meta"]["uuid"], "u-1");
    }

    #[test]
    fn socket_events_map_to_states_and_failed_reports() {
        let d = Draft::from_event(DeviceEvent::Socket(Event::AuthError {
            error: Error::Auth {
                status: 401,
                reason: None,
            },
            reconnect_in: None,
        }))
        .unwrap();
        assert_eq!(d.state, nhc_state::NHC_STATE_AUTH_ERROR);
        assert_eq!(d.error, nhc_result::NHC_ERR_AUTH);
        assert_eq!(d.reconnect_in_ms, -1);
        let timeout = DeviceEvent::Socket(Event::Reply {
            channel: 1,
            push: 2,
            outcome: PushOutcome::Timeout,
        });
        let d = Draft::from_event(timeout).unwrap();
        assert_eq!(d.kind, K::NHC_DEVICE_EVENT_REPORT_FAILED);
        assert_eq!(d.error, nhc_result::NHC_ERR_TIMEOUT);
    }

    #[test]
    fn progress_stages() {
        let d = Draft::from_event(DeviceEvent::UpdateProgress {
            stage: Stage::Updating,
            percent: 100,
        })
        .unwrap();
        assert_eq!(d.stage, nhc_update_stage::NHC_UPDATE_STAGE_UPDATING);
        assert_eq!(d.percent, 100);
    }
}
