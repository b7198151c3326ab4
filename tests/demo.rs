//! `lbd demo`, the README's main command: origins, balancer, HTTPS and admin with no setup.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

#[test]
fn demo_runs_with_no_setup_and_stops_cleanly() {
    let child = Command::new(LBD).arg("demo").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("lbd demo");
    let mut demo = Proc { child };
    assert!(wait_until(Duration::from_secs(15), || get(9901, "/ready", &[]).1 == 200), "demo did not become ready");
    let (out, ok) = curl(&["-s", "-H", "Connection: close", "http://127.0.0.1:8080/[1-8]"]);
    assert!(ok);
    // Weights 3:1, smooth round robin per worker (a, a, b, a, …); however the kernel splits the
    // 8 connections over the 2 workers, origin-b gets 1 or 2 of them.
    let (na, nb) = (out.matches("\"origin\":\"origin-a\"").count(), out.matches("\"origin\":\"origin-b\"").count());
    assert!(na + nb == 8 && (1..=2).contains(&nb), "3:1 weighting: {out}");
    assert!(get(8080, "/a/page", &[]).0.contains("\"origin\":\"origin-a\""));
    let users: Vec<String> = (0..4).map(|_| get(8080, "/", &["Host: api.localhost", "X-User: alice"]).0).collect();
    assert!(users.windows(2).all(|w| w[0].split(',').next() == w[1].split(',').next()), "{users:?}");
    let (body, _) = curl(&["-sk", "--http2", "-w", "\n%{http_version}", "https://localhost:8443/hello"]);
    assert!(body.ends_with("\n2") && body.contains("\"x_forwarded_proto\":\"https\""), "{body}");
    assert!(body.contains("\"x_forwarded_proto\":\"https\""));
    // HTTP/3 on UDP 8443 beside it (aioquic client), advertised by Alt-Svc on TCP.
    let (head, _) = curl(&["-sk", "-D-", "-o", "/dev/null", "https://localhost:8443/"]);
    assert!(head.to_ascii_lowercase().contains("alt-svc: h3=\":8443\""), "{head}");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h3_client.py");
    let h3 = Command::new("python3").arg(script).args(["8443", "/over-h3"]).output().expect("h3_client.py");
    let h3 = String::from_utf8_lossy(&h3.stdout);
    assert!(h3.contains("\"status\": 200") && h3.contains("/over-h3"), "HTTP/3 through the demo: {h3}");
    assert!(get(9901, "/metrics", &[]).0.contains("lbd_requests_total{listener=\"demo-http\""));
    demo.signal("TERM");
    assert_eq!(demo.wait_exit(Duration::from_secs(10)), Some(0));
}
