//! The HTTP reverse proxy: [`server`] runs a client connection (HTTP/1.1 through [`h1server`],
//! lbd's own loop for the common request and hyper's server for the rest; HTTP/2 on h2 through
//! [`h2server`]), [`proxy`] takes each request
//! to a backend, over lbd's own HTTP/1.1 [`client`] or hyper's HTTP/2 one, [`body`] streams the
//! answer back and releases the upstream connection, [`headers`] applies the proxy header rules,
//! [`error`] maps failures to statuses.

pub mod body;
pub mod client;
pub mod error;
pub mod h1server;
pub mod h2server;
pub mod headers;
pub mod proxy;
pub mod response_head;
pub mod server;

/// Runs hyper's HTTP/2 client connections' tasks on this worker: they need not be `Send`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalExec;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}
