//! PROXY protocol (HAProxy's v1 text and v2 binary): reading the header a trusted L4 balancer
//! (an NLB, HAProxy) puts in front of a connection, and writing one to backends. Parsing and
//! building are the `ppp` crate's; this module bounds the read in time and size.

use std::net::SocketAddr;
use std::time::Duration;

use lb_core::config::ProxyProtocolVersion;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest header accepted: v1 is at most 107 bytes; v2 with the TLVs load balancers send fits.
pub const MAX_HEADER: usize = 536;

/// Reads and consumes the PROXY header at the start of `stream` within `timeout`. Returns the
/// client address it carries (`None` for `LOCAL`/`UNKNOWN`, e.g. a balancer's health check).
pub async fn read_header(stream: &mut TcpStream, timeout: Duration) -> Result<Option<SocketAddr>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; MAX_HEADER];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) => return Err("closed before the PROXY header".into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no complete PROXY header in time".into()),
        };
        let parsed = HeaderResult::parse(&buf[..n]);
        if parsed.is_incomplete() {
            if n == buf.len() {
                return Err(format!("PROXY header longer than {MAX_HEADER} bytes"));
            }
            // Peek shows what has arrived; wait briefly for the rest.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let (len, client) = match parsed {
            HeaderResult::V1(Ok(h)) => (
                h.header.len(),
                match h.addresses {
                    v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v1::Addresses::Unknown => None,
                },
            ),
            HeaderResult::V2(Ok(h)) => (
                h.len(),
                match h.addresses {
                    v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                    v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
                },
            ),
            HeaderResult::V1(Err(e)) => return Err(format!("bad PROXY v1 header: {e}")),
            HeaderResult::V2(Err(e)) => return Err(format!("bad PROXY v2 header: {e}")),
        };
        let mut consumed = vec![0u8; len];
        stream.read_exact(&mut consumed).await.map_err(|e| e.to_string())?;
        return Ok(client);
    }
}

/// The header lbd sends upstream: `client` as source, `dest` (the address the client reached
/// lbd on) as destination.
pub fn header(version: ProxyProtocolVersion, client: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    // Both ends must be the same family; map IPv4 into IPv6 when they differ.
    let six = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    };
    let (client, dest) = if client.is_ipv4() == dest.is_ipv4() { (client, dest) } else { (six(client), six(dest)) };
    match version {
        ProxyProtocolVersion::V1 => v1::Addresses::from((client, dest)).to_string().into_bytes(),
        ProxyProtocolVersion::V2 => {
            v2::Builder::with_addresses(v2::Version::Two | v2::Command::Proxy, v2::Protocol::Stream, (client, dest))
                .build()
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_the_parser() {
        let (c, d) = ("203.0.113.7:5555".parse().expect("addr"), "127.0.0.1:443".parse().expect("addr"));
        let v1 = header(ProxyProtocolVersion::V1, c, d);
        assert_eq!(std::str::from_utf8(&v1).expect("text"), "PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n");
        let v2 = header(ProxyProtocolVersion::V2, c, d);
        match HeaderResult::parse(&v2) {
            HeaderResult::V2(Ok(h)) => {
                assert_eq!(h.len(), v2.len());
                assert!(
                    matches!(h.addresses, v2::Addresses::IPv4(a) if a.source_address == std::net::Ipv4Addr::new(203, 0, 113, 7) && a.source_port == 5555)
                );
            }
            other => panic!("{other:?}"),
        }
        let mixed = header(ProxyProtocolVersion::V1, "[2001:db8::1]:9".parse().expect("addr"), d);
        assert!(std::str::from_utf8(&mixed)
            .expect("text")
            .starts_with("PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 9 443"));
    }
}
