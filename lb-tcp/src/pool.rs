//! Per-worker, per-cluster upstream connections. HTTP/1.1: a LIFO pool of idle keep-alive
//! connections (the most recently used is the most likely to still be open). HTTP/2: one shared,
//! multiplexed connection per endpoint, cloned for each request.

use std::time::{Duration, Instant};

use hyper::body::Incoming;

use crate::http::body::RequestBody;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper::{Request, Response};

/// A connection's request handle.
#[derive(Debug)]
pub enum Sender {
    /// One request at a time.
    H1(http1::SendRequest<RequestBody>),
    /// Many streams at once (a clone of the shared handle).
    H2(http2::SendRequest<RequestBody>),
}

impl Sender {
    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        match self {
            Self::H1(s) => s.is_closed(),
            Self::H2(s) => s.is_closed(),
        }
    }

    /// Waits until a request can be sent.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Self::H1(s) => s.ready().await,
            Self::H2(s) => s.ready().await,
        }
    }

    /// Sends a request; an error that gives the request back means it was never sent.
    pub async fn try_send(
        &mut self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        match self {
            Self::H1(s) => s.try_send_request(req).await,
            Self::H2(s) => s.try_send_request(req).await,
        }
    }
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// Upstream connections, per endpoint index.
#[derive(Debug)]
pub struct Pool {
    idle: Vec<Vec<Idle>>,
    shared: Vec<Option<http2::SendRequest<RequestBody>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool for `endpoints` endpoints keeping at most `max_idle` HTTP/1.1 connections each.
    pub fn new(endpoints: usize, max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: (0..endpoints).map(|_| Vec::new()).collect(),
            shared: (0..endpoints).map(|_| None).collect(),
            max_idle,
            idle_timeout,
        }
    }

    /// A usable connection to endpoint `ep`: the shared HTTP/2 one, or an idle HTTP/1.1 one that
    /// is still open and not expired.
    pub fn take(&mut self, ep: usize, now: Instant) -> Option<Sender> {
        if let Some(Some(h2)) = self.shared.get(ep) {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
        }
        let list = self.idle.get_mut(ep)?;
        while let Some(c) = list.pop() {
            if !c.sender.is_closed() && now.saturating_duration_since(c.since) < self.idle_timeout {
                return Some(Sender::H1(c.sender));
            }
        }
        None
    }

    /// Makes `sender` the shared HTTP/2 connection of endpoint `ep`.
    pub fn share(&mut self, ep: usize, sender: &http2::SendRequest<RequestBody>) {
        if let Some(slot) = self.shared.get_mut(ep) {
            *slot = Some(sender.clone());
        }
    }

    /// Returns a connection whose last response is complete (HTTP/2 handles just drop: the
    /// shared connection stays).
    pub fn put(&mut self, ep: usize, sender: Sender, now: Instant) {
        let Sender::H1(sender) = sender else { return };
        if let Some(list) = self.idle.get_mut(ep) {
            if list.len() < self.max_idle && !sender.is_closed() {
                list.push(Idle { sender, since: now });
            }
        }
    }

    /// Drops expired or closed idle connections (closing them) and closed shared ones.
    pub fn sweep(&mut self, now: Instant) {
        let timeout = self.idle_timeout;
        for list in &mut self.idle {
            list.retain(|c| !c.sender.is_closed() && now.saturating_duration_since(c.since) < timeout);
        }
        for slot in &mut self.shared {
            if slot.as_ref().is_some_and(http2::SendRequest::is_closed) {
                *slot = None;
            }
        }
    }
}
