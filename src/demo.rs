//! `lbd demo`: two small origin servers inside the process and the balancer in front of them
//! with the embedded `conf/demo.toml`, so a fresh machine can try lbd with no setup.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::daemon::{self, ConfigSource};

/// The demo config, as shipped in `conf/demo.toml`.
pub(crate) const DEMO_CONFIG: &str = include_str!("../conf/demo.toml");

const ORIGINS: [(&str, u16); 2] = [("origin-a", 18081), ("origin-b", 18082)];

/// Writes a self-signed certificate for `localhost` and returns the https listener section that
/// serves it on 127.0.0.1:8443.
fn https_section() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("lbd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| format!("demo certificate: {e}"))?;
    let (cert, key) = (dir.join("localhost.crt"), dir.join("localhost.key"));
    std::fs::write(&cert, ck.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    std::fs::write(&key, ck.signing_key.serialize_pem()).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(format!(
        "\n# Added by `lbd demo`: HTTPS (HTTP/1.1 and HTTP/2) with a certificate made at start.\n\
         [[listeners]]\nname = \"demo-https\"\nkind = \"https\"\nbind = \"127.0.0.1:8443\"\n\
         [listeners.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n\
         [[listeners.routes]]\nname = \"https-default\"\ncluster = \"web\"\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
}

/// Runs the demo until Ctrl-C.
pub(crate) fn run() -> ExitCode {
    let https = match https_section() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lbd demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut listeners = Vec::new();
    for (name, port) in ORIGINS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(l) => listeners.push((name, l)),
            Err(e) => {
                eprintln!("lbd demo: cannot bind demo origin {name} on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let origins = std::thread::Builder::new().name("lbd-demo-origins".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("lbd demo: origin runtime: {e}"),
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            for (name, l) in listeners {
                match tokio::net::TcpListener::from_std(l) {
                    Ok(l) => {
                        tokio::task::spawn_local(origin(name, l));
                    }
                    Err(e) => eprintln!("lbd demo: {name}: {e}"),
                }
            }
            std::future::pending::<()>().await;
        });
    });
    if let Err(e) = origins {
        eprintln!("lbd demo: cannot start the origins: {e}");
        return ExitCode::FAILURE;
    }
    let text = format!("{DEMO_CONFIG}{https}");
    daemon::run(ConfigSource::Embedded { name: "conf/demo.toml (embedded)", text }, |_| {
        eprintln!(
            "\nlbd demo is running: HTTP on 127.0.0.1:8080, HTTPS (HTTP/1.1, HTTP/2) on TCP and HTTP/3 on UDP\n\
             127.0.0.1:8443, admin on 127.0.0.1:9901,\n\
             origins on :18081 and :18082.\n\
             Try:\n  \
             curl -s http://127.0.0.1:8080/hello                        # weighted 3:1 over origin-a and origin-b\n  \
             for i in 1 2 3 4 5 6 7 8; do curl -s http://127.0.0.1:8080/ | grep origin; done\n  \
             curl -s http://127.0.0.1:8080/a/page                       # path route: always origin-a\n  \
             curl -s -H 'Host: api.localhost' -H 'X-User: alice' http://127.0.0.1:8080/  # same user, same origin\n  \
             curl -sk --http2 https://localhost:8443/hello             # HTTPS with HTTP/2 (self-signed: -k)\n  \
             curl -sk -D- -o /dev/null https://localhost:8443/ | grep -i alt-svc   # HTTP/3 advertised\n  \
             curl -s http://127.0.0.1:9901/metrics | grep lbd_quic_     # HTTP/3 clients (Chrome, curl --http3) use UDP :8443\n  \
             curl -s http://127.0.0.1:9901/metrics | grep lbd_requests_total\n  \
             curl -s http://127.0.0.1:9901/config\n  \
             curl -s -X POST http://127.0.0.1:9901/reload\n\
             Ctrl-C stops it.\n"
        );
    })
}

async fn origin(name: &'static str, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::task::spawn_local(async move {
            let svc = hyper::service::service_fn(move |req| answer(name, req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn answer(name: &'static str, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/healthz" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))));
    }
    let h = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("").escape_debug().to_string();
    let body = format!(
        "{{\"origin\":\"{name}\",\"method\":\"{}\",\"path\":\"{}\",\"host\":\"{}\",\"x_forwarded_for\":\"{}\",\"x_forwarded_proto\":\"{}\",\"x_request_id\":\"{}\"}}\n",
        req.method(),
        req.uri().path_and_query().map_or("/", |p| p.as_str()).escape_debug(),
        h("host"),
        h("x-forwarded-for"),
        h("x-forwarded-proto"),
        h("x-request-id"),
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp.headers_mut().insert("x-origin", hyper::header::HeaderValue::from_static(name));
    Ok(resp)
}
