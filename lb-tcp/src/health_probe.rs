//! The IO half of active health checks: one probe of one endpoint. The verdict's state machine
//! is `lb_core::health::ActiveHealth`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header;
use hyper::Request;
use hyper_util::rt::TokioIo;
use lb_core::config::HealthCheckKind;
use tokio::net::TcpStream;

/// Probes `addr`; true when it passes within `timeout`.
pub async fn probe(addr: SocketAddr, kind: &HealthCheckKind, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, probe_inner(addr, kind)).await.unwrap_or(false)
}

async fn probe_inner(addr: SocketAddr, kind: &HealthCheckKind) -> bool {
    let Ok(stream) = TcpStream::connect(addr).await else { return false };
    let HealthCheckKind::Http { path, expected_status, host } = kind else { return true };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await else {
        return false;
    };
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let Ok(req) = Request::get(path.as_str())
        .header(header::HOST, host)
        .header(header::USER_AGENT, "lbd-health-check")
        .header(header::CONNECTION, "close")
        .body(Empty::new())
    else {
        return false;
    };
    tokio::select! {
        r = sender.send_request(req) => r.is_ok_and(|resp| resp.status().as_u16() == *expected_status),
        _ = conn => false,
    }
}
