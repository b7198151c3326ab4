//! The main thread: starts the workers, runs the admin API, health checks and signal handling,
//! and carries out reloads and the drain at shutdown. Nothing here is on the request path.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lb_core::config::{self, Config, ConfigErrors};
use lb_core::snapshot::Snapshot;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use crate::health::HealthChecker;
use crate::worker::{self, Control, TlsMap, TlsSet, WorkerHandle};

/// Builds every `https` listener's TLS config: certificates read and checked now, so a bad one
/// stops the start or rejects the reload.
/// The TLS files a config uses, with their modification times.
fn tls_file_times(cfg: &Config) -> HashMap<PathBuf, Option<SystemTime>> {
    let mut out = HashMap::new();
    for tls in cfg.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        let files = tls.certificates.iter().flat_map(|c| [&c.cert, &c.key]).chain(tls.client_ca.iter());
        for f in files {
            out.insert(f.clone(), std::fs::metadata(f).and_then(|m| m.modified()).ok());
        }
    }
    out
}

fn tls_configs(
    cfg: &Config,
    tickets: &Arc<dyn lb_tls::ProducesTickets>,
    shared: &Arc<lb_quic::Shared>,
) -> Result<(TlsMap, Vec<lb_tls::CertInfo>), String> {
    let mut tcp = std::collections::HashMap::new();
    let mut quic = std::collections::HashMap::new();
    let mut infos = Vec::new();
    for l in &cfg.listeners {
        if let Some((c, i)) = lb_tls::server_config(l, tickets)? {
            tcp.insert(l.name.clone(), c);
            infos.extend(i);
        }
        if let Some(c) = lb_tls::quic_server_config(l, tickets)? {
            // Built here so that a listener QUIC cannot serve (no TLS 1.3 suite) rejects the config.
            lb_quic::server::server_config(c.clone(), shared, l.idle_timeout)
                .map_err(|e| format!("listener `{}`: {e}", l.name))?;
            quic.insert(l.name.clone(), c);
        }
    }
    let map = TlsSet { tcp, quic, shared: shared.clone() };
    // Upstream TLS is built by each worker; check here that it loads, so a bad CA or client
    // certificate rejects the config instead of failing connections.
    for c in &cfg.clusters {
        if let Some(t) = &c.tls {
            lb_tls::client_config(t, c.protocol == lb_core::config::UpstreamProtocol::Http2)
                .map_err(|e| format!("cluster `{}`: {e}", c.name))?;
        }
    }
    Ok((Arc::new(map), infos))
}

/// `lbd_tls_certificate_expiry_timestamp_seconds` for the certificates being served.
fn render_cert_expiry(certs: &[lb_tls::CertInfo]) -> String {
    let mut out = String::from(
        "# HELP lbd_tls_certificate_expiry_timestamp_seconds When each served certificate expires (notAfter, Unix seconds).\n\
         # TYPE lbd_tls_certificate_expiry_timestamp_seconds gauge\n",
    );
    for c in certs {
        if let Some(t) = c.not_after {
            out.push_str(&format!(
                "lbd_tls_certificate_expiry_timestamp_seconds{{listener=\"{}\",certificate=\"{}\"}} {t}\n",
                c.listener.replace('"', "\\\""),
                c.path.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
    }
    out
}

/// Where the config comes from (and is re-read from on reload).
#[derive(Debug, Clone)]
pub(crate) enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// Text made by the binary (`lbd demo`).
    Embedded { name: &'static str, text: String },
}

impl ConfigSource {
    /// Reads and validates the config.
    pub(crate) fn load(&self) -> Result<(Config, String), ConfigErrors> {
        match self {
            Self::File(p) => config::load(p),
            Self::Embedded { name, text } => config::parse(text, name).map(|c| (c, text.clone())),
        }
    }
}

/// What the admin API and the signal handlers act on.
pub(crate) struct Daemon {
    source: ConfigSource,
    /// The certificates being served, for the expiry metric.
    certs: RefCell<Vec<lb_tls::CertInfo>>,
    /// Modification times of the TLS files the running TLS configs were built from.
    tls_files: RefCell<HashMap<PathBuf, Option<SystemTime>>>,
    /// Session-ticket keys shared by every https listener, kept across reloads (re-read from the
    /// key file, when there is one, on reload).
    tickets: RefCell<Arc<dyn lb_tls::ProducesTickets>>,
    /// QUIC keys, connection-ID layout and UDP socket groups, for the daemon's lifetime.
    quic: Arc<lb_quic::Shared>,
    snapshot: RefCell<Arc<Snapshot>>,
    workers: Rc<Vec<WorkerHandle>>,
    health: RefCell<HealthChecker>,
    reloading: Cell<bool>,
    draining: Cell<bool>,
}

impl Daemon {
    /// The running snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Re-reads the config and applies it to every worker; a bad config changes nothing.
    pub(crate) async fn reload(&self) -> Result<u64, String> {
        if self.reloading.replace(true) {
            return Err("another reload is in progress".into());
        }
        let r = self.reload_inner().await;
        self.reloading.set(false);
        match &r {
            Ok(g) => tracing::info!(generation = g, "config reloaded"),
            Err(e) => tracing::error!("reload rejected, previous config keeps running:\n{e}"),
        }
        r
    }

    async fn reload_inner(&self) -> Result<u64, String> {
        if self.draining.get() {
            return Err("shutting down".into());
        }
        let (cfg, text) = self.source.load().map_err(|e| e.to_string())?;
        let old = self.snapshot();
        let o = &old.config;
        for (changed, what) in [
            (cfg.workers != o.workers, "workers"),
            (cfg.io_backend != o.io_backend, "io_backend"),
            (cfg.pin_workers != o.pin_workers, "pin_workers"),
            (cfg.admin != o.admin, "[admin]"),
            (cfg.access_log != o.access_log, "[access_log]"),
        ] {
            if changed {
                tracing::warn!("{what} changed: this takes effect at the next restart");
            }
        }
        let bound: HashSet<SocketAddr> = o.listeners.iter().flat_map(|l| l.bind.iter().copied()).collect();
        for l in &cfg.listeners {
            for a in l.bind.iter().filter(|a| !bound.contains(a)) {
                lb_tcp::listener::probe_bind(*a).map_err(|e| format!("listener `{}`: {e}", l.name))?;
            }
        }
        // A key file is re-read on reload; the new keys take effect only if the reload does.
        let tickets = match &cfg.tls_ticket_key_file {
            Some(path) => lb_tls::ticketer(Some(path))?,
            None => self.tickets.borrow().clone(),
        };
        let (tls, certs) = tls_configs(&cfg, &tickets, &self.quic)?;
        // UDP socket groups for new HTTP/3 addresses (bound in worker order, here on one thread).
        self.quic.sync(&cfg)?;
        let snap = Arc::new(Snapshot::new(cfg, text, old.generation + 1));
        let replies: Vec<_> = self
            .workers
            .iter()
            .map(|w| {
                let (tx, rx) = oneshot::channel();
                w.send(Control::Apply(snap.clone(), tls.clone(), tx));
                rx
            })
            .collect();
        let mut errors = Vec::new();
        for (i, rx) in replies.into_iter().enumerate() {
            match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => errors.push(format!("worker {i}: {e}")),
                _ => errors.push(format!("worker {i} did not answer")),
            }
        }
        *self.snapshot.borrow_mut() = snap.clone();
        *self.tickets.borrow_mut() = tickets;
        *self.tls_files.borrow_mut() = tls_file_times(&snap.config);
        *self.certs.borrow_mut() = certs;
        self.health.borrow_mut().sync(&snap, &self.workers);
        if errors.is_empty() {
            Ok(snap.generation)
        } else {
            Err(format!("config generation {} applied with errors:\n{}", snap.generation, errors.join("\n")))
        }
    }

    /// Rebuilds the TLS configs when a certificate, key or CA file changed on disk; a file that
    /// does not load is logged and the running certificates stay.
    fn reload_changed_certificates(&self) {
        let snap = self.snapshot();
        let now = tls_file_times(&snap.config);
        if *self.tls_files.borrow() == now {
            return;
        }
        let tickets = self.tickets.borrow().clone();
        match tls_configs(&snap.config, &tickets, &self.quic) {
            Ok((tls, certs)) => {
                *self.certs.borrow_mut() = certs;
                tracing::info!("certificate files changed: new TLS handshakes use them");
                for w in self.workers.iter() {
                    w.send(Control::Tls(tls.clone()));
                }
                *self.tls_files.borrow_mut() = now;
            }
            Err(e) => {
                tracing::error!("certificate files changed but do not load; the running certificates stay: {e}");
                // Try again only after the next change.
                *self.tls_files.borrow_mut() = now;
            }
        }
    }

    /// Prometheus text for all workers.
    pub(crate) async fn metrics(&self) -> String {
        let replies: Vec<_> = self
            .workers
            .iter()
            .map(|w| {
                let (tx, rx) = oneshot::channel();
                w.send(Control::Stats(tx));
                rx
            })
            .collect();
        let mut stats = Vec::new();
        for rx in replies {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), rx).await {
                stats.push(s);
            }
        }
        let snap = self.snapshot();
        let health = self.health.borrow().table(&snap);
        let mut text = lb_core::metrics::render(&stats, &health, snap.generation);
        text.push_str(&render_cert_expiry(&self.certs.borrow()));
        text
    }

    /// Stops accepting, lets connections finish up to the drain timeout, and waits for workers.
    async fn drain(&self) {
        self.draining.set(true);
        let timeout = self.snapshot().config.drain_timeout;
        tracing::info!(?timeout, "draining");
        for w in self.workers.iter() {
            w.send(Control::Drain(timeout));
        }
        while !self.workers.iter().all(WorkerHandle::finished) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT; `on_ready` runs once everything listens.
pub(crate) fn run(source: ConfigSource, on_ready: impl FnOnce(&Config)) -> ExitCode {
    let (cfg, text) = match source.load() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lbd: cannot start the main runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        match main_loop(source, Arc::new(Snapshot::new(cfg, text, 1)), on_ready).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lbd: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn main_loop(source: ConfigSource, snap: Arc<Snapshot>, on_ready: impl FnOnce(&Config)) -> Result<(), String> {
    let cfg = &snap.config;
    let tickets = lb_tls::ticketer(cfg.tls_ticket_key_file.as_deref())?;
    let quic = Arc::new(lb_quic::Shared::new(&cfg.quic, cfg.workers)?);
    let (tls, certs) = tls_configs(cfg, &tickets, &quic)?;
    quic.sync(cfg)?;
    let mut signals = Signals::new().map_err(|e| format!("signals: {e}"))?;
    let access = crate::access_log::start(&cfg.access_log).map_err(|e| e.to_string())?;
    let (log_tx, log_thread) = access.map_or((None, None), |(tx, t)| (Some(tx), Some(t)));
    let admin = tokio::net::TcpListener::bind(cfg.admin.bind)
        .await
        .map_err(|e| format!("admin listener {}: {e}", cfg.admin.bind))?;
    let mut workers = Vec::new();
    let mut backends = Vec::new();
    for id in 0..cfg.workers {
        match worker::start(id, cfg.io_backend, cfg.pin_workers, snap.clone(), tls.clone(), log_tx.clone()) {
            Ok((w, b)) => {
                workers.push(w);
                backends.push(b.as_str());
            }
            Err(e) => {
                for w in &workers {
                    w.send(Control::Drain(Duration::ZERO));
                }
                while !workers.iter().all(WorkerHandle::finished) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Err(e);
            }
        }
    }
    drop(log_tx);
    let daemon = Rc::new(Daemon {
        source,
        tickets: RefCell::new(tickets),
        quic,
        certs: RefCell::new(certs),
        tls_files: RefCell::new(tls_file_times(&snap.config)),
        snapshot: RefCell::new(snap.clone()),
        workers: Rc::new(workers),
        health: RefCell::new(HealthChecker::default()),
        reloading: Cell::new(false),
        draining: Cell::new(false),
    });
    daemon.health.borrow_mut().sync(&snap, &daemon.workers);
    tokio::task::spawn_local(crate::admin::serve(daemon.clone(), admin));
    let watcher = daemon.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            watcher.reload_changed_certificates();
        }
    });
    let listeners: Vec<String> = cfg
        .listeners
        .iter()
        .map(|l| format!("{} {:?}", l.name, l.bind.iter().map(ToString::to_string).collect::<Vec<_>>()))
        .collect();
    tracing::info!(workers = cfg.workers, io_backends = ?backends, admin = %cfg.admin.bind, ?listeners, "lbd running");
    on_ready(cfg);
    while let Sig::Reload = signals.next().await {
        let _ = daemon.reload().await;
    }
    daemon.drain().await;
    drop(daemon);
    if let Some(t) = log_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

enum Sig {
    Reload,
    Stop,
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.hup.recv() => Sig::Reload,
            _ = self.term.recv() => Sig::Stop,
            _ = self.int.recv() => Sig::Stop,
        }
    }
}
