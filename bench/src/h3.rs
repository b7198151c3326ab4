//! HTTP/3 client side of the load generator and the idle-connection holder: quinn + h3, one
//! UDP socket per connection (so connections spread over the balancer's workers by address, as
//! real clients do). Certificates are not verified (self-signed benchmark certificates).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use hdrhistogram::Histogram;

/// A quinn client endpoint on its own socket, speaking h3.
pub(crate) fn endpoint() -> Result<quinn::Endpoint, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::load::AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(120_000))));
    cfg.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0))).map_err(|e| e.to_string())?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// An open HTTP/3 connection.
pub(crate) struct H3Conn {
    pub(crate) send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub(crate) conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// Connects to `addr` (SNI `host`) and starts the h3 connection driver.
pub(crate) async fn connect(addr: SocketAddr, host: &str) -> Result<H3Conn, String> {
    let ep = endpoint()?;
    let conn = ep.connect(addr, host).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
    let (mut driver, send) =
        h3::client::new(h3_quinn::Connection::new(conn.clone())).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(H3Conn { send, conn, _endpoint: ep })
}

/// One GET; the body's length.
pub(crate) async fn get(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    uri: &http::Uri,
) -> Result<(bool, u64), String> {
    let req = http::Request::get(uri.clone()).body(()).map_err(|e| e.to_string())?;
    let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
    stream.finish().await.map_err(|e| e.to_string())?;
    let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        bytes += chunk.remaining() as u64;
    }
    Ok((resp.status().is_success(), bytes))
}

/// One connection running `streams` request loops until the work runs out.
pub(crate) async fn connection(
    addr: SocketAddr,
    uri: http::Uri,
    streams: usize,
    shared: Arc<crate::load::Shared>,
) -> (Histogram<u64>, crate::load::Tally) {
    let mut hist = crate::load::histogram();
    let mut tally = crate::load::Tally::default();
    let host = uri.host().unwrap_or("localhost").to_string();
    let c = match connect(addr, &host).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("h3 connect: {e}");
            tally.errors += 1;
            return (hist, tally);
        }
    };
    let mut loops = Vec::new();
    for _ in 0..streams.max(1) {
        let (mut send, uri, shared) = (c.send.clone(), uri.clone(), shared.clone());
        loops.push(tokio::spawn(async move {
            let mut h = crate::load::histogram();
            let mut t = crate::load::Tally::default();
            while let Some((_, due)) = shared.take() {
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                match get(&mut send, &uri).await {
                    Ok((ok, n)) => {
                        t.bytes += n;
                        if ok {
                            t.ok += 1;
                        } else {
                            t.errors += 1;
                        }
                        let us = u64::try_from(due.unwrap_or(sent).elapsed().as_micros()).unwrap_or(u64::MAX);
                        h.saturating_record(us.max(1));
                    }
                    Err(_) => {
                        t.errors += 1;
                        break;
                    }
                }
            }
            (h, t)
        }));
    }
    for l in loops {
        if let Ok((h, t)) = l.await {
            let _ = hist.add(&h);
            tally.ok += t.ok;
            tally.errors += t.errors;
            tally.bytes += t.bytes;
        }
    }
    c.conn.close(0u32.into(), b"done");
    (hist, tally)
}

/// Opens `count` idle HTTP/3 connections (one request each, so the h3 session is set up).
pub(crate) async fn open_idle(addr: SocketAddr, count: usize, burst: usize) -> Result<Vec<H3Conn>, String> {
    let uri: http::Uri = format!("https://localhost:{}/", addr.port()).parse().map_err(|e| format!("{e}"))?;
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let c = connect(addr, "localhost").await?;
        // `burst` requests at once, each on its own stream, as a browser loading a page does.
        let mut gets = tokio::task::JoinSet::new();
        for _ in 0..burst.max(1) {
            let (mut send, uri) = (c.send.clone(), uri.clone());
            gets.spawn(async move { get(&mut send, &uri).await });
        }
        while let Some(done) = gets.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        conns.push(c);
    }
    Ok(conns)
}
