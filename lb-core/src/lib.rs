//! # lb-core: what lbd decides, apart from how it does IO
//!
//! Everything here is plain data and functions: no sockets, no spawned tasks, and no clock reads
//! in the decision logic (callers pass `now`), so it is tested without a network and with a fake
//! clock, the way quinn-proto and rustls are.
//!
//! ```text
//!  config text ──config::parse──▶ Config ──Snapshot::new──▶ Arc<Snapshot> ──▶ every worker
//!                                                     │
//!  request (host, path) ──router::Router::route──▶ RouteTarget { cluster, slot }
//!                                                     │
//!  cluster::ClusterState::pick(now, hash, tried) ──▶ endpoint   (balancer + health + ejection)
//!                                                     │
//!  response/outcome ──ClusterState::end_request──▶ passive ejection;  metrics::Registry
//!  health checker ──health::ActiveHealth::record──▶ ClusterState::set_health in each worker
//! ```
//!
//! - [`access_log`]: access log records and their line formats.
//! - [`config`]: the TOML model, validated with every error's line and column.
//! - [`router`]: ordered host/path routes.
//! - [`balancer`]: round robin, least request, ring hash, maglev, random.
//! - [`health`]: active check state machine and passive ejection.
//! - [`cluster`]: one worker's view of a cluster (availability, fail-open, in-flight counts).
//! - [`metrics`]: per-worker registry and Prometheus rendering.
//! - [`pool`]: which idle upstream connections to keep.
//! - [`snapshot`]: the compiled config handed to workers.
//! - [`runtime`]: the per-worker runtime (io_uring or epoll) and core pinning.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod balancer;
pub mod cluster;
pub mod config;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod router;
pub mod runtime;
pub mod snapshot;
