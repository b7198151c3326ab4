//! Config checking, reload under load, bad reloads, graceful shutdown and the admin API.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn check_reports_the_line_of_a_bad_key() {
    let dir = scratch("check");
    let path = dir.join("bad.toml");
    let text = "workers = 1\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\nidle_timout = \"5s\"\n[[listeners.routes]]\ncluster = \"nope\"\n";
    std::fs::write(&path, text).expect("write");
    let out = Command::new(LBD).args(["check", "--config"]).arg(&path).output().expect("lbd check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{}:5:1: unknown key `idle_timout`", path.display())), "{err}");
    assert!(err.contains(&format!("{}:7:11: no cluster named `nope`", path.display())), "{err}");
}

#[test]
fn shipped_configs_are_valid() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut n = 0;
    for entry in std::fs::read_dir(conf).expect("conf/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(LBD).args(["check", "--config"]).arg(&path).output().expect("lbd check");
            assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            n += 1;
        }
    }
    assert!(n >= 2, "expected example configs in conf/");
}

/// h2load's summary: (total, succeeded, failed, errored, 2xx).
fn h2load_summary(out: &str) -> (u64, u64, u64, u64, u64) {
    let num = |line: &str, key: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(key))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let req = out.lines().find(|l| l.starts_with("requests:")).unwrap_or("");
    let req = req.trim_start_matches("requests:");
    let codes = out.lines().find(|l| l.starts_with("status codes:")).unwrap_or("").trim_start_matches("status codes:");
    (num(req, "total"), num(req, "succeeded"), num(req, "failed"), num(req, "errored"), num(codes, "2xx"))
}

#[test]
fn reload_during_load_loses_no_request() {
    require("h2load");
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let (admin, port, extra_port) = (free_port(), free_port(), free_port());
    let base = simple_config(admin, port, &[a.addr(), b.addr()], "");
    let with_listener = format!(
        "{base}\n[[listeners]]\nname = \"extra\"\nbind = \"127.0.0.1:{extra_port}\"\n[[listeners.routes]]\ncluster = \"c\"\n"
    );
    let weighted = base.replace(
        &format!("endpoints = [\"{}\", \"{}\"]", a.addr(), b.addr()),
        &format!("endpoints = [{{ address = \"{}\", weight = 5 }}, \"{}\"]", a.addr(), b.addr()),
    );
    assert_ne!(weighted, base);
    let lbd = Lbd::start("reload", admin, &base);
    let load = Command::new("h2load")
        .args(["--h1", "-n", "40000", "-c", "8", &format!("http://127.0.0.1:{port}/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h2load");
    let started = Instant::now();
    let mut reloads = 0;
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(150));
        let cfg = [&with_listener, &weighted, &base][round % 3];
        if round == 3 {
            // SIGHUP path.
            std::fs::write(&lbd.config, cfg).expect("write");
            lbd.proc.signal("HUP");
            std::thread::sleep(Duration::from_millis(200));
        } else {
            let (status, body) = lbd.reload_with(cfg);
            assert_eq!(status, 200, "{body}");
        }
        reloads += 1;
        if round % 3 == 0 {
            assert!(
                wait_until(Duration::from_secs(3), || get(extra_port, "/", &[]).1 == 200),
                "added listener does not serve"
            );
        } else if round % 3 == 1 {
            assert!(wait_until(Duration::from_secs(3), || !port_open(extra_port)), "removed listener still accepts");
        }
    }
    let out = load.wait_with_output().expect("h2load output");
    let text = String::from_utf8_lossy(&out.stdout);
    let (total, ok, failed, errored, s2xx) = h2load_summary(&text);
    assert_eq!((total, ok, failed, errored, s2xx), (40000, 40000, 0, 0, 40000), "{text}");
    assert!(lbd.metric("lbd_config_generation", &[]) >= 7.0);
    eprintln!("{reloads} reloads during {:?} of load", started.elapsed());
}

#[test]
fn a_bad_reload_is_rejected_and_the_running_config_stays() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let good = simple_config(admin, port, &[a.addr()], "");
    let lbd = Lbd::start("badreload", admin, &good);
    let bad = good.replace("name = \"web\"", "name = \"web\"\nmax_conections = 5");
    let (status, body) = lbd.reload_with(&bad);
    assert_eq!(status, 400, "{body}");
    let line = bad.lines().position(|l| l.starts_with("max_conections")).expect("line") + 1;
    assert!(body.contains(&format!("lbd.toml:{line}:1: unknown key `max_conections`")), "{body}");
    assert!(body.contains("config generation 1 keeps running"), "{body}");
    assert_eq!(get(port, "/", &[]), ("a\n".to_string(), 200));
    let (cfg, _) = curl(&["-s", &format!("http://127.0.0.1:{admin}/config")]);
    assert_eq!(cfg, good);
    // A listener address another program holds is refused before any worker sees the config.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    let clash = format!("{good}\n[[listeners]]\nname = \"clash\"\nbind = \"127.0.0.1:{taken}\"\n[[listeners.routes]]\ncluster = \"c\"\n");
    let (status, body) = lbd.reload_with(&clash);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cannot bind"), "{body}");
    assert_eq!(lbd.metric("lbd_config_generation", &[]), 1.0);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let mut lbd = Lbd::start("drain", admin, &simple_config(admin, port, &[a.addr()], ""));
    let slow = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{port}/slow?ms=1500")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(400));
    lbd.proc.signal("TERM");
    assert!(wait_until(Duration::from_secs(2), || !port_open(port)), "still accepting after SIGTERM");
    let out = slow.wait_with_output().expect("curl output");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n\n200");
    assert_eq!(lbd.proc.wait_exit(Duration::from_secs(8)), Some(0), "{}", lbd.stderr());
}

/// A keep-alive connection to `port` that has had one answer and is now idle.
fn idle_keep_alive(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    s
}

/// How long until the server closes `s` (EOF or reset), if it does within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    while t.elapsed() < limit {
        let _ = s.set_read_timeout(Some(limit.saturating_sub(t.elapsed()).max(Duration::from_millis(1))));
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(t.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(_) | Err(_) => {}
        }
    }
    None
}

/// Idle keep-alive connections are closed at once when their listener is removed by a reload
/// and when the worker drains (SIGTERM), not after `idle_timeout` or the drain timeout.
#[test]
fn listener_removal_and_drain_close_idle_keep_alive_connections_at_once() {
    let a = Backend::start("a");
    let (admin, port, extra_port) = (free_port(), free_port(), free_port());
    let base = simple_config(admin, port, &[a.addr()], "");
    let with_listener = format!(
        "{base}\n[[listeners]]\nname = \"extra\"\nbind = \"127.0.0.1:{extra_port}\"\n[[listeners.routes]]\ncluster = \"c\"\n"
    );
    let mut lbd = Lbd::start("idle-drain", admin, &with_listener);
    let mut on_extra = idle_keep_alive(extra_port);
    let mut on_base = idle_keep_alive(port);
    let (status, body) = lbd.reload_with(&base);
    assert_eq!(status, 200, "{body}");
    let took = closed_within(&mut on_extra, Duration::from_secs(5));
    assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "removed listener's idle connection: {took:?}");
    // The kept listener's connection is untouched by the reload.
    assert_eq!(closed_within(&mut on_base, Duration::from_millis(300)), None, "kept listener's connection closed");
    lbd.proc.signal("TERM");
    let took = closed_within(&mut on_base, Duration::from_secs(5));
    assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "idle connection on drain: {took:?}");
    assert_eq!(lbd.proc.wait_exit(Duration::from_secs(5)), Some(0), "{}", lbd.stderr());
}

#[test]
fn admin_api_answers() {
    let a = Backend::start("a");
    let (admin, port) = (free_port(), free_port());
    let lbd = Lbd::start("admin", admin, &simple_config(admin, port, &[a.addr()], ""));
    assert_eq!(get(admin, "/healthz", &[]), ("ok\n".to_string(), 200));
    assert_eq!(get(admin, "/ready", &[]), ("ready\n".to_string(), 200));
    assert_eq!(get(admin, "/nope", &[]).1, 404);
    assert_eq!(get(admin, "/reload", &[]).1, 405);
    let _ = get(port, "/", &[]);
    let m = lbd.metrics();
    for name in [
        "lbd_requests_total{listener=\"web\",route=\"web/0\",cluster=\"c\",class=\"2xx\"} 1",
        "lbd_request_duration_seconds_count 1",
        "lbd_worker_io_backend{worker=\"0\"",
        "lbd_worker_io_backend{worker=\"1\"",
        "lbd_downstream_connections_active",
        "lbd_upstream_connections_active 1",
        "lbd_endpoint_healthy{cluster=\"c\"",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
}

/// lbd runs on jemalloc with background purging (src/main.rs, .cargo/config.toml). The options
/// are built in only when cargo reads the workspace's config, so a build that missed them would
/// otherwise keep, while idle, whatever a burst of requests grew its memory to, and say nothing.
#[test]
fn lbd_runs_on_jemalloc_with_background_purging() {
    let out = Command::new(LBD)
        .args(["check", "--config", "conf/demo.toml"])
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("lbd check");
    assert!(out.status.success(), "{out:?}");
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(stats.contains("jemalloc statistics"), "lbd is not running on jemalloc: {stats}");
    assert!(stats.contains("opt.background_thread: true"), "{stats}");
    assert!(stats.contains("opt.dirty_decay_ms: 1000"), "{stats}");
}

#[test]
fn doctor_audits_the_host_and_the_config() {
    let dir = scratch("doctor");
    let path = dir.join("many.toml");
    std::fs::write(&path, "workers = 64\n[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:2\"]\n").expect("write");
    let out = Command::new(LBD).args(["doctor", "--config"]).arg(&path).output().expect("lbd doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workers = 64 but this host has"), "{text}");
    assert!(text.lines().last().is_some_and(|l| l.starts_with("lbd doctor: ")), "{text}");
    // Critical findings (and only those) make the exit status non-zero.
    assert_eq!(out.status.success(), !text.contains("CRITICAL "), "{text}");
}

/// `Cpus_allowed_list` of each of lbd's worker threads, by worker name.
fn worker_cpus(pid: u32) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("lbd-worker-") {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or("").trim();
        out.insert(comm.trim().to_string(), cpus.to_string());
    }
    out
}

/// Each worker is pinned to a core of its own by default; `pin_workers = false` leaves them on
/// every core the process may use.
#[test]
fn workers_are_pinned_to_cores_unless_the_config_says_not() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two cores to tell pinned from unpinned workers");
    let backend = Backend::start("pin");
    let process_cpus = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|s| s.trim().to_string()))
        .expect("Cpus_allowed_list");
    for pin in [None, Some(false)] {
        let (admin, port) = (free_port(), free_port());
        let mut config = simple_config(admin, port, &[backend.addr()], "");
        if let Some(p) = pin {
            config = format!("pin_workers = {p}\n{config}");
        }
        let lbd = Lbd::start("pin", admin, &config);
        let workers = worker_cpus(lbd.proc.pid());
        assert_eq!(workers.len(), 2, "{workers:?}");
        let lists: Vec<&String> = workers.values().collect();
        if pin.is_none() {
            for l in &lists {
                assert!(l.parse::<usize>().is_ok(), "a pinned worker runs on one core: {workers:?}");
            }
            assert_ne!(lists[0], lists[1], "two workers, two cores: {workers:?}");
        } else {
            for l in &lists {
                assert_eq!(**l, process_cpus, "an unpinned worker may run on every core: {workers:?}");
            }
        }
        assert!(lbd.stderr().contains(&format!("pinned={}", pin.unwrap_or(true))), "{}", lbd.stderr());
    }
}
