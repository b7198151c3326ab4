//! # lb-quic: QUIC and HTTP/3 for lbd
//!
//! Every worker runs one quinn endpoint per HTTP/3 address, on its own socket of a
//! `SO_REUSEPORT` group. Packets must reach the worker that owns their connection:
//!
//! ```text
//!  datagram ─▶ kernel: CBPF program (steering) reads the worker byte of the DCID ─▶ socket i
//!              (or the 4-tuple hash when it cannot / is not attached)
//!   worker i: socket::WorkerSocket::poll_recv
//!              ├─ owner(DCID) == i ─▶ quinn endpoint ─▶ server: h3 connection ─▶ per request:
//!              │                        lb_tcp::http::proxy::handle (router, clusters, pools)
//!              └─ owner == j ───────▶ crossbeam queue of worker j + wake ─▶ worker j's endpoint
//! ```
//!
//! * [`cid`]: connection IDs encoding node (QUIC-LB plaintext server id) and worker; the owner rule.
//! * [`steering`]: the CBPF program and its attachment (the crate's only `unsafe`).
//! * [`socket`]: the quinn `AsyncUdpSocket` with the forwarding path.
//! * [`group`]: what workers share: keys, layout, per-address socket groups bound in order.
//! * [`server`]: endpoint, accept policy (limits, Retry), HTTP/3 connections and requests.
//! * `body`: an HTTP/3 request body as an `http_body::Body`.
#![deny(unsafe_code)]

mod body;
pub mod cid;
pub mod group;
pub mod server;
pub mod socket;
pub mod steering;

pub use group::Shared;
pub use server::H3Endpoint;
