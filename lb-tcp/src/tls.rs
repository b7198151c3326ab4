//! Server-side TLS streams over rustls's unbuffered API.
//!
//! Written here rather than taken from tokio-rustls (which still serves upstream TLS) for memory
//! per connection and copies on the hot path. rustls's buffered `ServerConnection` keeps a
//! 4 KiB receive buffer for the whole life of the connection, even idle, and copies every
//! record's plaintext into a queue of its own (an allocation per record) before the reader
//! copies it out again. Here the stream owns the buffers:
//!
//! ```text
//! socket ──read──▶ incoming (TLS records) ──decrypt in place──▶ caller's buffer
//!                                                    └─ (what did not fit) ─▶ plain
//! caller ──encrypt──▶ outgoing (TLS records) ──write──▶ socket
//! ```
//!
//! and gives them back when empty, each time the connection waits on its peer and after each
//! complete flush: a waiting connection holds rustls's session state and nothing else. `incoming`
//! and `outgoing` go to the worker's spares (`spare`), which the next connection to read or
//! write takes from, so a busy connection does not allocate them anew at every wait.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use lb_tls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::UnbufferedServerConnection;
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

/// A read from the socket asks for at least this much room.
const READ_ROOM: usize = 8 * 1024;
/// The largest TLS record (TLS 1.2 with its expansion allowance, and the 5-byte header).
const MAX_RECORD: usize = 16 * 1024 + 2048 + 5;
/// Plaintext taken per `poll_write` (several records; bounds `outgoing`).
const MAX_WRITE: usize = 64 * 1024;

/// The worker's spare TLS record buffers (`crate::spare`): an idle TLS connection holds none.
/// Buffers hold only TLS records (ciphertext), never plaintext.
mod spare {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use crate::spare::{keep, take, Limits};

    /// At most 8 buffers of each kind per worker; larger ones (grown by a large record or write)
    /// are freed, not kept.
    const LIMITS: Limits = Limits { max_capacity: 32 * 1024, max_kept: 8 };

    thread_local! {
        static RECV: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
        static SEND: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty receive buffer, from the stack if it has one.
    pub(super) fn recv() -> BytesMut {
        take(&RECV)
    }

    /// An empty send buffer, from the stack if it has one.
    pub(super) fn send() -> Vec<u8> {
        take(&SEND)
    }

    pub(super) fn keep_recv(b: BytesMut) {
        keep(&RECV, b, LIMITS);
    }

    pub(super) fn keep_send(v: Vec<u8>) {
        keep(&SEND, v, LIMITS);
    }
}

/// A TLS server connection on a TCP stream.
pub struct TlsStream {
    io: TcpStream,
    conn: UnbufferedServerConnection,
    /// TLS bytes received and not yet processed.
    incoming: BytesMut,
    /// Plaintext decrypted and not yet read.
    plain: BytesMut,
    /// TLS bytes to send; `outgoing[sent..]` is still to go.
    outgoing: Vec<u8>,
    sent: usize,
    /// The peer closed (close_notify or TCP EOF).
    read_closed: bool,
    /// close_notify was queued.
    write_closed: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("io", &self.io).field("incoming", &self.incoming.len()).finish()
    }
}

/// What one pass over the received records found.
enum Step {
    /// Plaintext was delivered (into the caller's buffer or `plain`).
    Data,
    /// More bytes from the peer are needed.
    NeedRead,
    /// The handshake is done and nothing is pending: application data may be written.
    Writable,
    /// `n` bytes of the caller's plaintext were encrypted into `outgoing`.
    Wrote(usize),
    /// The peer sent close_notify (reported once).
    PeerClosed,
    /// Both sides sent close_notify.
    Closed,
}

/// Room for `extra` more bytes at the end of `outgoing` (a spare buffer if it has none);
/// returns where they start.
fn grow(outgoing: &mut Vec<u8>, extra: usize) -> usize {
    if outgoing.capacity() == 0 {
        *outgoing = spare::send();
    }
    let len = outgoing.len();
    outgoing.resize(len + extra, 0);
    len
}

fn tls_error(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// Runs the handshake on `io` with `config`. Boxed from the start: the stream is 1.2 KB, and
    /// the futures that await this one would otherwise hold it twice (as this future's state and
    /// as its result).
    pub async fn accept(io: TcpStream, config: Arc<ServerConfig>) -> io::Result<Box<Self>> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut s = Box::new(Self {
            io,
            conn,
            incoming: BytesMut::new(),
            plain: BytesMut::new(),
            outgoing: Vec::new(),
            sent: 0,
            read_closed: false,
            write_closed: false,
        });
        loop {
            let step = match s.step(None, None) {
                Ok(step) => step,
                Err(e) => {
                    s.send_alert();
                    return Err(e);
                }
            };
            match step {
                Step::Data | Step::Writable => break,
                Step::NeedRead => {
                    std::future::poll_fn(|cx| s.poll_send(cx)).await?;
                    if std::future::poll_fn(|cx| s.poll_receive(cx)).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed during the TLS handshake",
                        ));
                    }
                }
                Step::PeerClosed | Step::Closed | Step::Wrote(_) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
                }
            }
        }
        // The server's last flight and its session ticket.
        std::future::poll_fn(|cx| s.poll_send(cx)).await?;
        Ok(s)
    }

    /// The TCP stream.
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// The negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The client's certificate chain (mTLS).
    pub fn peer_certificates(&self) -> Option<&[tokio_rustls::rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Whether received plaintext (or records holding some) waits to be read.
    pub fn has_buffered_data(&self) -> bool {
        !self.plain.is_empty() || !self.incoming.is_empty()
    }

    /// Gives back the buffers that are empty (for a connection about to wait for its peer).
    pub fn release_buffers(&mut self) {
        self.release_tls_buffers();
        if self.plain.is_empty() {
            self.plain = BytesMut::new();
        }
    }

    /// Gives the empty TLS buffers to the worker's spares.
    fn release_tls_buffers(&mut self) {
        if self.incoming.is_empty() && self.incoming.capacity() != 0 {
            spare::keep_recv(std::mem::take(&mut self.incoming));
        }
        if self.sent == self.outgoing.len() && self.outgoing.capacity() != 0 {
            spare::keep_send(std::mem::take(&mut self.outgoing));
            self.sent = 0;
        }
    }

    /// One pass of rustls over `incoming`: encodes handshake and alert records into `outgoing`,
    /// delivers plaintext into `out` (the rest into `plain`), and encrypts `write` when the
    /// connection can take it.
    fn step(&mut self, mut out: Option<&mut ReadBuf<'_>>, write: Option<&[u8]>) -> io::Result<Step> {
        loop {
            let UnbufferedStatus { mut discard, state } = self.conn.process_tls_records(&mut self.incoming[..]);
            let step = match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        let mut payload = record.payload;
                        if let Some(out) = out.as_deref_mut() {
                            let n = payload.len().min(out.remaining());
                            out.put_slice(&payload[..n]);
                            payload = &payload[n..];
                        }
                        self.plain.extend_from_slice(payload);
                    }
                    // While writing, keep going until the connection is writable.
                    if write.is_some() {
                        None
                    } else {
                        Some(Step::Data)
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let len = grow(&mut self.outgoing, 512);
                    let n = match encode.encode(&mut self.outgoing[len..]) {
                        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                            self.outgoing.resize(len + required_size, 0);
                            encode.encode(&mut self.outgoing[len..])
                        }
                        other => other,
                    };
                    match n {
                        Ok(n) => self.outgoing.truncate(len + n),
                        Err(e) => {
                            self.outgoing.truncate(len);
                            return Err(tls_error(e));
                        }
                    }
                    None
                }
                // Sent by `poll_send`, which every path runs before waiting on the peer.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Step::NeedRead),
                ConnectionState::WriteTraffic(mut traffic) => match write {
                    Some(data) if !data.is_empty() => {
                        let data = &data[..data.len().min(MAX_WRITE)];
                        // Room for the records' headers, tags and padding (22 bytes in TLS 1.3).
                        let len = grow(&mut self.outgoing, data.len() + 64 * (1 + data.len() / 16384));
                        let n = match traffic.encrypt(data, &mut self.outgoing[len..]) {
                            Ok(n) => n,
                            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                                self.outgoing.resize(len + required_size, 0);
                                traffic.encrypt(data, &mut self.outgoing[len..]).map_err(tls_error)?
                            }
                            Err(e) => {
                                self.outgoing.truncate(len);
                                return Err(tls_error(e));
                            }
                        };
                        self.outgoing.truncate(len + n);
                        Some(Step::Wrote(data.len()))
                    }
                    Some(_) if self.write_closed => Some(Step::Writable),
                    Some(_) => {
                        // An empty write is the request to close (see `poll_shutdown`).
                        let len = grow(&mut self.outgoing, 64);
                        let n = traffic.queue_close_notify(&mut self.outgoing[len..]).map_err(tls_error)?;
                        self.outgoing.truncate(len + n);
                        self.write_closed = true;
                        Some(Step::Writable)
                    }
                    None if self.conn.is_handshaking() => Some(Step::NeedRead),
                    None => Some(Step::Writable),
                },
                ConnectionState::PeerClosed => Some(Step::PeerClosed),
                ConnectionState::Closed => Some(Step::Closed),
                ConnectionState::ReadEarlyData(_) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected TLS early data"));
                }
                _ => return Err(io::Error::other("unknown TLS connection state")),
            };
            self.incoming.advance(discard);
            if let Some(step) = step {
                return Ok(step);
            }
        }
    }

    /// After a handshake error: sends the alert rustls queued for the peer, if the socket
    /// takes it at once.
    fn send_alert(&mut self) {
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
            let Ok(ConnectionState::EncodeTlsData(mut encode)) = state else { break };
            let len = grow(&mut self.outgoing, 64);
            match encode.encode(&mut self.outgoing[len..]) {
                Ok(n) => self.outgoing.truncate(len + n),
                Err(_) => {
                    self.outgoing.truncate(len);
                    break;
                }
            }
        }
        if self.sent < self.outgoing.len() {
            let _ = self.io.try_write(&self.outgoing[self.sent..]);
        }
    }

    /// Writes `outgoing` to the socket until it is empty.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads more TLS bytes into `incoming`; `Ok(0)` at EOF.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= MAX_RECORD {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "TLS record too large")));
        }
        if self.incoming.capacity() == 0 {
            self.incoming = spare::recv();
        }
        self.incoming.reserve(READ_ROOM);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.incoming)
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        spare::keep_recv(std::mem::take(&mut self.incoming));
        spare::keep_send(std::mem::take(&mut self.outgoing));
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(buf.remaining());
                buf.put_slice(&this.plain[..n]);
                this.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            match this.step(Some(buf), None)? {
                Step::Data if buf.filled().len() > before || !this.plain.is_empty() => {
                    if this.plain.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Step::Data | Step::Wrote(_) => {}
                Step::PeerClosed | Step::Closed => this.read_closed = true,
                Step::NeedRead | Step::Writable => {
                    // Handshake answers, tickets and key updates go out before we wait.
                    ready!(this.poll_send(cx))?;
                    match this.poll_receive(cx) {
                        Poll::Ready(Ok(0)) => this.read_closed = true,
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            // Waiting on the peer: an idle connection keeps no TLS buffer.
                            // `plain` is used only when a record overflows the reader's buffer;
                            // it is freed when it grew past the usual size.
                            this.release_tls_buffers();
                            if this.plain.is_empty() && this.plain.capacity() > READ_ROOM {
                                this.plain = BytesMut::new();
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Bytes from an earlier write go first; a slow peer stops us here.
        ready!(this.poll_send(cx))?;
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            match this.step(None, Some(data))? {
                Step::Wrote(n) => {
                    // Sent now if the socket takes it, else by the next write or flush.
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                // The peer is done sending; we may still answer.
                Step::PeerClosed => this.read_closed = true,
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Step::Data | Step::Writable | Step::NeedRead => {
                    return Poll::Ready(Err(io::Error::other("TLS connection cannot take application data")));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        // All sent. The caller may go on to wait for its peer without reading again (HTTP/2
        // reads first, then flushes), so the emptied buffer goes back to the spares here.
        if this.outgoing.capacity() != 0 {
            spare::keep_send(std::mem::take(&mut this.outgoing));
            this.sent = 0;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            // Queues close_notify; a peer that already closed makes this a plain TCP close.
            match this.step(None, Some(&[])) {
                Ok(_) => this.write_closed = true,
                Err(e) => tracing::debug!(error = %e, "no close_notify sent"),
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types};

    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let der = cert.cert.der().clone();
        let key = pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn block_on(test: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(test);
    }

    /// A listener on a free port: its first connection goes through [`TlsStream::accept`], and
    /// the outcome to `then`, in a task of its own.
    async fn serve_one<T, F>(
        cfg: Arc<ServerConfig>,
        then: impl FnOnce(io::Result<Box<TlsStream>>) -> F + Send + 'static,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<T>)
    where
        F: std::future::Future<Output = T> + Send,
        T: Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            then(TlsStream::accept(tcp, cfg).await).await
        });
        (addr, task)
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// A rustls client (the buffered API, through tokio-rustls) against [`TlsStream`]: 1 MiB
    /// each way, read through a small buffer and written in pieces larger than one `poll_write`
    /// takes, then close_notify both ways; an idle stream gives its buffers back.
    #[test]
    fn streams_both_ways_and_idles_without_buffers() {
        block_on(async {
            let (server_cfg, client_cfg) = configs();
            let up = pattern(1 << 20, 0);
            let down = pattern(1 << 20, 0x5a);
            let (up2, down2) = (up.clone(), down.clone());
            let (go, wait) = tokio::sync::oneshot::channel();
            let (addr, server) = serve_one(server_cfg, |accepted| async move {
                let mut tls = accepted.expect("handshake");
                // The client sends nothing until told: nothing is buffered, and nothing is kept.
                assert!(!tls.has_buffered_data());
                tls.release_buffers();
                assert_eq!((tls.incoming.capacity(), tls.plain.capacity(), tls.outgoing.capacity()), (0, 0, 0));
                go.send(()).expect("signal");
                let mut got = Vec::new();
                let mut buf = [0u8; 1000];
                loop {
                    let n = tls.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got == up2, "upload corrupted ({} bytes)", got.len());
                for chunk in down2.chunks(70_000) {
                    tls.write_all(chunk).await.expect("write");
                }
                tls.shutdown().await.expect("shutdown");
            })
            .await;
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = pki_types::ServerName::try_from("localhost").expect("name");
            let mut client = tokio_rustls::TlsConnector::from(client_cfg).connect(name, tcp).await.expect("client");
            wait.await.expect("server ready");
            client.write_all(&up).await.expect("upload");
            client.shutdown().await.expect("close_notify");
            let mut got = Vec::new();
            // A clean close_notify from the server: no "unexpected EOF" error here.
            client.read_to_end(&mut got).await.expect("download");
            assert!(got == down, "download corrupted ({} bytes)", got.len());
            server.await.expect("server task");
        });
    }

    /// TLS records that arrive in pieces, with pauses between: the stream waits on its peer
    /// holding part of a record (the buffers go to the spares only when empty) and loses none.
    #[test]
    fn records_arriving_in_pieces_over_pauses_are_kept_whole() {
        block_on(async {
            let (server_cfg, client_cfg) = configs();
            let (addr, server) = serve_one(server_cfg, |accepted| async move {
                let mut tls = accepted.expect("handshake");
                let mut got = vec![0u8; 5000];
                tls.read_exact(&mut got).await.expect("read");
                got
            })
            .await;
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let name = pki_types::ServerName::try_from("localhost").expect("name");
            let mut client = tokio_rustls::TlsConnector::from(client_cfg).connect(name, tcp).await.expect("client");
            let msg = pattern(5000, 7);
            let (tcp, conn) = client.get_mut();
            std::io::Write::write_all(&mut conn.writer(), &msg).expect("plaintext");
            let mut wire = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut wire).expect("records");
            }
            for piece in wire.chunks(700) {
                tcp.write_all(piece).await.expect("send");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let got = server.await.expect("server task");
            assert!(got == msg, "payload corrupted");
        });
    }

    /// A client that is not speaking TLS is refused with an error, not a hang.
    #[test]
    fn garbage_instead_of_a_client_hello_fails_the_handshake() {
        block_on(async {
            let (server_cfg, _) = configs();
            let (addr, server) = serve_one(server_cfg, |accepted| async move { accepted.map(|_| ()) }).await;
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), server).await.expect("no hang");
            assert!(r.expect("task").is_err());
        });
    }
}
