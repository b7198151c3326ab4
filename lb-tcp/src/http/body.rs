//! The response body lbd sends: an upstream body streamed frame by frame, or a short body of
//! its own. When an upstream HTTP/1.1 body ends cleanly its connection goes back to the pool;
//! when it is dropped early the connection is closed. Either way the endpoint's in-flight count
//! drops.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use lb_core::health::Outcome;

use super::client::H1Body;
use super::response_head::RawFields;
use crate::activity::Activity;
use crate::ctx::ClusterRt;

/// A response body from a backend.
#[derive(Debug)]
pub enum UpBody {
    /// From lbd's HTTP/1.1 client; holds its connection until the end.
    H1(H1Body),
    /// A stream of a shared HTTP/2 connection (hyper's client).
    H2(Incoming),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::H1(b) => Pin::new(b).poll_frame(cx),
            Self::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::H1(b) => b.is_end_stream(),
            Self::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::H1(b) => b.size_hint(),
            Self::H2(b) => b.size_hint(),
        }
    }
}

/// The `Content-Length` a request declares, when it is a number: what HTTP/2 and HTTP/3 request
/// bodies report as their size (their stacks hold the client to it).
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse().ok())
}

/// What to do when an upstream body ends.
#[derive(Debug)]
pub(crate) struct Release {
    pub(crate) cluster: Rc<ClusterRt>,
    pub(crate) endpoint: usize,
    pub(crate) outcome: Outcome,
}

impl Release {
    /// Ends the request on its endpoint; a cleanly finished HTTP/1.1 body gives its connection
    /// back to the pool.
    fn finish(self, body: &mut UpBody, clean: bool) {
        let now = Instant::now();
        self.cluster.state.borrow_mut().end_request(self.endpoint, self.outcome, now);
        if let (true, UpBody::H1(b)) = (clean, body) {
            if let Some(conn) = b.take_reusable() {
                self.cluster.pool.borrow_mut().put(self.endpoint, conn, now);
            }
        }
    }
}

/// Marks a request in flight on its client connection until the response body is gone, so the
/// idle watchdog never closes a connection that is still streaming.
#[derive(Debug)]
pub(crate) struct InFlight(Rc<Activity>);

impl InFlight {
    pub(crate) fn new(activity: Rc<Activity>) -> Self {
        activity.begin();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Kind {
    /// Streamed from a backend.
    Upstream {
        /// The backend's body.
        inner: UpBody,
        /// Released at the end.
        release: Option<Release>,
    },
    /// A body lbd made (errors); `None` once sent.
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> Self {
        Self { kind: Kind::Full(None), in_flight: None }
    }

    /// A short body of lbd's own.
    pub fn text(s: impl Into<Bytes>) -> Self {
        Self { kind: Kind::Full(Some(s.into())), in_flight: None }
    }

    pub(crate) fn upstream(inner: UpBody, release: Release) -> Self {
        Self { kind: Kind::Upstream { inner, release: Some(release) }, in_flight: None }
    }

    pub(crate) fn set_in_flight(&mut self, guard: InFlight) {
        self.in_flight = Some(guard);
    }

    /// The backend's fields, when they came already encoded for the client (an HTTP/1.1
    /// backend, asked for them by `ConnInfo::raw_heads`); the response's map then holds only
    /// what lbd added.
    pub fn take_fields(&mut self) -> Option<RawFields> {
        match &mut self.kind {
            Kind::Upstream { inner: UpBody::H1(b), .. } => b.take_fields(),
            _ => None,
        }
    }

    /// Whether the unparsed header lines hold an `Alt-Svc`.
    pub(crate) fn has_raw_alt_svc(&self) -> bool {
        matches!(&self.kind, Kind::Upstream { inner: UpBody::H1(b), .. } if b.has_alt_svc())
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { inner, release } => {
                let r = Pin::new(&mut *inner).poll_frame(cx);
                match &r {
                    Poll::Ready(None) => {
                        if let Some(rel) = release.take() {
                            rel.finish(inner, true);
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                        if let Some(rel) = release.take() {
                            rel.finish(inner, true);
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(mut rel) = release.take() {
                            rel.outcome = Outcome::ConnectFailure;
                            rel.finish(inner, false);
                        }
                    }
                    _ => {}
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Kind::Upstream { inner, release } = &mut self.kind {
            if let Some(rel) = release.take() {
                // A body that was complete when dropped (e.g. HEAD, 204) leaves a reusable connection.
                let clean = inner.is_end_stream();
                rel.finish(inner, clean);
            }
        }
    }
}

/// An error from a request body of another protocol stack (HTTP/3).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body from another protocol stack (HTTP/3's request stream). It need not be `Send`:
/// it lives on one worker.
pub type LocalBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError>>>;

/// A request body on its way to a backend: from hyper (HTTP/1.1, HTTP/2) or from another stack.
pub enum RequestBody {
    /// HTTP/1.1 from hyper.
    Hyper(Incoming),
    /// A client's HTTP/2 stream.
    H2(super::h2server::H2Body),
    /// HTTP/3 (or any other stack).
    Local(LocalBody),
}

impl RequestBody {
    /// No body (allocates nothing: the box holds a zero-sized body).
    pub fn empty() -> Self {
        Self::Local(Box::pin(http_body_util::BodyExt::map_err(http_body_util::Empty::new(), |never| match never {})))
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hyper(b) => b.fmt(f),
            Self::H2(b) => b.fmt(f),
            Self::Local(_) => f.write_str("RequestBody::Local"),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::H2(b) => Pin::new(b).poll_frame(cx),
            Self::Local(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(b) => b.is_end_stream(),
            Self::H2(b) => b.is_end_stream(),
            Self::Local(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(b) => b.size_hint(),
            Self::H2(b) => b.size_hint(),
            Self::Local(b) => b.size_hint(),
        }
    }
}
