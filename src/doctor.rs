//! `lbd doctor`: audits this host against `kernel-tuning/99-lbd.conf` (embedded, so the profile
//! and the audit cannot drift apart) and a few things lbd needs, printing each difference with
//! its consequence. Exit status 1 when anything is critical.

use std::path::Path;
use std::process::ExitCode;

use lb_core::config::{Config, IoBackendChoice};
use lb_core::runtime::WorkerRuntime;

/// The sysctl profile shipped in `kernel-tuning/`.
const PROFILE: &str = include_str!("../kernel-tuning/99-lbd.conf");

/// Knobs whose value must match exactly rather than be at least the profile's.
const EXACT: [&str; 4] =
    ["net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_slow_start_after_idle", "net.core.busy_poll", "net.core.busy_read"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Critical,
}

struct Finding {
    level: Level,
    what: String,
    consequence: String,
}

/// One profile entry: key, wanted value, and the comment above it (its reason).
fn profile_entries(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut reason = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(c) = l.strip_prefix('#') {
            if !reason.is_empty() {
                reason.push(' ');
            }
            reason.push_str(c.trim());
        } else if let Some((k, v)) = l.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string(), reason.clone()));
        } else if l.is_empty() {
            reason.clear();
        }
    }
    out
}

fn numbers(s: &str) -> Option<Vec<u64>> {
    s.split_whitespace().map(|t| t.parse().ok()).collect()
}

/// Whether `current` satisfies `wanted` for `key`.
fn satisfied(key: &str, current: &str, wanted: &str) -> bool {
    match (numbers(current), numbers(wanted)) {
        (Some(c), Some(w)) if EXACT.contains(&key) => c == w,
        // A port range: at least as wide at both ends.
        (Some(c), Some(w)) if key.ends_with("ip_local_port_range") && c.len() == 2 && w.len() == 2 => {
            c[0] <= w[0] && c[1] >= w[1]
        }
        // Every number at least the profile's (buffer triples compare element-wise).
        (Some(c), Some(w)) if c.len() == w.len() => c.iter().zip(&w).all(|(a, b)| a >= b),
        _ => current.split_whitespace().eq(wanted.split_whitespace()),
    }
}

fn audit(config: Option<&Config>) -> Vec<Finding> {
    let mut f = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (key, wanted, reason) in profile_entries(PROFILE) {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        match std::fs::read_to_string(&path) {
            Err(_) => f.push(Finding {
                level: Level::Ok,
                what: format!("{key}: not present on this kernel (module not loaded?)"),
                consequence: "nothing to tune".into(),
            }),
            Ok(cur) => {
                let cur = cur.split_whitespace().collect::<Vec<_>>().join(" ");
                if !satisfied(&key, &cur, &wanted) {
                    f.push(Finding {
                        level: Level::Warn,
                        what: format!("{key} = {cur}, profile wants {wanted}"),
                        consequence: reason,
                    });
                }
            }
        }
    }
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((_, hard)) if hard < 4096 => f.push(Finding {
            level: Level::Critical,
            what: format!("open-file limit (hard) is {hard}"),
            consequence: "lbd cannot hold more than a few thousand connections; raise LimitNOFILE".into(),
        }),
        Ok((_, hard)) if hard < 1_048_576 => f.push(Finding {
            level: Level::Warn,
            what: format!("open-file limit (hard) is {hard}"),
            consequence: format!("at most about {} connections (one fd each, two when proxied); a dedicated node wants LimitNOFILE=1048576 or more", hard.saturating_sub(100)),
        }),
        _ => {}
    }
    let uring = WorkerRuntime::new(IoBackendChoice::Uring);
    let wants_uring = config.is_some_and(|c| c.io_backend == IoBackendChoice::Uring);
    if let Err(e) = uring {
        f.push(Finding {
            level: if wants_uring { Level::Critical } else { Level::Warn },
            what: format!("io_uring cannot be set up: {e}"),
            consequence: if wants_uring {
                "the config says io_backend = \"uring\", so lbd will not start".into()
            } else {
                "workers fall back to epoll (io_backend = \"auto\")".into()
            },
        });
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version: Vec<u32> = release.trim().split(['.', '-']).take(2).filter_map(|p| p.parse().ok()).collect();
    if version.len() == 2 && (version[0], version[1]) < (4, 6) {
        f.push(Finding {
            level: Level::Warn,
            what: format!("kernel {} is older than 4.6", release.trim()),
            consequence: "no SO_ATTACH_REUSEPORT_CBPF: QUIC packets cannot be steered to their worker by the kernel and will be forwarded between workers".into(),
        });
    }
    if let Some(c) = config {
        if c.workers > cores {
            f.push(Finding {
                level: Level::Warn,
                what: format!("workers = {} but this host has {cores} cores", c.workers),
                consequence:
                    "workers share cores and are pinned modulo the core count; latency and CPU per request suffer"
                        .into(),
            });
        }
    }
    f
}

/// Runs the audit and prints it.
pub(crate) fn run(config: Option<&Path>) -> ExitCode {
    let cfg = match config.map(lb_core::config::load) {
        None => None,
        Some(Ok((c, _))) => Some(c),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let findings = audit(cfg.as_ref());
    let mut worst = Level::Ok;
    for x in findings.iter().filter(|x| x.level != Level::Ok) {
        let tag = if x.level == Level::Critical { "CRITICAL" } else { "warn" };
        println!("{tag:8} {}\n         → {}", x.what, x.consequence);
        worst = worst.max(x.level);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "lbd doctor: {} finding(s), worst: {}; {cores} cores; profile: kernel-tuning/99-lbd.conf (apply with kernel-tuning/apply.sh)",
        findings.iter().filter(|x| x.level != Level::Ok).count(),
        match worst {
            Level::Ok => "none",
            Level::Warn => "warn",
            Level::Critical => "CRITICAL",
        }
    );
    if worst == Level::Critical {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_entries_carry_their_reasons() {
        let e = profile_entries(PROFILE);
        let somax = e.iter().find(|(k, _, _)| k == "net.core.somaxconn").expect("somaxconn in the profile");
        assert_eq!(somax.1, "65535");
        assert!(somax.2.contains("Accept queues"), "{}", somax.2);
        assert!(e.len() >= 15);
    }

    #[test]
    fn comparisons_follow_the_knob_kind() {
        assert!(satisfied("net.core.somaxconn", "65535", "65535"));
        assert!(satisfied("net.core.somaxconn", "100000", "65535"));
        assert!(!satisfied("net.core.somaxconn", "4096", "65535"));
        assert!(satisfied("net.ipv4.ip_local_port_range", "1024 65535", "1024 65535"));
        assert!(!satisfied("net.ipv4.ip_local_port_range", "32768 60999", "1024 65535"));
        assert!(!satisfied("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 87380 16777216"));
        assert!(!satisfied("net.core.busy_poll", "50", "0"));
        assert!(satisfied("net.core.busy_poll", "0", "0"));
    }
}
