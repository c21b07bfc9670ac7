//! IPv4 and IPv6, with IPv6 extension headers walked to the transport header.

use super::{transport, Malformed, Packet, Skip};
use crate::addr::Addr;
use crate::policy::MAX_IPV6_EXTENSIONS;
use smoltcp::wire::{Ipv4Packet, Ipv6Packet};

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AH: u8 = 51;
const DEST_OPTIONS: u8 = 60;

/// Offsets of the protocol byte in the IPv4 header and of the next header in IPv6's.
const PROTOCOL: usize = 9;
const NEXT_HEADER: usize = 6;

#[inline]
pub fn ipv4<const PROBE: bool>(data: &[u8], p: &mut Packet) -> Result<(), Skip> {
    const BAD: Skip = Skip::Malformed(Malformed::Ipv4);
    if data.len() < 20 {
        return Err(BAD);
    }
    // Lengths checked above and below, so the unchecked view reads only captured bytes.
    let ip = Ipv4Packet::new_unchecked(data);
    let hlen = ip.header_len() as usize;
    let total = ip.total_len() as usize;
    if ip.version() != 4 || hlen < 20 || hlen > data.len() || total < hlen {
        return Err(BAD);
    }
    if ip.frag_offset() != 0 {
        return Err(Skip::Fragment);
    }
    // The payload ends where the header says, or where the capture was cut, whichever is first;
    // bytes past the total length are link padding.
    let end = total.min(data.len());
    let seg = &data[hlen..end];
    // The protocol byte as it is: smoltcp's `next_header` maps it to an enum through a match
    // of every protocol it knows, and `into` maps it back.
    let proto = data[PROTOCOL];
    // Before `p` is written: most of a busy link is such segments.
    if PROBE && proto == crate::proto::TCP && transport::under_way(seg) {
        return Err(Skip::UnderWay);
    }
    *p = Packet {
        src: Addr::v4(ip.src_addr().octets()),
        dst: Addr::v4(ip.dst_addr().octets()),
        proto,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        ttl: ip.hop_limit(),
        tos: data[1],
        ip_id: ip.ident(),
        tcp_seq: 0,
        tcp_window: 0,
        tcp_opts: Default::default(),
        ip_len: total as u16,
        outgoing: false,
    };
    transport::decode(p, seg)
}

/// Where the IPv6 packet at the start of `data` (40 bytes at least) ends: where its payload
/// length says, or where the capture was cut, whichever is first.
#[inline(always)]
pub fn ipv6_end(data: &[u8]) -> usize {
    let plen = u16::from_be_bytes([data[4], data[5]]) as usize;
    // A payload length of 0 is a jumbogram (or a lie): take what was captured.
    if plen == 0 {
        data.len()
    } else {
        (40 + plen).min(data.len())
    }
}

#[inline]
pub fn ipv6<const PROBE: bool>(data: &[u8], p: &mut Packet) -> Result<(), Skip> {
    if data.len() < 40 {
        return Err(Skip::Malformed(Malformed::Ipv6));
    }
    let ip = Ipv6Packet::new_unchecked(data);
    if ip.version() != 6 {
        return Err(Skip::Malformed(Malformed::Ipv6));
    }
    let plen = ip.payload_len() as usize;
    let end = ipv6_end(data);
    *p = Packet {
        src: Addr::v6(ip.src_addr().octets()),
        dst: Addr::v6(ip.dst_addr().octets()),
        proto: data[NEXT_HEADER],
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        ttl: ip.hop_limit(),
        tos: ip.traffic_class(),
        ip_id: 0,
        tcp_seq: 0,
        tcp_window: 0,
        tcp_opts: Default::default(),
        ip_len: (40 + plen).min(u16::MAX as usize) as u16,
        outgoing: false,
    };
    let mut rest = &data[40..end];
    let mut walked = 0;
    loop {
        let len = match p.proto {
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                if rest.len() < 8 {
                    return Err(Skip::Malformed(Malformed::Extension));
                }
                (rest[1] as usize + 1) * 8
            }
            FRAGMENT => {
                if rest.len() < 8 {
                    return Err(Skip::Malformed(Malformed::Extension));
                }
                if u16::from_be_bytes([rest[2], rest[3]]) >> 3 != 0 {
                    return Err(Skip::Fragment);
                }
                8
            }
            AH => {
                if rest.len() < 8 {
                    return Err(Skip::Malformed(Malformed::Extension));
                }
                (rest[1] as usize + 2) * 4
            }
            _ => break,
        };
        if len > rest.len() {
            return Err(Skip::Malformed(Malformed::Extension));
        }
        walked += 1;
        if walked > MAX_IPV6_EXTENSIONS {
            return Err(Skip::TooDeep);
        }
        p.proto = rest[0];
        rest = &rest[len..];
    }
    if PROBE && p.proto == crate::proto::TCP && transport::under_way(rest) {
        return Err(Skip::UnderWay);
    }
    transport::decode(p, rest)
}
