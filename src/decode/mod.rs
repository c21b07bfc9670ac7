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
use crate::source::Frame;

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
