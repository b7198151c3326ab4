//! lbd patch: the queue of events the endpoint driver hands to one connection (incoming
//! datagrams, close, rebind).
//!
//! Upstream quinn uses tokio's unbounded mpsc channel here. Its first block holds 32
//! `ConnectionEvent`s (about 6.7 KB) and stays allocated for the connection's whole life, so every
//! idle connection paid for it. This queue is a `VecDeque` behind a mutex that holds no memory
//! while it is empty: the receiver gives the storage back each time it has drained the queue and
//! is about to wait. A busy connection pays one allocation per batch of events it wakes up for.

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use crate::ConnectionEvent;

/// A connected sender and receiver; there is exactly one of each.
pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let queue = Arc::new(Mutex::new(Queue {
        events: VecDeque::new(),
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (EventSender(queue.clone()), EventReceiver(queue))
}

struct Queue {
    events: VecDeque<ConnectionEvent>,
    /// The receiver's task, registered when it found the queue empty
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Nothing in `Queue` can be left half-updated by a panic, so a poisoned lock is still usable.
    queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The endpoint's side of the queue
pub(crate) struct EventSender(Arc<Mutex<Queue>>);

impl EventSender {
    /// Queues `event` and wakes the receiver; gives the event back if the receiver is gone.
    pub(crate) fn send(&self, event: ConnectionEvent) -> Result<(), ConnectionEvent> {
        let waker = {
            let mut queue = lock(&self.0);
            if queue.receiver_gone {
                return Err(event);
            }
            queue.events.push_back(event);
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let waker = {
            let mut queue = lock(&self.0);
            queue.sender_gone = true;
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender").finish_non_exhaustive()
    }
}

/// The connection's side of the queue
pub(crate) struct EventReceiver(Arc<Mutex<Queue>>);

impl EventReceiver {
    /// The next event; `Ready(None)` once the queue is empty and the sender is gone.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ConnectionEvent>> {
        let mut queue = lock(&self.0);
        if let Some(event) = queue.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if queue.sender_gone {
            return Poll::Ready(None);
        }
        if queue.events.capacity() > 0 {
            queue.events = VecDeque::new();
        }
        match &queue.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => queue.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let mut queue = lock(&self.0);
        queue.receiver_gone = true;
        queue.events = VecDeque::new();
        queue.waker = None;
    }
}
