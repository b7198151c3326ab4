//! Per-worker, per-cluster pool of idle upstream HTTP/1.1 connections (LIFO: the most recently
//! used connection is the most likely to still be open).

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// A connection's request handle.
pub type Sender = SendRequest<Incoming>;

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// Idle connections, per endpoint index.
#[derive(Debug)]
pub struct Pool {
    idle: Vec<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool for `endpoints` endpoints keeping at most `max_idle` per endpoint.
    pub fn new(endpoints: usize, max_idle: usize, idle_timeout: Duration) -> Self {
        Self { idle: (0..endpoints).map(|_| Vec::new()).collect(), max_idle, idle_timeout }
    }

    /// An idle connection to endpoint `ep` that is still open and not expired.
    pub fn take(&mut self, ep: usize, now: Instant) -> Option<Sender> {
        let list = self.idle.get_mut(ep)?;
        while let Some(c) = list.pop() {
            if !c.sender.is_closed() && now.saturating_duration_since(c.since) < self.idle_timeout {
                return Some(c.sender);
            }
        }
        None
    }

    /// Returns a connection whose last response is complete.
    pub fn put(&mut self, ep: usize, sender: Sender, now: Instant) {
        if let Some(list) = self.idle.get_mut(ep) {
            if list.len() < self.max_idle && !sender.is_closed() {
                list.push(Idle { sender, since: now });
            }
        }
    }

    /// Drops expired or closed idle connections (closing them).
    pub fn sweep(&mut self, now: Instant) {
        let timeout = self.idle_timeout;
        for list in &mut self.idle {
            list.retain(|c| !c.sender.is_closed() && now.saturating_duration_since(c.since) < timeout);
        }
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.iter().map(Vec::len).sum()
    }
}
