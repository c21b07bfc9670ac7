//! Transport headers: only what the rules and detectors read, and only when the header is whole.

use super::{Malformed, Packet, Skip, TcpOptSig};
use crate::proto;
use smoltcp::wire::{TcpPacket, UdpPacket};

/// Fills the transport fields of `p` from `seg`, the bytes after the IP headers.
#[inline(always)]
pub fn decode(p: &mut Packet, seg: &[u8]) -> Result<(), Skip> {
    match p.proto {
        proto::TCP => {
            if seg.len() < 20 {
                return Err(Skip::Malformed(Malformed::Tcp));
            }
            let tcp = TcpPacket::new_unchecked(seg);
            let hlen = tcp.header_len() as usize;
            if hlen < 20 || hlen > seg.len() {
                return Err(Skip::Malformed(Malformed::Tcp));
            }
            p.sport = tcp.src_port();
            p.dport = tcp.dst_port();
            p.tcp_flags = seg[13];
            p.tcp_seq = tcp.seq_number().0 as u32;
            p.tcp_window = tcp.window_len();
            // Only probes (ACK clear) are fingerprinted: the bulk of TCP skips the copy.
            if p.tcp_flags & flags::ACK == 0 {
                p.tcp_opts = TcpOptSig::of(seg[12] >> 4, &seg[20..hlen]);
            }
        }
        proto::UDP | proto::UDPLITE => {
            if seg.len() < 8 {
                return Err(Skip::Malformed(Malformed::Udp));
            }
            let udp = UdpPacket::new_unchecked(seg);
            p.sport = udp.src_port();
            p.dport = udp.dst_port();
        }
        proto::ICMP | proto::ICMPV6 => {
            if seg.len() < 8 {
                return Err(Skip::Malformed(Malformed::Icmp));
            }
            p.icmp_type = seg[0];
        }
        proto::SCTP | proto::DCCP => {
            // Both common headers are 12 bytes at least and begin with the two ports.
            if seg.len() < 12 {
                return Err(Skip::Malformed(Malformed::Ports));
            }
            p.sport = u16::from_be_bytes([seg[0], seg[1]]);
            p.dport = u16::from_be_bytes([seg[2], seg[3]]);
        }
        _ => {}
    }
    Ok(())
}

/// Whether `seg` is a whole TCP header with ACK set (see `Skip::UnderWay`). A header cut short
/// is not: `decode` tells it as malformed.
#[inline]
pub fn under_way(seg: &[u8]) -> bool {
    if seg.len() < 20 {
        return false;
    }
    let tcp = TcpPacket::new_unchecked(seg);
    let hlen = tcp.header_len() as usize;
    hlen >= 20 && hlen <= seg.len() && tcp.ack()
}

/// TCP flag bits, as in the header's 14th byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}
