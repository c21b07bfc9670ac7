//! Flows built from live packets, as a NetFlow exporter builds them, for the flow sensors.
//!
//! A flow is unidirectional: the packets of one (source, destination, ports, protocol) with
//! their count, IP bytes, the OR of their TCP flags, and first/last seen. A flow is exported
//! (handed to the caller) when it has been idle `idle` seconds, when it has run `active`
//! seconds, or when its bucket is full and it is the least recently seen there (NetFlow's
//! emergency expiry). The table is allocated once: `capacity` slots in buckets of `WAYS`,
//! found by a hash keyed per process, so a flood of spoofed sources costs evictions, never
//! memory, and crafted addresses cannot pile into one bucket.
//!
//! Expiry is in time order, not table order, so that the same packets give the same flows, in
//! the same order and at the same second, whatever the hash key: a replay's events repeat
//! (while no bucket overflows: which flows share a bucket does follow the key).
//! A timer wheel of one list a second holds every slot in use. A slot is queued when a flow
//! first takes it, for the second its flow would expire if it saw no more packets; later
//! packets leave it where it is, so a flow's packet costs nothing here. When its second comes,
//! the slot's flow is exported if it is due, or queued again for the second it now would be.
//! A slot is never queued for a second later than its flow's due one: a slot freed and taken
//! again keeps its place, which is no later than the new flow's. So a flow goes out at the
//! first second of the clock at or after `min(last + idle, first + active)`.
//! A flow seen again after running `active` seconds is exported at that packet.
//! The sensor hands the builder only packets a flow sensor could count
//! (`FlowSensors::may_count`): no ICMP, and no UDP datagram too long to be a probe.

use crate::addr::Addr;
use crate::decode::Packet;
use crate::hash::KeyedHash;
use crate::proto;
use crate::tables::Room;

/// Slots per bucket.
const WAYS: usize = 8;

/// The timer wheel's most seconds (lists). A wheel spans the idle timeout when it can; a flow
/// due further ahead than it spans is queued for its last second and looked at again then.
const WHEEL_MAX: usize = 1024;

/// A slot's `link` when it is in no list, and at the end of its list.
const OFF: u32 = u32::MAX;
const END: u32 = u32::MAX - 1;

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

/// A flow as the table holds it: `Flow` without its times, which its bucket's `Meta` holds.
#[derive(Clone, Copy)]
struct Slot {
    src: Addr,
    dst: Addr,
    sport: u16,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    outbound: bool,
    /// The next slot in its timer list, `END`, or `OFF` when it is in none (in the padding).
    link: u32,
    packets: u64,
    bytes: u64,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            src: Addr::default(),
            dst: Addr::default(),
            sport: 0,
            dport: 0,
            proto: 0,
            tcp_flags: 0,
            outbound: false,
            link: OFF,
            packets: 0,
            bytes: 0,
        }
    }
}

/// What a lookup, an eviction and the sweep read of a bucket, in one cache line: per way, its
/// flow's tag, how long it has run, and when it was last seen. A full table is larger than the
/// cache, and each line a frame touches is a miss; the slot itself is read only on a match.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Meta {
    /// Bits of the key's hash, never 0; 0 marks a free way.
    tag: [u16; WAYS],
    /// Seconds from the flow's first packet to its last (at most `MAX_ACTIVE`).
    run: [u16; WAYS],
    /// The second of its last packet, modulo 2^32, read against the builder's clock: every flow
    /// held was last seen at most `idle` seconds before it (and a replayed file that steps
    /// back, by its step more), far inside 2^31.
    last: [u32; WAYS],
}

/// The longest active timeout the builder keeps (`Meta::run` is 16 bits): 18 hours.
pub const MAX_ACTIVE: u64 = u16::MAX as u64;

/// A packet's bucket and tag (see `FlowBuilder::locate`), or `NONE`.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    b: u32,
    /// Never 0 for a place found.
    tag: u16,
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
    /// `WAYS` slots per bucket; a slot is in use when its way's tag is not 0.
    slots: Room<Slot>,
    meta: Room<Meta>,
    mask: usize,
    hash: KeyedHash,
    idle: i64,
    active: i64,
    /// The latest second seen: the clock the times in `Meta` are read against.
    clock: i64,
    /// The timer wheel: per second modulo its length, the first slot queued for it, or `END`.
    /// Every slot in use is in one list; a freed slot stays in its list until it is reached.
    wheel: Box<[u32]>,
    /// Slots in the wheel's lists.
    queued: usize,
    pub stats: FlowBuilderStats,
}

impl FlowBuilder {
    /// `capacity` is rounded up to a power of two buckets of `WAYS` slots; `active` is at most
    /// `MAX_ACTIVE`.
    pub fn new(capacity: usize, idle: u64, active: u64) -> FlowBuilder {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FlowBuilder {
            slots: Room::filled(buckets * WAYS, Slot::default()),
            meta: Room::filled(buckets, Meta::default()),
            mask: buckets - 1,
            hash: KeyedHash::random(),
            idle: idle.max(1) as i64,
            active: active.clamp(1, MAX_ACTIVE) as i64,
            clock: i64::MIN,
            wheel: vec![
                END;
                (idle.max(1) as usize + 1)
                    .next_power_of_two()
                    .min(WHEEL_MAX)
            ]
            .into_boxed_slice(),
            queued: 0,
            stats: FlowBuilderStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The (first, last) seconds of way `w` of bucket `b`, read against `clock`.
    #[inline]
    fn times(&self, b: usize, w: usize, clock: i64) -> (i64, i64) {
        let m = &self.meta[b];
        let last = clock - (clock as u32).wrapping_sub(m.last[w]) as i32 as i64;
        (last - m.run[w] as i64, last)
    }

    /// The flow in way `w` of bucket `b`, whole.
    #[inline]
    fn flow(&self, b: usize, w: usize, clock: i64) -> Flow {
        let s = &self.slots[b * WAYS + w];
        let (first, last) = self.times(b, w, clock);
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
    fn bucket(&self, p: &Packet) -> (usize, u16) {
        let (s, d) = (p.src.bytes(), p.dst.bytes());
        let w = |b: &[u8; 16], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
        let h = self.hash.hash(&[
            w(s, 0),
            w(s, 8),
            w(d, 0),
            w(d, 8),
            (p.sport as u64) << 24 | (p.dport as u64) << 8 | p.proto as u64,
        ]);
        (h as usize & self.mask, (h >> 48) as u16 | 1)
    }

    /// Where `p`'s flow lives, asked of memory ahead of `packet`: its bucket's line.
    #[inline]
    pub fn locate(&self, p: &Packet) -> Place {
        let (b, tag) = self.bucket(p);
        crate::tables::prefetch(&self.meta[b]);
        Place { b: b as u32, tag }
    }

    /// The second step of `locate`, once the bucket's line has arrived: the slot the packet
    /// will touch (its flow's, a free one, or the oldest, which goes out).
    #[inline]
    pub fn prefetch_slot(&self, at: Place) {
        let b = at.b as usize;
        let m = &self.meta[b];
        let w = m
            .tag
            .iter()
            .position(|&t| t == at.tag)
            .or_else(|| m.tag.iter().position(|&t| t == 0))
            .unwrap_or_else(|| self.oldest(b));
        crate::tables::prefetch(&self.slots[b * WAYS + w]);
    }

    /// The way of bucket `b` whose flow was seen least recently.
    #[inline]
    fn oldest(&self, b: usize) -> usize {
        let m = &self.meta[b];
        let now = self.clock as u32;
        let age = |w: usize| now.wrapping_sub(m.last[w]) as i32;
        let mut o = 0;
        for w in 1..WAYS {
            if age(w) > age(o) {
                o = w;
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
        let clock = self.clock;
        let mut free = None;
        for w in 0..WAYS {
            let t = self.meta[b].tag[w];
            if t == 0 {
                free.get_or_insert(w);
                continue;
            }
            if t != tag {
                continue;
            }
            let f = &self.slots[b * WAYS + w];
            if f.src == p.src
                && f.dst == p.dst
                && f.sport == sport
                && f.dport == dport
                && f.proto == p.proto
            {
                let (first, last) = self.times(b, w, clock);
                if now - first >= self.active {
                    // Running too long: out it goes, and this packet starts the next record.
                    let gone = self.flow(b, w, clock);
                    self.stats.flows += 1;
                    export(&gone, now);
                    let f = &mut self.slots[b * WAYS + w];
                    f.packets = 1;
                    f.bytes = p.ip_len as u64;
                    f.tcp_flags = flags;
                    let m = &mut self.meta[b];
                    m.run[w] = 0;
                    m.last[w] = now as u32;
                    return;
                }
                let f = &mut self.slots[b * WAYS + w];
                f.packets += 1;
                f.bytes += p.ip_len as u64;
                f.tcp_flags |= flags;
                // A packet older than the flow's last (replayed files may step back) leaves
                // its times as they are.
                if now > last {
                    let m = &mut self.meta[b];
                    m.run[w] = (now - first) as u16;
                    m.last[w] = now as u32;
                }
                return;
            }
        }
        let w = match free {
            Some(w) => w,
            None => {
                // Full: the least recently seen of the bucket goes out now.
                let o = self.oldest(b);
                let gone = self.flow(b, o, clock);
                self.meta[b].tag[o] = 0;
                self.stats.evicted += 1;
                self.stats.active -= 1;
                export(&gone, now);
                o
            }
        };
        self.stats.flows += 1;
        self.stats.active += 1;
        let m = &mut self.meta[b];
        m.tag[w] = tag;
        m.run[w] = 0;
        m.last[w] = now as u32;
        let i = b * WAYS + w;
        // A slot freed and taken again is in a list already, for a second no later than this
        // flow's.
        let link = self.slots[i].link;
        self.slots[i] = Slot {
            src: p.src,
            dst: p.dst,
            sport,
            dport,
            proto: p.proto,
            tcp_flags: flags,
            outbound,
            link,
            packets: 1,
            bytes: p.ip_len as u64,
        };
        if link == OFF {
            self.queue(i, now + self.idle.min(self.active));
        }
    }

    /// Puts slot `i` in the wheel's list for second `due`, or for the nearest second after the
    /// clock that the wheel spans.
    #[inline]
    fn queue(&mut self, i: usize, due: i64) {
        let span = self.wheel.len() as i64;
        let at = due.clamp(
            self.clock.saturating_add(1),
            self.clock.saturating_add(span - 1),
        );
        let p = at as usize & (self.wheel.len() - 1);
        self.slots[i].link = self.wheel[p];
        self.wheel[p] = i as u32;
        self.queued += 1;
    }

    /// Exports the flows that are due by `now`: idle `idle` seconds, or running `active`. The
    /// wheel's lists of the seconds since the last call are walked in time order (each list
    /// once after a step of the clock by the wheel's span or more).
    pub fn sweep(&mut self, now: i64, export: &mut impl FnMut(&Flow, i64)) {
        if now <= self.clock {
            return;
        }
        // The times held were taken against the clock before this second.
        let clock = self.clock;
        self.clock = now;
        if self.queued == 0 {
            return;
        }
        let span = self.wheel.len() as i64;
        let from = clock.saturating_add(1).max(now.saturating_sub(span - 1));
        for second in from..=now {
            let p = second as usize & (self.wheel.len() - 1);
            let mut i = std::mem::replace(&mut self.wheel[p], END);
            while i != END {
                let slot = i as usize;
                let next = self.slots[slot].link;
                self.slots[slot].link = OFF;
                self.queued -= 1;
                let (b, w) = (slot / WAYS, slot % WAYS);
                // A slot freed since it was queued leaves the wheel.
                if self.meta[b].tag[w] != 0 {
                    let (first, last) = self.times(b, w, clock);
                    let due = (last + self.idle).min(first + self.active);
                    if due <= now {
                        export(&self.flow(b, w, clock), now);
                        self.meta[b].tag[w] = 0;
                        self.stats.active -= 1;
                    } else {
                        // Seen since it was queued.
                        self.queue(slot, due);
                    }
                }
                i = next;
            }
        }
    }

    /// Exports every flow (the sensor stops), the soonest due first.
    pub fn drain(&mut self, now: i64, export: &mut impl FnMut(&Flow, i64)) {
        let clock = self.clock;
        let n = self.wheel.len();
        for k in 1..=n {
            let p = clock.wrapping_add(k as i64) as usize & (n - 1);
            let mut i = std::mem::replace(&mut self.wheel[p], END);
            while i != END {
                let slot = i as usize;
                let next = self.slots[slot].link;
                self.slots[slot].link = OFF;
                let (b, w) = (slot / WAYS, slot % WAYS);
                if self.meta[b].tag[w] != 0 {
                    export(&self.flow(b, w, clock), now);
                    self.meta[b].tag[w] = 0;
                }
                i = next;
            }
        }
        self.queued = 0;
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
    fn a_slot_and_a_bucket_line_are_64_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::size_of::<Meta>(), 64);
        assert_eq!(std::mem::align_of::<Meta>(), 64);
    }

    #[test]
    fn times_cross_the_32_bit_second_and_big_steps_of_the_clock() {
        let mut b = FlowBuilder::new(64, 15, 60);
        let mut out = Vec::new();
        let mut p = test_packet();
        let t0 = (1i64 << 32) - 3;
        for t in t0..t0 + 10 {
            collect(&mut b, &p, t, &mut out);
        }
        // An older packet (a replayed file stepping back) leaves the times as they are.
        collect(&mut b, &p, t0 + 2, &mut out);
        p.dport = 81;
        collect(&mut b, &p, t0 + 9, &mut out);
        assert!(out.is_empty());
        // A jump of the clock far past 2^31 seconds: both go out, with their own times.
        b.sweep(t0 + (5 << 32), &mut |f, _| out.push(*f));
        out.sort_by_key(|f| f.dport);
        let times: Vec<_> = out.iter().map(|f| (f.first, f.last, f.packets)).collect();
        assert_eq!(times, [(t0, t0 + 9, 11), (t0 + 9, t0 + 9, 1)]);
        assert_eq!(b.stats.active, 0);
        // And the next flows are read against the new clock.
        out.clear();
        let t1 = t0 + (5 << 32) + 1;
        collect(&mut b, &p, t1, &mut out);
        collect(&mut b, &p, t1 + 7, &mut out);
        b.drain(t1 + 8, &mut |f, _| out.push(*f));
        assert_eq!((out[0].first, out[0].last, out[0].packets), (t1, t1 + 7, 2));
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
        // Out in the second it has been idle 15 s, not before.
        b.sweep(115, &mut |f, _| out.push(*f));
        assert!(out.is_empty());
        b.sweep(116, &mut |f, _| out.push(*f));
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

    /// Packets of `flows` flows over `seconds` seconds, a few a second, from a generator
    /// seeded with `seed`: (second, source, port).
    fn traffic(seed: u64, flows: u32, seconds: i64) -> Vec<(i64, Addr, u16)> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::new();
        for t in 0..seconds {
            for _ in 0..next() % 12 {
                // A third of them from five busy flows, which run into the active timeout.
                let id = (next() % if next() % 3 == 0 { 5 } else { flows as u64 }) as u32;
                out.push((
                    t,
                    Addr::v4([10, 0, (id >> 8) as u8, id as u8]),
                    80 + (id % 3) as u16,
                ));
            }
        }
        out
    }

    #[test]
    fn flows_go_out_at_their_due_second_in_the_same_order_whatever_the_hash_key() {
        // Two builders keyed apart hold the same flows in other buckets: they must export the
        // same flows, in the same order, each in the second it fell due. The last case's
        // idle timeout is longer than the wheel spans.
        for (idle, active, flows, seconds, capacity) in [
            (15, 60, 300, 2_000, 4096),
            (10, 40, 300, 2_000, 4096),
            (1_500, 1_800, 20_000, 8_000, 131_072),
        ] {
            let run = |b: &mut FlowBuilder| {
                let mut out: Vec<(Flow, i64)> = Vec::new();
                let mut p = test_packet();
                let mut clock = 5_000;
                for (t, src, port) in traffic(0x2545_f491_4f6c_dd1d, flows, seconds) {
                    // The clock sweeps each second, with packets or without.
                    while clock < 5_000 + t {
                        clock += 1;
                        b.sweep(clock, &mut |f, now| out.push((*f, now)));
                    }
                    (p.src, p.dport) = (src, port);
                    b.packet(&p, false, clock, Place::NONE, &mut |f, now| {
                        out.push((*f, now))
                    });
                }
                let active = b.stats.active;
                let before = out.len();
                b.drain(clock + 1, &mut |f, now| out.push((*f, now)));
                assert_eq!((out.len() - before) as u64, active);
                assert_eq!((b.stats.active, b.queued), (0, 0));
                out
            };
            let mut one = FlowBuilder::new(capacity, idle, active);
            let mut two = FlowBuilder::new(capacity, idle, active);
            assert_ne!(one.hash.hash(&[1]), two.hash.hash(&[1]));
            let (a, b) = (run(&mut one), run(&mut two));
            assert_eq!(one.stats.evicted, 0);
            assert!(a.len() > 3_000, "{}", a.len());
            assert!(a == b, "the hash key changed what went out, or when");
            let end = 5_000 + seconds;
            for (f, now) in a.iter().filter(|(_, now)| *now != end) {
                assert_eq!(
                    *now,
                    (f.last + idle as i64).min(f.first + active as i64),
                    "{f:?}"
                );
            }
            // Some flows ran into the active timeout, most went idle.
            let cut = a
                .iter()
                .filter(|(f, now)| *now == f.first + active as i64)
                .count();
            assert!(cut > 10 && cut < a.len() / 4, "{cut} of {}", a.len());
        }
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

    #[test]
    fn every_packet_is_in_one_flow_whatever_the_clock_does() {
        // A clock that mostly creeps, sometimes steps back (a replayed file), and now and then
        // jumps by years: every packet and byte comes out once, in a flow whose first and last
        // are times its source's packets had, and no flow runs past the active timeout.
        let mut b = FlowBuilder::new(128, 15, 60);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut out, mut p) = (Vec::new(), test_packet());
        let (mut now, mut packets, mut bytes) = ((1i64 << 32) - 5_000, 0u64, 0u64);
        // Each source's packet times.
        let mut seen = std::collections::HashMap::<Addr, std::collections::BTreeSet<i64>>::new();
        for _ in 0..200_000 {
            let r = next();
            now += match r % 1000 {
                0 => 3 << 31,
                1..=20 => -(((r >> 20) % 30) as i64),
                _ => ((r >> 20) % 3) as i64,
            };
            p.src = Addr::v4([10, 0, (r >> 40) as u8 % 4, (r >> 48) as u8 % 64]);
            seen.entry(p.src).or_default().insert(now);
            p.ip_len = 40 + (r >> 56) as u16;
            packets += 1;
            bytes += p.ip_len as u64;
            b.packet(&p, false, now, Place::NONE, &mut |f, _| out.push(*f));
        }
        b.drain(now, &mut |f, _| out.push(*f));
        assert!(b.stats.evicted > 0, "{:?}", b.stats);
        assert_eq!(out.iter().map(|f| f.packets).sum::<u64>(), packets);
        assert_eq!(out.iter().map(|f| f.bytes).sum::<u64>(), bytes);
        for f in &out {
            let times = &seen[&f.src];
            assert!(times.contains(&f.first) && times.contains(&f.last), "{f:?}");
            assert!(f.first <= f.last && f.last - f.first < 60, "{f:?}");
        }
    }
}
