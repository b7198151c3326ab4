//! HTTP/3: independent QUIC clients (aioquic, ngtcp2's gtlsclient, Chromium) through lbd to a
//! real origin; connections that survive client port rebinding and migration with two workers,
//! by CBPF steering and by the forwarding path alone; Alt-Svc on the TCP side.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn h3_config(admin: u16, port: u16, backend: &str, quic: &str, tls_extra: &str, access_log: &Path) -> String {
    format!(
        r#"workers = 2
[admin]
bind = "127.0.0.1:{admin}"
[access_log]
path = "{log}"
[quic]
{quic}
[[listeners]]
name = "edge"
kind = "https"
bind = "127.0.0.1:{port}"
  [listeners.tls]
  certificates = [{{ cert = "a.crt", key = "a.key" }}]
  {tls_extra}
  [[listeners.routes]]
  cluster = "c"
[[clusters]]
name = "c"
endpoints = ["{backend}"]
"#,
        log = access_log.display()
    )
}

struct Setup {
    _backend: Backend,
    lbd: Lbd,
    port: u16,
    log: PathBuf,
    certs: PathBuf,
}

fn start(name: &str, quic: &str) -> Setup {
    start_with(name, quic, "")
}

fn start_with(name: &str, quic: &str, tls_extra: &str) -> Setup {
    start_in(name, quic, tls_extra, false)
}

/// As `start_with`; with `client_ca`, a test CA (ca.crt) and a client certificate it signed
/// (client.crt, client.key, DNS:client1.test) are made in `certs` and ca.crt is given to lbd.
fn start_in(name: &str, quic: &str, tls_extra: &str, client_ca: bool) -> Setup {
    let backend = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let certs = scratch(&format!("{name}-certs"));
    make_cert(&certs, "a", "ec", &["localhost"]);
    let mut files = vec!["a.crt", "a.key"];
    if client_ca {
        make_ca_and_client(&certs);
        files.push("ca.crt");
    }
    let log = certs.join("access.log");
    let cfg = h3_config(admin, port, &backend.addr(), quic, tls_extra, &log);
    let lbd = Lbd::start_with_copies(name, admin, &cfg, &certs, &files);
    Setup { _backend: backend, lbd, port, log, certs }
}

/// Runs the aioquic client; one JSON value per response.
fn aioquic(port: u16, args: &[&str]) -> Vec<serde_json::Value> {
    let out = aioquic_run(port, args);
    assert!(out.status.success(), "aioquic client failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("client JSON line")).collect()
}

/// Runs the aioquic client, whatever its outcome.
fn aioquic_run(port: u16, args: &[&str]) -> std::process::Output {
    require("python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h3_client.py");
    Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .expect("run h3_client.py (python3 with aioquic)")
}

/// A response line's field as text (strings as is, numbers formatted).
fn field(v: &serde_json::Value, key: &str) -> String {
    match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A backend's response fields reach an HTTP/3 client QPACK-encoded straight from its head:
/// without the hop-by-hop ones (nor one its `Connection` names), the rest in order, names
/// lowercased, twice on one connection (the second on a reused backend connection).
#[test]
fn response_fields_from_an_http1_backend_lose_their_hop_by_hop_ones_over_http3() {
    let backend_port = free_port();
    let _backend = python_server("raw_backend.py", &["--port", &backend_port.to_string()], backend_port, "python3");
    let (admin, port) = (free_port(), free_port());
    let certs = scratch("h3-response-fields-certs");
    make_cert(&certs, "a", "ec", &["localhost"]);
    let cfg = h3_config(admin, port, &format!("127.0.0.1:{backend_port}"), "", "", &certs.join("access.log"));
    let _lbd = Lbd::start_with_copies("h3-response-fields", admin, &cfg, &certs, &["a.crt", "a.key"]);
    let out = aioquic(port, &["/hop", "/hop", "/named"]);
    assert_eq!(out.len(), 3, "{out:?}");
    for r in &out[..2] {
        assert_eq!((field(r, "status"), field(r, "body")), ("200".to_string(), "hop\n".to_string()), "{r}");
        let h = r["headers"].as_object().expect("headers");
        for hop in ["keep-alive", "connection", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"] {
            assert!(!h.contains_key(hop), "{hop} passed on: {r}");
        }
        assert!(h.keys().all(|k| k.bytes().all(|b| !b.is_ascii_uppercase())), "{r}");
        assert_eq!(h["x-mixed-case"], "One, Two", "{r}");
        assert_eq!(h["date"], "Tue, 01 Dec 2026 00:00:00 GMT", "{r}");
        assert_eq!(h["content-length"], "4", "{r}");
    }
    assert_eq!(field(&out[2], "body"), "named\n", "{}", out[2]);
    assert!(!out[2]["headers"].as_object().expect("headers").contains_key("x-hop"), "{}", out[2]);
}

#[test]
fn aioquic_fetches_and_uploads_over_http3_and_tcp_advertises_it() {
    let s = start("h3-aioquic", "");
    let r = aioquic(s.port, &["/", "/headers", "/status/503"]);
    assert_eq!(r.len(), 3);
    assert_eq!(field(&r[0], "status"), "200");
    assert_eq!(field(&r[0], "body"), "a\n");
    // The backend saw a normal proxied request.
    let headers: serde_json::Value = serde_json::from_str(&field(&r[1], "body")).expect("/headers is JSON");
    assert_eq!(headers["x-forwarded-proto"], "https", "{headers}");
    assert!(headers["x-request-id"].is_string(), "{headers}");
    assert!(headers.get("early-data").is_none(), "not early data: {headers}");
    assert_eq!(field(&r[2], "status"), "503");

    // A 3 MB upload streams through intact (the origin hashes what it received).
    let up = aioquic(s.port, &["/upload", "--post-bytes", "3000000"]);
    let body = field(&up[0], "body");
    let expected = Command::new("python3")
        .args(["-c", "import hashlib; print(hashlib.sha256(bytes(i % 251 for i in range(3000000))).hexdigest())"])
        .output()
        .expect("python3");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    assert!(body.contains(&expected) && body.contains("3000000"), "upload: {body}");

    // And a 2 MB download, past the client's flow-control windows (streamed in 64 KiB chunks).
    let down = aioquic(s.port, &["/big?bytes=2000000"]);
    let body = field(&down[0], "body");
    // (bytes travel as latin-1 characters in the client's JSON)
    assert_eq!(body.chars().count(), 2_000_000);
    assert!(body.chars().enumerate().all(|(i, c)| c as usize == i % 251), "pattern intact");

    // TCP clients learn about HTTP/3 on the same port.
    let (out, ok) = curl(&["-sk", "-D-", "-o", "/dev/null", &format!("https://127.0.0.1:{}/", s.port)]);
    assert!(ok);
    assert!(out.to_ascii_lowercase().contains(&format!("alt-svc: h3=\":{}\"; ma=86400", s.port)), "{out}");
    // The access log says which protocol each request came on.
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&s.log).unwrap_or_default().matches("\"protocol\":\"HTTP/3\"").count() >= 5
    }));
    assert!(s.lbd.metric("lbd_quic_connections_total", &[]) >= 2.0);
}

/// lbd drops each QUIC connection's TLS session once the handshake is done, keeping what it
/// still needs (patched quinn-proto): the client certificate verified in the handshake still
/// reaches the backend as X-Forwarded-Client-Cert, on every request of the connection, including
/// one sent after the connection sat idle; a copy the client sends is dropped. A client without a
/// certificate, or with one from another CA, is refused.
#[test]
fn http3_mtls_passes_the_verified_identity_on_each_request_after_the_handshake() {
    let s = start_in("h3-mtls", "", "client_auth = \"required\"\n  client_ca = \"ca.crt\"", true);
    let (cert, key) = (s.certs.join("client.crt"), s.certs.join("client.key"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let r = aioquic(
        s.port,
        &[
            "/headers",
            "/headers",
            "~/headers",
            "--pause",
            "1",
            "--cert",
            &cert,
            "--key",
            &key,
            "--header",
            "X-Forwarded-Client-Cert: Hash=forged;DNS=admin.test",
        ],
    );
    assert_eq!(r.len(), 3);
    for resp in &r {
        assert_eq!(field(resp, "status"), "200");
        let headers: serde_json::Value = serde_json::from_str(&field(resp, "body")).expect("/headers is JSON");
        let xfcc = headers["x-forwarded-client-cert"].as_str().unwrap_or_default();
        assert!(xfcc.starts_with("Hash=") && xfcc.ends_with(";DNS=client1.test"), "{headers}");
        assert!(!xfcc.contains("forged"), "spoofed header passed: {headers}");
    }
    assert_eq!(field(&r[0], "port"), field(&r[2], "port"), "one connection");

    let refused = aioquic_run(s.port, &["/", "--deadline", "5"]);
    assert!(!refused.status.success(), "a client without a certificate got an answer");
    let (other, other_key) = (s.certs.join("a.crt"), s.certs.join("a.key"));
    let (other, other_key) = (other.display().to_string(), other_key.display().to_string());
    let refused = aioquic_run(s.port, &["/", "--deadline", "5", "--cert", &other, "--key", &other_key]);
    assert!(!refused.status.success(), "an untrusted client certificate was accepted");
}

/// Sends `paths` over one aioquic connection (`extra` are h3_client.py's options; uploads go to
/// /upload with `up` bytes) and checks every response: 200, on the same connection, and its body
/// intact (downloads of `down` bytes by their pattern, uploads by the sha256 the backend saw).
fn fetch_all_on_one_connection(s: &Setup, paths: &[String], extra: &[&str], down: usize, up: usize) {
    let mut args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let up_bytes = up.to_string();
    args.extend(["--post-path", "/upload", "--post-bytes", &up_bytes, "--pause", "0.5"]);
    args.extend(extra);
    let r = aioquic(s.port, &args);
    assert_eq!(r.len(), paths.len(), "one response per request");
    let expected = Command::new("python3")
        .args([
            "-c",
            &format!("import hashlib; print(hashlib.sha256(bytes(i % 251 for i in range({up}))).hexdigest())"),
        ])
        .output()
        .expect("python3");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    let big = format!("/big?bytes={down}");
    for (i, (resp, path)) in r.iter().zip(paths).enumerate() {
        assert_eq!(field(resp, "status"), "200", "request {i} ({path})");
        assert_eq!(field(resp, "port"), field(&r[0], "port"), "request {i} on the same connection");
        let body = field(resp, "body");
        match path.trim_start_matches('~') {
            p if p == big => {
                assert_eq!(body.chars().count(), down, "request {i}");
                assert!(body.chars().enumerate().all(|(j, c)| c as usize == j % 251), "request {i}: pattern intact");
            }
            "/upload" => assert!(body.contains(&expected) && body.contains(&up_bytes), "request {i}: {body}"),
            _ => assert_eq!(body, "a\n", "request {i}"),
        }
    }
    assert_eq!(s.lbd.metric("lbd_quic_connections_total", &[]), 1.0, "all on one connection");
}

#[test]
fn an_http3_connection_going_idle_between_requests_carries_each_one_intact() {
    // An idle QUIC connection gives back its event queue, send buffer and drained reassembly
    // storage, and a stream gets its state only once used (third_party/quinn, quinn-proto). One
    // aioquic connection here goes idle between requests, and opens 254 request streams: past
    // the 100 the client may open at first, so the later ones are those MAX_STREAMS allows as
    // earlier ones close.
    let s = start("h3-idle", "");
    let mut paths = vec!["/big?bytes=2000000".to_string(), "~/upload".to_string()];
    for i in 0..250 {
        paths.push(if i % 50 == 49 { "~/" } else { "/" }.to_string());
    }
    paths.push("~/big?bytes=2000000".to_string());
    paths.push("~/upload".to_string());
    fetch_all_on_one_connection(&s, &paths, &[], 2_000_000, 1_000_000);
}

#[test]
fn an_http3_connection_idle_after_bursts_of_streams_carries_the_next_burst_intact() {
    // After a burst, an idle connection gives back what the burst grew (freed stream state
    // beyond a few, stream maps, queues: third_party/quinn-proto, h3). Three bursts of 90
    // requests at once on one aioquic connection, idle between them; each burst carries a
    // 500 KB download and a 300 KB upload among its small GETs.
    let s = start("h3-bursts", "");
    let mut paths = Vec::new();
    for burst in 0..3 {
        for i in 0..90 {
            let path = match i {
                30 => "/big?bytes=500000",
                60 => "/upload",
                _ => "/",
            };
            paths.push(if burst > 0 && i == 0 { format!("~{path}") } else { path.to_string() });
        }
    }
    fetch_all_on_one_connection(&s, &paths, &["--parallel"], 500_000, 300_000);
}

#[test]
fn ngtcp2_client_fetches_over_http3() {
    require("gtlsclient");
    let s = start("h3-ngtcp2", "");
    let dl = scratch("h3-ngtcp2-download");
    let out = Command::new("gtlsclient")
        .args(["-q", "--exit-on-all-streams-close", "--timeout=10s"])
        .arg(format!("--download={}", dl.display()))
        .args(["127.0.0.1", &s.port.to_string(), &format!("https://localhost:{}/page", s.port)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run gtlsclient");
    assert!(out.status.success(), "gtlsclient: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(dl.join("page")).unwrap_or_default(), "a\n");
    // The access log is written by its own thread: give it a moment.
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&s.log).unwrap_or_default().contains("\"protocol\":\"HTTP/3\"")
    }));
}

#[test]
fn quiche_client_fetches_over_http3() {
    let s = start("h3-quiche", "");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", s.port).parse().expect("addr");
    let r = rt.block_on(async {
        let mut c = lb_bench::quiche_client::Client::connect(addr, "localhost").await?;
        let page = c.request("GET", "/page", None).await?;
        let headers = c.request("GET", "/headers", None).await?;
        let upload = c.request("POST", "/upload", Some(&[7u8; 1000])).await?;
        Ok::<_, String>((page, headers, upload))
    });
    let (page, headers, upload) = r.unwrap_or_else(|e| {
        panic!(
            "quiche client: {e}\naccess log:\n{}\nlbd:\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default(),
            s.lbd.stderr()
        )
    });
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"a\n");
    assert!(page.headers.iter().any(|(n, v)| n == "x-backend" && v == "a"), "{:?}", page.headers);
    let h: serde_json::Value = serde_json::from_slice(&headers.body).expect("JSON");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["host"], "localhost");
    let u: serde_json::Value = serde_json::from_slice(&upload.body).expect("JSON");
    assert_eq!(u["bytes"], 1000, "{u}");
}

/// Runs headless Chromium on `url` with the listener's certificate pinned; returns the DOM.
fn chromium(s: &Setup, profile: &Path, url: &str, extra: &[&str]) -> String {
    require("chromium");
    require("openssl");
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            s.certs.join("a.crt").display()
        ))
        .output()
        .expect("openssl");
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_string();
    assert!(!spki.is_empty());
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--ignore-certificate-errors")
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .arg("--host-resolver-rules=MAP localhost 127.0.0.1")
        .args(extra)
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(profile.join("chromium.log")).expect("chromium log"))
        .spawn()
        .expect("start chromium");
    let done = wait_until(Duration::from_secs(45), || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        done,
        "chromium did not finish:\n{}\nlbd:\n{}",
        std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default(),
        s.lbd.stderr()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The access log's protocol for each request whose path contains `needle` (waiting a little
/// for the log writer's thread to write the first one).
fn protocols(s: &Setup, needle: &str) -> Vec<String> {
    wait_until(Duration::from_secs(5), || std::fs::read_to_string(&s.log).unwrap_or_default().contains(needle));
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["protocol"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn chromium_loads_a_page_over_http3() {
    let s = start("h3-chromium", "");
    let force = format!("--origin-to-force-quic-on=localhost:{}", s.port);
    let profile = scratch("h3-chromium-profile");
    let dom = chromium(&s, &profile, &format!("https://localhost:{}/page-from-chromium", s.port), &[&force]);
    assert!(dom.contains("a\n") || dom.contains(">a"), "page: {dom}");
    assert_eq!(protocols(&s, "/page-from-chromium"), ["HTTP/3"], "chromium's request was not HTTP/3");
}

/// Without being told, Chromium comes over TCP, learns from `Alt-Svc` that the origin speaks
/// HTTP/3 (it keeps that in its profile) and opens a QUIC connection to lbd by itself. (Chromium
/// moves requests onto an Alt-Svc QUIC connection only for certificates from a public root; with
/// this test's self-signed one it marks the alternative broken and stays on TCP, its documented
/// policy, so the test checks the upgrade attempt, not the protocol of later requests.)
#[test]
fn chromium_learns_http3_from_alt_svc_and_connects_by_itself() {
    let s = start("h3-chromium-alt-svc", "");
    let profile = scratch("h3-chromium-alt-svc-profile");
    let first = chromium(&s, &profile, &format!("https://localhost:{}/first-visit", s.port), &[]);
    assert!(first.contains("a\n") || first.contains(">a"), "page: {first}");
    assert_eq!(protocols(&s, "/first-visit"), ["HTTP/2"], "the first visit came over TCP");
    let state = std::fs::read_to_string(profile.join("Default/Network Persistent State")).unwrap_or_default();
    assert!(
        state.contains("\"advertised_alpns\":[\"h3\"],") && state.contains(&format!("\"port\":{}", s.port)),
        "{state}"
    );
    // Having read Alt-Svc, Chromium opens a QUIC connection to lbd by itself: in the background
    // of the first visit, or (if it exited first) at the start of the next one.
    let quic = || s.lbd.metric("lbd_quic_connections_total", &[]) >= 1.0;
    for i in 0..3 {
        if wait_until(Duration::from_secs(3), quic) {
            break;
        }
        chromium(&s, &profile, &format!("https://localhost:{}/visit-{i}", s.port), &[]);
    }
    assert!(quic(), "Chromium never tried HTTP/3");
}

/// The client moves to a new UDP port 16 times (a NAT rebinding; with `new_cid`, also a new
/// connection ID); every request on the same connection still succeeds. With two workers the
/// kernel's address hash sends some of these paths to the other worker.
fn rebinding(name: &str, quic: &str, new_cid: bool) -> (Lbd, Vec<serde_json::Value>) {
    let s = start(name, quic);
    let mut args = vec!["/", "--rebind", "16"];
    if new_cid {
        args.push("--new-cid");
    }
    let r = aioquic(s.port, &args);
    assert_eq!(r.len(), 17);
    for v in &r {
        assert_eq!(field(v, "status"), "200", "{v:?}");
        assert_eq!(field(v, "body"), "a\n");
    }
    let ports: std::collections::HashSet<String> = r.iter().map(|v| field(v, "port")).collect();
    assert_eq!(ports.len(), 17, "the client used a new port each time");
    assert_eq!(s.lbd.metric("lbd_quic_connections_total", &[]), 1.0, "one connection throughout");
    (s.lbd, r)
}

#[test]
fn rebinding_keeps_the_connection_with_cbpf_steering() {
    let (lbd, _) = rebinding("h3-rebind-cbpf", "", false);
    // The kernel put every datagram on its owner's socket: nothing needed forwarding.
    assert_eq!(lbd.metric("lbd_quic_packets_forwarded_total", &[]), 0.0);
    let (lbd, _) = rebinding("h3-migrate-cbpf", "", true);
    assert_eq!(lbd.metric("lbd_quic_packets_forwarded_total", &[]), 0.0);
}

#[test]
fn rebinding_keeps_the_connection_with_forwarding_alone() {
    let (lbd, _) = rebinding("h3-rebind-fwd", "steering = \"forward\"", true);
    // 17 paths hashed over 2 workers: some landed on the other worker and were handed over.
    assert!(lbd.metric("lbd_quic_packets_forwarded_total", &[]) > 0.0);
    assert_eq!(lbd.metric("lbd_quic_packets_forward_dropped_total", &[]), 0.0);
}

#[test]
fn zero_rtt_requests_carry_early_data_and_unsafe_ones_wait_for_the_handshake() {
    let s = start_with("h3-0rtt", "", "zero_rtt = true");
    let early = aioquic(s.port, &["/headers", "--zero-rtt"]);
    assert_eq!(early[0]["early_data_accepted"], true, "{early:?}");
    let h: serde_json::Value = serde_json::from_str(&field(&early[0], "body")).expect("JSON");
    assert_eq!(h["early-data"], "1", "a GET sent as early data is marked (RFC 8470): {h}");
    let post = aioquic(s.port, &["/headers", "--zero-rtt", "--post-bytes", "10"]);
    assert_eq!(post[0]["early_data_accepted"], true);
    assert_eq!(field(&post[0], "status"), "200");
    let h: serde_json::Value = serde_json::from_str(&field(&post[0], "body")).expect("JSON");
    assert!(h.get("early-data").is_none(), "a POST waited for the handshake: {h}");

    // Off by default: the same client gets no early data accepted and nothing is marked.
    let s = start("h3-no-0rtt", "");
    let r = aioquic(s.port, &["/headers", "--zero-rtt"]);
    assert_eq!(r[0]["early_data_accepted"], false);
    let h: serde_json::Value = serde_json::from_str(&field(&r[0], "body")).expect("JSON");
    assert!(h.get("early-data").is_none(), "{h}");
}

#[test]
fn retry_validates_addresses_past_the_threshold() {
    let s = start("h3-retry", "retry_threshold = 0");
    let r = aioquic(s.port, &["/", "/page"]);
    assert!(r.iter().all(|v| field(v, "status") == "200"), "{r:?}");
    assert!(s.lbd.metric("lbd_quic_retries_total", &[]) >= 1.0);
    let s = start("h3-no-retry", "");
    aioquic(s.port, &["/"]);
    assert_eq!(s.lbd.metric("lbd_quic_retries_total", &[]), 0.0);
}

#[test]
fn drain_lets_an_http3_request_finish() {
    let mut s = start("h3-drain", "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h3_client.py");
    let client = Command::new("python3")
        .arg(script)
        .args([&s.port.to_string(), "/slow?ms=1500", "--show-goaway"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h3_client.py");
    std::thread::sleep(Duration::from_millis(700));
    s.lbd.proc.signal("TERM");
    let out = client.wait_with_output().expect("client");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(lines.contains("\"status\": 200") && lines.contains("a\\n"), "{lines}");
    // The drain's GOAWAY names stream 4, the first request not taken: the request on stream 0 is
    // being processed, and a client told otherwise (GOAWAY 0) may send it again elsewhere.
    assert!(lines.contains("{\"server_goaway\": [4]}"), "{lines}");
    assert_eq!(s.lbd.proc.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A client that says it is going away (its own GOAWAY) with two requests in flight: both finish
/// whole, and then lbd sends its last GOAWAY, naming the first request stream it did not take
/// (RFC 9114 §5.2), before the connection ends. lbd's own drain is not involved.
#[test]
fn a_client_goaway_lets_its_requests_finish_and_gets_the_last_goaway() {
    let s = start("h3-client-goaway", "");
    let out = aioquic(s.port, &["--goaway", "/slow?ms=800", "/slow?ms=600"]);
    assert_eq!(out.len(), 3, "{out:?}");
    for r in &out[..2] {
        assert_eq!(field(r, "status"), "200", "{out:?}");
        assert_eq!(field(r, "body"), "a\n", "{out:?}");
    }
    let goaways: Vec<u64> = out[2]["server_goaway"]
        .as_array()
        .expect("server_goaway")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    // Request streams 0 and 4 were taken; 8 is the first that was not.
    assert_eq!(goaways.last(), Some(&8), "lbd's last GOAWAY: {out:?}");
    assert!(goaways.windows(2).all(|w| w[0] >= w[1]), "GOAWAY ids must not grow: {goaways:?}");
    assert!(
        wait_until(Duration::from_secs(5), || s.lbd.metric("lbd_downstream_connections_active", &[]) == 0.0),
        "{}",
        s.lbd.metrics()
    );
}

#[test]
fn reload_sends_new_http3_connections_to_the_new_config_on_the_same_socket() {
    let s = start("h3-reload", "");
    let b = Backend::start("b");
    assert_eq!(field(&aioquic(s.port, &["/"])[0], "body"), "a\n");
    let text = std::fs::read_to_string(&s.lbd.config).expect("config");
    let (code, body) = s.lbd.reload_with(&text.replace(&s._backend.addr(), &b.addr()));
    assert_eq!(code, 200, "{body}");
    assert_eq!(field(&aioquic(s.port, &["/"])[0], "body"), "b\n");
}

#[test]
fn connection_ids_carry_the_configured_server_id() {
    let s = start("h3-server-id", "server_id = \"0a0b0c\"");
    let r = aioquic(s.port, &["/", "/"]);
    for v in &r {
        let cid = field(v, "server_cid");
        // First octet: config rotation 0 and the length of the rest; then the server id.
        assert_eq!(cid.len(), 2 * 12, "{cid}");
        assert_eq!(&cid[..2], "0b", "{cid}");
        assert_eq!(&cid[2..8], "0a0b0c", "{cid}");
    }
}

#[test]
fn reload_adds_and_removes_http3_listeners() {
    let s = start("h3-reload-listeners", "");
    let port2 = free_port();
    let text = std::fs::read_to_string(&s.lbd.config).expect("config");
    let second = format!(
        "[[listeners]]\nname = \"edge2\"\nkind = \"https\"\nbind = \"127.0.0.1:{port2}\"\n  [listeners.tls]\n  \
         certificates = [{{ cert = \"a.crt\", key = \"a.key\" }}]\n  [[listeners.routes]]\n  cluster = \"c\"\n[[clusters]]"
    );
    let with_two = text.replacen("[[clusters]]", &second, 1);
    let (code, body) = s.lbd.reload_with(&with_two);
    assert_eq!(code, 200, "{body}");
    // Every worker took its socket of the new group: connections from many ports all work.
    for _ in 0..6 {
        let r = aioquic(port2, &["/"]);
        assert_eq!(field(&r[0], "body"), "a\n");
    }
    assert_eq!(field(&aioquic(s.port, &["/"])[0], "body"), "a\n", "the first listener kept its sockets");
    // Removed again: its UDP port is closed (the client times out) and the first one still works.
    let (code, body) = s.lbd.reload_with(&text);
    assert_eq!(code, 200, "{body}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h3_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&port2.to_string(), "/", "--deadline", "3"])
        .output()
        .expect("h3_client.py");
    assert!(!out.status.success(), "HTTP/3 still served on a removed listener");
    assert_eq!(field(&aioquic(s.port, &["/"])[0], "body"), "a\n");
}

#[test]
fn connections_past_max_connections_are_refused_and_counted() {
    let backend = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let certs = scratch("h3-maxconn-certs");
    make_cert(&certs, "a", "ec", &["localhost"]);
    // One worker, so the per-worker limit is exact.
    let cfg = h3_config(admin, port, &backend.addr(), "", "", &certs.join("access.log"))
        .replace("workers = 2", "workers = 1")
        .replace("kind = \"https\"", "kind = \"https\"\nmax_connections = 1");
    let lbd = Lbd::start_with_copies("h3-maxconn", admin, &cfg, &certs, &["a.crt", "a.key"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h3_client.py");
    // The first connection holds the only place with a slow request.
    let holder = Command::new("python3")
        .arg(&script)
        .args([&port.to_string(), "/slow?ms=3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h3_client.py");
    assert!(wait_until(Duration::from_secs(5), || lbd.metric("lbd_quic_connections_total", &[]) >= 1.0));
    let refused = Command::new("python3")
        .arg(&script)
        .args([&port.to_string(), "/", "--deadline", "5"])
        .output()
        .expect("h3_client.py");
    assert!(!refused.status.success(), "a second connection was served past max_connections = 1");
    assert!(lbd.metric("lbd_quic_refused_total", &[]) >= 1.0);
    let held = holder.wait_with_output().expect("holder");
    assert!(String::from_utf8_lossy(&held.stdout).contains("\"status\": 200"), "the first connection finished");
    // Its place is free again.
    assert!(wait_until(Duration::from_secs(5), || lbd.metric("lbd_downstream_connections_active", &[]) == 0.0));
    assert_eq!(field(&aioquic(port, &["/"])[0], "status"), "200");
}
