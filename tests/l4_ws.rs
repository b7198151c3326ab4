//! L4 TCP forwarding on both IO backends, and WebSocket through the HTTP proxy.

mod support;

use std::process::Command;

use support::*;

fn tcp_config(admin: u16, port: u16, backend: &str, target: &str) -> String {
    format!(
        "workers = 2\nio_backend = \"{backend}\"\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"l4\"\nkind = \"tcp\"\nbind = \"127.0.0.1:{port}\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{target}\"]\n"
    )
}

#[test]
fn tcp_forwarding_works_on_every_io_backend_and_copy() {
    let a = Backend::start("a");
    // (io_backend, the runtime it gets, the L4 copy): `auto` runs io_uring but copies L4 bytes
    // on readiness, the faster and leaner copy; `uring` asks for io_uring's own reads and writes.
    for (backend, runtime, copy) in
        [("auto", "uring", "Readiness"), ("uring", "uring", "Uring"), ("epoll", "epoll", "Readiness")]
    {
        let (admin, port) = (free_port(), free_port());
        let lbd = Lbd::start("l4", admin, &tcp_config(admin, port, backend, &a.addr()));
        let n = 24 << 20;
        let out = Command::new("curl")
            .args(["-s", "--max-time", "60", &format!("http://127.0.0.1:{port}/big?bytes={n}")])
            .output()
            .expect("curl");
        assert_eq!(out.stdout.len(), n, "{backend}");
        assert!(out.stdout.iter().enumerate().all(|(i, b)| usize::from(*b) == i % 251), "{backend}: corrupted");
        let dir = scratch("l4up");
        let file = dir.join("up.bin");
        std::fs::write(&file, vec![7u8; 8 << 20]).expect("write");
        let (body, status) = curl_status(&[
            "-s",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://127.0.0.1:{port}/upload"),
        ]);
        assert_eq!(status, 200, "{backend}");
        assert!(body.contains(&format!("\"bytes\": {}", 8 << 20)), "{backend}: {body}");
        // Many short connections, spread over both workers.
        let (out, ok) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-20]")]);
        assert!(ok);
        assert_eq!(tally(&out).get("a"), Some(&20));
        let m = lbd.metrics();
        assert_eq!(metric_value(&m, "lbd_worker_io_backend", &[&format!("backend=\"{runtime}\"")]), 2.0, "{m}");
        let log = lbd.stderr();
        assert_eq!(log.matches(&format!("l4_copy={copy}")).count(), 2, "{backend}: {log}");
        assert!(metric_value(&m, "lbd_tcp_connections_total", &["listener=\"l4\""]) >= 22.0, "{m}");
    }
}

/// A client that finishes sending (shuts down its write side) and then waits for the answer: the
/// backend sees the end of the request only when lbd passes the half-close on, and its answer,
/// written after that, must come back whole before lbd closes the client's side.
#[test]
fn tcp_forwarding_passes_a_half_close_on_and_returns_the_answer_after_it() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Duration;

    const REQUEST: usize = 3 << 20;
    const ANSWER: usize = 2 << 20;
    for backend in ["auto", "uring", "epoll"] {
        let server = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let target = server.local_addr().expect("backend addr").to_string();
        // The backend: reads the whole request (to EOF), then answers with its length and
        // ANSWER patterned bytes, then closes.
        let peer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("backend read to EOF");
            let intact = got.iter().enumerate().all(|(i, b)| usize::from(*b) == i % 253);
            let mut answer = format!("{} {intact}\n", got.len()).into_bytes();
            answer.extend((0..ANSWER).map(|i| (i % 241) as u8));
            s.write_all(&answer).expect("backend write");
        });
        let (admin, port) = (free_port(), free_port());
        let _lbd = Lbd::start("l4half", admin, &tcp_config(admin, port, backend, &target));
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to lbd");
        c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let request: Vec<u8> = (0..REQUEST).map(|i| (i % 253) as u8).collect();
        c.write_all(&request).expect("send request");
        c.shutdown(Shutdown::Write).expect("half-close");
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).expect("read the answer to EOF");
        peer.join().expect("backend thread");
        let head = format!("{REQUEST} true\n");
        assert!(
            answer.starts_with(head.as_bytes()),
            "{backend}: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(40)])
        );
        let body = &answer[head.len()..];
        assert_eq!(body.len(), ANSWER, "{backend}: answer cut short");
        assert!(body.iter().enumerate().all(|(i, b)| usize::from(*b) == i % 241), "{backend}: answer corrupted");
    }
}

#[test]
fn tcp_listener_retries_a_dead_endpoint() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let dead = format!("127.0.0.1:{}", free_port());
    let cfg = tcp_config(admin, port, "epoll", &a.addr())
        .replace(&format!("endpoints = [\"{}\"]", a.addr()), &format!("endpoints = [\"{dead}\", \"{}\"]", a.addr()));
    let _lbd = Lbd::start("l4retry", admin, &cfg);
    let (out, ok) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-10]")]);
    assert!(ok);
    assert_eq!(tally(&out).get("a"), Some(&10));
}

#[test]
fn websocket_echo_through_lbd() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let _lbd = Lbd::start("ws", admin, &simple_config(admin, port, &[a.addr()], ""));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ws_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("ws://127.0.0.1:{port}/ws"))
        .arg("5")
        .output()
        .expect("ws client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<String> = (0..5).map(|i| format!("a:msg{i}")).chain(["binary ok".to_string()]).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
}
