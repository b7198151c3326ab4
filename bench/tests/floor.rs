//! `lb-bench floor` in front of `lb-bench origin`, driven by curl and by `lb-bench load`: the
//! yardstick must proxy what the scenario sends, and refuse what it does not forward.

mod support;

use std::process::{Command, Stdio};

use support::{free_ports, start_in, Proc, BIN};

/// Starts lb-bench with `args` and waits until `port` accepts.
fn start(args: &[&str], port: u16) -> Proc {
    start_in(std::path::Path::new("."), BIN, args, &[port])
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is needed by this test (apt-get install curl)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_floor_proxies_keep_alive_requests_and_refuses_what_it_cannot_forward() {
    let ports = free_ports(2);
    let (o, f) = (ports[0], ports[1]);
    let _origin = start(&["origin", "--listen", &format!("127.0.0.1:{o}")], o);
    let _floor = start(&["floor", "--listen", &format!("127.0.0.1:{f}"), "--backend", &format!("127.0.0.1:{o}")], f);
    let url = format!("http://127.0.0.1:{f}");

    assert_eq!(curl(&[&format!("{url}/")]), "hello\n");
    assert_eq!(curl(&[&format!("{url}/large")]).len(), 65536);
    let body = "x".repeat(100_000);
    assert_eq!(curl(&["--data-binary", &body, &format!("{url}/echo")]), body);
    // Two requests on one connection: curl connects once.
    let two =
        curl(&["-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ", &format!("{url}/"), &format!("{url}/")]);
    assert_eq!(two, "1 0 ");
    let chunked = curl(&["-i", "-H", "Transfer-Encoding: chunked", "--data-binary", "abc", &format!("{url}/echo")]);
    assert!(chunked.starts_with("HTTP/1.1 501 "), "{chunked}");
    let big = format!("X-Big: {}", "a".repeat(70_000));
    let too_big = curl(&["-i", "-H", &big, &format!("{url}/")]);
    assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");

    let load = Command::new(BIN).args(["load", &format!("{url}/"), "-c", "8", "-n", "5000"]).output().expect("load");
    let text = String::from_utf8_lossy(&load.stdout);
    assert!(text.contains("5000 ok, 0 errors"), "{text}");
}

#[test]
fn over_tls_the_floor_speaks_http2_or_http1_as_alpn_says() {
    let dir = std::env::temp_dir().join(format!("lb-bench-floor-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed by this test (apt-get install openssl)");
    assert!(made.success());
    let ports = free_ports(2);
    let (o, f) = (ports[0], ports[1]);
    let _origin = start(&["origin", "--listen", &format!("127.0.0.1:{o}")], o);
    let (cert_s, key_s) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let _floor = start(
        &[
            "floor",
            "--listen",
            &format!("127.0.0.1:{f}"),
            "--backend",
            &format!("127.0.0.1:{o}"),
            "--tls",
            &cert_s,
            &key_s,
        ],
        f,
    );
    let url = format!("https://127.0.0.1:{f}/");
    assert_eq!(curl(&["-k", "--http2", "-w", " %{http_version}", &url]), "hello\n 2");
    assert_eq!(curl(&["-k", "--http1.1", "-w", " %{http_version}", &url]), "hello\n 1.1");
    let large = curl(&["-k", "--http2", &format!("{url}large")]);
    assert_eq!(large.len(), 65536);
    let with_body = curl(&["-k", "--http2", "-i", "--data-binary", "abc", &format!("{url}echo")]);
    assert!(with_body.starts_with("HTTP/2 501"), "{with_body}");
    let load =
        Command::new(BIN).args(["load", &url, "--h2", "-c", "4", "-m", "8", "-n", "5000"]).output().expect("load");
    let text = String::from_utf8_lossy(&load.stdout);
    assert!(text.contains("5000 ok, 0 errors"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
