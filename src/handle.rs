//! What every handle kind has in common: the shape the C and Python skins
//! are written against once.
//!
//! A handle is a connection (re-made as needed) that reports everything it
//! observes as one ordered stream of events, ending with a last event after
//! `close`. The stream is consumed in one of two ways: polled (`event_fd`
//! plus `recv_timeout`/`try_recv` on the consumer's thread) or threaded (a
//! `set_handler` handler on the library's dispatcher thread). Dropping the
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
use crate::error::Result;
use crate::event::Event;
use crate::nerves_hub::{Device, DeviceEvent};
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
    fn state(&self) -> ConnectionState;
    /// Waits up to `timeout` for the next event.
    fn recv_timeout(&self, timeout: Duration) -> Option<Self::Event>;
    fn try_recv(&self) -> Option<Self::Event>;
    /// A descriptor readable while events are pending (polled mode).
    fn event_fd(&self) -> Result<RawFd>;
    /// Threaded mode: `handler` gets every event, in order, on the
    /// dispatcher thread. `None` removes it.
    fn set_handler(&self, handler: Option<Handler<Self::Event>>);
}

impl Handle for Socket {
    type Event = Event;
    fn is_last(event: &Event) -> bool {
        matches!(event, Event::Closed)
    }
    fn connect(&self) -> Result<()> {
        Socket::connect(self)
    }
    fn disconnect(&self) -> Result<()> {
        Socket::disconnect(self)
    }
    fn close(&self) {
        Socket::close(self)
    }
    fn state(&self) -> ConnectionState {
        Socket::state(self)
    }
    fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        Socket::recv_timeout(self, timeout)
    }
    fn try_recv(&self) -> Option<Event> {
        Socket::try_recv(self)
    }
    fn event_fd(&self) -> Result<RawFd> {
        Socket::event_fd(self)
    }
    fn set_handler(&self, handler: Option<Handler<Event>>) {
        Socket::set_handler(self, handler)
    }
}

impl Handle for Device {
    type Event = DeviceEvent;
    fn is_last(event: &DeviceEvent) -> bool {
        matches!(event, DeviceEvent::Socket(Event::Closed))
    }
    fn connect(&self) -> Result<()> {
        Device::connect(self)
    }
    fn disconnect(&self) -> Result<()> {
        Device::disconnect(self)
    }
    fn close(&self) {
        Device::close(self)
    }
    fn state(&self) -> ConnectionState {
        Device::state(self)
    }
    fn recv_timeout(&self, timeout: Duration) -> Option<DeviceEvent> {
        Device::recv_timeout(self, timeout)
    }
    fn try_recv(&self) -> Option<DeviceEvent> {
        Device::try_recv(self)
    }
    fn event_fd(&self) -> Result<RawFd> {
        Device::event_fd(self)
    }
    fn set_handler(&self, handler: Option<Handler<DeviceEvent>>) {
        Device::set_handler(self, handler)
    }
}
