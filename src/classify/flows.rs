//! The bidirectional flow table for UDP and every protocol but TCP and ICMP: who spoke first
//! in each exchange. Fixed capacity; when full, the least recently seen flow is evicted.

use crate::addr::Addr;
use crate::decode::Packet;
use crate::hash::KeyedHash;
use crate::tables::Room;

const EMPTY: u32 = u32::MAX;
const NIL: u32 = u32::MAX;

/// Both endpoints of an exchange, the lower (address, port) first, so either direction of the
/// same exchange finds the same flow.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    proto: u8,
    a: Addr,
    a_port: u16,
    b: Addr,
    b_port: u16,
}

/// 64 bytes: what a full table costs a router is its capacity times this.
#[derive(Clone, Copy)]
struct Flow {
    key: FlowKey,
    /// The low half of the key's hash: enough for the index's home slot (the index has fewer
    /// than 2^32 slots) and to pass over most other keys without comparing them.
    hash: u32,
    /// The first packet came from endpoint `a`.
    initiator_is_a: bool,
    /// The initiator is outside and the responder ours: the initiator's packets are attempts.
    counted: bool,
    /// Latest second seen in either direction.
    last: i64,
    /// Recency list, most recent at `head`.
    prev: u32,
    next: u32,
}

const _: () = assert!(std::mem::size_of::<Flow>() == 64);

/// A flow as the snapshot keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    pub proto: u8,
    pub a: Addr,
    pub a_port: u16,
    pub b: Addr,
    pub b_port: u16,
    pub initiator_is_a: bool,
    pub counted: bool,
    pub last: i64,
}

/// The live flows of a table, serialised as a sequence of `FlowState` (see `FlowTable::view`).
pub struct FlowsView<'a> {
    table: &'a FlowTable,
    now: i64,
    timeout: i64,
}

impl serde::Serialize for FlowsView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length first: the format writes it before the elements.
        let n = self.table.live(self.now, self.timeout).count();
        let mut seq = s.serialize_seq(Some(n))?;
        for f in self.table.live(self.now, self.timeout) {
            seq.serialize_element(&f)?;
        }
        seq.end()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub active: usize,
    pub capacity: usize,
    /// Flows pushed out while still live because the table was full.
    pub evictions: u64,
}

pub struct FlowTable {
    flows: Room<Flow>,
    /// Open addressing over `flows`, removal by backward shift (no tombstones).
    index: Room<u32>,
    mask: usize,
    capacity: usize,
    head: u32,
    tail: u32,
    evictions: u64,
    hasher: KeyedHash,
}

impl FlowTable {
    pub fn new(capacity: usize) -> FlowTable {
        let capacity = capacity.clamp(1, u32::MAX as usize / 4);
        let slots = (capacity * 2).next_power_of_two();
        let flows = Room::with_capacity(capacity);
        let index = Room::filled(slots, EMPTY);
        FlowTable {
            flows,
            index,
            mask: slots - 1,
            capacity,
            head: NIL,
            tail: NIL,
            evictions: 0,
            hasher: KeyedHash::random(),
        }
    }

    /// Takes the table's whole memory now (see `Room::commit`).
    pub fn commit(&mut self) -> bool {
        self.flows.commit() & self.index.commit()
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            active: self.flows.len(),
            capacity: self.capacity,
            evictions: self.evictions,
        }
    }

    #[inline]
    fn hash(&self, k: &FlowKey) -> u64 {
        let w = |a: &Addr, i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&a.bytes()[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        let head = (k.proto as u64) << 40
            | (k.a.is_v6() as u64) << 33
            | (k.b.is_v6() as u64) << 32
            | (k.a_port as u64) << 16
            | k.b_port as u64;
        self.hasher
            .hash(&[head, w(&k.a, 0), w(&k.a, 1), w(&k.b, 0), w(&k.b, 1)])
    }

    /// The hash of `p`'s flow, with a request to bring its index slot into the cache.
    #[inline]
    pub fn prefetch(&self, p: &Packet) -> u64 {
        let h = self.hash(&Self::key(p).1);
        crate::tables::prefetch(&self.index[h as usize & self.mask]);
        h
    }

    /// The second step of `prefetch`, once the index slot has had time to arrive: requests
    /// the flow record it points at.
    #[inline]
    pub fn prefetch_flow(&self, h: u64) {
        let slot = self.index[h as usize & self.mask];
        if slot != EMPTY {
            crate::tables::prefetch(&self.flows[slot as usize]);
        }
    }

    /// The flow key of `p`, and whether `p` goes from endpoint `a` to `b`.
    #[inline]
    fn key(p: &Packet) -> (bool, FlowKey) {
        let from_a = (p.src, p.sport) <= (p.dst, p.dport);
        let key = if from_a {
            FlowKey {
                proto: p.proto,
                a: p.src,
                a_port: p.sport,
                b: p.dst,
                b_port: p.dport,
            }
        } else {
            FlowKey {
                proto: p.proto,
                a: p.dst,
                a_port: p.dport,
                b: p.src,
                b_port: p.sport,
            }
        };
        (from_a, key)
    }

    /// Records packet `p` at second `now`; true when it is an attempt: it comes from the
    /// initiator of a flow that an outside host began towards one of ours. `inbound` tells
    /// whether this packet goes from outside to ours, which decides a new flow. `hash` is
    /// `prefetch`'s answer for `p` when the caller asked ahead.
    #[inline]
    pub fn observe(
        &mut self,
        p: &Packet,
        now: i64,
        timeout: i64,
        inbound: bool,
        hash: Option<u64>,
    ) -> bool {
        let (from_a, key) = Self::key(p);
        let h = hash.unwrap_or_else(|| self.hash(&key));
        let mut i = h as usize & self.mask;
        loop {
            let slot = self.index[i];
            if slot == EMPTY {
                break;
            }
            let f = &mut self.flows[slot as usize];
            if f.hash == h as u32 && f.key == key {
                if now.saturating_sub(f.last) > timeout {
                    // Idle too long: this packet begins a new exchange.
                    f.initiator_is_a = from_a;
                    f.counted = inbound;
                    f.last = now;
                } else {
                    f.last = f.last.max(now);
                }
                let attempt = f.counted && f.initiator_is_a == from_a;
                self.touch(slot);
                return attempt;
            }
            i = (i + 1) & self.mask;
        }
        let flow = Flow {
            key,
            hash: h as u32,
            initiator_is_a: from_a,
            counted: inbound,
            last: now,
            prev: NIL,
            next: NIL,
        };
        self.insert(flow, now, timeout);
        inbound
    }

    /// Adds a flow known to be absent, evicting the least recently seen one when full.
    fn insert(&mut self, flow: Flow, now: i64, timeout: i64) {
        let h = flow.hash;
        let slot = if self.flows.len() < self.capacity {
            self.flows.push(flow);
            (self.flows.len() - 1) as u32
        } else {
            let victim = self.tail;
            if now.saturating_sub(self.flows[victim as usize].last) <= timeout {
                self.evictions += 1;
            }
            self.unindex(victim);
            self.unlink(victim);
            self.flows[victim as usize] = flow;
            victim
        };
        // The probe may have to be redone: unindexing shifted entries.
        let mut i = h as usize & self.mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = slot;
        self.push_front(slot);
    }

    /// The flows still live at `now`, least recently seen first (the order `import` keeps).
    pub fn export(&self, now: i64, timeout: i64) -> Vec<FlowState> {
        self.live(now, timeout).collect()
    }

    /// As `export`, one at a time.
    fn live(&self, now: i64, timeout: i64) -> impl Iterator<Item = FlowState> + '_ {
        let mut s = self.tail;
        std::iter::from_fn(move || {
            while s != NIL {
                let f = &self.flows[s as usize];
                s = f.prev;
                if now.saturating_sub(f.last) <= timeout {
                    return Some(FlowState {
                        proto: f.key.proto,
                        a: f.key.a,
                        a_port: f.key.a_port,
                        b: f.key.b,
                        b_port: f.key.b_port,
                        initiator_is_a: f.initiator_is_a,
                        counted: f.counted,
                        last: f.last,
                    });
                }
            }
            None
        })
    }

    /// What `export` returns, serialised as that `Vec` would be but never held: a full table
    /// exported is a copy of it (about 1.8 MiB for 32 768 flows) at every snapshot.
    pub fn view(&self, now: i64, timeout: i64) -> FlowsView<'_> {
        FlowsView {
            table: self,
            now,
            timeout,
        }
    }

    /// Loads flows from a snapshot into an empty table; beyond capacity the oldest give way.
    pub fn import(&mut self, flows: &[FlowState]) {
        for st in flows {
            let key = FlowKey {
                proto: st.proto,
                a: st.a,
                a_port: st.a_port,
                b: st.b,
                b_port: st.b_port,
            };
            if key.a > key.b || (key.a == key.b && key.a_port > key.b_port) {
                continue; // not in our normal form: not written by us
            }
            if self.find(&key).is_some() {
                continue;
            }
            let h = self.hash(&key);
            let flow = Flow {
                key,
                hash: h as u32,
                initiator_is_a: st.initiator_is_a,
                counted: st.counted,
                last: st.last,
                prev: NIL,
                next: NIL,
            };
            // Flows from a snapshot never count as live evictions.
            self.insert(flow, i64::MAX, 0);
        }
    }

    fn find(&self, key: &FlowKey) -> Option<u32> {
        let h = self.hash(key);
        let mut i = h as usize & self.mask;
        loop {
            let slot = self.index[i];
            if slot == EMPTY {
                return None;
            }
            let f = &self.flows[slot as usize];
            if f.hash == h as u32 && f.key == *key {
                return Some(slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes a flow's index entry, shifting later entries of its probe run back into place.
    fn unindex(&mut self, slot: u32) {
        let mut i = self.flows[slot as usize].hash as usize & self.mask;
        while self.index[i] != slot {
            i = (i + 1) & self.mask;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.index[j];
            if s == EMPTY {
                break;
            }
            let ideal = self.flows[s as usize].hash as usize & self.mask;
            // Move it back when its ideal place is not between the hole and it (cyclically).
            let dist_hole = hole.wrapping_sub(ideal) & self.mask;
            let dist_here = j.wrapping_sub(ideal) & self.mask;
            if dist_hole <= dist_here {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let f = &self.flows[slot as usize];
            (f.prev, f.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.flows[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.flows[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let f = &mut self.flows[slot as usize];
            f.prev = NIL;
            f.next = old;
        }
        if old == NIL {
            self.tail = slot;
        } else {
            self.flows[old as usize].prev = slot;
        }
        self.head = slot;
    }

    #[inline]
    fn touch(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Packet {
        Packet {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            proto: 17,
            sport,
            dport,
            tcp_flags: 0,
            icmp_type: 0,
            ttl: 64,
            tos: 0,
            ip_id: 0,
            tcp_seq: 0,
            tcp_window: 0,
            tcp_opts: Default::default(),
            ip_len: 28,
            outgoing: false,
        }
    }

    const OUT: [u8; 4] = [203, 0, 113, 7];
    const OURS: [u8; 4] = [198, 51, 100, 1];

    #[test]
    fn initiator_decides_and_timeout_restarts() {
        let mut t = FlowTable::new(16);
        let q = udp(OUT, 5000, OURS, 53);
        let r = udp(OURS, 53, OUT, 5000);
        assert!(t.observe(&q, 0, 300, true, None));
        assert!(!t.observe(&r, 1, 300, false, None));
        assert!(t.observe(&q, 301, 300, true, None)); // 300 s idle: same flow
                                                      // We speak first after a long silence: a new flow that is ours.
        assert!(!t.observe(&r, 602, 300, false, None));
        assert!(!t.observe(&q, 603, 300, true, None));
    }

    #[test]
    fn the_view_serialises_as_the_export() {
        let mut t = FlowTable::new(8);
        for i in 0..6u8 {
            t.observe(
                &udp([203, 0, 113, i], 4000, [198, 51, 100, 1], 53),
                i as i64 * 100,
                300,
                true,
                None,
            );
        }
        // At 700 the first four are past the timeout.
        let export = t.export(700, 300);
        assert_eq!(export.len(), 2);
        assert_eq!(
            postcard::to_stdvec(&t.view(700, 300)).unwrap(),
            postcard::to_stdvec(&export).unwrap()
        );
    }

    #[test]
    fn full_table_evicts_least_recent_and_stays_consistent() {
        let mut t = FlowTable::new(8);
        for round in 0..50i64 {
            for n in 0..20u8 {
                let p = udp([203, 0, 113, n], 1000 + n as u16, OURS, 53);
                t.observe(&p, round, 300, true, None);
            }
        }
        assert_eq!(t.stats().active, 8);
        assert!(t.stats().evictions > 0);
        // Every live flow is still findable after all the shifting.
        for s in 0..t.flows.len() as u32 {
            let k = t.flows[s as usize].key;
            let h = t.hash(&k);
            let mut i = h as usize & t.mask;
            while t.index[i] != s {
                assert_ne!(t.index[i], EMPTY, "flow {s} lost from the index");
                i = (i + 1) & t.mask;
            }
        }
        // The most recent flows survive: the last 8 of the final round.
        let p = udp([203, 0, 113, 19], 1019, OURS, 53);
        let before = t.stats().evictions;
        t.observe(&p, 50, 300, true, None);
        assert_eq!(t.stats().evictions, before);
    }
}
