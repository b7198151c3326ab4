//! Reads the server name (SNI) from the first bytes of a TLS connection without terminating it,
//! for TLS passthrough. Sans-IO: give it what has arrived; it says whether it needs more.
//!
//! Hand-written rather than pulled in: it runs on every passthrough connection, reads only the
//! record and handshake headers and the server_name extension, and must not allocate or accept
//! anything it cannot bound.

/// What the first bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sni {
    /// A complete ClientHello, with its server name (lowercase) if it sent one.
    Name(Option<String>),
    /// Not enough bytes yet.
    Incomplete,
    /// Not a TLS ClientHello (or a malformed one).
    NotTls,
}

/// The largest ClientHello accepted (a record is at most 16 KiB).
pub const MAX_CLIENT_HELLO: usize = 16 * 1024 + 5;

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(*b.get(i)?) << 8 | usize::from(*b.get(i + 1)?))
}

/// Parses the ClientHello at the start of `buf`.
pub fn server_name(buf: &[u8]) -> Sni {
    // TLS record: type 22 (handshake), version 3.x, length.
    if buf.is_empty() {
        return Sni::Incomplete;
    }
    if buf[0] != 22 || buf.get(1).is_some_and(|v| *v != 3) {
        return Sni::NotTls;
    }
    let Some(len) = u16_at(buf, 3) else { return Sni::Incomplete };
    if len > 16 * 1024 {
        return Sni::NotTls;
    }
    let Some(record) = buf.get(5..5 + len) else { return Sni::Incomplete };
    parse_hello(record).map_or(Sni::NotTls, Sni::Name)
}

fn parse_hello(h: &[u8]) -> Option<Option<String>> {
    // Handshake header: type 1 (ClientHello), 24-bit length. A ClientHello split over several
    // records is not handled (no client does that for a first flight under 16 KiB).
    if *h.first()? != 1 {
        return None;
    }
    let body_len = usize::from(*h.get(1)?) << 16 | u16_at(h, 2)?;
    let body = h.get(4..4 + body_len)?;
    // version (2) + random (32), then session id, cipher suites, compression methods.
    let mut i = 34;
    i += 1 + usize::from(*body.get(i)?);
    i += 2 + u16_at(body, i)?;
    i += 1 + usize::from(*body.get(i)?);
    if i == body.len() {
        return Some(None); // no extensions
    }
    let ext_end = i + 2 + u16_at(body, i)?;
    let exts = body.get(i + 2..ext_end)?;
    let mut j = 0;
    while j + 4 <= exts.len() {
        let (kind, len) = (u16_at(exts, j)?, u16_at(exts, j + 2)?);
        let data = exts.get(j + 4..j + 4 + len)?;
        if kind == 0 {
            // server_name: list length, then (type 0 = host_name, length, name).
            let list = data.get(2..2 + u16_at(data, 0)?)?;
            let mut k = 0;
            while k + 3 <= list.len() {
                let n = u16_at(list, k + 1)?;
                let name = list.get(k + 3..k + 3 + n)?;
                if list[k] == 0 {
                    let name = std::str::from_utf8(name).ok()?;
                    return Some(Some(name.to_ascii_lowercase()));
                }
                k += 3 + n;
            }
            return Some(None);
        }
        j += 4 + len;
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The first flight a real rustls client sends for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let cfg = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), server).expect("client");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write");
        out
    }

    #[test]
    fn reads_sni_from_a_real_client_hello() {
        let hello = client_hello("Api.Example.COM");
        assert_eq!(server_name(&hello), Sni::Name(Some("api.example.com".into())));
        // Every prefix is incomplete, never misread.
        for cut in 0..hello.len() {
            assert_eq!(server_name(&hello[..cut]), Sni::Incomplete, "cut at {cut}");
        }
        // An IP address is not sent as SNI.
        assert_eq!(server_name(&client_hello("127.0.0.1")), Sni::Name(None));
    }

    #[test]
    fn other_protocols_are_not_tls() {
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n\r\n"), Sni::NotTls);
        assert_eq!(server_name(&[22, 3, 1, 0xff, 0xff]), Sni::NotTls, "record over 16 KiB");
        let mut bad = client_hello("a.test");
        bad[5] = 2; // ServerHello, not ClientHello
        assert_eq!(server_name(&bad), Sni::NotTls);
    }
}
