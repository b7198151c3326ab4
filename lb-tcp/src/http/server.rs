//! A downstream connection: HTTP/1.1 on [`h1server`](super::h1server) (lbd's loop, then hyper's
//! server for a connection whose requests need it), HTTP/2 on [`H2Server`] (h2 directly),
//! with lbd's limits, closed when idle, and shut down gracefully (in-flight requests finish,
//! then close) on drain or listener removal.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use tokio::net::TcpStream;

use super::h1server;
use super::h2server::H2Server;
use super::proxy::ConnInfo;
use crate::accept::ListenerHandle;
use crate::activity::{Activity, Counted, Expired, Reads};
use crate::ctx::WorkerCtx;
use crate::tls::TlsStream;

/// Serves one client connection until it closes.
///
/// The accept loop calls this once the client's first byte (or EOF) arrived: until then the
/// connection waited in the accept loop's waiting room, without a task. The TLS session, hyper's
/// connection state and buffers (8 KiB and more) are allocated, boxed, only now. The peek below
/// still guards against a spurious wake-up (and covers the fallback without a waiting room).
pub async fn serve_http(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: SocketAddr, listener: Rc<ListenerHandle>) {
    // Boxed: this wait is over at once (the byte is there), and the connection's task should
    // not keep its room for the rest of the connection's life.
    if !Box::pin(first_byte(&ctx, &stream, &listener, listener.limits().header_read_timeout)).await {
        return;
    }
    let local = stream.local_addr().ok();
    match listener.tls() {
        None => Box::pin(run_h1(ctx, stream, peer, local, listener, "http", None)).await,
        Some(tls) => {
            let Some(tls) = Box::pin(tls_ready(&ctx, stream, peer, &listener, tls)).await else { return };
            let client = tls.peer_certificates().and_then(lb_tls::client_identity);
            // Boxed so the waiting state above is not sized by hyper's connection.
            if tls.alpn_protocol() == Some(b"h2") {
                Box::pin(run_h2(ctx, tls, peer, local, listener, client)).await;
            } else {
                Box::pin(run_h1(ctx, tls, peer, local, listener, "https", client)).await;
            }
        }
    }
}

/// Waits for the client's next byte (peeked, left for the parser), at most `wait`; false on
/// EOF, error, timeout, or drain of the worker or listener.
async fn first_byte(ctx: &WorkerCtx, stream: &TcpStream, listener: &ListenerHandle, wait: std::time::Duration) -> bool {
    if ctx.is_draining() || listener.is_draining() {
        return false;
    }
    // `readable()` may complete spuriously (tokio documents false positives); a peek waits for a
    // real byte. `poll_peek` rather than `peek`, whose future is 232 bytes held by every
    // connection that waits here.
    let mut first = [0u8; 1];
    let peeked = std::future::poll_fn(|cx| stream.poll_peek(cx, &mut tokio::io::ReadBuf::new(&mut first)));
    tokio::select! {
        r = peeked => matches!(r, Ok(n) if n > 0),
        () = tokio::time::sleep(wait) => false,
        () = ctx.drained() => false,
        () = listener.removed() => false,
    }
}

/// TLS handshake (bounded by `header_read_timeout`), then the wait for the client's first
/// request; `None` if either fails. The caller runs HTTP/2 or HTTP/1.1 as ALPN chose, once this
/// future (boxed) is gone: a connection does not keep its state for its whole life.
async fn tls_ready(
    ctx: &WorkerCtx,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &ListenerHandle,
    tls: std::sync::Arc<lb_tls::ServerConfig>,
) -> Option<Box<TlsStream>> {
    let mut tls =
        match tokio::time::timeout(listener.limits().header_read_timeout, TlsStream::accept(stream, tls)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                ctx.state.borrow_mut().metrics.counters.tls_handshake_failures += 1;
                return None;
            }
            Err(_) => {
                ctx.state.borrow_mut().metrics.counters.tls_handshake_failures += 1;
                return None;
            }
        };
    // As for plain connections: hyper's connection and buffers wait for the client's first
    // record (the raw socket is peeked; the TLS layer reads it afterwards) — unless that record
    // came with the client's Finished and is here already. Meanwhile the connection holds no
    // TLS buffers either.
    if !tls.has_buffered_data() {
        tls.release_buffers();
        if !first_byte(ctx, tls.tcp(), listener, listener.limits().idle_timeout).await {
            return None;
        }
    }
    Some(tls)
}

/// What the drive loop needs of a server connection.
trait Graceful: std::future::Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;
    fn shutdown(self: std::pin::Pin<&mut Self>);
}

impl<F: Future<Output = Result<(), h1server::Error>>> Graceful for h1server::H1Connection<F> {
    type Error = h1server::Error;

    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.stop().raise();
    }
}

impl<I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static> Graceful for H2Server<I> {
    type Error = h2::Error;

    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.get_mut().graceful_shutdown();
    }
}

/// Why a connection is wound down by something other than itself.
enum Stop {
    /// The worker or the listener drains: finish gracefully.
    Drain,
    /// Nothing happened for `idle_timeout`: finish gracefully, or, if it was already finishing,
    /// close (a client that never lets a graceful close end, say one that ignores HTTP/2's
    /// GOAWAY ping).
    Idle,
    /// A request head took longer than `header_read_timeout`: closed at once.
    SlowHead,
}

/// What [`drive`] watches besides the connection: the drain signals (until the connection is
/// finishing) and the watchdog (always).
async fn supervise(
    ctx: &WorkerCtx,
    listener: &ListenerHandle,
    activity: &Activity,
    idle_timeout: std::time::Duration,
    head: Option<(&Reads, std::time::Duration)>,
    drains: bool,
) -> Stop {
    let expired = if drains {
        tokio::select! {
            () = ctx.drained() => return Stop::Drain,
            () = listener.removed() => return Stop::Drain,
            e = activity.watch(idle_timeout, head) => e,
        }
    } else {
        activity.watch(idle_timeout, head).await
    };
    match expired {
        Expired::Idle => Stop::Idle,
        Expired::Head => Stop::SlowHead,
    }
}

/// Drives a connection; on drain, listener removal or idleness asks it to finish gracefully
/// (HTTP/1.1: after the in-flight request; HTTP/2: GOAWAY, in-flight streams finish). With
/// `head`, an HTTP/1.1 request head arriving for longer than that closes the connection. Both
/// timeouts still apply while it finishes.
///
/// The drain signals and the watchdog are polled only when one of them woke the task (see
/// [`Side`]), not on each of the connection's wake-ups: `tokio::select!` polled all of them
/// for every read and write (about 4% of the instructions of a keep-alive request, callgrind).
#[allow(clippy::manual_async_fn)]
fn drive<C: Graceful>(
    ctx: Rc<WorkerCtx>,
    listener: Rc<ListenerHandle>,
    activity: Rc<Activity>,
    idle_timeout: std::time::Duration,
    head: Option<(Reads, std::time::Duration)>,
    peer: SocketAddr,
    // Boxed by the caller: a connection passed by value and then pinned here would be stored
    // twice (1.5 KB for HTTP/2).
    mut conn: std::pin::Pin<Box<C>>,
) -> impl Future<Output = ()> {
    // Not an `async fn`, which would keep each argument twice for the connection's life
    // (rust-lang/rust#62958); owned, so that the callers need no future state of their own.
    async move {
        let head = head.as_ref().map(|(r, t)| (r, *t));
        let mut closing = ctx.is_draining() || listener.is_draining();
        if closing {
            conn.as_mut().shutdown();
        }
        // Built in place: a named future moved into `Side` would keep its room in this state too.
        let mut side = std::pin::pin!(Side::new(supervise(&ctx, &listener, &activity, idle_timeout, head, !closing)));
        loop {
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Err(r));
                }
                side.as_mut().poll(cx).map(Ok)
            })
            .await;
            match next {
                Err(r) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "client connection ended with an error");
                    }
                    break;
                }
                Ok(Stop::Drain | Stop::Idle) if !closing => {
                    closing = true;
                    conn.as_mut().shutdown();
                    side.as_mut().set(supervise(&ctx, &listener, &activity, idle_timeout, head, false));
                }
                Ok(Stop::Drain | Stop::Idle) => {
                    tracing::debug!(%peer, "connection idle while finishing; closing");
                    break;
                }
                Ok(Stop::SlowHead) => {
                    tracing::debug!(%peer, "request head not received within header_read_timeout; closing");
                    break;
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A future polled only after its own waker fired (and on the first poll), whatever else
    /// woke the task that polls it.
    struct Side<F> {
        #[pin]
        fut: F,
        flag: Arc<Flag>,
        waker: Waker,
    }
}

/// Set when a [`Side`]'s future was woken; wakes the task polling it.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> Side<F> {
    fn new(fut: F) -> Self {
        let flag = Arc::new(Flag { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        Self { fut, waker: Waker::from(flag.clone()), flag }
    }

    /// Replaces the future (after it finished), to be polled on the next poll.
    fn set(self: std::pin::Pin<&mut Self>, fut: F) {
        let mut this = self.project();
        this.fut.set(fut);
        this.flag.woken.store(true, Ordering::Release);
    }
}

impl<F: Future> Future for Side<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the flag is read, so a wake-up in between is not lost.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.fut.poll(&mut Context::from_waker(this.waker))
    }
}

/// Sets up the HTTP/1.1 side of a connection and returns the future that serves it: a plain
/// function, so that the connection's state is only [`drive`]'s.
fn run_h1<I>(
    ctx: Rc<WorkerCtx>,
    io: I,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    listener: Rc<ListenerHandle>,
    proto: &'static str,
    client: Option<String>,
) -> impl Future<Output = ()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = listener.limits();
    let activity = Rc::new(Activity::default());
    let info = Rc::new(
        ConnInfo::new(listener.name.clone(), limits.max_request_header_bytes, peer, proto, activity.clone())
            .with_reused_timer()
            .with_client_cert(client)
            .with_alt_svc(local.filter(|_| proto == "https").and_then(|l| listener.alt_svc(l.port())))
            .with_local(local),
    );
    // The head timeout is the watchdog's (see `crate::activity`), not hyper's timer.
    let reads = Reads::default();
    let conn =
        h1server::connection(Counted::new(io, reads.clone()), ctx.clone(), info, limits.max_request_header_bytes);
    let head = Some((reads, limits.header_read_timeout));
    drive(ctx, listener, activity, limits.idle_timeout, head, peer, Box::pin(conn))
}

/// The same for HTTP/2.
fn run_h2<I>(
    ctx: Rc<WorkerCtx>,
    io: I,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    listener: Rc<ListenerHandle>,
    client: Option<String>,
) -> impl Future<Output = ()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let limits = listener.limits();
    let activity = Rc::new(Activity::default());
    let info = Rc::new(
        ConnInfo::new(listener.name.clone(), limits.max_request_header_bytes, peer, "https", activity.clone())
            .with_client_cert(client)
            .with_alt_svc(local.and_then(|l| listener.alt_svc(l.port())))
            .with_local(local),
    );
    let mut h2 = h2::server::Builder::new();
    h2.max_concurrent_streams(256)
        // Flow control: 1 MiB per stream and 4 MiB per connection bound what one client can make
        // this worker buffer, while leaving room for a fast upload per stream.
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487): cap streams a client may open and reset before they are
        // accepted, and streams that end in errors this side sends; past either, GOAWAY.
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(Some(256))
        // Response heads as static-table indices and raw literals (the h2 patch), as HAProxy
        // sends them: encoding a head took 2.9k instructions with h2's dynamic table, 2.0k
        // without (callgrind), for a few dozen bytes more per response head.
        .stateless_hpack_encoding(true);
    let conn = H2Server::new(h2.handshake(io), ctx.clone(), info);
    drive(ctx, listener, activity, limits.idle_timeout, None, peer, Box::pin(conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/2 connection's state, boxed once per connection for its whole life, fits
    /// jemalloc's 1 KiB class, as hyper's did (1,152 bytes, the 1.25 KiB class, before the h2
    /// patch boxed the SETTINGS frames waiting for an ACK and dropped the connection's tracing
    /// span).
    #[test]
    fn an_http2_connection_state_fits_in_1_kib() {
        let size = std::mem::size_of::<H2Server<Box<TlsStream>>>();
        assert!(size <= 1024, "an HTTP/2 connection's state is {size} bytes");
    }
}
