//! Header rules of a proxy (RFC 9110 §7.6.1): hop-by-hop headers go, forwarding headers come.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

static HOP_BY_HOP: [HeaderName; 7] = [
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
///
/// Runs twice per proxied request, so it first scans the names once (standard names compare as
/// enums, nothing is hashed) and removes only what is there.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let mut found = 0u8;
    let mut has_upgrade = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            found |= 1 << i;
        } else if name == header::UPGRADE {
            has_upgrade = true;
        }
    }
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
}

/// The `X-Forwarded-For` value for a client: built once per connection, cloned per request.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Appends the client (`xff`, from [`forwarded_for`]) to `X-Forwarded-For`, sets
/// `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub fn add_forwarded(headers: &mut HeaderMap, xff: &HeaderValue, proto: &'static str) {
    let chained = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {}", xff.to_str().unwrap_or(""))).ok()
        }
        _ => None,
    };
    headers.insert(X_FORWARDED_FOR.clone(), chained.unwrap_or_else(|| xff.clone()));
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
}

/// Keeps a client's `X-Request-Id` when it is short and printable, else sets `fresh()`; returns
/// the id sent upstream.
pub fn request_id(headers: &mut HeaderMap, fresh: impl FnOnce() -> HeaderValue) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic) {
            return v.clone();
        }
    }
    let id = fresh();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut h = map(&[("host", "example.com"), ("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https")]);
        add_forwarded(&mut h, &forwarded_for("192.0.2.7".parse().expect("ip")), "http");
        assert_eq!(h.get("x-forwarded-for").and_then(|v| v.to_str().ok()), Some("10.0.0.1, 192.0.2.7"));
        assert_eq!(h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()), Some("http"));
        assert_eq!(h.get("x-forwarded-host").and_then(|v| v.to_str().ok()), Some("example.com"));
    }

    #[test]
    fn request_id_is_kept_when_sane_and_replaced_otherwise() {
        let mut h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(request_id(&mut h, || HeaderValue::from_static("new")), "abc-123");
        let mut h = map(&[("x-request-id", "has space")]);
        assert_eq!(request_id(&mut h, || HeaderValue::from_static("new")), "new");
        assert_eq!(h.get("x-request-id").and_then(|v| v.to_str().ok()), Some("new"));
    }
}
