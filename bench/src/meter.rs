//! Reads a process's own CPU time and resident memory from /proc, summed over the process and
//! its child processes (nginx and HAProxy run workers as children). This is the figure least
//! disturbed by the load generator sharing the cores.
//!
//! Memory comes twice: all resident memory (RSS), and the anonymous part of it (`RssAnon`: heap,
//! stacks, private mappings). Memory per connection is measured on the anonymous part, because
//! RSS also counts the pages of the program's own code, which are read in the first time they
//! run: a fixed cost, the same for one connection as for a million, which the first connections
//! of a run would otherwise be charged with. How much of it a run touches depends on how the
//! linker laid the code out; between two builds of lbd that differ in one hash map, it moved the
//! RSS at start by 0.7 MiB.

use std::fs;

/// CPU ticks (utime + stime, and the user part of them), RSS bytes and anonymous RSS bytes of
/// `pid` and its children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) ticks: u64,
    /// utime alone: `ticks - user` is the time in the kernel for the process (system calls, and
    /// on loopback the receiving side's TCP work for what it sends, which runs in its context).
    pub(crate) user: u64,
    pub(crate) rss: u64,
    pub(crate) anon: u64,
}

impl std::ops::Add for Usage {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self { ticks: self.ticks + o.ticks, user: self.user + o.user, rss: self.rss + o.rss, anon: self.anon + o.anon }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        if let Ok(s) = fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn one(pid: u32) -> Usage {
    let page = 4096u64;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // rest starts at field 3 (state); utime is field 14, stime 15, rss 24 (1-based in proc(5)).
    Usage { ticks: num(11) + num(12), user: num(11), rss: num(21) * page, anon: anon_kb(pid) * 1024 }
}

/// `RssAnon` of /proc/PID/status, in KiB (0 for a process gone meanwhile).
fn anon_kb(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Usage of `pid` plus all its descendants.
pub(crate) fn usage(pid: u32) -> Usage {
    let mut total = one(pid);
    let mut stack = children(pid);
    while let Some(c) = stack.pop() {
        total = total + one(c);
        stack.extend(children(c));
    }
    total
}

/// Sum over several processes.
pub(crate) fn usage_of(pids: &[u32]) -> Usage {
    pids.iter().map(|p| usage(*p)).fold(Usage::default(), |a, b| a + b)
}

/// Clock ticks per second (USER_HZ); 100 on Linux.
pub(crate) const TICKS_PER_SEC: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_memory_and_cpu() {
        let me = std::process::id();
        // Burn CPU until the kernel has counted a tick (10 ms), bounded in time: a fixed loop
        // was optimised to nothing in release builds.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut u = usage(me);
        while u.ticks == 0 && start.elapsed() < std::time::Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            u = usage(me);
        }
        assert!(x != 1);
        assert!(u.rss > 1 << 20, "{u:?}");
        // The heap is anonymous, the program's code is not: some of each is resident.
        assert!(u.anon > 0 && u.anon < u.rss, "{u:?}");
        assert!(u.ticks > 0 && u.user <= u.ticks, "{u:?}");
    }
}
