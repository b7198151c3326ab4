//! # lb-bench: the instrument behind lbd's performance claims
//!
//! - `origin`: a fast HTTP/1.1 + h2c origin (`/` 6 bytes, `/large` 64 KiB, `/echo`).
//! - `load`: HTTP/1.1 or HTTP/2 load, closed loop (N connections × M streams) or open loop at a
//!   fixed rate with coordinated-omission correction; hdrhistogram latencies; reads the
//!   balancer's own CPU time from /proc (`--meter PID`) and appends a JSON line (`--json`).
//! - `conns`: opens and holds N idle connections (source addresses spread over 127.0.0.0/8),
//!   reports how many stayed open and the balancer's memory growth per connection.
//! - `floor`: the least HTTP/1.1 keep-alive proxy on tokio; a yardstick for CPU per request
//!   (how much of it is the kernel's), not a balancer.
//! - `report`: turns the JSON lines into `results.md` and SVG charts.
//!
//! `bench/compare.sh` runs lbd, nginx, HAProxy and Caddy through the same scenarios in one run.
#![forbid(unsafe_code)]

// As lbd's: `floor` should not pay for an allocator lbd does not use.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod conns;
mod floor;
mod h3;
mod load;
mod meter;
mod origin;
mod report;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lb-bench", version, about = "Benchmark instrument for lbd")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Record {
    /// Append a JSON line with the result to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Name of the balancer measured (lbd, nginx, haproxy, caddy, …).
    #[arg(long, default_value = "target")]
    label: String,
    /// Scenario name for the report.
    #[arg(long, default_value = "adhoc")]
    scenario: String,
    /// PIDs whose CPU time and memory (with their children) to meter.
    #[arg(long)]
    meter: Vec<u32>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP/1.1 and h2c.
    Origin {
        #[arg(long, default_value = "127.0.0.1:19000")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Generate load.
    Load {
        /// Target URL (http://host:port/path).
        url: hyper::Uri,
        /// Speak HTTP/2 (prior knowledge over http://, ALPN h2 over https://).
        #[arg(long)]
        h2: bool,
        /// Speak HTTP/3 over QUIC (quinn + h3; https:// URL, UDP to the same port).
        #[arg(long)]
        h3: bool,
        /// With --h3: use Cloudflare's quiche as the client QUIC stack instead of quinn.
        #[arg(long)]
        quiche: bool,
        /// One request per connection (over https://, a full TLS handshake each).
        #[arg(long)]
        new_conn: bool,
        /// Connections.
        #[arg(short = 'c', long, default_value_t = 64)]
        connections: usize,
        /// Concurrent streams per connection (HTTP/2).
        #[arg(short = 'm', long, default_value_t = 1)]
        streams: usize,
        /// Total requests (0 with --duration: unbounded until the duration ends).
        #[arg(short = 'n', long, default_value_t = 100_000)]
        requests: u64,
        /// Stop after this many seconds.
        #[arg(short = 'd', long)]
        duration: Option<f64>,
        /// Open loop: requests per second in total.
        #[arg(long)]
        rate: Option<f64>,
        #[command(flatten)]
        record: Record,
    },
    /// Hold idle connections.
    Conns {
        /// Balancer address.
        target: SocketAddr,
        /// Connections to open.
        #[arg(short = 'n', long, default_value_t = 1000)]
        count: usize,
        /// `tcp`, `h2` (cleartext), `tls`, `h2tls` or `h3` (QUIC).
        #[arg(long, default_value = "tcp")]
        kind: String,
        /// Seconds to hold them before checking they are still open.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
        /// `h2tls` and `h3`: requests sent at once on each connection, each on its own stream,
        /// before it goes idle (a page load); at most the balancer's stream limit. At 1, `h3`
        /// connections carry one request and `h2tls` ones only the preface, as without it.
        #[arg(long, default_value_t = 1)]
        burst: usize,
        #[command(flatten)]
        record: Record,
    },
    /// Proxy HTTP/1.1 with the least work per request: a yardstick, not a balancer.
    Floor {
        #[arg(long, default_value = "127.0.0.1:19060")]
        listen: SocketAddr,
        /// The origin to forward to.
        #[arg(long)]
        backend: SocketAddr,
        /// Threads, each with its own runtime, listener and backend pool.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Serve HTTP/2 over TLS with this certificate chain and key (PEM) instead of HTTP/1.1.
        #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
        tls: Option<Vec<PathBuf>>,
    },
    /// Write results.md and SVG charts from JSON lines.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn append(record: &Record, value: serde_json::Value) -> Result<(), String> {
    let Some(path) = &record.json else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{value}").map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A subscriber that wants nothing, as lbd's wants nothing below info: without one, every
    // h2 and quinn span would be formatted for the `log` crate (their `log` feature), which
    // cost `floor` about 2% of its CPU under HTTP/2.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let command_line =
        std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
    let result = match cli.cmd {
        Cmd::Origin { listen, threads } => origin::run(listen, threads),
        Cmd::Load { url, h2, h3, quiche, new_conn, connections, streams, requests, duration, rate, record } => {
            let spec = load::LoadSpec {
                url,
                h2,
                h3,
                quiche,
                new_conn,
                connections,
                streams,
                requests: if duration.is_some() && requests == 100_000 { 0 } else { requests },
                duration: duration.map(Duration::from_secs_f64),
                rate,
                meter: record.meter.clone(),
            };
            load::run(&spec).and_then(|r| {
                println!(
                    "{}: {:.0} req/s, {} ok, {} errors in {:.2}s; latency p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs{}",
                    record.label,
                    r.rps(),
                    r.requests,
                    r.errors,
                    r.seconds,
                    r.percentile_us(0.5),
                    r.percentile_us(0.9),
                    r.percentile_us(0.99),
                    r.percentile_us(0.999),
                    if record.meter.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; balancer CPU {:.2}s = {:.2} µs/request (user {:.2} + kernel {:.2}), RSS {:.1} MiB",
                            r.cpu_seconds,
                            r.cpu_us_per_request(),
                            r.user_us_per_request(),
                            r.cpu_us_per_request() - r.user_us_per_request(),
                            r.rss as f64 / 1048576.0
                        )
                    }
                );
                append(
                    &record,
                    serde_json::json!({
                        "kind": "load", "scenario": record.scenario, "label": record.label, "command": command_line,
                        "requests": r.requests, "errors": r.errors, "seconds": r.seconds, "rps": r.rps(),
                        "p50_us": r.percentile_us(0.5), "p90_us": r.percentile_us(0.9), "p99_us": r.percentile_us(0.99),
                        "p999_us": r.percentile_us(0.999), "cpu_s": r.cpu_seconds, "cpu_us_per_req": r.cpu_us_per_request(),
                        "user_us_per_req": r.user_us_per_request(),
                        "rss": r.rss, "mb_per_s": r.body_bytes as f64 / r.seconds.max(1e-9) / 1e6,
                    }),
                )
            })
        }
        Cmd::Conns { target, count, kind, hold, burst, record } => {
            if !["tcp", "h2", "tls", "h2tls", "h3"].contains(&kind.as_str()) {
                eprintln!("--kind must be tcp, h2, tls, h2tls or h3");
                return ExitCode::from(2);
            }
            let spec = conns::ConnsSpec {
                target,
                count,
                kind,
                hold: Duration::from_secs_f64(hold),
                burst,
                meter: record.meter.clone(),
            };
            conns::run(&spec).and_then(|r| {
                println!(
                    "{}: {} opened, {} still open after {hold}s; balancer RSS {:.1} → {:.1} MiB, anonymous {:.1} → {:.1} MiB = {:.0} bytes per connection",
                    record.label,
                    r.opened,
                    r.alive,
                    r.before.rss as f64 / 1048576.0,
                    r.after.rss as f64 / 1048576.0,
                    r.before.anon as f64 / 1048576.0,
                    r.after.anon as f64 / 1048576.0,
                    r.bytes_per_conn()
                );
                append(
                    &record,
                    serde_json::json!({
                        "kind": "conns", "scenario": record.scenario, "label": record.label, "command": command_line,
                        "opened": r.opened, "alive": r.alive, "rss_before": r.before.rss, "rss_after": r.after.rss,
                        "anon_before": r.before.anon, "anon_after": r.after.anon,
                        "bytes_per_conn": r.bytes_per_conn(),
                    }),
                )
            })
        }
        Cmd::Floor { listen, backend, threads, tls } => {
            let tls = tls.and_then(|v| <[PathBuf; 2]>::try_from(v).ok()).map(|[cert, key]| (cert, key));
            floor::run(listen, backend, threads, tls)
        }
        Cmd::Report { input, out } => report::write(&input, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
