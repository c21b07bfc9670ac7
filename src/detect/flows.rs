//! net-security's flow sensors (iungonetwork/net-security, `src/sensors/`): portscan, winscan
//! and spam, over flow records, whether built from live packets or read from NetFlow/IPFIX.
//!
//! A flow record is unidirectional, as in NetFlow: the packets from `src` to `dst` with those
//! ports and protocol, their IP bytes (headers included, NetFlow's IN_BYTES), the OR of their
//! TCP flags, and first/last seen. Each record arrives at a time `now` (net-security stamped
//! records with their arrival, `Date.now()`); windows are measured on arrival times.
//!
//! The sensors, keyed by (observer, source address) as net-security keyed them:
//! - **portscan**: more than 100 flows within 60 s, counting flows that are SYN or SYN+RST with
//!   at most 500 bits per packet ("stealth"), SYN with at most 1000 ("full"), or UDP with at
//!   most 224. Flows to 8443 are not counted (net-security meant to drop them: its
//!   `flows.reduce(...)` is a bug that made the sensor never fire).
//! - **winscan**: any one flow to 445, 135, 137, 139, 1433 or 3389 that is SYN or SYN+RST with at
//!   most 512 bits per packet.
//! - **spam**: more than 20 flows within 60 s to 25, 465, 587 or 993, from a local host to the
//!   outside (net-security watched its own subscribers, so all its flows were outgoing; here
//!   the caller says which are).
//!
//! After an event a key is quiet for 600 s (net-security's processing offset), while its window
//! keeps counting. "Bits per packet" is `bytes × 8 / packets`, compared with `<=` as
//! net-security did (its filter is named "lower than"); a record with no packets never matches.
//! Flags are compared exactly, as net-security did, except that ECE and CWR are ignored (an
//! ECN-capable SYN is still a SYN; tsusen's counting rules ignore them too).
//!
//! State is bounded: each sensor keeps at most `capacity` keys, forgetting the least recently
//! active; a portscan key holds its last 101 arrival times and ports (about 1.2 KiB with its
//! listed hosts, so 4096 keys stay under 5 MiB), a spam key its last 21.

use crate::addr::Addr;
use crate::decode::{flags, Packet};
use crate::detect::event::{Event, EventKind, Value};
use crate::detect::lru::Lru;
use crate::hash::KeyedState;
use crate::proto;
use std::collections::HashMap;

/// One unidirectional flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord<'a> {
    /// The capture interface, or the NetFlow exporter's address as text.
    pub observer: &'a str,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// OR of the TCP flags of every packet of the flow (0 for other protocols).
    pub tcp_flags: u8,
    pub packets: u64,
    /// IP bytes, headers included.
    pub bytes: u64,
    /// First and last packet, Unix seconds.
    pub first: i64,
    pub last: i64,
}

/// Thresholds; `Default` gives net-security's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowParams {
    /// Window of the portscan and spam sensors, seconds (net-security: `windows.period(60)`).
    pub window_secs: i64,
    /// Seconds a key stays quiet after an event (net-security: `offset || 600`).
    pub holdoff_secs: i64,
    /// portscan: an event when more than this many flows fall in the window.
    pub portscan_flows: u32,
    /// portscan, "TCP stealth scan": SYN or SYN+RST flows with at most this many bits per packet.
    pub portscan_stealth_bits: u64,
    /// portscan, "TCP full scan": SYN-only flows with at most this many bits per packet.
    pub portscan_full_bits: u64,
    /// portscan: UDP flows with at most this many bits per packet.
    pub portscan_udp_bits: u64,
    /// portscan: destination ports never counted (net-security: 8443, "Wunderlist chrome
    /// extension").
    pub portscan_ignore_ports: Vec<u16>,
    /// winscan: destination ports watched.
    pub winscan_ports: Vec<u16>,
    /// winscan: SYN or SYN+RST flows with at most this many bits per packet.
    pub winscan_bits: u64,
    /// spam: destination ports of mail.
    pub spam_ports: Vec<u16>,
    /// spam: an event when more than this many outgoing mail flows fall in the window.
    pub spam_flows: u32,
    /// Keys (observer, source) each sensor tracks at once; the least recently active is
    /// forgotten.
    pub capacity: usize,
    /// Distinct observers remembered; records from further observers are dropped (counted).
    pub max_observers: usize,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            window_secs: 60,
            holdoff_secs: 600,
            portscan_flows: 100,
            portscan_stealth_bits: 500,
            portscan_full_bits: 1000,
            portscan_udp_bits: 224,
            portscan_ignore_ports: vec![8443],
            winscan_ports: vec![445, 135, 137, 139, 1433, 3389],
            winscan_bits: 512,
            spam_ports: vec![25, 465, 587, 993],
            spam_flows: 20,
            capacity: 4096,
            max_observers: 256,
        }
    }
}

/// Most flows a windowed threshold may ask for (bounds the memory of a key).
pub const MAX_FLOW_THRESHOLD: u32 = 10_000;

impl FlowParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.window_secs <= 0 || self.holdoff_secs < 0 {
            return Err("window must be positive and holdoff not negative".into());
        }
        if self.portscan_flows > MAX_FLOW_THRESHOLD || self.spam_flows > MAX_FLOW_THRESHOLD {
            return Err(format!(
                "flow thresholds must be at most {MAX_FLOW_THRESHOLD}"
            ));
        }
        if self.capacity == 0 || self.capacity > 1 << 22 {
            return Err("capacity must be from 1 to 4194304".into());
        }
        if self.max_observers == 0 || self.max_observers > u16::MAX as usize {
            return Err("max observers must be from 1 to 65535".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub records: u64,
    /// Records dropped because their observer would exceed `max_observers`.
    pub unknown_observers: u64,
    pub portscan_events: u64,
    pub winscan_events: u64,
    pub spam_events: u64,
    /// Keys forgotten to make room, all sensors.
    pub evictions: u64,
}

type Key = (u16, Addr);

/// The last `n` arrivals of one key, the first destinations it reached, and when it may report
/// again.
///
/// Under a flood most keys see one or two flows before they are forgotten, so a key's first
/// arrivals and first destination live in the entry itself, and a key that stays small never
/// reaches for a heap block, each of which would be one more cache miss a flow. A key that
/// outgrows its entry gets a block (`More`) for the rest.
struct Window {
    /// The arrivals while they are at most `NEAR`.
    near: [u64; NEAR],
    /// Made when a key first outgrows its entry; kept, with its vectors' room, when the entry
    /// is reused, and read only when `len` or `dsts_listed` says it holds this key's data (a
    /// reused entry's block is long out of the cache).
    more: Option<Box<More>>,
    /// Arrivals kept, at most `n`; past `NEAR` they are in `more.far` (see `far`).
    len: u32,
    /// Next write position; the oldest when full.
    head: u32,
    /// Distinct destinations since the key started or last reported, at most
    /// `MAX_HOSTS_LISTED`: `first_dst`, then `more.dsts`.
    dsts_listed: u8,
    first_dst: Addr,
    process_at: i64,
}

/// What a window keeps outside its entry, once it has more than the entry holds.
#[derive(Default)]
struct More {
    /// Every arrival kept, once a key has had more than `NEAR`: a ring of up to `n`.
    far: Vec<u64>,
    /// The destinations listed after the first.
    dsts: Vec<Addr>,
}

/// Arrivals a window keeps in its entry before it moves them to a ring of its own.
const NEAR: usize = 2;
/// Room a ring of its own starts with; past that it takes the whole window.
const FAR_FIRST: usize = 8;

/// Times beyond ±2^47 s (4 million years) are clamped to fit beside the port.
const ARRIVAL_TIME_LIMIT: i64 = 1 << 47;

/// An arrival's time and destination port in one word: one store a flow counted.
fn arrival(now: i64, port: u16) -> u64 {
    let t = now.clamp(-ARRIVAL_TIME_LIMIT, ARRIVAL_TIME_LIMIT - 1);
    ((t as u64) << 16) | port as u64
}

fn arrival_time(a: u64) -> i64 {
    (a as i64) >> 16
}

impl Window {
    fn new() -> Window {
        Window {
            near: [0; NEAR],
            more: None,
            len: 0,
            head: 0,
            dsts_listed: 0,
            first_dst: Addr::default(),
            process_at: i64::MIN,
        }
    }

    /// Forgets the key; touches nothing outside the entry.
    fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        self.dsts_listed = 0;
        self.process_at = i64::MIN;
    }

    /// Whether the arrivals are in `more.far`: the key has had more than `NEAR`.
    fn far(&self) -> bool {
        self.len as usize > NEAR
    }

    /// The arrivals kept, as a ring starting at `head` once `n` are kept.
    fn ring(&self) -> &[u64] {
        match (self.far(), &self.more) {
            (true, Some(m)) => &m.far,
            _ => &self.near[..self.len as usize],
        }
    }

    /// Adds an arrival; returns the oldest kept when `n` (at most `MAX_FLOW_THRESHOLD + 1`)
    /// are kept.
    fn push(&mut self, n: usize, now: i64, port: u16, dst: Addr) -> Option<i64> {
        let a = arrival(now, port);
        let len = self.len as usize;
        if len < NEAR.min(n) {
            self.near[len] = a;
            self.len += 1;
        } else if len == NEAR && n > NEAR {
            // The key outgrows its entry: its arrivals move to a ring of their own.
            let m = self.more.get_or_insert_with(Box::default);
            m.far.clear();
            m.far.reserve_exact(FAR_FIRST.min(n));
            m.far.extend_from_slice(&self.near);
            m.far.push(a);
            self.len += 1;
        } else if !self.far() {
            self.near[self.head as usize] = a;
        } else if let Some(m) = self.more.as_mut() {
            if len < n {
                if m.far.len() == m.far.capacity() {
                    // Past the first few, straight to the whole window: doubling would leave
                    // up to half of it unused, in every key.
                    m.far.reserve_exact(n - len);
                }
                m.far.push(a);
                self.len += 1;
            } else {
                m.far[self.head as usize] = a;
            }
        }
        // Wrapped by a compare, not `%`: a division for every flow counted.
        self.head += 1;
        if self.head as usize == n {
            self.head = 0;
        }
        self.list_dst(dst);
        (self.len as usize == n).then(|| arrival_time(self.ring()[self.head as usize]))
    }

    fn list_dst(&mut self, dst: Addr) {
        let listed = self.dsts_listed as usize;
        if listed == 0 {
            self.first_dst = dst;
            self.dsts_listed = 1;
        } else if listed < MAX_HOSTS_LISTED && self.first_dst != dst {
            let m = self.more.get_or_insert_with(Box::default);
            if listed == 1 {
                // Whatever a reused entry's block still lists was another key's.
                m.dsts.clear();
            }
            if !m.dsts.contains(&dst) {
                m.dsts.push(dst);
                self.dsts_listed += 1;
            }
        }
    }

    fn distinct_ports(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.ring().iter().map(|&a| a as u16 as i64).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The destinations listed, sorted; the list starts again.
    fn take_dsts(&mut self) -> Vec<String> {
        let mut v: Vec<Addr> = Vec::with_capacity(self.dsts_listed as usize);
        if self.dsts_listed > 0 {
            v.push(self.first_dst);
        }
        if let (2.., Some(m)) = (self.dsts_listed, self.more.as_mut()) {
            v.append(&mut m.dsts);
        }
        self.dsts_listed = 0;
        v.sort_unstable();
        v.into_iter().map(|a| a.to_string()).collect()
    }
}

/// Destination hosts listed in an event at most.
const MAX_HOSTS_LISTED: usize = 16;

pub struct FlowSensors {
    params: FlowParams,
    observers: HashMap<Box<str>, u16, KeyedState>,
    names: Vec<Box<str>>,
    portscan: Lru<Key, Window>,
    spam: Lru<Key, Window>,
    /// winscan keeps only its quiet-until time.
    winscan: Lru<Key, i64>,
    /// The longest UDP packet, over IPv4 and over IPv6, that could be part of a flow the
    /// portscan sensor counts (see `may_count`).
    udp_longest: [u64; 2],
    stats: FlowStats,
}

/// The shortest UDP datagrams, IP header included: IPv4 and IPv6.
const MIN_UDP_BYTES: [u64; 2] = [28, 48];

impl FlowSensors {
    /// Panics if `params` do not validate; check them with [`FlowParams::validate`] first.
    pub fn new(params: FlowParams) -> FlowSensors {
        if let Err(e) = params.validate() {
            panic!("flow sensor settings: {e}");
        }
        FlowSensors {
            observers: HashMap::with_hasher(KeyedState::random()),
            names: Vec::new(),
            portscan: Lru::new(params.capacity),
            spam: Lru::new(params.capacity),
            winscan: Lru::new(params.capacity),
            udp_longest: MIN_UDP_BYTES.map(|b| {
                if b * 8 < params.portscan_udp_bits {
                    u64::MAX
                } else {
                    params.portscan_udp_bits / 8
                }
            }),
            stats: FlowStats::default(),
            params,
        }
    }

    /// Whether a packet could be part of a flow some sensor counts: the live flow builder
    /// builds flows of these packets only. Only TCP and UDP flows count, and UDP ones only for
    /// portscan, at most `portscan_udp_bits` per packet and not to an ignored port.
    ///
    /// When no datagram of the packet's IP version is shorter than that (net-security's 224
    /// bits is an empty IPv4 datagram, the shortest there is; over IPv6 every datagram is
    /// longer), a longer datagram would keep its flow from ever counting. It is left out
    /// rather than built: on a busy link datagrams with a payload are a large share of the
    /// frames, and each would cost the builder a lookup and, in a full table, an eviction. A
    /// flow that mixes empty and other datagrams on one pair of ports is therefore judged on
    /// its empty ones, as probes. A threshold above the shortest datagram keeps every
    /// datagram in.
    #[inline]
    pub fn may_count(&self, p: &Packet) -> bool {
        match p.proto {
            proto::TCP => true,
            proto::UDP => {
                p.ip_len as u64 <= self.udp_longest[p.src.is_v6() as usize]
                    && !self.params.portscan_ignore_ports.contains(&p.dport)
            }
            _ => false,
        }
    }

    pub fn params(&self) -> &FlowParams {
        &self.params
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            evictions: self.portscan.evictions() + self.spam.evictions() + self.winscan.evictions(),
            ..self.stats
        }
    }

    /// Keys tracked now, all sensors.
    pub fn tracked(&self) -> usize {
        self.portscan.len() + self.spam.len() + self.winscan.len()
    }

    fn observer_id(&mut self, name: &str) -> Option<u16> {
        // Few observers (live, just one): comparing the names is cheaper than hashing one.
        let known = if self.names.len() <= 4 {
            self.names
                .iter()
                .position(|n| &**n == name)
                .map(|i| i as u16)
        } else {
            self.observers.get(name).copied()
        };
        if known.is_some() {
            return known;
        }
        if self.names.len() >= self.params.max_observers {
            return None;
        }
        let i = self.names.len() as u16;
        self.names.push(name.into());
        self.observers.insert(name.into(), i);
        Some(i)
    }

    /// One flow record arriving at `now` (Unix seconds). `outbound`: its source is one of ours
    /// and its destination is not (only such flows count as mail sent). Events go to `out`.
    pub fn observe(&mut self, f: &FlowRecord<'_>, outbound: bool, now: i64, out: &mut Vec<Event>) {
        self.stats.records += 1;
        let p = &self.params;
        let fl = f.tcp_flags & !0xc0;
        let syn_or_synrst = fl == flags::SYN || fl == flags::SYN | flags::RST;
        let portscan = !p.portscan_ignore_ports.contains(&f.dport)
            && ((syn_or_synrst && bits_at_most(f, p.portscan_stealth_bits))
                || (fl == flags::SYN && bits_at_most(f, p.portscan_full_bits))
                || (f.proto == proto::UDP && bits_at_most(f, p.portscan_udp_bits)));
        let winscan =
            p.winscan_ports.contains(&f.dport) && syn_or_synrst && bits_at_most(f, p.winscan_bits);
        let spam = outbound && f.proto == proto::TCP && p.spam_ports.contains(&f.dport);
        if !(portscan || winscan || spam) {
            return;
        }
        let Some(obs) = self.observer_id(f.observer) else {
            self.stats.unknown_observers += 1;
            return;
        };
        let key = (obs, f.src);
        let p = &self.params;
        if portscan {
            let n = p.portscan_flows as usize + 1;
            let e = windowed(&mut self.portscan, key, n, f, now, p, EventKind::Portscan);
            if let Some(e) = e {
                self.stats.portscan_events += 1;
                out.push(e);
            }
        }
        if winscan {
            let (quiet_until, _) = self.winscan.touch(key, || i64::MIN, |t| *t = i64::MIN);
            if *quiet_until <= now {
                *quiet_until = now.saturating_add(p.holdoff_secs);
                self.stats.winscan_events += 1;
                out.push(Event {
                    kind: EventKind::Winscan,
                    observer: f.observer.into(),
                    offender: Some(f.src),
                    timestamp: now,
                    details: vec![
                        ("dst_port", Value::Int(f.dport as i64)),
                        ("attacked_hosts", Value::Strs(vec![f.dst.to_string()])),
                    ],
                });
            }
        }
        if spam {
            let n = p.spam_flows as usize + 1;
            if let Some(e) = windowed(&mut self.spam, key, n, f, now, p, EventKind::Spam) {
                self.stats.spam_events += 1;
                out.push(e);
            }
        }
    }
}

/// net-security's `bits_per_packet_lower_than`: `bytes × 8 / packets <= bits`.
fn bits_at_most(f: &FlowRecord<'_>, bits: u64) -> bool {
    f.packets > 0 && (f.bytes as u128) * 8 <= (bits as u128) * (f.packets as u128)
}

/// Counts a flow in its key's window of the last `n` flows: an event of `kind` when the window
/// is full, its oldest flow within the window's seconds, and the key is not held off.
fn windowed<K: std::hash::Hash + Eq + Copy>(
    map: &mut Lru<K, Window>,
    key: K,
    n: usize,
    f: &FlowRecord<'_>,
    now: i64,
    p: &FlowParams,
    kind: EventKind,
) -> Option<Event> {
    let (w, _) = map.touch(key, Window::new, Window::clear);
    let oldest = w.push(n, now, f.dport, f.dst)?;
    if oldest <= now - p.window_secs || w.process_at > now {
        return None;
    }
    w.process_at = now.saturating_add(p.holdoff_secs);
    Some(Event {
        kind,
        observer: f.observer.into(),
        offender: Some(f.src),
        timestamp: oldest,
        details: vec![
            ("flows", Value::Int(n as i64)),
            ("window", Value::Int(p.window_secs)),
            ("dst_ports", Value::Ints(w.distinct_ports())),
            ("attacked_hosts", Value::Strs(w.take_dsts())),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = flags::SYN;
    const RST: u8 = flags::RST;
    const ACK: u8 = flags::ACK;

    fn rec(
        src: u8,
        dport: u16,
        proto: u8,
        fl: u8,
        packets: u64,
        bytes: u64,
    ) -> FlowRecord<'static> {
        FlowRecord {
            observer: "eth0",
            src: Addr::v4([203, 0, 113, src]),
            dst: Addr::v4([198, 51, 100, (dport % 200) as u8]),
            sport: 40000,
            dport,
            proto,
            tcp_flags: fl,
            packets,
            bytes,
            first: 0,
            last: 0,
        }
    }

    fn kinds(ev: &[Event]) -> Vec<EventKind> {
        ev.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn portscan_needs_more_than_100_in_60_seconds() {
        let mut s = FlowSensors::new(FlowParams::default());
        let mut ev = Vec::new();
        for i in 0..100u16 {
            s.observe(
                &rec(7, 1000 + i, proto::TCP, SYN, 1, 44),
                false,
                1000,
                &mut ev,
            );
        }
        assert!(ev.is_empty(), "100 flows are not more than 100");
        s.observe(&rec(7, 2000, proto::TCP, SYN, 1, 44), false, 1059, &mut ev);
        assert_eq!(kinds(&ev), [EventKind::Portscan]);
        let e = &ev[0];
        assert_eq!(e.timestamp, 1000, "the oldest flow of the window");
        assert_eq!(e.observer, "eth0");
        assert_eq!(e.detail("flows"), Some(&Value::Int(101)));
        let Some(Value::Ints(ports)) = e.detail("dst_ports") else {
            panic!()
        };
        assert_eq!(ports.len(), 101);
        let Some(Value::Strs(hosts)) = e.detail("attacked_hosts") else {
            panic!()
        };
        assert_eq!(hosts.len(), MAX_HOSTS_LISTED);
        // Quiet for 600 s, then again.
        for i in 0..300u16 {
            s.observe(
                &rec(7, 3000 + i, proto::TCP, SYN, 1, 44),
                false,
                1100,
                &mut ev,
            );
        }
        assert_eq!(ev.len(), 1);
        for i in 0..101u16 {
            s.observe(
                &rec(7, 4000 + i, proto::TCP, SYN, 1, 44),
                false,
                1659,
                &mut ev,
            );
        }
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn portscan_window_is_sixty_seconds() {
        let mut s = FlowSensors::new(FlowParams::default());
        let mut ev = Vec::new();
        // 101 flows, one every 0.6 s would fit; one a second over 101 s does not: the oldest
        // of the last 101 is exactly 100 s old, and 60 s old is already out.
        for i in 0..200i64 {
            s.observe(
                &rec(7, 2000 + i as u16, proto::TCP, SYN, 1, 40),
                false,
                i,
                &mut ev,
            );
        }
        assert!(ev.is_empty());
        // 101 within 60 s (two a second).
        for i in 0..101i64 {
            s.observe(
                &rec(7, 2000 + i as u16, proto::TCP, SYN, 1, 40),
                false,
                1000 + i / 2,
                &mut ev,
            );
        }
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn portscan_filters() {
        let p = FlowParams::default();
        let mut s = FlowSensors::new(FlowParams {
            portscan_flows: 0,
            holdoff_secs: 0,
            ..p
        });
        let mut hit = |f: FlowRecord<'_>| {
            let mut ev = Vec::new();
            s.observe(&f, false, 0, &mut ev);
            ev.iter().any(|e| e.kind == EventKind::Portscan)
        };
        // Stealth: SYN or SYN+RST at most 500 bits per packet.
        assert!(hit(rec(1, 80, proto::TCP, SYN | RST, 2, 125)));
        assert!(!hit(rec(1, 80, proto::TCP, SYN | RST, 2, 126)));
        // Full: SYN alone up to 1000.
        assert!(hit(rec(1, 80, proto::TCP, SYN, 1, 125)));
        assert!(!hit(rec(1, 80, proto::TCP, SYN, 1, 126)));
        // An ECN SYN is a SYN.
        assert!(hit(rec(1, 80, proto::TCP, SYN | 0xc0, 1, 60)));
        // Anything with ACK is a conversation.
        assert!(!hit(rec(1, 80, proto::TCP, SYN | ACK, 1, 40)));
        // UDP up to 224 bits (28 bytes: a bare header).
        assert!(hit(rec(1, 53, proto::UDP, 0, 1, 28)));
        assert!(!hit(rec(1, 53, proto::UDP, 0, 1, 29)));
        // No packets, no match; 8443 never counts.
        assert!(!hit(rec(1, 80, proto::TCP, SYN, 0, 0)));
        assert!(!hit(rec(1, 8443, proto::TCP, SYN, 1, 40)));
    }

    #[test]
    fn winscan_every_matching_flow_then_quiet() {
        let mut s = FlowSensors::new(FlowParams::default());
        let mut ev = Vec::new();
        s.observe(&rec(7, 445, proto::TCP, SYN, 1, 64), false, 100, &mut ev);
        assert_eq!(kinds(&ev), [EventKind::Winscan]);
        assert_eq!(ev[0].detail("dst_port"), Some(&Value::Int(445)));
        assert_eq!(ev[0].timestamp, 100);
        s.observe(&rec(7, 3389, proto::TCP, SYN, 1, 64), false, 699, &mut ev);
        assert_eq!(ev.len(), 1, "quiet for 600 s");
        s.observe(&rec(7, 3389, proto::TCP, SYN, 1, 64), false, 700, &mut ev);
        assert_eq!(ev.len(), 2);
        // Another source is its own key; 65 bytes is 520 bits: too big.
        s.observe(&rec(8, 139, proto::TCP, SYN, 1, 65), false, 700, &mut ev);
        s.observe(&rec(8, 80, proto::TCP, SYN, 1, 40), false, 700, &mut ev);
        s.observe(&rec(8, 137, proto::UDP, 0, 1, 40), false, 700, &mut ev);
        assert_eq!(ev.len(), 2);
        s.observe(
            &rec(8, 139, proto::TCP, SYN | RST, 2, 80),
            false,
            700,
            &mut ev,
        );
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn spam_counts_outgoing_mail_only() {
        let mut s = FlowSensors::new(FlowParams::default());
        let mut ev = Vec::new();
        for i in 0..21 {
            s.observe(
                &rec(7, 25, proto::TCP, SYN | ACK, 10, 4000),
                false,
                i,
                &mut ev,
            );
        }
        assert!(ev.is_empty(), "inbound mail is not spam");
        for i in 0..20 {
            let port = [25, 465, 587, 993][i % 4];
            s.observe(
                &rec(7, port, proto::TCP, SYN | ACK, 10, 4000),
                true,
                i as i64,
                &mut ev,
            );
        }
        assert!(ev.is_empty(), "20 is not more than 20");
        s.observe(
            &rec(7, 80, proto::TCP, SYN | ACK, 10, 4000),
            true,
            30,
            &mut ev,
        );
        assert!(ev.is_empty());
        s.observe(
            &rec(7, 587, proto::TCP, SYN | ACK, 10, 4000),
            true,
            30,
            &mut ev,
        );
        assert_eq!(kinds(&ev), [EventKind::Spam]);
        assert_eq!(
            ev[0].detail("dst_ports"),
            Some(&Value::Ints(vec![25, 465, 587, 993]))
        );
        assert_eq!(ev[0].timestamp, 0);
    }

    #[test]
    fn observers_are_separate_keys_and_bounded() {
        let mut s = FlowSensors::new(FlowParams {
            max_observers: 2,
            ..FlowParams::default()
        });
        let mut ev = Vec::new();
        for (obs, n) in [("a", 60u16), ("b", 60)] {
            for i in 0..n {
                let mut f = rec(7, i, proto::TCP, SYN, 1, 40);
                f.observer = obs;
                s.observe(&f, false, 0, &mut ev);
            }
        }
        assert!(ev.is_empty(), "60 + 60 flows seen by two observers");
        let mut f = rec(7, 445, proto::TCP, SYN, 1, 40);
        f.observer = "c";
        s.observe(&f, false, 0, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(s.stats().unknown_observers, 1);
    }

    #[test]
    fn spoofed_sources_stay_bounded() {
        let mut s = FlowSensors::new(FlowParams::default());
        let mut ev = Vec::new();
        for i in 0..200_000u32 {
            let b = i.to_be_bytes();
            let mut f = rec(0, 445, proto::TCP, SYN, 1, 40);
            f.src = Addr::v4([10, b[1], b[2], b[3]]);
            s.observe(&f, false, i as i64 / 1000, &mut ev);
        }
        assert_eq!(s.tracked(), 2 * 4096);
        assert!(s.stats().evictions >= 2 * (200_000 - 4096));
        // Every source is new, so winscan speaks for each.
        assert_eq!(ev.len(), 200_000);
    }

    #[test]
    fn an_arrival_keeps_its_time_and_port() {
        for t in [
            0,
            1,
            -1,
            1_764_028_800,
            ARRIVAL_TIME_LIMIT - 1,
            -ARRIVAL_TIME_LIMIT,
        ] {
            for port in [0, 1, 445, u16::MAX] {
                let a = arrival(t, port);
                assert_eq!((arrival_time(a), a as u16), (t, port));
            }
        }
        assert_eq!(arrival_time(arrival(i64::MAX, 7)), ARRIVAL_TIME_LIMIT - 1);
        assert_eq!(arrival_time(arrival(i64::MIN, 7)), -ARRIVAL_TIME_LIMIT);
        let mut w = Window::new();
        let dst = Addr::v4([198, 51, 100, 1]);
        for i in 0..100 {
            assert_eq!(w.push(101, -50 + i, 1000 + i as u16, dst), None);
        }
        let far = w.more.as_ref().map_or(0, |m| m.far.capacity());
        assert_eq!(far, 101, "one window's room, no more");
        assert_eq!(w.push(101, 60, 7, dst), Some(-50));
        assert_eq!(w.push(101, 61, 8, dst), Some(-49));
        assert_eq!(w.distinct_ports().len(), 101);
    }

    /// A window, in its entry or in a ring of its own, and reused after `clear`, keeps what a
    /// plain queue of the last `n` arrivals and a list of the first distinct destinations keep.
    #[test]
    fn a_window_agrees_with_a_plain_queue() {
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let mut w = Window::new();
        for n in [1usize, 2, 3, 5, 21, 101] {
            for round in 0..3 {
                w.clear();
                let mut queue = std::collections::VecDeque::new();
                let mut dsts: Vec<Addr> = Vec::new();
                for t in 0..(n as i64 * 3 + round) {
                    let (port, dst) = (next(40) as u16, Addr::v4([10, 0, 0, next(20) as u8]));
                    queue.push_back((t, port));
                    if queue.len() > n {
                        queue.pop_front();
                    }
                    if dsts.len() < MAX_HOSTS_LISTED && !dsts.contains(&dst) {
                        dsts.push(dst);
                    }
                    let want = (queue.len() == n).then(|| queue[0].0);
                    assert_eq!(w.push(n, t, port, dst), want, "n {n}, round {round}, t {t}");
                    let mut ports: Vec<i64> = queue.iter().map(|&(_, p)| p as i64).collect();
                    ports.sort_unstable();
                    ports.dedup();
                    assert_eq!(w.distinct_ports(), ports, "n {n}, t {t}");
                    if next(5) == 0 {
                        let mut listed = std::mem::take(&mut dsts);
                        listed.sort_unstable();
                        let listed: Vec<String> = listed.iter().map(|a| a.to_string()).collect();
                        assert_eq!(w.take_dsts(), listed, "n {n}, t {t}");
                    }
                }
                // Only a window longer than its entry's room has a ring of its own.
                assert_eq!(w.far(), n > NEAR, "n {n}");
            }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for p in [
            FlowParams {
                window_secs: 0,
                ..FlowParams::default()
            },
            FlowParams {
                portscan_flows: MAX_FLOW_THRESHOLD + 1,
                ..FlowParams::default()
            },
            FlowParams {
                capacity: 0,
                ..FlowParams::default()
            },
            FlowParams {
                max_observers: 0,
                ..FlowParams::default()
            },
        ] {
            assert!(p.validate().is_err());
        }
    }

    #[test]
    fn only_packets_of_flows_that_could_count_are_built() {
        let pkt = |proto, v6: bool, ip_len, dport| Packet {
            src: if v6 {
                Addr::v6([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
            } else {
                Addr::v4([203, 0, 113, 1])
            },
            proto,
            ip_len,
            dport,
            ..Packet::default()
        };
        let s = FlowSensors::new(FlowParams::default());
        // TCP always (its flags and sizes are judged on the whole flow); no ICMP.
        assert!(s.may_count(&pkt(proto::TCP, false, 1500, 80)));
        assert!(s.may_count(&pkt(proto::TCP, true, 60, 8443)));
        assert!(!s.may_count(&pkt(proto::ICMP, false, 28, 0)));
        assert!(!s.may_count(&pkt(proto::ICMPV6, true, 48, 0)));
        // UDP at 224 bits: only the empty IPv4 datagram, and not to the ignored port.
        assert!(s.may_count(&pkt(proto::UDP, false, 28, 53)));
        assert!(!s.may_count(&pkt(proto::UDP, false, 29, 53)));
        assert!(!s.may_count(&pkt(proto::UDP, false, 28, 8443)));
        assert!(!s.may_count(&pkt(proto::UDP, true, 48, 53)));
        // Above the shortest datagram a longer one can be made up for by shorter ones.
        let wide = FlowSensors::new(FlowParams {
            portscan_udp_bits: 400,
            ..FlowParams::default()
        });
        assert!(wide.may_count(&pkt(proto::UDP, false, 1500, 53)));
        assert!(wide.may_count(&pkt(proto::UDP, true, 1500, 53)));
        // Below it nothing counts.
        let narrow = FlowSensors::new(FlowParams {
            portscan_udp_bits: 200,
            ..FlowParams::default()
        });
        assert!(!narrow.may_count(&pkt(proto::UDP, false, 28, 53)));
    }
}
