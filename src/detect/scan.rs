//! scanlogd's port scan detector (Solar Designer's scanlogd 2.2.8, the Debian package),
//! written anew from its documented method, with its report line.
//!
//! Per source address we keep one entry: the destination ports seen, their total weight (3 for a
//! port below 1024, 1 above), the first destination, source port, TOS and TTL, and the OR and AND
//! of the TCP flags. A packet to a port the entry does not hold yet, no more than 3 seconds after
//! the previous new port, adds that port's weight; when the weight reaches 21 the entry is a scan
//! and is reported once. A packet more than 3 seconds after the previous new port starts the
//! source over. A new port carrying ACK or RST is ignored (it looks like one of our own
//! connections), and an entry is never started by an ACK.
//!
//! The state is fixed: 256 entries, reused oldest first (by creation), found through a hash of
//! 512 buckets keyed per process ([`KeyedHash`]) with at most 16 entries per bucket, so spoofed
//! sources cannot make a lookup long. Reports are limited to 5 within 20 seconds of each other;
//! the sixth becomes one "More possible port scans follow" and the rest are dropped (counted)
//! until 20 seconds pass without a report.
//!
//! Which packets: TCP only, first fragments included (the decoder already drops later ones),
//! IPv4 and IPv6 (scanlogd itself is IPv4-only). Direction is the caller's business: scanlogd
//! sees what its own host receives, so the sensor should feed inbound packets only.
//!
//! Time is in microseconds: scanlogd measures its 3-second rule in clock ticks (10 ms), so whole
//! seconds are enough only when the gaps that matter are far from 3 s.

use crate::addr::Addr;
use crate::decode::{flags, Packet};
use crate::detect::event::{Event, EventKind, Value};
use crate::hash::KeyedHash;
use crate::proto;
use std::fmt;

const NIL: u32 = u32::MAX;

/// scanlogd's compile-time parameters (params.h), settable here. `Default` gives scanlogd's
/// values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanParams {
    /// PORT_WEIGHT_PRIV: weight of a destination port below 1024.
    pub port_weight_priv: u32,
    /// PORT_WEIGHT_HIGH: weight of a port from 1024 up. "High port numbers have a lower weight
    /// to reduce the frequency of false positives, such as from passive mode FTP transfers."
    pub port_weight_high: u32,
    /// SCAN_WEIGHT_THRESHOLD (= SCAN_MAX_COUNT = SCAN_MIN_COUNT 7 × PORT_WEIGHT_PRIV): the total
    /// weight of distinct destination ports from one source that makes a scan. Also sets how
    /// many ports an entry keeps: SCAN_MAX_COUNT − 1.
    pub weight_threshold: u32,
    /// SCAN_DELAY_THRESHOLD: the longest time between two new ports of one scan, microseconds
    /// (scanlogd: 3 s, counted in clock ticks).
    pub delay_us: i64,
    /// LOG_COUNT_THRESHOLD: reports allowed within LOG_DELAY of each other before logging stops
    /// for a while ("More possible port scans follow").
    pub log_count: u32,
    /// LOG_DELAY_THRESHOLD: microseconds (scanlogd: 20 s).
    pub log_delay_us: i64,
    /// LOG_MAX_LENGTH: the report line is cut to about this many characters by dropping ports
    /// from its end, "such as to fit into one SMS message" (scanlogd: 160 − 40). `None`: no
    /// limit.
    pub log_max_length: Option<usize>,
    /// LIST_SIZE: source addresses tracked at once; the oldest entry is reused.
    pub list_size: usize,
    /// HASH_SIZE (1 << HASH_LOG, HASH_LOG 9): buckets of the lookup hash; a power of two.
    pub hash_size: usize,
    /// HASH_MAX: source addresses per bucket before the oldest in it is dropped.
    pub hash_max: usize,
}

impl Default for ScanParams {
    fn default() -> Self {
        ScanParams {
            port_weight_priv: 3,
            port_weight_high: 1,
            weight_threshold: 21,
            delay_us: 3_000_000,
            log_count: 5,
            log_delay_us: 20_000_000,
            log_max_length: Some(160 - 40),
            list_size: 0x100,
            hash_size: 1 << 9,
            hash_max: 0x10,
        }
    }
}

/// The most ports one entry keeps (bounds memory whatever the threshold).
pub const MAX_PORTS_KEPT: usize = 1024;

impl ScanParams {
    /// Checks the settings; the message names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.port_weight_priv == 0 || self.port_weight_high == 0 {
            return Err("port weights must be at least 1".into());
        }
        if self.weight_threshold < 2 || self.weight_threshold as usize > MAX_PORTS_KEPT + 1 {
            return Err(format!(
                "weight threshold must be from 2 to {}",
                MAX_PORTS_KEPT + 1
            ));
        }
        if self.delay_us <= 0 || self.log_delay_us < 0 {
            return Err("delays must be positive".into());
        }
        if self.list_size == 0 || self.list_size > 1 << 20 {
            return Err("list size must be from 1 to 1048576".into());
        }
        if !self.hash_size.is_power_of_two() || self.hash_size > 1 << 20 {
            return Err("hash size must be a power of two up to 1048576".into());
        }
        if self.hash_max == 0 {
            return Err("hash max must be at least 1".into());
        }
        Ok(())
    }

    /// Ports an entry keeps: SCAN_MAX_COUNT − 1.
    fn ports_kept(&self) -> usize {
        (self.weight_threshold as usize - 1).clamp(1, MAX_PORTS_KEPT)
    }

    fn weight(&self, port: u16) -> u32 {
        if port < 1024 {
            self.port_weight_priv
        } else {
            self.port_weight_high
        }
    }
}

// The HF_ bits: what was not the same in every packet of the scan.
const DADDR_CHANGING: u8 = 0x01;
const SPORT_CHANGING: u8 = 0x02;
const TOS_CHANGING: u8 = 0x04;
const TTL_CHANGING: u8 = 0x08;

/// One source address.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Host {
    /// Next entry in the same bucket.
    next: u32,
    /// The bucket it is chained in, so reusing the entry need not hash its address again.
    /// Not in the snapshot: it depends on this process's hash key (`import` sets it).
    #[serde(skip)]
    bucket: u32,
    /// Holds a source (scanlogd: saddr != 0.0.0.0).
    used: bool,
    /// Time of the last new port, µs.
    timestamp: i64,
    /// Time the entry was made, µs (the report's @HH:MM:SS).
    start: i64,
    saddr: Addr,
    daddr: Addr,
    sport: u16,
    count: u16,
    weight: u32,
    tos: u8,
    ttl: u8,
    flags_or: u8,
    flags_and: u8,
    changing: u8,
}

/// Counters for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Scans reported.
    pub reports: u64,
    /// Scans detected while reports were held back (after "More possible port scans follow").
    pub suppressed: u64,
    /// "More possible port scans follow" lines.
    pub floods: u64,
    /// Entries reused while their source was still inside the delay (more sources than
    /// LIST_SIZE at once).
    pub reused_live: u64,
    /// Entries dropped from a bucket that held HASH_MAX sources.
    pub bucket_drops: u64,
}

/// What the detector has to say about one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Scan(ScanReport),
    /// Reports are being held back: "More possible port scans follow".
    MoreFollow {
        at_us: i64,
    },
}

impl Report {
    /// The time the detector decided, µs.
    pub fn at_us(&self) -> i64 {
        match self {
            Report::Scan(s) => s.at_us,
            Report::MoreFollow { at_us } => *at_us,
        }
    }

    /// scanlogd's line with the time of day in local time (as scanlogd prints it).
    pub fn line_local(&self) -> String {
        match self {
            Report::Scan(s) => s.line_local(),
            Report::MoreFollow { .. } => MORE_FOLLOW.into(),
        }
    }
}

pub const MORE_FOLLOW: &str = "More possible port scans follow";

impl fmt::Display for Report {
    /// scanlogd's line, time of day in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Scan(s) => s.fmt(f),
            Report::MoreFollow { .. } => f.write_str(MORE_FOLLOW),
        }
    }
}

/// One detected scan: what scanlogd logs about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanReport {
    pub saddr: Addr,
    /// The destination of the first packet.
    pub daddr: Addr,
    /// More than one destination address was scanned (" and others,").
    pub others: bool,
    /// The source port, when it was the same in every packet.
    pub sport: Option<u16>,
    /// The ports of the scan in the order first seen, as scanlogd lists them: the port that
    /// crossed the threshold is not among them (see `trigger_port`).
    pub ports: Vec<u16>,
    /// The new port whose weight crossed the threshold.
    pub trigger_port: u16,
    /// OR and AND of the TCP flags of the packets counted.
    pub flags_or: u8,
    pub flags_and: u8,
    /// TOS and TTL, when they were the same in every packet.
    pub tos: Option<u8>,
    pub ttl: Option<u8>,
    /// When the source's entry was made (its first packet), µs.
    pub start_us: i64,
    /// When the threshold was crossed, µs.
    pub at_us: i64,
    /// LOG_MAX_LENGTH in force.
    pub max_length: Option<usize>,
}

impl ScanReport {
    /// scanlogd's eight flag letters: upper case always set, lower case always clear, `?`
    /// changing; FIN SYN RST PSH ACK URG and the two bits above (ECE, CWR) as `x` and `y`.
    pub fn flags(&self) -> String {
        let mut s = String::with_capacity(8);
        for (i, c) in "fsrpauxy".chars().enumerate() {
            let m = 1u8 << i;
            if self.flags_or & m != self.flags_and & m {
                s.push('?');
            } else if self.flags_or & m != 0 {
                s.push(c.to_ascii_uppercase());
            } else {
                s.push(c);
            }
        }
        s
    }

    /// Every port of the scan, the trigger last.
    pub fn all_ports(&self) -> Vec<u16> {
        let mut v = self.ports.clone();
        v.push(self.trigger_port);
        v
    }

    /// The line with the start time shifted by `utc_offset` seconds.
    pub fn line(&self, utc_offset: i64) -> String {
        let secs = self.start_us.div_euclid(1_000_000) + utc_offset;
        let t = secs.rem_euclid(86_400);
        let time = format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
        self.line_with_time(&time)
    }

    /// The line with the start time in this machine's local time zone.
    pub fn line_local(&self) -> String {
        use chrono::{Local, Offset, TimeZone};
        let secs = self.start_us.div_euclid(1_000_000);
        let offset = match Local.timestamp_opt(secs, 0) {
            chrono::LocalResult::Single(t) => t.offset().fix().local_minus_utc() as i64,
            chrono::LocalResult::Ambiguous(t, _) => t.offset().fix().local_minus_utc() as i64,
            chrono::LocalResult::None => 0,
        };
        self.line(offset)
    }

    /// scanlogd's do_log(): `saddr[:sport] to daddr[ and others,] ports p1, p2, ..., flags[, TOS
    /// xx][, TTL n] @time`. Ports are dropped from the end until the line fits the limit, the
    /// way scanlogd measures it (at least one port stays).
    fn line_with_time(&self, time: &str) -> String {
        let saddr = match (self.sport, self.saddr.is_v6()) {
            (None, _) => format!("{}", self.saddr),
            (Some(p), false) => format!("{}:{p}", self.saddr),
            (Some(p), true) => format!("[{}]:{p}", self.saddr),
        };
        let tos = self
            .tos
            .map(|t| format!(", TOS {t:02x}"))
            .unwrap_or_default();
        let ttl = self.ttl.map(|t| format!(", TTL {t}")).unwrap_or_default();
        let flags = self.flags();
        let mut limit = self.ports.len();
        let mut daddr;
        loop {
            daddr = format!(
                "{}{} ports ",
                self.daddr,
                if self.others { " and others," } else { "" }
            );
            for i in 0..limit {
                if let Some(max) = self.max_length {
                    if daddr.len() >= max {
                        limit = i;
                        break;
                    }
                }
                daddr.push_str(&self.ports[i].to_string());
                daddr.push_str(", ");
            }
            if let Some(max) = self.max_length {
                // " to " + "..., " + the 8 flag letters + " @"
                let fixed = 4 + 5 + 8 + 2;
                if saddr.len() + daddr.len() + tos.len() + ttl.len() + time.len() + fixed > max
                    && limit > 1
                {
                    limit -= 1;
                    continue;
                }
            }
            break;
        }
        format!("{saddr} to {daddr}..., {flags}{tos}{ttl} @{time}")
    }

    /// The `scan` event: details `ports` (every port, the trigger last), `line` (scanlogd's, UTC
    /// time of day), `others` and `flags`.
    pub fn to_event(&self, observer: &str) -> Event {
        Event {
            kind: EventKind::Scan,
            observer: observer.into(),
            offender: Some(self.saddr),
            timestamp: self.at_us.div_euclid(1_000_000),
            details: vec![
                (
                    "ports",
                    Value::Ints(self.all_ports().into_iter().map(i64::from).collect()),
                ),
                ("dst", Value::Str(self.daddr.to_string())),
                ("others", Value::Bool(self.others)),
                ("flags", Value::Str(self.flags())),
                ("line", Value::Str(self.to_string())),
            ],
        }
    }
}

impl fmt::Display for ScanReport {
    /// scanlogd's line, time of day in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line(0))
    }
}

/// The detector: fixed state, sized by [`ScanParams`].
/// The detector's sources as a snapshot keeps them: slots, ports and flood control. Bucket
/// chains are not kept: they depend on this process's hash key and are rebuilt.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanState {
    list_size: usize,
    kept: usize,
    index: usize,
    hosts: Vec<(u32, Host, Vec<u16>)>,
    log_last: Option<i64>,
    log_count: u32,
}

impl ScanDetector {
    pub fn export(&self) -> ScanState {
        ScanState {
            list_size: self.params.list_size,
            kept: self.kept,
            index: self.index,
            hosts: (0..self.hosts.len())
                .filter(|&i| self.hosts[i].used)
                .map(|i| {
                    let n = (self.hosts[i].count as usize).min(self.kept);
                    let ports = self.ports[i * self.kept..i * self.kept + n].to_vec();
                    // The bucket is this process's alone (and the snapshot leaves it out).
                    let host = Host {
                        bucket: 0,
                        ..self.hosts[i]
                    };
                    (i as u32, host, ports)
                })
                .collect(),
            log_last: self.log_last,
            log_count: self.log_count,
        }
    }

    /// Loads a snapshot's sources into a fresh detector with the same list and port sizes
    /// (other settings since: the snapshot is passed over).
    pub fn import(&mut self, state: &ScanState) -> bool {
        if state.list_size != self.params.list_size
            || state.kept != self.kept
            || state.index >= self.params.list_size
        {
            return false;
        }
        let mut seen = vec![false; self.hosts.len()];
        for (slot, host, ports) in &state.hosts {
            let i = *slot as usize;
            // A slot twice would tie its bucket chain into a loop: only the first is taken.
            if i >= self.hosts.len() || seen[i] || !host.used || ports.len() > self.kept {
                continue;
            }
            seen[i] = true;
            let h = self.bucket(&host.saddr);
            self.hosts[i] = Host {
                next: self.buckets[h],
                bucket: h as u32,
                ..*host
            };
            self.buckets[h] = i as u32;
            self.ports[i * self.kept..i * self.kept + ports.len()].copy_from_slice(ports);
        }
        self.index = state.index;
        self.log_last = state.log_last;
        self.log_count = state.log_count;
        true
    }
}

pub struct ScanDetector {
    params: ScanParams,
    kept: usize,
    hosts: Vec<Host>,
    /// `kept` ports per host, flat.
    ports: Vec<u16>,
    buckets: Vec<u32>,
    /// The oldest entry, next to be reused.
    index: usize,
    hasher: KeyedHash,
    /// Flood control: time of the last report counted, and how many in a row.
    log_last: Option<i64>,
    log_count: u32,
    stats: ScanStats,
}

impl ScanDetector {
    /// Panics if `params` do not validate; check them with [`ScanParams::validate`] first.
    pub fn new(params: ScanParams) -> ScanDetector {
        Self::with_hasher(params, KeyedHash::random())
    }

    fn with_hasher(params: ScanParams, hasher: KeyedHash) -> ScanDetector {
        if let Err(e) = params.validate() {
            panic!("scan detector settings: {e}");
        }
        let kept = params.ports_kept();
        ScanDetector {
            kept,
            hosts: vec![
                Host {
                    next: NIL,
                    ..Host::default()
                };
                params.list_size
            ],
            ports: vec![0; params.list_size * kept],
            buckets: vec![NIL; params.hash_size],
            index: 0,
            hasher,
            log_last: None,
            log_count: 0,
            stats: ScanStats::default(),
            params,
        }
    }

    pub fn params(&self) -> &ScanParams {
        &self.params
    }

    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.hosts.iter().filter(|h| h.used).count()
    }

    /// Bytes of state (fixed at construction).
    pub fn memory(&self) -> usize {
        self.hosts.len() * std::mem::size_of::<Host>()
            + self.ports.len() * 2
            + self.buckets.len() * 4
    }

    fn bucket(&self, a: &Addr) -> usize {
        let b = a.bytes();
        let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        (self.hasher.hash(&[hi, lo, a.is_v6() as u64]) as usize) & (self.params.hash_size - 1)
    }

    /// Removes entry `i` from bucket `h`'s chain, if it is there.
    fn unlink_from(&mut self, h: usize, i: u32) {
        let mut prev = NIL;
        let mut cur = self.buckets[h];
        while cur != NIL {
            if cur == i {
                let next = self.hosts[cur as usize].next;
                if prev == NIL {
                    self.buckets[h] = next;
                } else {
                    self.hosts[prev as usize].next = next;
                }
                return;
            }
            prev = cur;
            cur = self.hosts[cur as usize].next;
        }
    }

    /// One packet at time `now_us` (µs). Returns a report when this packet completes a scan
    /// (or the "more follow" line when reports are being held back).
    #[inline(always)]
    pub fn observe(&mut self, p: &Packet, now_us: i64) -> Option<Report> {
        if p.proto != proto::TCP || p.src.bytes() == &[0u8; 16] {
            // scanlogd uses 0.0.0.0 to mean "unused" and ignores it as a source.
            return None;
        }
        let addr = p.src;
        let port = p.dport;
        let fl = p.tcp_flags;
        let h = self.bucket(&addr);

        // Look the source up, counting the others in its bucket; `last` ends as the entry
        // before the match, or (no match) the one before the bucket's tail.
        let mut count = 0usize;
        let mut last = NIL;
        let mut cur = self.buckets[h];
        while cur != NIL {
            let e = &self.hosts[cur as usize];
            if e.saddr == addr {
                break;
            }
            count += 1;
            if e.next != NIL {
                last = cur;
            }
            cur = e.next;
        }

        if cur != NIL {
            let i = cur as usize;
            let ts = self.hosts[i].timestamp;
            if now_us - ts <= self.params.delay_us && now_us >= ts {
                return self.update(i, p, now_us);
            }
            // Known but outdated: forget it (a fresh entry is taken below, so this one is not
            // reused too soon).
            let next = self.hosts[i].next;
            if last != NIL {
                self.hosts[last as usize].next = next;
            } else {
                self.buckets[h] = next;
            }
            self.hosts[i].used = false;
            self.hosts[i].saddr = Addr::default();
            last = NIL;
        }

        // An ACK does not start a source.
        if fl & flags::ACK != 0 {
            return None;
        }

        // A full bucket: drop its oldest (its tail) so crafted addresses cannot lengthen it.
        if count >= self.params.hash_max && last != NIL {
            self.hosts[last as usize].next = NIL;
            self.stats.bucket_drops += 1;
        }

        // Reuse the oldest entry, first taking it out of its bucket if it is still there.
        let idx = self.index;
        // Not `%`: a division a new source, for a wrap once in `list_size`.
        self.index = if idx + 1 == self.params.list_size {
            0
        } else {
            idx + 1
        };
        if self.hosts[idx].used {
            let old = self.hosts[idx];
            if now_us - old.timestamp <= self.params.delay_us && now_us >= old.timestamp {
                self.stats.reused_live += 1;
            }
            self.unlink_from(old.bucket as usize, idx as u32);
        }
        let next = self.buckets[h];
        self.buckets[h] = idx as u32;
        self.hosts[idx] = Host {
            next,
            bucket: h as u32,
            used: true,
            timestamp: now_us,
            start: now_us,
            saddr: addr,
            daddr: p.dst,
            sport: p.sport,
            count: 1,
            weight: self.params.weight(port),
            tos: p.tos,
            ttl: p.ttl,
            flags_or: fl,
            flags_and: fl,
            changing: 0,
        };
        self.ports[idx * self.kept] = port;
        None
    }

    /// A packet from a source seen within the delay.
    fn update(&mut self, i: usize, p: &Packet, now_us: i64) -> Option<Report> {
        let port = p.dport;
        let fl = p.tcp_flags;
        let base = i * self.kept;
        let n = self.hosts[i].count as usize;
        let e = &mut self.hosts[i];
        // A port we hold already: only its flags count.
        if self.ports[base..base + n].contains(&port) {
            e.flags_or |= fl;
            e.flags_and &= fl;
            return None;
        }
        // ACK or RST to a new port: could be one of our own connections.
        if fl & (flags::ACK | flags::RST) != 0 {
            return None;
        }
        e.timestamp = now_us;
        // Reported already: the scan goes on, quietly.
        if e.weight >= self.params.weight_threshold {
            return None;
        }
        e.flags_or |= fl;
        e.flags_and &= fl;
        if e.daddr != p.dst {
            e.changing |= DADDR_CHANGING;
        }
        if e.sport != p.sport {
            e.changing |= SPORT_CHANGING;
        }
        if e.tos != p.tos {
            e.changing |= TOS_CHANGING;
        }
        if e.ttl != p.ttl {
            e.changing |= TTL_CHANGING;
        }
        e.weight += self.params.weight(port);
        if e.weight >= self.params.weight_threshold {
            return self.safe_log(i, port, now_us);
        }
        if n < self.kept {
            self.ports[base + n] = port;
            self.hosts[i].count += 1;
        }
        None
    }

    /// Reports unless flooded: at most LOG_COUNT reports with no more than LOG_DELAY between
    /// each and the previous, then one "more follow", then silence until a LOG_DELAY gap.
    fn safe_log(&mut self, i: usize, trigger: u16, now_us: i64) -> Option<Report> {
        let reset = match self.log_last {
            None => true,
            Some(last) => now_us - last > self.params.log_delay_us || now_us < last,
        };
        if reset {
            self.log_count = 0;
        }
        self.log_count = self.log_count.saturating_add(1);
        if self.log_count <= self.params.log_count.saturating_add(1) {
            self.log_last = Some(now_us);
        }
        if self.log_count <= self.params.log_count {
            self.stats.reports += 1;
            Some(Report::Scan(self.report(i, trigger, now_us)))
        } else if self.log_count == self.params.log_count + 1 {
            self.stats.floods += 1;
            self.stats.suppressed += 1;
            Some(Report::MoreFollow { at_us: now_us })
        } else {
            self.stats.suppressed += 1;
            None
        }
    }

    fn report(&self, i: usize, trigger: u16, now_us: i64) -> ScanReport {
        let e = &self.hosts[i];
        let base = i * self.kept;
        ScanReport {
            saddr: e.saddr,
            daddr: e.daddr,
            others: e.changing & DADDR_CHANGING != 0,
            sport: (e.changing & SPORT_CHANGING == 0).then_some(e.sport),
            ports: self.ports[base..base + e.count as usize].to_vec(),
            trigger_port: trigger,
            flags_or: e.flags_or,
            flags_and: e.flags_and,
            tos: (e.changing & TOS_CHANGING == 0).then_some(e.tos),
            ttl: (e.changing & TTL_CHANGING == 0).then_some(e.ttl),
            start_us: e.start,
            at_us: now_us,
            max_length: self.params.log_max_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = flags::SYN;
    const S: i64 = 1_000_000;

    fn pkt(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, fl: u8) -> Packet {
        let mut p = crate::detect::test_packet();
        p.src = Addr::v4(src);
        p.dst = Addr::v4(dst);
        p.sport = sport;
        p.dport = dport;
        p.tcp_flags = fl;
        p.ttl = 64;
        p.tos = 0;
        p
    }

    const A: [u8; 4] = [203, 0, 113, 7];
    const D: [u8; 4] = [198, 51, 100, 10];

    /// Sends SYNs to `ports` from `src`, `gap` µs apart from `t0`; returns the reports.
    fn scan(d: &mut ScanDetector, src: [u8; 4], ports: &[u16], t0: i64, gap: i64) -> Vec<Report> {
        let mut out = Vec::new();
        for (k, &port) in ports.iter().enumerate() {
            if let Some(r) = d.observe(&pkt(src, D, 40000, port, SYN), t0 + k as i64 * gap) {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn a_scan_goes_on_across_a_snapshot() {
        // Four ports before the snapshot, three after it: one scan of seven.
        let mut d = ScanDetector::new(ScanParams::default());
        assert!(scan(&mut d, A, &[21, 22, 23, 25], 0, S / 10).is_empty());
        let mut state = d.export();
        let mut fresh = ScanDetector::new(ScanParams::default());
        assert!(fresh.import(&state));
        assert_eq!(fresh.export(), state);
        let r = scan(&mut fresh, A, &[80, 110, 143], S, S / 10);
        assert_eq!(r.len(), 1, "{r:?}");
        // A crafted snapshot naming one slot twice must not tie a bucket chain into a loop.
        let dup = state.hosts[0].clone();
        state.hosts.push(dup);
        let mut other = ScanDetector::new(ScanParams::default());
        assert!(other.import(&state));
        assert!(scan(&mut other, [203, 0, 113, 8], &[1, 2, 3], 0, 1).is_empty());
        // Other list sizes: passed over.
        let small = ScanParams {
            list_size: 16,
            ..ScanParams::default()
        };
        assert!(!ScanDetector::new(small).import(&state));
    }

    #[test]
    fn defaults_are_scanlogds() {
        let p = ScanParams::default();
        assert_eq!(
            (p.port_weight_priv, p.port_weight_high, p.weight_threshold),
            (3, 1, 21)
        );
        assert_eq!(
            (p.delay_us, p.log_count, p.log_delay_us),
            (3 * S, 5, 20 * S)
        );
        assert_eq!((p.list_size, p.hash_size, p.hash_max), (256, 512, 16));
        assert_eq!(p.log_max_length, Some(120));
        assert_eq!(p.ports_kept(), 20);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn seven_privileged_ports_make_a_scan() {
        let mut d = ScanDetector::new(ScanParams::default());
        let r = scan(&mut d, A, &[21, 22, 23, 25, 53, 80], 10 * S, 100_000);
        assert!(r.is_empty(), "six ports weigh 18");
        let r = d
            .observe(&pkt(A, D, 40000, 110, SYN), 11 * S)
            .expect("seventh");
        let Report::Scan(s) = r else { panic!() };
        assert_eq!(s.ports, vec![21, 22, 23, 25, 53, 80]);
        assert_eq!(s.trigger_port, 110);
        assert_eq!(s.all_ports().len(), 7);
        assert_eq!(
            s.line(0),
            "203.0.113.7:40000 to 198.51.100.10 ports 21, 22, 23, 25, 53, 80, ..., fSrpauxy, TOS 00, TTL 64 @00:00:10"
        );
        // Reported once: more ports from the same scan say nothing.
        assert!(scan(&mut d, A, &[111, 112, 113], 11 * S, 1000).is_empty());
        assert_eq!(d.stats().reports, 1);
    }

    #[test]
    fn twenty_one_high_ports_make_a_scan() {
        let mut d = ScanDetector::new(ScanParams::default());
        let ports: Vec<u16> = (5000..5021).collect();
        let r = scan(&mut d, A, &ports, 0, 1000);
        assert_eq!(r.len(), 1);
        let Report::Scan(s) = &r[0] else { panic!() };
        assert_eq!(s.ports.len(), 20);
        assert_eq!(s.trigger_port, 5020);
    }

    #[test]
    fn mixed_weights_cross_at_the_boundary() {
        // 1020..1023 weigh 3 each (12), then 9 high ports: the 13th packet reaches 21.
        let mut d = ScanDetector::new(ScanParams::default());
        let ports: Vec<u16> = (1020..1040).collect();
        let mut seen = None;
        for (k, &port) in ports.iter().enumerate() {
            if let Some(Report::Scan(s)) = d.observe(&pkt(A, D, 1, port, SYN), k as i64) {
                seen = Some((k, s));
                break;
            }
        }
        let (k, s) = seen.expect("a scan");
        assert_eq!(k, 12);
        assert_eq!(s.trigger_port, 1032);
    }

    #[test]
    fn three_second_rule() {
        let mut d = ScanDetector::new(ScanParams::default());
        // Exactly 3 s apart still counts (scanlogd: `now - timestamp <= delay`).
        let r = scan(&mut d, A, &[1, 2, 3, 4, 5, 6, 7], 0, 3 * S);
        assert_eq!(r.len(), 1);
        // Just over 3 s: every port starts the source over.
        let b = [203, 0, 113, 8];
        let r = scan(
            &mut d,
            b,
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            100 * S,
            3 * S + 1,
        );
        assert!(r.is_empty());
    }

    #[test]
    fn repeated_port_does_not_refresh_the_timer() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mut t = 0;
        for port in [1u16, 2, 3] {
            assert!(d.observe(&pkt(A, D, 1, port, SYN), t).is_none());
            t += S;
        }
        // The same port again 2.5 s later does not refresh the timestamp of the last new port...
        assert!(d.observe(&pkt(A, D, 1, 3, SYN), t + S / 2).is_none());
        // ...so a new port 3.5 s after the last new one starts over.
        t += 5 * S / 2;
        for port in [4u16, 5, 6, 7] {
            assert!(d.observe(&pkt(A, D, 1, port, SYN), t).is_none());
            t += S / 10;
        }
        assert_eq!(d.stats().reports, 0);
    }

    #[test]
    fn ack_and_rst_to_new_ports_are_ignored() {
        let mut d = ScanDetector::new(ScanParams::default());
        assert!(d.observe(&pkt(A, D, 1, 80, flags::ACK), 0).is_none());
        assert_eq!(d.tracked(), 0, "an ACK does not start a source");
        // A lone RST does start one (scanlogd only refuses ACK there).
        assert!(d.observe(&pkt(A, D, 1, 80, flags::RST), 0).is_none());
        assert_eq!(d.tracked(), 1);
        for port in 1..20u16 {
            let fl = if port % 2 == 0 {
                flags::ACK
            } else {
                flags::RST
            };
            assert!(d.observe(&pkt(A, D, 1, port, fl), 1).is_none());
        }
        assert_eq!(d.stats().reports, 0);
    }

    #[test]
    fn flags_tos_ttl_sport_and_others() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mut last = None;
        for (k, port) in [1u16, 2, 3, 4, 5, 6, 7].into_iter().enumerate() {
            let mut p = pkt(
                A,
                D,
                40000 + k as u16 % 2,
                port,
                SYN | if k == 3 { 0x01 } else { 0 },
            );
            p.ttl = 50 + k as u8;
            if k == 5 {
                p.dst = Addr::v4([198, 51, 100, 11]);
            }
            last = d.observe(&p, k as i64 * 1000);
        }
        let Some(Report::Scan(s)) = last else {
            panic!("scan expected")
        };
        assert_eq!(s.flags(), "?Srpauxy");
        assert_eq!(s.sport, None);
        assert_eq!(s.ttl, None);
        assert_eq!(s.tos, Some(0));
        assert!(s.others);
        assert_eq!(
            s.line(3600),
            "203.0.113.7 to 198.51.100.10 and others, ports 1, 2, 3, 4, 5, 6, ..., ?Srpauxy, TOS 00 @01:00:00"
        );
    }

    #[test]
    fn flags_of_repeated_ports_are_merged() {
        let mut d = ScanDetector::new(ScanParams::default());
        d.observe(&pkt(A, D, 1, 1, SYN), 0);
        // An ACK to a port already held only merges flags.
        d.observe(&pkt(A, D, 1, 1, SYN | flags::ACK), 1);
        let r = scan(&mut d, A, &[2, 3, 4, 5, 6, 7], 2, 1);
        let Report::Scan(s) = &r[0] else { panic!() };
        assert_eq!(s.flags(), "fSrp?uxy");
    }

    #[test]
    fn long_lines_drop_ports_like_scanlogd() {
        let mut d = ScanDetector::new(ScanParams::default());
        let ports: Vec<u16> = (50000..50021).collect();
        let r = scan(&mut d, A, &ports, 0, 1);
        let Report::Scan(s) = &r[0] else { panic!() };
        assert_eq!(s.ports.len(), 20);
        let line = s.line(0);
        // scanlogd: s_saddr 17 + s_daddr + 8 (tos) + 8 (ttl) + 8 (time) + 19 must stay ≤ 120,
        // so s_daddr ≤ 60: "198.51.100.10 ports " (20) + 5 ports of 7 = 55, a sixth makes 62.
        assert_eq!(
            line,
            "203.0.113.7:40000 to 198.51.100.10 ports 50000, 50001, 50002, 50003, 50004, ..., fSrpauxy, TOS 00, TTL 64 @00:00:00"
        );
        // Without a limit every port is listed.
        let mut d = ScanDetector::new(ScanParams {
            log_max_length: None,
            ..ScanParams::default()
        });
        let r = scan(&mut d, A, &ports, 0, 1);
        let Report::Scan(s) = &r[0] else { panic!() };
        assert!(s.line(0).contains("50019, ..., "));
    }

    #[test]
    fn flood_control_five_then_more_then_quiet() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mut out = Vec::new();
        for k in 0..8u8 {
            out.extend(scan(
                &mut d,
                [203, 0, 113, 20 + k],
                &[1, 2, 3, 4, 5, 6, 7],
                k as i64 * S,
                1,
            ));
        }
        assert_eq!(out.len(), 6);
        assert!(out[..5].iter().all(|r| matches!(r, Report::Scan(_))));
        assert_eq!(out[5], Report::MoreFollow { at_us: 5 * S + 6 });
        assert_eq!(out[5].to_string(), MORE_FOLLOW);
        assert_eq!(d.stats().suppressed, 3);
        // The 8th was at 7 s; the last counted report (the "more" line) at 5 s. 20 s after it a
        // scan is reported again.
        let r = scan(
            &mut d,
            [203, 0, 113, 40],
            &[1, 2, 3, 4, 5, 6, 7],
            25 * S + 7,
            1,
        );
        assert!(matches!(r[..], [Report::Scan(_)]));
        // A quiet time of exactly 20 s does not reset (scanlogd: `now - last > delay`).
        let mut d = ScanDetector::new(ScanParams::default());
        let mut n = 0;
        for k in 0..7u8 {
            let t = k as i64 * 20 * S;
            n += scan(&mut d, [203, 0, 113, 20 + k], &[1, 2, 3, 4, 5, 6, 7], t, 0).len();
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn outdated_source_starts_over_and_reports_again() {
        let mut d = ScanDetector::new(ScanParams::default());
        assert_eq!(scan(&mut d, A, &[1, 2, 3, 4, 5, 6, 7], 0, 1).len(), 1);
        // Five seconds later the same source scans again: a new entry, a new report.
        assert_eq!(
            scan(&mut d, A, &[8, 9, 10, 11, 12, 13, 14], 5 * S, 1).len(),
            1
        );
        assert_eq!(d.tracked(), 1, "the outdated entry was freed");
    }

    #[test]
    fn list_is_bounded_and_oldest_is_reused() {
        let mut d = ScanDetector::new(ScanParams::default());
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            d.observe(&pkt([10, b[1], b[2], b[3]], D, 1, 80, SYN), i as i64);
        }
        assert_eq!(d.tracked(), 256);
        assert!(d.stats().reused_live > 9000);
        // The sources still tracked are the 256 newest.
        let mut d2 = ScanDetector::new(ScanParams::default());
        for i in 0..300u32 {
            let b = i.to_be_bytes();
            d2.observe(&pkt([10, 0, b[2], b[3]], D, 1, 80, SYN), 0);
        }
        // The first source's entry was reused: its next ports start over (no scan after 6 more).
        let r = scan(&mut d2, [10, 0, 0, 0], &[1, 2, 3, 4, 5, 6], 1, 1);
        assert!(r.is_empty());
        // The newest source is still tracked: 6 more privileged ports complete its scan.
        let b = 299u32.to_be_bytes();
        let r = scan(&mut d2, [10, 0, b[2], b[3]], &[1, 2, 3, 4, 5, 6], 1, 1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_full_bucket_drops_its_oldest() {
        // One bucket: every source collides.
        let mut d = ScanDetector::new(ScanParams {
            hash_size: 1,
            ..ScanParams::default()
        });
        for i in 0..40u8 {
            d.observe(&pkt([10, 0, 0, i], D, 1, 80, SYN), 0);
        }
        let mut n = 0;
        let mut cur = d.buckets[0];
        while cur != NIL {
            n += 1;
            cur = d.hosts[cur as usize].next;
        }
        assert_eq!(n, 16, "HASH_MAX entries per bucket");
        assert!(d.stats().bucket_drops > 0);
        // The newest source is found and completes its scan.
        let r = scan(&mut d, [10, 0, 0, 39], &[1, 2, 3, 4, 5, 6], 0, 0);
        assert_eq!(r.len(), 1);
        // An old one was dropped from the bucket: it starts over.
        let r = scan(&mut d, [10, 0, 0, 0], &[1, 2, 3, 4, 5, 6], 0, 0);
        assert!(r.is_empty());
    }

    #[test]
    fn spoofed_flood_is_cheap_and_bounded() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mem = d.memory();
        let mut x = 0x1234_5678u32;
        let start = std::time::Instant::now();
        for i in 0..1_000_000i64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d.observe(&pkt(x.to_be_bytes(), D, 1, (x >> 16) as u16, SYN), i);
        }
        assert_eq!(d.memory(), mem);
        assert!(mem < 64 * 1024, "{mem}");
        assert_eq!(d.stats().reports, 0);
        // Generous: a debug build does a million lookups in well under this.
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn other_protocols_and_unspecified_sources_are_ignored() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mut p = pkt(A, D, 1, 80, SYN);
        p.proto = proto::UDP;
        for port in 1..30 {
            p.dport = port;
            assert!(d.observe(&p, 0).is_none());
        }
        let r = scan(&mut d, [0, 0, 0, 0], &[1, 2, 3, 4, 5, 6, 7], 0, 1);
        assert!(r.is_empty());
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn ipv6_sources_work_and_print_in_brackets() {
        let mut d = ScanDetector::new(ScanParams::default());
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[15] = 7;
        let mut dst = src;
        dst[15] = 0x10;
        let mut last = None;
        for port in 1..=7u16 {
            let mut p = pkt(A, D, 5555, port, SYN);
            p.src = Addr::v6(src);
            p.dst = Addr::v6(dst);
            last = d.observe(&p, 0);
        }
        let Some(Report::Scan(s)) = last else {
            panic!()
        };
        assert!(s
            .line(0)
            .starts_with("[2001:db8::7]:5555 to 2001:db8::10 ports 1, "));
    }

    #[test]
    fn event_carries_ports_and_line() {
        let mut d = ScanDetector::new(ScanParams::default());
        let r = scan(&mut d, A, &[1, 2, 3, 4, 5, 6, 7], 1_700_000_000 * S, 1);
        let Report::Scan(s) = &r[0] else { panic!() };
        let e = s.to_event("eth0");
        assert_eq!(e.kind, EventKind::Scan);
        assert_eq!(e.timestamp, 1_700_000_000);
        assert_eq!(
            e.detail("ports"),
            Some(&Value::Ints(vec![1, 2, 3, 4, 5, 6, 7]))
        );
        let json = e.to_json();
        assert!(json.starts_with(r#"{"type":"scan","observer":"eth0","offender":"203.0.113.7","timestamp":1700000000,"details":{"ports":[1,2,3,4,5,6,7]"#), "{json}");
        assert!(json.contains(r#""line":"203.0.113.7:40000 to 198.51.100.10 ports 1, 2, 3, 4, 5, 6, ..., fSrpauxy, TOS 00, TTL 64 @22:13:20"}"#), "{json}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for p in [
            ScanParams {
                port_weight_high: 0,
                ..ScanParams::default()
            },
            ScanParams {
                weight_threshold: 1,
                ..ScanParams::default()
            },
            ScanParams {
                hash_size: 500,
                ..ScanParams::default()
            },
            ScanParams {
                list_size: 0,
                ..ScanParams::default()
            },
            ScanParams {
                hash_max: 0,
                ..ScanParams::default()
            },
            ScanParams {
                delay_us: 0,
                ..ScanParams::default()
            },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}
