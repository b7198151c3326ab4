//! One HTTP request through lbd: route → pick an endpoint → pooled or new upstream connection →
//! stream the response back. Connect failures are retried on other endpoints (the request was
//! never sent, so any method is safe); failures after sending are answered 502/504.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use lb_core::access_log::AccessRecord;
use lb_core::balancer::hash_key;
use lb_core::config::{ClusterConfig, HashOn, Policy, UpstreamProtocol};
use lb_core::health::Outcome;
use lb_core::snapshot::{ListenerPlan, Snapshot};
use tokio::net::TcpStream;

use super::body::{InFlight, ProxyBody, Release, RequestBody, UpBody};
use super::client::{is_idempotent, H1Conn, UpIo};
use super::error::ProxyError;
use super::headers::{forwarded_for, is_upgrade, strip_hop_by_hop, Forwarding, RequestHeaders};
use super::response_head::RawHeads;
use crate::activity::Activity;
use crate::ctx::{ClusterRt, WorkerCtx};
use crate::pool::Sender;

/// What a downstream connection knows about itself.
#[derive(Debug)]
pub struct ConnInfo {
    listener: Rc<str>,
    max_header_bytes: usize,
    peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    proto: &'static str,
    /// The verified client certificate's identity (mTLS), sent as `X-Forwarded-Client-Cert`.
    client_cert: Option<HeaderValue>,
    /// The address the client connected to (for PROXY protocol headers sent upstream).
    local: Option<SocketAddr>,
    /// `Alt-Svc` added to responses (HTTP/3 advertised on a TCP listener).
    alt_svc: Option<HeaderValue>,
    /// This client's `X-Forwarded-For` entry.
    xff: HeaderValue,
    activity: Rc<Activity>,
    /// (snapshot generation, listener index) from the last lookup.
    cached: Cell<Option<(u64, usize)>>,
    /// The request timer an HTTP/1.1 connection reuses (see [`timed`]); `None` while a request
    /// holds it, or before the first.
    timer: TimerSlot,
    /// Whether this connection reuses one request timer (one request at a time: HTTP/1.1).
    reuse_timer: bool,
    /// Whether responses from HTTP/1.1 backends keep their fields unparsed, encoded for the
    /// client ([`ProxyBody::take_fields`]): set by lbd's own HTTP/1.1 loop while it serves the
    /// connection (cleared when it hands the connection to hyper), by the HTTP/2 server and by
    /// the HTTP/3 one (lb-quic), the three writers of them.
    raw_heads: Cell<RawHeads>,
}

impl ConnInfo {
    /// A connection accepted on `listener` from `peer`.
    pub fn new(
        listener: Rc<str>,
        max_header_bytes: usize,
        peer: SocketAddr,
        proto: &'static str,
        activity: Rc<Activity>,
    ) -> Self {
        let xff = forwarded_for(peer.ip().to_canonical());
        Self {
            listener,
            max_header_bytes,
            peer,
            proto,
            client_cert: None,
            local: None,
            alt_svc: None,
            xff,
            activity,
            cached: Cell::new(None),
            timer: TimerSlot::default(),
            reuse_timer: false,
            raw_heads: Cell::new(RawHeads::No),
        }
    }

    /// See `raw_heads`.
    pub fn set_raw_heads(&self, how: RawHeads) {
        self.raw_heads.set(how);
    }

    /// Reuses one request timer for this connection's requests, which come one at a time
    /// (HTTP/1.1).
    pub fn with_reused_timer(mut self) -> Self {
        self.reuse_timer = true;
        self
    }

    /// Sets the address the client connected to.
    pub fn with_local(mut self, local: Option<SocketAddr>) -> Self {
        self.local = local;
        self
    }

    /// Sets the `Alt-Svc` header of this connection's responses.
    pub fn with_alt_svc(mut self, alt_svc: Option<HeaderValue>) -> Self {
        self.alt_svc = alt_svc;
        self
    }

    /// Sets the verified client identity of an mTLS connection.
    pub fn with_client_cert(mut self, identity: Option<String>) -> Self {
        self.client_cert = identity.and_then(|v| HeaderValue::from_str(&v).ok());
        self
    }

    /// The listener's index in `snap`, `None` once a reload removed it.
    pub fn listener_index(&self, snap: &Snapshot) -> Option<usize> {
        match self.cached.get() {
            Some((generation, i)) if generation == snap.generation => Some(i),
            _ => {
                let i = snap.listener_index(&self.listener)?;
                self.cached.set(Some((snap.generation, i)));
                Some(i)
            }
        }
    }
}

/// Where a connection keeps its request timer between requests.
#[derive(Default)]
struct TimerSlot(Cell<Option<Pin<Box<tokio::time::Sleep>>>>);

impl std::fmt::Debug for TimerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimerSlot")
    }
}

/// What the access log and metrics learn about a request.
#[derive(Debug, Default)]
struct Trace {
    generation: u64,
    slot: Option<usize>,
    upstream: Option<SocketAddr>,
    attempts: u32,
    request_id: Option<HeaderValue>,
}

/// hyper's service entry point.
///
/// Not an `async fn`: one keeps a second copy of each argument in its state
/// (rust-lang/rust#62958), and this future is moved by value for every HTTP/1.1 request and
/// boxed for every HTTP/2 and HTTP/3 stream. The functions below it are built the same way.
#[allow(clippy::manual_async_fn)]
pub fn handle(
    ctx: Rc<WorkerCtx>,
    conn: Rc<ConnInfo>,
    req: Request<RequestBody>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> {
    async move {
        let in_flight = InFlight::new(conn.activity.clone());
        let started = Instant::now();
        let protocol = match req.version() {
            Version::HTTP_3 => "HTTP/3",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let (headers, logged) = scan(&ctx, &req);
        let mut trace = Trace::default();
        let grpc = headers.grpc;
        let mut resp = if request_line_size(&req) + headers.bytes > conn.max_header_bytes {
            // hyper's read buffer limit is soft (one read may overshoot it), so the limit is enforced here.
            let mut r = error_response(&ProxyError::HeadTooLarge);
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        } else {
            let sent = 'sent: {
                // Bound by a `let` that ends here, so that neither the `Result` nor `p` (moved
                // into `forward`) takes room in this future's state while the request is out;
                // and `forward`'s future is made where it is awaited: each return or wrapper a
                // future passes through copies all of it (2 KB) once more.
                let p = match prepare(&ctx, &conn, req, headers, &mut trace) {
                    Ok(p) => p,
                    Err(e) => break 'sent Err(e),
                };
                forward(&ctx, &conn, p, &mut trace, started).await
            };
            match sent {
                Ok(resp) => resp,
                Err(e) if grpc => grpc_error_response(&e),
                Err(e) => error_response(&e),
            }
        };
        if let Some(v) = &conn.alt_svc {
            // A backend's own, unparsed, is kept as one in the map would be.
            if !resp.body().has_raw_alt_svc() {
                resp.headers_mut().entry(header::ALT_SVC).or_insert_with(|| v.clone());
            }
        }
        let status = resp.status().as_u16();
        let elapsed = started.elapsed();
        let names = {
            let mut st = ctx.state.borrow_mut();
            if let Some(slot) = trace.slot {
                st.metrics.record_request(trace.generation, slot, status, elapsed);
            }
            logged.as_ref().and_then(|_| trace.slot.and_then(|s| st.metrics.slot_names(trace.generation, s)))
        };
        if let Some((time, method, host, path)) = logged {
            ctx.log(|| AccessRecord {
                time,
                worker: ctx.id,
                listener: conn.listener.to_string(),
                client: conn.peer,
                method,
                host,
                path,
                protocol,
                status,
                route: names.as_ref().map_or_else(|| "-".into(), |n| n.route.clone()),
                cluster: names.as_ref().map_or_else(|| "-".into(), |n| n.cluster.clone()),
                upstream: trace.upstream,
                duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                request_id: trace.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
                attempts: trace.attempts,
                client_cert: conn.client_cert.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string),
            });
        }
        resp.body_mut().set_in_flight(in_flight);
        Ok(resp)
    }
}

/// What the proxy reads of the request's headers, and, only with an access log, the wall clock
/// and the request line's strings. Apart from [`handle`] so that `headers` is never borrowed
/// there, which would keep a copy of it in the request's state until the response.
fn scan<B>(ctx: &WorkerCtx, req: &Request<B>) -> (RequestHeaders, Option<(SystemTime, String, String, String)>) {
    let headers = RequestHeaders::scan(req.headers());
    let logged = ctx.logs().then(|| {
        let host = host_of(req.uri(), headers.host.as_ref()).unwrap_or("-").to_string();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
        (SystemTime::now(), req.method().to_string(), host, path)
    });
    (headers, logged)
}

/// Bytes of the request line as received ([`RequestHeaders::bytes`] counts the headers).
fn request_line_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len()) + uri.authority().map_or(0, |a| a.as_str().len());
    req.method().as_str().len() + target + 12
}

/// The request's authority, or else its `Host` header.
fn host_of<'a>(uri: &'a Uri, host: Option<&'a HeaderValue>) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| host.and_then(|h| h.to_str().ok()))
}

fn error_response(e: &ProxyError) -> Response<ProxyBody> {
    let status = e.status();
    let body = format!("{} {}: {e}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut resp = Response::new(ProxyBody::text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A gRPC client gets lbd's own failures as a trailers-only response: HTTP 200 with
/// `grpc-status` (UNAVAILABLE for 502/503, DEADLINE_EXCEEDED for 504, UNIMPLEMENTED for no
/// route, RESOURCE_EXHAUSTED for an oversized head) and `grpc-message`.
fn grpc_error_response(e: &ProxyError) -> Response<ProxyBody> {
    let code = match e.status().as_u16() {
        404 => "12",
        431 => "8",
        504 => "4",
        _ => "14",
    };
    let mut resp = Response::new(ProxyBody::empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(v) = HeaderValue::from_str(&e.to_string()) {
        h.insert("grpc-message", v);
    }
    resp
}

fn request_hash<B>(cfg: &ClusterConfig, req: &Request<B>, ip: IpAddr) -> Option<u64> {
    if !matches!(cfg.policy, Policy::RingHash | Policy::Maglev) {
        return None;
    }
    match &cfg.hash_on {
        HashOn::SourceIp => Some(match ip.to_canonical() {
            IpAddr::V4(a) => hash_key(&a.octets()),
            IpAddr::V6(a) => hash_key(&a.octets()),
        }),
        HashOn::Header(name) => req.headers().get(name.as_str()).map(|v| hash_key(v.as_bytes())),
        HashOn::Cookie(name) => req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| hash_key(v.as_bytes())),
    }
}

/// Routes `req` and makes it ready for its backend: hop-by-hop headers removed, the forwarding
/// headers worked out, the target in origin form. No IO: [`forward`] does that.
fn prepare(
    ctx: &Rc<WorkerCtx>,
    conn: &ConnInfo,
    req: Request<RequestBody>,
    mut headers: RequestHeaders,
    trace: &mut Trace,
) -> Result<Prepared, ProxyError> {
    let (target, cluster) = {
        let st = ctx.state.borrow();
        let snap = &st.snapshot;
        trace.generation = snap.generation;
        let router = match conn.listener_index(snap).map(|i| &snap.listeners[i]) {
            Some(ListenerPlan::Http(r)) => r,
            _ => return Err(ProxyError::ListenerGone),
        };
        let target =
            router.route(host_of(req.uri(), headers.host.as_ref()), req.uri().path()).ok_or(ProxyError::NoRoute)?;
        (target, st.clusters[target.cluster].clone())
    };
    trace.slot = Some(target.slot);
    let hash = request_hash(&cluster.cfg, &req, conn.peer.ip());

    let (mut parts, body) = req.into_parts();
    let upgrade = headers.upgrade && is_upgrade(&parts.headers);
    if strip_hop_by_hop(&mut parts.headers, upgrade) {
        // `Connection` named headers, which may be any of those read.
        headers.rescan_forwarding(&parts.headers);
    }
    if headers.host.is_none() {
        if let Some(v) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            parts.headers.insert(header::HOST, v.clone());
            headers.host = Some(v);
        }
    }
    let (fwd, id) = Forwarding::new(
        &headers,
        &conn.xff,
        conn.proto,
        conn.client_cert.as_ref(),
        || ctx.next_request_id(),
        ctx.logs(),
    );
    trace.request_id = id;
    // A URI in absolute-form (every HTTP/2 and HTTP/3 request, and HTTP/1.1 ones in that form)
    // stays as it is: the HTTP/1.1 client writes only its path and query (origin-form), and an
    // HTTP/2 backend gets one rebuilt below.
    if cluster.cfg.protocol == UpstreamProtocol::Http2 {
        // HTTP/2 wants the authority and scheme in the request; gRPC needs `te: trailers`.
        let host = headers.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let scheme = if cluster.cfg.tls.is_some() { "https" } else { "http" };
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(uri) = format!("{scheme}://{host}{pq}").parse() {
            parts.uri = uri;
        }
        parts.headers.remove(header::HOST);
        if headers.te_trailers {
            parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        parts.version = Version::HTTP_2;
    } else {
        parts.version = Version::HTTP_11;
    }
    let mut req = Request::from_parts(parts, body);
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    Ok(Prepared { req, cluster, hash, fwd, upgrade, downstream_upgrade })
}

/// A request [`prepare`]d for its backend.
struct Prepared {
    req: Request<RequestBody>,
    cluster: Rc<ClusterRt>,
    hash: Option<u64>,
    fwd: Forwarding,
    upgrade: bool,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// Sends a prepared request to an endpoint of its cluster, and to others while the attempt
/// failed before the request was acted on; the response comes back with its hop-by-hop
/// headers removed.
///
/// Not an `async fn`, so that `p` is kept once in the future's state (see [`handle`]).
#[allow(clippy::manual_async_fn)]
fn forward<'a>(
    ctx: &'a Rc<WorkerCtx>,
    conn: &'a ConnInfo,
    mut p: Prepared,
    trace: &'a mut Trace,
    started: Instant,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + 'a {
    async move {
        let cluster = &p.cluster;
        let mut tried: Vec<usize> = Vec::new();
        let mut last = ProxyError::NoEndpoint;
        for attempt in 0..=cluster.cfg.retries {
            // The first attempt starts with the request (one clock read less for each).
            let now = if attempt == 0 { started } else { Instant::now() };
            let Some(ep) = ctx.pick(cluster, p.hash, &tried, attempt, now) else { break };
            trace.attempts += 1;
            trace.upstream = Some(cluster.address(ep));
            cluster.state.borrow_mut().start_request(ep);
            match send(ctx, conn, cluster, ep, &mut p.req, &p.fwd, now).await {
                Ok(mut resp) => {
                    let status = resp.status();
                    let outcome = if status.is_server_error() { Outcome::ServerError } else { Outcome::Success };
                    let switching = p.upgrade && status == StatusCode::SWITCHING_PROTOCOLS;
                    if switching {
                        if let (Some(down), UpBody::H1(body)) = (p.downstream_upgrade.take(), resp.body_mut()) {
                            if let Some(up) = body.take_upgraded() {
                                tokio::task::spawn_local(tunnel(down, up));
                            }
                        }
                    }
                    let (mut parts, body) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers, switching);
                    // The client's connection decides the wire version, whatever the backend spoke.
                    parts.version = Version::HTTP_11;
                    let release = Release { cluster: cluster.clone(), endpoint: ep, outcome };
                    return Ok(Response::from_parts(parts, ProxyBody::upstream(body, release)));
                }
                Err((e, again)) => {
                    let now = Instant::now();
                    cluster.state.borrow_mut().end_request(ep, Outcome::ConnectFailure, now);
                    if matches!(e, ProxyError::Connect(_) | ProxyError::ConnectTimeout) {
                        ctx.state.borrow_mut().metrics.counters.connect_failures += 1;
                    }
                    tracing::debug!(worker = ctx.id, endpoint = %cluster.address(ep), error = %e, "upstream attempt failed");
                    if !again {
                        return Err(e);
                    }
                    tried.push(ep);
                    last = e;
                }
            }
        }
        Err(last)
    }
}

/// A response, or an error and whether the request may go to another endpoint.
type SendResult = Result<Response<UpBody>, (ProxyError, bool)>;

/// Sends on a pooled connection if there is one, else on a new one. A pooled connection that
/// turns out closed before the request could be acted on is not a failure: a fresh one is tried.
/// `now` is when the attempt started: the pool's idle check and the request timer count from it.
///
/// The request is borrowed from [`forward`]'s state, where it stays for a retry.
#[allow(clippy::manual_async_fn)]
fn send<'a>(
    ctx: &'a Rc<WorkerCtx>,
    conn: &'a ConnInfo,
    cluster: &'a ClusterRt,
    ep: usize,
    req: &'a mut Request<RequestBody>,
    fwd: &'a Forwarding,
    now: Instant,
) -> impl Future<Output = SendResult> + 'a {
    async move {
        let timeout = cluster.cfg.request_timeout;
        // Unparsed fields skip `strip_hop_by_hop`'s handling of an upgrade. The upgrades lbd
        // tunnels come from HTTP/1.1 clients, whose connection lbd's own loop hands to hyper's
        // server first (`RawHeads::No`): their responses keep the map.
        let raw = conn.raw_heads.get();
        // A request that could not be sent again (not idempotent, or its body will be consumed)
        // gets a connection checked for a close by the backend.
        let careful = !is_idempotent(req.method()) || !http_body::Body::is_end_stream(req.body());
        let pooled = cluster.pool.borrow_mut().take(ep, now, careful);
        if let Some(sender) = pooled {
            ctx.state.borrow_mut().metrics.counters.upstream_reused += 1;
            match timed(conn, timeout, sender.send(&mut *req, fwd, raw), now).await {
                Some(Ok(resp)) => return Ok(resp),
                Some(Err((e, true))) => {
                    tracing::debug!(worker = ctx.id, error = %e, "pooled upstream connection was closed; opening a new one");
                }
                Some(Err((e, false))) => return Err((e, false)),
                None => return Err((ProxyError::UpstreamTimeout, false)),
            }
        }
        // Boxed: a new connection's state (TCP and TLS connect, hyper handshake) is several KB, and
        // hyper moves the request future around; pooled requests should not carry it.
        // A PROXY protocol header (when the cluster sends one) opens each new connection.
        let proxy_header = cluster
            .cfg
            .send_proxy_protocol
            .zip(conn.local)
            .map(|(v, local)| crate::proxy_protocol::header(v, conn.peer, local));
        let sender = match Box::pin(connect(ctx, cluster, ep, proxy_header.as_deref())).await {
            Ok(s) => s,
            Err(e) => return Err((e, true)),
        };
        match timed(conn, timeout, sender.send(req, fwd, raw), Instant::now()).await {
            Some(r) => r,
            None => Err((ProxyError::UpstreamTimeout, false)),
        }
    }
}

/// `fut`'s output, or `None` once `limit` has passed.
///
/// An HTTP/1.1 connection reuses one timer for all its requests instead of tokio's `timeout`,
/// which registers a timer in the driver's wheel and removes it again for every request (5% of
/// the instructions of a keep-alive request). Each request's deadline is later than the last
/// one's, so resetting the registered timer only moves its deadline (tokio re-files it when the
/// old one comes up). Between requests it stays registered, and wakes the connection once per
/// `limit` at most. Connections with requests at once (HTTP/2, HTTP/3) give each request that
/// has to wait a timer of its own.
fn timed<F: Future>(conn: &ConnInfo, limit: Duration, fut: F, started: Instant) -> Timed<'_, F> {
    Timed { fut, conn, limit, started: tokio::time::Instant::from_std(started), timer: None }
}

pin_project_lite::pin_project! {
    /// See [`timed`].
    struct Timed<'a, F> {
        #[pin]
        fut: F,
        conn: &'a ConnInfo,
        limit: Duration,
        started: tokio::time::Instant,
        // Armed when `fut` first waits.
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = match this.fut.poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => {
                let timer = this.timer.get_or_insert_with(|| {
                    let deadline = *this.started + *this.limit;
                    match this.conn.timer.0.take() {
                        Some(mut t) => {
                            t.as_mut().reset(deadline);
                            t
                        }
                        None => Box::pin(tokio::time::sleep_until(deadline)),
                    }
                });
                std::task::ready!(timer.as_mut().poll(cx));
                None
            }
        };
        if let Some(t) = this.timer.take() {
            if this.conn.reuse_timer {
                this.conn.timer.0.set(Some(t));
            }
        }
        Poll::Ready(out)
    }
}

/// Opens an upstream connection (with TLS when the cluster says so): lbd's HTTP/1.1 client, or
/// an HTTP/2 connection driven on this worker. With `proxy_header`, that PROXY protocol header
/// is written first. (A pooled connection keeps the header of the client it was opened for, as
/// HAProxy's reuse does.)
async fn connect(
    ctx: &Rc<WorkerCtx>,
    cluster: &ClusterRt,
    ep: usize,
    proxy_header: Option<&[u8]>,
) -> Result<Sender, ProxyError> {
    let addr = cluster.address(ep);
    let timeout = cluster.cfg.connect_timeout;
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::Connect(e)),
        Err(_) => return Err(ProxyError::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    if let Some(h) = proxy_header {
        tokio::io::AsyncWriteExt::write_all(&mut stream, h).await.map_err(ProxyError::Connect)?;
    }
    let io = if cluster.cfg.tls.is_none() {
        UpIo::Plain(stream)
    } else {
        let (Some(tls), Some(name)) = (&cluster.tls, cluster.server_name(ep)) else {
            return Err(ProxyError::Connect(std::io::Error::other("upstream TLS is not usable (see the log)")));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
            Ok(Ok(s)) => UpIo::Tls(Box::new(s)),
            Ok(Err(e)) => return Err(ProxyError::Connect(e)),
            Err(_) => return Err(ProxyError::ConnectTimeout),
        }
    };
    ctx.state.borrow_mut().metrics.counters.upstream_connects += 1;
    match cluster.cfg.protocol {
        UpstreamProtocol::Http1 => Ok(Sender::H1(Box::new(H1Conn::new(io, &ctx.h1_open)))),
        UpstreamProtocol::Http2 => handshake_h2(ctx, cluster, ep, io).await,
    }
}

/// HTTP/2 handshake on an upstream stream; the connection is driven by a local task and
/// becomes the endpoint's shared one.
async fn handshake_h2(ctx: &Rc<WorkerCtx>, cluster: &ClusterRt, ep: usize, io: UpIo) -> Result<Sender, ProxyError> {
    let addr = cluster.address(ep);
    let (sender, conn) = hyper::client::conn::http2::Builder::new(super::LocalExec)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::Upstream(e.into()))?;
    cluster.pool.borrow_mut().share(ep, &sender);
    ctx.state.borrow_mut().metrics.counters.upstream_active += 1;
    let ctx = ctx.clone();
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%addr, error = %e, "upstream connection ended");
        }
        ctx.state.borrow_mut().metrics.counters.upstream_active -= 1;
    });
    Ok(Sender::H2(sender))
}

/// Copies bytes both ways between an upgraded client and backend (WebSocket and friends).
async fn tunnel(down: hyper::upgrade::OnUpgrade, up: Box<H1Conn>) {
    let Ok(down) = down.await else { return };
    let mut down = TokioIo::new(down);
    let (mut up, early) = up.into_upgraded();
    // Bytes the backend sent right behind its 101 response.
    if !early.is_empty() && tokio::io::AsyncWriteExt::write_all(&mut down, &early).await.is_err() {
        return;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lb_core::snapshot::Snapshot;

    use http_body_util::BodyExt as _;
    use lb_core::runtime::IoBackend;

    use super::*;
    use crate::l4::L4Copy;

    /// hyper moves a request's future by value (HTTP/1.1) or boxes it per stream (HTTP/2 and
    /// HTTP/3, where hundreds are in flight per connection): its size is memory per request in
    /// flight and bytes copied per request. Nested `async fn`s kept every argument twice
    /// (rust-lang/rust#62958); this was 4,992 bytes with them.
    #[test]
    fn a_request_future_fits_in_3_kib() {
        let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"c\"\n\
                    [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:2\"]\n";
        let cfg = lb_core::config::parse(text, "t.toml").expect("config");
        let snapshot = Arc::new(Snapshot::new(cfg, text.into(), 1));
        let ctx = WorkerCtx::new(0, IoBackend::Epoll, L4Copy::Readiness, snapshot, None);
        let peer = "127.0.0.1:9".parse().expect("addr");
        let conn = Rc::new(ConnInfo::new("web".into(), 8192, peer, "http", Rc::new(Activity::default())));
        let body: super::super::body::LocalBody =
            Box::pin(http_body_util::Empty::<bytes::Bytes>::new().map_err(|e| match e {}));
        let fut = handle(ctx, conn, Request::new(RequestBody::Local(body)));
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 3 * 1024, "a request's future is {size} bytes");
    }
}
