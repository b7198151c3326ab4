//! An HTTP/3 client on Cloudflare's quiche (BoringSSL): a QUIC stack independent of the quinn and
//! rustls that lbd itself uses, for tests (`get`) and for the load generator (`load`). quiche is
//! sans-IO; this drives it on a tokio UDP socket: flush every packet quiche wants to send, then
//! wait for a datagram or quiche's timer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

const MAX_DATAGRAM: usize = 1350;

/// A response as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// `:status`.
    pub status: u16,
    /// Other header fields, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// One QUIC + HTTP/3 connection.
pub struct Client {
    sock: UdpSocket,
    local: SocketAddr,
    conn: quiche::Connection,
    /// Set once the handshake is done.
    h3: Option<quiche::h3::Connection>,
    authority: String,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("local", &self.local).field("authority", &self.authority).finish()
    }
}

fn config() -> Result<quiche::Config, String> {
    let e = |e: quiche::Error| format!("quiche config: {e}");
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(e)?;
    // Benchmarks and tests use self-signed certificates.
    c.verify_peer(false);
    c.set_application_protos(quiche::h3::APPLICATION_PROTOCOL).map_err(e)?;
    c.set_max_idle_timeout(60_000);
    c.set_max_recv_udp_payload_size(MAX_DATAGRAM);
    c.set_max_send_udp_payload_size(MAX_DATAGRAM);
    c.set_initial_max_data(16 << 20);
    c.set_initial_max_stream_data_bidi_local(2 << 20);
    c.set_initial_max_stream_data_bidi_remote(2 << 20);
    c.set_initial_max_stream_data_uni(1 << 20);
    c.set_initial_max_streams_bidi(1000);
    c.set_initial_max_streams_uni(100);
    Ok(c)
}

fn qerr<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Client {
    /// Connects to `peer` with SNI and `:authority` `host` (a name, or `host:port`).
    pub async fn connect(peer: SocketAddr, host: &str) -> Result<Self, String> {
        let bind: SocketAddr =
            if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { "[::]:0".parse().map_err(|_| "addr")? };
        let sock = UdpSocket::bind(bind).await.map_err(|e| format!("bind: {e}"))?;
        let local = sock.local_addr().map_err(|e| e.to_string())?;
        let mut scid = [0u8; 16];
        scid[..8].copy_from_slice(&random_u64().to_le_bytes());
        scid[8..].copy_from_slice(&random_u64().to_le_bytes());
        let scid = quiche::ConnectionId::from_ref(&scid);
        let sni = host.split(':').next().unwrap_or(host);
        let conn = quiche::connect(Some(sni), &scid, local, peer, &mut config()?).map_err(qerr("connect"))?;
        let mut c = Self {
            sock,
            local,
            conn,
            h3: None,
            authority: host.to_string(),
            buf: vec![0; 65535],
            out: vec![0; MAX_DATAGRAM],
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.conn.is_established() {
            c.flush().await?;
            if c.conn.is_closed() || Instant::now() > deadline {
                return Err(format!("handshake with {peer} failed: {:?}", c.conn.peer_error()));
            }
            c.wait(Duration::from_secs(1)).await?;
        }
        let h3_config = quiche::h3::Config::new().map_err(qerr("h3"))?;
        c.h3 = Some(quiche::h3::Connection::with_transport(&mut c.conn, &h3_config).map_err(qerr("h3 setup"))?);
        Ok(c)
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn start(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<u64, quiche::h3::Error> {
        let mut headers = vec![
            quiche::h3::Header::new(b":method", method.as_bytes()),
            quiche::h3::Header::new(b":scheme", b"https"),
            quiche::h3::Header::new(b":authority", self.authority.as_bytes()),
            quiche::h3::Header::new(b":path", path.as_bytes()),
            quiche::h3::Header::new(b"user-agent", b"lb-bench-quiche"),
        ];
        let len = body.map(|b| b.len().to_string());
        if let Some(l) = &len {
            headers.push(quiche::h3::Header::new(b"content-length", l.as_bytes()));
        }
        let h3 = self.h3.as_mut().ok_or(quiche::h3::Error::InternalError)?;
        let id = h3.send_request(&mut self.conn, &headers, body.is_none())?;
        if let Some(b) = body {
            // Small bodies only (tests): one call.
            h3.send_body(&mut self.conn, id, b, true)?;
        }
        Ok(id)
    }

    /// Handles every HTTP/3 event quiche has; finished streams are returned.
    fn events(&mut self, open: &mut HashMap<u64, Response>) -> Result<Vec<(u64, Response)>, String> {
        let mut done = Vec::new();
        let Some(h3) = self.h3.as_mut() else { return Ok(done) };
        loop {
            match h3.poll(&mut self.conn) {
                Ok((id, quiche::h3::Event::Headers { list, .. })) => {
                    let r = open.entry(id).or_default();
                    for h in list {
                        use quiche::h3::NameValue;
                        let (n, v) = (String::from_utf8_lossy(h.name()), String::from_utf8_lossy(h.value()));
                        if n == ":status" {
                            r.status = v.parse().unwrap_or(0);
                        } else {
                            r.headers.push((n.into_owned(), v.into_owned()));
                        }
                    }
                }
                Ok((id, quiche::h3::Event::Data)) => {
                    while let Ok(n) = h3.recv_body(&mut self.conn, id, &mut self.buf) {
                        open.entry(id).or_default().body.extend_from_slice(&self.buf[..n]);
                    }
                }
                Ok((id, quiche::h3::Event::Finished)) => {
                    done.push((id, open.remove(&id).unwrap_or_default()));
                }
                Ok((id, quiche::h3::Event::Reset(code))) => {
                    open.remove(&id);
                    return Err(format!("stream {id} reset by the server ({code})"));
                }
                Ok((_, quiche::h3::Event::GoAway)) => return Err("GOAWAY".into()),
                Ok(_) => {}
                Err(quiche::h3::Error::Done) => return Ok(done),
                Err(e) => return Err(format!("h3: {e}")),
            }
        }
    }

    async fn step(&mut self) -> Result<(), String> {
        self.flush().await?;
        if self.conn.is_closed() {
            return Err(format!("connection closed: {:?}", self.conn.peer_error()));
        }
        self.wait(Duration::from_secs(1)).await
    }

    async fn flush(&mut self) -> Result<(), String> {
        loop {
            match self.conn.send(&mut self.out) {
                Ok((n, info)) => {
                    self.sock.send_to(&self.out[..n], info.to).await.map_err(|e| format!("send: {e}"))?;
                }
                Err(quiche::Error::Done) => return Ok(()),
                Err(e) => return Err(format!("quiche send: {e}")),
            }
        }
    }

    /// Waits for datagrams (taking every one already queued) or the connection's timer.
    async fn wait(&mut self, at_most: Duration) -> Result<(), String> {
        let timer = self.conn.timeout();
        let timeout = timer.unwrap_or(at_most).min(at_most);
        tokio::select! {
            r = self.sock.recv_from(&mut self.buf) => {
                let (n, from) = r.map_err(|e| format!("recv: {e}"))?;
                let _ = self.conn.recv(&mut self.buf[..n], quiche::RecvInfo { from, to: self.local });
                while let Ok((n, from)) = self.sock.try_recv_from(&mut self.buf) {
                    let _ = self.conn.recv(&mut self.buf[..n], quiche::RecvInfo { from, to: self.local });
                }
            }
            () = tokio::time::sleep(timeout) => {
                if timer.is_some_and(|t| t <= timeout) {
                    self.conn.on_timeout();
                }
            }
        }
        Ok(())
    }

    /// One request; waits for the whole response (10 s at most).
    pub async fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, String> {
        let id = self.start(method, path, body).map_err(|e| format!("send request: {e}"))?;
        let mut open = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (done_id, r) in self.events(&mut open)? {
                if done_id == id {
                    let _ = self.flush().await;
                    return Ok(r);
                }
            }
            if Instant::now() > deadline {
                return Err("response timed out".into());
            }
            self.step().await?;
        }
    }

    /// Closed-loop load: keeps `streams` GETs of `path` in flight while `next` hands out work
    /// (`Some(due)`; `due` set in open loop); `done(latency_µs, ok, body_bytes)` per response.
    pub async fn load(
        &mut self,
        path: &str,
        streams: usize,
        mut next: impl FnMut() -> Option<Option<Instant>>,
        mut done: impl FnMut(u64, bool, u64),
    ) -> Result<(), String> {
        let mut started: HashMap<u64, Instant> = HashMap::new();
        let mut open = HashMap::new();
        let mut exhausted = false;
        loop {
            while !exhausted && started.len() < streams {
                match next() {
                    Some(due) => {
                        if let Some(due) = due {
                            tokio::time::sleep_until(due.into()).await;
                        }
                        match self.start("GET", path, None) {
                            Ok(id) => {
                                started.insert(id, due.unwrap_or_else(Instant::now));
                            }
                            Err(quiche::h3::Error::StreamBlocked | quiche::h3::Error::TransportError(_)) => break,
                            Err(e) => return Err(format!("send request: {e}")),
                        }
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && started.is_empty() {
                let _ = self.conn.close(true, 0x100, b"done");
                let _ = self.flush().await;
                return Ok(());
            }
            for (id, r) in self.events(&mut open)? {
                if let Some(t) = started.remove(&id) {
                    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                    done(us, (200..300).contains(&r.status), r.body.len() as u64);
                }
            }
            self.step().await?;
        }
    }
}

/// Randomness for connection IDs (std's per-process random hash keys; not security relevant in
/// a test client).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// Fetches `path` from `peer` over HTTP/3 with quiche (a fresh connection).
pub async fn get(peer: SocketAddr, host: &str, path: &str) -> Result<Response, String> {
    let mut c = Client::connect(peer, host).await?;
    c.request("GET", path, None).await
}
