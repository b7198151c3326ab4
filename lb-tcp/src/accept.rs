//! A worker's accept loop for one listening socket: enforces `max_connections`, spawns the
//! connection's task (HTTP or L4), and stops on worker drain or when a reload removes it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use lb_core::config::{ListenerConfig, ListenerKind};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ctx::WorkerCtx;

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
    drain: watch::Sender<bool>,
}

impl ListenerHandle {
    /// A handle for `cfg`.
    pub fn new(cfg: &ListenerConfig) -> Rc<Self> {
        let (drain, _) = watch::channel(false);
        Rc::new(Self {
            name: cfg.name.as_str().into(),
            tcp: Cell::new(matches!(cfg.kind, ListenerKind::Tcp { .. })),
            tls: std::cell::RefCell::new(None),
            proxy_trusted: std::cell::RefCell::new(cfg.proxy_protocol.clone()),
            limits: Cell::new(Limits::of(cfg)),
            alt_svc: Cell::new(alt_svc_of(cfg)),
            active: Cell::new(0),
            drain,
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
        self.drain.send_replace(true);
    }

    /// Subscribes to removal.
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }

    /// Whether it was removed.
    pub fn is_draining(&self) -> bool {
        *self.drain.borrow()
    }
}

fn alt_svc_of(cfg: &ListenerConfig) -> Option<u64> {
    let tls = cfg.tls.as_ref()?;
    (matches!(cfg.kind, ListenerKind::Http { .. }) && tls.http3 && tls.alt_svc).then_some(tls.alt_svc_max_age.as_secs())
}

/// Decrements the connection gauges when a connection task ends, however it ends.
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

/// Accepts on `socket` until the worker drains or the listener is removed; the socket closes
/// when this returns. Established connections carry on.
pub async fn accept_loop(ctx: Rc<WorkerCtx>, socket: TcpListener, listener: Rc<ListenerHandle>) {
    let mut worker_drain = ctx.drain_signal();
    let mut listener_drain = listener.drain_signal();
    if ctx.is_draining() || listener.is_draining() {
        return;
    }
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = socket.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE/ENFILE/ECONNABORTED: back off briefly rather than spin.
                    tracing::warn!(listener = %listener.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = worker_drain.changed() => return,
            _ = listener_drain.changed() => return,
        };
        {
            let mut st = ctx.state.borrow_mut();
            if listener.active.get() >= listener.limits().max_connections {
                st.metrics.counters.downstream_refused += 1;
                continue;
            }
            st.metrics.counters.downstream_active += 1;
            st.metrics.counters.downstream_total += 1;
        }
        listener.active.set(listener.active.get() + 1);
        let guard = ConnGuard { ctx: ctx.clone(), listener: listener.clone() };
        let (ctx, listener) = (ctx.clone(), listener.clone());
        tokio::task::spawn_local(async move {
            let _guard = guard;
            let mut stream = stream;
            // PROXY protocol: required from trusted networks, never honoured from others.
            let trusted =
                listener.proxy_trusted.borrow().as_ref().map(|nets| nets.iter().any(|n| n.contains(peer.ip())));
            let peer = match trusted {
                Some(true) => {
                    // Boxed: its 536-byte buffer must not size every connection's task.
                    match Box::pin(crate::proxy_protocol::read_header(
                        &mut stream,
                        listener.limits().header_read_timeout,
                    ))
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
                let _ = stream.set_nodelay(true);
                crate::http::server::serve_http(ctx, stream, peer, listener).await;
            }
        });
    }
}
