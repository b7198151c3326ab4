//! A one-way, worker-local signal many tasks wait on: the worker's drain and a listener's
//! removal, as accept loops and connections see them.
//!
//! Written here rather than taken from `tokio::sync::watch`, whose `changed()` future is 120
//! bytes (a `Notified` waiter node) and takes a lock on each poll: every live connection waits
//! on two of these for its whole life. A waiter here is a slab slot holding its waker (24
//! bytes) and a key in the waiting future; polling it again reads a flag.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Raised once, never lowered.
#[derive(Debug, Default)]
pub struct Signal {
    raised: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Signal {
    /// Raises it and wakes every waiter.
    pub fn raise(&self) {
        if self.raised.replace(true) {
            return;
        }
        // Woken outside the borrow: a waker may drop a waiter of this signal.
        let wakers: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Whether it was raised.
    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Resolves once it is raised.
    pub fn wait(&self) -> Raised<'_> {
        Raised { signal: self, key: None }
    }
}

/// See [`Signal::wait`].
#[derive(Debug)]
pub struct Raised<'a> {
    signal: &'a Signal,
    key: Option<usize>,
}

impl Future for Raised<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.signal.raised.get() {
            // `raise` emptied the slab; the key is gone with it.
            this.key = None;
            return Poll::Ready(());
        }
        let mut waiters = this.signal.waiters.borrow_mut();
        match this.key.and_then(|k| waiters.get_mut(k)) {
            Some(w) => {
                if !w.will_wake(cx.waker()) {
                    w.clone_from(cx.waker());
                }
            }
            None => this.key = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        // Keys are not reused once raised (nothing is inserted after), so this is ours.
        if let Some(k) = self.key.filter(|_| !self.signal.raised.get()) {
            self.signal.waiters.borrow_mut().try_remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(f: &mut Raised<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn waiters_are_woken_once_when_raised_and_dropped_ones_leave_no_slot() {
        let s = Signal::default();
        let counts: Vec<Arc<Count>> = (0..3).map(|_| Arc::default()).collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
        let mut a = s.wait();
        let mut b = s.wait();
        let mut c = s.wait();
        assert!(poll(&mut a, &wakers[0]).is_pending());
        assert!(poll(&mut b, &wakers[1]).is_pending());
        assert!(poll(&mut c, &wakers[2]).is_pending());
        // Polled again with the same waker: still one slot each.
        assert!(poll(&mut a, &wakers[0]).is_pending());
        assert_eq!(s.waiters.borrow().len(), 3);
        drop(b);
        assert_eq!(s.waiters.borrow().len(), 2);
        assert!(!s.is_raised());
        s.raise();
        s.raise();
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::Relaxed)).collect();
        assert_eq!(woken, [1, 0, 1]);
        assert!(poll(&mut a, &wakers[0]).is_ready());
        assert!(poll(&mut c, &wakers[2]).is_ready());
        // Waiting after the raise resolves at once and takes no slot.
        let mut late = s.wait();
        assert!(poll(&mut late, &wakers[1]).is_ready());
        assert_eq!(s.waiters.borrow().len(), 0);
    }

    #[test]
    fn a_waiter_polled_with_another_waker_wakes_that_one() {
        let s = Signal::default();
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut w = s.wait();
        assert!(poll(&mut w, &Waker::from(first.clone())).is_pending());
        assert!(poll(&mut w, &Waker::from(second.clone())).is_pending());
        s.raise();
        assert_eq!((first.0.load(Ordering::Relaxed), second.0.load(Ordering::Relaxed)), (0, 1));
    }
}
