//! What bench's integration tests share: child processes stopped by their own PID, free ports,
//! and waiting for a server to listen.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// lb-bench, as built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lb-bench");

/// A child process stopped by its own PID when dropped: SIGTERM first, which an nginx master
/// passes on to its workers (SIGKILL would leave them running), then SIGKILL after 5 s.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` distinct free ports: each held until all are found, since a port let go may be the
/// next one handed out.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    held.iter().map(|l| l.local_addr().map(|a| a.port()).expect("its port")).collect()
}

/// Starts `program args` in `dir` and waits (10 s) until each of `ports` accepts on 127.0.0.1.
pub(crate) fn start_in(dir: &Path, program: &str, args: &[&str], ports: &[u16]) -> Proc {
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed by this test (scripts/test.sh installs it): {e}"));
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} did not open: {program} {args:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    p
}
