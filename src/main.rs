//! # lbd
//!
//! An L4/L7 load balancer with per-core, share-nothing workers.
//!
//! ```text
//! main thread (daemon.rs)                         worker threads (worker.rs), one per core
//!   config load/validate (lb-core)   ──Apply──▶     own runtime (io_uring or epoll), pinned
//!   admin API (admin.rs)             ──Stats──▶     own SO_REUSEPORT sockets, pools, metrics
//!   health checks (health.rs)        ──Health─▶     lb-tcp: accept → HTTP proxy / L4 forward
//!   signals: HUP reload, TERM drain  ──Drain──▶
//!   access log writer thread  ◀── bounded queue ──  (records dropped and counted when full)
//! ```
#![forbid(unsafe_code)]

mod access_log;
mod admin;
mod daemon;
mod demo;
mod doctor;
mod health;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The allocator is the one piece of process-wide state every worker touches on every request.
// jemalloc keeps a cache per thread and hands threads their own arenas, so the per-core workers
// do not contend on it, and it costs fewer instructions per allocation than glibc's malloc. Its
// options (background purging) are set at build time in .cargo/config.toml. Why jemalloc and
// not mimalloc: bench/results/README.md, "Allocator".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "lbd", version, about = "lbd: an L4/L7 load balancer with per-core share-nothing workers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the balancer with a config file.
    Run {
        /// The TOML config (see conf/REFERENCE.md).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config: exit 0, or print every error as FILE:LINE:COL: reason and exit 1.
    Check {
        /// The TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run two demo origins and the balancer in front of them (HTTP :8080, admin :9901).
    Demo,
    /// Audit this host against kernel-tuning/99-lbd.conf, io_uring, CBPF, fd limits and cores;
    /// exit 1 when anything is critical.
    Doctor {
        /// Also check the host against this config (workers, io_backend).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Every connection is a file descriptor: raise the soft limit to the hard one, as nginx's
/// `worker_rlimit_nofile` does, and say how many that is.
fn raise_nofile() {
    if let Ok((soft, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        if soft < hard && rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_ok() {
            tracing::debug!(from = soft, to = hard, "raised the open-file limit");
        }
    }
}

/// Loads every https listener's certificates; prints and reports whether any failed.
fn tls_errors(cfg: &lb_core::config::Config, path: &std::path::Path) -> bool {
    let tickets = match lb_tls::ticketer(cfg.tls_ticket_key_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return true;
        }
    };
    let errors: Vec<String> = cfg.listeners.iter().filter_map(|l| lb_tls::server_config(l, &tickets).err()).collect();
    for e in &errors {
        eprintln!("{}: {e}", path.display());
    }
    !errors.is_empty()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LBD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    raise_nofile();
    match cli.cmd {
        Cmd::Run { config } => daemon::run(daemon::ConfigSource::File(config), |_| {}),
        Cmd::Check { config } => match lb_core::config::load(&config) {
            Ok((cfg, _)) if tls_errors(&cfg, &config) => ExitCode::FAILURE,
            Ok((cfg, _)) => {
                println!(
                    "{}: ok ({} listeners, {} clusters, {} workers)",
                    config.display(),
                    cfg.listeners.len(),
                    cfg.clusters.len(),
                    cfg.workers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Demo => demo::run(),
        Cmd::Doctor { config } => doctor::run(config.as_deref()),
    }
}
