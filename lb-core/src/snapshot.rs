//! A compiled, immutable config snapshot shared (by `Arc`) with every worker on start and reload.
//! Workers build their own mutable state (cluster states, pools, metrics slots) from it.

use crate::config::{Config, ListenerKind};
use crate::router::{RouteTarget, Router};

/// Names behind a metrics slot: one per route, one per `tcp` listener.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotNames {
    /// Listener name.
    pub listener: String,
    /// Route name (`tcp` for tcp listeners).
    pub route: String,
    /// Cluster name.
    pub cluster: String,
}

/// A listener's compiled form.
#[derive(Debug, Clone)]
pub enum ListenerPlan {
    /// HTTP routes.
    Http(Router),
    /// L4 forwarding: the default target, and SNI routes for TLS passthrough.
    Tcp {
        /// Where connections go when no SNI route matches (or none is configured).
        default: RouteTarget,
        /// TLS passthrough routes by server name (`None`: plain L4).
        sni: Option<Router>,
    },
}

/// The running configuration, compiled.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every accepted config.
    pub generation: u64,
    /// The validated model.
    pub config: Config,
    /// The config text as loaded, served by `/config`.
    pub source: String,
    /// One per `config.listeners` entry.
    pub listeners: Vec<ListenerPlan>,
    /// Metrics slots.
    pub slots: Vec<SlotNames>,
}

impl Snapshot {
    /// Compiles a validated config (cluster references were checked by the parser).
    pub fn new(config: Config, source: String, generation: u64) -> Self {
        let mut slots = Vec::new();
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let mut slot = |route: &str, cluster: &str| {
                slots.push(SlotNames {
                    listener: l.name.clone(),
                    route: route.to_string(),
                    cluster: cluster.to_string(),
                });
                RouteTarget { cluster: config.cluster_index(cluster).unwrap_or(0), slot: slots.len() - 1 }
            };
            listeners.push(match &l.kind {
                ListenerKind::Http { routes } => {
                    ListenerPlan::Http(Router::new(routes, |_, r| slot(&r.name, &r.cluster)))
                }
                ListenerKind::Tcp { cluster, sni_routes } => {
                    let default = slot("tcp", cluster);
                    let sni =
                        (!sni_routes.is_empty()).then(|| Router::new(sni_routes, |_, r| slot(&r.name, &r.cluster)));
                    ListenerPlan::Tcp { default, sni }
                }
            });
        }
        Self { generation, config, source, listeners, slots }
    }

    /// A listener's index by name.
    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.config.listeners.iter().position(|l| l.name == name)
    }
}
