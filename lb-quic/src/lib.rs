//! # lb-quic: QUIC and HTTP/3 for lbd (next issues)
//!
//! This crate will hold one quinn endpoint per worker on its own `SO_REUSEPORT` UDP socket,
//! connection IDs that encode the owning worker (and optionally a QUIC-LB server id), CBPF
//! steering by connection ID with a crossbeam forwarding path for packets that land on the wrong
//! worker, and HTTP/3 through h3 + h3-quinn into the same router, clusters and pools as HTTP/1.1.
#![forbid(unsafe_code)]
