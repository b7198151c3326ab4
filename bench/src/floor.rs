//! `lb-bench floor`: the least a keep-alive reverse proxy on tokio can cost per request. A yardstick for the CPU-per-request scenarios, not a balancer: it shows how much of
//! a balancer's cost is the kernel's (loopback TCP, which every proxy pays) and how much is
//! left for user space to win.
//!
//! What it does, per request: read the request head into a reused buffer and parse it with
//! httparse; write the request line and headers to a pooled backend connection, dropping
//! `Connection` and adding the forwarding headers lbd adds by default (`X-Forwarded-For`,
//! `-Proto`, `-Host`, and `X-Request-Id` unless the client sent one: the request the origin sees
//! is lbd's and, as bench/lib.sh configures them, the peers'); copy a `Content-Length` body; parse the response
//! head the same way and copy the response through. No routing, no header maps, no metrics, no
//! timeouts, no retries. The same shape as lbd's workers: one current-thread runtime per
//! thread, each with its own `SO_REUSEPORT` listener and its own backend pool.
//!
//! What it refuses, with a status and a close: heads over 64 KiB (431, or 502 from the
//! backend), malformed heads (400, 502), chunked request bodies (501) and responses that are
//! neither `Content-Length` framed nor bodiless (502).
//!
//! With a certificate (`--tls CERT KEY`) it serves TLS (rustls with ring): HTTP/2 when the
//! client's ALPN offers h2 (the `h2` crate directly, without hyper), each stream's request sent
//! over a pooled HTTP/1.1 backend connection as above, and HTTP/1.1 as above otherwise: the
//! least the TLS scenarios cost with the crates lbd is built on. HTTP/2 request bodies are not
//! forwarded (501): the scenario has none.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Headers per head.
const MAX_HEADERS: usize = 64;
/// Idle backend connections kept per thread: as many as the HTTP/2 scenario has requests in
/// flight (16 x 32), so that none is closed and opened again.
const POOL: usize = 1024;

type Pool = Rc<RefCell<Vec<Backend>>>;

/// A backend connection and what has been read from it but not yet used.
struct Backend {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A pooled backend connection, or a new one.
async fn take(pool: &Pool, backend: SocketAddr) -> io::Result<Backend> {
    let pooled = pool.borrow_mut().pop();
    if let Some(b) = pooled {
        return Ok(b);
    }
    let stream = TcpStream::connect(backend).await?;
    stream.set_nodelay(true)?;
    Ok(Backend { stream, buf: Vec::with_capacity(4096) })
}

/// Keeps a backend connection whose response is done for the next request, unless the backend
/// said it closes, sent more than its response, or the pool is full.
fn give_back(pool: &Pool, be: Backend, closes: bool) {
    if !closes && be.buf.is_empty() && pool.borrow().len() < POOL {
        pool.borrow_mut().push(be);
    }
}

/// Serves until the process is stopped: `threads` threads, each accepting on its own
/// `SO_REUSEPORT` socket bound to `listen`, forwarding to `backend`; with `tls` (certificate
/// chain and key, PEM) over TLS, HTTP/2 or HTTP/1.1 as ALPN says, else HTTP/1.1.
pub(crate) fn run(
    listen: SocketAddr,
    backend: SocketAddr,
    threads: usize,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<(), String> {
    let acceptor = tls.map(|(cert, key)| tls_acceptor(&cert, &key)).transpose()?;
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let listener = bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
        let acceptor = acceptor.clone();
        handles.push(std::thread::spawn(move || serve(listener, backend, acceptor)));
    }
    eprintln!("lb-bench floor listening on {listen}, forwarding to {backend}");
    for h in handles {
        h.join().map_err(|_| "a floor thread panicked".to_string())??;
    }
    Ok(())
}

fn bind(listen: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(listen), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn serve(
    listener: std::net::TcpListener,
    backend: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let pool: Pool = Rc::new(RefCell::new(Vec::new()));
        loop {
            let Ok((client, peer)) = listener.accept().await else { continue };
            let _ = client.set_nodelay(true);
            let pool = pool.clone();
            let tls = tls.clone();
            tokio::task::spawn_local(async move {
                let _ = match tls {
                    Some(tls) => tls_connection(tls, client, peer, backend, pool).await,
                    None => connection(client, b"http", peer, backend, pool).await,
                };
            });
        }
    })
}

/// What a parsed head says about the message after it.
struct Head {
    len: usize,
    body: usize,
    close: bool,
}

/// Reads into `buf` until it holds a whole head, and returns the head parsed by `parse`; `None`
/// when the peer closed cleanly before a head began.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut Vec<u8>,
    mut parse: impl FnMut(&[u8]) -> Result<Option<Head>, u16>,
) -> io::Result<Option<Result<Head, u16>>> {
    loop {
        match parse(buf) {
            Ok(Some(h)) => return Ok(Some(Ok(h))),
            Ok(None) if buf.len() >= MAX_HEAD => return Ok(Some(Err(431))),
            Ok(None) => {}
            Err(code) => return Ok(Some(Err(code))),
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        if io.read_buf(buf).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
    }
}

/// The `Content-Length` of a head without one is 0. Errors: 400 for a bad or conflicting
/// length, 501 for a transfer coding (not forwarded here).
fn content_length(headers: &[httparse::Header<'_>]) -> Result<usize, u16> {
    let mut len = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v: usize = std::str::from_utf8(h.value).map_err(|_| 400u16)?.trim().parse().map_err(|_| 400u16)?;
            if len.is_some_and(|l| l != v) {
                return Err(400);
            }
            len = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(501);
        }
    }
    Ok(len.unwrap_or(0))
}

fn says_close(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close"))
}

/// Whether a client's header is one [`forwarding`] writes in its place.
fn replaced(name: &str) -> bool {
    name.eq_ignore_ascii_case("x-forwarded-proto") || name.eq_ignore_ascii_case("x-forwarded-host")
}

/// Writes, after the request's own headers, those lbd adds: `X-Forwarded-For` (a line of its
/// own after any of the client's, which means the same list), `X-Forwarded-Proto`,
/// `X-Forwarded-Host` (the `Host`, when there is one) and, unless the client sent one, a fresh
/// `X-Request-Id` (32 hex digits: a per-thread sequence and an xorshift draw, as cheap as lbd's).
/// Then the blank line.
fn forwarding(out: &mut Vec<u8>, peer: &[u8], proto: &[u8], host: Option<&[u8]>, has_id: bool) {
    out.extend_from_slice(b"x-forwarded-for: ");
    out.extend_from_slice(peer);
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(proto);
    if let Some(host) = host {
        out.extend_from_slice(b"\r\nx-forwarded-host: ");
        out.extend_from_slice(host);
    }
    if !has_id {
        out.extend_from_slice(b"\r\nx-request-id: ");
        let (seq, draw) = next_id();
        for word in [seq, draw] {
            for i in (0..16).rev() {
                out.push(b"0123456789abcdef"[((word >> (4 * i)) & 0xf) as usize]);
            }
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Threads that have made a request id: each one's number goes into its ids, as lbd's worker's.
static ID_THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// This thread's number and request sequence, and its xorshift state (seeded from the clock).
    static IDS: std::cell::Cell<(u64, u64)> = std::cell::Cell::new({
        let thread = ID_THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        // Truncated: only a seed.
        (thread << 48, (nanos as u64 ^ thread.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    });
}

fn next_id() -> (u64, u64) {
    IDS.with(|ids| {
        let (seq, mut x) = ids.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.set((seq + 1, x));
        (seq + 1, x)
    })
}

/// Parses a request head in `buf`, writing what goes to the backend into `out` (`proto` is
/// `http` or `https`, for `X-Forwarded-Proto`).
fn parse_request(buf: &[u8], out: &mut Vec<u8>, peer: &[u8], proto: &[u8]) -> Result<Option<Head>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(buf).map_err(|_| 400u16)? else { return Ok(None) };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else { return Err(400) };
    let body = content_length(req.headers)?;
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut host, mut has_id) = (None, false);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            host = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("x-request-id") {
            has_id = true;
        } else if h.name.eq_ignore_ascii_case("connection") || replaced(h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    forwarding(out, peer, proto, host, has_id);
    Ok(Some(Head { len, body, close: version == 0 || says_close(req.headers) }))
}

/// Parses a response head in `buf`; `head_request` says the response has no body. A complete
/// head's status and headers are shown to `seen` too. Every error is a 502 to the client.
fn parse_response(
    buf: &[u8],
    head_request: bool,
    seen: impl FnOnce(u16, &[httparse::Header<'_>]),
) -> Result<Option<Head>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(buf).map_err(|_| 502u16)? else { return Ok(None) };
    let code = resp.code.ok_or(502u16)?;
    let bodiless = head_request || code == 204 || code == 304 || (100..200).contains(&code);
    let has_length = resp.headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-length"));
    if !bodiless && !has_length {
        return Err(502);
    }
    let body = if bodiless { 0 } else { content_length(resp.headers).map_err(|_| 502u16)? };
    seen(code, resp.headers);
    Ok(Some(Head { len, body, close: resp.version == Some(0) || says_close(resp.headers) }))
}

/// Writes the first `n` bytes of what `from` sends, starting with those already in `buf` (which
/// are removed from it), to `to`.
async fn copy_body<R, W>(from: &mut R, buf: &mut Vec<u8>, to: &mut W, mut n: usize) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let have = n.min(buf.len());
    to.write_all(&buf[..have]).await?;
    buf.drain(..have);
    n -= have;
    if n == 0 {
        return Ok(());
    }
    // Only for a body longer than what came with its head (not the scenario's 6 bytes).
    let mut chunk = vec![0u8; 16 * 1024];
    while n > 0 {
        let want = n.min(chunk.len());
        let got = from.read(&mut chunk[..want]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&chunk[..got]).await?;
        n -= got;
    }
    Ok(())
}

async fn reject<C: AsyncWrite + Unpin>(client: &mut C, code: u16) -> io::Result<()> {
    let reason = match code {
        400 => "Bad Request",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Bad Gateway",
    };
    let msg = format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    client.write_all(msg.as_bytes()).await?;
    client.shutdown().await
}

async fn connection<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    proto: &[u8],
    peer: SocketAddr,
    backend: SocketAddr,
    pool: Pool,
) -> io::Result<()> {
    let peer = peer.ip().to_string().into_bytes();
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
    loop {
        let Some(head) = read_head(&mut client, &mut buf, |b| parse_request(b, &mut out, &peer, proto)).await? else {
            return Ok(());
        };
        let req = match head {
            Ok(h) => h,
            Err(code) => return reject(&mut client, code).await,
        };
        let head_request = buf.starts_with(b"HEAD ");
        buf.drain(..req.len);
        let mut be = take(&pool, backend).await?;
        be.stream.write_all(&out).await?;
        if req.body > 0 {
            copy_body(&mut client, &mut buf, &mut be.stream, req.body).await?;
        }
        let resp = match read_head(&mut be.stream, &mut be.buf, |b| parse_response(b, head_request, |_, _| ())).await {
            Ok(Some(Ok(h))) => h,
            _ => return reject(&mut client, 502).await,
        };
        let have = (resp.len + resp.body).min(be.buf.len());
        client.write_all(&be.buf[..have]).await?;
        be.buf.drain(..have);
        copy_body(&mut be.stream, &mut be.buf, &mut client, resp.len + resp.body - have).await?;
        give_back(&pool, be, resp.close);
        if req.close {
            return client.shutdown().await;
        }
    }
}

/// HTTP/2 over TLS, every stream a task of its own forwarded over HTTP/1.1; or, when the
/// client offers only `http/1.1`, HTTP/1.1 over TLS as [`connection`].
async fn tls_connection(
    tls: tokio_rustls::TlsAcceptor,
    client: TcpStream,
    peer: SocketAddr,
    backend: SocketAddr,
    pool: Pool,
) -> io::Result<()> {
    let stream = tls.accept(client).await?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return connection(stream, b"https", peer, backend, pool).await;
    }
    let mut conn = h2::server::Builder::new()
        .max_concurrent_streams(256)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(io::Error::other)?;
    let peer: Rc<[u8]> = peer.ip().to_string().into_bytes().into();
    while let Some(next) = conn.accept().await {
        let Ok((req, respond)) = next else { break };
        let (pool, peer) = (pool.clone(), peer.clone());
        tokio::task::spawn_local(async move {
            let _ = h2_stream(req, respond, &peer, backend, pool).await;
        });
    }
    Ok(())
}

async fn h2_stream(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    peer: &[u8],
    backend: SocketAddr,
    pool: Pool,
) -> io::Result<()> {
    let status = |code: u16| http::Response::builder().status(code).body(()).map_err(io::Error::other);
    if !req.body().is_end_stream() {
        // Read to its end first (up to 1 MiB): a stream answered while its request is still
        // coming is reset when the request is dropped, and the client may see only the reset.
        let mut body = req.into_body();
        let mut read = 0;
        while let Some(Ok(data)) = body.data().await {
            read += data.len();
            let _ = body.flow_control().release_capacity(data.len());
            if read > 1 << 20 {
                break;
            }
        }
        let _ = respond.send_response(status(501)?, true);
        return Ok(());
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.uri().path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    let host = req.uri().authority().map_or("", |a| a.as_str()).as_bytes();
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    let mut has_id = false;
    for (name, value) in req.headers() {
        has_id |= name.as_str() == "x-request-id";
        if name != http::header::HOST && !replaced(name.as_str()) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    forwarding(&mut out, peer, b"https", Some(host), has_id);
    let head_request = req.method() == http::Method::HEAD;
    let mut be = take(&pool, backend).await?;
    be.stream.write_all(&out).await?;
    // What h2 sends is built while the head is parsed: a header map is what its API takes.
    let mut response = None;
    let parse = |b: &[u8]| {
        parse_response(b, head_request, |code, headers| {
            let mut builder = http::Response::builder().status(code);
            for h in headers {
                let hop =
                    ["connection", "keep-alive", "transfer-encoding"].iter().any(|n| h.name.eq_ignore_ascii_case(n));
                if !hop {
                    builder = builder.header(h.name, h.value);
                }
            }
            response = Some(builder.body(()));
        })
    };
    let head = read_head(&mut be.stream, &mut be.buf, parse).await;
    let (Ok(Some(Ok(head))), Some(Ok(response))) = (head, response) else {
        let _ = respond.send_response(status(502)?, true);
        return Ok(());
    };
    be.buf.drain(..head.len);
    // Collected in memory: tokio's `Vec<u8>` is an `AsyncWrite`.
    let mut body = Vec::with_capacity(head.body);
    copy_body(&mut be.stream, &mut be.buf, &mut body, head.body).await?;
    give_back(&pool, be, head.close);
    let mut send = respond.send_response(response, body.is_empty()).map_err(io::Error::other)?;
    if !body.is_empty() {
        send.send_data(Bytes::from(body), true).map_err(io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_goes_out_without_connection_and_with_the_forwarding_headers() {
        let mut out = Vec::new();
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nrest";
        let head = parse_request(input, &mut out, b"127.0.0.9", b"http").expect("parses").expect("complete");
        assert_eq!(head.len, input.len() - 4);
        assert_eq!((head.body, head.close), (0, false));
        let text = String::from_utf8(out.clone()).expect("ascii");
        let want = "GET /a HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: x\r\nx-request-id: ";
        let id = text.strip_prefix(want).and_then(|t| t.strip_suffix("\r\n\r\n")).unwrap_or_else(|| panic!("{text:?}"));
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        // The next request gets another id.
        parse_request(input, &mut out, b"127.0.0.9", b"http").expect("parses").expect("complete");
        assert!(!String::from_utf8(out).expect("ascii").contains(id));
    }

    #[test]
    fn a_client_keeps_its_request_id_and_loses_its_own_proto_and_host_claims() {
        let mut out = Vec::new();
        let input = b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
        parse_request(input, &mut out, b"127.0.0.9", b"http").expect("parses").expect("complete");
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: x\r\n\r\n"
        );
    }

    #[test]
    fn framing_it_cannot_forward_is_refused() {
        let mut out = Vec::new();
        let chunked = parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &mut out, b"x", b"http");
        assert_eq!(chunked.err(), Some(501));
        let two = parse_request(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &mut out,
            b"x",
            b"http",
        );
        assert_eq!(two.err(), Some(400));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false, |_, _| ()).err(), Some(502));
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost", &mut out, b"x", b"http").expect("parses").is_none());
    }

    #[test]
    fn response_bodies_follow_their_framing() {
        let h = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n", false, |_, _| ())
            .expect("ok")
            .expect("complete");
        assert_eq!((h.len, h.body, h.close), (38, 6, false));
        let h = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", true, |_, _| ())
            .expect("ok")
            .expect("complete");
        assert_eq!(h.body, 0);
        let h = parse_response(b"HTTP/1.0 304 Not Modified\r\n\r\n", false, |_, _| ()).expect("ok").expect("complete");
        assert_eq!((h.body, h.close), (0, true));
    }
}
