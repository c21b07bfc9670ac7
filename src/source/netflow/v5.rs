//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records, IPv4 only. First and last
//! switched are the router's uptime in milliseconds; the header says the uptime and the Unix
//! time at export, from which absolute times follow (see [`super::uptime_to_unix_ms`]).

use super::{be16, be32, uptime_to_unix_ms, Counters, Flow};
use crate::addr::Addr;
use crate::proto;

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco's maximum records per datagram.
pub const MAX_COUNT: usize = 30;

/// The header of a v5 datagram (checked to be whole).
#[derive(Clone, Copy, Debug)]
pub struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    pub fn new_checked(b: &'a [u8]) -> Option<Header<'a>> {
        (b.len() >= HEADER_LEN).then_some(Header(b))
    }
    pub fn version(&self) -> u16 {
        be16(self.0, 0)
    }
    pub fn count(&self) -> usize {
        be16(self.0, 2) as usize
    }
    pub fn sys_uptime(&self) -> u32 {
        be32(self.0, 4)
    }
    pub fn unix_secs(&self) -> u32 {
        be32(self.0, 8)
    }
    pub fn unix_nsecs(&self) -> u32 {
        be32(self.0, 12)
    }
    pub fn flow_sequence(&self) -> u32 {
        be32(self.0, 16)
    }
    /// Export time in Unix milliseconds.
    pub fn export_ms(&self) -> i64 {
        self.unix_secs() as i64 * 1000 + (self.unix_nsecs().min(999_999_999) / 1_000_000) as i64
    }
}

/// One 48-byte flow record.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a>(&'a [u8]);

impl<'a> Record<'a> {
    pub fn new_checked(b: &'a [u8]) -> Option<Record<'a>> {
        (b.len() >= RECORD_LEN).then_some(Record(b))
    }
    pub fn src(&self) -> [u8; 4] {
        be32(self.0, 0).to_be_bytes()
    }
    pub fn dst(&self) -> [u8; 4] {
        be32(self.0, 4).to_be_bytes()
    }
    pub fn packets(&self) -> u32 {
        be32(self.0, 16)
    }
    pub fn octets(&self) -> u32 {
        be32(self.0, 20)
    }
    pub fn first(&self) -> u32 {
        be32(self.0, 24)
    }
    pub fn last(&self) -> u32 {
        be32(self.0, 28)
    }
    pub fn sport(&self) -> u16 {
        be16(self.0, 32)
    }
    pub fn dport(&self) -> u16 {
        be16(self.0, 34)
    }
    pub fn tcp_flags(&self) -> u8 {
        self.0[37]
    }
    pub fn proto(&self) -> u8 {
        self.0[38]
    }
}

pub fn decode(exporter: Addr, b: &[u8], c: &mut Counters, emit: &mut dyn FnMut(Flow)) {
    let Some(h) = Header::new_checked(b) else {
        c.truncated += 1;
        return;
    };
    let count = h.count();
    if count == 0 || count > MAX_COUNT {
        c.bad_length += 1;
        return;
    }
    if b.len() < HEADER_LEN + count * RECORD_LEN {
        // The count claims more records than the datagram carries: trust none of it.
        c.truncated += 1;
        return;
    }
    let at = h.export_ms();
    let up = h.sys_uptime();
    for i in 0..count {
        let off = HEADER_LEN + i * RECORD_LEN;
        let Some(r) = Record::new_checked(&b[off..]) else {
            break;
        };
        let p = r.proto();
        let icmp = (p == proto::ICMP || p == proto::ICMPV6)
            .then(|| super::icmp_from_ports(r.sport(), r.dport()));
        let ported = proto::has_ports(p);
        let first_ms = uptime_to_unix_ms(at, up, r.first());
        c.records += 1;
        emit(Flow {
            exporter,
            src: Addr::v4(r.src()),
            dst: Addr::v4(r.dst()),
            sport: if ported { r.sport() } else { 0 },
            dport: if ported { r.dport() } else { 0 },
            proto: p,
            tcp_flags: if p == proto::TCP { r.tcp_flags() } else { 0 },
            icmp,
            packets: r.packets() as u64,
            bytes: r.octets() as u64,
            first_ms,
            last_ms: uptime_to_unix_ms(at, up, r.last()).max(first_ms),
        });
    }
}
