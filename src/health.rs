//! Active health checks, run once per endpoint on the main thread (not once per worker); each
//! state change is sent to every worker. The state machine is `lb_core::health::ActiveHealth`.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use lb_core::config::HealthCheckConfig;
use lb_core::health::ActiveHealth;
use lb_core::metrics::HealthStat;
use lb_core::snapshot::Snapshot;
use tokio::task::JoinHandle;

use crate::worker::{Control, WorkerHandle};

type Key = (String, SocketAddr, HealthCheckConfig);

/// The running checks.
#[derive(Default)]
pub(crate) struct HealthChecker {
    checks: HashMap<Key, (JoinHandle<()>, Rc<Cell<bool>>)>,
}

impl HealthChecker {
    /// Starts checks that `snap` adds, stops those it drops, and re-sends the state of kept
    /// unhealthy endpoints (a worker that rebuilt a changed cluster starts it healthy).
    pub(crate) fn sync(&mut self, snap: &Snapshot, workers: &Rc<Vec<WorkerHandle>>) {
        let mut wanted = Vec::new();
        for c in &snap.config.clusters {
            if let Some(hc) = &c.health_check {
                for e in &c.endpoints {
                    wanted.push((c.name.clone(), e.address, hc.clone()));
                }
            }
        }
        self.checks.retain(|k, (task, _)| {
            let keep = wanted.contains(k);
            if !keep {
                task.abort();
            }
            keep
        });
        for key in wanted {
            if let Some((_, healthy)) = self.checks.get(&key) {
                if !healthy.get() {
                    broadcast(workers, &key.0, key.1, false);
                }
                continue;
            }
            let healthy = Rc::new(Cell::new(true));
            let task = tokio::task::spawn_local(check_loop(key.clone(), healthy.clone(), workers.clone()));
            self.checks.insert(key, (task, healthy));
        }
    }

    /// Every endpoint's active health for `/metrics` (endpoints without a check count as healthy).
    pub(crate) fn table(&self, snap: &Snapshot) -> Vec<HealthStat> {
        let mut out = Vec::new();
        for c in &snap.config.clusters {
            for e in &c.endpoints {
                let healthy = c
                    .health_check
                    .as_ref()
                    .and_then(|hc| self.checks.get(&(c.name.clone(), e.address, hc.clone())))
                    .is_none_or(|(_, h)| h.get());
                out.push(HealthStat { cluster: c.name.clone(), address: e.address.to_string(), healthy });
            }
        }
        out
    }
}

fn broadcast(workers: &[WorkerHandle], cluster: &str, address: SocketAddr, healthy: bool) {
    for w in workers {
        w.send(Control::Health { cluster: cluster.to_string(), address, healthy });
    }
}

async fn check_loop(key: Key, shared: Rc<Cell<bool>>, workers: Rc<Vec<WorkerHandle>>) {
    let (cluster, address, cfg) = key;
    let mut state = ActiveHealth::new(&cfg);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let passed = lb_tcp::health_probe::probe(address, &cfg.kind, cfg.timeout).await;
        if let Some(healthy) = state.record(passed) {
            if healthy {
                tracing::info!(%cluster, endpoint = %address, "endpoint healthy again");
            } else {
                tracing::warn!(%cluster, endpoint = %address, "endpoint failed its health checks; taken out");
            }
            shared.set(healthy);
            broadcast(&workers, &cluster, address, healthy);
        }
    }
}
