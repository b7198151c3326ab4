//! A worker's accept loop for one listening socket: enforces `max_connections`, keeps HTTP
//! connections in the [`WaitingRoom`] until their first byte, spawns each connection's task
//! (HTTP or L4), and stops on worker drain or when a reload removes it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use lb_core::config::{ListenerConfig, ListenerKind};
use tokio::io::unix::AsyncFd;

use crate::ctx::WorkerCtx;
use crate::waiting::WaitingRoom;

/// Per-connection limits of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See `ListenerConfig`.
    pub max_connections: usize,
    /// See `ListenerConfig`.
    pub header_read_timeout: Duration,
    /// See `ListenerConfig`.
    pub idle_timeout: Duration,
    /// See `ListenerConfig`.
    pub max_request_header_bytes: usize,
}

impl Limits {
    fn of(cfg: &ListenerConfig) -> Self {
        Self {
            max_connections: cfg.max_connections,
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_request_header_bytes: cfg.max_request_header_bytes,
        }
    }
}

/// One listener as a worker runs it (shared by all its bind addresses on this worker).
#[derive(Debug)]
pub struct ListenerHandle {
    /// Listener name.
    pub name: Rc<str>,
    tcp: Cell<bool>,
    tls: std::cell::RefCell<Option<std::sync::Arc<lb_tls::ServerConfig>>>,
    proxy_trusted: std::cell::RefCell<Option<Vec<lb_core::config::Cidr>>>,
    limits: Cell<Limits>,
    /// `Alt-Svc` max-age when this listener also serves HTTP/3 and advertises it.
    alt_svc: Cell<Option<u64>>,
    active: Cell<usize>,
    /// Raised when a reload removes it.
    removed: crate::signal::Signal,
}

impl ListenerHandle {
    /// A handle for `cfg`.
    pub fn new(cfg: &ListenerConfig) -> Rc<Self> {
        Rc::new(Self {
            name: cfg.name.as_str().into(),
            tcp: Cell::new(matches!(cfg.kind, ListenerKind::Tcp { .. })),
            tls: std::cell::RefCell::new(None),
            proxy_trusted: std::cell::RefCell::new(cfg.proxy_protocol.clone()),
            limits: Cell::new(Limits::of(cfg)),
            alt_svc: Cell::new(alt_svc_of(cfg)),
            active: Cell::new(0),
            removed: crate::signal::Signal::default(),
        })
    }

    /// Takes a reloaded config for the same listener.
    pub fn update(&self, cfg: &ListenerConfig) {
        self.limits.set(Limits::of(cfg));
        self.alt_svc.set(alt_svc_of(cfg));
        *self.proxy_trusted.borrow_mut() = cfg.proxy_protocol.clone();
        self.tcp.set(matches!(cfg.kind, ListenerKind::Tcp { .. }));
    }

    /// Sets the TLS config new handshakes use (`None`: plain HTTP). Established connections keep theirs.
    pub fn set_tls(&self, tls: Option<std::sync::Arc<lb_tls::ServerConfig>>) {
        *self.tls.borrow_mut() = tls;
    }

    /// The TLS config for a new connection.
    pub fn tls(&self) -> Option<std::sync::Arc<lb_tls::ServerConfig>> {
        self.tls.borrow().clone()
    }

    /// The `Alt-Svc` value for a TCP connection that arrived on `port`, when HTTP/3 is
    /// advertised (`h3` on the same port, as the listener binds UDP on the same addresses).
    pub fn alt_svc(&self, port: u16) -> Option<http::HeaderValue> {
        let age = self.alt_svc.get()?;
        http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma={age}")).ok()
    }

    /// Current limits.
    pub fn limits(&self) -> Limits {
        self.limits.get()
    }

    /// Stops accepting and closes its idle connections (reload removed it).
    pub fn remove(&self) {
        self.removed.raise();
    }

    /// Resolves once it is removed (at once if it was already).
    pub fn removed(&self) -> crate::signal::Raised<'_> {
        self.removed.wait()
    }

    /// Whether it was removed.
    pub fn is_draining(&self) -> bool {
        self.removed.is_raised()
    }
}

fn alt_svc_of(cfg: &ListenerConfig) -> Option<u64> {
    let tls = cfg.tls.as_ref()?;
    (matches!(cfg.kind, ListenerKind::Http { .. }) && tls.http3 && tls.alt_svc).then_some(tls.alt_svc_max_age.as_secs())
}

/// Decrements the connection gauges when a connection task ends, however it ends.
#[derive(Debug)]
struct ConnGuard {
    ctx: Rc<WorkerCtx>,
    listener: Rc<ListenerHandle>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.listener.active.set(self.listener.active.get().saturating_sub(1));
        self.ctx.state.borrow_mut().metrics.counters.downstream_active -= 1;
    }
}

/// What woke the accept loop.
enum Wake {
    Accepted(std::io::Result<(std::net::TcpStream, SocketAddr)>),
    Arrived,
    Expired,
    Stop,
}

/// Accepts on `socket` until the worker drains or the listener is removed; the socket closes
/// when this returns. Established connections carry on; connections that have not sent a byte
/// yet (in the waiting room) are closed.
///
/// HTTP connections wait for their first byte in the [`WaitingRoom`] (no task until then); L4
/// connections get their task at once (the server may speak first).
pub async fn accept_loop(ctx: Rc<WorkerCtx>, socket: std::net::TcpListener, listener: Rc<ListenerHandle>) {
    if ctx.is_draining() || listener.is_draining() {
        return;
    }
    let socket = match crate::waiting::register(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(listener = %listener.name, error = %e, "cannot watch the listening socket");
            return;
        }
    };
    let mut room: Option<WaitingRoom<ConnGuard>> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let expiry = tokio::time::sleep_until(far());
    tokio::pin!(expiry);
    loop {
        let waiting = room.as_ref().is_some_and(|r| r.len() > 0);
        let wake = tokio::select! {
            r = accept(&socket) => Wake::Accepted(r),
            _ = async {
                match room.as_ref() {
                    Some(r) => r.readable().await,
                    None => std::future::pending().await,
                }
            }, if room.is_some() => Wake::Arrived,
            () = &mut expiry, if waiting => Wake::Expired,
            () = ctx.drained() => Wake::Stop,
            () = listener.removed() => Wake::Stop,
        };
        match wake {
            Wake::Stop => return,
            Wake::Expired => {
                if let Some(r) = room.as_mut() {
                    r.expire(Instant::now());
                }
            }
            Wake::Arrived => {
                if let Some(r) = room.as_mut() {
                    r.arrived(|a| spawn(&ctx, &listener, a.socket, a.peer, a.guard));
                }
            }
            Wake::Accepted(Err(e)) => {
                // EMFILE/ENFILE/ECONNABORTED: back off briefly rather than spin.
                tracing::warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Wake::Accepted(Ok((stream, peer))) => {
                let Some(guard) = admit(&ctx, &listener) else { continue };
                if listener.tcp.get() {
                    spawn(&ctx, &listener, stream, peer, guard);
                    continue;
                }
                if room.is_none() {
                    room = WaitingRoom::new()
                        .map_err(|e| tracing::warn!(error = %e, "no waiting room; a task per connection"))
                        .ok();
                }
                let timeout = listener.limits().header_read_timeout;
                match room.as_mut().map(|r| r.insert(stream, peer, guard, timeout)) {
                    Some(Ok(())) => {}
                    Some(Err(back)) => spawn(&ctx, &listener, back.socket, back.peer, back.guard),
                    None => {}
                }
            }
        }
        if let Some(d) = room.as_ref().and_then(WaitingRoom::next_deadline) {
            if expiry.deadline() != tokio::time::Instant::from_std(d) {
                expiry.as_mut().reset(tokio::time::Instant::from_std(d));
            }
        }
    }
}

/// Accepts one connection without registering it with the runtime (that happens only when it
/// gets a task): a non-blocking socket and its peer.
async fn accept(socket: &AsyncFd<std::net::TcpListener>) -> std::io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut guard = socket.readable().await?;
        match guard.try_io(|s| socket2::SockRef::from(s.get_ref()).accept()) {
            Ok(Ok((sock, addr))) => {
                sock.set_nonblocking(true)?;
                let peer = addr.as_socket().ok_or_else(|| std::io::Error::other("accepted a non-IP socket"))?;
                return Ok((sock.into(), peer));
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Counts a new connection, or refuses it at `max_connections` (it is closed when dropped).
fn admit(ctx: &Rc<WorkerCtx>, listener: &Rc<ListenerHandle>) -> Option<ConnGuard> {
    let mut st = ctx.state.borrow_mut();
    if listener.active.get() >= listener.limits().max_connections {
        st.metrics.counters.downstream_refused += 1;
        return None;
    }
    st.metrics.counters.downstream_active += 1;
    st.metrics.counters.downstream_total += 1;
    listener.active.set(listener.active.get() + 1);
    Some(ConnGuard { ctx: ctx.clone(), listener: listener.clone() })
}

/// Gives a connection its task: PROXY protocol header if required, then HTTP or L4.
fn spawn(
    ctx: &Rc<WorkerCtx>,
    listener: &Rc<ListenerHandle>,
    socket: std::net::TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) {
    let mut stream = match tokio::net::TcpStream::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot register a connection");
            return;
        }
    };
    let (ctx, listener) = (ctx.clone(), listener.clone());
    // The captured values are used in place, not moved into locals: a task's future would
    // otherwise keep both copies for the connection's life.
    tokio::task::spawn_local(async move {
        let _guard = &guard;
        // PROXY protocol: required from trusted networks, never honoured from others.
        let trusted = listener.proxy_trusted.borrow().as_ref().map(|nets| nets.iter().any(|n| n.contains(peer.ip())));
        let peer = match trusted {
            Some(true) => {
                // Boxed: its 536-byte buffer must not size every connection's task.
                match Box::pin(crate::proxy_protocol::read_header(&mut stream, listener.limits().header_read_timeout))
                    .await
                {
                    Ok(client) => client.unwrap_or(peer),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "PROXY protocol header refused");
                        ctx.state.borrow_mut().metrics.counters.proxy_protocol_errors += 1;
                        return;
                    }
                }
            }
            _ => peer,
        };
        if listener.tcp.get() {
            // Boxed so that the (larger) L4 state does not size every connection's task.
            Box::pin(crate::l4::serve_tcp(ctx, stream, peer, listener)).await;
        } else {
            crate::http::server::serve_http(ctx, stream, peer, listener).await;
        }
    });
}
