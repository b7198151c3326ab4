//! The peers compare.sh measures lbd against, as `bench/lib.sh` configures them, and
//! `lb-bench floor`: through each, the origin gets the request lbd sends it by default
//! (tests/proxy.rs checks lbd's own): `Host` as the client sent it, `X-Forwarded-For` with the
//! client appended, `X-Forwarded-Proto`, `X-Forwarded-Host`, and `X-Request-Id`, the client's
//! kept or else a fresh one per request. The `bare` configs that compare.sh shows for reference
//! add none of them.
//!
//! Real servers: nginx, HAProxy and Caddy from Debian, and `tests/support/backend.py` (aiohttp)
//! as the origin, which answers `/headers` with what it received. Each listens on 127.0.0.1 and
//! is stopped by its PID.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{free_ports, start_in, Proc, BIN};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts `program args` from the repository's top and waits until each of `ports` accepts.
fn start(program: &str, args: &[&str], ports: &[u16]) -> Proc {
    start_in(&repo(), program, args, ports)
}

/// Runs `script` in bash with bench/lib.sh sourced, `DIR` and `ORIGIN` set.
fn lib_sh(dir: &Path, origin: u16, script: &str) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; . bench/lib.sh; {script}"))
        .current_dir(repo())
        .env("DIR", dir)
        .env("ORIGIN", origin.to_string())
        .output()
        .expect("bash");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What the origin received for `GET /headers` through `url`, with the extra curl `args`.
fn seen(url: &str, args: &[&str]) -> serde_json::Map<String, Value> {
    let out = Command::new("curl")
        .args(["-sSk", "--max-time", "10", "-H", "Host: shop.example:8443"])
        .args(args)
        .arg(format!("{url}/headers"))
        .output()
        .expect("curl is needed by this test (apt-get install curl)");
    let body = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str(&body) {
        Ok(Value::Object(m)) => m,
        _ => panic!("{url}: not the origin's JSON: {body:?} ({})", String::from_utf8_lossy(&out.stderr)),
    }
}

fn get<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Asserts that the origin gets through `url` what lbd sends it.
fn forwards_as_lbd_does(name: &str, url: &str, proto: &str, args: &[&str]) {
    let first = seen(url, args);
    let m = &first;
    assert_eq!(get(m, "host"), Some("shop.example:8443"), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-for"), Some("127.0.0.1"), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-proto"), Some(proto), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-host"), Some("shop.example:8443"), "{name}: {m:?}");
    let id = get(m, "x-request-id").unwrap_or_else(|| panic!("{name}: no request id: {m:?}"));
    assert!(id.len() >= 16, "{name}: {id:?}");
    let second = seen(url, args);
    assert_ne!(get(&second, "x-request-id"), Some(id), "{name}: the same id twice");
    // A client's own: its request id kept, its X-Forwarded-For appended to, its claims of
    // protocol and host replaced.
    let mut with = args.to_vec();
    with.extend(["-H", "X-Request-Id: trace-42", "-H", "X-Forwarded-For: 203.0.113.9"]);
    with.extend(["-H", "X-Forwarded-Proto: gopher", "-H", "X-Forwarded-Host: evil.example"]);
    let m = &seen(url, &with);
    assert_eq!(get(m, "x-request-id"), Some("trace-42"), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-proto"), Some(proto), "{name}: {m:?}");
    assert_eq!(get(m, "x-forwarded-host"), Some("shop.example:8443"), "{name}: {m:?}");
}

#[test]
fn every_balancer_compared_sends_the_origin_what_lbd_sends() {
    let dir = std::env::temp_dir().join(format!("lb-bench-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let p = free_ports(15);
    let origin = p[14];
    lib_sh(
        &dir,
        origin,
        &format!(
            r#"make_cert "$DIR"; cat "$DIR/cert.pem" "$DIR/key.pem" > "$DIR/haproxy.pem"
            nginx_proxy_conf {} {} > "$DIR/nginx.conf"
            nginx_proxy_conf {} {} bare > "$DIR/nginx-bare.conf"
            haproxy_proxy_conf {} {} {} > "$DIR/haproxy.cfg"
            haproxy_proxy_conf {} {} {} bare > "$DIR/haproxy-bare.cfg"
            caddy_proxy_conf {} {} > "$DIR/Caddyfile""#,
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
        ),
    );
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let origin_s = origin.to_string();
    let _origin = start("python3", &["tests/support/backend.py", "--port", &origin_s, "--name", "o"], &[origin]);
    let _nginx = start("nginx", &["-c", &d("nginx.conf")], &[p[0], p[1]]);
    let _nginx_bare = start("nginx", &["-c", &d("nginx-bare.conf")], &[p[2], p[3]]);
    let _haproxy = start("haproxy", &["-db", "-f", &d("haproxy.cfg")], &[p[4], p[5]]);
    let _haproxy_bare = start("haproxy", &["-db", "-f", &d("haproxy-bare.cfg")], &[p[7], p[8]]);
    let _caddy = start("caddy", &["run", "--config", &d("Caddyfile"), "--adapter", "caddyfile"], &[p[10], p[11]]);
    let backend = format!("127.0.0.1:{origin}");
    let (f, ft) = (p[12], p[13]);
    let _floor = start(BIN, &["floor", "--listen", &format!("127.0.0.1:{f}"), "--backend", &backend], &[f]);
    let (cert, key) = (d("cert.pem"), d("key.pem"));
    let tls = ["floor", "--listen", &format!("127.0.0.1:{ft}"), "--backend", &backend, "--tls", &cert, &key];
    let _floor_tls = start(BIN, &tls, &[ft]);

    let http = |port: u16| format!("http://127.0.0.1:{port}");
    let https = |port: u16| format!("https://127.0.0.1:{port}");
    let h2 = ["--http2"];
    forwards_as_lbd_does("nginx", &http(p[0]), "http", &[]);
    forwards_as_lbd_does("nginx over HTTP/2", &https(p[1]), "https", &h2);
    forwards_as_lbd_does("HAProxy", &http(p[4]), "http", &[]);
    forwards_as_lbd_does("HAProxy over HTTP/2", &https(p[5]), "https", &h2);
    forwards_as_lbd_does("Caddy", &http(p[10]), "http", &[]);
    // Caddy's TLS site is named localhost.
    let caddy_tls = format!("https://localhost:{}", p[11]);
    let resolve = format!("localhost:{}:127.0.0.1", p[11]);
    forwards_as_lbd_does("Caddy over HTTP/2", &caddy_tls, "https", &["--http2", "--resolve", &resolve]);
    forwards_as_lbd_does("the floor", &http(f), "http", &[]);
    forwards_as_lbd_does("the floor over HTTP/2", &https(ft), "https", &h2);

    for (name, url, args) in [("nginx-bare", http(p[2]), &[][..]), ("haproxy-bare", https(p[8]), &h2[..])] {
        let m = seen(&url, args);
        let added: Vec<&String> = m.keys().filter(|k| k.starts_with("x-forwarded-") || *k == "x-request-id").collect();
        assert!(added.is_empty(), "{name} adds {added:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
