//! What all workers share about QUIC: the connection-ID layout, the stateless-reset and
//! address-validation token keys, and per UDP address one socket group — the workers' sockets,
//! bound in worker order on one thread (their order is the index the CBPF program returns),
//! plus the forwarding queues between them. The daemon makes one [`Shared`] at start and syncs
//! its groups with each config before the workers take their sockets.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};

use lb_core::config::{Config, ListenerKind, QuicConfig, QuicSteering};
use ring::{hkdf, hmac};

use crate::cid::Layout;
use crate::socket::{Mesh, MeshPart};

/// One address's socket group.
#[derive(Debug)]
pub struct Group {
    /// Each worker's socket until it takes it.
    sockets: Mutex<Vec<Option<UdpSocket>>>,
    mesh: Mesh,
}

/// QUIC state shared by the workers.
#[derive(Debug)]
pub struct Shared {
    /// The connection-ID layout.
    pub layout: Layout,
    /// Stateless-reset key (the same on every worker, and on every node given the key file).
    pub reset_key: Arc<hmac::Key>,
    /// Retry and NEW_TOKEN key.
    pub token_key: Arc<hkdf::Prk>,
    /// `[quic]` as loaded at start (`server_id`, `key_file` and `steering` need a restart).
    pub config: QuicConfig,
    groups: Mutex<HashMap<SocketAddr, Arc<Group>>>,
}

/// The UDP addresses `cfg` serves HTTP/3 on.
pub fn h3_addresses(cfg: &Config) -> Vec<SocketAddr> {
    cfg.listeners
        .iter()
        .filter(|l| matches!(l.kind, ListenerKind::Http { .. }) && l.tls.as_ref().is_some_and(|t| t.http3))
        .flat_map(|l| l.bind.iter().copied())
        .collect()
}

impl Shared {
    /// Keys from `[quic] key_file` (HKDF of its bytes), or random ones.
    pub fn new(cfg: &QuicConfig, workers: usize) -> Result<Self, String> {
        let secret = match &cfg.key_file {
            Some(p) => read_secret(p)?,
            None => {
                let mut s = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s)
                    .map_err(|_| "no system randomness for QUIC keys".to_string())?;
                s
            }
        };
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"lbd quic keys v1");
        let prk = salt.extract(&secret);
        let mut reset = [0u8; 32];
        let mut token = [0u8; 32];
        for (info, out) in [(b"stateless reset".as_slice(), &mut reset), (b"address token".as_slice(), &mut token)] {
            prk.expand(&[info], hkdf::HKDF_SHA256)
                .and_then(|okm| okm.fill(out))
                .map_err(|_| "QUIC key derivation failed".to_string())?;
        }
        Ok(Self {
            layout: Layout::new(cfg.server_id.clone(), workers),
            reset_key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &reset)),
            token_key: Arc::new(hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &token)),
            config: cfg.clone(),
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Binds a group for each HTTP/3 address of `cfg` that has none, and forgets groups of
    /// addresses `cfg` no longer serves (their sockets close when the workers drop theirs).
    pub fn sync(&self, cfg: &Config) -> Result<(), String> {
        let wanted = h3_addresses(cfg);
        let mut groups = self.groups.lock().map_err(|_| "QUIC group lock poisoned".to_string())?;
        // Bind every new group first: if one fails, nothing changes.
        let mut new = Vec::new();
        for addr in &wanted {
            if !groups.contains_key(addr) && !new.iter().any(|(a, _)| a == addr) {
                new.push((*addr, self.bind(*addr).map_err(|e| format!("udp {addr}: {e}"))?));
            }
        }
        groups.retain(|a, _| wanted.contains(a));
        for (addr, group) in new {
            groups.insert(addr, Arc::new(group));
        }
        Ok(())
    }

    fn bind(&self, addr: SocketAddr) -> std::io::Result<Group> {
        let n = self.layout.workers;
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            sockets.push(bind_udp(addr)?);
        }
        if n > 1 && self.config.steering == QuicSteering::Cbpf {
            // Without it every misrouted datagram is forwarded: slower, but correct.
            if let Some(Err(e)) = sockets.first().map(|s| crate::steering::attach(s, &self.layout)) {
                tracing::warn!(%addr, error = %e, "CBPF steering unavailable; misrouted QUIC datagrams are forwarded");
            }
        }
        Ok(Group {
            sockets: Mutex::new(sockets.into_iter().map(Some).collect()),
            mesh: Mesh::new(n, self.config.forward_queue),
        })
    }

    /// Worker `worker`'s socket and queues for `addr` (once).
    pub fn take(&self, addr: SocketAddr, worker: usize) -> Result<(UdpSocket, MeshPart), String> {
        let groups = self.groups.lock().map_err(|_| "QUIC group lock poisoned".to_string())?;
        let group = groups.get(&addr).ok_or_else(|| format!("udp {addr}: no socket group"))?;
        let mut sockets = group.sockets.lock().map_err(|_| "QUIC socket lock poisoned".to_string())?;
        let socket = sockets
            .get_mut(worker)
            .and_then(Option::take)
            .ok_or_else(|| format!("udp {addr}: worker {worker}'s socket already taken"))?;
        let part = group.mesh.part(worker).ok_or_else(|| format!("udp {addr}: no queue for worker {worker}"))?;
        Ok((socket, part))
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 32 {
        return Err(format!("{}: a QUIC key file needs at least 32 bytes, it has {}", path.display(), bytes.len()));
    }
    Ok(bytes)
}

/// A non-blocking `SO_REUSEPORT` UDP socket on `addr` with large buffers (QUIC bursts).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max (see kernel-tuning/).
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(s: &Shared) -> Vec<u8> {
        hmac::sign(&s.reset_key, b"a connection id").as_ref().to_vec()
    }

    #[test]
    fn a_key_file_gives_every_node_the_same_keys_and_short_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("lb-quic-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("quic.key");
        std::fs::write(&file, [42u8; 48]).expect("write");
        let cfg = QuicConfig { key_file: Some(file.clone()), ..QuicConfig::default() };
        let (a, b) = (Shared::new(&cfg, 2).expect("keys"), Shared::new(&cfg, 4).expect("keys"));
        assert_eq!(sign(&a), sign(&b), "two nodes with one key file share the reset key");
        let random = Shared::new(&QuicConfig::default(), 2).expect("keys");
        assert_ne!(sign(&a), sign(&random));
        std::fs::write(&file, [1u8; 16]).expect("write");
        let err = Shared::new(&cfg, 2).expect_err("16 bytes is too short");
        assert!(err.contains("at least 32 bytes"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
