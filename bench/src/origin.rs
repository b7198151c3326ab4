//! A fast origin for benchmarks: HTTP/1.1 and HTTP/2 cleartext (h2c, prior knowledge) on one port.
//! `/` and `/small` answer 6 bytes, `/large` 64 KiB, `/echo` streams the request body back.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

static LARGE: [u8; 65536] = [b'x'; 65536];

type Body = BoxBody<Bytes, hyper::Error>;

async fn answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let body: Body = match req.uri().path() {
        "/large" => Full::new(Bytes::from_static(&LARGE)).map_err(|never| match never {}).boxed(),
        "/echo" => req.into_body().boxed(),
        _ => Full::new(Bytes::from_static(b"hello\n")).map_err(|never| match never {}).boxed(),
    };
    Ok(Response::new(body))
}

/// A listener with room for 4,096 connections waiting to be accepted. `TcpListener::bind` gives
/// 128: a balancer that opens a few hundred backend connections at once (512 HTTP/2 streams
/// arriving over a warm pool of 16) overflowed it, and the dropped handshakes were retried by
/// the kernel a second later, which put one-second requests into the measured latencies.
fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if listen.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(4096)
}

/// Serves until the process is stopped.
pub(crate) fn run(listen: SocketAddr, threads: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
        eprintln!("lb-bench origin listening on {listen} (HTTP/1.1 and h2c)");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    })
}
