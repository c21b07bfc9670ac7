//! A map of fixed capacity that forgets its least recently used key when full: the bounded
//! per-source state of the flow sensors and the fingerprints. The index is std's `HashMap` with
//! the tables' hash (`KeyedState`), keyed per process, so sources chosen by an attacker cannot
//! collide on purpose.

use crate::hash::KeyedState;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;

const NIL: u32 = u32::MAX;

struct Slot<K, V> {
    key: K,
    val: V,
    prev: u32,
    next: u32,
}

pub(crate) struct Lru<K, V> {
    map: HashMap<K, u32, KeyedState>,
    slots: Vec<Slot<K, V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to go.
    tail: u32,
    cap: usize,
    evictions: u64,
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, NIL as usize - 1);
        Lru {
            // std's map marks a removed key's place rather than freeing it, and once the marks
            // use up its room it cleans them in place only while at most half full: room for
            // twice the keys (and the one `touch` adds before it removes) means it never grows.
            map: HashMap::with_capacity_and_hasher(2 * cap + 2, KeyedState::random()),
            slots: Vec::with_capacity(cap),
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

    fn detach(&mut self, i: u32) {
        let (p, n) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if p == NIL {
            self.head = n;
        } else {
            self.slots[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.slots[n as usize].prev = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.tail = i;
        } else {
            self.slots[old as usize].prev = i;
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
            i = s.prev;
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
        // One probe finds the key or the place for it; a new key then takes the next free
        // slot or the least recent one's, whose key is forgotten (the map has room for one
        // more, so the new key goes in before the old one goes out).
        let len = self.slots.len() as u32;
        let (i, evict) = match self.map.entry(key) {
            Entry::Occupied(e) => {
                let i = *e.get();
                if self.head != i {
                    self.detach(i);
                    self.push_front(i);
                }
                return (&mut self.slots[i as usize].val, false);
            }
            Entry::Vacant(e) if (len as usize) < self.cap => (*e.insert(len), false),
            Entry::Vacant(e) => (*e.insert(self.tail), true),
        };
        if evict {
            self.detach(i);
            let s = &mut self.slots[i as usize];
            self.map.remove(&s.key);
            s.key = key;
            reset(&mut s.val);
            self.evictions += 1;
        } else {
            self.slots.push(Slot {
                key,
                val: make(),
                prev: NIL,
                next: NIL,
            });
        }
        self.push_front(i);
        (&mut self.slots[i as usize].val, true)
    }

    /// The value of `key` without changing its recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|&i| &self.slots[i as usize].val)
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

    #[test]
    fn a_full_map_never_grows_and_finds_only_its_keys() {
        let mut l: Lru<u32, u32> = Lru::new(100);
        let room = l.map.capacity();
        for k in 0..10_000u32 {
            *l.touch(k * 7919, || 0, |v| *v = 0).0 = k;
            assert_eq!(l.map.len(), l.len());
        }
        // Its room is the most it holds without growing; marks of removed keys take from it.
        assert!(l.map.capacity() <= room, "the index grew");
        for k in 0..10_000u32 {
            let kept = l.peek(&(k * 7919)).copied();
            assert_eq!(kept, (k >= 9_900).then_some(k), "key {k}");
        }
        let recency: Vec<u32> = l.oldest_first().map(|(_, v)| *v).collect();
        assert_eq!(recency, (9_900..10_000).collect::<Vec<_>>());
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
