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

/// `KeyedHash` as std's `BuildHasher`, for the maps whose keys come off the wire (the detectors'
/// per-source state): SipHash, std's default, cost more than the rest of a flow's handling.
#[derive(Clone, Copy)]
pub struct KeyedState(KeyedHash);

impl KeyedState {
    pub fn random() -> KeyedState {
        KeyedState(KeyedHash::random())
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    #[inline]
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            h: self.0.k0,
            k1: self.0.k1,
        }
    }
}

/// The running state of `KeyedState`: each integer written is one word of `KeyedHash::hash`.
pub struct KeyedHasher {
    h: u64,
    k1: u64,
}

impl std::hash::Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length goes in too, so a short tail and its zero-padded form differ.
            self.write_u64(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.h = fold(self.h ^ v, self.k1);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold(self.h, self.k1 ^ 0x9e37_79b9_7f4a_7c15)
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

    #[test]
    fn the_std_hasher_spreads_addresses_and_tells_keys_apart() {
        use crate::addr::Addr;
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let s = KeyedState::random();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let a = Addr::from(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)));
            seen.insert(s.hash_one((7u16, a)) & 0xffff);
        }
        assert!(seen.len() > 9_000, "{}", seen.len());
        // The same bytes as IPv4 and as IPv6, and tails that differ only in length.
        let v4 = Addr::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let v6 = Addr::from(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()));
        if v4 != v6 {
            assert_ne!(s.hash_one(v4), s.hash_one(v6));
        }
        assert_ne!(
            s.hash_one(Ipv6Addr::LOCALHOST),
            s.hash_one(Ipv6Addr::UNSPECIFIED)
        );
        assert_ne!(
            s.hash_one([0u8; 3].as_slice()),
            s.hash_one([0u8; 4].as_slice())
        );
        // Two processes (here two states) hash alike keys differently.
        let t = KeyedState::random();
        assert_ne!(s.hash_one(v4), t.hash_one(v4));
    }
}
