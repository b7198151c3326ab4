//! Consistent-hash ring (ketama-like).

/// Points per unit of weight.
const POINTS_PER_WEIGHT: usize = 100;
/// Cap on the ring size so large weights stay cheap to build.
const MAX_POINTS: usize = 1 << 20;

/// A sorted ring of (point hash, endpoint index).
#[derive(Debug, Clone)]
pub struct HashRing {
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// Builds a ring; `keys` are the endpoints' stable identities.
    pub fn new(weights: &[u32], keys: &[String]) -> Self {
        let total: usize = weights.iter().map(|w| *w as usize).sum::<usize>().max(1);
        let per_weight = (MAX_POINTS / total).clamp(1, POINTS_PER_WEIGHT);
        let mut points = Vec::with_capacity(total * per_weight);
        for (i, (w, key)) in weights.iter().zip(keys).enumerate() {
            for n in 0..(*w as usize * per_weight) {
                points.push((super::hash_key(format!("{key}#{n}").as_bytes()), i as u32));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The endpoint owning `hash`, skipping unavailable ones clockwise.
    pub fn lookup(&self, hash: u64, available: &[bool]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(p, _)| *p < hash);
        (0..self.points.len())
            .map(|k| self.points[(start + k) % self.points.len()].1 as usize)
            .find(|i| available.get(*i).copied().unwrap_or(false))
    }
}
