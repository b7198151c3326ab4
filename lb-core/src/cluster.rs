//! One worker's view of a cluster: endpoints with their active health, passive ejection and
//! in-flight counts, and the balancer. Owned by one worker; no locks or atomics.
//!
//! Availability = actively healthy and not ejected. When no endpoint is available the cluster
//! fails open: it balances over all endpoints (as ALB does) and counts it.

use std::net::SocketAddr;
use std::time::Instant;

use crate::balancer::{Balancer, PickInput};
use crate::config::{ClusterConfig, OutlierConfig};
use crate::health::{Outcome, Outlier};

/// The chosen endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index into [`ClusterState::endpoints`].
    pub index: usize,
    /// True when no endpoint was available and the pick ignored health.
    pub fail_open: bool,
}

/// Per-endpoint state.
#[derive(Debug, Clone)]
pub struct EndpointState {
    /// Address.
    pub address: SocketAddr,
    /// Active health as last reported by the health checker.
    pub healthy: bool,
    /// Passive ejection state.
    pub outlier: Outlier,
    /// Requests in flight from this worker.
    pub active: u32,
}

/// A cluster as one worker sees it.
#[derive(Debug)]
pub struct ClusterState {
    endpoints: Vec<EndpointState>,
    keys: Vec<String>,
    balancer: Balancer,
    outlier: OutlierConfig,
    available: Vec<bool>,
    all: Vec<bool>,
    active: Vec<u32>,
    /// Earliest end of a current ejection; availability is recomputed when it passes.
    next_return: Option<Instant>,
    /// Picks made while failing open.
    pub fail_open_picks: u64,
    /// Passive ejections so far.
    pub ejections: u64,
}

impl ClusterState {
    /// Builds the state for a cluster config.
    pub fn new(cfg: &ClusterConfig) -> Self {
        let keys: Vec<String> = cfg.endpoints.iter().map(|e| e.address.to_string()).collect();
        let weights = cfg.endpoints.iter().map(|e| e.weight).collect();
        let n = cfg.endpoints.len();
        Self {
            endpoints: cfg
                .endpoints
                .iter()
                .map(|e| EndpointState { address: e.address, healthy: true, outlier: Outlier::default(), active: 0 })
                .collect(),
            balancer: Balancer::new(cfg.policy, weights, &keys),
            keys,
            outlier: cfg.outlier,
            available: vec![true; n],
            all: vec![true; n],
            active: vec![0; n],
            next_return: None,
            fail_open_picks: 0,
            ejections: 0,
        }
    }

    /// Endpoints, in config order.
    pub fn endpoints(&self) -> &[EndpointState] {
        &self.endpoints
    }

    /// Whether no endpoint is available now (traffic fails open).
    pub fn is_failing_open(&mut self, now: Instant) -> bool {
        self.refresh(now);
        !self.available.iter().any(|a| *a)
    }

    fn refresh(&mut self, now: Instant) {
        if self.next_return.is_some_and(|t| now >= t) {
            self.recompute(now);
        }
    }

    fn recompute(&mut self, now: Instant) {
        self.next_return = None;
        for (i, e) in self.endpoints.iter().enumerate() {
            self.available[i] = e.healthy && !e.outlier.is_ejected(now);
            if let Some(t) = e.outlier.ejected_until().filter(|t| *t > now) {
                self.next_return = Some(self.next_return.map_or(t, |n| n.min(t)));
            }
        }
    }

    /// Picks an endpoint, avoiding those in `tried` while others are available.
    pub fn pick(&mut self, now: Instant, hash: Option<u64>, tried: &[usize], rng: &mut fastrand::Rng) -> Option<Pick> {
        self.refresh(now);
        let fail_open = !self.available.iter().any(|a| *a);
        let base = if fail_open { &self.all } else { &self.available };
        let mut avail_buf;
        let mut avail: &[bool] = base;
        if !tried.is_empty() {
            avail_buf = base.clone();
            for t in tried {
                if let Some(a) = avail_buf.get_mut(*t) {
                    *a = false;
                }
            }
            if !avail_buf.iter().any(|a| *a) {
                // Every available endpoint was tried: retry among them anyway.
                avail_buf.clone_from(base);
            }
            avail = &avail_buf;
        }
        let index = self.balancer.pick(PickInput { available: avail, active: &self.active, hash }, &self.keys, rng)?;
        if fail_open {
            self.fail_open_picks += 1;
        }
        Some(Pick { index, fail_open })
    }

    /// A request to endpoint `i` started.
    pub fn start_request(&mut self, i: usize) {
        self.active[i] += 1;
        self.endpoints[i].active += 1;
    }

    /// A request to endpoint `i` ended with `outcome`.
    pub fn end_request(&mut self, i: usize, outcome: Outcome, now: Instant) {
        self.active[i] = self.active[i].saturating_sub(1);
        self.endpoints[i].active = self.active[i];
        self.record(i, outcome, now);
    }

    /// Records an outcome for passive ejection (also for attempts that never started a request).
    pub fn record(&mut self, i: usize, outcome: Outcome, now: Instant) {
        if self.endpoints[i].outlier.record(outcome, now, &self.outlier) {
            self.ejections += 1;
            self.recompute(now);
        }
    }

    /// Applies an active health result for `address`; returns whether it matched an endpoint.
    pub fn set_health(&mut self, address: SocketAddr, healthy: bool, now: Instant) -> bool {
        let mut found = false;
        for e in self.endpoints.iter_mut().filter(|e| e.address == address) {
            e.healthy = healthy;
            found = true;
        }
        if found {
            self.recompute(now);
        }
        found
    }

    /// Whether endpoint `i` is ejected now.
    pub fn is_ejected(&self, i: usize, now: Instant) -> bool {
        self.endpoints[i].outlier.is_ejected(now)
    }
}
