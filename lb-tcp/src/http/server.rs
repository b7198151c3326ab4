//! A downstream HTTP/1.1 connection: hyper's server with lbd's limits, closed when idle, and
//! shut down gracefully (in-flight request finishes, then close) on drain or listener removal.

use std::net::SocketAddr;
use std::rc::Rc;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::proxy::{handle, ConnInfo};
use crate::accept::ListenerHandle;
use crate::activity::Activity;
use crate::ctx::WorkerCtx;

/// Serves one client connection until it closes.
///
/// Until its first byte arrives a connection costs only this small task: hyper's connection
/// state and buffers (8 KiB and more) are allocated, boxed, once there is something to read.
/// A client that sends nothing within `header_read_timeout` is closed.
pub async fn serve_http(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: SocketAddr, listener: Rc<ListenerHandle>) {
    let limits = listener.limits();
    {
        let mut worker_drain = ctx.drain_signal();
        let mut listener_drain = listener.drain_signal();
        if ctx.is_draining() || listener.is_draining() {
            return;
        }
        // `readable()` may complete spuriously (tokio documents false positives); peek waits for
        // a real first byte and leaves it for hyper.
        let mut first = [0u8; 1];
        tokio::select! {
            r = stream.peek(&mut first) => if !matches!(r, Ok(n) if n > 0) { return },
            () = tokio::time::sleep(limits.header_read_timeout) => return,
            _ = worker_drain.changed() => return,
            _ = listener_drain.changed() => return,
        }
    }
    Box::pin(run(ctx, stream, peer, listener)).await;
}

async fn run(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: SocketAddr, listener: Rc<ListenerHandle>) {
    let limits = listener.limits();
    let activity = Rc::new(Activity::default());
    let io = TokioIo::new(stream);
    let info = Rc::new(ConnInfo::new(listener.name.clone(), limits.max_request_header_bytes, peer, activity.clone()));
    let svc_ctx = ctx.clone();
    let svc = hyper::service::service_fn(move |req| handle(svc_ctx.clone(), info.clone(), req));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_request_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    let mut worker_drain = ctx.drain_signal();
    let mut listener_drain = listener.drain_signal();
    let mut closing = ctx.is_draining() || listener.is_draining();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let idle = activity.idle(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
                break;
            }
            _ = worker_drain.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = listener_drain.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut idle, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
