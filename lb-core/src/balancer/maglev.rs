//! Maglev lookup table (Eisenbud et al., NSDI 2016), weighted as Envoy does: an endpoint takes
//! a turn in a round only while its share is behind its weight.

/// Table size: a prime, as the paper requires; 65537 keeps per-endpoint shares within ~1%.
pub(super) const TABLE_SIZE: usize = 65537;

/// A filled lookup table.
#[derive(Debug, Clone)]
pub struct MaglevTable {
    table: Vec<u32>,
}

impl MaglevTable {
    /// Builds the table over the available endpoints; `keys` are stable identities.
    pub fn new(weights: &[u32], keys: &[String], available: &[bool]) -> Self {
        Self::with_size(weights, keys, available, TABLE_SIZE)
    }

    fn with_size(weights: &[u32], keys: &[String], available: &[bool], m: usize) -> Self {
        let members: Vec<usize> = (0..weights.len()).filter(|i| available[*i]).collect();
        if members.is_empty() {
            return Self { table: Vec::new() };
        }
        let m64 = m as u64;
        let perm: Vec<(u64, u64)> = members
            .iter()
            .map(|i| {
                let h = super::hash_key(keys[*i].as_bytes());
                let h2 = super::hash_key(format!("{}~skip", keys[*i]).as_bytes());
                (h % m64, h2 % (m64 - 1) + 1)
            })
            .collect();
        let max_w = members.iter().map(|i| u64::from(weights[*i])).max().unwrap_or(1);
        let mut next = vec![0u64; members.len()];
        let mut target = vec![0u64; members.len()];
        let mut table = vec![u32::MAX; m];
        let mut filled = 0;
        let mut round = 1u64;
        while filled < m {
            for (k, idx) in members.iter().enumerate() {
                if filled == m {
                    break;
                }
                if round * u64::from(weights[*idx]) < target[k] {
                    continue;
                }
                target[k] += max_w;
                let (offset, skip) = perm[k];
                loop {
                    let slot = ((offset + next[k] * skip) % m64) as usize;
                    next[k] += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = *idx as u32;
                        filled += 1;
                        break;
                    }
                }
            }
            round += 1;
        }
        Self { table }
    }

    /// The endpoint for `hash`.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(hash % self.table.len() as u64) as usize] as usize)
    }

    #[cfg(test)]
    pub(crate) fn small(weights: &[u32], keys: &[String], available: &[bool]) -> Self {
        Self::with_size(weights, keys, available, 1009)
    }
}
