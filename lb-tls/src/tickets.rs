//! Session-ticket keys from a file, so several lbd nodes behind one L4 balancer resume each
//! other's TLS sessions. One hex-encoded 32-byte secret per line (`#` comments allowed); the
//! first seals new tickets, every listed key opens them, so rotation is: prepend a new key,
//! drop the oldest later. Written here because rustls' built-in ticketer only makes its own
//! random keys; the sealing is ring's AES-256-GCM.

use std::path::Path;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

struct Key {
    id: [u8; 4],
    key: LessSafeKey,
}

/// Tickets sealed with keys shared between nodes.
pub struct FileTicketer {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileTicketer({} keys)", self.keys.len())
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl FileTicketer {
    /// Reads the key file.
    pub fn load(path: &Path) -> Result<Arc<dyn ProducesTickets>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("ticket keys {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("ticket keys {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Arc<dyn ProducesTickets>, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let secret = hex(line)
                .filter(|b| b.len() == 32)
                .ok_or(format!("line {}: expected 64 hex digits (32 bytes)", n + 1))?;
            let digest = ring::digest::digest(&ring::digest::SHA256, &secret);
            let mut id = [0u8; 4];
            id.copy_from_slice(&digest.as_ref()[..4]);
            let key = UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| format!("line {}: bad key", n + 1))?;
            keys.push(Key { id, key: LessSafeKey::new(key) });
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(Arc::new(Self { keys, rng: SystemRandom::new() }))
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        12 * 3600
    }

    /// `key id (4) || nonce (12) || AES-256-GCM(plain) || tag`, the key id as associated data.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let k = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        k.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(k.id), &mut sealed).ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + sealed.len());
        out.extend_from_slice(&k.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let id = cipher.get(..4)?;
        let nonce = Nonce::try_assume_unique_for_key(cipher.get(4..4 + NONCE_LEN)?).ok()?;
        let k = self.keys.iter().find(|k| k.id == id)?;
        let mut buf = cipher.get(4 + NONCE_LEN..)?.to_vec();
        let plain = k.key.open_in_place(nonce, Aad::from(k.id), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    #[test]
    fn tickets_open_with_any_listed_key_and_are_sealed_with_the_first() {
        let old = FileTicketer::parse(K1).expect("old");
        let rotated = FileTicketer::parse(&format!("# new first\n{K2}\n{K1}\n")).expect("rotated");
        let t_old = old.encrypt(b"session state").expect("seal");
        assert_eq!(rotated.decrypt(&t_old).as_deref(), Some(&b"session state"[..]), "old tickets still resume");
        let t_new = rotated.encrypt(b"x").expect("seal");
        assert_eq!(old.decrypt(&t_new), None, "a node without the new key cannot open it");
        let mut forged = t_old.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(rotated.decrypt(&forged), None);
        assert!(FileTicketer::parse("abc").is_err());
        assert!(FileTicketer::parse("# only comments").is_err());
    }
}
