//! NetFlow v5, v9 and IPFIX (RFC 7011) from routers: typed views over the bytes of each
//! datagram (as smoltcp's `wire` types are over packets), a bounded cache of the v9/IPFIX
//! templates each exporter announced, and one small plain [`Flow`] per data record.
//!
//! Every datagram is written by whoever can reach our UDP port, so nothing here trusts a
//! length, a count or a template: what cannot be read is skipped and counted in
//! [`Counters`], never a panic, and the templates an exporter may make us keep are bounded.
//!
//! Written here rather than taken from a crate: the NetFlow parser crates seen were not well
//! kept (old releases, open panics on bad input, or unbounded template maps), and the part of
//! the formats a sensor needs is small.

mod fields;
pub mod ipfix;
pub mod listen;
pub mod templates;
pub mod v5;
pub mod v9;

use crate::addr::Addr;
pub use templates::TemplateCache;

/// One unidirectional flow as an exporter reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The address the datagram came from: the flow's observer.
    pub exporter: Addr,
    pub src: Addr,
    pub dst: Addr,
    /// Ports; 0 for protocols without them.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// OR of the TCP flags of the flow's packets.
    pub tcp_flags: u8,
    /// ICMP/ICMPv6 type and code when the record says them (a field, or the destination
    /// port as Cisco encodes them: type × 256 + code).
    pub icmp: Option<(u8, u8)>,
    pub packets: u64,
    /// IP bytes, headers included.
    pub bytes: u64,
    /// First and last packet, Unix milliseconds.
    pub first_ms: i64,
    pub last_ms: i64,
}

/// What the decoder saw and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub datagrams: u64,
    /// Flow records decoded.
    pub records: u64,
    /// Packets those records stand for.
    pub packets: u64,
    /// Datagrams or sets cut short (shorter than their header or their records).
    pub truncated: u64,
    /// Datagrams of a version other than 5, 9 and 10.
    pub bad_version: u64,
    /// Length or count fields that contradict the datagram (a lying length).
    pub bad_length: u64,
    /// Data records whose template we do not hold (data before its template).
    pub no_template: u64,
    /// Templates refused: bad id, no fields, too many fields, cut short.
    pub bad_template: u64,
    /// Templates learned or refreshed.
    pub templates: u64,
    /// Templates pushed out of the full cache (the oldest first).
    pub template_evictions: u64,
    /// New templates refused because their exporter and domain hold too many (a flood).
    pub template_flood: u64,
    /// Options records read (exporter metadata, not flows).
    pub options_records: u64,
    /// Records with no usable addresses or times (no source/destination, a relative time
    /// with no known base).
    pub unusable: u64,
    /// Set ids that are reserved or unknown.
    pub unknown_sets: u64,
    /// Records the sensor thread could not take in time (its queue was full).
    pub queue_drops: u64,
}

impl Counters {
    /// Everything skipped, whatever the reason.
    pub fn skipped(&self) -> u64 {
        self.truncated
            + self.bad_version
            + self.bad_length
            + self.no_template
            + self.bad_template
            + self.template_flood
            + self.unusable
            + self.unknown_sets
            + self.queue_drops
    }

    /// `name value` pairs, for the summary line and the metrics.
    pub fn pairs(&self) -> [(&'static str, u64); 15] {
        [
            ("datagrams", self.datagrams),
            ("records", self.records),
            ("packets", self.packets),
            ("truncated", self.truncated),
            ("bad_version", self.bad_version),
            ("bad_length", self.bad_length),
            ("no_template", self.no_template),
            ("bad_template", self.bad_template),
            ("templates", self.templates),
            ("template_evictions", self.template_evictions),
            ("template_flood", self.template_flood),
            ("options_records", self.options_records),
            ("unusable", self.unusable),
            ("unknown_sets", self.unknown_sets),
            ("queue_drops", self.queue_drops),
        ]
    }
}

/// Decodes datagrams from any number of exporters; owns their templates.
pub struct Decoder {
    pub templates: TemplateCache,
    pub counters: Counters,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            templates: TemplateCache::new(
                crate::policy::NETFLOW_TEMPLATES,
                crate::policy::NETFLOW_TEMPLATES_PER_SOURCE,
            ),
            counters: Counters::default(),
        }
    }

    /// One datagram from `exporter`; each flow record it holds goes to `emit`.
    pub fn decode(&mut self, exporter: Addr, datagram: &[u8], emit: &mut dyn FnMut(Flow)) {
        self.counters.datagrams += 1;
        let Some(version) = datagram.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            self.counters.truncated += 1;
            return;
        };
        let c = &mut self.counters;
        let mut packets = 0u64;
        let emit = &mut |f: Flow| {
            packets = packets.saturating_add(f.packets);
            emit(f)
        };
        match version {
            5 => v5::decode(exporter, datagram, c, emit),
            9 => v9::decode(exporter, datagram, &mut self.templates, c, emit),
            10 => ipfix::decode(exporter, datagram, &mut self.templates, c, emit),
            _ => c.bad_version += 1,
        }
        c.packets = c.packets.saturating_add(packets);
    }
}

/// ICMP type and code from the ports of a record that has no ICMP field. Cisco puts
/// type × 256 + code in the destination port; some exporters swap the two bytes (fprobe) or
/// use the source port. An echo reply (type 0) always has code 0, so a zero high byte with a
/// non-zero low byte can only be swapped.
pub(crate) fn icmp_from_ports(sport: u16, dport: u16) -> (u8, u8) {
    let p = if dport == 0 { sport } else { dport };
    let (hi, lo) = ((p >> 8) as u8, p as u8);
    if hi == 0 && lo != 0 {
        (lo, 0)
    } else {
        (hi, lo)
    }
}

/// Big-endian reads at a fixed offset of a slice the caller has checked is long enough.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An absolute time from a time relative to the exporter's uptime: `uptime_ms` is the uptime
/// when `at_ms` (Unix ms) was stamped, `rel_ms` the uptime of the event. Both wrap at 2³² ms
/// (49.7 days); the difference is taken modulo 2³², as a signed 32-bit number so that a
/// time a little after the stamp (a router's clock running on) is not read as 49 days ago.
#[inline]
pub fn uptime_to_unix_ms(at_ms: i64, uptime_ms: u32, rel_ms: u32) -> i64 {
    at_ms - uptime_ms.wrapping_sub(rel_ms) as i32 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_type_from_ports_either_byte_order() {
        assert_eq!(icmp_from_ports(0, 8 << 8), (8, 0));
        assert_eq!(icmp_from_ports(0, 3 << 8 | 3), (3, 3));
        assert_eq!(icmp_from_ports(0, 8), (8, 0)); // fprobe's byte order
        assert_eq!(icmp_from_ports(0, 0), (0, 0));
        assert_eq!(icmp_from_ports(13 << 8, 0), (13, 0));
    }

    #[test]
    fn uptime_arithmetic_wraps() {
        let at = 1_700_000_000_000;
        assert_eq!(uptime_to_unix_ms(at, 10_000, 4_000), at - 6_000);
        // The uptime wrapped after the flow began: first is near 2^32, uptime small.
        assert_eq!(uptime_to_unix_ms(at, 1_000, u32::MAX - 999), at - 2_000);
        // A last-switched time just after the header's stamp.
        assert_eq!(uptime_to_unix_ms(at, 5_000, 5_250), at + 250);
    }
}
