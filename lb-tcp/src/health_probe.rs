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
    let (path, expected_status, host) = match kind {
        HealthCheckKind::Tcp => return true,
        HealthCheckKind::Grpc { service } => return grpc_check(stream, addr, service).await,
        HealthCheckKind::Http { path, expected_status, host } => (path, expected_status, host),
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
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
    // The connection runs as its own task: with `Connection: close` it ends as the response
    // arrives, and racing the two would sometimes drop a good answer.
    let driver = tokio::spawn(conn);
    let passed = sender.send_request(req).await.is_ok_and(|resp| resp.status().as_u16() == *expected_status);
    driver.abort();
    passed
}

/// `grpc.health.v1.Health/Check` on an HTTP/2 cleartext connection: passes when the call ends
/// with grpc-status 0 and the response says SERVING (field 1 = 1).
async fn grpc_check(stream: TcpStream, addr: SocketAddr, service: &str) -> bool {
    use http_body_util::{BodyExt, Full};
    let Ok((mut sender, conn)) =
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(crate::http::LocalExec, TokioIo::new(stream)).await
    else {
        return false;
    };
    let driver = tokio::task::spawn_local(conn);
    // One gRPC frame: uncompressed flag, big-endian length, HealthCheckRequest { service = 1 }.
    let mut msg = Vec::with_capacity(2 + service.len());
    if !service.is_empty() {
        msg.push(0x0a);
        msg.push(u8::try_from(service.len()).unwrap_or(u8::MAX));
        msg.extend_from_slice(&service.as_bytes()[..service.len().min(255)]);
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(&msg);
    let Ok(req) = Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(header::USER_AGENT, "lbd-health-check")
        .body(Full::new(Bytes::from(frame)))
    else {
        return false;
    };
    let passed = async {
        let resp = sender.send_request(req).await.ok()?;
        let status_in_headers = resp.headers().get("grpc-status").cloned();
        let body = resp.into_body().collect().await.ok()?;
        let status = body.trailers().and_then(|t| t.get("grpc-status").cloned()).or(status_in_headers)?;
        let data = body.to_bytes();
        // Frame header (5 bytes), then HealthCheckResponse { status = 1 (SERVING) }.
        Some(status == "0" && data.get(5..) == Some(&[0x08, 0x01][..]))
    }
    .await
    .unwrap_or(false);
    driver.abort();
    passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(status: u16) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn grpc_probe_fails_against_a_server_that_is_not_grpc() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let plain = server(200).await;
                assert!(!probe(plain, &HealthCheckKind::Grpc { service: String::new() }, Duration::from_secs(2)).await);
            })
            .await;
    }

    fn http(path: &str, expected_status: u16) -> HealthCheckKind {
        HealthCheckKind::Http { path: path.into(), expected_status, host: None }
    }

    #[tokio::test]
    async fn http_probe_passes_on_the_expected_status_only() {
        let ok = server(200).await;
        let bad = server(503).await;
        let t = Duration::from_secs(2);
        assert!(probe(ok, &http("/healthz", 200), t).await);
        assert!(!probe(bad, &http("/healthz", 200), t).await);
        assert!(probe(bad, &http("/healthz", 503), t).await);
        assert!(probe(ok, &HealthCheckKind::Tcp, t).await);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        assert!(!probe(closed, &HealthCheckKind::Tcp, t).await);
    }
}
