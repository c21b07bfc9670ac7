//! Reading one v9/IPFIX data record through its template: the few information elements a
//! sensor needs (RFC 7012 numbering, which v9's field types share below 128), then absolute
//! times from whichever clock the exporter used.

use super::templates::{Template, VARIABLE};
use super::{uptime_to_unix_ms, Flow};
use crate::addr::Addr;
use crate::proto;

/// RFC 5103's enterprise number for the reverse direction of a biflow.
const REVERSE_PEN: u32 = 29_305;

/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_UNIX: i64 = 2_208_988_800;

/// The fields of one record we care about, as found.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Raw {
    src4: Option<[u8; 4]>,
    dst4: Option<[u8; 4]>,
    src6: Option<[u8; 16]>,
    dst6: Option<[u8; 16]>,
    sport: u16,
    dport: u16,
    proto: u8,
    tcp_flags: u8,
    icmp_type_code: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    packets: Option<u64>,
    bytes: Option<u64>,
    total_packets: Option<u64>,
    total_bytes: Option<u64>,
    first_up: Option<u32>,
    last_up: Option<u32>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    first_delta_us: Option<u32>,
    last_delta_us: Option<u32>,
    /// systemInitTimeMilliseconds (an options record usually carries it).
    pub init_ms: Option<i64>,
    /// A biflow's reverse direction (RFC 5103).
    rev_packets: Option<u64>,
    rev_bytes: Option<u64>,
    rev_tcp_flags: u8,
    rev_icmp_type_code: Option<u16>,
}

/// An unsigned number in 1 to 8 bytes (RFC 7011 reduced-size encoding).
fn uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    Some(b.iter().fold(0u64, |n, &x| n << 8 | x as u64))
}

/// NTP timestamp (seconds since 1900, 32-bit fraction) as Unix milliseconds.
fn ntp_ms(v: u64) -> i64 {
    let secs = (v >> 32) as i64 - NTP_UNIX;
    let frac = ((v & 0xffff_ffff) * 1000) >> 32;
    secs * 1000 + frac as i64
}

/// Reads one record at the start of `b`; returns it and the bytes it took, or `None` when
/// `b` ends inside it.
pub(super) fn read(t: &Template, b: &[u8]) -> Option<(Raw, usize)> {
    let mut r = Raw::default();
    let mut at = 0usize;
    for f in &t.fields {
        let len = if f.len == VARIABLE {
            let first = *b.get(at)? as usize;
            at += 1;
            if first == 255 {
                let l = b.get(at..at + 2)?;
                at += 2;
                u16::from_be_bytes([l[0], l[1]]) as usize
            } else {
                first
            }
        } else {
            f.len as usize
        };
        let v = b.get(at..at.checked_add(len)?)?;
        at += len;
        if f.pen == REVERSE_PEN {
            let n = uint(v);
            match f.id {
                1 | 85 => r.rev_bytes = n,
                2 | 86 => r.rev_packets = n,
                6 => r.rev_tcp_flags = n.unwrap_or(0) as u8,
                32 | 139 => r.rev_icmp_type_code = n.map(|x| x as u16),
                _ => {}
            }
            continue;
        }
        if f.pen != 0 {
            continue;
        }
        let arr4 = || <[u8; 4]>::try_from(v).ok();
        let arr16 = || <[u8; 16]>::try_from(v).ok();
        let n = uint(v);
        match f.id {
            1 => r.bytes = n,
            2 => r.packets = n,
            85 => r.total_bytes = n,
            86 => r.total_packets = n,
            4 => r.proto = n.unwrap_or(0) as u8,
            // tcpControlBits: one byte in v9, two in IPFIX; the flags we read are the low byte.
            6 => r.tcp_flags = n.unwrap_or(0) as u8,
            7 => r.sport = n.unwrap_or(0) as u16,
            11 => r.dport = n.unwrap_or(0) as u16,
            8 => r.src4 = arr4(),
            12 => r.dst4 = arr4(),
            27 => r.src6 = arr16(),
            28 => r.dst6 = arr16(),
            32 | 139 => r.icmp_type_code = n.map(|x| x as u16),
            176 | 178 => r.icmp_type = n.map(|x| x as u8),
            177 | 179 => r.icmp_code = n.map(|x| x as u8),
            22 => r.first_up = n.map(|x| x as u32),
            21 => r.last_up = n.map(|x| x as u32),
            150 => r.first_ms = n.map(|s| s as i64 * 1000),
            151 => r.last_ms = n.map(|s| s as i64 * 1000),
            152 => r.first_ms = n.and_then(|s| i64::try_from(s).ok()),
            153 => r.last_ms = n.and_then(|s| i64::try_from(s).ok()),
            154 | 156 => r.first_ms = n.filter(|_| len == 8).map(ntp_ms),
            155 | 157 => r.last_ms = n.filter(|_| len == 8).map(ntp_ms),
            158 => r.first_delta_us = n.map(|x| x as u32),
            159 => r.last_delta_us = n.map(|x| x as u32),
            160 => r.init_ms = n.and_then(|s| i64::try_from(s).ok()),
            _ => {}
        }
    }
    Some((r, at))
}

/// The clocks a record's times may be relative to.
#[derive(Clone, Copy, Debug)]
pub(super) struct TimeBase {
    /// The datagram's export time, Unix milliseconds.
    pub export_ms: i64,
    /// v9: the exporter's uptime at export.
    pub uptime_ms: Option<u32>,
    /// IPFIX: the exporter's system init time, when known.
    pub init_ms: Option<i64>,
}

impl TimeBase {
    fn uptime_time(&self, rel: u32, init_in_record: Option<i64>) -> Option<i64> {
        if let Some(up) = self.uptime_ms {
            return Some(uptime_to_unix_ms(self.export_ms, up, rel));
        }
        let init = init_in_record.or(self.init_ms)?;
        // The uptime at export, modulo 2^32 as the field is, so a wrapped field still works.
        let up = self.export_ms.wrapping_sub(init) as u32;
        Some(uptime_to_unix_ms(self.export_ms, up, rel))
    }
}

/// The flow a data record describes; `None` when it names no addresses or no time can be
/// made of it.
pub(super) fn to_flow(r: &Raw, exporter: Addr, base: &TimeBase) -> Option<Flow> {
    let (src, dst) = match (r.src4, r.dst4, r.src6, r.dst6) {
        (Some(s), Some(d), _, _) => (Addr::v4(s), Addr::v4(d)),
        (_, _, Some(s), Some(d)) => (Addr::v6(s), Addr::v6(d)),
        _ => return None,
    };
    let delta = |us: u32| base.export_ms - (us / 1000) as i64;
    let first = r
        .first_ms
        .or_else(|| r.first_up.and_then(|u| base.uptime_time(u, r.init_ms)))
        .or_else(|| r.first_delta_us.map(delta))?;
    let last = r
        .last_ms
        .or_else(|| r.last_up.and_then(|u| base.uptime_time(u, r.init_ms)))
        .or_else(|| r.last_delta_us.map(delta))
        .unwrap_or(first);
    let icmp_proto = r.proto == proto::ICMP || r.proto == proto::ICMPV6;
    let icmp = if !icmp_proto {
        None
    } else if let Some(tc) = r.icmp_type_code {
        Some(((tc >> 8) as u8, tc as u8))
    } else if let Some(t) = r.icmp_type {
        Some((t, r.icmp_code.unwrap_or(0)))
    } else {
        Some(super::icmp_from_ports(r.sport, r.dport))
    };
    let (sport, dport) = if proto::has_ports(r.proto) {
        (r.sport, r.dport)
    } else {
        (0, 0)
    };
    Some(Flow {
        exporter,
        src,
        dst,
        sport,
        dport,
        proto: r.proto,
        tcp_flags: if r.proto == proto::TCP {
            r.tcp_flags
        } else {
            0
        },
        icmp,
        packets: r.packets.or(r.total_packets).unwrap_or(0),
        bytes: r.bytes.or(r.total_bytes).unwrap_or(0),
        first_ms: first,
        last_ms: last.max(first),
    })
}

/// The reverse direction of a biflow record, when it saw packets: the endpoints swapped, the
/// reverse counters and flags, the record's times (RFC 5103 gives the reverse no times of
/// its own unless reverse time elements are sent, which we do not read).
pub(super) fn reverse(r: &Raw, fwd: &Flow) -> Option<Flow> {
    let packets = r.rev_packets.filter(|&p| p > 0)?;
    let icmp = fwd.icmp.map(|_| match r.rev_icmp_type_code {
        Some(tc) => ((tc >> 8) as u8, tc as u8),
        None => (0, 0),
    });
    Some(Flow {
        src: fwd.dst,
        dst: fwd.src,
        sport: fwd.dport,
        dport: fwd.sport,
        tcp_flags: if fwd.proto == proto::TCP {
            r.rev_tcp_flags
        } else {
            0
        },
        icmp,
        packets,
        bytes: r.rev_bytes.unwrap_or(0),
        ..*fwd
    })
}
