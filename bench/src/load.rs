//! The load generator: HTTP/1.1 (one request at a time per connection) and HTTP/2 (M streams per
//! connection), closed loop or open loop at a fixed rate. In open loop each request's latency is
//! measured from the time it was due, not from when a connection got round to it, so a stalled
//! server shows up in the tail (coordinated-omission correction).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::meter;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub(crate) url: hyper::Uri,
    pub(crate) h2: bool,
    /// Speak HTTP/3 (QUIC) instead.
    pub(crate) h3: bool,
    /// With `h3`: drive quiche instead of quinn as the client stack.
    pub(crate) quiche: bool,
    /// One request per connection (a full TLS handshake each over https).
    pub(crate) new_conn: bool,
    pub(crate) connections: usize,
    pub(crate) streams: usize,
    pub(crate) requests: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) rate: Option<f64>,
    pub(crate) meter: Vec<u32>,
}

/// What came out.
#[derive(Debug, Clone)]
pub(crate) struct LoadResult {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) body_bytes: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) cpu_seconds: f64,
    /// The user-space part of `cpu_seconds`.
    pub(crate) user_seconds: f64,
    pub(crate) rss: u64,
}

impl LoadResult {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    pub(crate) fn cpu_us_per_request(&self) -> f64 {
        self.per_request(self.cpu_seconds)
    }

    /// The user-space part of [`Self::cpu_us_per_request`]; the rest is kernel time.
    pub(crate) fn user_us_per_request(&self) -> f64 {
        self.per_request(self.user_seconds)
    }

    fn per_request(&self, seconds: f64) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            seconds * 1e6 / self.requests as f64
        }
    }

    pub(crate) fn percentile_us(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }
}

pub(crate) struct Shared {
    next: AtomicU64,
    limit: u64,
    deadline: Option<Instant>,
    start: Instant,
    rate: Option<f64>,
}

impl Shared {
    /// The next request's index and, in open loop, when it is due.
    pub(crate) fn take(&self) -> Option<(u64, Option<Instant>)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.limit || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let due = self.rate.map(|r| self.start + Duration::from_secs_f64(i as f64 / r));
        Some((i, due))
    }
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) bytes: u64,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Runs the load and returns the merged result.
pub(crate) fn run(spec: &LoadSpec) -> Result<LoadResult, String> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(run_async(spec))
}

async fn run_async(spec: &LoadSpec) -> Result<LoadResult, String> {
    let authority = spec.url.authority().ok_or("the URL needs host:port")?.clone();
    let addr = authority.as_str().to_string();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        limit: if spec.duration.is_some() && spec.requests == 0 { u64::MAX } else { spec.requests },
        deadline: spec.duration.map(|d| start + d),
        start,
        rate: spec.rate,
    });
    let before = meter::usage_of(&spec.meter);
    let mut tasks = Vec::new();
    let tls = (spec.url.scheme_str() == Some("https")).then(|| tls_connector(spec.h2));
    let host = spec.url.host().unwrap_or("localhost").to_string();
    for _ in 0..spec.connections {
        let shared = shared.clone();
        if spec.h3 {
            // /etc/hosts names (localhost) resolve without DNS; prefer IPv4 like the listeners.
            let target = std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .map_err(|e| format!("{addr}: {e}"))?
                .min_by_key(std::net::SocketAddr::is_ipv6)
                .ok_or_else(|| format!("{addr}: no address"))?;
            if spec.quiche {
                tasks.push(tokio::spawn(quiche_connection(target, spec.url.clone(), spec.streams, shared)));
            } else {
                tasks.push(tokio::spawn(crate::h3::connection(target, spec.url.clone(), spec.streams, shared)));
            }
            continue;
        }
        let dial = Dial { addr: addr.clone(), host: host.clone(), tls: tls.clone() };
        let (url, h2, streams, new_conn) = (spec.url.clone(), spec.h2, spec.streams.max(1), spec.new_conn);
        tasks.push(tokio::spawn(async move { connection(dial, url, h2, streams, new_conn, shared).await }));
    }
    let mut latency = histogram();
    let mut tally = Tally::default();
    for t in tasks {
        let (h, t) = t.await.map_err(|e| e.to_string())?;
        let _ = latency.add(&h);
        tally.ok += t.ok;
        tally.errors += t.errors;
        tally.bytes += t.bytes;
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = meter::usage_of(&spec.meter);
    Ok(LoadResult {
        requests: tally.ok,
        errors: tally.errors,
        seconds,
        body_bytes: tally.bytes,
        latency,
        cpu_seconds: after.ticks.saturating_sub(before.ticks) as f64 / meter::TICKS_PER_SEC,
        user_seconds: after.user.saturating_sub(before.user) as f64 / meter::TICKS_PER_SEC,
        rss: after.rss,
    })
}

/// Accepts any server certificate: benchmarks run against self-signed test certificates.
#[derive(Debug)]
pub(crate) struct AnyCert(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn tls_connector(h2: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = if h2 { vec![b"h2".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    // Full handshakes are what `--new-conn` measures: no resumption.
    cfg.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
struct Dial {
    addr: String,
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dial {
    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(c) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                Ok(Box::new(c.connect(name, tcp).await?))
            }
        }
    }
}

/// One connection, reconnecting after errors (or after every request with `new_conn`); for
/// HTTP/2 it runs `streams` request loops on it.
async fn connection(
    dial: Dial,
    url: hyper::Uri,
    h2: bool,
    streams: usize,
    new_conn: bool,
    shared: Arc<Shared>,
) -> (Histogram<u64>, Tally) {
    let mut hist = histogram();
    let mut tally = Tally::default();
    'reconnect: loop {
        let stream = match dial.connect().await {
            Ok(s) => s,
            Err(_) => {
                if shared.take().is_none() {
                    break;
                }
                tally.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if h2 {
            let Ok((sender, conn)) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await
            else {
                tally.errors += 1;
                continue;
            };
            tokio::spawn(conn);
            let mut loops = Vec::new();
            for _ in 0..streams {
                let (mut client, url, shared) = (Client::H2(sender.clone()), url.clone(), shared.clone());
                loops.push(tokio::spawn(async move {
                    let mut h = histogram();
                    let mut t = Tally::default();
                    let broken = request_loop(&url, &shared, &mut h, &mut t, &mut client, false).await;
                    (h, t, broken)
                }));
            }
            let mut broken = false;
            for l in loops {
                if let Ok((h, t, b)) = l.await {
                    let _ = hist.add(&h);
                    tally.ok += t.ok;
                    tally.errors += t.errors;
                    tally.bytes += t.bytes;
                    broken |= b;
                }
            }
            if broken {
                continue 'reconnect;
            }
            break;
        }
        let Ok((sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
            tally.errors += 1;
            continue;
        };
        tokio::spawn(conn);
        let before = tally.ok + tally.errors;
        let broken = request_loop(&url, &shared, &mut hist, &mut tally, &mut Client::H1(sender), new_conn).await;
        // Done when the work ran out: a pass that sent nothing (or, keep-alive, any clean end).
        if (!broken && !new_conn) || tally.ok + tally.errors == before {
            break;
        }
    }
    (hist, tally)
}

/// A connection's request handle.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    async fn send(&mut self, req: Request<Empty<Bytes>>) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Self::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Self::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// Sends requests until the work runs out (with `one`, a single request); returns true if the
/// connection broke.
async fn request_loop(
    url: &hyper::Uri,
    shared: &Shared,
    hist: &mut Histogram<u64>,
    tally: &mut Tally,
    client: &mut Client,
    one: bool,
) -> bool {
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let host = url.authority().map_or("localhost", |a| a.as_str());
    while let Some((_, due)) = shared.take() {
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let Ok(req) = Request::get(path).header(hyper::header::HOST, host).body(Empty::new()) else { return true };
        match client.send(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                match resp.into_body().collect().await {
                    Ok(b) => tally.bytes += b.to_bytes().len() as u64,
                    Err(_) => {
                        tally.errors += 1;
                        return true;
                    }
                }
                if ok {
                    tally.ok += 1;
                } else {
                    tally.errors += 1;
                }
                let from = due.unwrap_or(sent);
                let us = u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                hist.saturating_record(us);
                if one {
                    return false;
                }
            }
            Err(_) => {
                tally.errors += 1;
                return true;
            }
        }
    }
    false
}

/// One HTTP/3 connection on quiche running `streams` requests at a time.
async fn quiche_connection(
    addr: std::net::SocketAddr,
    url: hyper::Uri,
    streams: usize,
    shared: Arc<Shared>,
) -> (Histogram<u64>, Tally) {
    let mut hist = histogram();
    let mut tally = Tally::default();
    let host = url.authority().map_or("localhost", |a| a.as_str()).to_string();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    match lb_bench::quiche_client::Client::connect(addr, &host).await {
        Ok(mut c) => {
            let r = c
                .load(
                    &path,
                    streams.max(1),
                    || shared.take().map(|(_, due)| due),
                    |us, ok, bytes| {
                        hist.saturating_record(us);
                        tally.bytes += bytes;
                        if ok {
                            tally.ok += 1;
                        } else {
                            tally.errors += 1;
                        }
                    },
                )
                .await;
            if let Err(e) = r {
                eprintln!("quiche: {e}");
                tally.errors += 1;
            }
        }
        Err(e) => {
            eprintln!("quiche connect: {e}");
            tally.errors += 1;
        }
    }
    (hist, tally)
}
