//! HTTPS listeners: certificates by SNI, ALPN h2/http1.1, TLS version policy, HTTP/2 with
//! multiplexing, checked with curl, openssl s_client and h2load.

mod support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn https_config(admin: u16, port: u16, port2: u16, backend: &str) -> String {
    format!(
        r#"workers = 2
[admin]
bind = "127.0.0.1:{admin}"
[access_log]
path = "off"
[[listeners]]
name = "tls"
kind = "https"
bind = "127.0.0.1:{port}"
  [listeners.tls]
  certificates = [{{ cert = "a.crt", key = "a.key" }}, {{ cert = "w.crt", key = "w.key" }}]
  [[listeners.routes]]
  cluster = "c"
[[listeners]]
name = "tls12"
kind = "https"
bind = "127.0.0.1:{port2}"
  [listeners.tls]
  certificates = [{{ cert = "w.crt", key = "w.key" }}]
  max_version = "1.2"
  http2 = false
  [[listeners.routes]]
  cluster = "c"
[[clusters]]
name = "c"
endpoints = ["{backend}"]
"#
    )
}

/// Starts lbd with the two https listeners; certificates next to the config file.
fn start(name: &str) -> (Backend, Lbd, u16, u16) {
    let a = Backend::start("a");
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = scratch(name);
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    let cfg = https_config(admin, port, port2, &a.addr());
    // Lbd::start writes the config into its own scratch dir; the certificates go there too.
    let lbd = Lbd::start_with_copies(name, admin, &cfg, &dir, &["a.crt", "a.key", "w.crt", "w.key"]);
    (a, lbd, port, port2)
}

/// A backend's response headers reach the client without their hop-by-hop ones (and those its
/// `Connection` names), the rest as sent (repeats in order, its own `Date`): over HTTP/1.1, as
/// the backend's header lines unparsed (names in its case), and over HTTP/2, HPACK-encoded
/// straight from them.
#[test]
fn response_headers_lose_their_hop_by_hop_ones_and_keep_the_rest_over_http1_and_http2() {
    let backend_port = free_port();
    let _backend = python_server("raw_backend.py", &["--port", &backend_port.to_string()], backend_port, "python3");
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = scratch("response-hop");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    let cfg = https_config(admin, port, port2, &format!("127.0.0.1:{backend_port}"));
    let _lbd = Lbd::start_with_copies("response-hop", admin, &cfg, &dir, &["a.crt", "a.key", "w.crt", "w.key"]);
    let resolve = format!("a.test:{port}:127.0.0.1");
    for flag in ["--http1.1", "--http2"] {
        let url = |p: &str| format!("https://a.test:{port}{p}");
        // Twice on one connection: the second response comes on a reused backend connection.
        let (out, ok) = curl(&["-sk", flag, "--resolve", &resolve, "-D", "-", &url("/hop"), &url("/hop")]);
        assert!(ok, "{flag}: {out}");
        let heads: Vec<&str> = out.split("hop\n").filter(|h| !h.is_empty()).collect();
        assert_eq!(heads.len(), 2, "{flag}: {out}");
        for head in heads {
            let lines: Vec<String> = head.lines().skip(1).filter(|l| !l.is_empty()).map(str::to_string).collect();
            let names: Vec<String> =
                lines.iter().filter_map(|l| l.split_once(':')).map(|(n, _)| n.to_ascii_lowercase()).collect();
            for hop in ["keep-alive", "connection", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"]
            {
                assert!(!names.iter().any(|n| n == hop), "{flag}: {hop} passed on: {head}");
            }
            let values = |name: &str| -> Vec<String> {
                lines
                    .iter()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
                    .collect()
            };
            assert_eq!(values("x-mixed-case"), ["One", "Two"], "{flag}: {head}");
            assert_eq!(values("date"), ["Tue, 01 Dec 2026 00:00:00 GMT"], "{flag}: the backend's own, once: {head}");
            assert_eq!(values("content-length"), ["4"], "{flag}: {head}");
            assert_eq!(values("x-got"), ["0"], "{flag}: {head}");
            if flag == "--http1.1" {
                assert!(
                    lines.iter().any(|l| l == "X-Mixed-Case: One") && lines.iter().any(|l| l == "x-mixed-case: Two"),
                    "names as the backend wrote them: {head}"
                );
            }
        }
        let (out, ok) = curl(&["-sk", flag, "--resolve", &resolve, "-D", "-", &url("/named")]);
        assert!(ok && out.ends_with("named\n"), "{flag}: {out}");
        assert!(!out.to_ascii_lowercase().contains("x-hop"), "{flag}: a header its Connection names passed on: {out}");
    }
}

/// `openssl s_client` output for one connection.
fn s_client(port: u16, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn subject(s_client_out: &str) -> String {
    s_client_out.lines().find(|l| l.trim_start().starts_with("subject=")).unwrap_or("").trim().to_string()
}

#[test]
fn https_serves_http2_and_http1_with_certificates_chosen_by_sni() {
    let (_a, lbd, port, _) = start("https");
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (body, _) = curl(&[
            "-sk",
            flag,
            "--resolve",
            &format!("a.test:{port}:127.0.0.1"),
            "-w",
            "\n%{http_version}",
            &format!("https://a.test:{port}/headers"),
        ]);
        let (json, version) = body.rsplit_once('\n').unwrap_or(("", ""));
        assert_eq!(version, want, "{body}");
        assert!(json.contains("\"x-forwarded-proto\": \"https\""), "{json}");
        assert!(json.contains("\"host\": \"a.test:"), "{json}");
    }
    assert!(subject(&s_client(port, &["-servername", "a.test"])).contains("CN = a.test"));
    assert!(subject(&s_client(port, &["-servername", "x.w.test"])).contains("CN = *.w.test"));
    assert!(subject(&s_client(port, &["-servername", "w.test"])).contains("CN = *.w.test"));
    assert!(subject(&s_client(port, &["-servername", "unknown.test"])).contains("CN = a.test"), "default certificate");
    assert!(subject(&s_client(port, &["-noservername"])).contains("CN = a.test"), "no SNI: default certificate");
    assert!(s_client(port, &["-alpn", "h2,http/1.1"]).contains("ALPN protocol: h2"));
    assert!(s_client(port, &["-tls1_3"]).contains("TLSv1.3"));
    assert!(s_client(port, &["-tls1_2"]).contains("TLSv1.2"));
    let m = lbd.metrics();
    assert!(metric_value(&m, "lbd_requests_total", &["listener=\"tls\"", "class=\"2xx\""]) >= 2.0, "{m}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as f64;
    let expiry = metric_value(&m, "lbd_tls_certificate_expiry_timestamp_seconds", &["listener=\"tls\"", "a.crt\""]);
    assert!(expiry > now && expiry < now + 3.0 * 86400.0, "2-day certificate: {expiry} vs now {now}\n{m}");
}

#[test]
fn version_policy_and_http2_switch_are_enforced() {
    let (_a, lbd, _, port2) = start("tls12");
    let out = s_client(port2, &["-tls1_3"]);
    assert!(!out.contains("Protocol  : TLSv1.3") && !out.contains("New, TLSv1.3"), "TLS 1.3 accepted: {out}");
    assert!(s_client(port2, &["-tls1_2"]).contains("New, TLSv1.2"));
    let alpn = s_client(port2, &["-alpn", "h2"]);
    assert!(!alpn.contains("ALPN protocol: h2"), "{alpn}");
    let (body, _) = curl(&["-sk", "--http2", "-w", "\n%{http_version}", &format!("https://127.0.0.1:{port2}/")]);
    assert!(body.ends_with("\n1.1"), "http2 = false must fall back to HTTP/1.1: {body}");
    assert!(lbd.metric("lbd_tls_handshake_failures_total", &[]) >= 1.0);
}

#[test]
fn http2_multiplexes_many_streams_per_connection() {
    require("h2load");
    let (_a, _lbd, port, _) = start("h2load");
    let out = Command::new("h2load")
        .args(["-n", "4000", "-c", "4", "-m", "32", &format!("https://127.0.0.1:{port}/")])
        .output()
        .expect("h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(text.contains("requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed"), "{text}");
}

/// lbd gives an HTTP/2 connection's buffers back each time it has no stream open (TLS records
/// to the worker's spares, h2's read, write and hpack buffers; third_party/h2). One connection
/// here goes idle between requests of every shape and must carry each intact: a 3 MB download, a
/// 2 MB upload, and a header block too large for one frame (CONTINUATION frames).
/// A file of `len` bytes to upload (a multiplicative hash of each index, shifted by `shift`) in
/// a scratch folder named `name`, and its sha256 as `sha256sum` prints it.
fn upload_file(name: &str, len: u32, shift: u32) -> (std::path::PathBuf, String) {
    let upload = scratch(name).join("upload.bin");
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> shift) as u8).collect();
    std::fs::write(&upload, &data).expect("write upload");
    let sha = Command::new("sha256sum").arg(&upload).output().expect("sha256sum");
    let sha = String::from_utf8_lossy(&sha.stdout).split_whitespace().next().unwrap_or_default().to_string();
    (upload, sha)
}

#[test]
fn an_http2_connection_going_idle_between_requests_carries_each_one_intact() {
    require("sha256sum");
    let (_a, _lbd, port, _) = start("h2-idle");
    let (upload, sha) = upload_file("h2-idle-upload", 2_000_000, 13);
    // Four header values of 7,000 alphanumerics: about 21 KB once HPACK-coded, more than the
    // 16 KiB frame size, so curl splits the block over CONTINUATION frames.
    let big: Vec<String> = (0..4u32)
        .map(|n| {
            let mut x = 0x9e37_79b9_u32 ^ (n + 1).wrapping_mul(0x85eb_ca6b); // xorshift32
            let v: String = (0..7000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let k = (x % 62) as u8;
                    char::from(match k {
                        0..=9 => b'0' + k,
                        10..=35 => b'a' + k - 10,
                        _ => b'A' + k - 36,
                    })
                })
                .collect();
            format!("X-Big-{n}: {v}")
        })
        .collect();
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let w = "\n%{http_version} %{http_code} %{num_connects} %{size_download}\n";
    let at = format!("@{}", upload.display());
    let mut args: Vec<String> = vec![];
    for round in 0..2 {
        if round > 0 {
            args.push("--next".into());
        }
        args.extend(["-sk", "--http2", "-o", "/dev/null", "-w", w].map(String::from));
        args.push(url("/big?bytes=3000000"));
        args.extend(["--next", "-sk", "--http2", "--data-binary", &at, "-w", w].map(String::from));
        args.push(url("/upload"));
        args.extend(["--next", "-sk", "--http2", "-w", w].map(String::from));
        for h in &big {
            args.extend(["-H".to_string(), h.clone()]);
        }
        args.push(url("/headers"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, ok) = curl(&refs);
    assert!(ok, "curl failed: {}", clip(&out, 2000));
    let stats: Vec<&str> = out.lines().filter(|l| l.starts_with("2 ")).collect();
    assert_eq!(stats.len(), 6, "six HTTP/2 answers expected: {}", clip(&out, 2000));
    for (i, line) in stats.iter().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[1], "200", "request {i}: {line}");
        // One connection for all six: only the first request connects.
        assert_eq!(f[2], if i == 0 { "1" } else { "0" }, "request {i} opened a connection: {line}");
    }
    assert_eq!(stats[0].split(' ').nth(3), Some("3000000"), "{}", stats[0]);
    assert_eq!(stats[3].split(' ').nth(3), Some("3000000"), "{}", stats[3]);
    let uploads = out.matches(&format!("\"sha256\": \"{sha}\", \"bytes\": 2000000")).count();
    assert_eq!(uploads, 2, "both uploads must arrive intact (sha256 {sha}): {}", clip(&out, 3000));
    for h in &big {
        let (name, value) = h.split_once(": ").unwrap_or_default();
        let seen = out.matches(value).count();
        assert_eq!(seen, 2, "{name} ({} bytes) must reach the backend intact in both rounds", value.len());
    }
}

/// HTTP/2 bodies under a client's flow control: 3 MB streamed through windows of 64 KiB (stream
/// and connection, nghttp's `-w 16 -W 16`) arrive whole and in order, and so does an upload of
/// unknown length (no `Content-Length`: curl reading its standard input). lbd's own answers carry
/// `Date`, as the backend's do.
#[test]
fn http2_bodies_follow_flow_control_and_lbds_own_answers_carry_a_date() {
    require("nghttp");
    require("sha256sum");
    let (a, _lbd, port, _) = start("h2-flow");
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let out = Command::new("nghttp")
        .args(["-w", "16", "-W", "16", "-t", "20", &url("/big?bytes=3000000")])
        .output()
        .expect("nghttp");
    let body = out.stdout;
    assert_eq!(body.len(), 3_000_000, "{}", String::from_utf8_lossy(&out.stderr));
    let wrong = body.iter().enumerate().position(|(i, b)| usize::from(*b) != i % 251);
    assert_eq!(wrong, None, "the body differs from the backend's pattern at that byte");

    let (upload, sha) = upload_file("h2-flow-upload", 1_500_000, 11);
    let file = std::fs::File::open(&upload).expect("open upload");
    let out = Command::new("curl")
        .args(["-sk", "--http2", "--max-time", "20", "-X", "POST", "-T", "-", &url("/upload")])
        .stdin(file)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("\"sha256\": \"{sha}\", \"bytes\": 1500000")), "{text}");

    let (head, _) = curl(&["-sk", "--http2", "-D", "-", "-o", "/dev/null", &url("/")]);
    assert!(head.contains("\ndate: "), "the backend's answer: {head}");
    drop(a);
    let (head, _) = curl(&["-sk", "--http2", "-D", "-", "-o", "/dev/null", &url("/")]);
    assert!(head.starts_with("HTTP/2 50"), "lbd's own answer with the backend gone: {head}");
    assert!(head.contains("\ndate: ") && head.contains("\ncontent-length: "), "{head}");
}

/// HTTP/2 response heads are encoded without HPACK's dynamic table (the h2 patch's stateless
/// encoding): the second of two alike responses on one connection takes as many bytes as the
/// first, where a table would have shrunk it to a few indices. nghttp decodes both.
#[test]
fn http2_response_heads_are_encoded_without_the_dynamic_table() {
    require("nghttp");
    let (_a, _lbd, port, _) = start("h2-hpack");
    let url = |q: &str| format!("https://127.0.0.1:{port}/?{q}");
    let out = Command::new("nghttp").args(["-v", "-n", "-t", "10", &url("a"), &url("b")]).output().expect("nghttp");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lengths: Vec<usize> = text
        .lines()
        .filter(|l| l.contains("recv HEADERS frame <length="))
        .filter_map(|l| l.split("length=").nth(1)?.split(',').next()?.parse().ok())
        .collect();
    assert_eq!(lengths.len(), 2, "{text}");
    assert_eq!(lengths[0], lengths[1], "the second head was encoded against the first: {text}");
    assert!(lengths[1] > 40, "{text}");
    assert_eq!(text.matches(":status: 200").count(), 2, "{text}");
}

/// The first `n` characters of `s` (for assertion messages; slicing bytes could split a
/// character and panic).
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The same, at the worst moments: a client (tests/support/h2_pauses.py, frames written by hand)
/// pauses after a whole request, inside a frame's header, inside a header block, and between a
/// HEADERS frame and its CONTINUATION. lbd must keep every partial frame while it waits. Then two
/// bursts of 60 streams at once with a pause between them: the storage a burst grew is given
/// back while the connection waits, and the next burst must come through whole.
#[test]
fn an_http2_connection_paused_inside_frames_loses_nothing() {
    require("python3");
    let (_a, _lbd, port, _) = start("h2-pauses");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h2_pauses.py");
    let out = Command::new("python3").arg(&script).arg(port.to_string()).output().expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.ends_with("ok\n"), "{text}");
}

/// Runs `h2_pauses.py PORT --until-goaway 10 EXTRA...`; once it says its connection is idle,
/// calls `then`; returns the client's lines after that, its GOAWAY ids, and how long after
/// `then` lbd closed the connection (`f64::MAX` if it did not).
fn idle_h2_until_goaway(port: u16, extra: &[&str], then: impl FnOnce()) -> (Vec<String>, Vec<u32>, f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h2_pauses.py");
    let mut client = Command::new("python3")
        .arg(&script)
        .args([&port.to_string(), "--until-goaway", "10"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = std::io::BufReader::new(client.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some("idle"), "client: {first:?}");
    std::thread::sleep(Duration::from_millis(300));
    then();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = client.wait().expect("client");
    let mut err = String::new();
    if let Some(mut e) = client.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "client: {rest:?} {err}");
    let goaways = rest.iter().filter_map(|l| l.strip_prefix("goaway ")?.parse().ok()).collect();
    let took = rest
        .last()
        .and_then(|l| l.strip_prefix("closed after "))
        .and_then(|l| l.strip_suffix(" s"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::MAX);
    (rest, goaways, took)
}

/// An idle HTTP/2 connection (one request done, no stream open) gets a GOAWAY naming that
/// request and is closed as soon as lbd drains (SIGTERM), not after the drain timeout.
#[test]
fn drain_sends_an_idle_http2_connection_goaway_and_closes_it_at_once() {
    require("python3");
    let (_a, mut lbd, port, _) = start("h2-drain");
    let (rest, goaways, took) = idle_h2_until_goaway(port, &[], || lbd.proc.signal("TERM"));
    // h2's graceful shutdown: GOAWAY with the largest id, a ping, then the last stream taken.
    assert_eq!(goaways.last(), Some(&1), "{rest:?}");
    assert!(took < 2.0, "closed {took} s after the drain began: {rest:?}");
    assert_eq!(lbd.proc.wait_exit(Duration::from_secs(5)), Some(0), "{}", lbd.stderr());
}

/// A client that never answers the ping of HTTP/2's graceful GOAWAY cannot hold a connection of
/// a removed listener open: once nothing has moved for `idle_timeout`, it is closed.
#[test]
fn a_finishing_connection_that_stays_idle_is_closed_after_idle_timeout() {
    require("python3");
    let a = Backend::start("a");
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = scratch("h2-idle-closing");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    let cfg = https_config(admin, port, port2, &a.addr());
    let bind = format!("bind = \"127.0.0.1:{port}\"\n");
    let with_idle = cfg.replacen(&bind, &format!("{bind}idle_timeout = \"1s\"\n"), 1);
    assert_ne!(with_idle, cfg);
    // The same without the first listener.
    let (head, tail) = cfg.split_once("[[listeners]]\nname = \"tls\"").expect("first listener");
    let second = tail.find("[[listeners]]").expect("second listener");
    let without = format!("{head}{}", &tail[second..]);
    let lbd = Lbd::start_with_copies("h2-idle-closing", admin, &with_idle, &dir, &["a.crt", "a.key", "w.crt", "w.key"]);
    let (rest, goaways, took) = idle_h2_until_goaway(port, &["--no-ping-ack"], || {
        let (status, body) = lbd.reload_with(&without);
        assert_eq!(status, 200, "{body}");
    });
    assert_eq!(goaways.first(), Some(&0x7fff_ffff), "{rest:?}");
    assert!((0.9..4.0).contains(&took), "closed {took} s after the listener was removed: {rest:?}");
}

#[test]
fn bad_tls_config_is_rejected_with_a_clear_reason() {
    let dir = scratch("tlsbad");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "b", "ec", &["b.test"]);
    let base = https_config(1, 2, 3, "127.0.0.1:4").replace("\"w.crt\", key = \"w.key\"", "\"a.crt\", key = \"a.key\"");
    let check = |text: &str| {
        let path = dir.join("lbd.toml");
        std::fs::write(&path, text).expect("write");
        let out = Command::new(LBD).args(["check", "--config"]).arg(&path).output().expect("check");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(check(&base), (true, String::new()));
    let (ok, err) = check(&base.replace("max_version = \"1.2\"", "min_version = \"1.1\""));
    assert!(!ok && err.contains("TLS 1.1 is not supported (rustls does not speak TLS 1.0 or 1.1)"), "{err}");
    let (ok, err) = check(&base.replacen("key = \"a.key\"", "key = \"b.key\"", 1));
    assert!(!ok && err.contains("does not belong to certificate"), "{err}");
    let (ok, err) = check(&base.replacen("cert = \"a.crt\"", "cert = \"missing.crt\"", 1));
    assert!(!ok && err.contains("missing.crt"), "{err}");
    let (ok, err) =
        check(&base.replace("kind = \"https\"\nbind = \"127.0.0.1:2\"", "kind = \"http\"\nbind = \"127.0.0.1:2\""));
    assert!(!ok && err.contains("[listeners.tls] belongs to `kind = \"https\"` listeners"), "{err}");
}

/// A real TLS backend: `openssl s_server -www` on a free port with NAME.crt/NAME.key from `dir`.
fn s_server(dir: &Path, name: &str, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", &format!("{name}.crt"), "-key", &format!("{name}.key")])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let p = Proc { child };
    assert!(wait_until(std::time::Duration::from_secs(5), || port_open(port)), "s_server did not start");
    (p, port)
}

#[test]
fn mtls_required_and_optional_pass_the_verified_identity_and_drop_spoofed_copies() {
    let a = Backend::start("a");
    let (admin, req_port, opt_port) = (free_port(), free_port(), free_port());
    let dir = scratch("mtls");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_ca_and_client(&dir);
    let cfg = https_config(admin, req_port, opt_port, &a.addr())
        .replace("\"w.crt\", key = \"w.key\"", "\"a.crt\", key = \"a.key\"")
        .replacen(
            "  [[listeners.routes]]",
            "  client_auth = \"required\"\n  client_ca = \"ca.crt\"\n  [[listeners.routes]]",
            1,
        )
        .replace("  max_version = \"1.2\"\n  http2 = false", "  client_auth = \"optional\"\n  client_ca = \"ca.crt\"");
    let names = ["a.crt", "a.key", "ca.crt"];
    let _lbd = Lbd::start_with_copies("mtls", admin, &cfg, &dir, &names);
    let cert = dir.join("client.crt").display().to_string();
    let key = dir.join("client.key").display().to_string();
    let spoof = "X-Forwarded-Client-Cert: Hash=forged;DNS=admin.test";
    for port in [req_port, opt_port] {
        for http in ["--http1.1", "--http2"] {
            let (body, status) = curl_status(&[
                "-sk",
                http,
                "--cert",
                &cert,
                "--key",
                &key,
                "-H",
                spoof,
                &format!("https://127.0.0.1:{port}/headers"),
            ]);
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\"x-forwarded-client-cert\": \"Hash="), "{body}");
            assert!(body.contains(";DNS=client1.test\""), "{body}");
            assert!(!body.contains("forged"), "spoofed header passed: {body}");
        }
    }
    // Required: no certificate, no service. A certificate from another CA: refused on both.
    let (_, status) = curl_status(&["-sk", &format!("https://127.0.0.1:{req_port}/")]);
    assert_eq!(status, 0, "a client without a certificate got an answer");
    let other = dir.join("a.crt").display().to_string();
    let other_key = dir.join("a.key").display().to_string();
    for port in [req_port, opt_port] {
        let (_, status) =
            curl_status(&["-sk", "--cert", &other, "--key", &other_key, &format!("https://127.0.0.1:{port}/")]);
        assert_eq!(status, 0, "an untrusted client certificate was accepted on {port}");
    }
    // openssl s_client sees the same: a request sent with the client certificate is answered, one
    // sent without is not (s_client prints its session summary either way, so the answer decides).
    let ask = |extra: &[&str]| {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{req_port}")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
        }
        String::from_utf8_lossy(&child.wait_with_output().expect("s_client output").stdout).into_owned()
    };
    let with = ask(&["-cert", &cert, "-key", &key]);
    assert!(with.starts_with("HTTP/1.1 200") && with.contains("DNS=client1.test"), "{with}");
    let without = ask(&[]);
    assert!(!without.contains("HTTP/1.1"), "answered without a client certificate:\n{without}");
    // Optional: no certificate is fine, and a spoofed identity is dropped.
    let (body, status) = curl_status(&["-sk", "-H", spoof, &format!("https://127.0.0.1:{opt_port}/headers")]);
    assert_eq!(status, 200);
    assert!(!body.contains("x-forwarded-client-cert"), "{body}");
}

#[test]
fn sessions_resume_across_workers_with_shared_tickets() {
    let (_a, _lbd, port, _) = start("resume");
    let dir = scratch("sessions");
    let sess = dir.join("s.pem").display().to_string();
    let first = s_client(port, &["-tls1_2", "-sess_out", &sess]);
    assert!(first.contains("New, TLSv1.2"), "{first}");
    assert!(first.contains("TLS session ticket lifetime hint"), "no session ticket issued:\n{first}");
    // Each new connection may land on either worker (SO_REUSEPORT); all must resume.
    for i in 0..8 {
        let again = s_client(port, &["-tls1_2", "-sess_in", &sess]);
        assert!(again.contains("Reused, TLSv1.2"), "resumption {i} failed:\n{again}");
    }
}

#[test]
fn certificates_rotate_on_disk_under_load_without_a_failed_request() {
    let a = Backend::start("a");
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = scratch("rotate-src");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    make_cert(&dir, "n", "ec", &["new.test"]);
    let names = ["a.crt", "a.key", "w.crt", "w.key"];
    let lbd = Lbd::start_with_copies("rotate", admin, &https_config(admin, port, port2, &a.addr()), &dir, &names);
    assert!(subject(&s_client(port, &["-noservername"])).contains("CN = a.test"));
    // New TLS connections (one handshake each) keep coming while the files are replaced.
    let url = format!("https://127.0.0.1:{port}/[1-60]");
    let load = std::thread::spawn(move || {
        curl(&["-sk", "-f", "-H", "Connection: close", "-o", "/dev/null", "-w", "%{http_code}\n", &url])
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (from, to) in [("n.key", "a.key.tmp"), ("n.crt", "a.crt.tmp")] {
        std::fs::copy(dir.join(from), lbd.dir.join(to)).expect("copy");
    }
    // Key first, then certificate, each by rename; in between the pair does not match and the
    // old certificate keeps serving.
    std::fs::rename(lbd.dir.join("a.key.tmp"), lbd.dir.join("a.key")).expect("rename");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    std::fs::rename(lbd.dir.join("a.crt.tmp"), lbd.dir.join("a.crt")).expect("rename");
    let (codes, ok) = load.join().expect("load thread");
    assert!(ok, "a request failed during rotation:\n{codes}");
    assert_eq!(codes.lines().filter(|c| *c == "200").count(), 60, "{codes}");
    assert!(
        wait_until(std::time::Duration::from_secs(6), || subject(&s_client(port, &["-noservername"]))
            .contains("CN = new.test")),
        "the new certificate is not served:\n{}",
        lbd.stderr()
    );
    assert!(lbd.stderr().contains("do not load; the running certificates stay"), "{}", lbd.stderr());
}

#[test]
fn websocket_over_tls_is_tunnelled() {
    let (_a, _lbd, port, _) = start("wss");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ws_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("wss://127.0.0.1:{port}/ws"))
        .arg("3")
        .output()
        .expect("ws client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().collect::<Vec<_>>(), vec!["a:msg0", "a:msg1", "a:msg2", "binary ok"]);
}

#[test]
fn tls_passthrough_routes_by_sni_and_the_backends_own_certificate_is_seen() {
    let dir = scratch("passthrough");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "d", "ec", &["default.test"]);
    // Real TLS backends with their own certificates: openssl s_server answering HTTP (-www).
    let ((_pa, a_port), (_pd, d_port)) = (s_server(&dir, "a", &[]), s_server(&dir, "d", &[]));
    let (admin, port) = (free_port(), free_port());
    let cfg = format!(
        "workers = 2\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"pass\"\nkind = \"tcp\"\nbind = \"127.0.0.1:{port}\"\ncluster = \"d\"\n\
         [[listeners.sni_routes]]\nserver_name = \"*.a.test\"\ncluster = \"a\"\n\
         [[listeners.sni_routes]]\nserver_name = \"a.test\"\ncluster = \"a\"\n\
         [[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:{a_port}\"]\n\
         [[clusters]]\nname = \"d\"\nendpoints = [\"127.0.0.1:{d_port}\"]\n"
    );
    let lbd = Lbd::start("passthrough", admin, &cfg);
    assert!(subject(&s_client(port, &["-servername", "a.test"])).contains("CN = a.test"));
    assert!(subject(&s_client(port, &["-servername", "x.a.test"])).contains("CN = a.test"));
    assert!(subject(&s_client(port, &["-servername", "other.test"])).contains("CN = default.test"));
    assert!(subject(&s_client(port, &["-noservername"])).contains("CN = default.test"));
    let (body, status) =
        curl_status(&["-sk", "--resolve", &format!("a.test:{port}:127.0.0.1"), &format!("https://a.test:{port}/")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("s_server"), "{body}");
    let m = lbd.metrics();
    assert!(metric_value(&m, "lbd_tcp_connections_total", &["cluster=\"a\""]) >= 3.0, "{m}");
    assert!(metric_value(&m, "lbd_tcp_connections_total", &["cluster=\"d\""]) >= 2.0, "{m}");
}

#[test]
fn upstream_tls_verifies_the_backend_and_can_present_a_client_certificate() {
    let dir = scratch("upstream-tls");
    make_ca_and_client(&dir);
    sign_with_ca(&dir, "backend", "backend.test", "serverAuth");
    let (_plain, p1) = s_server(&dir, "backend", &[]);
    let (_mtls, p2) = s_server(&dir, "backend", &["-Verify", "1", "-CAfile", "ca.crt"]);
    let (admin, port) = (free_port(), free_port());
    let cfg = format!(
        "workers = 1\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:{port}\"\n\
         [[listeners.routes]]\npath_prefix = \"/good\"\ncluster = \"good\"\n\
         [[listeners.routes]]\npath_prefix = \"/wrongname\"\ncluster = \"wrongname\"\n\
         [[listeners.routes]]\npath_prefix = \"/mtls\"\ncluster = \"mtls\"\n\
         [[listeners.routes]]\npath_prefix = \"/nocert\"\ncluster = \"nocert\"\n\
         [[clusters]]\nname = \"good\"\nendpoints = [\"127.0.0.1:{p1}\"]\ntls = {{ ca = \"ca.crt\", server_name = \"backend.test\" }}\n\
         [[clusters]]\nname = \"wrongname\"\nendpoints = [\"127.0.0.1:{p1}\"]\nretries = 0\ntls = {{ ca = \"ca.crt\", server_name = \"other.test\" }}\n\
         [[clusters]]\nname = \"mtls\"\nendpoints = [\"127.0.0.1:{p2}\"]\ntls = {{ ca = \"ca.crt\", server_name = \"backend.test\", cert = \"client.crt\", key = \"client.key\" }}\n\
         [[clusters]]\nname = \"nocert\"\nendpoints = [\"127.0.0.1:{p2}\"]\nretries = 0\ntls = {{ ca = \"ca.crt\", server_name = \"backend.test\" }}\n"
    );
    let names = ["ca.crt", "client.crt", "client.key"];
    let _lbd = Lbd::start_with_copies("upstream-tls", admin, &cfg, &dir, &names);
    let (body, status) = get(port, "/good", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("s_server"), "{body}");
    assert_eq!(get(port, "/wrongname", &[]).1, 502, "a certificate for another name must be refused");
    assert_eq!(get(port, "/mtls", &[]).1, 200, "client certificate presented");
    let (_, status) = get(port, "/nocert", &[]);
    assert!(status == 502, "a backend requiring a client certificate refused lbd without one: {status}");
}

/// A gRPC server (tests/support/grpc_peer.py, with `server_args`) behind lbd over HTTP/2 with
/// TLS: `/lbd.test.Echo/` goes to it, `/dead.Service/` to a port nobody listens on.
struct Grpc {
    _server: Proc,
    lbd: Lbd,
    port: u16,
    ca: String,
    peer: std::path::PathBuf,
}

impl Grpc {
    fn start(name: &str, server_args: &[&str]) -> Self {
        require("python3");
        let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/grpc_peer.py");
        let gport = free_port();
        let child = Command::new("python3")
            .arg(&peer)
            .args(["server", "--port", &gport.to_string()])
            .args(server_args)
            .stdout(Stdio::null())
            .spawn()
            .expect("grpc server (pip install grpcio)");
        let server = Proc { child };
        assert!(
            wait_until(std::time::Duration::from_secs(10), || port_open(gport)),
            "gRPC server did not start (is grpcio installed?)"
        );
        let (admin, port) = (free_port(), free_port());
        let dir = scratch(name);
        make_cert(&dir, "a", "ec", &["a.test"]);
        let cfg = format!(
            "workers = 2\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
             [[listeners]]\nname = \"grpc\"\nkind = \"https\"\nbind = \"127.0.0.1:{port}\"\n\
             [listeners.tls]\ncertificates = [{{ cert = \"a.crt\", key = \"a.key\" }}]\n\
             [[listeners.routes]]\npath_prefix = \"/lbd.test.Echo/\"\ncluster = \"echo\"\n\
             [[listeners.routes]]\npath_prefix = \"/dead.Service/\"\ncluster = \"dead\"\n\
             [[clusters]]\nname = \"echo\"\nprotocol = \"http2\"\nendpoints = [\"127.0.0.1:{gport}\"]\n\
             [[clusters]]\nname = \"dead\"\nprotocol = \"http2\"\nretries = 0\nendpoints = [\"127.0.0.1:{}\"]\n",
            free_port()
        );
        let names = ["a.crt", "a.key"];
        let lbd = Lbd::start_with_copies(name, admin, &cfg, &dir, &names);
        let ca = dir.join("a.crt").display().to_string();
        Self { _server: server, lbd, port, ca, peer }
    }

    /// Runs the gRPC client through lbd: whether it succeeded, and what it printed.
    fn client(&self, extra: &[&str]) -> (bool, String) {
        let out = Command::new("python3")
            .arg(&self.peer)
            .args(["client", "--target", &format!("127.0.0.1:{}", self.port), "--ca", &self.ca, "--name", "a.test"])
            .args(extra)
            .output()
            .expect("grpc client");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

#[test]
fn grpc_end_to_end_over_http2_with_trailers_and_proxy_errors() {
    let grpc = Grpc::start("grpc", &[]);
    let (ok, text) = grpc.client(&[]);
    assert!(ok, "{text}");
    assert!(text.contains("unary: echo:hello"), "{text}");
    assert!(text.contains("stream: part-0,part-1,part-2,part-3,part-4"), "{text}");
    assert!(
        text.contains("fail: NOT_FOUND nothing here"),
        "the backend's grpc-status trailer must reach the client: {text}"
    );
    let (ok, text) = grpc.client(&["--dead"]);
    assert!(ok && text.contains("dead: UNAVAILABLE"), "{text}");
    // One multiplexed upstream connection per worker at most, however many calls.
    assert!(grpc.lbd.metric("lbd_upstream_connections_total", &[]) <= 3.0, "{}", grpc.lbd.metrics());
}

/// A client that resets its HTTP/2 stream (a gRPC call cancelled, no deadline sent) ends the
/// request upstream too: the backend sees its call cancelled within moments, not after the
/// 10 s it would take to answer; the client's connection goes on serving.
#[test]
fn a_client_resetting_an_http2_stream_cancels_its_request_upstream() {
    let dir = scratch("grpc-cancel-mark");
    let mark = dir.join("cancelled");
    let grpc = Grpc::start("grpc-cancel", &["--cancelled-file", &mark.display().to_string()]);
    let (ok, text) = grpc.client(&["--cancel"]);
    assert!(ok, "{text}");
    assert!(text.contains("hang: cancelled") && text.contains("unary: echo:after"), "{text}");
    assert!(
        wait_until(Duration::from_secs(3), || std::fs::read_to_string(&mark).is_ok_and(|s| s == "cancelled")),
        "the backend's call was not cancelled: {text}"
    );
}

#[test]
fn policies_and_cipher_suite_lists_limit_what_clients_may_negotiate() {
    let a = Backend::start("a");
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = scratch("suites");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    let cfg = https_config(admin, port, port2, &a.addr()).replacen(
        "  [[listeners.routes]]",
        "  policy = \"tls13-only\"\n  cipher_suites = [\"TLS13_AES_256_GCM_SHA384\"]\n  [[listeners.routes]]",
        1,
    );
    let names = ["a.crt", "a.key", "w.crt", "w.key"];
    let _lbd = Lbd::start_with_copies("suites", admin, &cfg, &dir, &names);
    assert!(s_client(port, &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"])
        .contains("TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"));
    let out = s_client(port, &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]);
    assert!(!out.contains("Cipher is TLS_AES_128_GCM_SHA256"), "{out}");
    assert!(!s_client(port, &["-tls1_2"]).contains("New, TLSv1.2"), "tls13-only accepted TLS 1.2");
    // A name lbd does not know is a config error naming the ones it does.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, cfg.replace("TLS13_AES_256_GCM_SHA384", "TLS_RSA_WITH_RC4_128_SHA")).expect("write");
    let out = Command::new(LBD).args(["check", "--config"]).arg(&bad).output().expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown cipher suite; lbd offers TLS13_AES_256_GCM_SHA384"),
        "{err}"
    );
}

#[test]
fn nodes_sharing_a_ticket_key_file_resume_each_others_sessions() {
    let a = Backend::start("a");
    let dir = scratch("tickets");
    make_cert(&dir, "a", "ec", &["a.test"]);
    make_cert(&dir, "w", "rsa", &["*.w.test", "w.test"]);
    std::fs::write(
        dir.join("tickets.keys"),
        "# shared by every node\n0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
    )
    .expect("keys");
    let names = ["a.crt", "a.key", "w.crt", "w.key", "tickets.keys"];
    let node = |name: &str, shared: bool| {
        let (admin, port, port2) = (free_port(), free_port(), free_port());
        let mut cfg = https_config(admin, port, port2, &a.addr());
        if shared {
            cfg = format!("tls_ticket_key_file = \"tickets.keys\"\n{cfg}");
        }
        (Lbd::start_with_copies(name, admin, &cfg, &dir, &names), port)
    };
    let sess = dir.join("s.pem").display().to_string();
    for (shared, want) in [(true, "Reused, TLSv1.2"), (false, "New, TLSv1.2")] {
        let ((_n1, p1), (_n2, p2)) = (node("node1", shared), node("node2", shared));
        assert!(s_client(p1, &["-tls1_2", "-sess_out", &sess]).contains("New, TLSv1.2"));
        let out = s_client(p2, &["-tls1_2", "-sess_in", &sess]);
        assert!(out.contains(want), "shared keys {shared}: expected {want}:\n{out}");
    }
}
