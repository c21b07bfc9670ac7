//! Flow records into attempts: the counting rules of [`super::Classifier`], restated for
//! NetFlow/IPFIX records, which summarise many packets of one direction.
//!
//! - **TCP**, from a non-local source to a local destination, when the flags seen include SYN:
//!   with ACK clear every packet is a probe or a retransmitted SYN and counts (less one when
//!   RST is set too: the scanner's reset after our SYN-ACK); with ACK set the connection went
//!   on, and it counts once, at the flow's start — unless it is the answer to a connection
//!   our side opened (its SYN-ACK and ACKs carry SYN and ACK too): that is told as for UDP
//!   below, from our side's SYN record.
//! - **ICMP/ICMPv6** queries (the packet rules' types) from outside to ours: every packet.
//! - **UDP and every other protocol**: a record from outside to ours counts its packets unless
//!   the exchange was begun by our side: a reverse record (ours to theirs, same ports) that
//!   started earlier and was still live (within FLOW_TIMEOUT) when this one began. Both
//!   directions feed one conversation per endpoint pair, as the packet flow table does, so an
//!   exchange split into several records by the exporter keeps its initiator.
//!   When both directions carry the same start (softflowd stamps the two records of one
//!   bidirectional flow with one start time), the record towards the lower port is taken as
//!   the first (a client talks to a service's port); with equal ports, the inbound one.
//!   Records arrive out of order (each direction is exported when it ends), so these are held
//!   back FLOW_RECORD_HOLD seconds after arrival and then decided in order of their start;
//!   at most FLOW_RECORDS_HELD wait, beyond which the earliest-started is decided at once.
//!
//! IGNORE_ADDRESSES and IGNORE_PORTS drop a record first, as they drop packets.

use super::{icmp_query, Rules};
use crate::addr::Addr;
use crate::proto;
use crate::source::netflow::Flow;
use crate::tables::Key;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Attempts one record stands for: `count` of them under `key`, from `first` to `last`
/// (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowAttempt {
    pub key: Key,
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowRuleStats {
    pub records: u64,
    /// Dropped by IGNORE_ADDRESSES / IGNORE_PORTS.
    pub ignored: u64,
    /// Records that gave attempts, and the attempts.
    pub counted_records: u64,
    pub attempts: u64,
    /// Inbound UDP/other records not counted: our side began the exchange.
    pub local_began: u64,
    /// Records decided after a later-started one of the same exchange (beyond the hold).
    pub late: u64,
    /// Records decided before their hold was up because too many were waiting.
    pub forced: u64,
    /// Conversations forgotten while still live because the table was full.
    pub evictions: u64,
}

/// What decides what an exchange counts: who began it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConvKey {
    proto: u8,
    a: Addr,
    a_port: u16,
    b: Addr,
    b_port: u16,
}

#[derive(Clone, Copy, Debug)]
struct Conv {
    initiator_is_a: bool,
    counted: bool,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    flow: Flow,
    inbound: bool,
    arrival: i64,
    seq: u64,
}

impl Held {
    /// Start time; on a tie the record towards the lower port (a client's), then the inbound
    /// one (a reverse record must have started earlier to say our side began); then arrival.
    fn rank(&self) -> (i64, bool, bool, u64) {
        let f = &self.flow;
        (f.first_ms, f.dport >= f.sport, !self.inbound, self.seq)
    }
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.rank() == o.rank()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        self.rank().cmp(&o.rank())
    }
}

pub struct FlowRules {
    rules: Rules,
    hold: i64,
    max_held: usize,
    held: BinaryHeap<Reverse<Held>>,
    seq: u64,
    convs: HashMap<ConvKey, Conv>,
    conv_capacity: usize,
    pub stats: FlowRuleStats,
}

impl FlowRules {
    pub fn new(rules: Rules, hold_secs: u64, max_held: usize, conv_capacity: usize) -> FlowRules {
        FlowRules {
            rules,
            hold: hold_secs as i64,
            max_held: max_held.max(1),
            held: BinaryHeap::new(),
            seq: 0,
            convs: HashMap::new(),
            conv_capacity: conv_capacity.max(1),
            stats: FlowRuleStats::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Records waiting for their decision.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether the ignore lists drop this record.
    pub fn ignored(&self, f: &Flow) -> bool {
        let r = &self.rules;
        (!r.ignore_addresses.is_empty()
            && (r.ignore_addresses.contains(&f.src) || r.ignore_addresses.contains(&f.dst)))
            || (proto::has_ports(f.proto)
                && (r.ignore_ports.contains(f.sport) || r.ignore_ports.contains(f.dport)))
    }

    /// (from outside to ours, from ours to outside)
    pub fn direction(&self, f: &Flow) -> (bool, bool) {
        let src = self.rules.local.contains(&f.src);
        let dst = self.rules.local.contains(&f.dst);
        (!src && dst, src && !dst)
    }

    /// One record arriving at `arrival` (Unix seconds); attempts decided now go to `out`.
    pub fn record(&mut self, f: &Flow, arrival: i64, out: &mut dyn FnMut(FlowAttempt)) {
        self.stats.records += 1;
        if self.ignored(f) {
            self.stats.ignored += 1;
            return;
        }
        let (inbound, outbound) = self.direction(f);
        match f.proto {
            proto::TCP if f.tcp_flags & SYN == 0 => {}
            proto::TCP if inbound && f.tcp_flags & ACK == 0 => {
                let n = f.packets.saturating_sub((f.tcp_flags & RST != 0) as u64);
                self.emit(f, n, false, out);
            }
            proto::TCP if inbound || outbound => self.hold(f, inbound, arrival, out),
            proto::ICMP | proto::ICMPV6 => {
                let query = f.icmp.is_some_and(|(t, _)| icmp_query(f.proto, t));
                if inbound && query {
                    self.emit(f, f.packets, false, out);
                }
            }
            proto::TCP => {}
            _ if inbound || outbound => self.hold(f, inbound, arrival, out),
            _ => {}
        }
    }

    fn hold(&mut self, f: &Flow, inbound: bool, arrival: i64, out: &mut dyn FnMut(FlowAttempt)) {
        self.seq += 1;
        self.held.push(Reverse(Held {
            flow: *f,
            inbound,
            arrival,
            seq: self.seq,
        }));
        while self.held.len() > self.max_held {
            self.stats.forced += 1;
            self.decide_next(out);
        }
    }

    /// Decides the held records whose hold is up at `now`, earliest start first.
    pub fn release(&mut self, now: i64, out: &mut dyn FnMut(FlowAttempt)) {
        while let Some(Reverse(h)) = self.held.peek() {
            if h.arrival.saturating_add(self.hold) > now {
                break;
            }
            self.decide_next(out);
        }
    }

    /// Decides every held record (the sensor stops).
    pub fn finish(&mut self, out: &mut dyn FnMut(FlowAttempt)) {
        while !self.held.is_empty() {
            self.decide_next(out);
        }
    }

    fn emit(&mut self, f: &Flow, count: u64, once: bool, out: &mut dyn FnMut(FlowAttempt)) {
        if count == 0 {
            return;
        }
        let first = f.first_ms.div_euclid(1000);
        let last = if once {
            first
        } else {
            f.last_ms.div_euclid(1000).max(first)
        };
        self.stats.counted_records += 1;
        self.stats.attempts += count;
        out(FlowAttempt {
            key: Key {
                proto: f.proto,
                port: proto::has_ports(f.proto).then_some(f.dport),
                dst: f.dst,
                src: f.src,
            },
            first,
            last,
            count,
        });
    }

    fn decide_next(&mut self, out: &mut dyn FnMut(FlowAttempt)) {
        let Some(Reverse(h)) = self.held.pop() else {
            return;
        };
        let f = &h.flow;
        let from_a = (f.src, f.sport) <= (f.dst, f.dport);
        let key = if from_a {
            ConvKey {
                proto: f.proto,
                a: f.src,
                a_port: f.sport,
                b: f.dst,
                b_port: f.dport,
            }
        } else {
            ConvKey {
                proto: f.proto,
                a: f.dst,
                a_port: f.dport,
                b: f.src,
                b_port: f.sport,
            }
        };
        let timeout = (self.rules.flow_timeout.max(0)).saturating_mul(1000);
        let fresh = Conv {
            initiator_is_a: from_a,
            counted: h.inbound,
            first_ms: f.first_ms,
            last_ms: f.last_ms,
        };
        let conv = match self.convs.get_mut(&key) {
            Some(c) if f.first_ms <= c.last_ms.saturating_add(timeout) => {
                if f.first_ms < c.first_ms {
                    // It began the exchange but came after a later record was decided.
                    self.stats.late += 1;
                    c.initiator_is_a = from_a;
                    c.counted = h.inbound;
                    c.first_ms = f.first_ms;
                }
                c.last_ms = c.last_ms.max(f.last_ms);
                *c
            }
            Some(c) => {
                // Idle longer than FLOW_TIMEOUT: this record begins a new exchange.
                *c = fresh;
                fresh
            }
            None => {
                self.make_room(f.first_ms, timeout);
                self.convs.insert(key, fresh);
                fresh
            }
        };
        if !h.inbound {
            return;
        }
        if conv.counted && conv.initiator_is_a == from_a {
            if f.proto == proto::TCP {
                self.emit(f, 1, true, out);
            } else {
                self.emit(f, f.packets, false, out);
            }
        } else {
            self.stats.local_began += 1;
        }
    }

    /// Keeps the conversation table within its capacity: first the ones idle past the
    /// timeout, then (all live: a flood) a quarter of them, whichever the map yields first.
    fn make_room(&mut self, now_ms: i64, timeout: i64) {
        if self.convs.len() < self.conv_capacity {
            return;
        }
        self.convs
            .retain(|_, c| c.last_ms.saturating_add(timeout) >= now_ms);
        let target = self.conv_capacity - self.conv_capacity / 4;
        if self.convs.len() > target {
            let drop: Vec<ConvKey> = self
                .convs
                .keys()
                .take(self.convs.len() - target)
                .copied()
                .collect();
            self.stats.evictions += drop.len() as u64;
            for k in drop {
                self.convs.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Cidr, NetSet};
    use crate::classify::PortSet;

    const THEM: [u8; 4] = [203, 0, 113, 7];
    const OURS: [u8; 4] = [198, 51, 100, 10];

    fn rules() -> Rules {
        Rules {
            local: NetSet::new(vec!["198.51.100.0/24".parse::<Cidr>().unwrap()]),
            ignore_addresses: NetSet::new(vec![]),
            ignore_ports: PortSet::new(),
            flow_timeout: 300,
        }
    }

    fn flow(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto: u8) -> Flow {
        Flow {
            exporter: Addr::v4([127, 0, 0, 1]),
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            sport,
            dport,
            proto,
            tcp_flags: 0,
            icmp: None,
            packets: 3,
            bytes: 120,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_002_500,
        }
    }

    fn run(r: &mut FlowRules, flows: &[Flow]) -> Vec<FlowAttempt> {
        let mut v = Vec::new();
        for f in flows {
            r.record(f, 0, &mut |a| v.push(a));
        }
        r.finish(&mut |a| v.push(a));
        v
    }

    #[test]
    fn tcp_syn_flows() {
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let mut syn = flow(THEM, 4000, OURS, 22, proto::TCP);
        syn.tcp_flags = SYN;
        let mut synrst = syn;
        synrst.tcp_flags = SYN | RST;
        let mut conn = syn;
        conn.tcp_flags = SYN | ACK | 0x08 | 0x01;
        conn.packets = 20;
        let mut out = syn;
        out.src = Addr::v4(OURS);
        out.dst = Addr::v4(THEM);
        let mut ack_only = syn;
        ack_only.tcp_flags = ACK;
        let v = run(&mut r, &[syn, synrst, conn, out, ack_only]);
        let counts: Vec<u64> = v.iter().map(|a| a.count).collect();
        assert_eq!(counts, [3, 2, 1]);
        assert_eq!((v[0].first, v[0].last), (1_700_000_000, 1_700_000_002));
        assert_eq!((v[2].first, v[2].last), (1_700_000_000, 1_700_000_000));
        assert_eq!(v[0].key.port, Some(22));
        // The SYN-ACK side of a connection we opened, same start as our SYN (softflowd) or
        // later: not an attempt.
        let mut ours = flow(OURS, 50_000, THEM, 80, proto::TCP);
        ours.tcp_flags = SYN | ACK;
        let mut answer = flow(THEM, 80, OURS, 50_000, proto::TCP);
        answer.tcp_flags = SYN | ACK;
        for delta in [0, 3] {
            let mut a = answer;
            a.first_ms += delta;
            assert!(run(&mut r, &[a, ours]).is_empty());
        }
    }

    #[test]
    fn udp_reverse_record_that_started_earlier_wins_whatever_the_arrival_order() {
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let mut reply = flow(THEM, 53, OURS, 5353, proto::UDP);
        reply.first_ms += 20;
        let query = flow(OURS, 5353, THEM, 53, proto::UDP);
        // The reply's record arrives first; the query's, which started earlier, after.
        assert!(run(&mut r, &[reply, query]).is_empty());
        assert_eq!(r.stats.local_began, 1);
        // An inbound exchange counts; our reply does not stop it.
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let probe = flow(THEM, 4000, OURS, 161, proto::UDP);
        let mut answer = flow(OURS, 161, THEM, 4000, proto::UDP);
        answer.first_ms += 5;
        let v = run(&mut r, &[answer, probe]);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].count, v[0].key.port), (3, Some(161)));
        // A tie in start time: the record towards the lower port began it.
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let v = run(
            &mut r,
            &[flow(OURS, 5353, THEM, 53, proto::UDP), reply_at(0)],
        );
        assert!(v.is_empty());
        let mut answer0 = answer;
        answer0.first_ms = probe.first_ms;
        assert_eq!(run(&mut r, &[answer0, probe]).len(), 1);
        // Equal ports: the inbound one.
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let v = run(
            &mut r,
            &[flow(OURS, 0, THEM, 0, 47), flow(THEM, 0, OURS, 0, 47)],
        );
        assert_eq!(v.len(), 1);
    }

    fn reply_at(delta: i64) -> Flow {
        let mut f = flow(THEM, 53, OURS, 5353, proto::UDP);
        f.first_ms += delta;
        f
    }

    #[test]
    fn exchange_split_into_records_keeps_its_initiator_until_idle() {
        let mut r = FlowRules::new(rules(), 30, 100, 100);
        let query = flow(OURS, 5353, THEM, 53, proto::UDP);
        // More answers 100 s later (a second record of the same exchange), then after 400 s
        // of silence the far side speaks first: that one counts.
        let v = run(
            &mut r,
            &[query, reply_at(20), reply_at(100_000), reply_at(700_000)],
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].first, 1_700_000_700);
        assert_eq!(r.stats.local_began, 2);
    }

    #[test]
    fn hold_back_is_bounded_in_time_and_count() {
        let mut r = FlowRules::new(rules(), 30, 4, 100);
        let mut v = Vec::new();
        let probe = flow(THEM, 4000, OURS, 161, proto::UDP);
        r.record(&probe, 100, &mut |a| v.push(a));
        r.release(129, &mut |a| v.push(a));
        assert!(v.is_empty() && r.held() == 1);
        r.release(130, &mut |a| v.push(a));
        assert_eq!((v.len(), r.held()), (1, 0));
        for i in 0..10u16 {
            let mut f = probe;
            f.sport = 5000 + i;
            r.record(&f, 200, &mut |a| v.push(a));
        }
        assert_eq!(r.held(), 4);
        assert_eq!(r.stats.forced, 6);
    }

    #[test]
    fn icmp_queries_only_and_ignore_lists() {
        let mut rl = rules();
        rl.ignore_ports.insert_range(161, 161);
        let mut r = FlowRules::new(rl, 30, 100, 100);
        let mut echo = flow(THEM, 0, OURS, 0, proto::ICMP);
        echo.icmp = Some((8, 0));
        let mut reply = echo;
        reply.icmp = Some((0, 0));
        let ignored = flow(THEM, 4000, OURS, 161, proto::UDP);
        let v = run(&mut r, &[echo, reply, ignored]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key.port, None);
        assert_eq!(r.stats.ignored, 1);
    }

    #[test]
    fn conversation_table_stays_bounded() {
        let mut r = FlowRules::new(rules(), 30, 1000, 64);
        let mut v = 0u64;
        for i in 0..10_000u32 {
            let mut f = flow(THEM, (i % 60_000) as u16, OURS, 53, proto::UDP);
            f.src = Addr::v4([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            r.record(&f, 0, &mut |a| v += a.count);
        }
        r.finish(&mut |a| v += a.count);
        assert!(r.convs.len() <= 64);
        assert_eq!(v, 30_000);
    }
}
