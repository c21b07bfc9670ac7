//! Link layers: Ethernet (with up to two VLAN tags), Linux cooked v1/v2, raw IP, BSD loopback.

use super::{ip, Malformed, Packet, Skip};
use crate::policy::MAX_VLAN_TAGS;
use crate::source::Link;
use smoltcp::wire::EthernetFrame;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ tag some switches still send.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

#[inline]
pub fn decode(link: Link, data: &[u8], p: &mut Packet) -> Result<(), Skip> {
    match link {
        Link::Ethernet => ethernet(data, p),
        Link::LinuxSll => {
            // pkttype, hatype, halen, 8 bytes of address, then the protocol.
            if data.len() < 16 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            ethertype(u16::from_be_bytes([data[14], data[15]]), &data[16..], 0, p)?;
            p.outgoing = u16::from_be_bytes([data[0], data[1]]) == PACKET_OUTGOING;
            Ok(())
        }
        Link::LinuxSll2 => {
            // The protocol comes first; 20 bytes in all.
            if data.len() < 20 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            ethertype(u16::from_be_bytes([data[0], data[1]]), &data[20..], 0, p)?;
            p.outgoing = data[10] as u16 == PACKET_OUTGOING;
            Ok(())
        }
        Link::RawIp => raw(data, p),
        Link::Ipv4 => ip::ipv4(data, p),
        Link::Ipv6 => ip::ipv6(data, p),
        Link::Null | Link::Loop => {
            if data.len() < 4 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            let f = [data[0], data[1], data[2], data[3]];
            // DLT_NULL's family is in the writer's byte order: try both.
            let family = if link == Link::Loop {
                u32::from_be_bytes(f)
            } else {
                let le = u32::from_le_bytes(f);
                if le < 0x1_0000 {
                    le
                } else {
                    u32::from_be_bytes(f)
                }
            };
            match family {
                2 => ip::ipv4(&data[4..], p),
                // AF_INET6 is 24, 28 or 30 depending on the BSD, 10 on Linux.
                10 | 24 | 28 | 30 => ip::ipv6(&data[4..], p),
                _ => Err(Skip::NotIp),
            }
        }
        Link::EtherType(t) => ethertype(t, data, 0, p),
    }
}

/// Linux's packet type PACKET_OUTGOING: the frame was leaving the host.
const PACKET_OUTGOING: u16 = 4;

#[inline]
fn ethernet(data: &[u8], p: &mut Packet) -> Result<(), Skip> {
    let frame = EthernetFrame::new_checked(data).map_err(|_| Skip::Malformed(Malformed::Link))?;
    let t: u16 = frame.ethertype().into();
    ethertype(t, &data[EthernetFrame::<&[u8]>::header_len()..], 0, p)
}

#[inline]
fn ethertype(t: u16, payload: &[u8], tags: usize, p: &mut Packet) -> Result<(), Skip> {
    match t {
        ETHERTYPE_IPV4 => ip::ipv4(payload, p),
        ETHERTYPE_IPV6 => ip::ipv6(payload, p),
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
            if tags >= MAX_VLAN_TAGS {
                return Err(Skip::TooDeep);
            }
            // A tag is 2 bytes of priority and VLAN id, then the next EtherType.
            if payload.len() < 4 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            ethertype(
                u16::from_be_bytes([payload[2], payload[3]]),
                &payload[4..],
                tags + 1,
                p,
            )
        }
        _ => Err(Skip::NotIp),
    }
}

#[inline]
fn raw(data: &[u8], p: &mut Packet) -> Result<(), Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ip::ipv4(data, p),
        Some(6) => ip::ipv6(data, p),
        _ => Err(Skip::Malformed(Malformed::Link)),
    }
}
