//! One worker's HTTP/3 listener on one UDP address: a quinn endpoint on the worker's
//! [`WorkerSocket`], an accept loop that decides per incoming connection (refuse past
//! `max_connections`, Retry past `retry_threshold` pending handshakes, else accept), one task per
//! connection running h3, and one task per request, which goes through the same
//! `lb_tcp::http::proxy::handle` as HTTP/1.1 and HTTP/2 and streams the response back.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http::{HeaderValue, Method, Request, Response};
use http_body::Body;
use lb_tcp::accept::ListenerHandle;
use lb_tcp::activity::Activity;
use lb_tcp::ctx::WorkerCtx;
use lb_tcp::http::body::{declared_length, ProxyBody, RequestBody};
use lb_tcp::http::proxy::{handle, ConnInfo};
use lb_tcp::http::response_head::RawHeads;
use tokio::sync::watch;

use crate::body::H3Body;
use crate::cid::WorkerCids;
use crate::group::Shared;
use crate::socket::{ForwardStats, MeshPart, WorkerSocket};

/// A running HTTP/3 listener of one worker.
#[derive(Debug)]
pub struct H3Endpoint {
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<ForwardStats>,
    shared: Arc<Shared>,
    close: watch::Sender<bool>,
    zero_rtt: Rc<Cell<bool>>,
}

/// Per-endpoint state the connection tasks share.
struct Local {
    ctx: Rc<WorkerCtx>,
    listener: Rc<ListenerHandle>,
    shared: Arc<Shared>,
    /// Connections open on this endpoint.
    active: Cell<usize>,
    /// Handshakes in progress on this endpoint.
    handshaking: Cell<usize>,
    close: watch::Receiver<bool>,
    /// Set by the accept loop once the worker or the listener drains or the endpoint closes: the
    /// one signal each connection waits on to send GOAWAY (one 120-byte wait per idle connection
    /// instead of three).
    closing: watch::Sender<bool>,
    /// The UDP port served.
    port: u16,
    /// Whether the TLS config accepts 0-RTT (then requests may arrive before the handshake ends).
    zero_rtt: Rc<Cell<bool>>,
}

/// The quinn server config for a listener's QUIC TLS config.
pub fn server_config(
    tls: Arc<rustls::ServerConfig>,
    shared: &Shared,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, String> {
    // Initial packets are always protected with AES-128-GCM (RFC 9001 §5.2), whatever suites the
    // listener allows for the connection itself.
    let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or("QUIC TLS: no AES-128-GCM suite for Initial packets")?;
    let mut crypto =
        quinn::crypto::rustls::QuicServerConfig::with_initial(tls, initial).map_err(|e| format!("QUIC TLS: {e}"))?;
    // Each connection drops its rustls connection once the handshake is done (patched
    // quinn-proto, third_party/quinn-proto/LBD-PATCH.md): 3.9 KB per idle connection. lbd reads
    // only the ALPN, the server name and the client's certificates after that, which are kept.
    crypto.release_after_handshake(true);
    let mut sc = quinn::ServerConfig::new(Arc::new(crypto), shared.token_key.clone());
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(shared.config.max_streams.into())
        // Control, QPACK encoder and decoder streams, and a little room for extensions.
        .max_concurrent_uni_streams(8u32.into())
        .max_idle_timeout(quinn::IdleTimeout::try_from(idle_timeout).ok())
        // 1 MiB per stream, 4 MiB per connection bound what a client can make us buffer.
        .stream_receive_window((1u32 << 20).into())
        .receive_window((4u32 << 20).into())
        .send_window(4 << 20);
    sc.transport_config(Arc::new(transport));
    Ok(sc)
}

impl H3Endpoint {
    /// Starts serving `listener` on this worker's socket of the group (inside the runtime).
    pub fn start(
        ctx: Rc<WorkerCtx>,
        listener: Rc<ListenerHandle>,
        shared: Arc<Shared>,
        socket: std::net::UdpSocket,
        mesh: MeshPart,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Self, String> {
        let stats = Arc::new(ForwardStats::default());
        let socket =
            WorkerSocket::new(socket, shared.layout.clone(), mesh, stats.clone()).map_err(|e| e.to_string())?;
        let mut ec = quinn::EndpointConfig::new(shared.reset_key.clone());
        let (layout, worker) = (shared.layout.clone(), ctx.id);
        ec.cid_generator(move || Box::new(WorkerCids::new(layout.clone(), worker)));
        let zero_rtt = Rc::new(Cell::new(tls.max_early_data_size > 0));
        let sc = server_config(tls, &shared, listener.limits().idle_timeout)?;
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(ec, Some(sc), Arc::new(socket), Arc::new(quinn::TokioRuntime))
                .map_err(|e| e.to_string())?;
        let (close, close_rx) = watch::channel(false);
        let port = endpoint.local_addr().map_or(0, |a| a.port());
        let local = Rc::new(Local {
            ctx,
            listener,
            shared: shared.clone(),
            active: Cell::new(0),
            handshaking: Cell::new(0),
            close: close_rx,
            closing: watch::Sender::new(false),
            port,
            zero_rtt: zero_rtt.clone(),
        });
        let task = tokio::task::spawn_local(accept_loop(endpoint.clone(), local));
        Ok(Self { endpoint, task, stats, shared, close, zero_rtt })
    }

    /// New handshakes use this TLS config (certificate reload, listener change).
    pub fn set_tls(&self, tls: Arc<rustls::ServerConfig>, idle_timeout: Duration) {
        self.zero_rtt.set(tls.max_early_data_size > 0);
        match server_config(tls, &self.shared, idle_timeout) {
            Ok(sc) => self.endpoint.set_server_config(Some(sc)),
            Err(e) => tracing::warn!(error = %e, "QUIC TLS config not applied"),
        }
    }

    /// Datagrams this worker handed to other workers, and those it dropped (owner's queue full).
    pub fn forward_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.stats.forwarded.load(Relaxed), self.stats.dropped.load(Relaxed))
    }

    /// Stops accepting; open connections get GOAWAY and finish their requests.
    pub fn shut_down(&self) {
        self.endpoint.set_server_config(None);
        self.close.send_replace(true);
    }

    /// Waits until every connection of this endpoint has closed (or `limit`).
    pub async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.endpoint.wait_idle()).await;
    }
}

impl Drop for H3Endpoint {
    fn drop(&mut self) {
        self.task.abort();
        self.endpoint.close(0u32.into(), b"listener removed");
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, local: Rc<Local>) {
    let mut close = local.close.clone();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            () = local.ctx.drained() => break,
            () = local.listener.removed() => break,
            _ = close.changed() => break,
        };
        let limits = local.listener.limits();
        if local.active.get() >= limits.max_connections {
            local.ctx.state.borrow_mut().metrics.counters.quic_refused += 1;
            incoming.refuse();
            continue;
        }
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && local.handshaking.get() >= local.shared.config.retry_threshold
        {
            local.ctx.state.borrow_mut().metrics.counters.quic_retries += 1;
            let _ = incoming.retry();
            continue;
        }
        let connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "QUIC connection not accepted");
                local.ctx.state.borrow_mut().metrics.counters.quic_handshake_failures += 1;
                continue;
            }
        };
        tokio::task::spawn_local(connection(local.clone(), Box::new(connecting)));
    }
    // Draining: no new connections; the connection tasks send GOAWAY.
    endpoint.set_server_config(None);
    local.closing.send_replace(true);
}

/// Counts a connection in the worker's gauges for as long as it lives.
struct ConnGuard(Rc<Local>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
        let mut st = self.0.ctx.state.borrow_mut();
        st.metrics.counters.downstream_active = st.metrics.counters.downstream_active.saturating_sub(1);
    }
}

/// The handshake: the connection, and a gate requests that came as 0-RTT early data wait on.
/// `None` when it failed (counted) or timed out.
async fn handshake(local: &Rc<Local>, connecting: quinn::Connecting) -> Option<(quinn::Connection, EarlyGate)> {
    let peer = connecting.remote_address();
    let limits = local.listener.limits();
    local.handshaking.set(local.handshaking.get() + 1);
    // Without 0-RTT the connection is used only once the handshake is done (quinn would
    // otherwise hand it over at once for 0.5-RTT data).
    let mut connecting = connecting;
    let attempt = if local.zero_rtt.get() {
        // First the ClientHello (and with it the client's transport parameters): h3 opens its
        // control stream at once, and quinn does not wake a stream opener parked before the
        // peer's stream limits are known.
        match tokio::time::timeout(limits.header_read_timeout, connecting.handshake_data()).await {
            Ok(Ok(_)) => connecting.into_0rtt(),
            _ => {
                local.handshaking.set(local.handshaking.get().saturating_sub(1));
                local.ctx.state.borrow_mut().metrics.counters.quic_handshake_failures += 1;
                return None;
            }
        }
    } else {
        Err(connecting)
    };
    match attempt {
        // With 0-RTT allowed by the TLS config, requests may arrive before the handshake
        // completes: they get a gate to wait on.
        Ok((conn, accepted)) => {
            let (gate, l) = (Rc::new(Early::default()), local.clone());
            let early = EarlyGate(Some(gate.clone()));
            tokio::task::spawn_local(async move {
                let _ = tokio::time::timeout(limits.header_read_timeout, accepted).await;
                l.handshaking.set(l.handshaking.get().saturating_sub(1));
                gate.done.set(true);
                gate.confirmed.notify_waiters();
            });
            Some((conn, early))
        }
        Err(connecting) => {
            let r = tokio::time::timeout(limits.header_read_timeout, connecting).await;
            local.handshaking.set(local.handshaking.get().saturating_sub(1));
            match r {
                Ok(Ok(c)) => Some((c, EarlyGate(None))),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                    local.ctx.state.borrow_mut().metrics.counters.quic_handshake_failures += 1;
                    None
                }
                Err(_) => {
                    local.ctx.state.borrow_mut().metrics.counters.quic_handshake_failures += 1;
                    None
                }
            }
        }
    }
}

/// One QUIC connection's task, for its life. Its state is what an idle HTTP/3 connection holds
/// besides quinn's and h3's own, so it is kept small: the handshake runs in its own boxed future,
/// the waits it keeps are a few bytes each, and values that would be live across more than one
/// await (which puts them in every state of the future) are read again where needed.
///
/// tokio aligns a task's cell to 128 bytes; this one is 2,048 with the state at 1,928 bytes
/// (`-Zprint-type-sizes`), in jemalloc's 2 KiB size class. Its largest states: the wait for a
/// request (h3's connection, 1,688 bytes, and the `select!`), and the one waiting for the
/// handshake, which is boxed. The argument is boxed too, as an async fn keeps its arguments' room
/// in every state (32 bytes for `Connecting`), and so is the last wait for the close (184 bytes).
async fn connection(local: Rc<Local>, connecting: Box<quinn::Connecting>) {
    local.active.set(local.active.get() + 1);
    {
        let mut st = local.ctx.state.borrow_mut();
        st.metrics.counters.downstream_active += 1;
        st.metrics.counters.downstream_total += 1;
        st.metrics.counters.quic_connections += 1;
    }
    let _guard = ConnGuard(local.clone());
    let Some((conn, mut early)) = Box::pin(handshake(&local, *connecting)).await else {
        return;
    };
    let limits = local.listener.limits();
    let client_cert = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| lb_tls::client_identity(&chain));
    let activity = Rc::new(Activity::default());
    let local_addr = local.listener_local(&conn);
    let info = Rc::new(
        ConnInfo::new(
            local.listener.name.clone(),
            limits.max_request_header_bytes,
            conn.remote_address(),
            "https",
            activity,
        )
        .with_client_cert(client_cert)
        .with_local(local_addr),
    );
    // Responses from HTTP/1.1 backends keep their fields QPACK-encoded for `request`.
    info.set_raw_heads(RawHeads::Http3);
    // Boxed: h3's setup future is 4 KB, and this function's state (kept for the connection's
    // life) would otherwise be sized by it.
    let mut h3c = match Box::pin(
        h3::server::builder()
            .max_field_section_size(limits.max_request_header_bytes as u64)
            .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone())),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = %conn.remote_address(), error = %e, "HTTP/3 setup failed");
            return;
        }
    };
    // Set once by the accept loop on any of the worker's drain, the listener's and the endpoint's
    // close; a connection that starts after that sees it set.
    let mut closing_signal = local.closing.subscribe();
    let mut closing = *closing_signal.borrow_and_update();
    // A GOAWAY is owed (sent at the top of the loop, where no accepted value is alive: one held
    // across this await would add its 400 bytes to the task's state).
    let mut goaway = closing;
    // Set when h3 is done accepting; its last GOAWAY is sent after the loop, as an await inside
    // the `match` below would keep the accepted value alive across it.
    let mut ended = false;
    loop {
        if goaway {
            goaway = false;
            let _ = Box::pin(h3c.shutdown(0)).await;
        }
        // This wait is what an idle connection holds for its whole life, so it is small: h3's
        // `poll_accept` (patched h3; its `accept` future is 272 bytes) and the drain signal. The
        // GOAWAYs are sent outside `select!` (whose futures live until a branch's code is done)
        // and boxed (248 bytes, once or twice per connection), so neither adds to the state.
        let accepted = tokio::select! {
            r = std::future::poll_fn(|cx| h3c.poll_accept(cx)) => Some(r),
            _ = closing_signal.changed(), if !closing => None,
        };
        let Some(accepted) = accepted else {
            (closing, goaway) = (true, true);
            continue;
        };
        match accepted {
            Ok(Some(resolver)) => {
                if early.is_done() {
                    // The 0-RTT gate is not needed once the handshake is done.
                    early = EarlyGate(None);
                }
                let (ctx, info, early) = (local.ctx.clone(), info.clone(), early.clone());
                // Boxed, with the whole request inside (`request` does not box `handle` again):
                // tokio moves a task's future into its cell and copies the cell's stage at each
                // transition. Unboxed, these copies of a multi-KB future were ~2.8k of ~71k
                // instructions per request (callgrind); a pointer is 8 bytes.
                tokio::task::spawn_local(Box::pin(async move {
                    match resolver.resolve_request().await {
                        Ok((req, stream)) => request(ctx, info, early, req, stream).await,
                        Err(e) => tracing::debug!(error = %e, "HTTP/3 request refused"),
                    }
                }));
            }
            Ok(None) => {
                ended = true;
                break;
            }
            Err(e) => {
                tracing::debug!(peer = %conn.remote_address(), error = %e, "HTTP/3 connection ended");
                break;
            }
        }
    }
    if ended {
        // The last GOAWAY, which h3's `accept` would have sent: the client learns which request
        // was the last one taken.
        let _ = Box::pin(h3c.shutdown(0)).await;
    }
    // Let in-flight requests finish: the connection closes when its streams are done or idle.
    let _ = Box::pin(tokio::time::timeout(local.listener.limits().idle_timeout, conn.closed())).await;
}

impl Local {
    /// The address the client sent to (for PROXY protocol headers upstream); the listener's bound
    /// address when the endpoint is bound to a specific one.
    fn listener_local(&self, conn: &quinn::Connection) -> Option<SocketAddr> {
        conn.local_ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Whether the handshake is done, and a way to wait for it (requests that came as 0-RTT
/// early data). `None` for a connection handed over once its handshake was done, which is all of
/// them unless the TLS config allows 0-RTT: they hold nothing for it.
#[derive(Clone)]
struct EarlyGate(Option<Rc<Early>>);

#[derive(Default)]
struct Early {
    done: Cell<bool>,
    confirmed: tokio::sync::Notify,
}

impl EarlyGate {
    fn is_done(&self) -> bool {
        self.0.as_ref().is_none_or(|e| e.done.get())
    }

    async fn wait(&self) {
        let Some(e) = &self.0 else { return };
        while !e.done.get() {
            let n = e.confirmed.notified();
            if e.done.get() {
                break;
            }
            n.await;
        }
    }
}

static EARLY_DATA: http::HeaderName = http::HeaderName::from_static("early-data");

/// Methods that are safe to replay (RFC 9110 §9.2.1), the only ones accepted as early data.
fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

async fn request(
    ctx: Rc<WorkerCtx>,
    info: Rc<ConnInfo>,
    early: EarlyGate,
    req: Request<()>,
    stream: RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
) {
    let (mut send, recv) = stream.split();
    let (mut parts, ()) = req.into_parts();
    if !early.is_done() {
        if is_safe(&parts.method) {
            // RFC 8470: tell the backend this request may be replayed.
            parts.headers.insert(EARLY_DATA.clone(), HeaderValue::from_static("1"));
        } else {
            early.wait().await;
        }
    }
    let content_length = declared_length(&parts.headers);
    // A GET/HEAD without a length has no body (clients end the stream with the headers).
    let bodyless = content_length == Some(0)
        || (content_length.is_none() && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS));
    let mut held = None;
    let body = if bodyless {
        held = Some(recv);
        RequestBody::empty()
    } else {
        RequestBody::Local(Box::pin(H3Body::new(recv, content_length)))
    };
    parts.version = http::Version::HTTP_3;
    let Ok(resp) = handle(ctx, info, Request::from_parts(parts, body)).await;
    let (mut parts, mut body) = resp.into_parts();
    parts.version = http::Version::HTTP_3;
    // A backend's fields, QPACK-encoded already; the map holds what lbd added.
    let fields = body.take_fields().unwrap_or_default();
    if send
        .send_response_with_encoded_fields(Response::from_parts(parts, ()), &fields.lines, fields.size)
        .await
        .is_err()
    {
        return;
    }
    if stream_body(&mut send, &mut body).await.is_ok() {
        let _ = send.finish().await;
    }
    drop(held);
}

/// Streams a response body; h3's `send_data` waits for flow control, so a slow client slows the
/// backend read.
async fn stream_body(
    send: &mut RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    body: &mut ProxyBody,
) -> Result<(), ()> {
    let mut body = std::pin::Pin::new(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "upstream body failed mid-response");
            send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        })?;
        match frame.into_data() {
            Ok(mut data) => {
                if data.has_remaining() {
                    let bytes = data.copy_to_bytes(data.remaining());
                    send.send_data(bytes).await.map_err(|_| ())?;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await.map_err(|_| ())?;
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
