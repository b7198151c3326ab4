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
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::body::{BoxError, RequestBody};
use super::error::ProxyError;
use super::headers::{put_line, Forwarding};
use super::response_head::{parse_head, Chunk, Framing, Parsed, RawFields, RawHeads};

/// Largest response head read (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
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
            put_line(w, name.as_str().as_bytes(), value.as_bytes());
        }
        fwd.each(|name, value| put_line(w, name.as_str().as_bytes(), value));
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
