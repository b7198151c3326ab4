//! lbd's own HTTP/1.1 server for the common request; hyper's for the rest of a connection once a
//! request needs more.
//!
//! Written here rather than left to hyper (which still takes over, as below), because this is
//! the hot path, as for the upstream client (`client.rs`): hyper's HTTP/1.1 server was 7.7k of
//! lbd's 20.0k instructions per keep-alive request (callgrind, `bench/callgrind-h1.sh`): its
//! parse into its own types first, its dispatch loop, its encoder, and its writes of the head
//! and the body as separate buffers. Here the connection's task reads a request head
//! (httparse), gives the request to [`handle`], writes the response head and the body with as
//! few writes as the body allows, and reads the next head (pipelined ones included).
//!
//! It serves HTTP/1.1 requests in origin form without a body and without `Expect`, `Upgrade`
//! or `Transfer-Encoding`: what a client fetching pages, assets and API reads sends. The first
//! request that is anything else (an upload, a WebSocket upgrade, HTTP/1.0, an absolute or `*`
//! target, a head it cannot parse or one too large) hands the connection to hyper for the rest
//! of its life, with the bytes read so far ([`Rewind`]): hyper then does for it what it did
//! for every request before, its errors (400, 431) included.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::body::{ProxyBody, RequestBody};
use super::headers::{date, known_name, list_tokens, put_line};
use super::proxy::{handle, ConnInfo};
use super::response_head::RawHeads;
use crate::ctx::WorkerCtx;

/// Most headers of a request served here (more: hyper's).
const MAX_HEADERS: usize = 32;
/// Response bytes gathered before they are written.
const GATHER: usize = 16 * 1024;
/// The read buffer's size when it has to grow.
const READ_BUF: usize = 8 * 1024;

/// Why a connection's future ended badly (for the debug log).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Asks a connection to finish: after the request in flight (its response then says
/// `Connection: close`), or at once if it is between requests.
#[derive(Default)]
pub(super) struct Stop {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Stop {
    pub(super) fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn is_raised(&self) -> bool {
        self.raised.get()
    }

    fn register(&self, cx: &Context<'_>) {
        match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(cx.waker().clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// One client connection (see the module docs); [`Stop`] finishes it gracefully.
    pub(super) struct H1Connection<F> {
        #[pin]
        fut: F,
        stop: Rc<Stop>,
    }
}

impl<F> H1Connection<F> {
    pub(super) fn stop(&self) -> &Stop {
        &self.stop
    }
}

impl<F: Future<Output = Result<(), Error>>> Future for H1Connection<F> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().fut.poll(cx)
    }
}

/// Serves `io` until it closes. `max_buf` bounds a request head (as hyper's `max_buf_size`).
pub(super) fn connection<I>(
    io: I,
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    max_buf: usize,
) -> H1Connection<impl Future<Output = Result<(), Error>>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = Rc::new(Stop::default());
    H1Connection { fut: serve(io, ctx, info, max_buf, stop.clone()), stop }
}

async fn serve<I>(
    mut io: I,
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    max_buf: usize,
    stop: Rc<Stop>,
) -> Result<(), Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // Responses from HTTP/1.1 backends keep their header lines for `write_response`.
    info.set_raw_heads(RawHeads::Http1);
    loop {
        let head = loop {
            match parse(&mut buf) {
                Next::Fast(head) => break head,
                Next::Partial if buf.len() < max_buf => {}
                // A request for hyper, or a head already too large (hyper answers 431, as before).
                _ => {
                    info.set_raw_heads(RawHeads::No);
                    return Box::pin(hyper(io, buf, ctx, info, max_buf, &stop)).await;
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_BUF);
            }
            // 0: the client closed (a partial head is dropped, as hyper does), or the connection
            // is asked to finish between requests.
            if read(&mut io, &mut buf, &stop).await? == 0 {
                let _ = io.shutdown().await;
                return Ok(());
            }
        };
        let head_only = head.req.method() == Method::HEAD;
        let Ok(resp) = handle(ctx.clone(), info.clone(), head.req).await;
        let close = write_response(&mut io, &mut out, resp, head_only, head.close || stop.is_raised()).await?;
        if out.capacity() > 2 * GATHER {
            out = Vec::new();
        }
        if close || stop.is_raised() {
            let _ = io.shutdown().await;
            return Ok(());
        }
    }
}

/// Reads more of the client's bytes into `buf`; 0 at EOF, or when asked to stop while nothing
/// of a next request has arrived.
fn read<'a, I: AsyncRead + Unpin>(
    io: &'a mut I,
    buf: &'a mut BytesMut,
    stop: &'a Stop,
) -> impl Future<Output = io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| {
        if buf.is_empty() {
            if stop.is_raised() {
                return Poll::Ready(Ok(0));
            }
            stop.register(cx);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut *buf)
    })
}

/// A request head this loop serves, parsed.
struct Head {
    req: Request<RequestBody>,
    /// The client asked to close after it (`Connection: close`).
    close: bool,
}

// Returned once per request and taken apart at once: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
    Fast(Head),
    /// More bytes are needed.
    Partial,
    /// A request for hyper (see the module docs).
    Hyper,
}

/// Where a header's name and value are in the head.
#[derive(Clone, Copy, Default)]
struct Spans {
    name: (usize, usize),
    value: (usize, usize),
}

fn parse(buf: &mut BytesMut) -> Next {
    if buf.is_empty() {
        return Next::Partial;
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut spans = [Spans::default(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Next::Partial,
        // Too many headers for this loop, or a malformed head: hyper's.
        Err(_) => return Next::Hyper,
    };
    let (Some(1), Some(method), Some(path)) = (req.version, req.method, req.path) else { return Next::Hyper };
    if !path.starts_with('/') {
        return Next::Hyper;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Next::Hyper };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let path_at = at(path.as_bytes());
    let count = req.headers.len();
    for (span, h) in spans.iter_mut().zip(req.headers.iter()) {
        *span = Spans { name: at(h.name.as_bytes()), value: at(h.value) };
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path_at.0..path_at.0 + path_at.1)) else {
        return hand_back(buf, &head);
    };
    let mut headers = HeaderMap::with_capacity(count);
    let mut close = false;
    for span in &spans[..count] {
        let name_bytes = &head[span.name.0..span.name.0 + span.name.1];
        let name = match known_name(name_bytes) {
            Some(n) => n,
            None => match header::HeaderName::from_bytes(name_bytes) {
                Ok(n) => n,
                Err(_) => return hand_back(buf, &head),
            },
        };
        let value = head.slice(span.value.0..span.value.0 + span.value.1);
        if name == header::CONTENT_LENGTH {
            if value.trim_ascii() != b"0" {
                return hand_back(buf, &head);
            }
        } else if name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE {
            return hand_back(buf, &head);
        } else if name == header::CONNECTION {
            for token in list_tokens(&value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return hand_back(buf, &head);
                }
            }
        }
        let Ok(value) = HeaderValue::from_maybe_shared(value) else { return hand_back(buf, &head) };
        headers.append(name, value);
    }
    let mut req = Request::new(RequestBody::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Next::Fast(Head { req, close })
}

/// Puts a parsed head back in front of what follows it, for hyper.
fn hand_back(buf: &mut BytesMut, head: &[u8]) -> Next {
    let rest = buf.split();
    buf.extend_from_slice(head);
    buf.extend_from_slice(&rest);
    Next::Hyper
}

/// Writes `resp` (its head, then its body unless `head_only` or its status has none), gathering
/// what is ready into one write; returns whether the connection closes after it.
async fn write_response<I: AsyncWrite + Unpin>(
    io: &mut I,
    w: &mut Vec<u8>,
    resp: Response<ProxyBody>,
    head_only: bool,
    mut close: bool,
) -> Result<bool, Error> {
    let (parts, mut body) = resp.into_parts();
    let fields = body.take_fields();
    let status = parts.status;
    // After a 101 the connection is not HTTP any more; this loop never asks for one.
    close |= status == StatusCode::SWITCHING_PROTOCOLS;
    let no_body_status =
        status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    w.clear();
    w.extend_from_slice(b"HTTP/1.1 ");
    w.extend_from_slice(status.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    w.extend_from_slice(b"\r\n");
    let mut has_length = false;
    let mut has_date = false;
    // A backend's header lines as it sent them (less the hop-by-hop ones), then what lbd added.
    if let Some(f) = &fields {
        w.extend_from_slice(&f.lines);
        has_length = f.has_length;
        has_date = f.has_date;
    }
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            if no_body_status && status != StatusCode::NOT_MODIFIED {
                continue;
            }
            has_length = true;
        } else if *name == header::DATE {
            has_date = true;
        } else if *name == header::TRANSFER_ENCODING {
            // Framed here.
            continue;
        } else if *name == header::CONNECTION {
            // lbd's own answers may say `close` (a 431); said below.
            close |= list_tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
            continue;
        }
        put_line(w, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_date {
        put_line(w, b"date", date().as_bytes());
    }
    // The body's exact size is its `Content-Length` when it has one: the client framed it by that.
    let length = body.size_hint().exact();
    let mut chunked = false;
    // A HEAD response says what a GET's would (the backend's length, if it gave one).
    if !no_body_status && !head_only && !has_length {
        match length {
            Some(n) => {
                let _ = write!(w, "content-length: {n}\r\n");
            }
            None => {
                w.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
        }
    }
    if close {
        w.extend_from_slice(b"connection: close\r\n");
    }
    w.extend_from_slice(b"\r\n");
    if head_only || no_body_status {
        io.write_all(w).await?;
        io.flush().await?;
        return Ok(close);
    }
    let mut sent = 0u64;
    let mut body = Pin::new(&mut body);
    loop {
        // What the body has at once goes out with what is gathered; the gathered bytes go
        // first when it has to wait.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !w.is_empty() {
                    io.write_all(w).await?;
                    io.flush().await?;
                    w.clear();
                }
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            // The response cannot be completed: the connection ends without it.
            Some(Err(e)) => return Err(e),
            // Trailers are not sent (nor did hyper, to a client that did not ask for them).
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) if d.has_remaining() => d,
                _ => continue,
            },
        };
        sent += data.len() as u64;
        if chunked {
            let _ = write!(w, "{:x}\r\n", data.len());
        }
        if w.len() + data.len() <= GATHER {
            w.extend_from_slice(&data);
        } else {
            if !w.is_empty() {
                io.write_all(w).await?;
                w.clear();
            }
            io.write_all(&data).await?;
        }
        if chunked {
            w.extend_from_slice(b"\r\n");
        }
        if body.is_end_stream() {
            break;
        }
    }
    if chunked {
        w.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(w).await?;
    io.flush().await?;
    // A body shorter than its length leaves the client waiting for the rest: only a close ends it.
    Ok(close || length.is_some_and(|n| sent != n))
}

/// The rest of the connection on hyper's server, from the bytes in `buf`.
async fn hyper<I>(
    io: I,
    buf: BytesMut,
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    max_buf: usize,
    stop: &Stop,
) -> Result<(), Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        handle(ctx.clone(), info.clone(), req.map(RequestBody::Hyper))
    });
    // The head timeout is the watchdog's (see `crate::activity`), not hyper's timer.
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(max_buf)
        .keep_alive(true)
        .serve_connection(TokioIo::new(Rewind { pre: buf.freeze(), io }), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut shut = false;
    std::future::poll_fn(|cx| {
        if !shut {
            if stop.is_raised() {
                conn.as_mut().graceful_shutdown();
                shut = true;
            } else {
                stop.register(cx);
            }
        }
        conn.as_mut().poll(cx)
    })
    .await
    .map_err(Into::into)
}

/// A stream that first gives back bytes already read from it.
struct Rewind<I> {
    pre: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        Poll::Ready(Ok(()))
    }
}

crate::activity::write_through!(Rewind);
