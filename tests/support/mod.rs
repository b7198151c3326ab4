//! Helpers for the integration tests: start the real `lbd` binary, real origin servers
//! (`backend.py`, aiohttp) and real clients (curl, h2load), each stopped by its own PID.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const LBD: &str = env!("CARGO_BIN_EXE_lbd");

/// Fails loudly when a tool the test needs is missing.
pub fn require(tool: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "`{tool}` is required by this test but is not installed; run scripts/test.sh, which installs it");
}

/// A port nobody uses right now, for TCP and UDP alike (https listeners also bind UDP for
/// HTTP/3), never handed out twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        // Bound, never listening: a listener here, even for an instant, would make another
        // test's `port_open` on this port succeed before its own server listens.
        let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        tcp.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("free port");
        let port = tcp.local_addr().ok().and_then(|a| a.as_socket()).expect("local addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lbd-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Polls `f` until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

pub fn port_open(port: u16) -> bool {
    // A connect to a port nobody listens on can pick that same port as its source and connect
    // to itself (TCP simultaneous open): that is not a listener.
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200))
        .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// A child process stopped (SIGTERM, then SIGKILL) by its PID when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status();
    }

    /// Waits up to `limit` for exit; returns the exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// A test origin (`tests/support/backend.py`).
pub struct Backend {
    pub name: String,
    pub port: u16,
    pub proc: Proc,
}

impl Backend {
    pub fn start(name: &str) -> Self {
        Self::start_on(name, free_port(), &[])
    }

    pub fn start_with(name: &str, flags: &[&str]) -> Self {
        Self::start_on(name, free_port(), flags)
    }

    pub fn start_on(name: &str, port: u16, flags: &[&str]) -> Self {
        let mut args = vec!["--port".to_string(), port.to_string(), "--name".to_string(), name.to_string()];
        args.extend(flags.iter().map(|f| f.to_string()));
        let proc = python_server("backend.py", &args, port, "python3 with aiohttp");
        Self { name: name.to_string(), port, proc }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts `tests/support/SCRIPT` with python3 and waits (15 s at most) until it listens on
/// `port`; `needs` names what it needs, for the failure message.
pub fn python_server(script: &str, args: &[impl AsRef<std::ffi::OsStr>], port: u16, needs: &str) -> Proc {
    require("python3");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script);
    let child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let proc = Proc { child };
    assert!(
        wait_until(Duration::from_secs(15), || port_open(port)),
        "{script} did not start on {port} (needs {needs})"
    );
    proc
}

/// A running `lbd run` with its config file and logs in a scratch directory.
pub struct Lbd {
    pub proc: Proc,
    pub admin: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Lbd {
    /// Starts lbd with `config` (which must bind the admin on `admin`) and waits for /ready.
    pub fn start(name: &str, admin: u16, config: &str) -> Self {
        Self::start_with_files(name, admin, config, &[])
    }

    /// Like `start`, copying the files `names` from `from` next to the config first.
    pub fn start_with_copies(name: &str, admin: u16, config: &str, from: &Path, names: &[&str]) -> Self {
        let files: Vec<(PathBuf, &str)> = names.iter().map(|n| (from.join(n), *n)).collect();
        let refs: Vec<(&Path, &str)> = files.iter().map(|(p, n)| (p.as_path(), *n)).collect();
        Self::start_with_files(name, admin, config, &refs)
    }

    /// Like `start`, copying `files` (source, name) next to the config first.
    pub fn start_with_files(name: &str, admin: u16, config: &str, files: &[(&Path, &str)]) -> Self {
        let dir = scratch(name);
        for (src, to) in files {
            std::fs::copy(src, dir.join(to)).expect("copy file next to the config");
        }
        let path = dir.join("lbd.toml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
        let child = Command::new(LBD)
            .args(["run", "--config"])
            .arg(&path)
            .env("LBD_LOG", std::env::var("TEST_LBD_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lbd");
        let mut lbd = Self { proc: Proc { child }, admin, dir, config: path };
        let ready = wait_until(Duration::from_secs(15), || {
            if let Ok(Some(_)) = lbd.proc.child.try_wait() {
                return true;
            }
            http_raw(admin, "GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 200")
        });
        assert!(
            ready && lbd.proc.child.try_wait().ok().flatten().is_none(),
            "lbd did not become ready:\n{}",
            lbd.stderr()
        );
        lbd
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        curl(&["-s", &format!("http://127.0.0.1:{}/metrics", self.admin)]).0
    }

    /// Sum of a metric's samples whose labels contain every `labels` fragment.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Writes a new config and POSTs /reload; returns (status, body).
    pub fn reload_with(&self, config: &str) -> (u16, String) {
        std::fs::write(&self.config, config).expect("write config");
        let (body, code) = curl_status(&["-s", "-X", "POST", &format!("http://127.0.0.1:{}/reload", self.admin)]);
        (code, body)
    }
}

pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Runs curl; returns (stdout, exit success).
pub fn curl(args: &[&str]) -> (String, bool) {
    require("curl");
    let out: Output = Command::new("curl").args(["--max-time", "20"]).args(args).output().expect("run curl");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.success())
}

/// Runs curl and appends the status code; returns (body, status).
pub fn curl_status(args: &[&str]) -> (String, u16) {
    let mut a = args.to_vec();
    a.extend(["-w", "\n%{http_code}"]);
    let (out, _) = curl(&a);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (body.to_string(), code.trim().parse().unwrap_or(0))
}

/// GET through lbd; returns (body, status).
pub fn get(port: u16, path: &str, headers: &[&str]) -> (String, u16) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-s"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(&url);
    curl_status(&args)
}

/// Sends raw bytes and reads the answer until the server closes (or 5 s pass).
pub fn http_raw(port: u16, request: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts the backend names in response bodies (one name per line).
pub fn tally(bodies: &str) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for l in bodies.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

/// A minimal lbd config: admin on `admin`, one http listener on `port` routing everything to
/// cluster `c` with `cluster_extra` lines and the given endpoints.
pub fn simple_config(admin: u16, port: u16, endpoints: &[String], cluster_extra: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "workers = 2\ndrain_timeout = \"5s\"\n[admin]\nbind = \"127.0.0.1:{admin}\"\n[access_log]\npath = \"off\"\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:{port}\"\n[[listeners.routes]]\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{}]\n{cluster_extra}\n",
        eps.join(", ")
    )
}

/// A self-signed certificate for `sans` (`ec` P-256 or `rsa` 2048) written as NAME.crt/NAME.key.
pub fn make_cert(dir: &Path, name: &str, kind: &str, sans: &[&str]) {
    require("openssl");
    let san = sans.iter().map(|s| format!("DNS:{s}")).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-days", "2", "-subj", &format!("/CN={}", sans[0])]);
    match kind {
        "ec" => cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]),
        _ => cmd.args(["-newkey", "rsa:2048"]),
    };
    let out = cmd
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .stderr(Stdio::piped())
        .output()
        .expect("openssl req");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `openssl ARGS` in `dir`; fails the test with openssl's message if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A test CA (ca.crt/ca.key) and a client certificate it signed (DNS:client1.test, clientAuth), in `dir`.
pub fn make_ca_and_client(dir: &Path) {
    openssl(
        dir,
        &[
            &["req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=test-ca"][..],
            &EC,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
    );
    sign_with_ca(dir, "client", "client1.test", "clientAuth");
}

/// NAME.crt/NAME.key for DNS name `dns`, signed by the test CA in `dir`, for `usage` (clientAuth, serverAuth).
pub fn sign_with_ca(dir: &Path, name: &str, dns: &str, usage: &str) {
    let (key, csr, ext, crt) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"), format!("{name}.crt"));
    openssl(
        dir,
        &[&["req", "-nodes", "-subj", &format!("/CN={dns}")][..], &EC, &["-keyout", &key, "-out", &csr]].concat(),
    );
    std::fs::write(dir.join(&ext), format!("subjectAltName=DNS:{dns}\nextendedKeyUsage={usage}\n")).expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
}
