//! L4 TCP forwarding: pick an endpoint (retrying connect failures on others), then copy bytes
//! both ways until both sides finish or the connection idles out.
//!
//! Two copies, chosen per worker ([`L4Copy`]). The readiness copy, on either runtime, waits for
//! bytes holding no buffer in each direction and borrows one of the worker's spare 64 KiB
//! buffers (`crate::spare`) only while bytes are in flight ([`copy_both_ways`]). The io_uring copy
//! (`io_backend = "uring"` only) uses tokio-uring's owned-buffer reads and writes, each direction
//! with its own buffer for the connection's life. An idle io_uring read cannot be cancelled by
//! dropping it (the kernel still owns the buffer), so idle timeout shuts the sockets down, which
//! completes it.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use lb_core::access_log::AccessRecord;
use lb_core::config::IoBackendChoice;
use lb_core::health::Outcome;
use lb_core::runtime::IoBackend;
use lb_core::snapshot::ListenerPlan;
use tokio::net::TcpStream;
use tokio_uring::buf::BoundedBuf;

use crate::accept::ListenerHandle;
use crate::activity::Activity;
use crate::ctx::{ClusterRt, WorkerCtx};

const URING_BUF: usize = 16 * 1024;
/// Bytes one read may move on the epoll backend: a 64 KiB body in one or two reads and writes
/// (tokio's `copy_bidirectional` moves 8 KiB at a time, for 16 system calls per 64 KiB).
const EPOLL_BUF: usize = 64 * 1024;

/// How a worker's L4 connections copy bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Copy {
    /// Wait for readiness, then read and write with a borrowed buffer (tokio's reactor).
    Readiness,
    /// io_uring reads and writes into buffers each connection owns (tokio-uring).
    Uring,
}

impl L4Copy {
    /// The io_uring copy only where the config asks for io_uring by name: with tokio-uring 0.5
    /// (no kernel-provided buffer rings) it costs more CPU per byte than the readiness copy (on
    /// the project's test machine 33–35 against 20–21 µs per 64 KiB response, `bench/results`)
    /// and keeps two 16 KiB buffers per connection while idle. `auto` takes the readiness copy on
    /// the io_uring runtime too.
    pub fn for_worker(choice: IoBackendChoice, backend: IoBackend) -> Self {
        match (choice, backend) {
            (IoBackendChoice::Uring, IoBackend::Uring) => Self::Uring,
            _ => Self::Readiness,
        }
    }
}

/// Forwards one client connection to the listener's cluster.
pub async fn serve_tcp(ctx: Rc<WorkerCtx>, client: TcpStream, peer: SocketAddr, listener: Rc<ListenerHandle>) {
    let started = Instant::now();
    let time = SystemTime::now();
    let passthrough = {
        let st = ctx.state.borrow();
        let plan = st.snapshot.listener_index(&listener.name).map(|i| &st.snapshot.listeners[i]);
        matches!(plan, Some(ListenerPlan::Tcp { sni: Some(_), .. }))
    };
    // TLS passthrough: read the server name from the ClientHello without consuming it.
    let server_name = if passthrough { read_sni(&client, listener.limits().header_read_timeout).await } else { None };
    let routed = {
        let mut st = ctx.state.borrow_mut();
        let generation = st.snapshot.generation;
        let target = match st.snapshot.listener_index(&listener.name).map(|i| &st.snapshot.listeners[i]) {
            Some(ListenerPlan::Tcp { default, sni }) => {
                Some(sni.as_ref().and_then(|r| r.route(server_name.as_deref(), "/")).unwrap_or(*default))
            }
            _ => None,
        };
        target.map(|t| {
            st.metrics.record_tcp(t.slot);
            (generation, t.slot, st.clusters[t.cluster].clone())
        })
    };
    let Some((generation, slot, cluster)) = routed else { return };
    let idle_timeout = listener.limits().idle_timeout;
    let proxy_header = cluster
        .cfg
        .send_proxy_protocol
        .zip(client.local_addr().ok())
        .map(|(v, local)| crate::proxy_protocol::header(v, peer, local));
    let mut tried = Vec::new();
    let mut attempts = 0;
    let mut served = None;
    let mut client = Some(client);
    for attempt in 0..=cluster.cfg.retries {
        let Some(ep) = ctx.pick(&cluster, None, &tried, attempt, Instant::now()) else { break };
        let addr = cluster.address(ep);
        attempts += 1;
        let Some(c) = client.take() else { break };
        match forward(&ctx, &cluster, c, addr, idle_timeout, proxy_header.as_deref()).await {
            Ok(()) => {
                cluster.state.borrow_mut().record(ep, Outcome::Success, Instant::now());
                served = Some(addr);
                break;
            }
            Err(back) => {
                ctx.state.borrow_mut().metrics.counters.connect_failures += 1;
                cluster.state.borrow_mut().record(ep, Outcome::ConnectFailure, Instant::now());
                tried.push(ep);
                client = back;
                if client.is_none() {
                    break;
                }
            }
        }
    }
    let names = ctx.logs().then(|| ctx.state.borrow().metrics.slot_names(generation, slot)).flatten();
    ctx.log(|| AccessRecord {
        time,
        worker: ctx.id,
        listener: listener.name.to_string(),
        client: peer,
        method: "-".into(),
        host: server_name.clone().unwrap_or_else(|| "-".into()),
        path: "-".into(),
        protocol: if passthrough { "tls-passthrough" } else { "tcp" },
        status: 0,
        route: names.as_ref().map_or_else(|| "tcp".into(), |n| n.route.clone()),
        cluster: names.map_or_else(|| cluster.cfg.name.clone(), |n| n.cluster),
        upstream: served,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        request_id: String::new(),
        attempts,
        client_cert: None,
    });
}

/// Peeks at the client's first bytes until the ClientHello is complete (at most 16 KiB, within
/// `timeout`) and returns its server name; `None` for no SNI, not TLS, or too slow.
async fn read_sni(stream: &TcpStream, timeout: std::time::Duration) -> Option<String> {
    use lb_tls::client_hello::{server_name, Sni, MAX_CLIENT_HELLO};
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_CLIENT_HELLO];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await.ok()?.ok()?;
        match server_name(buf.get(..n)?) {
            Sni::Name(name) => return name,
            Sni::NotTls => return None,
            Sni::Incomplete if n == 0 || n == buf.len() => return None,
            // Peek returns what is there now; wait a little for the rest of the ClientHello.
            Sni::Incomplete => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

/// Connects and copies. `Err(Some(client))` when the connect failed (the client can be retried
/// elsewhere); `Err(None)` when the client socket could not be kept.
async fn forward(
    ctx: &Rc<WorkerCtx>,
    cluster: &ClusterRt,
    client: TcpStream,
    addr: SocketAddr,
    idle: std::time::Duration,
    proxy_header: Option<&[u8]>,
) -> Result<(), Option<TcpStream>> {
    let timeout = cluster.cfg.connect_timeout;
    match ctx.l4_copy {
        L4Copy::Readiness => {
            let mut upstream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                _ => return Err(Some(client)),
            };
            if let Some(h) = proxy_header {
                if tokio::io::AsyncWriteExt::write_all(&mut upstream, h).await.is_err() {
                    return Err(Some(client));
                }
            }
            let _ = upstream.set_nodelay(true);
            let _gauge = UpstreamGauge::new(ctx);
            let activity = Activity::default();
            let mut client = client;
            tokio::select! {
                r = copy_both_ways(&mut client, &mut upstream, &activity) => {
                    if let Err(e) = r {
                        tracing::debug!(%addr, error = %e, "tcp forward ended");
                    }
                }
                _ = activity.idle(idle) => {}
            }
            Ok(())
        }
        L4Copy::Uring => {
            let upstream = match tokio::time::timeout(timeout, tokio_uring::net::TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                _ => return Err(Some(client)),
            };
            if let Some(h) = proxy_header {
                let (r, _) = upstream.write_all(h.to_vec()).await;
                if r.is_err() {
                    return Err(Some(client));
                }
            }
            let _ = upstream.set_nodelay(true);
            let Ok(std_client) = client.into_std() else { return Err(None) };
            let client = tokio_uring::net::TcpStream::from_std(std_client);
            let _gauge = UpstreamGauge::new(ctx);
            let activity = Activity::default();
            tokio::select! {
                _ = async { tokio::join!(pump(&client, &upstream, &activity), pump(&upstream, &client, &activity)) } => {}
                _ = activity.idle(idle) => {
                    // Completes the reads still queued in the ring.
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = upstream.shutdown(Shutdown::Both);
                }
            }
            Ok(())
        }
    }
}

/// Copies bytes both ways until each side has finished sending (a half-close is passed on), or
/// either way fails. In place of tokio's `copy_bidirectional`, which keeps two 8 KiB buffers for
/// the connection's life: here an idle connection holds no buffer, and a busy one moves 64 KiB
/// per read.
async fn copy_both_ways(a: &mut TcpStream, b: &mut TcpStream, activity: &Activity) -> io::Result<()> {
    let (a_read, a_write) = a.split();
    let (b_read, b_write) = b.split();
    tokio::try_join!(copy_one_way(a_read, b_write, activity), copy_one_way(b_read, a_write, activity))?;
    Ok(())
}

async fn copy_one_way(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    activity: &Activity,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    loop {
        // A buffer is taken for each poll and given back if nothing came: waiting holds none.
        let (buf, n) = std::future::poll_fn(|cx| {
            let mut buf = spare_buf::take();
            match tokio_util::io::poll_read_buf(Pin::new(&mut from), cx, &mut buf) {
                Poll::Pending => {
                    spare_buf::keep(buf);
                    Poll::Pending
                }
                Poll::Ready(r) => Poll::Ready(r.map(|n| (buf, n))),
            }
        })
        .await?;
        if n == 0 {
            spare_buf::keep(buf);
            return to.shutdown().await;
        }
        activity.touch();
        to.write_all(&buf).await?;
        activity.touch();
        spare_buf::keep(buf);
    }
}

/// The worker's spare buffers for the epoll copy (`crate::spare`).
mod spare_buf {
    use std::cell::RefCell;

    use super::EPOLL_BUF;
    use crate::spare::Limits;

    /// Enough for the connections moving bytes at the same instant on one worker; more are freed.
    const LIMITS: Limits = Limits { max_capacity: EPOLL_BUF, max_kept: 8 };

    thread_local! {
        static BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer with room for `EPOLL_BUF` bytes.
    pub(super) fn take() -> Vec<u8> {
        let mut b = crate::spare::take(&BUFS);
        b.reserve_exact(EPOLL_BUF);
        b
    }

    pub(super) fn keep(b: Vec<u8>) {
        crate::spare::keep(&BUFS, b, LIMITS);
    }
}

/// Copies one direction with owned buffers; on EOF passes the half-close on.
async fn pump(from: &tokio_uring::net::TcpStream, to: &tokio_uring::net::TcpStream, activity: &Activity) {
    let mut buf = Vec::with_capacity(URING_BUF);
    loop {
        let (res, b) = from.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        activity.touch();
        let (res, b) = to.write_all(buf.slice(..n)).await;
        buf = b.into_inner();
        if res.is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return;
        }
        activity.touch();
    }
}

struct UpstreamGauge(Rc<WorkerCtx>);

impl UpstreamGauge {
    fn new(ctx: &Rc<WorkerCtx>) -> Self {
        {
            let mut st = ctx.state.borrow_mut();
            st.metrics.counters.upstream_active += 1;
            st.metrics.counters.upstream_connects += 1;
        }
        Self(ctx.clone())
    }
}

impl Drop for UpstreamGauge {
    fn drop(&mut self) {
        self.0.state.borrow_mut().metrics.counters.upstream_active -= 1;
    }
}
