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
