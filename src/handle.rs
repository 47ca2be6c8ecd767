//! What every handle kind has in common: the shape the C and Python skins
//! are written against once.
//!
//! A handle is a connection (re-made as needed) that reports everything it
//! observes as one ordered stream of events, ending with a last event after
//! `close`. The stream is consumed in one of four ways: polled (`event_fd`
//! plus `recv_timeout`/`try_recv` on the consumer's thread), threaded (a
//! `set_handler` handler on the library's dispatcher thread), pulled (a
//! `set_pull` consumer with a thread of its own) or, for a socket, inline
//! (a `set_inline_handler` handler on its I/O thread). Dropping the
//! last clone abandons the handle: it closes and its tasks stop waiting for
//! a consumer. In a child after fork() `connect` and `disconnect` fail
//! (the library's threads did not survive it; see `runtime`).
//!
//! [`Socket`] and [`Device`] provide it. A third kind provides it too, and
//! the skins then need only its options, its own calls and its event
//! conversion.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::actor::ConnectionState;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::nerves_hub::{Device, DeviceEvent};
use crate::pull::Puller;
use crate::queue::Handler;
use crate::socket::Socket;

/// A handle with an ordered event stream: see the module documentation.
pub trait Handle: Send + Sync + 'static {
    /// What the stream carries.
    type Event: Send + 'static;

    /// Whether `event` is the stream's last (the handle closed).
    fn is_last(event: &Self::Event) -> bool;

    /// Starts connecting (and reconnecting after failures) in the background.
    fn connect(&self) -> Result<()>;
    /// Closes the connection; `connect` resumes.
    fn disconnect(&self) -> Result<()>;
    /// Closes for good; the last event follows.
    fn close(&self);
    /// After `close`: waits up to `timeout` until the connection task has
    /// dropped everything it held (the TLS key among it); whether it did.
    fn wait_closed(&self, timeout: Duration) -> bool;
    fn state(&self) -> ConnectionState;
    /// Waits up to `timeout` for the next event.
    fn recv_timeout(&self, timeout: Duration) -> Option<Self::Event>;
    fn try_recv(&self) -> Option<Self::Event>;
    /// A descriptor readable while events are pending (polled mode).
    fn event_fd(&self) -> Result<RawFd>;
    /// Threaded mode: `handler` gets every event, in order, on the
    /// dispatcher thread. `None` removes it.
    fn set_handler(&self, handler: Option<Handler<Self::Event>>);
    /// Pulled mode: see [`Puller`]. Instead of a handler, installed once.
    fn set_pull(&self, puller: std::sync::Arc<dyn Puller<Self::Event>>) -> Result<()>;
    /// Why this kind refuses inline delivery, `None` when it takes it. A
    /// kind whose events come from more than one thread refuses it: a
    /// device's update progress comes from its download, and some of its
    /// events from the application's own calls, so inline handlers would
    /// run on those threads. Bindings ask before they build a handle.
    fn refuses_inline() -> Option<Error> {
        Some(Error::InvalidArgument(
            "inline delivery is for sockets; a device's events come from more than one thread"
                .into(),
        ))
    }
    /// Inline mode (`Socket::set_inline_handler`): `handler` runs on the
    /// I/O thread that produces the events; see `refuses_inline`.
    fn set_inline_handler(&self, handler: Handler<Self::Event>) -> Result<()> {
        drop(handler);
        Err(Self::refuses_inline().unwrap_or_else(|| {
            Error::InvalidArgument("inline delivery is not implemented for this kind".into())
        }))
    }
}

/// `Handle` by the type's own methods of the same names (kept inherent so
/// that callers need not import the trait).
macro_rules! handle_by_own_methods {
    ($ty:ty, $event:ty, $last:pat $(, $inline:ident)?) => {
        impl Handle for $ty {
            type Event = $event;
            fn is_last(event: &$event) -> bool {
                matches!(event, $last)
            }
            fn connect(&self) -> Result<()> {
                <$ty>::connect(self)
            }
            fn disconnect(&self) -> Result<()> {
                <$ty>::disconnect(self)
            }
            fn close(&self) {
                <$ty>::close(self)
            }
            fn wait_closed(&self, timeout: Duration) -> bool {
                <$ty>::wait_closed(self, timeout)
            }
            fn state(&self) -> ConnectionState {
                <$ty>::state(self)
            }
            fn recv_timeout(&self, timeout: Duration) -> Option<$event> {
                <$ty>::recv_timeout(self, timeout)
            }
            fn try_recv(&self) -> Option<$event> {
                <$ty>::try_recv(self)
            }
            fn event_fd(&self) -> Result<RawFd> {
                <$ty>::event_fd(self)
            }
            fn set_handler(&self, handler: Option<Handler<$event>>) {
                <$ty>::set_handler(self, handler)
            }
            fn set_pull(&self, puller: std::sync::Arc<dyn Puller<$event>>) -> Result<()> {
                <$ty>::set_pull(self, puller)
            }
            $(
                fn refuses_inline() -> Option<Error> {
                    None
                }
                fn $inline(&self, handler: Handler<$event>) -> Result<()> {
                    <$ty>::set_inline_handler(self, handler);
                    Ok(())
                }
            )?
        }
    };
}

handle_by_own_methods!(Socket, Event, Event::Closed, set_inline_handler);
handle_by_own_methods!(Device, DeviceEvent, DeviceEvent::Socket(Event::Closed));
