//! # lb-tcp: lbd's TCP data plane
//!
//! A worker owns one [`ctx::WorkerCtx`] and, per listener address, one `SO_REUSEPORT` socket
//! ([`listener`]) served by [`accept::accept_loop`]. Each accepted connection becomes a local
//! task:
//!
//! ```text
//! accept_loop ─┬─ http listener ─▶ waiting room (no task until the first byte; `waiting`)
//!              │                   ─▶ http::server::serve_http
//!              │                        (https: tls::TlsStream, rustls's unbuffered API)
//!              │                        HTTP/1.1: lbd's loop (http::h1server), hyper's
//!              │                        server once a request needs it; HTTP/2: h2 with
//!              │                        lbd's stream tasks (http::h2server)
//!              │                     └─ per request: http::proxy::handle
//!              │                          route (lb-core router) → pick (lb-core cluster state)
//!              │                          → pool::Pool or new upstream conn
//!              │                          → http::client (lbd's HTTP/1.1 client, in the
//!              │                            request's task) or hyper's HTTP/2 client
//!              │                          → response streamed back in http::body::ProxyBody;
//!              │                            an HTTP/1.1 body carries its connection back to
//!              │                            the pool at its end, and the backend's header
//!              │                            fields already encoded for the client's
//!              │                            protocol (http::response_head: HTTP/1.1
//!              │                            lines, HPACK or QPACK) instead of a HeaderMap
//!              └─ tcp listener ──▶ l4::serve_tcp (io_uring owned buffers, or epoll readiness
//!                                  with the worker's spare buffers)
//! ```
//!
//! Idle and request-head timeouts use [`activity`] (counters bumped by IO, checked by a
//! watchdog). Drain and listener removal are [`signal::Signal`]s local to the worker. Active health probes
//! are in [`health_probe`]; decisions live in `lb-core`.
#![deny(unsafe_code)]

pub mod accept;
pub mod activity;
pub mod ctx;
pub mod health_probe;
pub mod http;
pub mod l4;
pub mod listener;
pub mod pool;
pub mod proxy_protocol;
pub mod signal;
mod spare;
pub mod tls;
mod waiting;
