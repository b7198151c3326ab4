//! HTTP/1.1 proxying through the real lbd binary, with real origins and curl.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

#[test]
fn routes_by_host_and_path() {
    let (a, b, c) = (Backend::start("a"), Backend::start("b"), Backend::start("c"));
    let (admin, port) = (free_port(), free_port());
    let cfg = format!(
        r#"workers = 2
[admin]
bind = "127.0.0.1:{admin}"
[access_log]
path = "off"
[[listeners]]
name = "web"
bind = "127.0.0.1:{port}"
  [[listeners.routes]]
  host = "api.test"
  path_prefix = "/v1/"
  cluster = "a"
  [[listeners.routes]]
  path = "/exact"
  cluster = "a"
  [[listeners.routes]]
  host = "*.test"
  cluster = "b"
  [[listeners.routes]]
  cluster = "c"
[[clusters]]
name = "a"
endpoints = ["{}"]
[[clusters]]
name = "b"
endpoints = ["{}"]
[[clusters]]
name = "c"
endpoints = ["{}"]
"#,
        a.addr(),
        b.addr(),
        c.addr()
    );
    let lbd = Lbd::start("routes", admin, &cfg);
    let cases = [
        ("api.test", "/v1/users", "a"),
        ("API.TEST:8080", "/v1/x", "a"),
        ("api.test", "/v2/users", "b"),
        ("www.test", "/v1/users", "b"),
        ("deep.www.test", "/", "b"),
        ("other.example", "/exact", "a"),
        ("other.example", "/exact/more", "c"),
        ("test", "/v1/users", "c"),
    ];
    for (host, path, want) in cases {
        let (body, status) = get(port, path, &[&format!("Host: {host}")]);
        assert_eq!((body.trim(), status), (want, 200), "Host: {host} {path}");
    }
    assert!(lbd.metric("lbd_requests_total", &["route=\"web/0\"", "class=\"2xx\""]) >= 2.0);
}

#[test]
fn weighted_round_robin_splits_within_tolerance() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let (admin, port) = (free_port(), free_port());
    let cfg = simple_config(admin, port, &[], "").replace(
        "endpoints = []",
        &format!(
            "endpoints = [{{ address = \"{}\", weight = 3 }}, {{ address = \"{}\", weight = 1 }}]",
            a.addr(),
            b.addr()
        ),
    );
    let _lbd = Lbd::start("wrr", admin, &cfg);
    // 400 requests, each on a new connection, so both workers (each with its own balancer) serve.
    let (out, ok) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-400]")]);
    assert!(ok);
    let t = tally(&out);
    let (na, nb) = (t.get("a").copied().unwrap_or(0), t.get("b").copied().unwrap_or(0));
    assert_eq!(na + nb, 400, "{t:?}");
    assert!((290..=310).contains(&na), "3:1 split expected, got {t:?}");
}

#[test]
fn least_request_sends_new_requests_to_the_idle_endpoint() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let (admin, port) = (free_port(), free_port());
    let cfg = simple_config(admin, port, &[a.addr(), b.addr()], "policy = \"least_request\"")
        .replace("workers = 2", "workers = 1");
    let _lbd = Lbd::start("least", admin, &cfg);
    let slow = Command::new("curl")
        .args(["-s", "--max-time", "20", &format!("http://127.0.0.1:{port}/slow?ms=2500")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(500));
    let (out, ok) = curl(&["-s", &format!("http://127.0.0.1:{port}/fast[1-20]")]);
    assert!(ok);
    let busy = String::from_utf8_lossy(&slow.wait_with_output().expect("slow curl").stdout).trim().to_string();
    let t = tally(&out);
    assert!(busy == "a" || busy == "b", "slow request answered: {busy:?}");
    assert_eq!(t.len(), 1, "all quick requests should avoid the busy endpoint: {t:?}");
    assert!(!t.contains_key(&busy), "busy endpoint {busy} got quick requests: {t:?}");
}

#[test]
fn hash_policies_keep_each_key_on_one_endpoint() {
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::start(n)).collect();
    let addrs: Vec<String> = backends.iter().map(Backend::addr).collect();
    for (policy, hash_on, header) in [
        ("ring_hash", "header:x-user", "X-User"),
        ("maglev", "header:x-user", "X-User"),
        ("ring_hash", "cookie:sid", "Cookie"),
    ] {
        let (admin, port) = (free_port(), free_port());
        let cfg = simple_config(admin, port, &addrs, &format!("policy = \"{policy}\"\nhash_on = \"{hash_on}\""));
        let _lbd = Lbd::start("hash", admin, &cfg);
        let mut seen = std::collections::BTreeSet::new();
        for user in 0..12 {
            let value = if header == "Cookie" {
                format!("Cookie: theme=dark; sid=user{user}")
            } else {
                format!("{header}: user{user}")
            };
            // Separate connections, so different workers answer: the mapping must agree across workers.
            let (out, ok) =
                curl(&["-s", "-H", "Connection: close", "-H", &value, &format!("http://127.0.0.1:{port}/[1-6]")]);
            assert!(ok);
            let t = tally(&out);
            assert_eq!(t.len(), 1, "{policy}/{hash_on}: user{user} reached {t:?}");
            seen.extend(t.into_keys());
        }
        assert!(seen.len() >= 2, "{policy}/{hash_on}: 12 keys all on {seen:?}");
    }
    // source_ip: every request from 127.0.0.1 lands on one endpoint.
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start(
        "hash-ip",
        admin,
        &simple_config(admin, port, &addrs, "policy = \"maglev\"\nhash_on = \"source_ip\""),
    );
    let (out, _) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-20]")]);
    assert_eq!(tally(&out).len(), 1, "{out}");
}

#[test]
fn malformed_requests_get_4xx_and_the_connection_closes() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start("malformed", admin, &simple_config(admin, port, &[a.addr()], ""));
    let resp = http_raw(port, "GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    let resp = http_raw(port, "NOT-HTTP\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    let resp = http_raw(port, &big);
    assert!(resp.starts_with("HTTP/1.1 431"), "{:?}", &resp[..resp.len().min(80)]);
    // http_raw returned, so the server closed each connection; a good request still works.
    assert_eq!(get(port, "/", &[]), ("a\n".to_string(), 200));
}

#[test]
fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start("headers", admin, &simple_config(admin, port, &[a.addr()], ""));
    let (body, status) = get(
        port,
        "/headers",
        &[
            "Host: shop.example",
            "X-Forwarded-For: 203.0.113.9",
            "Connection: keep-alive, X-Secret",
            "X-Secret: 1",
            "X-Kept: yes",
        ],
    );
    assert_eq!(status, 200);
    let has = |k: &str, v: &str| body.contains(&format!("\"{k}\": \"{v}\""));
    assert!(has("x-forwarded-for", "203.0.113.9, 127.0.0.1"), "{body}");
    assert!(has("x-forwarded-proto", "http"), "{body}");
    assert!(has("x-forwarded-host", "shop.example"), "{body}");
    assert!(has("host", "shop.example"), "{body}");
    assert!(has("x-kept", "yes"), "{body}");
    assert!(!body.contains("x-secret"), "Connection-named header leaked: {body}");
    assert!(body.contains("\"x-request-id\": \""), "{body}");
    let (body, _) = get(port, "/headers", &["X-Request-Id: trace-42"]);
    assert!(body.contains("\"x-request-id\": \"trace-42\""), "{body}");
    // Headers that `Connection` names are the client's hop only, even these: the backend gets
    // lbd's own values, not the client's appended to or kept.
    let (body, _) = get(
        port,
        "/headers",
        &["Connection: X-Forwarded-For, X-Request-Id", "X-Forwarded-For: 203.0.113.9", "X-Request-Id: trace-43"],
    );
    assert!(body.contains("\"x-forwarded-for\": \"127.0.0.1\""), "{body}");
    assert!(!body.contains("203.0.113.9") && !body.contains("trace-43"), "{body}");
    assert!(body.contains("\"x-request-id\": \""), "{body}");
}

#[test]
fn upstream_failures_map_to_clean_statuses_and_connect_failures_are_retried() {
    let a = Backend::start("a");
    let dead = format!("127.0.0.1:{}", free_port());
    let (admin, port) = (free_port(), free_port());
    let cfg = format!(
        r#"workers = 1
[admin]
bind = "127.0.0.1:{admin}"
[access_log]
path = "off"
[[listeners]]
name = "web"
bind = "127.0.0.1:{port}"
  [[listeners.routes]]
  path_prefix = "/dead"
  cluster = "dead"
  [[listeners.routes]]
  path_prefix = "/slow"
  cluster = "slow"
  [[listeners.routes]]
  path_prefix = "/mixed"
  cluster = "mixed"
[[clusters]]
name = "dead"
endpoints = ["{dead}"]
retries = 1
[[clusters]]
name = "slow"
endpoints = ["{a}"]
request_timeout = "300ms"
[[clusters]]
name = "mixed"
endpoints = ["{dead}", "{a}"]
  [clusters.outlier]
  consecutive_failures = 0
"#,
        a = a.addr()
    );
    let lbd = Lbd::start("errors", admin, &cfg);
    let (body, status) = get(port, "/dead", &[]);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream connect failed"), "{body}");
    let (body, status) = get(port, "/slow?ms=2000", &[]);
    assert_eq!(status, 504, "{body}");
    // One keep-alive connection reuses its request timer: a timeout, two answers in time (the
    // second slower than the first), then a timeout again, each at the right moment.
    let slow = |ms: u32| format!("http://127.0.0.1:{port}/slow?ms={ms}");
    let (out, ok) = curl(&[
        "-s",
        "-w",
        "%{http_code} %{num_connects} %{time_total}\n",
        "-o",
        "/dev/null",
        &slow(2000),
        "-o",
        "/dev/null",
        &slow(0),
        "-o",
        "/dev/null",
        &slow(150),
        "-o",
        "/dev/null",
        &slow(2000),
    ]);
    assert!(ok, "{out}");
    let rows: Vec<(u16, u32, f64)> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let codes: Vec<(u16, u32)> = rows.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(codes, [(504, 1), (200, 0), (200, 0), (504, 0)], "{out}");
    for t in [rows[0].2, rows[3].2] {
        assert!((0.25..1.5).contains(&t), "timed out after {t} s, not ~0.3 s: {out}");
    }
    let (_, status) = get(port, "/nowhere", &[]);
    assert_eq!(status, 404);
    // Half the picks hit the dead endpoint; every request still succeeds through a retry.
    let (out, ok) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/mixed[1-20]")]);
    assert!(ok);
    assert_eq!(tally(&out).get("a"), Some(&20), "{out}");
    assert!(lbd.metric("lbd_upstream_retries_total", &[]) >= 5.0, "{}", lbd.metrics());
    assert!(lbd.metric("lbd_upstream_connect_failures_total", &[]) >= 5.0);
}

#[test]
fn bodies_stream_both_ways_intact_and_connections_are_reused() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let lbd = Lbd::start("stream", admin, &simple_config(admin, port, &[a.addr()], ""));
    // 32 MiB download: compare with the pattern the backend sends.
    let n = 32 << 20;
    let out = Command::new("curl")
        .args(["-s", "--max-time", "60", &format!("http://127.0.0.1:{port}/big?bytes={n}")])
        .output()
        .expect("curl");
    assert_eq!(out.stdout.len(), n);
    assert!(out.stdout.iter().enumerate().all(|(i, b)| usize::from(*b) == i % 251), "download corrupted");
    // 16 MiB upload, streamed.
    let dir = scratch("upload");
    let file = dir.join("up.bin");
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let (body, status) = curl_status(&[
        "-s",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://127.0.0.1:{port}/upload"),
    ]);
    assert_eq!(status, 200);
    assert!(body.contains(&format!("\"bytes\": {}", data.len())), "{body}");
    // Keep-alive to the origin: many requests, few upstream connections.
    let (_, ok) = curl(&["-s", &format!("http://127.0.0.1:{port}/[1-50]")]);
    assert!(ok);
    assert!(lbd.metric("lbd_upstream_requests_reused_total", &[]) >= 40.0, "{}", lbd.metrics());
}

/// A burst above `pool_size` keeps its upstream connections while the load reuses them (a second
/// burst opens none), and the surplus is closed, down to `pool_size`, once unused for a second.
#[test]
fn upstream_connections_a_burst_needed_stay_pooled_while_reused_then_shrink_to_pool_size() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let cfg = simple_config(admin, port, &[a.addr()], "pool_size = 2").replace("workers = 2", "workers = 1");
    let lbd = Lbd::start("pool-burst", admin, &cfg);
    let urls: Vec<String> = (0..6).map(|i| format!("http://127.0.0.1:{port}/slow?ms=400&i={i}")).collect();
    let burst = || {
        let mut args = vec!["-s", "--parallel", "--parallel-immediate", "--parallel-max", "6", "--max-time", "20"];
        args.extend(urls.iter().map(String::as_str));
        let (out, ok) = curl(&args);
        assert!(ok, "{out}");
        assert_eq!(tally(&out).get("a"), Some(&6), "{out}");
    };
    burst();
    assert_eq!(lbd.metric("lbd_upstream_connections_total", &[]), 6.0, "{}", lbd.metrics());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(lbd.metric("lbd_upstream_connections_active", &[]), 6.0, "the burst's connections are pooled");
    burst();
    assert_eq!(
        lbd.metric("lbd_upstream_connections_total", &[]),
        6.0,
        "a second burst within the linger time opened connections: {}",
        lbd.metrics()
    );
    // Unused now: the sweep (each second) closes the 4 above pool_size after a second idle.
    assert!(
        wait_until(Duration::from_secs(5), || lbd.metric("lbd_upstream_connections_active", &[]) == 2.0),
        "{}",
        lbd.metrics()
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(lbd.metric("lbd_upstream_connections_active", &[]), 2.0, "pool_size connections stay");
    // And they still carry requests.
    assert_eq!(get(port, "/", &[]), ("a\n".to_string(), 200));
    assert_eq!(lbd.metric("lbd_upstream_connections_total", &[]), 6.0);
}

/// `pool_size = 0`: no upstream connection outlives its response.
#[test]
fn pool_size_zero_closes_each_upstream_connection_after_its_response() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let cfg = simple_config(admin, port, &[a.addr()], "pool_size = 0").replace("workers = 2", "workers = 1");
    let lbd = Lbd::start("pool-off", admin, &cfg);
    for _ in 0..3 {
        assert_eq!(get(port, "/", &[]), ("a\n".to_string(), 200));
    }
    assert_eq!(lbd.metric("lbd_upstream_connections_total", &[]), 3.0, "{}", lbd.metrics());
    assert!(
        wait_until(Duration::from_secs(3), || lbd.metric("lbd_upstream_connections_active", &[]) == 0.0),
        "{}",
        lbd.metrics()
    );
    assert_eq!(lbd.metric("lbd_upstream_requests_reused_total", &[]), 0.0);
}

/// lbd's HTTP/1.1 client against an origin that frames responses every way RFC 9112 allows,
/// and closes idle keep-alive connections quickly (a short backend keep-alive timeout).
#[test]
fn upstream_responses_are_framed_right_and_closed_keep_alive_connections_are_not_a_failure() {
    let backend_port = free_port();
    let _backend = python_server(
        "raw_backend.py",
        &["--port", &backend_port.to_string(), "--idle", "0.05"],
        backend_port,
        "python3",
    );
    let (admin, port) = (free_port(), free_port());
    let cfg =
        simple_config(admin, port, &[format!("127.0.0.1:{backend_port}")], "").replace("workers = 2", "workers = 1");
    let lbd = Lbd::start("framing", admin, &cfg);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    assert_eq!(get(port, "/cl", &[]), ("cl\n".to_string(), 200));
    // HEAD: the response's Content-Length describes a body that is not sent.
    let (head, ok) = curl(&["-s", "-I", &url("/cl"), &url("/cl")]);
    assert!(ok, "HEAD hung or failed: {head}");
    assert_eq!(head.to_ascii_lowercase().matches("content-length: 3").count(), 2, "{head}");
    assert_eq!(get(port, "/close", &[]), ("close-delimited body\n".to_string(), 200));
    assert_eq!(get(port, "/chunked", &[]), ("hello world\n".to_string(), 200));
    assert_eq!(get(port, "/info", &[]), ("info\n".to_string(), 200), "1xx before the final response");
    // A request in absolute-form reaches the backend in origin-form, its query kept.
    let abs = http_raw(
        port,
        "GET http://shop.example/target?q=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    );
    assert!(abs.starts_with("HTTP/1.1 200") && abs.ends_with("\r\n\r\n/target?q=1\n"), "{abs}");
    let (body, status) = get(port, "/garbage", &[]);
    assert_eq!(status, 502, "{body}");
    let (out, ok) = curl(&["-s", &url("/truncated")]);
    assert!(!ok, "a body cut short must not reach the client as complete: {out:?}");

    // Request bodies: with a length, and chunked (length unknown).
    let dir = scratch("framing");
    let file = dir.join("body.bin");
    std::fs::write(&file, vec![7u8; 300_000]).expect("write");
    let data = format!("@{}", file.display());
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["-s", "-D", "-", "-o", "/dev/null", "--data-binary", &data];
        args.extend_from_slice(extra);
        let cl = url("/cl");
        args.push(&cl);
        let (headers, ok) = curl(&args);
        assert!(ok && headers.contains("x-got: 300000"), "{extra:?}: {headers}");
    }

    // A backend that refuses an upload at once and stops reading: its answer comes back at once,
    // not when lbd would have finished sending 32 MiB (the backend holds the connection 5 s).
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![1u8; 32 << 20]).expect("write");
    let started = std::time::Instant::now();
    let (body, status) =
        curl_status(&["-s", "--max-time", "4", "--data-binary", &format!("@{}", big.display()), &url("/reject")]);
    assert_eq!((status, body.as_str()), (413, "too big!\n"), "after {:?}", started.elapsed());

    // Keep-alive: back-to-back requests share an upstream connection.
    let (out, ok) = curl(&["-s", &url("/conn"), &url("/conn")]);
    assert!(ok, "{out}");
    let seen: Vec<(u32, u32)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(c, n)| Some((c.parse().ok()?, n.parse().ok()?)))
        .collect();
    assert_eq!(seen.len(), 2, "{out}");
    assert_eq!((seen[1].0, seen[1].1), (seen[0].0, seen[0].1 + 1), "second request not on the same connection: {out}");

    // The origin closes connections idle for 50 ms. Reusing one after 80 ms (no probe yet) or
    // 300 ms (probed) must still succeed: a GET is resent, a POST waits for a checked connection.
    for (pause, method) in [(80, "GET"), (300, "GET"), (80, "POST"), (300, "POST")] {
        assert_eq!(get(port, "/conn", &[]).1, 200);
        std::thread::sleep(Duration::from_millis(pause));
        let target = url("/conn");
        let args: &[&str] = if method == "GET" { &["-s", &target] } else { &["-s", "--data-binary", "x", &target] };
        let (body, status) = curl_status(args);
        assert_eq!(status, 200, "{method} after {pause} ms idle: {body}");
    }
    assert!(lbd.metric("lbd_upstream_requests_reused_total", &[]) >= 1.0, "{}", lbd.metrics());
}

/// One HTTP/1.1 response read off `r`: status, headers (names lowercased) and body, framed by
/// its `Content-Length` or chunked coding (none after a HEAD).
fn read_response(r: &mut impl std::io::BufRead, head_only: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header line");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("header line {l:?}"));
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if !head_only {
        if let Some(n) = find("content-length") {
            body.resize(n.parse().expect("length"), 0);
            r.read_exact(&mut body).expect("body");
        } else if find("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
    }
    (status, headers, body)
}

/// HTTP/1.1 keep-alive connections: pipelined requests answered in order, a HEAD framed by the
/// backend's length, an upload (which hands the connection from lbd's own loop to hyper's
/// server) and requests after it on the same connection, and `Connection: close` honoured on
/// either side of that hand-over.
#[test]
fn http1_connections_answer_pipelined_requests_in_order_before_and_after_an_upload() {
    use std::io::{BufReader, Read, Write};
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start("h1-loop", admin, &simple_config(admin, port, &[a.addr()], ""));
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    w.write_all(
        b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /big?bytes=100000 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("write");
    let (status, headers, body) = read_response(&mut r, false);
    assert_eq!((status, &body[..]), (201, &b"a\n"[..]), "{headers:?}");
    assert!(headers.iter().any(|(k, _)| k == "date"), "{headers:?}");
    let (status, headers, body) = read_response(&mut r, true);
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "2".into())), "a GET's length: {headers:?}");
    assert!(body.is_empty());
    let (status, _, body) = read_response(&mut r, false);
    assert_eq!((status, body.len()), (200, 100_000));
    assert_eq!(body.iter().enumerate().position(|(i, b)| usize::from(*b) != i % 251), None);

    w.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").expect("write");
    let (status, _, body) = read_response(&mut r, false);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"bytes\": 5"), "{text}");
    w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut r, false).2, b"a\n");
    let (_, headers, body) = read_response(&mut r, false);
    assert_eq!(body, b"a\n");
    assert!(headers.contains(&("connection".into(), "close".into())), "{headers:?}");
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).expect("closed"), 0, "lbd closes after Connection: close");

    // The same before any hand-over.
    let resp = http_raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp:?}");
    assert!(resp.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{resp:?}");
    assert!(resp.ends_with("\r\n\r\na\n"), "{resp:?}");
}
