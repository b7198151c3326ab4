//! A worker thread: pinned to a core, running its own single-threaded runtime, its own
//! `SO_REUSEPORT` sockets and its own state. The main thread talks to it only through
//! [`Control`] messages on a crossbeam channel (plus a `Notify` to wake its runtime).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use lb_core::access_log::AccessRecord;
use lb_core::config::IoBackendChoice;
use lb_core::metrics::WorkerStats;
use lb_core::runtime::{pin_to_core, IoBackend, WorkerRuntime};
use lb_core::snapshot::Snapshot;
use lb_tcp::accept::{accept_loop, ListenerHandle};
use lb_tcp::ctx::WorkerCtx;
use lb_tcp::l4::L4Copy;
use lb_tcp::listener::bind_reuseport;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle as TaskHandle;

/// TLS server configs of the `https` listeners, by listener name, for TCP and for QUIC; built
/// once on the main thread and shared by all workers (so are their session-ticket keys), with
/// the QUIC state the workers share.
#[derive(Debug)]
pub(crate) struct TlsSet {
    pub(crate) tcp: HashMap<String, Arc<lb_tls::ServerConfig>>,
    pub(crate) quic: HashMap<String, Arc<lb_tls::ServerConfig>>,
    pub(crate) shared: Arc<lb_quic::Shared>,
}

/// See [`TlsSet`].
pub(crate) type TlsMap = Arc<TlsSet>;

/// Messages from the main thread.
#[derive(Debug)]
pub(crate) enum Control {
    /// Switch to a new config; reply once its listeners are bound.
    Apply(Arc<Snapshot>, TlsMap, oneshot::Sender<Result<(), String>>),
    /// Certificates changed on disk: new handshakes use these TLS configs.
    Tls(TlsMap),
    /// An active health check changed an endpoint's state.
    Health { cluster: String, address: SocketAddr, healthy: bool },
    /// Send a copy of the metrics.
    Stats(oneshot::Sender<WorkerStats>),
    /// Stop accepting, let connections finish for up to this long, then exit.
    Drain(Duration),
}

/// The main thread's handle on a worker.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    tx: Sender<Control>,
    wake: Arc<Notify>,
    thread: std::cell::RefCell<Option<JoinHandle<()>>>,
}

impl WorkerHandle {
    /// Sends a message; false when the worker is gone.
    pub(crate) fn send(&self, msg: Control) -> bool {
        let ok = self.tx.send(msg).is_ok();
        self.wake.notify_one();
        ok
    }

    /// Whether the thread has ended (joining it if so).
    pub(crate) fn finished(&self) -> bool {
        let mut t = self.thread.borrow_mut();
        match t.as_ref() {
            Some(h) if !h.is_finished() => false,
            _ => {
                if let Some(h) = t.take() {
                    let _ = h.join();
                }
                true
            }
        }
    }
}

/// Starts worker `id`; returns once it has its runtime and listeners, or failed to.
pub(crate) fn start(
    id: usize,
    choice: IoBackendChoice,
    pin: bool,
    snapshot: Arc<Snapshot>,
    tls: TlsMap,
    access_log: Option<Sender<AccessRecord>>,
) -> Result<(WorkerHandle, IoBackend), String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let wake = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread_wake = wake.clone();
    let thread = std::thread::Builder::new()
        .name(format!("lbd-worker-{id}"))
        .spawn(move || run(id, choice, pin, snapshot, tls, access_log, rx, thread_wake, ready_tx))
        .map_err(|e| format!("cannot start worker thread: {e}"))?;
    let backend = ready_rx.recv().map_err(|_| format!("worker {id} exited during start"))??;
    Ok((WorkerHandle { tx, wake, thread: std::cell::RefCell::new(Some(thread)) }, backend))
}

#[allow(clippy::too_many_arguments)]
fn run(
    id: usize,
    choice: IoBackendChoice,
    pin: bool,
    snapshot: Arc<Snapshot>,
    tls: TlsMap,
    access_log: Option<Sender<AccessRecord>>,
    rx: Receiver<Control>,
    wake: Arc<Notify>,
    ready: std::sync::mpsc::Sender<Result<IoBackend, String>>,
) {
    let pinned = pin && pin_to_core(id);
    let rt = match WorkerRuntime::new(choice) {
        Ok((rt, note)) => {
            if let Some(note) = note {
                tracing::warn!(worker = id, "{note}");
            }
            rt
        }
        Err(e) => {
            let _ = ready.send(Err(format!("worker {id}: {e}")));
            return;
        }
    };
    let backend = rt.backend();
    let l4_copy = L4Copy::for_worker(choice, backend);
    tracing::info!(worker = id, io_backend = backend.as_str(), ?l4_copy, pinned, "worker started");
    rt.block_on(async move {
        let ctx = WorkerCtx::new(id, backend, l4_copy, snapshot.clone(), access_log);
        let mut listeners = Listeners::default();
        if let Err(e) = listeners.sync(&ctx, &snapshot, &tls) {
            let _ = ready.send(Err(format!("worker {id}: {e}")));
            return;
        }
        let _ = ready.send(Ok(backend));
        let sweeper_ctx = ctx.clone();
        let sweeper = tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                sweeper_ctx.sweep_pools();
            }
        });
        let drain_for = control_loop(&ctx, &mut listeners, &rx, &wake).await;
        ctx.start_drain();
        let deadline = Instant::now() + drain_for;
        while ctx.state.borrow().metrics.counters.downstream_active > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = ctx.state.borrow().metrics.counters.downstream_active;
        if left > 0 {
            tracing::warn!(worker = id, connections = left, "drain timeout: closing remaining connections");
        }
        sweeper.abort();
    });
    tracing::info!(worker = id, "worker stopped");
}

/// Handles control messages until told to drain; returns the drain timeout.
async fn control_loop(
    ctx: &Rc<WorkerCtx>,
    listeners: &mut Listeners,
    rx: &Receiver<Control>,
    wake: &Notify,
) -> Duration {
    loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(crossbeam_channel::TryRecvError::Empty) => {
                wake.notified().await;
                continue;
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => return Duration::ZERO,
        };
        match msg {
            Control::Apply(snap, tls, reply) => {
                ctx.apply_snapshot(snap.clone());
                let _ = reply.send(listeners.sync(ctx, &snap, &tls));
            }
            Control::Tls(tls) => listeners.set_tls(&tls),
            Control::Health { cluster, address, healthy } => ctx.apply_health(&cluster, address, healthy),
            Control::Stats(reply) => {
                let mut stats = ctx.stats();
                for e in listeners.quic.values() {
                    let (forwarded, dropped) = e.forward_stats();
                    stats.counters.quic_forwarded += forwarded;
                    stats.counters.quic_forward_dropped += dropped;
                }
                let _ = reply.send(stats);
            }
            Control::Drain(timeout) => return timeout,
        }
    }
}

/// This worker's listening sockets: one accept task per (listener, address).
#[derive(Default)]
struct Listeners {
    handles: HashMap<String, Rc<ListenerHandle>>,
    sockets: HashMap<(String, SocketAddr), TaskHandle<()>>,
    /// HTTP/3 endpoints, by (listener, UDP address).
    quic: HashMap<(String, SocketAddr), lb_quic::H3Endpoint>,
}

impl Listeners {
    /// Gives each listener its (new) TLS config; established connections keep the old one.
    fn set_tls(&self, tls: &TlsMap) {
        for (name, h) in &self.handles {
            if let Some(c) = tls.tcp.get(name) {
                h.set_tls(Some(c.clone()));
            }
        }
        for ((name, _), e) in &self.quic {
            if let (Some(c), Some(h)) = (tls.quic.get(name), self.handles.get(name)) {
                e.set_tls(c.clone(), h.limits().idle_timeout);
            }
        }
    }

    /// Brings HTTP/3 endpoints in line with `snap`: new addresses get this worker's socket of
    /// their group, kept ones take the new TLS config, removed ones stop accepting and close
    /// once their connections are done.
    fn sync_quic(&mut self, ctx: &Rc<WorkerCtx>, snap: &Snapshot, tls: &TlsMap) -> Result<(), String> {
        let mut wanted = HashMap::new();
        for l in &snap.config.listeners {
            if let (Some(c), Some(h)) = (tls.quic.get(&l.name), self.handles.get(&l.name)) {
                for addr in &l.bind {
                    wanted.insert((l.name.clone(), *addr), (c.clone(), h.clone()));
                }
            }
        }
        let gone: Vec<_> = self.quic.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for key in gone {
            if let Some(e) = self.quic.remove(&key) {
                e.shut_down();
                tokio::task::spawn_local(async move {
                    e.wait_idle(Duration::from_secs(30)).await;
                });
            }
        }
        for ((name, addr), (c, h)) in wanted {
            if let Some(e) = self.quic.get(&(name.clone(), addr)) {
                e.set_tls(c, h.limits().idle_timeout);
                continue;
            }
            let (socket, mesh) = tls.shared.take(addr, ctx.id)?;
            let e = lb_quic::H3Endpoint::start(ctx.clone(), h, tls.shared.clone(), socket, mesh, c)
                .map_err(|e| format!("udp {addr}: {e}"))?;
            self.quic.insert((name, addr), e);
        }
        Ok(())
    }

    /// Brings sockets in line with `snap`: binds new addresses, stops removed ones (their
    /// established connections continue; removed listeners also close idle keep-alives).
    fn sync(&mut self, ctx: &Rc<WorkerCtx>, snap: &Snapshot, tls: &TlsMap) -> Result<(), String> {
        let mut wanted = HashMap::new();
        for l in &snap.config.listeners {
            let handle = match self.handles.get(&l.name) {
                Some(h) => {
                    h.update(l);
                    h.clone()
                }
                None => ListenerHandle::new(l),
            };
            handle.set_tls(tls.tcp.get(&l.name).cloned());
            for addr in &l.bind {
                wanted.insert((l.name.clone(), *addr), handle.clone());
            }
        }
        self.sockets.retain(|key, task| {
            let keep = wanted.contains_key(key);
            if !keep {
                task.abort();
            }
            keep
        });
        let names: std::collections::HashSet<&str> = snap.config.listeners.iter().map(|l| l.name.as_str()).collect();
        self.handles.retain(|name, h| {
            let keep = names.contains(name.as_str());
            if !keep {
                h.remove();
            }
            keep
        });
        for ((name, addr), handle) in wanted {
            if self.sockets.contains_key(&(name.clone(), addr)) {
                continue;
            }
            let socket = bind_reuseport(addr, 4096).map_err(|e| e.to_string())?;
            self.handles.insert(name.clone(), handle.clone());
            let task = tokio::task::spawn_local(accept_loop(ctx.clone(), socket, handle));
            self.sockets.insert((name, addr), task);
        }
        self.sync_quic(ctx, snap, tls)
    }
}
