//! A fast keyed hash for the tables. Keys are chosen by whoever sends us packets, so the hash
//! is seeded per process: without the seed nobody can aim many keys at one bucket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

#[derive(Clone, Copy)]
pub struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    /// Seeds from std's per-process random keys.
    pub fn random() -> KeyedHash {
        let s = RandomState::new();
        KeyedHash {
            k0: s.hash_one(0x7473_7573_656e_u64),
            k1: s.hash_one(0x6b65_7973_u64) | 1,
        }
    }

    /// Mixes the words of a key: a folded 64×64→128 multiply per word, keyed on both sides.
    #[inline]
    pub fn hash(&self, words: &[u64]) -> u64 {
        let mut h = self.k0;
        for &w in words {
            h = fold(h ^ w, self.k1);
        }
        fold(h, self.k1 ^ 0x9e37_79b9_7f4a_7c15)
    }
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_keys_spread() {
        let h = KeyedHash::random();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u64 {
            seen.insert(h.hash(&[i, 0, 0]) & 0xffff);
        }
        // 10 000 keys over 65 536 buckets: a decent hash leaves few collisions.
        assert!(seen.len() > 9_000, "{}", seen.len());
    }
}
