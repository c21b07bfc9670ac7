//! A map of fixed capacity that forgets its least recently used key when full: the bounded
//! per-source state of the flow sensors and the fingerprints.
//!
//! What a lookup and a move to the front touch is kept apart from the entries, in two dense
//! arrays: the index (open addressing, a hash tag and a slot number a word) and the recency
//! list's links (12 bytes a key). For the default 4,096 keys they take 112 KiB together, where
//! std's map alone took about 410 KiB. A key seen again costs its index place and its entry,
//! and its neighbours' links, close together; with std's map and the links in the entries it
//! cost the map's control bytes, its bucket, the entry and both neighbouring entries. The hash
//! is the tables' (`KeyedState`), keyed per process, so sources chosen by an attacker cannot
//! crowd one run of the index on purpose.

use crate::hash::KeyedState;
use crate::tables::prefetch;
use std::hash::{BuildHasher, Hash};

const NIL: u32 = u32::MAX;

/// A place of the index: the low 32 bits of the key's hash (its home place is the tag under the
/// mask, so removals can move entries back without hashing again) and the key's slot.
#[derive(Clone, Copy)]
struct Place {
    tag: u32,
    slot: u32,
}

const EMPTY: Place = Place { tag: 0, slot: NIL };

/// A slot's neighbours in the recency list, and its key's tag (to find its place on eviction).
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    tag: u32,
}

struct Slot<K, V> {
    key: K,
    val: V,
}

pub(crate) struct Lru<K, V> {
    /// Linear probing, at most half full: runs stay short.
    index: Box<[Place]>,
    mask: usize,
    links: Vec<Link>,
    slots: Vec<Slot<K, V>>,
    hasher: KeyedState,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to go.
    tail: u32,
    cap: usize,
    evictions: u64,
}

/// Where a key is in the index, or the empty place where it would go.
enum Found {
    At(u32),
    Vacant(usize),
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        // Below 2^31 keys, so the index's places fit the 32 bits of a tag.
        let cap = cap.clamp(1, 1 << 30);
        let places = (2 * cap).next_power_of_two();
        Lru {
            index: vec![EMPTY; places].into_boxed_slice(),
            mask: places - 1,
            links: Vec::with_capacity(cap),
            slots: Vec::with_capacity(cap),
            hasher: KeyedState::random(),
            head: NIL,
            tail: NIL,
            cap,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Keys forgotten to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    #[inline]
    fn tag(&self, key: &K) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    #[inline]
    fn find(&self, key: &K, tag: u32) -> Found {
        let mut i = tag as usize & self.mask;
        loop {
            let p = self.index[i];
            if p.slot == NIL {
                return Found::Vacant(i);
            }
            if p.tag == tag && self.slots[p.slot as usize].key == *key {
                return Found::At(p.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Empties place `i` and moves back the entries after it that may sit there, so every run
    /// stays unbroken (no marks of removed keys to clean later).
    fn remove_place(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let p = self.index[j];
            if p.slot == NIL {
                break;
            }
            let home = p.tag as usize & self.mask;
            // The entry may move to the hole when its home is not between the hole and it.
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(i) & self.mask) {
                self.index[i] = p;
                i = j;
            }
        }
        self.index[i] = EMPTY;
    }

    /// The place of the key in `slot`, found by its tag.
    fn place_of(&self, slot: u32) -> usize {
        let mut i = self.links[slot as usize].tag as usize & self.mask;
        while self.index[i].slot != slot {
            i = (i + 1) & self.mask;
        }
        i
    }

    fn detach(&mut self, i: u32) {
        let Link { prev, next, .. } = self.links[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        let l = &mut self.links[i as usize];
        l.prev = NIL;
        l.next = old;
        if old == NIL {
            self.tail = i;
        } else {
            self.links[old as usize].prev = i;
        }
        self.head = i;
    }

    /// Entries from the least to the most recently used: re-inserting them in this order into
    /// an empty map rebuilds the same recency.
    pub fn oldest_first(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let mut i = self.tail;
        std::iter::from_fn(move || {
            if i == NIL {
                return None;
            }
            let s = &self.slots[i as usize];
            i = self.links[i as usize].prev;
            Some((&s.key, &s.val))
        })
    }

    /// The value of `key`, made most recent. A new key gets `make()`, or, when the map is full,
    /// the least recent key's value after `reset` (so its allocations are reused). The flag is
    /// true when the key is new.
    pub fn touch(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
        reset: impl FnOnce(&mut V),
    ) -> (&mut V, bool) {
        let tag = self.tag(&key);
        let mut vacant = match self.find(&key, tag) {
            Found::At(i) => {
                if self.head != i {
                    self.detach(i);
                    self.push_front(i);
                }
                return (&mut self.slots[i as usize].val, false);
            }
            Found::Vacant(at) => at,
        };
        let i = if self.slots.len() < self.cap {
            let i = self.slots.len() as u32;
            self.slots.push(Slot { key, val: make() });
            self.links.push(Link {
                prev: NIL,
                next: NIL,
                tag,
            });
            i
        } else {
            let i = self.tail;
            self.detach(i);
            self.remove_place(self.place_of(i));
            // Moving entries back may have filled the place found, or emptied one before it in
            // the key's run: the key is absent, so its place is the first empty one from home.
            vacant = tag as usize & self.mask;
            while self.index[vacant].slot != NIL {
                vacant = (vacant + 1) & self.mask;
            }
            let s = &mut self.slots[i as usize];
            s.key = key;
            reset(&mut s.val);
            self.links[i as usize].tag = tag;
            self.evictions += 1;
            i
        };
        self.index[vacant] = Place { tag, slot: i };
        self.push_front(i);
        if self.slots.len() == self.cap {
            // The next new key takes the least recent entry, long out of the cache: ask for
            // it now, while this key's work goes on.
            prefetch::read(&self.slots[self.tail as usize]);
        }
        (&mut self.slots[i as usize].val, true)
    }

    /// The value of `key` without changing its recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        match self.find(key, self.tag(key)) {
            Found::At(i) => Some(&self.slots[i as usize].val),
            Found::Vacant(_) => None,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent_and_reuses_values() {
        let mut l: Lru<u32, Vec<u32>> = Lru::new(3);
        for k in 0..3 {
            let (v, new) = l.touch(k, Vec::new, |v| v.clear());
            assert!(new);
            v.push(k);
        }
        // Touch 0: 1 is now the least recent.
        assert!(!l.touch(0, Vec::new, |v| v.clear()).1);
        let (v, new) = l.touch(9, Vec::new, |v| v.clear());
        assert!(new);
        assert!(v.is_empty(), "reset ran on the reused value");
        assert!(l.peek(&1).is_none());
        assert!(l.peek(&0).is_some() && l.peek(&2).is_some() && l.peek(&9).is_some());
        assert_eq!((l.len(), l.capacity(), l.evictions()), (3, 3, 1));
        for k in 100..1000 {
            l.touch(k, Vec::new, |v| v.clear());
        }
        assert_eq!(l.len(), 3);
        assert!(l.peek(&999).is_some() && l.peek(&997).is_some());
    }

    /// Places of the index in use.
    fn used<K, V>(l: &Lru<K, V>) -> usize {
        l.index.iter().filter(|p| p.slot != NIL).count()
    }

    #[test]
    fn a_full_map_finds_only_its_keys() {
        let mut l: Lru<u32, u32> = Lru::new(100);
        for k in 0..10_000u32 {
            *l.touch(k * 7919, || 0, |v| *v = 0).0 = k;
            assert_eq!(used(&l), l.len());
        }
        for k in 0..10_000u32 {
            let kept = l.peek(&(k * 7919)).copied();
            assert_eq!(kept, (k >= 9_900).then_some(k), "key {k}");
        }
        let recency: Vec<u32> = l.oldest_first().map(|(_, v)| *v).collect();
        assert_eq!(recency, (9_900..10_000).collect::<Vec<_>>());
    }

    /// Random touches and peeks of few keys, so that the index's runs meet, wrap around its end
    /// and are cut by evictions, against a list kept in recency order.
    #[test]
    fn agrees_with_a_plain_list() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for cap in [1, 2, 3, 5, 8, 13, 64] {
            let mut l: Lru<u16, u64> = Lru::new(cap);
            // Oldest first, as `oldest_first` lists them.
            let mut model: Vec<(u16, u64)> = Vec::new();
            let mut evicted = 0;
            for step in 0..20_000u64 {
                let key = (next() % (3 * cap as u64 + 2)) as u16;
                if next() % 4 == 0 {
                    let want = model.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                    assert_eq!(l.peek(&key), want, "cap {cap} step {step}: peek {key}");
                    continue;
                }
                let (v, new) = l.touch(key, || 0, |v| *v = 0);
                *v += step;
                match model.iter().position(|(k, _)| *k == key) {
                    Some(i) => {
                        assert!(!new, "cap {cap} step {step}: {key} was kept");
                        let (k, old) = model.remove(i);
                        model.push((k, old + step));
                    }
                    None => {
                        assert!(new, "cap {cap} step {step}: {key} was not kept");
                        if model.len() == cap {
                            model.remove(0);
                            evicted += 1;
                        }
                        model.push((key, step));
                    }
                }
                assert_eq!(used(&l), model.len());
                let listed: Vec<(u16, u64)> = l.oldest_first().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(listed, model, "cap {cap} step {step}");
            }
            assert_eq!(l.evictions(), evicted);
        }
    }

    #[test]
    fn capacity_one() {
        let mut l: Lru<u8, u8> = Lru::new(0);
        *l.touch(1, || 0, |v| *v = 0).0 = 5;
        assert_eq!(l.peek(&1), Some(&5));
        l.touch(2, || 0, |v| *v = 0);
        assert_eq!(l.peek(&1), None);
        assert_eq!(l.peek(&2), Some(&0));
    }
}
