//! Frames in, a small plain value out: the addresses, ports, protocol and the few header fields
//! the rules and detectors need. Malformed input is a value too (a reason to count), never a
//! panic. Views over the bytes are smoltcp's `wire` types; every length they would trust is
//! checked here first, against what was captured rather than what the headers claim, because
//! a snap length cuts payloads but leaves headers whole.

mod ip;
mod link;
pub mod tcpopts;
mod transport;

pub use tcpopts::TcpOptSig;
pub use transport::flags;

use crate::addr::Addr;
use crate::policy::MAX_VLAN_TAGS;
use crate::source::{Frame, Link};

/// What the counting rules and detectors see of one IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub src: Addr,
    pub dst: Addr,
    /// IP protocol number of the transport header (after IPv6 extension headers).
    pub proto: u8,
    /// Source and destination ports; 0 for protocols without ports.
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (FIN 0x01 … CWR 0x80); 0 for other protocols.
    pub tcp_flags: u8,
    /// ICMP or ICMPv6 type; 0 for other protocols.
    pub icmp_type: u8,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    pub tcp_seq: u32,
    pub tcp_window: u16,
    /// The TCP option layout, for the tool fingerprints.
    pub tcp_opts: TcpOptSig,
    /// Bytes of the IP packet as its header gives them (IPv6: 40 + payload length), for the
    /// bits-per-packet of flows built from packets.
    pub ip_len: u16,
    /// Captured leaving the host (Linux cooked captures and live `any` say so).
    pub outgoing: bool,
}

/// Why a frame did not become a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IP at all (ARP, LLDP, spanning tree …): nothing to count, nothing wrong.
    NotIp,
    /// A fragment after the first: it carries no transport header.
    Fragment,
    /// More VLAN tags or IPv6 extension headers than we walk.
    TooDeep,
    /// A header is cut short or contradicts itself.
    Malformed(Malformed),
    /// A TCP segment with ACK set, from `probe_into`: part of a connection under way, never an
    /// attempt and never a probe the scan detector or the fingerprints start from. The live
    /// capture's kernel filter drops these (`TcpPass::AckClear`); the sensor drops what still
    /// arrives (a replayed file, the pnet fallback, frames the filter leaves to user space:
    /// VLAN tags, IPv6 extension headers), so the detectors see the same frames whatever the
    /// source, and the bulk of a busy link costs part of a decode and no more.
    UnderWay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Link,
    Ipv4,
    Ipv6,
    Extension,
    Tcp,
    Udp,
    Icmp,
    Ports,
}

pub type Decoded = Result<Packet, Skip>;

/// Decodes one frame.
pub fn decode(frame: &Frame<'_>) -> Decoded {
    let mut p = Packet::default();
    decode_into(frame, &mut p)?;
    Ok(p)
}

/// Decodes one frame into `p`, whose fields are all written when it returns `Ok`: the
/// per-packet path fills one value in place rather than returning it through every layer.
#[inline]
pub fn decode_into(frame: &Frame<'_>, p: &mut Packet) -> Result<(), Skip> {
    decode_with::<false>(frame, p)
}

/// As `decode_into`, but a whole TCP header with ACK set ends the decode there, before `p` is
/// written: `Err(Skip::UnderWay)`. A segment whose headers are malformed is still told as
/// malformed, as `decode_into` tells it.
#[inline]
pub fn probe_into(frame: &Frame<'_>, p: &mut Packet) -> Result<(), Skip> {
    decode_with::<true>(frame, p)
}

/// Whether `frame` is plainly a connection under way: Ethernet (with up to `MAX_VLAN_TAGS`
/// tags), IPv4 without options or IPv6 without extension headers, and a whole TCP header with
/// ACK set. That is the shape of most of a busy link, and this glance costs a few loads where
/// `probe_into` costs a call and a walk of the layers. When it says yes, `probe_into` says
/// `Err(Skip::UnderWay)`; when it says no (IP options, anything odd or malformed),
/// `probe_into` decides.
#[inline(always)]
pub fn plainly_under_way(frame: &Frame<'_>) -> bool {
    const ETHERNET: usize = 14;
    let d = frame.data;
    // The shortest such frame: Ethernet, IPv4 and TCP headers of 20 bytes each.
    if frame.link != Link::Ethernet || d.len() < ETHERNET + 40 {
        return false;
    }
    under_way_at::<true>(d, ETHERNET)
}

/// The glance past the link layer, at the IP header that starts at `d[at..]` (40 bytes at
/// least), after its EtherType. `OUTER`: no VLAN tag stepped over yet.
#[inline(always)]
fn under_way_at<const OUTER: bool>(d: &[u8], at: usize) -> bool {
    let ip = &d[at..];
    let (ethertype, version) = (u16::from_be_bytes([d[at - 2], d[at - 1]]), ip[0]);
    // The IP packet ends where its header says, or where the capture ends, whichever is
    // first (as `ip::ipv4` and `ip::ipv6` cut it). IPv4 first, with a header of 20 bytes.
    if ethertype == 0x0800 && version == 0x45 {
        // Not a fragment: offset zero (the flags may say "don't fragment" or "more").
        if ip[9] != crate::proto::TCP || ip[6] & 0x1f != 0 || ip[7] != 0 {
            return false;
        }
        let end = (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip.len());
        end >= 20 && transport::under_way(&ip[20..end])
    } else if ethertype == 0x86dd && version >> 4 == 6 {
        if ip[6] != crate::proto::TCP {
            return false;
        }
        transport::under_way(&ip[40..ip::ipv6_end(ip)])
    } else if OUTER {
        tagged_under_way(d)
    } else {
        false
    }
}

/// The glance at an Ethernet frame whose EtherType is not IP: VLAN tags (one frame in sixteen
/// of the benchmark's capture) are stepped over as `link::network` steps over them, and a
/// frame without them is left to the probe. Out of line: it is the rarer path.
#[inline(never)]
fn tagged_under_way(d: &[u8]) -> bool {
    let mut at = 12;
    for _ in 0..MAX_VLAN_TAGS {
        if !link::is_vlan(u16::from_be_bytes([d[at], d[at + 1]])) {
            return false;
        }
        // A tag is 2 bytes of priority and VLAN id, then the next EtherType.
        at += 4;
        if d.len() < at + 2 + 40 {
            return false;
        }
        if !link::is_vlan(u16::from_be_bytes([d[at], d[at + 1]])) {
            return under_way_at::<false>(d, at + 2);
        }
    }
    false
}

/// `PROBE`: stop at a TCP segment with ACK set. The link layer is read first, so that each
/// IP decoder has one caller and inlines into it.
#[inline(always)]
fn decode_with<const PROBE: bool>(frame: &Frame<'_>, p: &mut Packet) -> Result<(), Skip> {
    let net = link::network(frame.link, frame.data)?;
    if net.v6 {
        ip::ipv6::<PROBE>(net.bytes, p)?;
    } else {
        ip::ipv4::<PROBE>(net.bytes, p)?;
    }
    p.outgoing = net.outgoing | frame.outgoing;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet with VLAN tags of the EtherTypes `tags`, then IPv4 (20 bytes) or IPv6 (40),
    /// then a TCP header of 20 bytes with `flags` and 6 bytes of payload.
    fn segment(tags: &[u16], v6: bool, flags: u8) -> Vec<u8> {
        let mut b = vec![0u8; 12];
        for (i, t) in tags.iter().enumerate() {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&[0, i as u8 + 7]);
        }
        let tcp = [
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 9, 0x50, flags, 0x04, 0, 0, 0, 0, 0, 1, 2, 3,
            4, 5, 6,
        ];
        if v6 {
            b.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, tcp.len() as u8, 6, 64]);
            b.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            b.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        } else {
            b.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20 + tcp.len() as u8, 0, 1, 0x40, 0]);
            b.extend_from_slice(&[64, 6, 0, 0, 203, 0, 113, 9, 198, 51, 100, 10]);
        }
        b.extend_from_slice(&tcp);
        b
    }

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            ts: 1_700_000_000,
            ts_us: 0,
            link: Link::Ethernet,
            data,
            outgoing: false,
        }
    }

    fn probe(data: &[u8]) -> Result<(), Skip> {
        probe_into(&frame(data), &mut Packet::default())
    }

    /// The glance never says "under way" where the full probe says anything else: every header
    /// byte of IPv4 and IPv6 segments, untagged and behind VLAN tags, set to values that
    /// matter (zero, all ones, one bit flipped, the lengths' edges, the EtherTypes), and every
    /// cut of the frame.
    #[test]
    fn a_plain_connection_under_way_is_what_the_probe_says() {
        let (mut plain, mut mutants) = (0, 0);
        let stacks: [&[u16]; 5] = [
            &[],
            &[0x8100],
            &[0x88a8, 0x8100],
            &[0x9100, 0x9100],
            // One more than the decoder walks: too deep for both.
            &[0x8100, 0x8100, 0x8100],
        ];
        for (tags, v6) in stacks.iter().flat_map(|t| [(t, false), (t, true)]) {
            for flags in [flags::ACK, flags::ACK | flags::FIN, flags::SYN | flags::ACK] {
                let good = segment(tags, v6, flags);
                let what = format!("tags {tags:x?} v6 {v6} flags {flags:#x}");
                if tags.len() > MAX_VLAN_TAGS {
                    assert!(!plainly_under_way(&frame(&good)), "{what}");
                    assert_eq!(probe(&good), Err(Skip::TooDeep), "{what}");
                    continue;
                }
                assert!(plainly_under_way(&frame(&good)), "{what}");
                assert_eq!(probe(&good), Err(Skip::UnderWay), "{what}");
                let mut check = |data: &[u8]| {
                    mutants += 1;
                    if plainly_under_way(&frame(data)) {
                        plain += 1;
                        assert_eq!(probe(data), Err(Skip::UnderWay), "{data:02x?}");
                    }
                };
                for at in 12..good.len() {
                    for value in [
                        0, 0xff, 1, 0x40, 0x45, 0x50, 0x60, 6, 17, 19, 20, 39, 40, 60, 0x81, 0x88,
                        0xa8, 0x91, 0x08, 0x86, 0xdd,
                    ] {
                        let mut m = good.clone();
                        m[at] = value;
                        check(&m);
                    }
                    for bit in 0..8 {
                        let mut m = good.clone();
                        m[at] ^= 1 << bit;
                        check(&m);
                    }
                }
                for len in 0..good.len() {
                    check(&good[..len]);
                }
                // Not Ethernet: left to the full probe, whatever the bytes.
                assert!(!plainly_under_way(&Frame {
                    link: Link::LinuxSll,
                    ..frame(&good)
                }));
            }
        }
        // The glance takes most mutants of payload and addresses, and leaves the rest.
        assert!(
            plain > mutants / 4 && plain < mutants,
            "{plain} of {mutants}"
        );
    }
}
