//! Opens and holds N idle connections to a balancer, spreading source addresses over
//! 127.0.0.0/8 so the 64k-ports-per-source limit does not cap N, and reports how many stayed
//! open and how much the balancer's resident memory grew per connection.
//!
//! Kinds: `tcp` (connect only), `h2` (HTTP/2 client preface and SETTINGS sent, cleartext),
//! `tls` (TLS handshake done, ALPN http/1.1), `h2tls` (TLS with ALPN h2, then the preface).
//! `h3`: QUIC connections with the HTTP/3 session set up by one request, each from its own UDP
//! socket (quinn + h3). With `--burst N` (`h2tls` and `h3`), each connection first carries N
//! requests at once, each on its own stream, as a browser loading a page does.

use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::meter;

/// HTTP/2 client preface followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// What to hold.
#[derive(Debug, Clone)]
pub(crate) struct ConnsSpec {
    pub(crate) target: SocketAddr,
    pub(crate) count: usize,
    pub(crate) kind: String,
    pub(crate) hold: Duration,
    /// `h2tls` and `h3`: requests sent at once on each connection before it goes idle
    pub(crate) burst: usize,
    pub(crate) meter: Vec<u32>,
}

/// What happened.
#[derive(Debug, Clone)]
pub(crate) struct ConnsResult {
    pub(crate) opened: usize,
    pub(crate) alive: usize,
    /// The balancer's memory before the connections were opened and while they are held
    pub(crate) before: meter::Usage,
    pub(crate) after: meter::Usage,
}

impl ConnsResult {
    /// Growth of the balancer's anonymous resident memory per connection (see `meter`).
    pub(crate) fn bytes_per_conn(&self) -> f64 {
        (self.after.anon as f64 - self.before.anon as f64) / self.opened.max(1) as f64
    }
}

/// Raises this process's open-file limit to its hard limit; returns the new soft limit.
pub(crate) fn raise_nofile() -> u64 {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((_, hard)) => {
            let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
            hard
        }
        Err(_) => 1024,
    }
}

fn source(i: usize) -> Ipv4Addr {
    // 127.0.1.1 .. 127.0.1.250, then the next /24: 250 sources, each far below its port limit.
    let n = (i % 250) as u8 + 1;
    let block = (1 + i / 50_000) as u8;
    Ipv4Addr::new(127, 0, block, n)
}

async fn open(target: SocketAddr, i: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    if target.is_ipv4() && target.ip().is_loopback() {
        s.bind(&SocketAddr::from((source(i), 0)).into())?;
    }
    let std: std::net::TcpStream = s.into();
    let sock = tokio::net::TcpSocket::from_std_stream(std);
    sock.connect(target).await
}

/// Opens, measures, holds, checks.
pub(crate) fn run(spec: &ConnsSpec) -> Result<ConnsResult, String> {
    let limit = raise_nofile();
    if spec.count as u64 + 64 > limit {
        return Err(format!("{} connections need more than this process's open-file limit ({limit})", spec.count));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = meter::usage_of(&spec.meter);
        if spec.kind == "h3" {
            let conns = crate::h3::open_idle(spec.target, spec.count, spec.burst).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = meter::usage_of(&spec.meter);
            tokio::time::sleep(spec.hold).await;
            let alive = conns.iter().filter(|c| c.conn.close_reason().is_none()).count();
            return Ok(ConnsResult { opened: conns.len(), alive, before, after });
        }
        if spec.kind == "h2tls" && spec.burst > 1 {
            return h2_after_burst(spec, before).await;
        }
        let mut conns: Vec<TcpStream> = Vec::with_capacity(spec.count);
        let mut tls_conns = Vec::new();
        let tls =
            matches!(spec.kind.as_str(), "tls" | "h2tls").then(|| crate::load::tls_connector(spec.kind == "h2tls"));
        // One at a time: a loopback connect takes tens of microseconds.
        for i in 0..spec.count {
            let mut s = open(spec.target, i).await.map_err(|e| format!("connection {i} failed: {e}"))?;
            match &tls {
                None => {
                    if spec.kind == "h2" {
                        s.write_all(H2_PREFACE).await.map_err(|e| format!("preface: {e}"))?;
                    }
                    conns.push(s);
                }
                Some(c) => {
                    let name = rustls::pki_types::ServerName::IpAddress(spec.target.ip().into());
                    let mut t = c.connect(name, s).await.map_err(|e| format!("TLS handshake {i}: {e}"))?;
                    if spec.kind == "h2tls" {
                        t.write_all(H2_PREFACE).await.map_err(|e| format!("preface: {e}"))?;
                        t.flush().await.map_err(|e| format!("preface: {e}"))?;
                    }
                    tls_conns.push(t);
                }
            }
        }
        let opened = conns.len() + tls_conns.len();
        // Let the balancer finish accepting and answering prefaces before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = meter::usage_of(&spec.meter);
        tokio::time::sleep(spec.hold).await;
        // For TLS the raw socket is checked (what the server sent is read and dropped).
        let alive = conns.iter().filter(|s| still_open(s)).count()
            + tls_conns.iter().filter(|s| still_open(s.get_ref().0)).count();
        Ok(ConnsResult { opened, alive, before, after })
    })
}

/// `h2tls` with `--burst`: HTTP/2 connections (hyper's client) that each carried `burst`
/// requests at once before going idle.
async fn h2_after_burst(spec: &ConnsSpec, before: meter::Usage) -> Result<ConnsResult, String> {
    use http_body_util::{BodyExt, Empty};
    let tls = crate::load::tls_connector(true);
    let uri: http::Uri = format!("https://{}/", spec.target).parse().map_err(|e| format!("{e}"))?;
    let mut senders = Vec::with_capacity(spec.count);
    for i in 0..spec.count {
        let s = open(spec.target, i).await.map_err(|e| format!("connection {i} failed: {e}"))?;
        let name = rustls::pki_types::ServerName::IpAddress(spec.target.ip().into());
        let t = tls.connect(name, s).await.map_err(|e| format!("TLS handshake {i}: {e}"))?;
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(t),
        )
        .await
        .map_err(|e| format!("HTTP/2 handshake {i}: {e}"))?;
        tokio::spawn(conn);
        let mut gets = tokio::task::JoinSet::new();
        for _ in 0..spec.burst {
            let (mut sender, uri) = (sender.clone(), uri.clone());
            gets.spawn(async move {
                let req = http::Request::get(uri).body(Empty::<bytes::Bytes>::new()).map_err(|e| e.to_string())?;
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                resp.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            });
        }
        while let Some(done) = gets.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        senders.push(sender);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = meter::usage_of(&spec.meter);
    tokio::time::sleep(spec.hold).await;
    let alive = senders.iter().filter(|s| !s.is_closed()).count();
    Ok(ConnsResult { opened: senders.len(), alive, before, after })
}

/// Open means: no EOF and no error; bytes the server sent (SETTINGS) are read and dropped.
fn still_open(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}
