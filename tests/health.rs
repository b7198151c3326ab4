//! Active health checks, passive ejection and fail-open, with real origins that go down.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn an_endpoint_that_goes_down_is_taken_out_and_comes_back() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let a_port = a.port;
    let (admin, port) = (free_port(), free_port());
    let extra =
        "[clusters.health_check]\npath = \"/healthz\"\ninterval = \"150ms\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n\
                 [clusters.outlier]\nconsecutive_failures = 0";
    let lbd = Lbd::start("health", admin, &simple_config(admin, port, &[a.addr(), b.addr()], extra));
    let ep_a = format!("endpoint=\"127.0.0.1:{a_port}\"");
    assert_eq!(lbd.metric("lbd_endpoint_healthy", &[&ep_a]), 1.0);

    drop(a);
    assert!(
        wait_until(Duration::from_secs(5), || lbd.metric("lbd_endpoint_healthy", &[&ep_a]) == 0.0),
        "a was not marked down:\n{}",
        lbd.metrics()
    );
    // Every request now goes to b, and none fails.
    let (out, ok) = curl(&["-s", "-f", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-20]")]);
    assert!(ok, "a request failed while a was down");
    assert_eq!(tally(&out).get("b"), Some(&20), "{out}");

    let _a = Backend::start_on("a", a_port, &[]);
    assert!(
        wait_until(Duration::from_secs(5), || lbd.metric("lbd_endpoint_healthy", &[&ep_a]) == 1.0),
        "a did not come back:\n{}",
        lbd.metrics()
    );
    let (out, _) = curl(&["-s", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-20]")]);
    let t = tally(&out);
    assert!(t.get("a").copied().unwrap_or(0) >= 8, "traffic did not return to a: {t:?}");
}

#[test]
fn consecutive_5xx_eject_an_endpoint_passively() {
    let bad = Backend::start_with("bad", &["--fail"]);
    let good = Backend::start("good");
    let (admin, port) = (free_port(), free_port());
    let extra = "[clusters.outlier]\nconsecutive_failures = 3\nbase_ejection = \"30s\"";
    let cfg = simple_config(admin, port, &[bad.addr(), good.addr()], extra).replace("workers = 2", "workers = 1");
    let lbd = Lbd::start("outlier", admin, &cfg);
    let (out, _) = curl(&["-s", &format!("http://127.0.0.1:{port}/[1-40]")]);
    let failing = out.lines().filter(|l| l.contains("failing")).count();
    assert_eq!(failing, 3, "exactly the 3 failures that trigger ejection reach the client:\n{out}");
    assert_eq!(lbd.metric("lbd_outlier_ejections_total", &[]), 1.0);
    assert_eq!(lbd.metric("lbd_endpoint_ejected_workers", &[&format!("endpoint=\"{}\"", bad.addr())]), 1.0);
}

#[test]
fn a_cluster_with_no_healthy_endpoint_fails_open_and_says_so() {
    let a = Backend::start_with("a", &["--unhealthy"]);
    let b = Backend::start_with("b", &["--unhealthy"]);
    let (admin, port) = (free_port(), free_port());
    let extra = "[clusters.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\nfall = 1";
    let lbd = Lbd::start("failopen", admin, &simple_config(admin, port, &[a.addr(), b.addr()], extra));
    assert!(wait_until(Duration::from_secs(5), || lbd.metric("lbd_endpoint_healthy", &[]) == 0.0
        && lbd.metric("lbd_cluster_fail_open", &["cluster=\"c\""]) == 1.0));
    let (out, ok) = curl(&["-s", "-f", "-H", "Connection: close", &format!("http://127.0.0.1:{port}/[1-10]")]);
    assert!(ok);
    assert_eq!(tally(&out).values().sum::<usize>(), 10);
    assert!(lbd.metric("lbd_cluster_fail_open_requests_total", &["cluster=\"c\""]) >= 10.0);
}

#[test]
fn grpc_health_checks_follow_the_servers_serving_status() {
    let dir = scratch("grpc-health");
    let flag = dir.join("not-serving");
    let gport = free_port();
    let port_arg = gport.to_string();
    let args = [
        std::ffi::OsStr::new("server"),
        "--port".as_ref(),
        port_arg.as_ref(),
        "--unhealthy-file".as_ref(),
        flag.as_ref(),
    ];
    let _server = python_server("grpc_peer.py", &args, gport, "pip install grpcio");
    let (admin, port) = (free_port(), free_port());
    let extra =
        "protocol = \"http2\"\n[clusters.health_check]\nkind = \"grpc\"\ninterval = \"150ms\"\nrise = 1\nfall = 1";
    let lbd = Lbd::start("grpc-health", admin, &simple_config(admin, port, &[format!("127.0.0.1:{gport}")], extra));
    let ep = format!("endpoint=\"127.0.0.1:{gport}\"");
    std::fs::write(&flag, "").expect("flag");
    assert!(
        wait_until(Duration::from_secs(5), || lbd.metric("lbd_endpoint_healthy", &[&ep]) == 0.0),
        "NOT_SERVING not seen:\n{}",
        lbd.metrics()
    );
    std::fs::remove_file(&flag).expect("unflag");
    assert!(
        wait_until(Duration::from_secs(5), || lbd.metric("lbd_endpoint_healthy", &[&ep]) == 1.0),
        "SERVING not seen:\n{}",
        lbd.metrics()
    );
}
