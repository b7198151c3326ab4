//! The validated configuration model. Every field's default is documented here and in
//! `conf/REFERENCE.md`; [`super::parse`] is the only way to build one from text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Worker threads, one per core. Default: the number of cores available.
    pub workers: usize,
    /// Which IO backend the workers run. Default: `auto`.
    pub io_backend: IoBackendChoice,
    /// Whether each worker is pinned to a core of its own (`pin_workers`). Default: true.
    pub pin_workers: bool,
    /// How long SIGTERM waits for in-flight requests and connections. Default: 30s.
    pub drain_timeout: Duration,
    /// The admin listener. Default: `127.0.0.1:9901`.
    pub admin: AdminConfig,
    /// The access log. Default: JSON lines to stdout.
    pub access_log: AccessLogConfig,
    /// Session-ticket keys shared by several nodes (`tls_ticket_key_file`); `None`: random keys
    /// rotating every 6 hours, shared by this process's workers only.
    pub tls_ticket_key_file: Option<PathBuf>,
    /// QUIC endpoints (`[quic]`), shared by every listener that serves HTTP/3.
    pub quic: QuicConfig,
    /// Listeners, in file order.
    pub listeners: Vec<ListenerConfig>,
    /// Clusters, in file order.
    pub clusters: Vec<ClusterConfig>,
}

/// `[quic]`: how the workers' QUIC endpoints share and steer connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicConfig {
    /// This node's server id in every connection ID (QUIC-LB plaintext layout), so a QUIC-aware
    /// L4 balancer can route a connection back to this node. Default: none (empty).
    pub server_id: Vec<u8>,
    /// A file of at least 32 bytes from which the stateless-reset and address-validation token
    /// keys are derived, shared by several nodes. `None`: random keys shared by this process's
    /// workers.
    pub key_file: Option<PathBuf>,
    /// How datagrams reach the worker that owns their connection. Default `cbpf`.
    pub steering: QuicSteering,
    /// Pending handshakes per worker past which new clients must prove their address with a
    /// Retry first. Default 64; 0: always.
    pub retry_threshold: usize,
    /// Concurrent request streams per connection. Default 100.
    pub max_streams: u32,
    /// Datagrams queued for another worker before more are dropped. Default 4096.
    pub forward_queue: usize,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            server_id: Vec::new(),
            key_file: None,
            steering: QuicSteering::Cbpf,
            retry_threshold: 64,
            max_streams: 100,
            forward_queue: 4096,
        }
    }
}

/// `[quic] steering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicSteering {
    /// A classic BPF program on the socket group picks the worker by connection ID; the few
    /// datagrams it cannot place are forwarded between workers.
    Cbpf,
    /// The kernel hashes addresses; workers forward every datagram of another worker's
    /// connection to it (the fallback path alone; for tests and kernels without CBPF).
    Forward,
}

/// `io_backend`: which runtime a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackendChoice {
    /// io_uring when it can be set up, epoll otherwise (logged).
    Auto,
    /// io_uring or fail at start.
    Uring,
    /// Plain tokio (epoll) always.
    Epoll,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where the admin HTTP interface listens. Default `127.0.0.1:9901`.
    pub bind: SocketAddr,
}

/// `[access_log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Where lines go.
    pub target: AccessLogTarget,
    /// `json` (default) or `text`.
    pub format: AccessLogFormat,
    /// Lines queued for the writer before new lines are dropped (and counted). Default 65536.
    pub buffer_lines: usize,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log (`path = "off"`).
    Off,
    /// Standard output (`path = "-"`, the default).
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// Space-separated fields, like a combined log.
    Text,
}

/// `[[listeners]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Unique name; used in metrics and logs.
    pub name: String,
    /// One or more bind addresses (IPv4 and IPv6).
    pub bind: Vec<SocketAddr>,
    /// What the listener speaks.
    pub kind: ListenerKind,
    /// Connections held at once per worker before new ones are refused. Default 100000.
    pub max_connections: usize,
    /// Time allowed for a client to send a full request head, from its first byte (a keep-alive
    /// connection waits for that byte under `idle_timeout`). Default 10s.
    pub header_read_timeout: Duration,
    /// A connection with no traffic and no request in flight is closed after this. Default 60s.
    pub idle_timeout: Duration,
    /// Largest request head accepted (HTTP); larger gets 431. Default 65536, minimum 8192.
    pub max_request_header_bytes: usize,
    /// TLS termination (`kind = "https"`).
    pub tls: Option<TlsListenerConfig>,
    /// PROXY protocol (v1 or v2) required from these source networks; `None`: not accepted.
    pub proxy_protocol: Option<Vec<Cidr>>,
}

/// An IP network, `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address.
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: std::net::IpAddr = ip.parse().map_err(|_| format!("`{s}` is not a network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            if prefix.is_empty() { max } else { prefix.parse().map_err(|_| format!("`{s}`: bad prefix length"))? };
        if prefix > max {
            return Err(format!("`{s}`: prefix longer than {max}"));
        }
        Ok(Self { addr, prefix })
    }
}

/// PROXY protocol version lbd sends to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// `[listeners.tls]` of an `https` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenerConfig {
    /// Certificates; the first is served to clients whose SNI matches none (or who send none).
    pub certificates: Vec<CertificateConfig>,
    /// Lowest TLS version accepted. Default 1.2.
    pub min_version: TlsVersion,
    /// Highest TLS version accepted. Default 1.3.
    pub max_version: TlsVersion,
    /// Offer HTTP/2 by ALPN. Default true.
    pub http2: bool,
    /// Also serve HTTP/3 over QUIC on the same addresses (UDP). Default true.
    pub http3: bool,
    /// Advertise HTTP/3 in `Alt-Svc` on TCP responses (when `http3`). Default true.
    pub alt_svc: bool,
    /// `ma` of the `Alt-Svc` header. Default 24h.
    pub alt_svc_max_age: Duration,
    /// Accept 0-RTT early data on HTTP/3 (safe methods only; they reach the backend with
    /// `Early-Data: 1`). Default false.
    pub zero_rtt: bool,
    /// Cipher suites allowed (rustls names); `None`: all the provider offers.
    pub cipher_suites: Option<Vec<String>>,
    /// Client certificates: off (default), optional or required.
    pub client_auth: ClientAuth,
    /// CA bundle that client certificates must chain to (required unless `client_auth` is off).
    pub client_ca: Option<PathBuf>,
}

/// Whether an https listener asks for client certificates (mTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate requested.
    Off,
    /// Requested; a client without one is served, one with a bad one is refused.
    Optional,
    /// A valid client certificate is required.
    Required,
}

/// A certificate chain and its key, PEM files (relative paths are relative to the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// Chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Cipher suite names lbd accepts in `cipher_suites` (those rustls' ring provider offers).
pub const CIPHER_SUITES: [&str; 9] = [
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// TLS protocol versions lbd speaks (rustls has no TLS 1.0 or 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// A listener's protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// HTTP/1.1 with ordered routes.
    Http {
        /// Routes, first match wins.
        routes: Vec<RouteConfig>,
    },
    /// L4 TCP forwarding to one cluster, or TLS passthrough routed by SNI.
    Tcp {
        /// The cluster's name (the default when `sni_routes` match nothing or there is no SNI).
        cluster: String,
        /// TLS passthrough: routes by the ClientHello's server name (`host` holds the name
        /// match; `path` is unused). Empty: plain L4 forwarding.
        sni_routes: Vec<RouteConfig>,
    },
}

/// `[[listeners.routes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name used in metrics. Default `<listener>/<index>`.
    pub name: String,
    /// Host match; `None` matches every host.
    pub host: Option<HostMatch>,
    /// Path match. Default: every path.
    pub path: PathMatch,
    /// Cluster name.
    pub cluster: String,
}

/// How a route matches the request host (port ignored, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com`.
    Exact(String),
    /// `*.example.com`: stored as `.example.com`; matches one or more labels before it.
    Suffix(String),
}

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// `path = "/exact"`.
    Exact(String),
    /// `path_prefix = "/api/"`.
    Prefix(String),
}

/// `[[clusters]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Unique name.
    pub name: String,
    /// Endpoints with weights.
    pub endpoints: Vec<EndpointConfig>,
    /// Balancing policy. Default `round_robin`.
    pub policy: Policy,
    /// Key for `ring_hash` and `maglev`. Default `source_ip`.
    pub hash_on: HashOn,
    /// Upstream TCP connect timeout. Default 2s.
    pub connect_timeout: Duration,
    /// Time from request sent to response head received; past it the client gets 504. Default 30s.
    pub request_timeout: Duration,
    /// Extra attempts on other endpoints when a connection could not be made. Default 2.
    pub retries: u32,
    /// Idle keep-alive connections kept per endpoint per worker for `pool_idle_timeout`; more
    /// stay while the load reuses them (`crate::pool`); 0 turns pooling off. Default 64.
    pub pool_size: usize,
    /// Idle upstream connections are closed after this. Default 60s.
    pub pool_idle_timeout: Duration,
    /// Active health check; `None` when the table is absent.
    pub health_check: Option<HealthCheckConfig>,
    /// Passive ejection.
    pub outlier: OutlierConfig,
    /// Send a PROXY protocol header with the client's address on every new upstream connection.
    pub send_proxy_protocol: Option<ProxyProtocolVersion>,
    /// TLS to the endpoints (`tls = { ca = "…", server_name = "…" }`).
    pub tls: Option<UpstreamTls>,
    /// HTTP version spoken to the endpoints. Default HTTP/1.1.
    pub protocol: UpstreamProtocol,
}

/// HTTP version to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, a pool of keep-alive connections.
    Http1,
    /// HTTP/2 (h2c, or ALPN h2 with `tls`): one multiplexed connection per endpoint per worker.
    Http2,
}

/// TLS from lbd to a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CA bundle the endpoints' certificates must chain to.
    pub ca: PathBuf,
    /// Name sent as SNI and verified in the certificate. Default: the endpoint's IP address.
    pub server_name: Option<String>,
    /// Client certificate presented to the endpoints (with `key`).
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

/// An endpoint of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointConfig {
    /// Address (`ip:port`; host names are resolved once when the config is loaded).
    pub address: SocketAddr,
    /// Relative weight, 1..=10000. Default 1.
    pub weight: u32,
}

/// Balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Smooth weighted round robin (nginx's algorithm).
    RoundRobin,
    /// Power of two random choices on in-flight requests (weighted).
    LeastRequest,
    /// Consistent hashing on a ring (ketama-like), keyed by `hash_on`.
    RingHash,
    /// Maglev table, keyed by `hash_on`.
    Maglev,
    /// Weighted random.
    Random,
}

/// What `ring_hash` and `maglev` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's IP address.
    SourceIp,
    /// A request header (lowercased name); `header:x-user`.
    Header(String),
    /// A cookie; `cookie:session`.
    Cookie(String),
}

/// `[clusters.health_check]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheckConfig {
    /// HTTP or TCP.
    pub kind: HealthCheckKind,
    /// Time between checks. Default 5s.
    pub interval: Duration,
    /// Time a check may take. Default 2s.
    pub timeout: Duration,
    /// Consecutive passes that bring an endpoint back. Default 2.
    pub rise: u32,
    /// Consecutive failures that take it out. Default 3.
    pub fall: u32,
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HealthCheckKind {
    /// `GET path`, pass on the expected status.
    Http {
        /// Path requested. Default `/`.
        path: String,
        /// Expected status. Default 200.
        expected_status: u16,
        /// Host header sent. Default: the endpoint address.
        host: Option<String>,
    },
    /// A TCP connect.
    Tcp,
    /// `grpc.health.v1.Health/Check` over HTTP/2 cleartext; passes on SERVING.
    Grpc {
        /// Service name asked about. Default `""` (the server as a whole).
        service: String,
    },
}

/// `[clusters.outlier]`: passive ejection, kept per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive connect failures or 5xx responses that eject an endpoint; 0 turns it off. Default 5.
    pub consecutive_failures: u32,
    /// First ejection lasts this long; each further one doubles it. Default 10s.
    pub base_ejection: Duration,
    /// Longest ejection. Default 300s.
    pub max_ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self { consecutive_failures: 5, base_ejection: Duration::from_secs(10), max_ejection: Duration::from_secs(300) }
    }
}

impl Config {
    /// Finds a cluster's index by name.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }
}
