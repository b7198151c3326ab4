//! Balancing policies. Each picks an endpoint index among those marked available; the caller
//! ([`crate::cluster::ClusterState`]) decides availability (health, ejection, fail-open).
//!
//! - `round_robin`: smooth weighted round robin (nginx): deterministic, spreads heavy endpoints.
//! - `least_request`: two random available endpoints, the one with fewer in-flight requests per
//!   unit of weight wins (Envoy's P2C).
//! - `ring_hash`: ketama-style ring, 100 points per unit of weight; an unavailable endpoint's keys
//!   move to the next available point clockwise, the others keep theirs.
//! - `maglev`: Maglev lookup table (65537 entries), rebuilt from the available set when it changes.
//! - `random`: weighted random.
//!
//! Hash policies fall back to `random` when a request has no key (e.g. the header is absent).

mod maglev;
mod ring;

use crate::config::Policy;

pub use maglev::MaglevTable;
pub use ring::HashRing;

/// Hashes a key (source IP bytes, header or cookie value) for the hash policies.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// What a pick sees of each endpoint.
#[derive(Debug, Clone, Copy)]
pub struct PickInput<'a> {
    /// Which endpoints may be picked.
    pub available: &'a [bool],
    /// In-flight requests per endpoint (for `least_request`).
    pub active: &'a [u32],
    /// The request's hash key, for hash policies.
    pub hash: Option<u64>,
}

/// A balancer over a fixed list of weighted endpoints.
#[derive(Debug, Clone)]
pub struct Balancer {
    weights: Vec<u32>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    RoundRobin {
        current: Vec<i64>,
    },
    LeastRequest,
    RingHash(HashRing),
    /// The table and the availability it was built for.
    Maglev {
        table: MaglevTable,
        built_for: Vec<bool>,
    },
    Random,
}

impl Balancer {
    /// `keys` are stable endpoint identities (addresses) used by the hash policies.
    pub fn new(policy: Policy, weights: Vec<u32>, keys: &[String]) -> Self {
        let kind = match policy {
            Policy::RoundRobin => Kind::RoundRobin { current: vec![0; weights.len()] },
            Policy::LeastRequest => Kind::LeastRequest,
            Policy::RingHash => Kind::RingHash(HashRing::new(&weights, keys)),
            Policy::Maglev => {
                let all = vec![true; weights.len()];
                Kind::Maglev { table: MaglevTable::new(&weights, keys, &all), built_for: all }
            }
            Policy::Random => Kind::Random,
        };
        Self { weights, kind }
    }

    /// Picks an endpoint among the available ones; `None` only when none is available.
    pub fn pick(&mut self, input: PickInput<'_>, keys: &[String], rng: &mut fastrand::Rng) -> Option<usize> {
        let avail = input.available;
        if !avail.iter().any(|a| *a) {
            return None;
        }
        match &mut self.kind {
            Kind::RoundRobin { current } => {
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for i in 0..self.weights.len() {
                    if !avail[i] {
                        continue;
                    }
                    let w = i64::from(self.weights[i]);
                    current[i] += w;
                    total += w;
                    if best.is_none_or(|b| current[i] > current[b]) {
                        best = Some(i);
                    }
                }
                let b = best?;
                current[b] -= total;
                Some(b)
            }
            Kind::LeastRequest => {
                let a = weighted_random(&self.weights, avail, None, rng)?;
                // The second choice differs from the first whenever another endpoint is available.
                let b = weighted_random(&self.weights, avail, Some(a), rng).unwrap_or(a);
                // Fewer in-flight per unit of weight wins: active_a / w_a <= active_b / w_b.
                let (wa, wb) = (u64::from(self.weights[a]), u64::from(self.weights[b]));
                let (la, lb) = (u64::from(input.active[a]) * wb, u64::from(input.active[b]) * wa);
                Some(if la <= lb { a } else { b })
            }
            Kind::RingHash(ring) => match input.hash {
                Some(h) => ring.lookup(h, avail),
                None => weighted_random(&self.weights, avail, None, rng),
            },
            Kind::Maglev { table, built_for } => match input.hash {
                Some(h) => {
                    if built_for.as_slice() != avail {
                        *table = MaglevTable::new(&self.weights, keys, avail);
                        built_for.clear();
                        built_for.extend_from_slice(avail);
                    }
                    table.lookup(h)
                }
                None => weighted_random(&self.weights, avail, None, rng),
            },
            Kind::Random => weighted_random(&self.weights, avail, None, rng),
        }
    }
}

fn weighted_random(weights: &[u32], avail: &[bool], exclude: Option<usize>, rng: &mut fastrand::Rng) -> Option<usize> {
    let eligible = |i: usize| avail[i] && Some(i) != exclude;
    let total: u64 = (0..weights.len()).filter(|i| eligible(*i)).map(|i| u64::from(weights[i])).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.u64(0..total);
    for (i, w) in weights.iter().enumerate() {
        if !eligible(i) {
            continue;
        }
        if r < u64::from(*w) {
            return Some(i);
        }
        r -= u64::from(*w);
    }
    None
}

#[cfg(test)]
mod tests;
