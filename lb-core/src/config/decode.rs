//! Decodes TOML text into [`Config`], collecting every error with its byte span.
//!
//! Written by hand over toml's spanned `DeTable` rather than with serde: serde stops at the first
//! error and loses positions for semantic checks, while `lbd check` must print every problem as
//! `FILE:LINE:COL: reason`. Each table records the keys it read, so unknown keys are errors.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::model::*;

type Span = Range<usize>;

/// Collected problems, as byte spans into the source.
#[derive(Debug, Default)]
pub(super) struct Errors(pub(super) Vec<(Span, String)>);

impl Errors {
    fn push(&mut self, span: Span, msg: impl Into<String>) {
        self.0.push((span, msg.into()));
    }
}

/// A table being read: remembers which keys were used.
struct Fields<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Span,
    used: HashSet<&'a str>,
    what: &'static str,
}

impl<'a, 'i> Fields<'a, 'i> {
    fn new(table: &'a DeTable<'i>, span: Span, what: &'static str) -> Self {
        Self { table, span, used: HashSet::new(), what }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        let (k, v) = self.table.get_key_value(key)?;
        self.used.insert(k.get_ref().as_ref());
        Some(v)
    }

    /// Reports every key that was not read.
    fn finish(self, errs: &mut Errors) {
        for (k, _) in self.table.iter() {
            if !self.used.contains(k.get_ref().as_ref()) {
                errs.push(k.span(), format!("unknown key `{}` in {}", k.get_ref(), self.what));
            }
        }
    }

    fn string(&mut self, key: &'static str, errs: &mut Errors) -> Option<(&'a str, Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), v.span())),
            _ => {
                errs.push(v.span(), format!("`{key}` must be a string"));
                None
            }
        }
    }

    fn required_string(&mut self, key: &'static str, errs: &mut Errors) -> Option<(&'a str, Span)> {
        if self.table.get(key).is_none() {
            errs.push(self.span.clone(), format!("{} is missing required key `{key}`", self.what));
            return None;
        }
        self.string(key, errs)
    }

    fn int(&mut self, key: &'static str, min: u64, max: u64, errs: &mut Errors) -> Option<u64> {
        let v = self.get(key)?;
        let DeValue::Integer(i) = v.get_ref() else {
            errs.push(v.span(), format!("`{key}` must be an integer"));
            return None;
        };
        let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
        match i64::from_str_radix(&digits, i.radix()) {
            Ok(n) if n >= 0 && (n as u64) >= min && (n as u64) <= max => Some(n as u64),
            _ => {
                errs.push(v.span(), format!("`{key}` must be between {min} and {max}"));
                None
            }
        }
    }

    fn bool(&mut self, key: &'static str, errs: &mut Errors) -> Option<bool> {
        match self.get(key).map(|v| (v.get_ref(), v.span())) {
            None => None,
            Some((DeValue::Boolean(b), _)) => Some(*b),
            Some((_, span)) => {
                errs.push(span, format!("`{key}` must be true or false"));
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str, errs: &mut Errors) -> Option<Duration> {
        let (s, span) = self.string(key, errs)?;
        match parse_duration(s) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                errs.push(span, format!("`{key}`: `{s}` is not a duration like \"250ms\", \"5s\", \"2m\" or \"1h\""));
                None
            }
        }
    }

    fn array(&mut self, key: &'static str, errs: &mut Errors) -> Option<(&'a [Spanned<DeValue<'i>>], Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some((&a[..], v.span())),
            _ => {
                errs.push(v.span(), format!("`{key}` must be an array"));
                None
            }
        }
    }

    fn table(&mut self, key: &'static str, errs: &mut Errors) -> Option<(&'a DeTable<'i>, Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                errs.push(v.span(), format!("`{key}` must be a table"));
                None
            }
        }
    }

    /// A non-empty array of strings, each turned into a `T` by `item` (which reports its own
    /// errors); `what` says what the entries are, for the error on anything else.
    fn string_list<T>(
        &mut self,
        key: &'static str,
        what: &str,
        errs: &mut Errors,
        mut item: impl FnMut(&str, Span, &mut Errors) -> Option<T>,
    ) -> Option<Vec<T>> {
        let (items, span) = self.array(key, errs)?;
        if items.is_empty() {
            errs.push(span, format!("`{key}` needs at least one entry: {what}"));
        }
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            match v.get_ref() {
                DeValue::String(s) => out.extend(item(s, v.span(), errs)),
                _ => errs.push(v.span(), format!("`{key}` entries are {what}")),
            }
        }
        Some(out)
    }

    /// An array of tables (`[[key]]`); each element is yielded with its span.
    fn tables(&mut self, key: &'static str, errs: &mut Errors) -> Vec<(&'a DeTable<'i>, Span)> {
        let Some((items, _)) = self.array(key, errs) else { return Vec::new() };
        items
            .iter()
            .filter_map(|v| match v.get_ref() {
                DeValue::Table(t) => Some((t, v.span())),
                _ => {
                    errs.push(v.span(), format!("each `{key}` entry must be a table"));
                    None
                }
            })
            .collect()
    }
}

/// Parses "250ms", "5s", "2m", "1h" (also "1.5s").
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it.next().ok_or_else(|| format!("`{s}` resolved to no address")),
        Err(e) => Err(format!("`{s}` is not an address like 127.0.0.1:8080 or [::1]:8080 ({e})")),
    }
}

pub(super) fn decode(root: &DeTable<'_>, root_span: Span, base: &Path, errs: &mut Errors) -> Option<Config> {
    let mut f = Fields::new(root, root_span, "the top level");
    let workers = f
        .int("workers", 1, 1024, errs)
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let io_backend = match f.string("io_backend", errs) {
        None | Some(("auto", _)) => IoBackendChoice::Auto,
        Some(("uring", _)) => IoBackendChoice::Uring,
        Some(("epoll", _)) => IoBackendChoice::Epoll,
        Some((other, span)) => {
            errs.push(span, format!("`io_backend` must be \"auto\", \"uring\" or \"epoll\", not \"{other}\""));
            IoBackendChoice::Auto
        }
    };
    let pin_workers = f.bool("pin_workers", errs).unwrap_or(true);
    let drain_timeout = f.duration("drain_timeout", errs).unwrap_or(Duration::from_secs(30));
    let tls_ticket_key_file = f.string("tls_ticket_key_file", errs).map(|(p, _)| base.join(p));
    let admin = decode_admin(&mut f, errs);
    let quic = decode_quic(&mut f, base, errs);
    let access_log = decode_access_log(&mut f, errs);
    let listeners: Vec<_> = f
        .tables("listeners", errs)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (t, span))| decode_listener(i, t, span, base, errs))
        .collect();
    let clusters: Vec<_> =
        f.tables("clusters", errs).into_iter().filter_map(|(t, span)| decode_cluster(t, span, base, errs)).collect();
    f.finish(errs);
    Some(Config {
        workers,
        io_backend,
        pin_workers,
        drain_timeout,
        tls_ticket_key_file,
        admin,
        access_log,
        quic,
        listeners,
        clusters,
    })
}

fn decode_admin(f: &mut Fields<'_, '_>, errs: &mut Errors) -> AdminConfig {
    let mut admin = AdminConfig { bind: SocketAddr::from(([127, 0, 0, 1], 9901)) };
    if let Some((t, span)) = f.table("admin", errs) {
        let mut a = Fields::new(t, span, "[admin]");
        if let Some((s, span)) = a.string("bind", errs) {
            match socket_addr(s) {
                Ok(addr) => admin.bind = addr,
                Err(e) => errs.push(span, e),
            }
        }
        a.finish(errs);
    }
    admin
}

fn decode_quic(f: &mut Fields<'_, '_>, base: &Path, errs: &mut Errors) -> QuicConfig {
    let mut q = QuicConfig::default();
    if let Some((t, span)) = f.table("quic", errs) {
        let mut a = Fields::new(t, span, "[quic]");
        if let Some((s, span)) = a.string("server_id", errs) {
            match parse_hex(s) {
                Some(id) if (1..=14).contains(&id.len()) => q.server_id = id,
                _ => errs.push(span, "`server_id` must be 1 to 14 bytes in hex, e.g. \"0a01\""),
            }
        }
        q.key_file = a.string("key_file", errs).map(|(p, _)| base.join(p));
        match a.string("steering", errs) {
            None | Some(("cbpf", _)) => {}
            Some(("forward", _)) => q.steering = QuicSteering::Forward,
            Some((v, span)) => {
                errs.push(span, format!("`steering` must be \"cbpf\" or \"forward\", not \"{v}\""));
            }
        }
        if let Some(n) = a.int("retry_threshold", 0, 1 << 20, errs) {
            q.retry_threshold = n as usize;
        }
        if let Some(n) = a.int("max_streams", 1, 1 << 16, errs) {
            q.max_streams = n as u32;
        }
        if let Some(n) = a.int("forward_queue", 16, 1 << 20, errs) {
            q.forward_queue = n as usize;
        }
        a.finish(errs);
    }
    q
}

/// Bytes from an even number of hex digits.
fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn decode_access_log(f: &mut Fields<'_, '_>, errs: &mut Errors) -> AccessLogConfig {
    let mut log =
        AccessLogConfig { target: AccessLogTarget::Stdout, format: AccessLogFormat::Json, buffer_lines: 65536 };
    if let Some((t, span)) = f.table("access_log", errs) {
        let mut a = Fields::new(t, span, "[access_log]");
        match a.string("path", errs) {
            None | Some(("-", _)) => {}
            Some(("off", _)) => log.target = AccessLogTarget::Off,
            Some((p, _)) => log.target = AccessLogTarget::File(PathBuf::from(p)),
        }
        match a.string("format", errs) {
            None | Some(("json", _)) => {}
            Some(("text", _)) => log.format = AccessLogFormat::Text,
            Some((other, span)) => errs.push(span, format!("`format` must be \"json\" or \"text\", not \"{other}\"")),
        }
        if let Some(n) = a.int("buffer_lines", 16, 16 << 20, errs) {
            log.buffer_lines = n as usize;
        }
        a.finish(errs);
    }
    log
}

fn decode_listener(i: usize, t: &DeTable<'_>, span: Span, base: &Path, errs: &mut Errors) -> Option<ListenerConfig> {
    let mut f = Fields::new(t, span.clone(), "a [[listeners]] entry");
    let name = f.required_string("name", errs).map(|(s, _)| s.to_string());
    let mut bind = Vec::new();
    match f.get("bind") {
        None => errs.push(span.clone(), "a [[listeners]] entry is missing required key `bind`"),
        Some(v) => {
            let items: Vec<&Spanned<DeValue<'_>>> = match v.get_ref() {
                DeValue::Array(a) => a.iter().collect(),
                _ => vec![v],
            };
            for item in items {
                match item.get_ref() {
                    DeValue::String(s) => match socket_addr(s) {
                        Ok(a) => bind.push(a),
                        Err(e) => errs.push(item.span(), format!("`bind`: {e}")),
                    },
                    _ => errs.push(item.span(), "`bind` must be an address string or an array of them"),
                }
            }
            if bind.is_empty() && matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()) {
                errs.push(v.span(), "`bind` needs at least one address");
            }
        }
    }
    let kind_str = f.string("kind", errs);
    let https = matches!(kind_str, Some(("https", _)));
    let tls = match (f.table("tls", errs), https) {
        (Some((t, span)), true) => decode_tls(t, span, base, errs),
        (None, true) => {
            errs.push(span.clone(), "an `https` listener needs a [listeners.tls] table with `certificates`");
            None
        }
        (Some((_, span)), false) => {
            errs.push(span, "[listeners.tls] belongs to `kind = \"https\"` listeners");
            None
        }
        (None, false) => None,
    };
    let kind = match kind_str {
        None | Some(("http" | "https", _)) => {
            let lname = name.clone().unwrap_or_else(|| format!("listener{i}"));
            let routes = f
                .tables("routes", errs)
                .into_iter()
                .enumerate()
                .filter_map(|(ri, (t, span))| decode_route(&lname, ri, t, span, errs))
                .collect::<Vec<_>>();
            if routes.is_empty() && f.table.get("routes").is_none() {
                errs.push(span.clone(), "an `http` listener needs at least one [[listeners.routes]]");
            }
            if let Some(v) = f.get("cluster") {
                errs.push(
                    v.span(),
                    "`cluster` is for `tcp` listeners; `http` listeners route with [[listeners.routes]]",
                );
            }
            ListenerKind::Http { routes }
        }
        Some(("tcp", _)) => {
            if let Some(v) = f.get("routes") {
                errs.push(v.span(), "`routes` are for `http` listeners; a `tcp` listener names one `cluster`");
            }
            let lname = name.clone().unwrap_or_else(|| format!("listener{i}"));
            let sni_routes = f
                .tables("sni_routes", errs)
                .into_iter()
                .enumerate()
                .filter_map(|(ri, (t, span))| decode_sni_route(&lname, ri, t, span, errs))
                .collect();
            let cluster = f.required_string("cluster", errs).map(|(s, _)| s.to_string())?;
            ListenerKind::Tcp { cluster, sni_routes }
        }
        Some((other, span)) => {
            errs.push(span, format!("`kind` must be \"http\", \"https\" or \"tcp\", not \"{other}\""));
            return None;
        }
    };
    let max_connections = f.int("max_connections", 1, 10_000_000, errs).unwrap_or(100_000) as usize;
    let header_read_timeout = f.duration("header_read_timeout", errs).unwrap_or(Duration::from_secs(10));
    let idle_timeout = f.duration("idle_timeout", errs).unwrap_or(Duration::from_secs(60));
    let max_request_header_bytes = f.int("max_request_header_bytes", 8192, 1 << 24, errs).unwrap_or(65536) as usize;
    let proxy_protocol = f.string_list("proxy_protocol", "networks like \"10.0.0.0/8\"", errs, |s, span, errs| {
        s.parse::<Cidr>().map_err(|e| errs.push(span, format!("`proxy_protocol`: {e}"))).ok()
    });
    f.finish(errs);
    Some(ListenerConfig {
        name: name?,
        bind,
        kind,
        max_connections,
        header_read_timeout,
        idle_timeout,
        max_request_header_bytes,
        tls,
        proxy_protocol,
    })
}

fn decode_tls(t: &DeTable<'_>, span: Span, base: &Path, errs: &mut Errors) -> Option<TlsListenerConfig> {
    let mut f = Fields::new(t, span.clone(), "[listeners.tls]");
    let mut certificates = Vec::new();
    match f.array("certificates", errs) {
        None if f.table.get("certificates").is_none() => errs.push(span, "[listeners.tls] needs `certificates`"),
        None => {}
        Some((items, aspan)) => {
            if items.is_empty() {
                errs.push(aspan, "`certificates` needs at least one { cert = \"…\", key = \"…\" }");
            }
            for item in items {
                let DeValue::Table(ct) = item.get_ref() else {
                    errs.push(item.span(), "a certificate is { cert = \"chain.pem\", key = \"key.pem\" }");
                    continue;
                };
                let mut c = Fields::new(ct, item.span(), "a certificate");
                let cert = c.required_string("cert", errs).map(|(p, _)| base.join(p));
                let key = c.required_string("key", errs).map(|(p, _)| base.join(p));
                c.finish(errs);
                if let (Some(cert), Some(key)) = (cert, key) {
                    certificates.push(CertificateConfig { cert, key });
                }
            }
        }
    }
    let policy_min = match f.string("policy", errs) {
        None | Some(("default", _)) => TlsVersion::Tls12,
        Some(("tls13-only", _)) => TlsVersion::Tls13,
        Some((p, span)) => {
            errs.push(span, format!("`policy` must be \"default\" (TLS 1.2 and 1.3) or \"tls13-only\", not \"{p}\""));
            TlsVersion::Tls12
        }
    };
    let mut version = |key: &'static str, default: TlsVersion| match f.string(key, errs) {
        None => default,
        Some(("1.2", _)) => TlsVersion::Tls12,
        Some(("1.3", _)) => TlsVersion::Tls13,
        Some((v @ ("1.0" | "1.1"), span)) => {
            errs.push(
                span,
                format!(
                    "`{key}`: TLS {v} is not supported (rustls does not speak TLS 1.0 or 1.1); use \"1.2\" or \"1.3\""
                ),
            );
            default
        }
        Some((v, span)) => {
            errs.push(span, format!("`{key}` must be \"1.2\" or \"1.3\", not \"{v}\""));
            default
        }
    };
    let min_version = version("min_version", policy_min);
    let max_version = version("max_version", TlsVersion::Tls13);
    if min_version > max_version {
        errs.push(f.span.clone(), "`min_version` is above `max_version`");
    }
    let cipher_suites = f.string_list("cipher_suites", "cipher suite names", errs, |s, span, errs| {
        if CIPHER_SUITES.contains(&s) {
            Some(s.to_string())
        } else {
            errs.push(span, format!("unknown cipher suite; lbd offers {}", CIPHER_SUITES.join(", ")));
            None
        }
    });
    if let Some(suites) = &cipher_suites {
        let has13 = suites.iter().any(|s| s.starts_with("TLS13_"));
        let has12 = suites.iter().any(|s| !s.starts_with("TLS13_"));
        if (max_version == TlsVersion::Tls13 && !has13 && min_version == TlsVersion::Tls13)
            || (min_version == TlsVersion::Tls12 && max_version == TlsVersion::Tls12 && !has12)
        {
            errs.push(f.span.clone(), "`cipher_suites` has no suite for the TLS versions this listener allows");
        }
    }
    let http2 = f.bool("http2", errs).unwrap_or(true);
    let http3 = f.bool("http3", errs).unwrap_or(true);
    let alt_svc = f.bool("alt_svc", errs).unwrap_or(true);
    let alt_svc_max_age = f.duration("alt_svc_max_age", errs).unwrap_or(Duration::from_secs(86400));
    let zero_rtt = f.bool("zero_rtt", errs).unwrap_or(false);
    let client_auth = match f.string("client_auth", errs) {
        None | Some(("off", _)) => ClientAuth::Off,
        Some(("optional", _)) => ClientAuth::Optional,
        Some(("required", _)) => ClientAuth::Required,
        Some((v, span)) => {
            errs.push(span, format!("`client_auth` must be \"off\", \"optional\" or \"required\", not \"{v}\""));
            ClientAuth::Off
        }
    };
    let client_ca = f.string("client_ca", errs).map(|(p, _)| base.join(p));
    if client_auth != ClientAuth::Off && client_ca.is_none() {
        errs.push(f.span.clone(), "`client_auth` needs `client_ca`, the CA bundle client certificates must chain to");
    }
    if zero_rtt && client_auth != ClientAuth::Off {
        // Early data reaches lbd before the client's certificate has been checked.
        errs.push(f.span.clone(), "`zero_rtt` cannot be combined with `client_auth`: early data arrives before the client certificate is verified");
    }
    f.finish(errs);
    Some(TlsListenerConfig {
        certificates,
        min_version,
        max_version,
        http2,
        http3,
        alt_svc,
        alt_svc_max_age,
        zero_rtt,
        cipher_suites,
        client_auth,
        client_ca,
    })
}

fn decode_route(listener: &str, i: usize, t: &DeTable<'_>, span: Span, errs: &mut Errors) -> Option<RouteConfig> {
    let mut f = Fields::new(t, span, "a [[listeners.routes]] entry");
    let name = f.string("name", errs).map_or_else(|| format!("{listener}/{i}"), |(s, _)| s.to_string());
    let host = f.string("host", errs).and_then(|(h, span)| host_match(h, span, errs));
    let exact = f.string("path", errs);
    let prefix = f.string("path_prefix", errs);
    let path = match (exact, prefix) {
        (Some(_), Some((_, span))) => {
            errs.push(span, "a route has either `path` or `path_prefix`, not both");
            PathMatch::Any
        }
        (Some((p, span)), None) | (None, Some((p, span))) if !p.starts_with('/') => {
            errs.push(span, "paths start with `/`");
            PathMatch::Any
        }
        (Some((p, _)), None) => PathMatch::Exact(p.to_string()),
        (None, Some((p, _))) => PathMatch::Prefix(p.to_string()),
        (None, None) => PathMatch::Any,
    };
    let cluster = f.required_string("cluster", errs).map(|(s, _)| s.to_string());
    f.finish(errs);
    Some(RouteConfig { name, host, path, cluster: cluster? })
}

/// `api.example.com` or `*.example.com`.
fn host_match(h: &str, span: Span, errs: &mut Errors) -> Option<HostMatch> {
    let h = h.to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix("*.") {
        if rest.is_empty() || rest.contains('*') {
            errs.push(span, "wildcard names look like \"*.example.com\"");
            return None;
        }
        Some(HostMatch::Suffix(format!(".{rest}")))
    } else if h.contains('*') || h.is_empty() {
        errs.push(span, "a name is exact or \"*.suffix\"; `*` is allowed only as the first label");
        None
    } else {
        Some(HostMatch::Exact(h))
    }
}

fn decode_sni_route(listener: &str, i: usize, t: &DeTable<'_>, span: Span, errs: &mut Errors) -> Option<RouteConfig> {
    let mut f = Fields::new(t, span, "a [[listeners.sni_routes]] entry");
    let name = f.string("name", errs).map_or_else(|| format!("{listener}/sni{i}"), |(s, _)| s.to_string());
    let host = f.required_string("server_name", errs).and_then(|(h, span)| host_match(h, span, errs));
    let cluster = f.required_string("cluster", errs).map(|(s, _)| s.to_string());
    f.finish(errs);
    Some(RouteConfig { name, host: Some(host?), path: PathMatch::Any, cluster: cluster? })
}

fn decode_upstream_tls(t: &DeTable<'_>, span: Span, base: &Path, errs: &mut Errors) -> Option<UpstreamTls> {
    let mut f = Fields::new(t, span.clone(), "a cluster's `tls`");
    let ca = f.required_string("ca", errs).map(|(p, _)| base.join(p));
    let server_name = f.string("server_name", errs).map(|(s, _)| s.to_string());
    let cert = f.string("cert", errs).map(|(p, _)| base.join(p));
    let key = f.string("key", errs).map(|(p, _)| base.join(p));
    if cert.is_some() != key.is_some() {
        errs.push(span, "a client certificate needs both `cert` and `key`");
    }
    f.finish(errs);
    Some(UpstreamTls { ca: ca?, server_name, cert, key })
}

fn decode_cluster(t: &DeTable<'_>, span: Span, base: &Path, errs: &mut Errors) -> Option<ClusterConfig> {
    let mut f = Fields::new(t, span.clone(), "a [[clusters]] entry");
    let name = f.required_string("name", errs).map(|(s, _)| s.to_string());
    let mut endpoints = Vec::new();
    match f.array("endpoints", errs) {
        None if f.table.get("endpoints").is_none() => {
            errs.push(span.clone(), "a [[clusters]] entry is missing required key `endpoints`")
        }
        None => {}
        Some((items, aspan)) => {
            if items.is_empty() {
                errs.push(aspan, "`endpoints` needs at least one endpoint");
            }
            for item in items {
                match item.get_ref() {
                    DeValue::String(s) => match socket_addr(s) {
                        Ok(address) => endpoints.push(EndpointConfig { address, weight: 1 }),
                        Err(e) => errs.push(item.span(), e),
                    },
                    DeValue::Table(t) => {
                        let mut e = Fields::new(t, item.span(), "an endpoint");
                        let addr = e
                            .required_string("address", errs)
                            .and_then(|(s, span)| socket_addr(s).map_err(|msg| errs.push(span, msg)).ok());
                        let weight = e.int("weight", 1, 10_000, errs).unwrap_or(1) as u32;
                        e.finish(errs);
                        if let Some(address) = addr {
                            endpoints.push(EndpointConfig { address, weight });
                        }
                    }
                    _ => errs.push(item.span(), "an endpoint is \"ip:port\" or { address = \"ip:port\", weight = N }"),
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for ep in &endpoints {
        if !seen.insert(ep.address) {
            errs.push(span.clone(), format!("endpoint {} is listed twice", ep.address));
        }
    }
    let policy = match f.string("policy", errs) {
        None | Some(("round_robin", _)) => Policy::RoundRobin,
        Some(("least_request", _)) => Policy::LeastRequest,
        Some(("ring_hash", _)) => Policy::RingHash,
        Some(("maglev", _)) => Policy::Maglev,
        Some(("random", _)) => Policy::Random,
        Some((other, span)) => {
            errs.push(
                span,
                format!(
                    "`policy` must be one of round_robin, least_request, ring_hash, maglev, random; not \"{other}\""
                ),
            );
            Policy::RoundRobin
        }
    };
    let hash_on = match f.string("hash_on", errs) {
        None | Some(("source_ip", _)) => HashOn::SourceIp,
        Some((s, span)) => match s.split_once(':') {
            Some(("header", h)) if !h.is_empty() => HashOn::Header(h.to_ascii_lowercase()),
            Some(("cookie", c)) if !c.is_empty() => HashOn::Cookie(c.to_string()),
            _ => {
                errs.push(
                    span,
                    format!("`hash_on` must be \"source_ip\", \"header:NAME\" or \"cookie:NAME\", not \"{s}\""),
                );
                HashOn::SourceIp
            }
        },
    };
    let connect_timeout = f.duration("connect_timeout", errs).unwrap_or(Duration::from_secs(2));
    let request_timeout = f.duration("request_timeout", errs).unwrap_or(Duration::from_secs(30));
    let retries = f.int("retries", 0, 10, errs).unwrap_or(2) as u32;
    let pool_size = f.int("pool_size", 0, 100_000, errs).unwrap_or(64) as usize;
    let pool_idle_timeout = f.duration("pool_idle_timeout", errs).unwrap_or(Duration::from_secs(60));
    let health_check = f.table("health_check", errs).and_then(|(t, span)| decode_health(t, span, errs));
    let tls = f.table("tls", errs).and_then(|(t, span)| decode_upstream_tls(t, span, base, errs));
    let protocol = match f.string("protocol", errs) {
        None | Some(("http1", _)) => UpstreamProtocol::Http1,
        Some(("http2", _)) => UpstreamProtocol::Http2,
        Some((v, span)) => {
            errs.push(span, format!("`protocol` must be \"http1\" or \"http2\", not \"{v}\""));
            UpstreamProtocol::Http1
        }
    };
    let send_proxy_protocol = match f.string("send_proxy_protocol", errs) {
        None => None,
        Some(("v1", _)) => Some(ProxyProtocolVersion::V1),
        Some(("v2", _)) => Some(ProxyProtocolVersion::V2),
        Some((v, span)) => {
            errs.push(span, format!("`send_proxy_protocol` must be \"v1\" or \"v2\", not \"{v}\""));
            None
        }
    };
    let outlier = f.table("outlier", errs).map_or_else(OutlierConfig::default, |(t, span)| {
        let mut o = Fields::new(t, span, "[clusters.outlier]");
        let d = OutlierConfig::default();
        let out = OutlierConfig {
            consecutive_failures: o
                .int("consecutive_failures", 0, 1_000_000, errs)
                .map_or(d.consecutive_failures, |n| n as u32),
            base_ejection: o.duration("base_ejection", errs).unwrap_or(d.base_ejection),
            max_ejection: o.duration("max_ejection", errs).unwrap_or(d.max_ejection),
        };
        o.finish(errs);
        out
    });
    if tls.is_some() && matches!(health_check.as_ref().map(|h| &h.kind), Some(HealthCheckKind::Http { .. })) {
        errs.push(
            span.clone(),
            "HTTP health checks do not speak TLS yet: a cluster with `tls` uses `kind = \"tcp\"` checks",
        );
    }
    f.finish(errs);
    Some(ClusterConfig {
        name: name?,
        endpoints,
        policy,
        hash_on,
        connect_timeout,
        request_timeout,
        retries,
        pool_size,
        pool_idle_timeout,
        health_check,
        outlier,
        send_proxy_protocol,
        tls,
        protocol,
    })
}

fn decode_health(t: &DeTable<'_>, span: Span, errs: &mut Errors) -> Option<HealthCheckConfig> {
    let mut f = Fields::new(t, span, "[clusters.health_check]");
    let kind = match f.string("kind", errs) {
        None | Some(("http", _)) => HealthCheckKind::Http {
            path: f.string("path", errs).map_or_else(|| "/".to_string(), |(s, _)| s.to_string()),
            expected_status: f.int("expected_status", 100, 599, errs).unwrap_or(200) as u16,
            host: f.string("host", errs).map(|(s, _)| s.to_string()),
        },
        Some((kind @ ("tcp" | "grpc"), _)) => {
            for key in ["path", "expected_status", "host"] {
                if let Some(v) = f.get(key) {
                    errs.push(v.span(), format!("`{key}` applies to `http` health checks only"));
                }
            }
            if kind == "tcp" {
                HealthCheckKind::Tcp
            } else {
                HealthCheckKind::Grpc {
                    service: f.string("service", errs).map_or_else(String::new, |(s, _)| s.to_string()),
                }
            }
        }
        Some((other, span)) => {
            errs.push(span, format!("health check `kind` must be \"http\", \"tcp\" or \"grpc\", not \"{other}\""));
            return None;
        }
    };
    let hc = HealthCheckConfig {
        kind,
        interval: f.duration("interval", errs).unwrap_or(Duration::from_secs(5)),
        timeout: f.duration("timeout", errs).unwrap_or(Duration::from_secs(2)),
        rise: f.int("rise", 1, 1000, errs).unwrap_or(2) as u32,
        fall: f.int("fall", 1, 1000, errs).unwrap_or(3) as u32,
    };
    f.finish(errs);
    Some(hc)
}

/// Cross-references: names unique, routes and tcp listeners point at existing clusters,
/// no address bound twice. Spans are looked up again in the source table.
pub(super) fn cross_check(cfg: &Config, root: &DeTable<'_>, root_span: Span, errs: &mut Errors) {
    let listener_tables = array_of_tables(root, "listeners");
    let cluster_tables = array_of_tables(root, "clusters");
    let span_of = |tables: &[(&DeTable<'_>, Span)], i: usize, key: &str| -> Span {
        tables
            .get(i)
            .map(|(t, span)| t.get(key).map_or_else(|| span.clone(), |v| v.span()))
            .unwrap_or_else(|| root_span.clone())
    };
    let mut names = HashSet::new();
    for (i, c) in cfg.clusters.iter().enumerate() {
        if !names.insert(c.name.as_str()) {
            errs.push(span_of(&cluster_tables, i, "name"), format!("cluster `{}` is defined twice", c.name));
        }
    }
    let mut lnames = HashSet::new();
    let mut addrs = HashSet::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        if !lnames.insert(l.name.as_str()) {
            errs.push(span_of(&listener_tables, i, "name"), format!("listener `{}` is defined twice", l.name));
        }
        for a in &l.bind {
            if !addrs.insert(*a) {
                errs.push(span_of(&listener_tables, i, "bind"), format!("address {a} is bound by two listeners"));
            }
        }
        if l.bind.contains(&cfg.admin.bind) {
            errs.push(
                span_of(&listener_tables, i, "bind"),
                format!("address {} is the admin listener's", cfg.admin.bind),
            );
        }
        match &l.kind {
            ListenerKind::Tcp { cluster, sni_routes } => {
                if cfg.cluster_index(cluster).is_none() {
                    errs.push(span_of(&listener_tables, i, "cluster"), format!("no cluster named `{cluster}`"));
                }
                let route_tables =
                    listener_tables.get(i).map(|(t, _)| array_of_tables(t, "sni_routes")).unwrap_or_default();
                for (ri, r) in sni_routes.iter().enumerate() {
                    if cfg.cluster_index(&r.cluster).is_none() {
                        errs.push(span_of(&route_tables, ri, "cluster"), format!("no cluster named `{}`", r.cluster));
                    }
                }
            }
            ListenerKind::Http { routes } => {
                let route_tables =
                    listener_tables.get(i).map(|(t, _)| array_of_tables(t, "routes")).unwrap_or_default();
                for (ri, r) in routes.iter().enumerate() {
                    if cfg.cluster_index(&r.cluster).is_none() {
                        errs.push(span_of(&route_tables, ri, "cluster"), format!("no cluster named `{}`", r.cluster));
                    }
                }
            }
        }
    }
}

/// Whether every listener, route and cluster table decoded (so indexes match the source).
pub(super) fn aligned(cfg: &Config, root: &DeTable<'_>) -> bool {
    let listeners = array_of_tables(root, "listeners");
    listeners.len() == cfg.listeners.len()
        && array_of_tables(root, "clusters").len() == cfg.clusters.len()
        && listeners.iter().zip(&cfg.listeners).all(|((t, _), l)| match &l.kind {
            ListenerKind::Http { routes } => array_of_tables(t, "routes").len() == routes.len(),
            ListenerKind::Tcp { sni_routes, .. } => array_of_tables(t, "sni_routes").len() == sni_routes.len(),
        })
}

fn array_of_tables<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Vec<(&'a DeTable<'i>, Span)> {
    match t.get(key).map(|v| (v.get_ref(), v)) {
        Some((DeValue::Array(a), _)) => a
            .iter()
            .filter_map(|v| match v.get_ref() {
                DeValue::Table(t) => Some((t, v.span())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
