//! Listener limits (idle and header timeouts, max connections), IPv6 binds and the access log.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn listener_config(admin: u16, port: u16, backend: &str, listener_extra: &str, top_extra: &str) -> String {
    format!(
        "workers = 1\n{top_extra}\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\
         [[listeners]]\nname = \"web\"\nbind = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]\n{listener_extra}\n\
         [[listeners.routes]]\ncluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [\"{backend}\"]\n"
    )
}

/// One read, retried when interrupted. On Linux a socket read with a receive timeout fails with
/// EINTR instead of restarting when its wait is interrupted (signal(7)), which happens on this
/// loaded machine without any handler of ours; `Read`'s contract is to retry it.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Reads until the peer closes (EOF or reset), for at most `limit`; whether it closed.
fn read_until_close(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        let _ = s.set_read_timeout(Some(left));
        match read_some(s, &mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset is a close too: the server shut a socket holding unread request bytes.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            Err(e) => return (format!("{} (read failed: {e:?})", String::from_utf8_lossy(&out)), false),
        }
    }
}

#[test]
fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start(
        "idle",
        admin,
        &listener_config(admin, port, &a.addr(), "idle_timeout = \"1s\"", "[access_log]\npath = \"off\""),
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 1024];
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let n = read_some(&mut s, &mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(5));
    assert!(closed, "idle connection was not closed");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500), "closed after {waited:?}");
    // A slow request is in flight, not idle: it outlives the idle timeout.
    let (body, status) = get(port, "/slow?ms=2000", &[]);
    assert_eq!((body.as_str(), status), ("a\n", 200));
}

#[test]
fn a_client_that_does_not_finish_its_head_is_cut_off() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start(
        "hdrtimeout",
        admin,
        &listener_config(admin, port, &a.addr(), "header_read_timeout = \"1s\"", "[access_log]\npath = \"off\""),
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow:").expect("write");
    let t = Instant::now();
    let (resp, closed) = read_until_close(&mut s, Duration::from_secs(5));
    assert!(closed, "slow-header connection still open: {resp:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    // A client that sends nothing at all is closed after the same timeout.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let t = Instant::now();
    let (resp, closed) = read_until_close(&mut silent, Duration::from_secs(5));
    assert!(closed && resp.is_empty(), "silent connection: {resp:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

/// Between requests a keep-alive connection waits `idle_timeout`; `header_read_timeout` runs
/// from the next request's first byte (HAProxy's `timeout http-keep-alive` then
/// `timeout http-request`). lbd used to time the wait for the next request with the header
/// timeout, so an idle keep-alive connection was closed after 1 s here.
#[test]
fn a_keep_alive_connection_waits_idle_timeout_for_its_next_request_then_header_read_timeout_for_its_head() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start(
        "keepalive-wait",
        admin,
        &listener_config(
            admin,
            port,
            &a.addr(),
            "header_read_timeout = \"1s\"\nidle_timeout = \"4s\"",
            "[access_log]\npath = \"off\"",
        ),
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 1024];
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let n = read_some(&mut s, &mut buf).expect("first response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Twice the header timeout without a byte: still open, and it serves the next request.
    std::thread::sleep(Duration::from_millis(2000));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("second write");
    let n = read_some(&mut s, &mut buf).expect("second response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    // A head that starts and does not finish is cut off after the header timeout, even while
    // its bytes keep trickling in.
    let t = Instant::now();
    for b in b"GET / HTTP/1.1\r\nX-Slow: " {
        if t.elapsed() > Duration::from_millis(3500) {
            break;
        }
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let (resp, closed) = read_until_close(&mut s, Duration::from_secs(5));
    assert!(closed && resp.is_empty(), "slow head: {resp:?}");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "slow head cut after {took:?}");
    // An idle keep-alive connection is closed after the idle timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = idle.set_read_timeout(Some(Duration::from_secs(5)));
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let n = read_some(&mut idle, &mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let (_, closed) = read_until_close(&mut idle, Duration::from_secs(8));
    assert!(closed, "idle connection was not closed");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(3900) && took < Duration::from_millis(6000), "idle closed after {took:?}");
}

#[test]
fn connections_over_max_connections_are_refused_and_counted() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let lbd = Lbd::start(
        "maxconn",
        admin,
        &listener_config(admin, port, &a.addr(), "max_connections = 2", "[access_log]\npath = \"off\""),
    );
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    assert!(wait_until(Duration::from_secs(3), || lbd.metric("lbd_downstream_connections_active", &[]) == 2.0));
    let mut third = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (resp, closed) = read_until_close(&mut third, Duration::from_secs(3));
    assert!(closed && resp.is_empty(), "third connection served: {resp:?}");
    assert_eq!(lbd.metric("lbd_downstream_connections_refused_total", &[]), 1.0);
    drop(held);
    assert!(wait_until(Duration::from_secs(3), || get(port, "/", &[]).1 == 200));
}

#[test]
fn ipv6_and_ipv4_binds_both_serve() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start("v6", admin, &listener_config(admin, port, &a.addr(), "", "[access_log]\npath = \"off\""));
    let (body, ok) = curl(&["-s", "-g", &format!("http://[::1]:{port}/headers")]);
    assert!(ok, "IPv6 request failed");
    assert!(body.contains("\"x-forwarded-for\": \"::1\""), "{body}");
    assert_eq!(get(port, "/", &[]), ("a\n".to_string(), 200));
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let dir = scratch("accesslog");
    let log = dir.join("access.log");
    let top = format!("[access_log]\npath = \"{}\"\nformat = \"json\"", log.display());
    let _lbd = Lbd::start("accesslog", admin, &listener_config(admin, port, &a.addr(), "", &top));
    let (_, ok) = curl(&["-s", "-H", "X-Request-Id: trace-7", &format!("http://127.0.0.1:{port}/p/[1-5]?q=1")]);
    assert!(ok);
    assert!(
        wait_until(Duration::from_secs(3), || std::fs::read_to_string(&log).unwrap_or_default().lines().count() == 5)
    );
    let text = std::fs::read_to_string(&log).expect("log");
    for (i, line) in text.lines().enumerate() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        for field in [
            format!("\"path\":\"/p/{}?q=1\"", i + 1),
            "\"status\":200".to_string(),
            "\"listener\":\"web\"".to_string(),
            "\"cluster\":\"c\"".to_string(),
            format!("\"upstream\":\"{}\"", a.addr()),
            "\"request_id\":\"trace-7\"".to_string(),
            "\"protocol\":\"HTTP/1.1\"".to_string(),
        ] {
            assert!(line.contains(&field), "missing {field} in {line}");
        }
    }
}

/// Connections that have not sent a byte wait without a task (the waiting room): one that
/// speaks after a pause is served, one that leaves silently is forgotten, and the gauges agree.
#[test]
fn connections_that_speak_late_are_served_and_silent_ones_are_forgotten() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let lbd = Lbd::start("late", admin, &listener_config(admin, port, &a.addr(), "", "[access_log]\npath = \"off\""));
    let quiet: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    let mut late = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    assert!(wait_until(Duration::from_secs(3), || lbd.metric("lbd_downstream_connections_active", &[]) == 51.0));
    std::thread::sleep(Duration::from_millis(500));
    late.write_all(b"GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let (resp, closed) = read_until_close(&mut late, Duration::from_secs(5));
    assert!(closed && resp.starts_with("HTTP/1.1 200") && resp.ends_with("a\n"), "{resp}");
    drop(quiet);
    assert!(
        wait_until(Duration::from_secs(3), || lbd.metric("lbd_downstream_connections_active", &[]) == 0.0),
        "silent connections that closed are no longer counted"
    );
}
