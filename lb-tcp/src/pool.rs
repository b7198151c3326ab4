//! Per-worker, per-cluster upstream connections. HTTP/1.1: a LIFO pool of idle keep-alive
//! connections (the most recently used is the most likely to still be open; which to keep is
//! `lb_core::pool`'s decision). HTTP/2: one shared, multiplexed connection per endpoint, cloned
//! for each request.

use std::future::Future;
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use hyper::Request;
use lb_core::pool::IdleStack;

use crate::http::body::{RequestBody, UpBody};
use crate::http::client::{H1Conn, SendError};
use crate::http::error::ProxyError;
use crate::http::headers::Forwarding;
use crate::http::response_head::RawHeads;

/// A connection a request can go out on.
#[derive(Debug)]
pub enum Sender {
    /// One request at a time; the connection travels with the response body and comes back
    /// through [`Pool::put`].
    H1(Box<H1Conn>),
    /// Many streams at once (a clone of the shared handle).
    H2(http2::SendRequest<RequestBody>),
}

impl Sender {
    /// Sends a request with the forwarding headers `fwd` and waits for the response head. An error that gives the request back
    /// means it may be sent again on another connection.
    ///
    /// The request is borrowed (see [`H1Conn::send`]); hyper's HTTP/2 client takes it, and
    /// gives it back when it may go elsewhere. `raw`: an HTTP/1.1 response's headers may come
    /// unparsed (see [`H1Conn::send`]).
    #[allow(clippy::manual_async_fn)]
    pub fn send<'a>(
        self,
        req: &'a mut Request<RequestBody>,
        fwd: &'a Forwarding,
        raw: RawHeads,
    ) -> impl Future<Output = Result<hyper::Response<UpBody>, SendError>> + 'a {
        async move {
            match self {
                Self::H1(conn) => conn.send(req, fwd, raw).await.map(|r| r.map(UpBody::H1)),
                Self::H2(mut s) => {
                    fwd.apply(req.headers_mut());
                    if let Err(e) = s.ready().await {
                        return Err((ProxyError::Upstream(e.into()), true));
                    }
                    let taken = std::mem::replace(req, Request::new(RequestBody::empty()));
                    match s.try_send_request(taken).await {
                        Ok(r) => Ok(r.map(UpBody::H2)),
                        Err(mut e) => {
                            let back = e.take_message();
                            let again = back.is_some();
                            if let Some(back) = back {
                                *req = back;
                            }
                            Err((ProxyError::Upstream(e.into_error().into()), again))
                        }
                    }
                }
            }
        }
    }
}

/// Upstream connections, per endpoint index.
#[derive(Debug)]
pub struct Pool {
    idle: Vec<IdleStack<Box<H1Conn>>>,
    shared: Vec<Option<http2::SendRequest<RequestBody>>>,
    keep: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool for `endpoints` endpoints keeping `keep` idle HTTP/1.1 connections each for the
    /// idle timeout, and more while the load reuses them ([`IdleStack`]).
    pub fn new(endpoints: usize, keep: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: (0..endpoints).map(|_| IdleStack::default()).collect(),
            shared: (0..endpoints).map(|_| None).collect(),
            keep,
            idle_timeout,
        }
    }

    /// A usable connection to endpoint `ep`: the shared HTTP/2 one, or an idle HTTP/1.1 one that
    /// is still open and not expired. `careful`: the request cannot be resent, so the
    /// connection is checked for a close however briefly it was idle.
    pub fn take(&mut self, ep: usize, now: Instant, careful: bool) -> Option<Sender> {
        if let Some(Some(h2)) = self.shared.get(ep) {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
        }
        let stack = self.idle.get_mut(ep)?;
        stack.take(now, self.idle_timeout, |c, idle| c.reusable(idle, careful)).map(Sender::H1)
    }

    /// Makes `sender` the shared HTTP/2 connection of endpoint `ep`.
    pub fn share(&mut self, ep: usize, sender: &http2::SendRequest<RequestBody>) {
        if let Some(slot) = self.shared.get_mut(ep) {
            *slot = Some(sender.clone());
        }
    }

    /// Returns an HTTP/1.1 connection whose last response is complete.
    pub fn put(&mut self, ep: usize, conn: Box<H1Conn>, now: Instant) {
        if let Some(stack) = self.idle.get_mut(ep) {
            // Handed back (pooling off): dropped here, which closes it.
            drop(stack.put(conn, now, self.keep));
        }
    }

    /// Drops (closing) expired idle connections, those the backend closed, those above `keep`
    /// the load stopped using, and closed shared ones.
    pub fn sweep(&mut self, now: Instant) {
        for stack in &mut self.idle {
            stack.sweep(now, self.keep, self.idle_timeout, |c, idle| c.reusable(idle, false));
        }
        for slot in &mut self.shared {
            if slot.as_ref().is_some_and(http2::SendRequest::is_closed) {
                *slot = None;
            }
        }
    }
}
