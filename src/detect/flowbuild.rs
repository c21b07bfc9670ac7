//! Flows built from live packets, as a NetFlow exporter builds them, for the flow sensors.
//!
//! A flow is unidirectional: the packets of one (source, destination, ports, protocol) with
//! their count, IP bytes, the OR of their TCP flags, and first/last seen. A flow is exported
//! (handed to the caller) when it has been idle `idle` seconds, when it has run `active`
//! seconds, or when its bucket is full and it is the least recently seen there (NetFlow's
//! emergency expiry). The table is allocated once: `capacity` slots in buckets of `WAYS`,
//! found by a hash keyed per process, so a flood of spoofed sources costs evictions, never
//! memory, and crafted addresses cannot pile into one bucket. Expiry sweeps the table a slice at
//! a time, as the clock (packet time in replay) moves: each second `capacity / idle` slots, so
//! every slot is looked at once per `idle` seconds and a flow is exported between `idle` and
//! `2 × idle` seconds after its last packet, at a cost of a few slots per second per slot.
//! A flow seen again after running `active` seconds is exported at that packet.
//! The sensor hands the builder only packets a flow sensor could count
//! (`FlowSensors::may_count`): no ICMP, and no UDP datagram too long to be a probe.

use crate::addr::Addr;
use crate::decode::Packet;
use crate::hash::KeyedHash;
use crate::proto;

/// Slots per bucket.
const WAYS: usize = 8;

/// One exported flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub tcp_flags: u8,
    /// Its source is ours and its destination is not.
    pub outbound: bool,
    pub packets: u64,
    pub bytes: u64,
    pub first: i64,
    pub last: i64,
}

/// A flow as the table holds it: `Flow` without its times, which `times` holds (64 bytes
/// rather than 80: a quarter of a megabyte at the OpenWrt profile's 16 384 flows).
#[derive(Clone, Copy, Default)]
struct Slot {
    src: Addr,
    dst: Addr,
    sport: u16,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    outbound: bool,
    packets: u64,
    bytes: u64,
}

/// A packet's bucket and tag (see `FlowBuilder::locate`), or `NONE`.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    b: u32,
    /// Never 0 for a place found.
    tag: u32,
}

impl Place {
    pub const NONE: Place = Place { b: 0, tag: 0 };

    #[inline]
    pub fn is_some(self) -> bool {
        self.tag != 0
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowBuilderStats {
    pub packets: u64,
    pub flows: u64,
    /// Flows exported because their bucket was full.
    pub evicted: u64,
    /// Flows held now.
    pub active: u64,
}

pub struct FlowBuilder {
    /// `packets == 0` marks a free slot.
    slots: Vec<Slot>,
    /// Per slot, bits of its key's hash (never 0), or 0 when free: a bucket's tags share one
    /// cache line, so a lookup reads a slot only when its tag matches.
    tags: Vec<u32>,
    /// Per slot, its flow's (first, last): the sweep reads these 16 bytes, not the whole slot.
    times: Vec<(i64, i64)>,
    mask: usize,
    hash: KeyedHash,
    idle: i64,
    active: i64,
    swept: i64,
    /// Next slot the sweep looks at, and how many it looks at per second of the clock.
    cursor: usize,
    per_second: usize,
    pub stats: FlowBuilderStats,
}

impl FlowBuilder {
    /// `capacity` is rounded up to a power of two buckets of `WAYS` slots.
    pub fn new(capacity: usize, idle: u64, active: u64) -> FlowBuilder {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FlowBuilder {
            slots: vec![Slot::default(); buckets * WAYS],
            tags: vec![0; buckets * WAYS],
            times: vec![(0, 0); buckets * WAYS],
            mask: buckets - 1,
            hash: KeyedHash::random(),
            idle: idle.max(1) as i64,
            active: active.max(1) as i64,
            swept: i64::MIN,
            cursor: 0,
            per_second: (buckets * WAYS).div_ceil(idle.max(1) as usize).max(1),
            stats: FlowBuilderStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The flow in slot `i`, whole.
    #[inline]
    fn flow(&self, i: usize) -> Flow {
        let s = &self.slots[i];
        let (first, last) = self.times[i];
        Flow {
            src: s.src,
            dst: s.dst,
            sport: s.sport,
            dport: s.dport,
            proto: s.proto,
            tcp_flags: s.tcp_flags,
            outbound: s.outbound,
            packets: s.packets,
            bytes: s.bytes,
            first,
            last,
        }
    }

    #[inline]
    fn bucket(&self, p: &Packet) -> (usize, u32) {
        let (s, d) = (p.src.bytes(), p.dst.bytes());
        let w = |b: &[u8; 16], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
        let h = self.hash.hash(&[
            w(s, 0),
            w(s, 8),
            w(d, 0),
            w(d, 8),
            (p.sport as u64) << 24 | (p.dport as u64) << 8 | p.proto as u64,
        ]);
        ((h as usize & self.mask) * WAYS, (h >> 32) as u32 | 1)
    }

    /// Where `p`'s flow lives, asked of memory ahead of `packet`: its bucket's tags and times.
    /// A full table is larger than the cache, and these misses were most of a watched frame.
    #[inline]
    pub fn locate(&self, p: &Packet) -> Place {
        let (b, tag) = self.bucket(p);
        crate::tables::prefetch(&self.tags[b]);
        crate::tables::prefetch(&self.times[b]);
        crate::tables::prefetch(&self.times[b + WAYS - 1]);
        Place { b: b as u32, tag }
    }

    /// The second step of `locate`, once the tags have arrived: the slot the packet will
    /// touch (its flow's, a free one, or the oldest, which goes out).
    #[inline]
    pub fn prefetch_slot(&self, at: Place) {
        let b = at.b as usize;
        let tags = &self.tags[b..b + WAYS];
        let i = tags
            .iter()
            .position(|&t| t == at.tag)
            .or_else(|| tags.iter().position(|&t| t == 0))
            .unwrap_or_else(|| self.oldest(b));
        crate::tables::prefetch(&self.slots[b + i]);
    }

    /// The way of bucket `b` whose flow was seen least recently.
    #[inline]
    fn oldest(&self, b: usize) -> usize {
        let mut o = 0;
        for i in 1..WAYS {
            if self.times[b + i].1 < self.times[b + o].1 {
                o = i;
            }
        }
        o
    }

    /// One packet of ours or to us at `now`; flows that end go to `export`. `at` is
    /// `locate`'s answer for `p` when the caller asked ahead, or `Place::NONE`.
    #[inline]
    pub fn packet(
        &mut self,
        p: &Packet,
        outbound: bool,
        now: i64,
        at: Place,
        export: &mut impl FnMut(&Flow, i64),
    ) {
        self.sweep(now, export);
        self.stats.packets += 1;
        let (sport, dport) = if proto::has_ports(p.proto) {
            (p.sport, p.dport)
        } else {
            (0, 0)
        };
        let flags = if p.proto == proto::TCP {
            p.tcp_flags
        } else {
            0
        };
        let (b, tag) = if at.is_some() {
            (at.b as usize, at.tag)
        } else {
            self.bucket(p)
        };
        let tags = &self.tags[b..b + WAYS];
        let mut free = None;
        for (i, &t) in tags.iter().enumerate() {
            if t == 0 {
                free.get_or_insert(i);
                continue;
            }
            if t != tag {
                continue;
            }
            let f = &self.slots[b + i];
            if f.src == p.src
                && f.dst == p.dst
                && f.sport == sport
                && f.dport == dport
                && f.proto == p.proto
            {
                if now - self.times[b + i].0 >= self.active {
                    // Running too long: out it goes, and this packet starts the next record.
                    let gone = self.flow(b + i);
                    self.stats.flows += 1;
                    export(&gone, now);
                    let f = &mut self.slots[b + i];
                    f.packets = 1;
                    f.bytes = p.ip_len as u64;
                    f.tcp_flags = flags;
                    self.times[b + i] = (now, now);
                    return;
                }
                let f = &mut self.slots[b + i];
                f.packets += 1;
                f.bytes += p.ip_len as u64;
                f.tcp_flags |= flags;
                let t = &mut self.times[b + i];
                t.1 = t.1.max(now);
                return;
            }
        }
        let i = match free {
            Some(i) => i,
            None => {
                // Full: the least recently seen of the bucket goes out now.
                let o = self.oldest(b);
                let gone = self.flow(b + o);
                self.slots[b + o].packets = 0;
                self.tags[b + o] = 0;
                self.stats.evicted += 1;
                self.stats.active -= 1;
                export(&gone, now);
                o
            }
        };
        self.stats.flows += 1;
        self.stats.active += 1;
        self.tags[b + i] = tag;
        self.times[b + i] = (now, now);
        self.slots[b + i] = Slot {
            src: p.src,
            dst: p.dst,
            sport,
            dport,
            proto: p.proto,
            tcp_flags: flags,
            outbound,
            packets: 1,
            bytes: p.ip_len as u64,
        };
    }

    /// Exports the flows idle or running too long in the next slice of the table: as many
    /// slots as the seconds since the last sweep call for (all of them at most).
    pub fn sweep(&mut self, now: i64, export: &mut impl FnMut(&Flow, i64)) {
        if now <= self.swept {
            return;
        }
        let elapsed = if self.swept == i64::MIN {
            1
        } else {
            (now - self.swept).min(i64::MAX / 2) as usize
        };
        self.swept = now;
        if self.stats.active == 0 {
            return;
        }
        let len = self.slots.len();
        let n = elapsed.saturating_mul(self.per_second).min(len);
        for _ in 0..n {
            let (first, last) = self.times[self.cursor];
            if self.tags[self.cursor] != 0
                && (now - last >= self.idle || now - first >= self.active)
            {
                export(&self.flow(self.cursor), now);
                self.slots[self.cursor].packets = 0;
                self.tags[self.cursor] = 0;
                self.stats.active -= 1;
            }
            self.cursor += 1;
            if self.cursor == len {
                self.cursor = 0;
            }
        }
    }

    /// Exports every flow (the sensor stops).
    pub fn drain(&mut self, now: i64, export: &mut impl FnMut(&Flow, i64)) {
        for i in 0..self.slots.len() {
            if self.tags[i] != 0 {
                export(&self.flow(i), now);
                self.slots[i].packets = 0;
                self.tags[i] = 0;
            }
        }
        self.stats.active = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::flags;
    use crate::detect::test_packet;

    fn collect(b: &mut FlowBuilder, p: &Packet, now: i64, out: &mut Vec<Flow>) {
        b.packet(p, false, now, Place::NONE, &mut |f, _| out.push(*f));
    }

    #[test]
    fn a_slot_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
    }

    #[test]
    fn builds_and_expires_like_netflow() {
        let mut b = FlowBuilder::new(64, 15, 60);
        let mut out = Vec::new();
        let mut p = test_packet();
        collect(&mut b, &p, 100, &mut out);
        p.tcp_flags = flags::ACK;
        collect(&mut b, &p, 101, &mut out);
        p.dport = 81;
        collect(&mut b, &p, 101, &mut out);
        assert!(out.is_empty());
        assert_eq!(b.stats.active, 2);
        // Idle 15 s after its last packet; out within another 15 s (the sweep's round).
        b.sweep(115, &mut |f, _| out.push(*f));
        assert!(out.is_empty());
        for t in 116..=131 {
            b.sweep(t, &mut |f, _| out.push(*f));
        }
        assert_eq!(out.len(), 2);
        let f = out.iter().find(|f| f.dport == 80).unwrap();
        assert_eq!((f.packets, f.bytes), (2, 80));
        assert_eq!(f.tcp_flags, flags::SYN | flags::ACK);
        assert_eq!((f.first, f.last), (100, 101));
        // Active timeout: a flow that never idles is cut every 60 s.
        out.clear();
        for t in 200..=260 {
            collect(&mut b, &p, t, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].packets, 60);
        let mut rest = Vec::new();
        b.drain(300, &mut |f, _| rest.push(*f));
        assert_eq!(rest.len(), 1);
        assert_eq!(b.stats.active, 0);
    }

    #[test]
    fn spoofed_flood_stays_in_its_table() {
        let mut b = FlowBuilder::new(1024, 15, 60);
        let mut n = 0u64;
        let mut p = test_packet();
        for i in 0..100_000u32 {
            let x = i.to_be_bytes();
            p.src = Addr::v4([10, x[1], x[2], x[3]]);
            b.packet(&p, false, 1000, Place::NONE, &mut |_, _| n += 1);
        }
        assert_eq!(b.capacity(), 1024);
        assert_eq!(b.stats.active as usize + n as usize, 100_000);
        assert!(b.stats.active <= 1024);
        assert_eq!(b.stats.evicted, n);
    }

    #[test]
    fn a_place_found_ahead_builds_the_same_flows() {
        // The sensor locates a frame's flow several frames before it counts it; the frames
        // between may fill or empty its bucket meanwhile.
        let mut ahead = FlowBuilder::new(256, 15, 60);
        let mut plain = FlowBuilder::new(256, 15, 60);
        plain.hash = ahead.hash;
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut waiting = std::collections::VecDeque::new();
        let mut p = test_packet();
        for i in 0..20_000u32 {
            // 290 flows in 256 slots: hits, inserts and evictions.
            let id = i * 7919 % 290;
            p.src = Addr::v4([10, 0, 0, (id / 7) as u8]);
            p.dport = 80 + (id % 7) as u16;
            let now = 1000 + i as i64 / 500;
            let at = ahead.locate(&p);
            waiting.push_back((p, now, at));
            if let Some(&(_, _, mid)) = waiting.get(waiting.len() / 2) {
                ahead.prefetch_slot(mid);
            }
            if waiting.len() == 8 {
                let (q, t, at) = waiting.pop_front().unwrap();
                ahead.packet(&q, false, t, at, &mut |f, _| got.push(*f));
                plain.packet(&q, false, t, Place::NONE, &mut |f, _| want.push(*f));
            }
        }
        ahead.drain(i64::MAX / 4, &mut |f, _| got.push(*f));
        plain.drain(i64::MAX / 4, &mut |f, _| want.push(*f));
        assert!(ahead.stats.evicted > 0);
        assert!(ahead.stats.flows < 19_000, "{:?}", ahead.stats);
        assert_eq!(ahead.stats, plain.stats);
        let key = |f: &Flow| (f.src, f.dport, f.first, f.last, f.packets);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
    }
}
