//! lbd's own HTTP/1.1 client for upstream connections.
//!
//! Written here rather than taken from hyper (whose client still serves HTTP/2 upstreams),
//! because this is the hot path: hyper drives each client connection in a task of its own and
//! hands requests and responses over channels, so every proxied request paid two task switches,
//! an mpsc and a oneshot, and the upstream side was ~40% of lbd's instructions per request
//! (callgrind, `bench/callgrind-h1.sh`). Here the request's own task writes the head and body
//! ([`H1Conn::send`]) and reads the response head; the response body is read by [`H1Body`] as
//! the client side pulls it, and the connection goes back to the pool when the body ends.
//!
//! Framing follows RFC 9112: a request body goes with its `Content-Length`, or chunked when its
//! length is unknown; a response is delimited by the request method (HEAD), its status (1xx,
//! 204, 304), `Transfer-Encoding: chunked`, `Content-Length`, or the close of the connection.
//! A connection is reused only when both messages were complete and nothing unexpected is left
//! in its buffer, so a malformed or over-long response can never be read as the next one.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::body::{BoxError, RequestBody};
use super::error::ProxyError;
use super::headers::{known_name, list_tokens, Forwarding};

/// Largest response head read (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) or trailer section.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// Read sizes: a head read, and the largest body read.
const READ_HEAD: usize = 8 * 1024;
const READ_BODY: usize = 64 * 1024;
/// Request body bytes gathered into the head's write before it goes out.
const COALESCE: usize = 16 * 1024;
/// A pooled connection idle longer than this is checked for a close before reuse. Under load
/// connections are reused within milliseconds and skip the check (a `recv` each).
const PROBE_AFTER: Duration = Duration::from_millis(100);

/// An upstream byte stream.
#[derive(Debug)]
pub enum UpIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS to the backend.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Counts open upstream HTTP/1.1 connections for `lbd_upstream_connections_active`: one per
/// [`H1Conn`], released when it is dropped, wherever that happens.
#[derive(Debug)]
struct Open(Rc<Cell<u64>>);

impl Open {
    fn new(gauge: &Rc<Cell<u64>>) -> Self {
        gauge.set(gauge.get() + 1);
        Self(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// One upstream HTTP/1.1 connection, between requests (in the pool) or while one is sent.
#[derive(Debug)]
pub struct H1Conn {
    io: UpIo,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The next request head (and small body) being written; kept to reuse its allocation.
    wbuf: Vec<u8>,
    /// Whether this connection carried a request before.
    used: bool,
    /// Set by any error: the connection is not reused.
    broken: bool,
    _open: Open,
}

/// How a request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqFraming {
    None,
    Length(u64),
    Chunked,
}

/// A failed send, and whether the request may be sent again elsewhere (nothing of it was
/// consumed, and the connection failed before it could have been acted on).
pub type SendError = (ProxyError, bool);

impl H1Conn {
    /// A new connection over `io`, counted in `gauge`.
    pub fn new(io: UpIo, gauge: &Rc<Cell<u64>>) -> Self {
        Self { io, buf: BytesMut::new(), wbuf: Vec::new(), used: false, broken: false, _open: Open::new(gauge) }
    }

    /// Whether this pooled connection, idle for `idle`, may carry another request. One idle for
    /// a while, or about to carry a request that could not be resent (`careful`), is checked
    /// for a close by the backend with a `recv` peek. Requests that skip the check and meet a
    /// closed connection are resent by [`H1Conn::send`] when idempotent.
    pub fn reusable(&self, idle: Duration, careful: bool) -> bool {
        if self.broken || !self.buf.is_empty() {
            return false;
        }
        if idle < PROBE_AFTER && !careful {
            return true;
        }
        // TLS: the first response read took the session tickets too, so anything waiting on the
        // socket now is an alert or a close.
        let tcp = match &self.io {
            UpIo::Plain(s) => s,
            UpIo::Tls(s) => s.get_ref().0,
        };
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Pending: nothing to read, still open. EOF, an error or unsolicited bytes: gone.
        tcp.poll_peek(&mut cx, &mut rb).is_pending()
    }

    /// Sends `req` and reads the response head. The body is read by the returned [`H1Body`],
    /// which owns the connection until the body ends.
    ///
    /// The request is borrowed: it stays in the caller's state, once, for a retry elsewhere
    /// (each future that took it by value kept its own 272-byte copy). With `raw` other than
    /// [`RawHeads::No`], the response's headers come as [`RawFields`] (see
    /// [`H1Body::take_fields`]).
    #[allow(clippy::manual_async_fn)]
    pub fn send<'a>(
        mut self: Box<Self>,
        req: &'a mut Request<RequestBody>,
        fwd: &'a Forwarding,
        raw: RawHeads,
    ) -> impl Future<Output = Result<Response<H1Body>, SendError>> + 'a {
        async move {
            let reused = std::mem::replace(&mut self.used, true);
            let head_only = req.method() == Method::HEAD;
            let framing = self.encode_head(req, fwd);
            let mut body_started = false;
            // Marked for another connection only while intact and not acted on:
            // its head did not fully go out, or a reused connection closed before any reply to an
            // idempotent request (a backend's keep-alive timeout racing the request).
            match self.write_request(req, framing, &mut body_started).await {
                Ok(()) => {}
                Err(WriteError::Body(e)) => {
                    self.broken = true;
                    return Err((ProxyError::Upstream(e), false));
                }
                Err(WriteError::Answered) => {
                    // The rest of the request was never sent: the connection ends with this answer.
                    self.broken = true;
                    return match self.read_head(head_only, raw).await {
                        Ok(mut resp) => {
                            resp.body_mut().keep_alive = false;
                            Ok(resp)
                        }
                        Err(HeadError { error, .. }) => Err((ProxyError::Upstream(error.into()), false)),
                    };
                }
                Err(WriteError::Io(e)) => {
                    self.broken = true;
                    // A backend may answer early (a 413 before the whole upload) and close: its
                    // answer is what the client should get, if it is already here.
                    if let Ok(Ok(resp)) = tokio::time::timeout(Duration::ZERO, self.read_head(head_only, raw)).await {
                        return Ok(resp);
                    }
                    return Err((ProxyError::Upstream(e.into()), !body_started));
                }
            }
            match self.read_head(head_only, raw).await {
                Ok(resp) => Ok(resp),
                Err(HeadError { error, nothing_read }) => {
                    let again = nothing_read && reused && !body_started && is_idempotent(req.method());
                    Err((ProxyError::Upstream(error.into()), again))
                }
            }
        }
    }

    /// Writes the request line, the request's headers with `fwd`'s in place of the client's
    /// copies, into `wbuf`; returns the body's framing.
    fn encode_head(&mut self, req: &Request<RequestBody>, fwd: &Forwarding) -> ReqFraming {
        let w = &mut self.wbuf;
        w.clear();
        w.extend_from_slice(req.method().as_str().as_bytes());
        w.push(b' ');
        // Origin-form, whatever form the client used.
        w.extend_from_slice(req.uri().path_and_query().map_or("/", |p| p.as_str()).as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        let mut length = None;
        for (name, value) in req.headers() {
            if name == header::CONTENT_LENGTH {
                length = std::str::from_utf8(value.as_bytes()).ok().and_then(|v| v.trim().parse::<u64>().ok());
            } else if name == header::EXPECT || fwd.replaces(name) {
                // Expect: the body is sent without waiting for `100 Continue` (the client
                // already got one from lbd when its body was first read).
                continue;
            }
            put_header(w, name, value.as_bytes());
        }
        fwd.each(|name, value| put_header(w, name, value));
        let body = req.body();
        let framing = match length {
            Some(n) => ReqFraming::Length(n),
            // An exact size of 0 first: hyper's HTTP/2 body knows it without asking h2, whose
            // `is_end_stream` takes the connection's stream lock.
            None if body.size_hint().exact() == Some(0) || body.is_end_stream() => {
                if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
                    w.extend_from_slice(b"content-length: 0\r\n");
                }
                ReqFraming::None
            }
            None => match body.size_hint().exact() {
                Some(n) => {
                    let _ = write!(w, "content-length: {n}\r\n");
                    ReqFraming::Length(n)
                }
                None => {
                    w.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    ReqFraming::Chunked
                }
            },
        };
        w.extend_from_slice(b"\r\n");
        framing
    }

    /// Writes the head in `wbuf` and the body. Body bytes that are ready at once go out with
    /// the head in one write.
    async fn write_request(
        &mut self,
        req: &mut Request<RequestBody>,
        framing: ReqFraming,
        body_started: &mut bool,
    ) -> Result<(), WriteError> {
        let mut left = match framing {
            ReqFraming::None => {
                self.io.write_all(&self.wbuf).await.map_err(WriteError::Io)?;
                return self.io.flush().await.map_err(WriteError::Io);
            }
            ReqFraming::Length(n) => n,
            ReqFraming::Chunked => u64::MAX,
        };
        let chunked = framing == ReqFraming::Chunked;
        loop {
            let mut polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(req.body_mut()).poll_frame(cx))).await;
            if polled.is_pending() {
                if !self.wbuf.is_empty() {
                    self.write_wbuf_watching().await?;
                    self.io.flush().await.map_err(WriteError::Io)?;
                }
                polled = Poll::Ready(std::future::poll_fn(|cx| Pin::new(req.body_mut()).poll_frame(cx)).await);
            }
            let Poll::Ready(frame) = polled else { continue };
            let frame = match frame {
                None => break,
                Some(Err(e)) => return Err(WriteError::Body(e)),
                Some(Ok(f)) => f,
            };
            *body_started = true;
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(frame) => {
                    if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                        self.wbuf.extend_from_slice(b"0\r\n");
                        for (name, value) in &trailers {
                            self.wbuf.extend_from_slice(name.as_str().as_bytes());
                            self.wbuf.extend_from_slice(b": ");
                            self.wbuf.extend_from_slice(value.as_bytes());
                            self.wbuf.extend_from_slice(b"\r\n");
                        }
                        self.wbuf.extend_from_slice(b"\r\n");
                        left = 0;
                        break;
                    }
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            let n = data.len() as u64;
            if !chunked {
                if n > left {
                    return Err(WriteError::Body("request body longer than its Content-Length".into()));
                }
                left -= n;
            } else {
                let _ = write!(self.wbuf, "{n:x}\r\n");
            }
            if self.wbuf.len() + data.len() <= COALESCE {
                self.wbuf.extend_from_slice(&data);
            } else {
                self.write_wbuf_watching().await?;
                self.write_watching(&data).await?;
            }
            if chunked {
                self.wbuf.extend_from_slice(b"\r\n");
            }
        }
        if chunked && left != 0 {
            self.wbuf.extend_from_slice(b"0\r\n\r\n");
        } else if !chunked && left != 0 {
            return Err(WriteError::Body("request body shorter than its Content-Length".into()));
        }
        if !self.wbuf.is_empty() {
            self.write_wbuf_watching().await?;
        }
        self.io.flush().await.map_err(WriteError::Io)
    }

    /// Writes (and clears) `wbuf`, as [`H1Conn::write_watching`].
    async fn write_wbuf_watching(&mut self) -> Result<(), WriteError> {
        let wbuf = std::mem::take(&mut self.wbuf);
        let r = self.write_watching(&wbuf).await;
        self.wbuf = wbuf;
        self.wbuf.clear();
        r
    }

    /// Writes request body bytes while watching for an early answer: a backend may answer
    /// before the whole body is sent (a 413 mid-upload) and stop reading. Bytes that arrive
    /// meanwhile are read into `buf`; once they hold a final response head, writing stops
    /// ([`WriteError::Answered`]) and that answer is what the client gets.
    async fn write_watching(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let mut at = 0;
        std::future::poll_fn(|cx| loop {
            if self.buf.len() < MAX_HEAD {
                self.buf.reserve(READ_HEAD.min(MAX_HEAD - self.buf.len()));
                if let Poll::Ready(Ok(n)) = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
                    if n > 0 && answered(&mut self.buf) {
                        return Poll::Ready(Err(WriteError::Answered));
                    }
                    // EOF or an error here: the write below finds out.
                }
            }
            if at == data.len() {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(cx, &data[at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(WriteError::Io(io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => at += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(WriteError::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// Reads until a final response head (1xx other than 101 are skipped).
    async fn read_head(mut self: Box<Self>, head_only: bool, raw: RawHeads) -> Result<Response<H1Body>, HeadError> {
        let mut nothing_read = true;
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, head_only, raw) {
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Informational) => continue,
                    Ok(Parsed::Final { status, version, headers, fields, framing, keep_alive }) => {
                        let mut resp = Response::new(H1Body { framing, keep_alive, fields, conn: Some(self) });
                        *resp.status_mut() = status;
                        *resp.version_mut() = version;
                        *resp.headers_mut() = headers;
                        return Ok(resp);
                    }
                    Err(reason) => {
                        self.broken = true;
                        return Err(HeadError {
                            error: io::Error::new(io::ErrorKind::InvalidData, reason),
                            nothing_read: false,
                        });
                    }
                }
                if self.buf.len() >= MAX_HEAD {
                    self.broken = true;
                    let error = io::Error::new(io::ErrorKind::InvalidData, "response head too large");
                    return Err(HeadError { error, nothing_read: false });
                }
            }
            self.buf.reserve(READ_HEAD);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => {
                    self.broken = true;
                    let error = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response");
                    return Err(HeadError { error, nothing_read });
                }
                Ok(_) => nothing_read = false,
                Err(error) => {
                    self.broken = true;
                    return Err(HeadError { error, nothing_read });
                }
            }
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<io::Result<usize>> {
        let want = usize::try_from(want).unwrap_or(READ_BODY).clamp(READ_HEAD, READ_BODY);
        self.buf.reserve(want);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// The stream and what was read past the `101` response head: an upgraded connection.
    pub fn into_upgraded(self) -> (UpIo, BytesMut) {
        (self.io, self.buf)
    }
}

fn put_header(w: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    w.extend_from_slice(name.as_str().as_bytes());
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// Methods a client may repeat (RFC 9110 §9.2.2).
pub fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

enum WriteError {
    Io(io::Error),
    Body(BoxError),
    /// The backend answered before the request was complete.
    Answered,
}

/// Whether `buf` starts with a complete final response head; informational (1xx other than
/// 101) heads before it are consumed.
fn answered(buf: &mut BytesMut) -> bool {
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
        let informational = buf.len() > 12 && buf[9] == b'1' && &buf[9..12] != b"101";
        if !informational {
            return true;
        }
        buf.advance(end + 4);
    }
}

struct HeadError {
    error: io::Error,
    /// Nothing at all came back.
    nothing_read: bool,
}

enum Parsed {
    Partial,
    Informational,
    Final {
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        fields: Option<RawFields>,
        framing: Framing,
        keep_alive: bool,
    },
}

/// Whether a response's headers are wanted without a `HeaderMap`, and how they are encoded then
/// (see [`RawFields`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RawHeads {
    /// In the response's map.
    #[default]
    No,
    /// As HTTP/1.1 header lines, for lbd's own HTTP/1.1 server.
    Http1,
    /// As an HPACK block of literals without indexing, for the HTTP/2 server
    /// (`h2::server::encode_literal_field`).
    Http2,
    /// As QPACK field lines without the dynamic table, for the HTTP/3 server
    /// (`h3::server::encode_field_line`).
    Http3,
}

/// A response's headers as the backend sent them, less the hop-by-hop ones and
/// `Transfer-Encoding`, already encoded for the client's protocol: what lbd's HTTP/1.1 and
/// HTTP/2 servers send in place of a `HeaderMap` when no part of lbd reads or changes the
/// response's headers (see `ConnInfo::raw_heads`). The map cost a copy of the head, a `Bytes`
/// per value, a hash per name and their encoding again: about 2.5k of 17.6k instructions per
/// proxied HTTP/1.1 request (callgrind).
#[derive(Debug, Default)]
pub struct RawFields {
    /// `name: value\r\n` lines as the backend wrote them ([`RawHeads::Http1`]), or the same
    /// fields HPACK- or QPACK-encoded with lowercase names ([`RawHeads::Http2`], `Http3`).
    pub lines: Vec<u8>,
    /// Their size as HTTP/2 and HTTP/3 count a field section (name, value and 32 per field).
    pub size: u64,
    /// Whether `lines` hold a `Content-Length` (never for a 101 or 204), a `Date`, an `Alt-Svc`.
    pub has_length: bool,
    pub has_date: bool,
    pub has_alt_svc: bool,
}

/// The response header names the client acts on, told apart by their bytes in any case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Date,
    AltSvc,
    /// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `TE`, `Trailer`, `Upgrade`: the
    /// hop-by-hop ones, besides those above (as `strip_hop_by_hop` removes them).
    HopByHop,
    Other,
}

fn field(name: &[u8]) -> Field {
    let is = |s: &[u8]| token_eq(name, s);
    // The length decides almost always.
    match name.len() {
        2 if is(b"te") => Field::HopByHop,
        4 if is(b"date") => Field::Date,
        7 if is(b"trailer") || is(b"upgrade") => Field::HopByHop,
        7 if is(b"alt-svc") => Field::AltSvc,
        10 if is(b"connection") => Field::Connection,
        10 if is(b"keep-alive") => Field::HopByHop,
        14 if is(b"content-length") => Field::ContentLength,
        16 if is(b"proxy-connection") => Field::HopByHop,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        18 if is(b"proxy-authenticate") => Field::HopByHop,
        _ => Field::Other,
    }
}

/// Whether the token `name` (as httparse passed it) is `lower` in any case, for `lower` of
/// lowercase letters and `-`. Eight bytes at a time with the case bit set: among token
/// characters only an uppercase letter becomes a lowercase one that way, and only `-` stays
/// `-` (a byte-wise `eq_ignore_ascii_case` was 3% of a request's instructions).
fn token_eq(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name, lower);
    while a.len() >= 8 {
        let (x, y) = (u64::from_le_bytes(word(a)), u64::from_le_bytes(word(b)));
        if x | 0x2020_2020_2020_2020 != y {
            return false;
        }
        (a, b) = (&a[8..], &b[8..]);
    }
    a.iter().zip(b).all(|(x, y)| x | 0x20 == *y)
}

fn word(s: &[u8]) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&s[..8]);
    w
}

/// Appends `name: value` to an HPACK or QPACK field section, the name lowercased (HTTP/2 and
/// HTTP/3 have no other case); returns the field's size.
fn put_encoded(how: RawHeads, block: &mut Vec<u8>, name: &[u8], value: &[u8]) -> u64 {
    let mut lower = [0u8; 64];
    let long;
    let name = match lower.get_mut(..name.len()) {
        Some(to) => {
            to_lower(name, to);
            &*to
        }
        None => {
            long = name.to_ascii_lowercase();
            &long[..]
        }
    };
    if how == RawHeads::Http3 {
        return h3::server::encode_field_line(name, value, block);
    }
    h2::server::encode_literal_field(name, value, block);
    (name.len() + value.len() + 32) as u64
}

/// `name` lowercased into `to` (as long), eight bytes at a time: a header name is ASCII (httparse
/// lets only token characters through), and in a word of ASCII bytes adding 0x3f sets the top bit
/// of each byte from `A` up and adding 0x25 that of each byte above `Z`, with no carry between
/// bytes, so the difference marks the uppercase letters.
fn to_lower(name: &[u8], to: &mut [u8]) {
    let ascii_lower = |w: u64| {
        let upper =
            (w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f) & !w.wrapping_add(0x2525_2525_2525_2525)) & 0x8080_8080_8080_8080;
        w | (upper >> 2)
    };
    let (mut from, mut into) = (name, to);
    while from.len() >= 8 && from[..8].is_ascii() {
        into[..8].copy_from_slice(&ascii_lower(u64::from_le_bytes(word(from))).to_le_bytes());
        (from, into) = (&from[8..], &mut into[8..]);
    }
    for (l, c) in into.iter_mut().zip(from) {
        *l = c.to_ascii_lowercase();
    }
}

/// What a response's framing headers say.
#[derive(Default)]
struct Scan {
    length: Option<u64>,
    chunked: bool,
    te: bool,
    close: bool,
    keep_alive_token: bool,
}

impl Scan {
    fn content_length(&mut self, value: &[u8]) -> Result<(), &'static str> {
        let n = std::str::from_utf8(value).ok().and_then(|s| s.trim().parse::<u64>().ok());
        match (n, self.length) {
            (None, _) => Err("invalid Content-Length"),
            (Some(n), Some(prev)) if n != prev => Err("conflicting Content-Length"),
            (Some(n), _) => {
                self.length = Some(n);
                Ok(())
            }
        }
    }

    /// Re-framed by the client side: only whether it ends in `chunked` matters.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te = true;
        self.chunked =
            value.rsplit(|b| *b == b',').next().is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    }

    /// Whether this `Connection` names headers (other than `close` and `keep-alive`).
    fn connection(&mut self, value: &[u8]) -> bool {
        let mut named = false;
        for t in list_tokens(value) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive_token = true;
            } else if !t.is_empty() {
                named = true;
            }
        }
        named
    }
}

/// Parses a response head at the start of `buf`, consuming it when complete. With `raw`, the
/// headers come back as [`RawFields`] (and an empty map), unless `Connection` names headers to
/// remove, which the proxy does on the map.
fn parse_head(buf: &mut BytesMut, head_only: bool, raw: RawHeads) -> Result<Parsed, &'static str> {
    // Uninitialised slots: zeroing 100 of them cost more than parsing a typical head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("malformed response head"),
    };
    let code = res.code.ok_or("malformed response head")?;
    if (100..200).contains(&code) && code != 101 {
        buf.advance(len);
        return Ok(Parsed::Informational);
    }
    let http10 = res.version == Some(0);
    let status = StatusCode::from_u16(code).map_err(|_| "invalid response status")?;
    let mut scan = Scan::default();
    let mut map = HeaderMap::new();
    let mut fields = None;
    if raw != RawHeads::No {
        let mut f = RawFields { lines: Vec::with_capacity(len), ..RawFields::default() };
        let mut named = false;
        for h in res.headers.iter() {
            match field(h.name.as_bytes()) {
                Field::ContentLength => {
                    scan.content_length(h.value)?;
                    // hyper's server drops it from these too.
                    if code == 101 || code == 204 {
                        continue;
                    }
                    f.has_length = true;
                }
                Field::TransferEncoding => {
                    scan.transfer_encoding(h.value);
                    continue;
                }
                Field::Connection => {
                    named |= scan.connection(h.value);
                    continue;
                }
                Field::HopByHop => continue,
                Field::Date => f.has_date = true,
                Field::AltSvc => f.has_alt_svc = true,
                Field::Other => {}
            }
            match raw {
                RawHeads::Http2 | RawHeads::Http3 => {
                    f.size += put_encoded(raw, &mut f.lines, h.name.as_bytes(), h.value)
                }
                _ => {
                    f.lines.extend_from_slice(h.name.as_bytes());
                    f.lines.extend_from_slice(b": ");
                    f.lines.extend_from_slice(h.value);
                    f.lines.extend_from_slice(b"\r\n");
                }
            }
        }
        if named {
            scan = Scan::default();
        } else {
            fields = Some(f);
        }
    }
    if fields.is_none() {
        // The header values share one copy of the head (a few hundred bytes), so the read
        // buffer stays uniquely owned and reusable.
        let head = Bytes::copy_from_slice(&buf[..len]);
        let base = buf.as_ptr() as usize;
        // Room for two more: lbd's `Alt-Svc` and hyper's HTTP/2 `Date` check, since `entry`
        // makes room for one before it looks (a full map was grown and copied twice per response).
        map.reserve(res.headers.len() + 2);
        for h in res.headers.iter() {
            let name = match known_name(h.name.as_bytes()) {
                Some(n) => n,
                None => HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid response header name")?,
            };
            if name == header::CONTENT_LENGTH {
                scan.content_length(h.value)?;
            } else if name == header::TRANSFER_ENCODING {
                scan.transfer_encoding(h.value);
                continue;
            } else if name == header::CONNECTION {
                // Dropped here unless it names other headers, which the proxy then removes
                // (with the other hop-by-hop ones).
                if !scan.connection(h.value) {
                    continue;
                }
            } else if name.as_str() == "keep-alive" {
                continue;
            }
            let at = h.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
                .map_err(|_| "invalid response header value")?;
            map.append(name, value);
        }
    }
    let Scan { length, chunked, te, close, keep_alive_token } = scan;
    buf.advance(len);
    let framing = if head_only || code == 101 || code == 204 || code == 304 {
        Framing::Length(0)
    } else if te {
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    // Both Transfer-Encoding and Content-Length: the message is read by the former, and the
    // connection is not trusted with another (RFC 9112 §6.3).
    let both = te && length.is_some();
    // After a 101 the connection speaks another protocol: it is a tunnel or nothing, never
    // the pool's again.
    let keep_alive = !close && !both && code != 101 && framing != Framing::Close && (!http10 || keep_alive_token);
    let version = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    Ok(Parsed::Final { status, version, headers: map, fields, framing, keep_alive })
}

/// How the response body ends.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// At the close of the connection.
    Close,
}

#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading the trailer section.
    Trailers,
    Done,
}

/// A response body read from an upstream HTTP/1.1 connection, which it holds until the end.
#[derive(Debug)]
pub struct H1Body {
    framing: Framing,
    keep_alive: bool,
    /// The headers, when asked for unparsed and not yet taken.
    fields: Option<RawFields>,
    conn: Option<Box<H1Conn>>,
}

impl H1Body {
    /// The connection, when the body ended cleanly and it may carry another request.
    pub fn take_reusable(&mut self) -> Option<Box<H1Conn>> {
        let done = self.is_end_stream();
        let conn = self.conn.take()?;
        (done && self.keep_alive && !conn.broken && conn.buf.is_empty()).then_some(conn)
    }

    /// The response's headers, when they were asked for unparsed ([`H1Conn::send`]'s `raw`).
    pub fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }

    /// Whether the unparsed headers hold an `Alt-Svc`.
    pub fn has_alt_svc(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| f.has_alt_svc)
    }

    /// The connection of a `101 Switching Protocols` response.
    pub fn take_upgraded(&mut self) -> Option<Box<H1Conn>> {
        self.conn.take()
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(c) = self.conn.as_mut() {
            c.broken = true;
        }
        self.keep_alive = false;
        Poll::Ready(Some(Err(e.into())))
    }
}

fn eof(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what)
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Position of the first `\n` in `buf`'s first `limit` bytes.
fn line_end(buf: &[u8], limit: usize) -> Option<usize> {
    buf[..buf.len().min(limit)].iter().position(|b| *b == b'\n')
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|b| *b == b';').next()?.trim_ascii();
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    let s = std::str::from_utf8(size).ok()?;
    u64::from_str_radix(s, 16).ok()
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            // What the buffer holds decides; a read happens only when it cannot.
            let want = match &mut this.framing {
                Framing::Length(0) | Framing::Chunked(Chunk::Done) => return Poll::Ready(None),
                Framing::Length(n) | Framing::Chunked(Chunk::Data(n)) => {
                    if conn.buf.is_empty() {
                        *n
                    } else {
                        let k = usize::try_from(*n).unwrap_or(usize::MAX).min(conn.buf.len());
                        *n -= k as u64;
                        let data = conn.buf.split_to(k).freeze();
                        if this.framing == Framing::Chunked(Chunk::Data(0)) {
                            this.framing = Framing::Chunked(Chunk::DataEnd);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        let all = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(all))));
                    }
                    READ_BODY as u64
                }
                Framing::Chunked(state) => match state {
                    Chunk::Size => match line_end(&conn.buf, MAX_LINE) {
                        Some(i) => {
                            let size = parse_chunk_size(&conn.buf[..=i]);
                            conn.buf.advance(i + 1);
                            let Some(size) = size else { return this.fail(invalid("bad chunk size")) };
                            *state = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                            continue;
                        }
                        None if conn.buf.len() >= MAX_LINE => return this.fail(invalid("chunk size line too long")),
                        None => 0,
                    },
                    Chunk::DataEnd => {
                        if conn.buf.len() >= 2 {
                            if &conn.buf[..2] != b"\r\n" {
                                return this.fail(invalid("chunk not followed by CRLF"));
                            }
                            conn.buf.advance(2);
                            *state = Chunk::Size;
                            continue;
                        }
                        0
                    }
                    Chunk::Trailers => match trailer_section(&conn.buf) {
                        Ok(Some(len)) => {
                            let section = conn.buf.split_to(len);
                            *state = Chunk::Done;
                            let trailers = parse_trailers(&section);
                            if trailers.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(None) => 0,
                        Err(e) => return this.fail(e),
                    },
                    // Taken by the arms above.
                    Chunk::Data(_) | Chunk::Done => return Poll::Ready(None),
                },
            };
            match ready!(conn.poll_fill(cx, want)) {
                Ok(0) => {
                    if this.framing == Framing::Close {
                        // The end of a close-delimited body; the connection is done.
                        this.framing = Framing::Length(0);
                        conn.broken = true;
                        return Poll::Ready(None);
                    }
                    return this.fail(eof("upstream closed mid-body"));
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// The length of a complete trailer section (ending in an empty line) at the start of `buf`.
fn trailer_section(buf: &[u8]) -> Result<Option<usize>, io::Error> {
    let mut at = 0;
    loop {
        match line_end(&buf[at..], MAX_TRAILERS) {
            Some(i) => {
                let line = &buf[at..at + i];
                at += i + 1;
                if line.trim_ascii().is_empty() {
                    return Ok(Some(at));
                }
                if at > MAX_TRAILERS {
                    return Err(invalid("trailer section too large"));
                }
            }
            None if buf.len() - at >= MAX_TRAILERS || at > MAX_TRAILERS => {
                return Err(invalid("trailer section too large"));
            }
            None => return Ok(None),
        }
    }
}

fn parse_trailers(section: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in section.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_only: bool) -> (Response<()>, Framing, bool, BytesMut) {
        let mut buf = BytesMut::from(raw);
        match parse_head(&mut buf, head_only, RawHeads::No) {
            Ok(Parsed::Final { status, version, headers, framing, keep_alive, .. }) => {
                let mut resp = Response::new(());
                *resp.status_mut() = status;
                *resp.version_mut() = version;
                *resp.headers_mut() = headers;
                (resp, framing, keep_alive, buf)
            }
            Ok(Parsed::Partial) => panic!("partial"),
            Ok(Parsed::Informational) => panic!("informational"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn other_spellings_of_the_framing_headers_still_frame_the_response() {
        let (r, f, _, _) = parse(b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nX-Served-By: a\r\n\r\nok", false);
        assert_eq!(f, Framing::Length(2));
        assert_eq!(r.headers().get("x-served-by").map(HeaderValue::as_bytes), Some(&b"a"[..]));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let (r, f, ka, rest) =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nhello", false);
        assert_eq!((r.status(), f, ka), (StatusCode::OK, Framing::Length(5), true));
        assert_eq!(&rest[..], b"hello");
        assert!(r.headers().get("connection").is_none(), "keep-alive-only Connection is dropped");
        assert_eq!(r.headers().get("x-a").map(HeaderValue::as_bytes), Some(&b"b"[..]));
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Chunked(Chunk::Size), true));
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Close, false), "no length: read to close");
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!((f, ka), (Framing::Length(0), true), "a HEAD response has no body");
        let (_, f, _, _) = parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false);
        assert_eq!(f, Framing::Length(0));
        let (_, _, ka, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false);
        assert!(!ka);
        let (_, _, ka, _) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert!(!ka, "HTTP/1.0 closes unless it says keep-alive");
        let (_, f, ka, _) = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Length(0), false), "a switched connection never returns to the pool");
        let (_, _, ka, _) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false);
        assert!(!ka, "TE with CL: not trusted with another request");
        let (r, _, _, _) =
            parse(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nContent-Length: 0\r\n\r\n", false);
        assert!(r.headers().get("connection").is_some(), "kept so the proxy removes the headers it names");
    }

    fn raw(raw: &[u8]) -> (Option<RawFields>, HeaderMap, Framing, bool) {
        match parse_head(&mut BytesMut::from(raw), false, RawHeads::Http1) {
            Ok(Parsed::Final { fields, headers, framing, keep_alive, .. }) => (fields, headers, framing, keep_alive),
            _ => panic!("not a final head: {}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn unparsed_headers_are_the_backends_lines_less_hop_by_hop_ones() {
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\
            Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
            Proxy-Connection: x\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\n\
            X-Multi: a\r\nx-multi:  b\r\nalt-svc: h3=\":443\"\r\n\r\nhello";
        let (f, map, framing, ka) = raw(head);
        let f = f.expect("asked for unparsed headers");
        assert_eq!(
            String::from_utf8_lossy(&f.lines),
            "Server: nginx\r\nDate: Wed, 02 Dec 2026 01:00:00 GMT\r\nContent-Type: text/plain\r\n\
             Content-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\nalt-svc: h3=\":443\"\r\n"
        );
        assert!(f.has_length && f.has_date && f.has_alt_svc);
        assert!(map.is_empty());
        assert_eq!((framing, ka), (Framing::Length(5), true), "framed as the map's path frames it");
        // The same head through the map keeps what the proxy's hop-by-hop pass then removes.
        let (r, framing, _, _) = parse(head, false);
        assert_eq!(framing, Framing::Length(5));
        assert_eq!(r.headers().get_all("x-multi").iter().count(), 2);
        assert!(r.headers().contains_key("proxy-connection") && r.headers().contains_key("upgrade"));

        let (f, _, framing, ka) = raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let f = f.expect("unparsed");
        assert!(f.lines.is_empty() && !f.has_length && !f.has_date, "no length on a 204");
        assert_eq!((framing, ka), (Framing::Length(0), false));
        let (f, _, framing, _) = raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n");
        assert_eq!(f.map(|f| f.lines), Some(b"X: y\r\n".to_vec()));
        assert_eq!(framing, Framing::Chunked(Chunk::Size));

        // `Connection` naming a header: the map, so that the proxy removes it.
        let (f, map, _, _) = raw(b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n");
        assert!(f.is_none());
        assert!(map.contains_key("connection") && map.contains_key("x-hop"));
    }

    #[test]
    fn header_names_are_told_apart_as_eq_ignore_ascii_case_would() {
        // RFC 9110 tchar: what httparse lets through as a header name.
        let tchars: Vec<u8> =
            (0u8..128).filter(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c)).collect();
        for &c in &tchars {
            for p in b'a'..=b'z' {
                assert_eq!(token_eq(&[c], &[p]), c.eq_ignore_ascii_case(&p), "{c} vs {p}");
            }
            assert_eq!(token_eq(&[c], b"-"), c == b'-', "{c}");
        }
        for name in ["Content-Length", "CONTENT-LENGTH", "content-length", "Transfer-Encoding", "Proxy-Authenticate"] {
            let lower = name.to_ascii_lowercase();
            assert!(token_eq(name.as_bytes(), lower.as_bytes()), "{name}");
        }
        for (name, lower) in
            [("Content_Length", "content-length"), ("Content-Lengtg", "content-length"), ("Date", "dat")]
        {
            assert!(!token_eq(name.as_bytes(), lower.as_bytes()), "{name}");
        }
        assert!(field(b"PROXY-CONNECTION") == Field::HopByHop && field(b"Keep-Alive") == Field::HopByHop);
        assert!(field(b"Content-Type") == Field::Other && field(b"ETag") == Field::Other);
    }

    #[test]
    fn names_are_lowercased_as_to_ascii_lowercase_does() {
        let all: Vec<u8> = (0u8..=255).collect();
        for chunk in all.chunks(13).chain([&b"Content-Type"[..], b"X-AbCdEfGhIjKlMnOpQrStUvWxYz-@[`{"]) {
            let mut to = vec![0u8; chunk.len()];
            to_lower(chunk, &mut to);
            assert_eq!(to, chunk.to_ascii_lowercase(), "{chunk:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused_and_1xx_skipped() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
        ] {
            assert!(
                parse_head(&mut BytesMut::from(raw), false, RawHeads::No).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..]);
        assert!(matches!(parse_head(&mut buf, false, RawHeads::No), Ok(Parsed::Informational)));
        assert!(matches!(parse_head(&mut buf, false, RawHeads::No), Ok(Parsed::Final { .. })));
        assert!(buf.is_empty());
        assert!(matches!(
            parse_head(&mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nX"[..]), false, RawHeads::No),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn chunk_sizes_and_trailers() {
        assert_eq!(parse_chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(parse_chunk_size(b"0;ext=1\r\n"), Some(0));
        assert_eq!(parse_chunk_size(b"zz\r\n"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111\r\n"), None, "overflow");
        assert_eq!(trailer_section(b"\r\nnext").ok().flatten(), Some(2));
        assert_eq!(trailer_section(b"a: 1\r\nb: 2\r\n\r\n").ok().flatten(), Some(14));
        assert_eq!(trailer_section(b"a: 1\r\n").ok().flatten(), None);
        let t = parse_trailers(b"grpc-status: 0\r\nx: y\r\n\r\n");
        assert_eq!(t.get("grpc-status").map(HeaderValue::as_bytes), Some(&b"0"[..]));
        assert_eq!(t.len(), 2);
    }
}
