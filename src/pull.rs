//! Pulled delivery: a consumer with its own thread takes a handle's events
//! straight from the handle's queue, instead of through the library's
//! dispatcher thread. One thread hand-off (a wake-up and a context switch
//! per message when messages come one at a time) less than a threaded
//! handler that forwards to another thread, which is what the Python
//! module's delivery thread did (issue 18).
//!
//! The queue stays the one bound on memory: the connection stops reading
//! while it holds `event_capacity` events, whatever the consumer does.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::queue::EventQueue;

/// The consumer's side, called by the handle's producers (its I/O thread,
/// for a device also its update tasks and the application's own calls).
pub trait Puller<E: Send + 'static>: Send + Sync + 'static {
    /// Every event, as it is queued and before any consumer can take it,
    /// with the queue's lock held: record what must be known without
    /// waiting for the consumer (a connection state that blocking calls
    /// wait for). Must be quick, must not block and must not call the
    /// handle.
    fn observe(&self, event: &E);
    /// `source` has events and no consumer is taking them: hand it to the
    /// consuming thread, which calls [`EventSource::take`] until that says
    /// no more are left. Called once per such transition (a burst of
    /// frames read together makes one call). Must not block.
    fn ready(&self, source: EventSource<E>);
}

/// Where a pulled handle's events are taken from; see [`Puller::ready`].
pub struct EventSource<E: Send + 'static>(pub(crate) Arc<EventQueue<E>>);

impl<E: Send + 'static> EventSource<E> {
    /// Moves up to 64 events into `out`, in order. True if more are left:
    /// the source is still the caller's to take from (no new `ready` call
    /// comes for it), so it must call again later. False: the queue is
    /// empty, and the next event makes a new `ready` call.
    pub fn take(&self, out: &mut VecDeque<E>) -> bool {
        self.0.take_pulled(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what a puller is told; the test is its consumer.
    #[derive(Default)]
    struct Recorder {
        observed: Mutex<Vec<u32>>,
        ready: Mutex<Vec<EventSource<u32>>>,
    }

    impl Puller<u32> for Recorder {
        fn observe(&self, event: &u32) {
            self.observed.lock().unwrap().push(*event);
        }
        fn ready(&self, source: EventSource<u32>) {
            self.ready.lock().unwrap().push(source);
        }
    }

    impl Recorder {
        fn sources(&self) -> Vec<EventSource<u32>> {
            std::mem::take(&mut *self.ready.lock().unwrap())
        }
    }

    #[test]
    fn a_burst_is_handed_over_once_and_taken_in_order() {
        let queue = EventQueue::<u32>::new(16);
        let puller = Arc::new(Recorder::default());
        queue.set_pull(puller.clone()).unwrap();
        queue.hold();
        for e in 1..=3 {
            queue.push(e);
        }
        // Held: nobody is told until the burst ends, then once.
        assert!(puller.sources().is_empty());
        assert_eq!(*puller.observed.lock().unwrap(), [1, 2, 3]);
        queue.release();
        let sources = puller.sources();
        assert_eq!(sources.len(), 1);
        // Still the consumer's until it has taken everything: no second call.
        queue.push(4);
        assert!(puller.sources().is_empty());
        let mut out = VecDeque::new();
        assert!(!sources[0].take(&mut out));
        assert_eq!(out, [1, 2, 3, 4]);
        // Empty again: the next event is handed over anew.
        queue.push(5);
        let again = puller.sources();
        assert_eq!(again.len(), 1);
        out.clear();
        assert!(!again[0].take(&mut out));
        assert_eq!(out, [5]);
    }

    #[test]
    fn take_says_more_are_left_after_a_full_batch() {
        let queue = EventQueue::<u32>::new(1000);
        let puller = Arc::new(Recorder::default());
        queue.set_pull(puller.clone()).unwrap();
        for e in 0..100 {
            queue.push(e);
        }
        let sources = puller.sources();
        assert_eq!(sources.len(), 1);
        let mut out = VecDeque::new();
        assert!(sources[0].take(&mut out));
        assert_eq!(out.len(), 64);
        assert!(!sources[0].take(&mut out));
        assert_eq!(out, (0..100).collect::<Vec<_>>());
        assert!(puller.sources().is_empty());
    }

    #[test]
    fn events_queued_before_the_puller_are_observed_and_handed_over() {
        let queue = EventQueue::<u32>::new(16);
        queue.push(7);
        queue.push(8);
        let puller = Arc::new(Recorder::default());
        queue.set_pull(puller.clone()).unwrap();
        assert_eq!(*puller.observed.lock().unwrap(), [7, 8]);
        let sources = puller.sources();
        assert_eq!(sources.len(), 1);
        let mut out = VecDeque::new();
        assert!(!sources[0].take(&mut out));
        assert_eq!(out, [7, 8]);
    }

    #[test]
    fn taking_from_a_full_queue_makes_room_for_the_producer() {
        let queue = EventQueue::<u32>::new(2);
        let puller = Arc::new(Recorder::default());
        queue.set_pull(puller.clone()).unwrap();
        queue.push(1);
        queue.push(2);
        assert!(queue.is_full());
        let mut out = VecDeque::new();
        assert!(!puller.sources()[0].take(&mut out));
        assert!(!queue.is_full());
    }

    #[test]
    fn a_second_consumer_is_refused() {
        let queue = EventQueue::<u32>::new(16);
        queue.set_handler(Some(Box::new(|_| {})));
        let err = queue.set_pull(Arc::new(Recorder::default())).unwrap_err();
        assert!(err.to_string().contains("already has a consumer"), "{err}");
        queue.set_handler(None);
        queue.set_pull(Arc::new(Recorder::default())).unwrap();
        assert!(queue.set_pull(Arc::new(Recorder::default())).is_err());
    }

    #[test]
    fn a_handler_installed_after_the_puller_gets_nothing() {
        let queue = EventQueue::<u32>::new(16);
        let puller = Arc::new(Recorder::default());
        queue.set_pull(puller.clone()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        queue.set_handler(Some(Box::new(move |e| {
            let _ = tx.send(e);
        })));
        queue.push(1);
        let mut out = VecDeque::new();
        assert!(!puller.sources()[0].take(&mut out));
        assert_eq!(out, [1]);
        // The handler was dropped unused: its sender with it.
        assert!(rx.recv().is_err());
    }
}
