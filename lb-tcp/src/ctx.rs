//! A worker's state, owned by its thread: the running snapshot, each cluster's balancer, health
//! and pool, the metrics registry, and the random source. `Rc`/`RefCell`, never `Arc`/`Mutex`:
//! nothing here is touched by another thread. Borrows are never held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use lb_core::access_log::AccessRecord;
use lb_core::cluster::ClusterState;
use lb_core::config::ClusterConfig;
use lb_core::metrics::{ClusterStat, EndpointStat, Registry, WorkerStats};
use lb_core::runtime::IoBackend;
use lb_core::snapshot::Snapshot;
use tokio_rustls::rustls::pki_types as rustls_server_name;

use crate::l4::L4Copy;
use crate::pool::Pool;
use crate::signal::Signal;

/// One cluster as a worker runs it.
#[derive(Debug)]
pub struct ClusterRt {
    /// Its config.
    pub cfg: ClusterConfig,
    /// Balancer, health, ejection, in-flight counts.
    pub state: RefCell<ClusterState>,
    /// Idle upstream connections per endpoint.
    pub pool: RefCell<Pool>,
    /// TLS to the endpoints (validated on the main thread before the config was applied).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl ClusterRt {
    fn new(cfg: &ClusterConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            state: RefCell::new(ClusterState::new(cfg)),
            pool: RefCell::new(Pool::new(cfg.endpoints.len(), cfg.pool_size, cfg.pool_idle_timeout)),
            tls: cfg.tls.as_ref().and_then(|t| match lb_tls::client_config(t, cfg.protocol == lb_core::config::UpstreamProtocol::Http2) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(cluster = %cfg.name, error = %e, "upstream TLS config does not load; connections will fail");
                    None
                }
            }),
        }
    }

    /// The name an endpoint's certificate is checked against (and sent as SNI).
    pub fn server_name(&self, i: usize) -> Option<rustls_server_name::ServerName<'static>> {
        let tls = self.cfg.tls.as_ref()?;
        match &tls.server_name {
            Some(n) => rustls_server_name::ServerName::try_from(n.clone()).ok(),
            None => Some(rustls_server_name::ServerName::IpAddress(self.address(i).ip().into())),
        }
    }

    /// An endpoint's address.
    pub fn address(&self, i: usize) -> SocketAddr {
        self.cfg.endpoints[i].address
    }
}

/// Mutable per-worker state.
#[derive(Debug)]
pub struct WorkerState {
    /// The running config.
    pub snapshot: Arc<Snapshot>,
    /// Aligned with `snapshot.config.clusters`.
    pub clusters: Vec<Rc<ClusterRt>>,
    /// Counters and histograms.
    pub metrics: Registry,
    /// This worker's random source.
    pub rng: fastrand::Rng,
    request_seq: u64,
}

/// Everything a worker's tasks share.
#[derive(Debug)]
pub struct WorkerCtx {
    /// Worker index.
    pub id: usize,
    /// The runtime this worker got.
    pub backend: IoBackend,
    /// How this worker's L4 connections copy bytes.
    pub l4_copy: L4Copy,
    /// Mutable state.
    pub state: RefCell<WorkerState>,
    access_log: Option<crossbeam_channel::Sender<AccessRecord>>,
    /// Raised when the worker drains.
    drained: Signal,
    /// Open upstream HTTP/1.1 connections (each holds a count; see `http::client`).
    pub(crate) h1_open: Rc<Cell<u64>>,
}

impl WorkerCtx {
    /// A worker's context for the first snapshot.
    pub fn new(
        id: usize,
        backend: IoBackend,
        l4_copy: L4Copy,
        snapshot: Arc<Snapshot>,
        access_log: Option<crossbeam_channel::Sender<AccessRecord>>,
    ) -> Rc<Self> {
        let clusters = snapshot.config.clusters.iter().map(|c| Rc::new(ClusterRt::new(c))).collect();
        let metrics = Registry::new(&snapshot);
        let rng = fastrand::Rng::with_seed(fastrand::u64(..) ^ (id as u64).rotate_left(32));
        Rc::new(Self {
            id,
            backend,
            l4_copy,
            state: RefCell::new(WorkerState { snapshot, clusters, metrics, rng, request_seq: 0 }),
            access_log,
            drained: Signal::default(),
            h1_open: Rc::new(Cell::new(0)),
        })
    }

    /// Switches to a new snapshot. Clusters whose config is unchanged keep their state and
    /// pools; changed ones start fresh (in-flight requests keep the old ones alive).
    pub fn apply_snapshot(&self, snapshot: Arc<Snapshot>) {
        let mut st = self.state.borrow_mut();
        let mut old: HashMap<String, Rc<ClusterRt>> = st.clusters.drain(..).map(|c| (c.cfg.name.clone(), c)).collect();
        st.clusters = snapshot
            .config
            .clusters
            .iter()
            .map(|c| match old.remove(&c.name) {
                Some(rt) if rt.cfg == *c => rt,
                _ => Rc::new(ClusterRt::new(c)),
            })
            .collect();
        st.metrics.rebind(&snapshot);
        st.snapshot = snapshot;
    }

    /// Applies an active health result.
    pub fn apply_health(&self, cluster: &str, address: SocketAddr, healthy: bool) {
        let st = self.state.borrow();
        let now = Instant::now();
        for c in st.clusters.iter().filter(|c| c.cfg.name == cluster) {
            c.state.borrow_mut().set_health(address, healthy, now);
        }
    }

    /// Picks an endpoint of `cluster` at `now` for attempt number `attempt` (0 = first), avoiding
    /// `tried`; counts retries.
    pub fn pick(
        &self,
        cluster: &ClusterRt,
        hash: Option<u64>,
        tried: &[usize],
        attempt: u32,
        now: Instant,
    ) -> Option<usize> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let pick = cluster.state.borrow_mut().pick(now, hash, tried, &mut st.rng)?;
        if attempt > 0 {
            st.metrics.counters.retries += 1;
        }
        Some(pick.index)
    }

    /// Closes expired idle upstream connections, and those above `pool_size` the load stopped
    /// using (each second, from the worker's sweeper).
    pub fn sweep_pools(&self) {
        let now = Instant::now();
        for c in &self.state.borrow().clusters {
            c.pool.borrow_mut().sweep(now);
        }
    }

    /// A request id: worker (16 bits), sequence (48 bits) and randomness (64 bits), as 32 hex
    /// digits written without `fmt` (this runs for every request).
    pub fn next_request_id(&self) -> crate::http::headers::RequestId {
        let mut st = self.state.borrow_mut();
        st.request_seq += 1;
        let hi = ((self.id as u64 & 0xffff) << 48) | (st.request_seq & 0xffff_ffff_ffff);
        crate::http::headers::RequestId::new(hi, st.rng.u64(..))
    }

    /// Whether access log records are wanted (so callers skip gathering them otherwise).
    pub fn logs(&self) -> bool {
        self.access_log.is_some()
    }

    /// Queues an access log record; drops and counts it when the writer is behind.
    pub fn log(&self, rec: impl FnOnce() -> AccessRecord) {
        if let Some(tx) = &self.access_log {
            if tx.try_send(rec()).is_err() {
                self.state.borrow_mut().metrics.counters.access_log_dropped += 1;
            }
        }
    }

    /// Tells every connection of this worker to finish what it is doing and close.
    pub fn start_drain(&self) {
        self.drained.raise();
    }

    /// Resolves once the worker drains (at once if it does already).
    pub fn drained(&self) -> crate::signal::Raised<'_> {
        self.drained.wait()
    }

    /// Whether the worker is draining.
    pub fn is_draining(&self) -> bool {
        self.drained.is_raised()
    }

    /// Stats for the admin.
    pub fn stats(&self) -> WorkerStats {
        let st = self.state.borrow();
        let now = Instant::now();
        let mut clusters = BTreeMap::new();
        let mut endpoints = Vec::new();
        for c in &st.clusters {
            let mut s = c.state.borrow_mut();
            clusters.insert(
                c.cfg.name.clone(),
                ClusterStat {
                    failing_open: s.is_failing_open(now),
                    fail_open_picks: s.fail_open_picks,
                    ejections: s.ejections,
                },
            );
            for (i, e) in s.endpoints().iter().enumerate() {
                endpoints.push(EndpointStat {
                    cluster: c.cfg.name.clone(),
                    address: e.address.to_string(),
                    ejected: s.is_ejected(i, now),
                    active: e.active,
                });
            }
        }
        let mut stats = st.metrics.stats(self.id, self.backend.as_str(), clusters, endpoints);
        stats.counters.upstream_active += self.h1_open.get();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Arc<Snapshot> {
        let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"c\"\n\
                    [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:2\", \"127.0.0.1:3\"]\n";
        let cfg = lb_core::config::parse(text, "t.toml").expect("config");
        Arc::new(Snapshot::new(cfg, text.into(), 1))
    }

    fn record() -> AccessRecord {
        AccessRecord {
            time: std::time::SystemTime::now(),
            worker: 0,
            listener: "web".into(),
            client: "127.0.0.1:9".parse().expect("addr"),
            method: "GET".into(),
            host: "-".into(),
            path: "/".into(),
            protocol: "HTTP/1.1",
            status: 200,
            route: "r".into(),
            cluster: "c".into(),
            upstream: None,
            duration_us: 1,
            request_id: String::new(),
            attempts: 1,
            client_cert: None,
        }
    }

    #[test]
    fn a_full_access_log_queue_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let ctx = WorkerCtx::new(0, IoBackend::Epoll, L4Copy::Readiness, snapshot(), Some(tx));
        for _ in 0..5 {
            ctx.log(record);
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(ctx.stats().counters.access_log_dropped, 3);
    }

    #[test]
    fn reload_keeps_unchanged_cluster_state_and_rebuilds_changed_ones() {
        let ctx = WorkerCtx::new(0, IoBackend::Epoll, L4Copy::Readiness, snapshot(), None);
        let before = ctx.state.borrow().clusters[0].clone();
        let same = snapshot();
        ctx.apply_snapshot(same);
        assert!(Rc::ptr_eq(&before, &ctx.state.borrow().clusters[0]), "unchanged cluster keeps its pools and state");
        let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:1\"\n[[listeners.routes]]\ncluster = \"c\"\n\
                    [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:2\"]\n";
        let cfg = lb_core::config::parse(text, "t.toml").expect("config");
        ctx.apply_snapshot(Arc::new(Snapshot::new(cfg, text.into(), 2)));
        let after = ctx.state.borrow().clusters[0].clone();
        assert!(!Rc::ptr_eq(&before, &after));
        assert_eq!(after.state.borrow().endpoints().len(), 1);
    }

    #[test]
    fn health_updates_reach_the_cluster_state() {
        let ctx = WorkerCtx::new(0, IoBackend::Epoll, L4Copy::Readiness, snapshot(), None);
        ctx.apply_health("c", "127.0.0.1:2".parse().expect("addr"), false);
        let stats = ctx.stats();
        assert!(!stats.clusters["c"].failing_open);
        ctx.apply_health("c", "127.0.0.1:3".parse().expect("addr"), false);
        assert!(ctx.stats().clusters["c"].failing_open);
    }
}
