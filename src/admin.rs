//! The admin HTTP API (loopback by default): `/metrics`, `/healthz`, `/ready`, `/config`,
//! `POST /reload`.

use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::daemon::Daemon;

/// Serves the admin API until the process ends.
pub(crate) async fn serve(daemon: Rc<Daemon>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let d = daemon.clone();
        tokio::task::spawn_local(async move {
            let svc = hyper::service::service_fn(move |req| handle(d.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn handle(d: Rc<Daemon>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    Ok(match (req.method(), path) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", d.metrics().await)
        }
        (&Method::GET, "/healthz") => reply(StatusCode::OK, TEXT, "ok\n"),
        (&Method::GET, "/ready") if d.is_draining() => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n"),
        (&Method::GET, "/ready") => reply(StatusCode::OK, TEXT, "ready\n"),
        (&Method::GET, "/config") => {
            let snap = d.snapshot();
            let mut r = reply(StatusCode::OK, "application/toml", snap.source.clone());
            r.headers_mut().insert("x-lbd-config-generation", HeaderValue::from(snap.generation));
            r
        }
        (&Method::POST, "/reload") => match d.reload().await {
            Ok(g) => reply(StatusCode::OK, TEXT, format!("reloaded: config generation {g}\n")),
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!("reload rejected; config generation {} keeps running:\n{e}\n", d.snapshot().generation),
            ),
        },
        (_, "/metrics" | "/healthz" | "/ready" | "/config" | "/reload") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n")
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics, /healthz, /ready, /config, POST /reload\n"),
    })
}
