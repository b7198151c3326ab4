//! Metrics: a registry each worker owns (plain integers, no atomics), a `WorkerStats` copy it
//! sends when the admin asks, and the Prometheus text rendering of many workers' stats.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::snapshot::{SlotNames, Snapshot};

/// Latency buckets (seconds) exported for `lbd_request_duration_seconds`.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counters that are not per slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Downstream connections open now.
    pub downstream_active: u64,
    /// Downstream connections accepted.
    pub downstream_total: u64,
    /// Connections refused at `max_connections`.
    pub downstream_refused: u64,
    /// Upstream connections open now (pooled, in use, or L4).
    pub upstream_active: u64,
    /// Upstream connections opened.
    pub upstream_connects: u64,
    /// Requests sent on a pooled connection.
    pub upstream_reused: u64,
    /// Upstream connect failures (refused, timeout).
    pub connect_failures: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Access log lines dropped because the writer fell behind.
    pub access_log_dropped: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// Connections closed for a missing or bad PROXY protocol header.
    pub proxy_protocol_errors: u64,
    /// QUIC connections accepted (handshake started).
    pub quic_connections: u64,
    /// QUIC handshakes that failed or timed out.
    pub quic_handshake_failures: u64,
    /// Retry packets sent to make a client prove its address.
    pub quic_retries: u64,
    /// QUIC connections refused (connection limit, draining).
    pub quic_refused: u64,
    /// Datagrams received for another worker's connection and handed to it.
    pub quic_forwarded: u64,
    /// Datagrams for another worker dropped because its queue was full.
    pub quic_forward_dropped: u64,
}

/// Per-endpoint view from one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStat {
    /// Cluster name.
    pub cluster: String,
    /// Endpoint address.
    pub address: String,
    /// Passively ejected by this worker now.
    pub ejected: bool,
    /// In-flight requests from this worker.
    pub active: u32,
}

/// Per-cluster view from one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStat {
    /// No endpoint available now: traffic fails open.
    pub failing_open: bool,
    /// Picks made while failing open.
    pub fail_open_picks: u64,
    /// Passive ejections.
    pub ejections: u64,
}

/// Everything one worker reports.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: usize,
    /// `uring` or `epoll`.
    pub io_backend: &'static str,
    /// Responses by slot and status class (index 0 = 1xx … 4 = 5xx).
    pub requests: BTreeMap<SlotNames, [u64; 5]>,
    /// L4 connections by slot.
    pub tcp_connections: BTreeMap<SlotNames, u64>,
    /// Request latency in microseconds.
    pub latency: Histogram<u64>,
    /// Other counters.
    pub counters: Counters,
    /// Per-cluster state.
    pub clusters: BTreeMap<String, ClusterStat>,
    /// Per-endpoint state.
    pub endpoints: Vec<EndpointStat>,
}

/// A worker's registry: arrays indexed by the current snapshot's slots, plus totals of slots
/// from earlier snapshots so counters never go back on reload.
#[derive(Debug)]
pub struct Registry {
    generation: u64,
    names: Vec<SlotNames>,
    /// Slot names of recent earlier snapshots, for requests that straddle a reload.
    previous: Vec<(u64, Vec<SlotNames>)>,
    requests: Vec<[u64; 5]>,
    tcp: Vec<u64>,
    retired_requests: BTreeMap<SlotNames, [u64; 5]>,
    retired_tcp: BTreeMap<SlotNames, u64>,
    latency: Histogram<u64>,
    /// Counters the worker updates directly.
    pub counters: Counters,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 2 significant figures; recording clamps to that range.
    Histogram::new_with_bounds(1, 3_600_000_000, 2)
        .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!()))
}

impl Registry {
    /// A registry laid out for `snap`.
    pub fn new(snap: &Snapshot) -> Self {
        let mut r = Self {
            generation: snap.generation,
            names: Vec::new(),
            previous: Vec::new(),
            requests: Vec::new(),
            tcp: Vec::new(),
            retired_requests: BTreeMap::new(),
            retired_tcp: BTreeMap::new(),
            latency: new_histogram(),
            counters: Counters::default(),
        };
        r.rebind(snap);
        r
    }

    /// Re-lays the slots for a new snapshot, keeping totals.
    pub fn rebind(&mut self, snap: &Snapshot) {
        for (i, name) in self.names.iter().enumerate() {
            let acc = self.retired_requests.entry(name.clone()).or_default();
            for (a, v) in acc.iter_mut().zip(self.requests[i]) {
                *a += v;
            }
            *self.retired_tcp.entry(name.clone()).or_default() += self.tcp[i];
        }
        let old = std::mem::replace(&mut self.names, snap.slots.clone());
        self.previous.push((self.generation, old));
        if self.previous.len() > 8 {
            self.previous.remove(0);
        }
        self.generation = snap.generation;
        self.requests = vec![[0; 5]; self.names.len()];
        self.tcp = vec![0; self.names.len()];
    }

    /// The names of `slot` in snapshot `generation`.
    pub fn slot_names(&self, generation: u64, slot: usize) -> Option<SlotNames> {
        if generation == self.generation {
            return self.names.get(slot).cloned();
        }
        self.previous.iter().find(|(g, _)| *g == generation).and_then(|(_, n)| n.get(slot).cloned())
    }

    /// Counts a response to a request routed under snapshot `generation`.
    pub fn record_request(&mut self, generation: u64, slot: usize, status: u16, latency: Duration) {
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        if generation == self.generation {
            if let Some(s) = self.requests.get_mut(slot) {
                s[class] += 1;
            }
        } else if let Some(names) = self.slot_names(generation, slot) {
            self.retired_requests.entry(names).or_default()[class] += 1;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(us);
    }

    /// Counts an L4 connection.
    pub fn record_tcp(&mut self, slot: usize) {
        if let Some(s) = self.tcp.get_mut(slot) {
            *s += 1;
        }
    }

    /// A copy for the admin.
    pub fn stats(
        &self,
        worker: usize,
        io_backend: &'static str,
        clusters: BTreeMap<String, ClusterStat>,
        endpoints: Vec<EndpointStat>,
    ) -> WorkerStats {
        let mut requests = self.retired_requests.clone();
        let mut tcp_connections = self.retired_tcp.clone();
        for (i, name) in self.names.iter().enumerate() {
            let acc = requests.entry(name.clone()).or_default();
            for (a, v) in acc.iter_mut().zip(self.requests[i]) {
                *a += v;
            }
            *tcp_connections.entry(name.clone()).or_default() += self.tcp[i];
        }
        requests.retain(|_, v| v.iter().any(|n| *n > 0));
        tcp_connections.retain(|_, v| *v > 0);
        WorkerStats {
            worker,
            io_backend,
            requests,
            tcp_connections,
            latency: self.latency.clone(),
            counters: self.counters.clone(),
            clusters,
            endpoints,
        }
    }
}

/// Active health of one endpoint as the health checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStat {
    /// Cluster name.
    pub cluster: String,
    /// Endpoint address.
    pub address: String,
    /// Passing its checks.
    pub healthy: bool,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders Prometheus text exposition for all workers plus process-wide values.
pub fn render(workers: &[WorkerStats], health: &[HealthStat], config_generation: u64) -> String {
    let mut out = String::with_capacity(4096);
    let mut requests: BTreeMap<&SlotNames, [u64; 5]> = BTreeMap::new();
    let mut tcp: BTreeMap<&SlotNames, u64> = BTreeMap::new();
    let mut latency = new_histogram();
    let mut c = Counters::default();
    let mut clusters: BTreeMap<&str, ClusterStat> = BTreeMap::new();
    let mut endpoints: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for w in workers {
        for (k, v) in &w.requests {
            let acc = requests.entry(k).or_default();
            for (a, n) in acc.iter_mut().zip(v) {
                *a += n;
            }
        }
        for (k, v) in &w.tcp_connections {
            *tcp.entry(k).or_default() += v;
        }
        let _ = latency.add(&w.latency);
        let wc = &w.counters;
        c.downstream_active += wc.downstream_active;
        c.downstream_total += wc.downstream_total;
        c.downstream_refused += wc.downstream_refused;
        c.upstream_active += wc.upstream_active;
        c.upstream_connects += wc.upstream_connects;
        c.upstream_reused += wc.upstream_reused;
        c.connect_failures += wc.connect_failures;
        c.retries += wc.retries;
        c.access_log_dropped += wc.access_log_dropped;
        c.tls_handshake_failures += wc.tls_handshake_failures;
        c.proxy_protocol_errors += wc.proxy_protocol_errors;
        c.quic_connections += wc.quic_connections;
        c.quic_handshake_failures += wc.quic_handshake_failures;
        c.quic_retries += wc.quic_retries;
        c.quic_refused += wc.quic_refused;
        c.quic_forwarded += wc.quic_forwarded;
        c.quic_forward_dropped += wc.quic_forward_dropped;
        for (name, s) in &w.clusters {
            let acc = clusters.entry(name).or_default();
            acc.failing_open |= s.failing_open;
            acc.fail_open_picks += s.fail_open_picks;
            acc.ejections += s.ejections;
        }
        for e in &w.endpoints {
            let acc = endpoints.entry((&e.cluster, &e.address)).or_default();
            acc.0 += u64::from(e.ejected);
            acc.1 += u64::from(e.active);
        }
    }
    let _ =
        writeln!(out, "# HELP lbd_requests_total HTTP responses sent, by listener, route, cluster and status class.");
    let _ = writeln!(out, "# TYPE lbd_requests_total counter");
    for (k, v) in &requests {
        for (i, n) in v.iter().enumerate() {
            if *n > 0 {
                let _ = writeln!(
                    out,
                    "lbd_requests_total{{listener=\"{}\",route=\"{}\",cluster=\"{}\",class=\"{}xx\"}} {n}",
                    esc(&k.listener),
                    esc(&k.route),
                    esc(&k.cluster),
                    i + 1
                );
            }
        }
    }
    let _ = writeln!(out, "# HELP lbd_tcp_connections_total L4 connections forwarded, by listener and cluster.");
    let _ = writeln!(out, "# TYPE lbd_tcp_connections_total counter");
    for (k, v) in &tcp {
        let _ = writeln!(
            out,
            "lbd_tcp_connections_total{{listener=\"{}\",cluster=\"{}\"}} {v}",
            esc(&k.listener),
            esc(&k.cluster)
        );
    }
    let _ = writeln!(out, "# HELP lbd_request_duration_seconds Time from request head received to response head sent.");
    let _ = writeln!(out, "# TYPE lbd_request_duration_seconds histogram");
    let mut sum_us = 0f64;
    for v in latency.iter_recorded() {
        sum_us += v.value_iterated_to() as f64 * v.count_at_value() as f64;
    }
    for le in LATENCY_BUCKETS {
        let n = latency.count_between(0, (le * 1e6) as u64);
        let _ = writeln!(out, "lbd_request_duration_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "lbd_request_duration_seconds_bucket{{le=\"+Inf\"}} {}", latency.len());
    let _ = writeln!(out, "lbd_request_duration_seconds_sum {}", sum_us / 1e6);
    let _ = writeln!(out, "lbd_request_duration_seconds_count {}", latency.len());
    let gauges = [
        ("lbd_downstream_connections_active", "gauge", "Client connections open now.", c.downstream_active),
        ("lbd_downstream_connections_total", "counter", "Client connections accepted.", c.downstream_total),
        (
            "lbd_downstream_connections_refused_total",
            "counter",
            "Client connections refused at max_connections.",
            c.downstream_refused,
        ),
        ("lbd_upstream_connections_active", "gauge", "Upstream connections open now.", c.upstream_active),
        ("lbd_upstream_connections_total", "counter", "Upstream connections opened.", c.upstream_connects),
        (
            "lbd_upstream_requests_reused_total",
            "counter",
            "Requests sent on a pooled upstream connection.",
            c.upstream_reused,
        ),
        (
            "lbd_upstream_connect_failures_total",
            "counter",
            "Upstream connects that failed or timed out.",
            c.connect_failures,
        ),
        ("lbd_upstream_retries_total", "counter", "Attempts retried on another endpoint.", c.retries),
        (
            "lbd_access_log_dropped_total",
            "counter",
            "Access log lines dropped because the writer fell behind.",
            c.access_log_dropped,
        ),
        (
            "lbd_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out.",
            c.tls_handshake_failures,
        ),
        (
            "lbd_proxy_protocol_errors_total",
            "counter",
            "Connections closed for a missing or bad PROXY protocol header.",
            c.proxy_protocol_errors,
        ),
        ("lbd_quic_connections_total", "counter", "QUIC connections accepted.", c.quic_connections),
        (
            "lbd_quic_handshake_failures_total",
            "counter",
            "QUIC handshakes that failed or timed out.",
            c.quic_handshake_failures,
        ),
        ("lbd_quic_retries_total", "counter", "Retry packets sent for address validation.", c.quic_retries),
        ("lbd_quic_refused_total", "counter", "QUIC connections refused.", c.quic_refused),
        (
            "lbd_quic_packets_forwarded_total",
            "counter",
            "Datagrams that reached the wrong worker and were handed to their connection's owner.",
            c.quic_forwarded,
        ),
        (
            "lbd_quic_packets_forward_dropped_total",
            "counter",
            "Datagrams for another worker dropped because its queue was full.",
            c.quic_forward_dropped,
        ),
        (
            "lbd_config_generation",
            "gauge",
            "Generation of the running config (1 at start, +1 per reload).",
            config_generation,
        ),
    ];
    for (name, kind, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP lbd_cluster_fail_open 1 when no endpoint of the cluster is available and traffic goes to all of them."
    );
    let _ = writeln!(out, "# TYPE lbd_cluster_fail_open gauge");
    for (name, s) in &clusters {
        let _ = writeln!(out, "lbd_cluster_fail_open{{cluster=\"{}\"}} {}", esc(name), u8::from(s.failing_open));
    }
    let _ = writeln!(out, "# HELP lbd_cluster_fail_open_requests_total Requests balanced while failing open.");
    let _ = writeln!(out, "# TYPE lbd_cluster_fail_open_requests_total counter");
    for (name, s) in &clusters {
        let _ =
            writeln!(out, "lbd_cluster_fail_open_requests_total{{cluster=\"{}\"}} {}", esc(name), s.fail_open_picks);
    }
    let _ = writeln!(out, "# HELP lbd_outlier_ejections_total Passive ejections (summed over workers).");
    let _ = writeln!(out, "# TYPE lbd_outlier_ejections_total counter");
    for (name, s) in &clusters {
        let _ = writeln!(out, "lbd_outlier_ejections_total{{cluster=\"{}\"}} {}", esc(name), s.ejections);
    }
    let _ = writeln!(
        out,
        "# HELP lbd_endpoint_healthy 1 when the endpoint passes its active health check (1 without a check)."
    );
    let _ = writeln!(out, "# TYPE lbd_endpoint_healthy gauge");
    for h in health {
        let _ = writeln!(
            out,
            "lbd_endpoint_healthy{{cluster=\"{}\",endpoint=\"{}\"}} {}",
            esc(&h.cluster),
            esc(&h.address),
            u8::from(h.healthy)
        );
    }
    let _ = writeln!(out, "# HELP lbd_endpoint_ejected_workers Workers that have the endpoint passively ejected now.");
    let _ = writeln!(out, "# TYPE lbd_endpoint_ejected_workers gauge");
    for ((cl, addr), (ej, _)) in &endpoints {
        let _ =
            writeln!(out, "lbd_endpoint_ejected_workers{{cluster=\"{}\",endpoint=\"{}\"}} {ej}", esc(cl), esc(addr));
    }
    let _ = writeln!(out, "# HELP lbd_endpoint_requests_active In-flight requests to the endpoint.");
    let _ = writeln!(out, "# TYPE lbd_endpoint_requests_active gauge");
    for ((cl, addr), (_, active)) in &endpoints {
        let _ = writeln!(
            out,
            "lbd_endpoint_requests_active{{cluster=\"{}\",endpoint=\"{}\"}} {active}",
            esc(cl),
            esc(addr)
        );
    }
    let _ = writeln!(out, "# HELP lbd_worker_io_backend The IO backend each worker runs.");
    let _ = writeln!(out, "# TYPE lbd_worker_io_backend gauge");
    for w in workers {
        let _ = writeln!(out, "lbd_worker_io_backend{{worker=\"{}\",backend=\"{}\"}} 1", w.worker, w.io_backend);
    }
    out
}
