//! The HTTP/1.1 reverse proxy: [`server`] runs a client connection, [`proxy`] takes each request
//! to a backend, [`body`] streams the answer back and releases the upstream connection,
//! [`headers`] applies the proxy header rules, [`error`] maps failures to statuses.

pub mod body;
pub mod error;
pub mod headers;
pub mod proxy;
pub mod server;
