//! Connection IDs that say which node and which worker own a connection, and the rule that maps
//! a datagram to its worker. Sans-IO: used by the CBPF program builder ([`crate::steering`]), by
//! the forwarding path ([`crate::socket`]) and by quinn (as its `ConnectionIdGenerator`).
//!
//! Layout (the plaintext layout of draft-ietf-quic-load-balancers, with lbd's worker byte as the
//! first byte of what the draft calls the nonce):
//!
//! ```text
//! byte 0            1 .. 1+S          1+S       2+S .. LEN
//!      first octet  server id (S B)   worker    random
//!      (CR bits 0,
//!       length)
//! ```
//!
//! The worker byte `w` is drawn at random among the values with `w % workers == id`, so the
//! kernel's CBPF program and the forwarding path agree on one rule: the owner of a datagram is
//! `dcid[1 + S] % workers`. Client-chosen destination IDs (a client's first Initial) follow the
//! same rule, which keeps every retransmission of a client's first flight on one worker. Like
//! Envoy's and the draft's plaintext mode, this exposes which node (and, modulo the worker count,
//! which worker) holds a connection; it does not link two IDs of one connection to an observer
//! who does not already know the layout's server id, since the rest is random.

use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};

/// Bytes of random nonce after the worker byte, at most (the draft asks for at least 4; a
/// connection ID is at most 20 bytes, so long server ids shorten it).
const NONCE: usize = 7;
/// Random bytes drawn per ID.
const RANDOM: usize = 1 + NONCE;
/// Longest server id accepted (keeps 4 nonce bytes besides the worker byte within 20).
pub const MAX_SERVER_ID: usize = 14;

/// Where the worker byte sits and how many workers share the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// This node's QUIC-LB server id (may be empty).
    pub server_id: Vec<u8>,
    /// Workers sharing the socket group.
    pub workers: usize,
}

impl Layout {
    /// A layout; `workers` is clamped to 1..=256 (one byte carries the worker).
    pub fn new(server_id: Vec<u8>, workers: usize) -> Self {
        let mut server_id = server_id;
        server_id.truncate(MAX_SERVER_ID);
        Self { server_id, workers: workers.clamp(1, 256) }
    }

    /// Offset of the worker byte inside a connection ID.
    pub fn worker_offset(&self) -> usize {
        1 + self.server_id.len()
    }

    /// Length of the connection IDs lbd issues (at most 20 as QUIC allows).
    pub fn cid_len(&self) -> usize {
        self.worker_offset() + 1 + self.nonce_len()
    }

    fn nonce_len(&self) -> usize {
        NONCE.min(19 - self.worker_offset())
    }

    /// The worker that owns a datagram, from its destination connection ID; `None` when the
    /// datagram is too short to tell (then whoever received it handles it).
    pub fn owner(&self, datagram: &[u8]) -> Option<usize> {
        let first = *datagram.first()?;
        let k = self.worker_offset();
        let byte = if first & 0x80 == 0 {
            // Short header: the DCID (of our length) starts at byte 1.
            *datagram.get(1 + k)?
        } else {
            // Long header: flags, 4-byte version, DCID length, DCID.
            let len = usize::from(*datagram.get(5)?);
            if len <= k {
                return None;
            }
            *datagram.get(6 + k)?
        };
        Some(usize::from(byte) % self.workers)
    }
}

/// quinn's connection-ID generator for one worker.
#[derive(Debug)]
pub struct WorkerCids {
    layout: Layout,
    worker: usize,
    lifetime: Option<Duration>,
}

impl WorkerCids {
    /// The generator of worker `worker` under `layout`.
    pub fn new(layout: Layout, worker: usize) -> Self {
        Self { layout, worker, lifetime: None }
    }

    /// The connection ID bytes, from `RANDOM` bytes of randomness.
    fn make(&self, random: &[u8; RANDOM]) -> Vec<u8> {
        let n = self.layout.workers;
        let mut cid = Vec::with_capacity(self.layout.cid_len());
        // First octet: config-rotation bits 0b000, then the length of the rest (self-encoded
        // length, so a QUIC-LB balancer need not be told it).
        let rest = self.layout.cid_len() - 1;
        cid.push(u8::try_from(rest & 0x1f).unwrap_or(0x1f));
        cid.extend_from_slice(&self.layout.server_id);
        // Values below 256 that are ≡ worker (mod n): worker + n * r for r in 0..=(255 - worker) / n.
        let choices = (255 - self.worker) / n + 1;
        let r = usize::from(random[0]) % choices;
        cid.push(u8::try_from(self.worker + n * r).unwrap_or(0));
        cid.extend_from_slice(&random[1..=self.layout.nonce_len()]);
        cid
    }
}

impl ConnectionIdGenerator for WorkerCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut random = [0u8; RANDOM];
        // ring's system RNG; a failure would mean no entropy at all, and then a fixed nonce is
        // still a valid (if linkable) ID.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        ConnectionId::new(&self.make(&random))
    }

    fn cid_len(&self) -> usize {
        self.layout.cid_len()
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short_packet(cid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x40];
        p.extend_from_slice(cid);
        p.extend_from_slice(&[0u8; 30]);
        p
    }

    fn long_packet(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0, 0, 0, 0, 1, u8::try_from(dcid.len()).unwrap_or(0)];
        p.extend_from_slice(dcid);
        p.extend_from_slice(&[8, 1, 2, 3, 4, 5, 6, 7, 8]);
        p
    }

    #[test]
    fn every_generated_id_routes_to_its_worker() {
        for server_id in [vec![], vec![0x0a, 0x01], vec![7; MAX_SERVER_ID]] {
            for workers in [1, 2, 3, 7, 256] {
                let layout = Layout::new(server_id.clone(), workers);
                for w in [0, workers / 2, workers - 1] {
                    let mut g = WorkerCids::new(layout.clone(), w);
                    for _ in 0..200 {
                        let cid = g.generate_cid();
                        assert_eq!(cid.len(), layout.cid_len());
                        assert!(cid.len() <= 20);
                        assert_eq!(&cid[1..1 + server_id.len()], &server_id[..]);
                        assert_eq!(layout.owner(&short_packet(&cid)), Some(w), "short, {workers} workers");
                        assert_eq!(layout.owner(&long_packet(&cid)), Some(w), "long, {workers} workers");
                    }
                }
            }
        }
    }

    #[test]
    fn worker_byte_is_spread_over_its_residue_class() {
        let layout = Layout::new(vec![], 2);
        let g = WorkerCids::new(layout, 1);
        let mut seen = std::collections::HashSet::new();
        for r in 0..=255u8 {
            let mut random = [0u8; RANDOM];
            random[0] = r;
            seen.insert(g.make(&random)[1]);
        }
        assert_eq!(seen.len(), 128);
        assert!(seen.iter().all(|b| b % 2 == 1));
    }

    #[test]
    fn client_chosen_ids_map_consistently_and_short_ones_stay() {
        let layout = Layout::new(vec![], 4);
        let dcid = [9u8, 6, 3, 4, 5, 6, 7, 8];
        assert_eq!(layout.owner(&long_packet(&dcid)), Some(6 % 4));
        assert_eq!(layout.owner(&long_packet(&[1])), None, "DCID shorter than the worker offset");
        assert_eq!(layout.owner(&[0x40]), None, "truncated short header");
        assert_eq!(layout.owner(&[]), None);
    }

    #[test]
    fn first_octet_self_encodes_length() {
        let layout = Layout::new(vec![1, 2, 3], 2);
        let cid = WorkerCids::new(layout.clone(), 0).generate_cid();
        assert_eq!(usize::from(cid[0] & 0x1f), layout.cid_len() - 1);
        assert_eq!(cid[0] >> 5, 0, "config rotation 0");
    }
}
