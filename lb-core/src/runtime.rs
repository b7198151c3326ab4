//! The per-worker runtime: one single-threaded runtime per pinned thread.
//!
//! `tokio_uring::Runtime` where io_uring can be set up (it is a tokio current-thread runtime
//! plus a `LocalSet`, so hyper and tokio sockets run inside it unchanged), otherwise a plain
//! tokio current-thread runtime with a `LocalSet`. Either way tasks are spawned with
//! `tokio::task::spawn_local` and per-worker state can be `Rc`/`RefCell`.

use std::future::Future;
use std::io;

use crate::config::IoBackendChoice;

/// The backend a worker got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring via tokio-uring.
    Uring,
    /// tokio's epoll reactor.
    Epoll,
}

impl IoBackend {
    /// Name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Epoll => "epoll",
        }
    }
}

/// A worker's runtime.
pub struct WorkerRuntime {
    inner: Inner,
}

enum Inner {
    Uring(tokio_uring::Runtime),
    Epoll(tokio::runtime::Runtime, tokio::task::LocalSet),
}

impl std::fmt::Debug for WorkerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerRuntime({})", self.backend().as_str())
    }
}

impl WorkerRuntime {
    /// Builds the runtime `choice` asks for. `Auto` falls back to epoll when io_uring cannot be
    /// set up (seccomp, `kernel.io_uring_disabled`) and says why in the returned note.
    pub fn new(choice: IoBackendChoice) -> io::Result<(Self, Option<String>)> {
        match choice {
            IoBackendChoice::Epoll => Ok((Self::epoll()?, None)),
            IoBackendChoice::Uring => Ok((
                Self::uring().map_err(|e| {
                    io::Error::new(e.kind(), format!("io_backend = \"uring\" but io_uring cannot be set up: {e}"))
                })?,
                None,
            )),
            IoBackendChoice::Auto => match Self::uring() {
                Ok(rt) => Ok((rt, None)),
                Err(e) => Ok((Self::epoll()?, Some(format!("io_uring unavailable ({e}); using epoll")))),
            },
        }
    }

    fn uring() -> io::Result<Self> {
        let mut b = tokio_uring::builder();
        b.entries(1024);
        Ok(Self { inner: Inner::Uring(tokio_uring::Runtime::new(&b)?) })
    }

    fn epoll() -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { inner: Inner::Epoll(rt, tokio::task::LocalSet::new()) })
    }

    /// Which backend this runtime runs.
    pub fn backend(&self) -> IoBackend {
        match self.inner {
            Inner::Uring(_) => IoBackend::Uring,
            Inner::Epoll(..) => IoBackend::Epoll,
        }
    }

    /// Runs the worker's main future; `spawn_local` works inside.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.inner {
            Inner::Uring(rt) => rt.block_on(f),
            Inner::Epoll(rt, local) => local.block_on(rt, f),
        }
    }
}

/// Pins the calling thread to core `worker % cores`; returns whether it was pinned.
pub fn pin_to_core(worker: usize) -> bool {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => core_affinity::set_for_current(ids[worker % ids.len()]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_runtime_runs_local_tasks() {
        let (rt, note) = WorkerRuntime::new(IoBackendChoice::Epoll).expect("runtime");
        assert_eq!(rt.backend(), IoBackend::Epoll);
        assert!(note.is_none());
        let v = rt.block_on(async { tokio::task::spawn_local(async { 41 + 1 }).await });
        assert_eq!(v.ok(), Some(42));
    }

    #[test]
    fn auto_gets_a_runtime_that_runs_local_tasks() {
        let (rt, _note) = WorkerRuntime::new(IoBackendChoice::Auto).expect("runtime");
        let v = rt.block_on(async { tokio::task::spawn_local(async { 7 }).await });
        assert_eq!(v.ok(), Some(7));
    }
}
