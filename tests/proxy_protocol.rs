//! PROXY protocol: HAProxy (as an NLB would) sends v1/v2 headers to lbd; lbd sends them to a
//! backend that checks them.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn start_haproxy(dir: &Path, cfg: &str, ports: &[u16]) -> Proc {
    require("haproxy");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("write haproxy.cfg");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy");
    let p = Proc { child };
    for port in ports {
        assert!(wait_until(Duration::from_secs(5), || port_open(*port)), "haproxy did not listen on {port}");
    }
    p
}

#[test]
fn client_addresses_arrive_through_haproxy_and_only_trusted_headers_count() {
    let a = Backend::start("a");
    let (admin, trusted, untrusted, hv1, hv2) = (free_port(), free_port(), free_port(), free_port(), free_port());
    let cfg = format!(
        "workers = 2\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"nlb\"\nbind = \"127.0.0.1:{trusted}\"\nproxy_protocol = [\"127.0.0.1/32\"]\nheader_read_timeout = \"1s\"\n\
         [[listeners.routes]]\ncluster = \"c\"\n\
         [[listeners]]\nname = \"direct\"\nbind = \"127.0.0.1:{untrusted}\"\nproxy_protocol = [\"10.0.0.0/8\"]\n\
         [[listeners.routes]]\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"{}\"]\n",
        a.addr()
    );
    let lbd = Lbd::start("pp-in", admin, &cfg);
    let dir = scratch("haproxy");
    let _haproxy = start_haproxy(
        &dir,
        &format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen v1\n  bind 127.0.0.1:{hv1}\n  server lbd 127.0.0.1:{trusted} send-proxy\n\
             listen v2\n  bind 127.0.0.1:{hv2}\n  server lbd 127.0.0.1:{trusted} send-proxy-v2\n"
        ),
        &[hv1, hv2],
    );
    for port in [hv1, hv2] {
        // The client speaks from 127.0.0.7; lbd's TCP peer is HAProxy on 127.0.0.1.
        let (body, ok) = curl(&["-s", "--interface", "127.0.0.7", &format!("http://127.0.0.1:{port}/headers")]);
        assert!(ok, "{body}");
        assert!(body.contains("\"x-forwarded-for\": \"127.0.0.7\""), "port {port}: {body}");
    }
    // A trusted peer that sends no header is cut off, and counted.
    let resp = http_raw(trusted, "GET /headers HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.is_empty(), "served without a PROXY header: {resp:?}");
    assert!(lbd.metric("lbd_proxy_protocol_errors_total", &[]) >= 1.0);
    // An untrusted peer's header is not honoured: it is just a bad request.
    let resp =
        http_raw(untrusted, "PROXY TCP4 203.0.113.9 127.0.0.1 1111 80\r\nGET /headers HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    assert!(!resp.contains("203.0.113.9"));
}

#[test]
fn lbd_sends_proxy_headers_to_backends_over_l7_and_l4() {
    let bport = free_port();
    let _backend = python_server("proxy_backend.py", &["--port", &bport.to_string()], bport, "python3");
    let (admin, http, tcp) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "workers = 2\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:{http}\"\n[[listeners.routes]]\ncluster = \"v1\"\n\
         [[listeners]]\nname = \"l4\"\nkind = \"tcp\"\nbind = \"127.0.0.1:{tcp}\"\ncluster = \"v2\"\n\
         [[clusters]]\nname = \"v1\"\nendpoints = [\"127.0.0.1:{bport}\"]\nsend_proxy_protocol = \"v1\"\n\
         [[clusters]]\nname = \"v2\"\nendpoints = [\"127.0.0.1:{bport}\"]\nsend_proxy_protocol = \"v2\"\n"
    );
    let _lbd = Lbd::start("pp-out", admin, &cfg);
    let (body, status) = curl_status(&["-s", "--interface", "127.0.0.9", &format!("http://127.0.0.1:{http}/")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("v1 127.0.0.9:"), "{body}");
    let (body, status) = curl_status(&["-s", "--interface", "127.0.0.9", &format!("http://127.0.0.1:{tcp}/")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("v2 127.0.0.9:"), "{body}");
}
