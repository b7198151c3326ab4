//! What lbd's HTTP/1.1 client reads of a backend's response head: its framing (RFC 9112
//! §6.3), whether the connection may carry another request, and its header fields, either in a
//! `HeaderMap` or, when nothing in lbd reads or changes them, already encoded for the client's
//! protocol ([`RawFields`]): the backend's own lines for lbd's HTTP/1.1 loop, an HPACK block for
//! the HTTP/2 server, QPACK field lines for the HTTP/3 server. Either way the hop-by-hop fields
//! go: here for the encoded forms, in the proxy (`headers::strip_hop_by_hop`) for the map.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use super::headers::{known_name, list_tokens, put_line};

/// Most response headers.
const MAX_HEADERS: usize = 100;

pub(super) enum Parsed {
    Partial,
    Informational,
    Final {
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        fields: Option<RawFields>,
        framing: Framing,
        keep_alive: bool,
    },
}

/// Whether a response's headers are wanted without a `HeaderMap`, and how they are encoded then
/// (see [`RawFields`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RawHeads {
    /// In the response's map.
    #[default]
    No,
    /// As HTTP/1.1 header lines, for lbd's own HTTP/1.1 server.
    Http1,
    /// As an HPACK block of literals without indexing, for the HTTP/2 server
    /// (`h2::server::encode_literal_field`).
    Http2,
    /// As QPACK field lines without the dynamic table, for the HTTP/3 server
    /// (`h3::server::encode_field_line`).
    Http3,
}

/// A response's headers as the backend sent them, less the hop-by-hop ones and
/// `Transfer-Encoding`, already encoded for the client's protocol: what lbd's HTTP/1.1, HTTP/2
/// and HTTP/3 servers send in place of a `HeaderMap` when no part of lbd reads or changes the
/// response's headers (see `ConnInfo::raw_heads`). The map cost a copy of the head, a `Bytes`
/// per value, a hash per name and their encoding again: about 2.5k of 17.6k instructions per
/// proxied HTTP/1.1 request (callgrind).
#[derive(Debug, Default)]
pub struct RawFields {
    /// `name: value\r\n` lines as the backend wrote them ([`RawHeads::Http1`]), or the same
    /// fields HPACK- or QPACK-encoded with lowercase names ([`RawHeads::Http2`], `Http3`).
    pub lines: Vec<u8>,
    /// Their size as HTTP/2 and HTTP/3 count a field section (name, value and 32 per field).
    pub size: u64,
    /// Whether `lines` hold a `Content-Length` (never for a 101 or 204), a `Date`, an `Alt-Svc`.
    pub has_length: bool,
    pub has_date: bool,
    pub has_alt_svc: bool,
}

/// The response header names the client acts on, told apart by their bytes in any case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Date,
    AltSvc,
    /// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `TE`, `Trailer`, `Upgrade`: the
    /// hop-by-hop ones, besides those above (as `strip_hop_by_hop` removes them).
    HopByHop,
    Other,
}

fn field(name: &[u8]) -> Field {
    let is = |s: &[u8]| token_eq(name, s);
    // The length decides almost always.
    match name.len() {
        2 if is(b"te") => Field::HopByHop,
        4 if is(b"date") => Field::Date,
        7 if is(b"trailer") || is(b"upgrade") => Field::HopByHop,
        7 if is(b"alt-svc") => Field::AltSvc,
        10 if is(b"connection") => Field::Connection,
        10 if is(b"keep-alive") => Field::HopByHop,
        14 if is(b"content-length") => Field::ContentLength,
        16 if is(b"proxy-connection") => Field::HopByHop,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        18 if is(b"proxy-authenticate") => Field::HopByHop,
        _ => Field::Other,
    }
}

/// Whether the token `name` (as httparse passed it) is `lower` in any case, for `lower` of
/// lowercase letters and `-`. Eight bytes at a time with the case bit set: among token
/// characters only an uppercase letter becomes a lowercase one that way, and only `-` stays
/// `-` (a byte-wise `eq_ignore_ascii_case` was 3% of a request's instructions).
fn token_eq(name: &[u8], lower: &[u8]) -> bool {
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name, lower);
    while a.len() >= 8 {
        let (x, y) = (u64::from_le_bytes(word(a)), u64::from_le_bytes(word(b)));
        if x | 0x2020_2020_2020_2020 != y {
            return false;
        }
        (a, b) = (&a[8..], &b[8..]);
    }
    a.iter().zip(b).all(|(x, y)| x | 0x20 == *y)
}

fn word(s: &[u8]) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&s[..8]);
    w
}

/// Appends `name: value` to an HPACK or QPACK field section, the name lowercased (HTTP/2 and
/// HTTP/3 have no other case); returns the field's size.
fn put_encoded(how: RawHeads, block: &mut Vec<u8>, name: &[u8], value: &[u8]) -> u64 {
    let mut lower = [0u8; 64];
    let long;
    let name = match lower.get_mut(..name.len()) {
        Some(to) => {
            to_lower(name, to);
            &*to
        }
        None => {
            long = name.to_ascii_lowercase();
            &long[..]
        }
    };
    if how == RawHeads::Http3 {
        return h3::server::encode_field_line(name, value, block);
    }
    h2::server::encode_literal_field(name, value, block);
    (name.len() + value.len() + 32) as u64
}

/// `name` lowercased into `to` (as long), eight bytes at a time: a header name is ASCII (httparse
/// lets only token characters through), and in a word of ASCII bytes adding 0x3f sets the top bit
/// of each byte from `A` up and adding 0x25 that of each byte above `Z`, with no carry between
/// bytes, so the difference marks the uppercase letters.
fn to_lower(name: &[u8], to: &mut [u8]) {
    let ascii_lower = |w: u64| {
        let upper =
            (w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f) & !w.wrapping_add(0x2525_2525_2525_2525)) & 0x8080_8080_8080_8080;
        w | (upper >> 2)
    };
    let (mut from, mut into) = (name, to);
    while from.len() >= 8 && from[..8].is_ascii() {
        into[..8].copy_from_slice(&ascii_lower(u64::from_le_bytes(word(from))).to_le_bytes());
        (from, into) = (&from[8..], &mut into[8..]);
    }
    for (l, c) in into.iter_mut().zip(from) {
        *l = c.to_ascii_lowercase();
    }
}

/// What a response's framing headers say.
#[derive(Default)]
struct Scan {
    length: Option<u64>,
    chunked: bool,
    te: bool,
    close: bool,
    keep_alive_token: bool,
}

impl Scan {
    fn content_length(&mut self, value: &[u8]) -> Result<(), &'static str> {
        let n = std::str::from_utf8(value).ok().and_then(|s| s.trim().parse::<u64>().ok());
        match (n, self.length) {
            (None, _) => Err("invalid Content-Length"),
            (Some(n), Some(prev)) if n != prev => Err("conflicting Content-Length"),
            (Some(n), _) => {
                self.length = Some(n);
                Ok(())
            }
        }
    }

    /// Re-framed by the client side: only whether it ends in `chunked` matters.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te = true;
        self.chunked =
            value.rsplit(|b| *b == b',').next().is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    }

    /// Whether this `Connection` names headers (other than `close` and `keep-alive`).
    fn connection(&mut self, value: &[u8]) -> bool {
        let mut named = false;
        for t in list_tokens(value) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive_token = true;
            } else if !t.is_empty() {
                named = true;
            }
        }
        named
    }
}

/// Parses a response head at the start of `buf`, consuming it when complete. With `raw`, the
/// headers come back as [`RawFields`] (and an empty map), unless `Connection` names headers to
/// remove, which the proxy does on the map.
pub(super) fn parse_head(buf: &mut BytesMut, head_only: bool, raw: RawHeads) -> Result<Parsed, &'static str> {
    // Uninitialised slots: zeroing 100 of them cost more than parsing a typical head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("malformed response head"),
    };
    let code = res.code.ok_or("malformed response head")?;
    if (100..200).contains(&code) && code != 101 {
        buf.advance(len);
        return Ok(Parsed::Informational);
    }
    let http10 = res.version == Some(0);
    let status = StatusCode::from_u16(code).map_err(|_| "invalid response status")?;
    let mut scan = Scan::default();
    let mut map = HeaderMap::new();
    let mut fields = None;
    if raw != RawHeads::No {
        let mut f = RawFields { lines: Vec::with_capacity(len), ..RawFields::default() };
        let mut named = false;
        for h in res.headers.iter() {
            match field(h.name.as_bytes()) {
                Field::ContentLength => {
                    scan.content_length(h.value)?;
                    // hyper's server drops it from these too.
                    if code == 101 || code == 204 {
                        continue;
                    }
                    f.has_length = true;
                }
                Field::TransferEncoding => {
                    scan.transfer_encoding(h.value);
                    continue;
                }
                Field::Connection => {
                    named |= scan.connection(h.value);
                    continue;
                }
                Field::HopByHop => continue,
                Field::Date => f.has_date = true,
                Field::AltSvc => f.has_alt_svc = true,
                Field::Other => {}
            }
            match raw {
                RawHeads::Http2 | RawHeads::Http3 => {
                    f.size += put_encoded(raw, &mut f.lines, h.name.as_bytes(), h.value)
                }
                _ => put_line(&mut f.lines, h.name.as_bytes(), h.value),
            }
        }
        if named {
            scan = Scan::default();
        } else {
            fields = Some(f);
        }
    }
    if fields.is_none() {
        // The header values share one copy of the head (a few hundred bytes), so the read
        // buffer stays uniquely owned and reusable.
        let head = Bytes::copy_from_slice(&buf[..len]);
        let base = buf.as_ptr() as usize;
        // Room for two more: lbd's `Alt-Svc` and hyper's HTTP/2 `Date` check, since `entry`
        // makes room for one before it looks (a full map was grown and copied twice per response).
        map.reserve(res.headers.len() + 2);
        for h in res.headers.iter() {
            let name = match known_name(h.name.as_bytes()) {
                Some(n) => n,
                None => HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid response header name")?,
            };
            if name == header::CONTENT_LENGTH {
                scan.content_length(h.value)?;
            } else if name == header::TRANSFER_ENCODING {
                scan.transfer_encoding(h.value);
                continue;
            } else if name == header::CONNECTION {
                // Dropped here unless it names other headers, which the proxy then removes
                // (with the other hop-by-hop ones).
                if !scan.connection(h.value) {
                    continue;
                }
            } else if name.as_str() == "keep-alive" {
                continue;
            }
            let at = h.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
                .map_err(|_| "invalid response header value")?;
            map.append(name, value);
        }
    }
    let Scan { length, chunked, te, close, keep_alive_token } = scan;
    buf.advance(len);
    let framing = if head_only || code == 101 || code == 204 || code == 304 {
        Framing::Length(0)
    } else if te {
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    // Both Transfer-Encoding and Content-Length: the message is read by the former, and the
    // connection is not trusted with another (RFC 9112 §6.3).
    let both = te && length.is_some();
    // After a 101 the connection speaks another protocol: it is a tunnel or nothing, never
    // the pool's again.
    let keep_alive = !close && !both && code != 101 && framing != Framing::Close && (!http10 || keep_alive_token);
    let version = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    Ok(Parsed::Final { status, version, headers: map, fields, framing, keep_alive })
}

/// How the response body ends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// At the close of the connection.
    Close,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading the trailer section.
    Trailers,
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn parse(raw: &[u8], head_only: bool) -> (Response<()>, Framing, bool, BytesMut) {
        let mut buf = BytesMut::from(raw);
        match parse_head(&mut buf, head_only, RawHeads::No) {
            Ok(Parsed::Final { status, version, headers, framing, keep_alive, .. }) => {
                let mut resp = Response::new(());
                *resp.status_mut() = status;
                *resp.version_mut() = version;
                *resp.headers_mut() = headers;
                (resp, framing, keep_alive, buf)
            }
            Ok(Parsed::Partial) => panic!("partial"),
            Ok(Parsed::Informational) => panic!("informational"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn other_spellings_of_the_framing_headers_still_frame_the_response() {
        let (r, f, _, _) = parse(b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nX-Served-By: a\r\n\r\nok", false);
        assert_eq!(f, Framing::Length(2));
        assert_eq!(r.headers().get("x-served-by").map(HeaderValue::as_bytes), Some(&b"a"[..]));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let (r, f, ka, rest) =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nhello", false);
        assert_eq!((r.status(), f, ka), (StatusCode::OK, Framing::Length(5), true));
        assert_eq!(&rest[..], b"hello");
        assert!(r.headers().get("connection").is_none(), "keep-alive-only Connection is dropped");
        assert_eq!(r.headers().get("x-a").map(HeaderValue::as_bytes), Some(&b"b"[..]));
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Chunked(Chunk::Size), true));
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Close, false), "no length: read to close");
        let (_, f, ka, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!((f, ka), (Framing::Length(0), true), "a HEAD response has no body");
        let (_, f, _, _) = parse(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false);
        assert_eq!(f, Framing::Length(0));
        let (_, _, ka, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false);
        assert!(!ka);
        let (_, _, ka, _) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert!(!ka, "HTTP/1.0 closes unless it says keep-alive");
        let (_, f, ka, _) = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false);
        assert_eq!((f, ka), (Framing::Length(0), false), "a switched connection never returns to the pool");
        let (_, _, ka, _) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false);
        assert!(!ka, "TE with CL: not trusted with another request");
        let (r, _, _, _) =
            parse(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nContent-Length: 0\r\n\r\n", false);
        assert!(r.headers().get("connection").is_some(), "kept so the proxy removes the headers it names");
    }

    fn raw(raw: &[u8]) -> (Option<RawFields>, HeaderMap, Framing, bool) {
        match parse_head(&mut BytesMut::from(raw), false, RawHeads::Http1) {
            Ok(Parsed::Final { fields, headers, framing, keep_alive, .. }) => (fields, headers, framing, keep_alive),
            _ => panic!("not a final head: {}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn unparsed_headers_are_the_backends_lines_less_hop_by_hop_ones() {
        let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\
            Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
            Proxy-Connection: x\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\n\
            X-Multi: a\r\nx-multi:  b\r\nalt-svc: h3=\":443\"\r\n\r\nhello";
        let (f, map, framing, ka) = raw(head);
        let f = f.expect("asked for unparsed headers");
        assert_eq!(
            String::from_utf8_lossy(&f.lines),
            "Server: nginx\r\nDate: Wed, 02 Dec 2026 01:00:00 GMT\r\nContent-Type: text/plain\r\n\
             Content-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\nalt-svc: h3=\":443\"\r\n"
        );
        assert!(f.has_length && f.has_date && f.has_alt_svc);
        assert!(map.is_empty());
        assert_eq!((framing, ka), (Framing::Length(5), true), "framed as the map's path frames it");
        // The same head through the map keeps what the proxy's hop-by-hop pass then removes.
        let (r, framing, _, _) = parse(head, false);
        assert_eq!(framing, Framing::Length(5));
        assert_eq!(r.headers().get_all("x-multi").iter().count(), 2);
        assert!(r.headers().contains_key("proxy-connection") && r.headers().contains_key("upgrade"));

        let (f, _, framing, ka) = raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let f = f.expect("unparsed");
        assert!(f.lines.is_empty() && !f.has_length && !f.has_date, "no length on a 204");
        assert_eq!((framing, ka), (Framing::Length(0), false));
        let (f, _, framing, _) = raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n");
        assert_eq!(f.map(|f| f.lines), Some(b"X: y\r\n".to_vec()));
        assert_eq!(framing, Framing::Chunked(Chunk::Size));

        // `Connection` naming a header: the map, so that the proxy removes it.
        let (f, map, _, _) = raw(b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n");
        assert!(f.is_none());
        assert!(map.contains_key("connection") && map.contains_key("x-hop"));
    }

    #[test]
    fn the_encoded_forms_drop_what_the_proxy_strips_from_the_map() {
        let encoded = |head: &str, how| match parse_head(&mut BytesMut::from(head.as_bytes()), false, how) {
            Ok(Parsed::Final { fields: Some(f), .. }) => f.lines,
            _ => panic!("{how:?}: {head:?} not parsed into fields"),
        };
        let without = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Kept: k\r\n\r\n";
        // `strip_hop_by_hop`'s list and `Upgrade` (kept only for an upgrade, which never takes
        // this path): a name added there must be dropped here too.
        let names = crate::http::headers::HOP_BY_HOP.iter().map(|n| n.as_str()).chain(["upgrade"]);
        for name in names {
            // A `Connection` that names nothing else (one that does takes the map); chunked
            // framing dropped with its header.
            let value = match name {
                "connection" => "keep-alive",
                "transfer-encoding" => "identity",
                _ => "1",
            };
            let with = without.replacen("X-Kept", &format!("{name}: {value}\r\nX-Kept"), 1);
            for how in [RawHeads::Http1, RawHeads::Http2, RawHeads::Http3] {
                assert_eq!(encoded(&with, how), encoded(without, how), "{how:?}: {name} passed on");
            }
        }
    }

    #[test]
    fn header_names_are_told_apart_as_eq_ignore_ascii_case_would() {
        // RFC 9110 tchar: what httparse lets through as a header name.
        let tchars: Vec<u8> =
            (0u8..128).filter(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c)).collect();
        for &c in &tchars {
            for p in b'a'..=b'z' {
                assert_eq!(token_eq(&[c], &[p]), c.eq_ignore_ascii_case(&p), "{c} vs {p}");
            }
            assert_eq!(token_eq(&[c], b"-"), c == b'-', "{c}");
        }
        for name in ["Content-Length", "CONTENT-LENGTH", "content-length", "Transfer-Encoding", "Proxy-Authenticate"] {
            let lower = name.to_ascii_lowercase();
            assert!(token_eq(name.as_bytes(), lower.as_bytes()), "{name}");
        }
        for (name, lower) in
            [("Content_Length", "content-length"), ("Content-Lengtg", "content-length"), ("Date", "dat")]
        {
            assert!(!token_eq(name.as_bytes(), lower.as_bytes()), "{name}");
        }
        assert!(field(b"PROXY-CONNECTION") == Field::HopByHop && field(b"Keep-Alive") == Field::HopByHop);
        assert!(field(b"Content-Type") == Field::Other && field(b"ETag") == Field::Other);
    }

    #[test]
    fn names_are_lowercased_as_to_ascii_lowercase_does() {
        let all: Vec<u8> = (0u8..=255).collect();
        for chunk in all.chunks(13).chain([&b"Content-Type"[..], b"X-AbCdEfGhIjKlMnOpQrStUvWxYz-@[`{"]) {
            let mut to = vec![0u8; chunk.len()];
            to_lower(chunk, &mut to);
            assert_eq!(to, chunk.to_ascii_lowercase(), "{chunk:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused_and_1xx_skipped() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
        ] {
            assert!(
                parse_head(&mut BytesMut::from(raw), false, RawHeads::No).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..]);
        assert!(matches!(parse_head(&mut buf, false, RawHeads::No), Ok(Parsed::Informational)));
        assert!(matches!(parse_head(&mut buf, false, RawHeads::No), Ok(Parsed::Final { .. })));
        assert!(buf.is_empty());
        assert!(matches!(
            parse_head(&mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nX"[..]), false, RawHeads::No),
            Ok(Parsed::Partial)
        ));
    }
}
