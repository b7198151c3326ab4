//! A client's HTTP/2 connection, served on the `h2` crate directly.
//!
//! [`H2Server`] drives the connection and accepts its streams; each stream is a task
//! ([`serve_stream`]) that runs the proxy's [`handle`], sends the response head, and pipes the
//! response body out under h2's flow control; a request body reaches the proxy as [`H2Body`].
//!
//! Written here rather than taken from hyper's HTTP/2 server, which lbd used until 2026-12-01:
//! that layer did, for every stream, work that lbd's proxy has done already or does not need. It
//! removed the connection-specific headers again from each response (lbd strips them from what
//! backends send: six header-map lookups, 1.6% of the instructions per request), parsed the
//! request's `Content-Length` for every stream, wrapped the connection's IO twice, and carried
//! state for features lbd does not enable (keep-alive and BDP pings, CONNECT upgrades). What is
//! left is what hyper's `H2Stream` and `PipeToSendStream` do that matters, kept in the same order:
//! a client's RST_STREAM drops the request's work, a response head without `Date` gets one, and
//! a body is sent as flow control allows, its errors turned into the reset reason they carry.
//! Counted by callgrind (`bench/callgrind-h1.sh` with `H2=1`): 41.4k–41.8k instructions per
//! request through hyper's layer, 40.0k–40.3k without it.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{declared_length, BoxError, ProxyBody, RequestBody};
use super::proxy::{handle, ConnInfo};
use super::response_head::RawHeads;
use crate::ctx::WorkerCtx;

/// A client's HTTP/2 connection: the handshake, then the streams, each spawned on this worker
/// as it arrives. Ends when the connection does (after a graceful shutdown, once the streams
/// open at the GOAWAY have finished).
pub(crate) struct H2Server<I> {
    state: State<I>,
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    /// A graceful shutdown asked for during the handshake, done as soon as it is over.
    close_pending: bool,
}

enum State<I> {
    Handshaking(Handshake<I, Bytes>),
    Serving(Connection<I, Bytes>),
}

impl<I: AsyncRead + AsyncWrite + Unpin> H2Server<I> {
    pub(crate) fn new(handshake: Handshake<I, Bytes>, ctx: Rc<WorkerCtx>, info: Rc<ConnInfo>) -> Self {
        // Responses from HTTP/1.1 backends keep their headers HPACK-encoded for `answer`.
        info.set_raw_heads(RawHeads::Http2);
        Self { state: State::Handshaking(handshake), ctx, info, close_pending: false }
    }

    /// GOAWAY: no new streams; those open finish.
    pub(crate) fn graceful_shutdown(&mut self) {
        match &mut self.state {
            State::Handshaking(_) => self.close_pending = true,
            State::Serving(conn) => conn.graceful_shutdown(),
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + 'static> Future for H2Server<I> {
    type Output = Result<(), h2::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        loop {
            match &mut me.state {
                State::Handshaking(hs) => {
                    let mut conn = ready!(Pin::new(hs).poll(cx))?;
                    if me.close_pending {
                        conn.graceful_shutdown();
                    }
                    me.state = State::Serving(conn);
                }
                State::Serving(conn) => {
                    // Accepting also drives the connection: reads frames, writes what is queued.
                    while let Some(next) = ready!(conn.poll_accept(cx)) {
                        let (req, respond) = next?;
                        tokio::task::spawn_local(serve_stream(me.ctx.clone(), me.info.clone(), req, respond));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// One stream: the proxy answers its request, and the answer goes back. A client's RST_STREAM
/// while the proxy works (or while the body is piped) drops that work, and with it the request
/// to the backend.
fn serve_stream(
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> StreamTask<impl Future<Output = Result<Response<ProxyBody>, std::convert::Infallible>>> {
    let (parts, recv) = req.into_parts();
    let body = H2Body::new(recv, &parts.headers);
    // Boxed, and the task a hand-written future: the task's state is copied when it is spawned
    // and when it ends, so it holds only pointers and handles (the request future is 1.9 KB).
    let fut = Box::pin(handle(ctx, info, Request::from_parts(parts, RequestBody::H2(body))));
    StreamTask::Answering { fut, respond }
}

/// A stream's task (see [`serve_stream`]).
enum StreamTask<F> {
    /// The proxy works on the request.
    Answering {
        fut: Pin<Box<F>>,
        respond: SendResponse<Bytes>,
    },
    /// The response body goes out; `held` is a chunk waiting for flow control to give it room.
    Piping {
        body: ProxyBody,
        send: SendStream<Bytes>,
        held: Option<(Bytes, bool)>,
    },
    Done,
}

impl<F: Future<Output = Result<Response<ProxyBody>, std::convert::Infallible>>> Future for StreamTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Its future is boxed: nothing here is pinned in place.
        let me = self.get_mut();
        loop {
            match me {
                Self::Answering { fut, respond } => {
                    let resp = match fut.as_mut().poll(cx) {
                        Poll::Ready(Ok(resp)) => resp,
                        Poll::Ready(Err(never)) => match never {},
                        Poll::Pending => {
                            if respond.poll_reset(cx).is_ready() {
                                *me = Self::Done;
                                return Poll::Ready(());
                            }
                            return Poll::Pending;
                        }
                    };
                    let next = answer(resp, respond);
                    *me = next;
                }
                Self::Piping { body, send, held } => {
                    ready!(poll_pipe(cx, body, send, held));
                    *me = Self::Done;
                }
                Self::Done => return Poll::Ready(()),
            }
        }
    }
}

/// Sends the response head; what the task does next.
fn answer<F>(resp: Response<ProxyBody>, respond: &mut SendResponse<Bytes>) -> StreamTask<F> {
    let (mut head, mut body) = resp.into_parts();
    let (mut has_date, mut has_length) = scan_head(&mut head.headers);
    // A backend's fields, HPACK-encoded already; the map holds what lbd added.
    let fields = body.take_fields();
    if let Some(f) = &fields {
        has_date |= f.has_date;
        has_length |= f.has_length;
    }
    if !has_date {
        head.headers.insert(header::DATE, super::headers::date());
    }
    let eos = body.is_end_stream();
    if !eos && !has_length {
        if let Some(len) = body.size_hint().exact() {
            head.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    let encoded = fields.map_or_else(Bytes::new, |f| Bytes::from(f.lines));
    match respond.send_response_with_encoded_fields(Response::from_parts(head, ()), encoded, eos) {
        Ok(send) if !eos => StreamTask::Piping { body, send, held: None },
        Ok(_) => StreamTask::Done,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/2 response head not sent");
            respond.send_reset(Reason::INTERNAL_ERROR);
            StreamTask::Done
        }
    }
}

/// Sends `body` on `send`, each DATA frame once flow control gives it room (a chunk waiting for
/// it is `held`); ready when the body is sent, the client reset the stream, or the body failed
/// (which resets it). As hyper's `PipeToSendStream`.
fn poll_pipe(
    cx: &mut Context<'_>,
    body: &mut ProxyBody,
    send: &mut SendStream<Bytes>,
    held: &mut Option<(Bytes, bool)>,
) -> Poll<()> {
    loop {
        if send.poll_reset(cx).is_ready() {
            return Poll::Ready(());
        }
        if held.is_some() {
            // Asked for a little (below): wait until some is there; h2 sends the rest of the
            // chunk as the window opens.
            while send.capacity() == 0 {
                match ready!(send.poll_capacity(cx)) {
                    Some(Ok(_)) => {}
                    _ => return Poll::Ready(()),
                }
            }
            if let Some((chunk, eos)) = held.take() {
                if send.send_data(chunk, eos).is_err() || eos {
                    return Poll::Ready(());
                }
            }
            continue;
        }
        let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return Poll::Ready(());
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; resetting the stream");
                send.send_reset(reason_of(&*e));
                return Poll::Ready(());
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(chunk) => {
                let eos = body.is_end_stream();
                if chunk.is_empty() || eos {
                    // An empty chunk needs no window. The last one is handed to h2 at once,
                    // which sends it as the window opens: it is in memory either way, nothing
                    // follows it, and this takes h2's stream lock once instead of four times
                    // (asking for room, checking for a reset and for room, sending).
                    if send.send_data(chunk, eos).is_err() || eos {
                        return Poll::Ready(());
                    }
                    continue;
                }
                // A little, not the whole chunk: a stream asking for all of it up front would
                // hold connection window it may not use for a while (hyper#4003).
                send.reserve_capacity(1);
                *held = Some((chunk, eos));
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.reserve_capacity(0);
                    let _ = send.send_trailers(trailers);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The reset reason an error carries (an upstream HTTP/2 stream's reset, passed on), else
/// INTERNAL_ERROR.
fn reason_of(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Reason {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(reason) = err.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return reason;
        }
        cur = err.source();
    }
    Reason::INTERNAL_ERROR
}

/// One pass over a response head's names: whether it has `Date` and `Content-Length`; and what
/// HTTP/2 forbids in it (RFC 9113 §8.2.2), which h2 would refuse to send, is removed. The proxy
/// strips those from what backends send, so only lbd's own answers may have one (`Connection:
/// close` on a 431).
fn scan_head(headers: &mut HeaderMap) -> (bool, bool) {
    const FORBIDDEN: [&str; 6] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"];
    let (mut date, mut length, mut forbidden) = (false, false, false);
    for name in headers.keys() {
        match name.as_str() {
            "date" => date = true,
            "content-length" => length = true,
            n => forbidden |= FORBIDDEN.contains(&n),
        }
    }
    if forbidden {
        for name in FORBIDDEN {
            headers.remove(name);
        }
    }
    (date, length)
}

/// A request body from a client's HTTP/2 stream. The flow-control window of each DATA frame is
/// given back as the proxy reads the frame, so a client sends as fast as the backend takes it.
/// Its size is the `Content-Length` the client declared (h2 holds the client to it), or zero
/// when the stream ended with its headers.
pub struct H2Body {
    recv: RecvStream,
    /// What is left of the declared length.
    left: Option<u64>,
    data_done: bool,
}

impl H2Body {
    fn new(recv: RecvStream, headers: &HeaderMap) -> Self {
        let left = if recv.is_end_stream() { Some(0) } else { declared_length(headers) };
        Self { recv, left, data_done: false }
    }
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body").field("left", &self.left).field("data_done", &self.data_done).finish()
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = self.get_mut();
        if !me.data_done {
            match ready!(me.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = me.recv.flow_control().release_capacity(data.len());
                    me.left = me.left.map(|n| n.saturating_sub(data.len() as u64));
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // A client may end its side with RST_STREAM(NO_ERROR) once it has the response.
                Some(Err(e)) if matches!(e.reason(), Some(Reason::NO_ERROR | Reason::CANCEL)) => {
                    return Poll::Ready(None)
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => me.data_done = true,
            }
        }
        match ready!(me.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.left.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    use http::header::{self, HeaderMap, HeaderValue};

    #[test]
    fn a_response_head_is_scanned_once_and_loses_what_http2_forbids() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        h.insert(header::SERVER, HeaderValue::from_static("x"));
        assert_eq!(super::scan_head(&mut h), (false, true));
        assert_eq!(h.len(), 2, "nothing removed from a clean head");
        h.insert(header::DATE, HeaderValue::from_static("Tue, 01 Dec 2026 20:00:00 GMT"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        assert_eq!(super::scan_head(&mut h), (true, true));
        let mut left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "date", "server"]);
    }
}
