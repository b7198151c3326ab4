//! Header rules of a proxy (RFC 9110 §7.6.1): hop-by-hop headers go, forwarding headers come.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(super) static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether the message asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and those named in `Connection`. With `upgrade`, keeps `Upgrade`
/// and sets `Connection: upgrade` so the next hop sees the upgrade request or acceptance.
/// Returns whether `Connection` named headers to remove (which may be any header).
///
/// Runs twice per proxied request, so it first scans the names once (a match on the name's
/// text: its length decides almost always) and removes only what is there.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) -> bool {
    let mut found = 0u8;
    let mut has_upgrade = false;
    for name in headers.keys() {
        // Indexes into HOP_BY_HOP.
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "proxy-authenticate" => 3,
            "te" => 4,
            "trailer" => 5,
            "transfer-encoding" => 6,
            "upgrade" => {
                has_upgrade = true;
                continue;
            }
            _ => continue,
        };
        found |= 1 << i;
    }
    let mut named_any = false;
    if found & 1 != 0 {
        // HOP_BY_HOP[0] is Connection: drop the headers it names too.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !["keep-alive", "close", "upgrade"].iter().any(|c| t.eq_ignore_ascii_case(c)))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for n in &named {
            headers.remove(n);
        }
        named_any = !named.is_empty();
    }
    for (i, h) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(h);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if has_upgrade {
        headers.remove(header::UPGRADE);
    }
    named_any
}

/// What the proxy asks of a request's headers, read in one pass over them. A lookup by name
/// hashes the name and probes the map, and a request went through eight of them on its way
/// (callgrind: about 1.2k of 21.8k instructions per HTTP/1.1 request), where a request has a
/// handful of headers. Each value is what `HeaderMap::get` gives: the first of its name.
#[derive(Debug, Default)]
pub struct RequestHeaders {
    /// Bytes of the headers as received (names, values, separators).
    pub bytes: usize,
    /// `Host`.
    pub host: Option<HeaderValue>,
    /// The first `Content-Type` starts with `application/grpc`.
    pub grpc: bool,
    /// An `Upgrade` header is there ([`is_upgrade`] tells whether `Connection` asks for it).
    pub upgrade: bool,
    /// The first `TE` is `trailers`.
    pub te_trailers: bool,
    xff: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
}

impl RequestHeaders {
    /// Reads `headers` once.
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut s = Self::default();
        let (mut content_type, mut te) = (false, false);
        for (name, value) in headers {
            s.bytes += name.as_str().len() + value.len() + 4;
            if name == header::HOST {
                if s.host.is_none() {
                    s.host = Some(value.clone());
                }
            } else if name == header::CONTENT_TYPE {
                if !content_type {
                    content_type = true;
                    s.grpc = value.as_bytes().starts_with(b"application/grpc");
                }
            } else if name == header::UPGRADE {
                s.upgrade = true;
            } else if name == header::TE {
                if !te {
                    te = true;
                    s.te_trailers = value.as_bytes().eq_ignore_ascii_case(b"trailers");
                }
            } else if name == X_FORWARDED_FOR {
                if s.xff.is_none() {
                    s.xff = Some(value.clone());
                }
            } else if name == X_REQUEST_ID && s.request_id.is_none() {
                s.request_id = Some(value.clone());
            }
        }
        s
    }

    /// Reads `Host`, `X-Forwarded-For` and `X-Request-Id` again, after a change to `headers`
    /// that may have removed them ([`strip_hop_by_hop`] when `Connection` named headers).
    pub fn rescan_forwarding(&mut self, headers: &HeaderMap) {
        self.host = headers.get(header::HOST).cloned();
        self.xff = headers.get(&X_FORWARDED_FOR).cloned();
        self.request_id = headers.get(&X_REQUEST_ID).cloned();
    }
}

/// The name of a header most requests or responses carry, spelled as clients and servers send
/// them (canonical case or lowercase), without [`HeaderName::from_bytes`]'s lowercasing copy and
/// table lookup: about 150 instructions a header, a tenth of what lbd spent on a response head
/// (callgrind). Hand-written because no crate offers it; any other spelling takes the general
/// path.
pub fn known_name(name: &[u8]) -> Option<HeaderName> {
    Some(match name {
        b"Host" | b"host" => header::HOST,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => header::ACCEPT_LANGUAGE,
        b"Cookie" | b"cookie" => header::COOKIE,
        b"Referer" | b"referer" => header::REFERER,
        b"Authorization" | b"authorization" => header::AUTHORIZATION,
        b"If-None-Match" | b"if-none-match" => header::IF_NONE_MATCH,
        b"If-Modified-Since" | b"if-modified-since" => header::IF_MODIFIED_SINCE,
        b"Origin" | b"origin" => header::ORIGIN,
        b"Date" | b"date" => header::DATE,
        b"Server" | b"server" => header::SERVER,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Connection" | b"connection" => header::CONNECTION,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"Content-Encoding" | b"content-encoding" => header::CONTENT_ENCODING,
        b"ETag" | b"Etag" | b"etag" => header::ETAG,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"Vary" | b"vary" => header::VARY,
        b"Set-Cookie" | b"set-cookie" => header::SET_COOKIE,
        b"Location" | b"location" => header::LOCATION,
        b"Expires" | b"expires" => header::EXPIRES,
        b"Accept-Ranges" | b"accept-ranges" => header::ACCEPT_RANGES,
        b"X-Forwarded-For" | b"x-forwarded-for" => X_FORWARDED_FOR.clone(),
        b"X-Request-Id" | b"x-request-id" => X_REQUEST_ID.clone(),
        _ => return None,
    })
}

/// Appends the HTTP/1.1 field line `name: value\r\n` to `w`.
pub fn put_line(w: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    w.extend_from_slice(name);
    w.extend_from_slice(b": ");
    w.extend_from_slice(value);
    w.extend_from_slice(b"\r\n");
}

/// The comma-separated elements of a list-valued field (`Connection`, `Transfer-Encoding`), trimmed.
pub fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// `Date` for a response without one (lbd's own), as hyper's servers add it: formatted once a
/// second per worker. Both of lbd's servers (HTTP/1.1 and HTTP/2) add it.
pub fn date() -> HeaderValue {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, HeaderValue)> = const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                *d = (secs, v);
            }
        }
        d.1.clone()
    })
}

/// The `X-Forwarded-For` value for a client: built once per connection, cloned per request.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// A request id lbd makes: 32 lowercase hex digits, kept inline, so a request's id costs no
/// allocation (a `HeaderValue` is made of it only for an HTTP/2 backend or the access log).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 32]);

/// Each byte's two hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    t
};

impl RequestId {
    /// `hi` then `lo`, most significant digit first.
    pub fn new(hi: u64, lo: u64) -> Self {
        let mut buf = [0u8; 32];
        for (i, b) in hi.to_be_bytes().into_iter().chain(lo.to_be_bytes()).enumerate() {
            buf[2 * i..2 * i + 2].copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        Self(buf)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_header_value(self) -> HeaderValue {
        // Hex digits are always a valid value.
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("?"))
    }
}

/// `X-Forwarded-Client-Cert`.
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// The headers lbd adds to a request on its way to a backend, worked out once per request:
/// `X-Forwarded-For` (the client appended), `-Proto`, `-Host`, `X-Forwarded-Client-Cert` (only
/// lbd says whose certificate it was: a client's own copy is dropped) and `X-Request-Id` (kept
/// when the client's is sane). They are set into the header map for HTTP/2 backends
/// ([`Forwarding::apply`]); for HTTP/1.1 backends they are written straight into the request head
/// in place of the client's copies ([`Forwarding::replaces`], [`Forwarding::each`]), so the
/// common path changes no header map.
#[derive(Debug)]
pub struct Forwarding {
    xff: HeaderValue,
    proto: HeaderValue,
    host: Option<HeaderValue>,
    client_cert: Option<HeaderValue>,
    /// Set when the client's id is missing or not kept.
    request_id: Option<RequestId>,
}

impl Forwarding {
    /// The forwarding headers for a request with `headers` from client `xff` (see
    /// [`forwarded_for`]) over `proto`; with `keep_id`, also returns the request id the backend
    /// will see (for the access log: a copy made only when wanted).
    pub fn new(
        headers: &RequestHeaders,
        xff: &HeaderValue,
        proto: &'static str,
        client_cert: Option<&HeaderValue>,
        fresh_id: impl FnOnce() -> RequestId,
        keep_id: bool,
    ) -> (Self, Option<HeaderValue>) {
        let xff = match headers.xff.as_ref().and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => {
                HeaderValue::from_str(&format!("{prev}, {}", xff.to_str().unwrap_or("")))
                    .unwrap_or_else(|_| xff.clone())
            }
            _ => xff.clone(),
        };
        let (id, request_id) = match &headers.request_id {
            Some(v) if sane_id(v.as_bytes()) => (keep_id.then(|| v.clone()), None),
            _ => {
                let id = fresh_id();
                (keep_id.then(|| id.to_header_value()), Some(id))
            }
        };
        let fwd = Self {
            xff,
            proto: HeaderValue::from_static(proto),
            host: headers.host.clone(),
            client_cert: client_cert.cloned(),
            request_id,
        };
        (fwd, id)
    }

    /// Whether the client's header `name` is replaced (or dropped) by these.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        *name == X_FORWARDED_FOR
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_CLIENT_CERT
            || (self.host.is_some() && *name == X_FORWARDED_HOST)
            || (self.request_id.is_some() && *name == X_REQUEST_ID)
    }

    /// Calls `f` with each header to add and its value.
    pub fn each(&self, mut f: impl FnMut(&HeaderName, &[u8])) {
        f(&X_FORWARDED_FOR, self.xff.as_bytes());
        f(&X_FORWARDED_PROTO, self.proto.as_bytes());
        if let Some(v) = &self.host {
            f(&X_FORWARDED_HOST, v.as_bytes());
        }
        if let Some(v) = &self.client_cert {
            f(&X_FORWARDED_CLIENT_CERT, v.as_bytes());
        }
        if let Some(id) = &self.request_id {
            f(&X_REQUEST_ID, id.as_bytes());
        }
    }

    /// Sets these into a header map.
    pub fn apply(&self, headers: &mut HeaderMap) {
        match &self.client_cert {
            Some(v) => {
                headers.insert(X_FORWARDED_CLIENT_CERT.clone(), v.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_CLIENT_CERT);
            }
        }
        headers.insert(X_FORWARDED_FOR.clone(), self.xff.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), self.proto.clone());
        if let Some(v) = &self.host {
            headers.insert(X_FORWARDED_HOST.clone(), v.clone());
        }
        if let Some(id) = self.request_id {
            headers.insert(X_REQUEST_ID.clone(), id.to_header_value());
        }
    }
}

/// A client's `X-Request-Id` is kept when short and printable.
fn sane_id(b: &[u8]) -> bool {
    !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RequestId::new(7, 42)`.
    const NEW: &str = "0000000000000007000000000000002a";

    #[test]
    fn known_names_are_the_names_from_bytes_makes() {
        let spelled = [
            "Host",
            "User-Agent",
            "Accept",
            "Accept-Encoding",
            "Accept-Language",
            "Cookie",
            "Referer",
            "Authorization",
            "If-None-Match",
            "If-Modified-Since",
            "Origin",
            "Date",
            "Server",
            "Content-Type",
            "Content-Length",
            "Connection",
            "Transfer-Encoding",
            "Cache-Control",
            "Content-Encoding",
            "ETag",
            "Etag",
            "Last-Modified",
            "Vary",
            "Set-Cookie",
            "Location",
            "Expires",
            "Accept-Ranges",
            "X-Forwarded-For",
            "X-Request-Id",
        ];
        for name in spelled.iter().flat_map(|n| [n.to_string(), n.to_ascii_lowercase()]) {
            let fast = known_name(name.as_bytes());
            assert_eq!(fast, HeaderName::from_bytes(name.as_bytes()).ok(), "{name}");
            assert!(fast.is_some(), "{name}");
        }
        for other in ["CONTENT-LENGTH", "X-Served-By", "Date ", "content-lengt", ""] {
            assert_eq!(known_name(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn request_ids_are_32_hex_digits_high_word_first() {
        assert_eq!(RequestId::new(7, 42).as_bytes(), NEW.as_bytes());
        let id = RequestId::new(0x0001_0000_0000_c0de, 0xdead_beef_0123_4567);
        assert_eq!(id.as_bytes(), b"000100000000c0dedeadbeef01234567");
        assert_eq!(id.to_header_value(), "000100000000c0dedeadbeef01234567");
        assert_eq!(RequestId::new(u64::MAX, 0).as_bytes(), b"ffffffffffffffff0000000000000000");
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
        let mut untouched = map(&[("content-length", "3"), ("x-a", "1")]);
        strip_hop_by_hop(&mut untouched, false);
        assert_eq!(untouched.len(), 2);
    }

    #[test]
    fn upgrade_requests_keep_upgrade() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").and_then(|v| v.to_str().ok()), Some("websocket"));
        assert_eq!(h.get("connection").and_then(|v| v.to_str().ok()), Some("upgrade"));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])), "Upgrade without Connection: upgrade is not one");
    }

    fn forwarded(h: &mut HeaderMap, cert: Option<&HeaderValue>) -> HeaderValue {
        let (fwd, id) = Forwarding::new(
            &RequestHeaders::scan(h),
            &forwarded_for("192.0.2.7".parse().expect("ip")),
            "http",
            cert,
            || RequestId::new(7, 42),
            true,
        );
        fwd.apply(h);
        id.expect("kept when asked")
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut h = map(&[("host", "example.com"), ("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https")]);
        forwarded(&mut h, None);
        assert_eq!(h.get("x-forwarded-for").and_then(|v| v.to_str().ok()), Some("10.0.0.1, 192.0.2.7"));
        assert_eq!(h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()), Some("http"));
        assert_eq!(h.get("x-forwarded-host").and_then(|v| v.to_str().ok()), Some("example.com"));
        let mut h = map(&[("x-forwarded-client-cert", "forged")]);
        forwarded(&mut h, None);
        assert!(h.get("x-forwarded-client-cert").is_none(), "a client's own copy is dropped");
        forwarded(&mut h, Some(&HeaderValue::from_static("CN=client")));
        assert_eq!(h.get("x-forwarded-client-cert").and_then(|v| v.to_str().ok()), Some("CN=client"));
    }

    #[test]
    fn request_id_is_kept_when_sane_and_replaced_otherwise() {
        let mut h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(forwarded(&mut h, None), "abc-123");
        assert_eq!(h.get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
        let mut h = map(&[("x-request-id", "has space")]);
        assert_eq!(forwarded(&mut h, None), NEW);
        assert_eq!(h.get("x-request-id").and_then(|v| v.to_str().ok()), Some(NEW));
    }

    #[test]
    fn request_scan_finds_what_lookups_by_name_would() {
        let h = map(&[
            ("host", "a.example"),
            ("content-type", "application/grpc+proto"),
            ("host", "b.example"),
            ("te", "Trailers"),
            ("upgrade", "websocket"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-request-id", "id-1"),
            ("x-other", "v"),
        ]);
        let s = RequestHeaders::scan(&h);
        assert_eq!(s.host.as_ref(), h.get("host"));
        assert_eq!(s.xff.as_ref(), h.get("x-forwarded-for"));
        assert_eq!(s.request_id.as_ref(), h.get("x-request-id"));
        assert!(s.grpc && s.te_trailers && s.upgrade);
        assert_eq!(s.bytes, h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>());
        let s = RequestHeaders::scan(&map(&[("content-type", "text/plain"), ("te", "gzip")]));
        assert!(!s.grpc && !s.te_trailers && !s.upgrade && s.host.is_none());
    }

    #[test]
    fn forwarding_replaces_exactly_what_it_writes() {
        let h = map(&[("host", "example.com"), ("x-request-id", "keep-me")]);
        let (fwd, id) = Forwarding::new(
            &RequestHeaders::scan(&h),
            &HeaderValue::from_static("192.0.2.7"),
            "https",
            None,
            || RequestId::new(7, 42),
            false,
        );
        assert!(id.is_none(), "no copy of the id unless asked for");
        let mut written = Vec::new();
        fwd.each(|n, _| written.push(n.as_str().to_string()));
        assert_eq!(written, ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);
        for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert"] {
            assert!(fwd.replaces(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!fwd.replaces(&X_REQUEST_ID), "a kept client id is written as the client's header");
        assert!(!fwd.replaces(&header::HOST));
    }
}
