//! Link layers: Ethernet (with up to two VLAN tags), Linux cooked v1/v2, raw IP, BSD loopback.

use super::{Malformed, Skip};
use crate::policy::MAX_VLAN_TAGS;
use crate::source::Link;
use smoltcp::wire::EthernetFrame;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ tag some switches still send.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Where a frame's IP packet is, and which version it is.
pub struct Network<'a> {
    pub v6: bool,
    pub bytes: &'a [u8],
    /// The link header says the frame was leaving the host (Linux cooked captures).
    pub outgoing: bool,
}

/// Finds the IP packet in a frame of link type `link`.
#[inline]
pub fn network(link: Link, data: &[u8]) -> Result<Network<'_>, Skip> {
    match link {
        Link::Ethernet => {
            let header = EthernetFrame::<&[u8]>::header_len();
            if data.len() < header {
                return Err(Skip::Malformed(Malformed::Link));
            }
            // The EtherType as the number it is: smoltcp's view maps it to an enum and back.
            let t = u16::from_be_bytes([data[header - 2], data[header - 1]]);
            ethertype(t, &data[header..], false)
        }
        Link::LinuxSll => {
            // pkttype, hatype, halen, 8 bytes of address, then the protocol.
            if data.len() < 16 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            let outgoing = u16::from_be_bytes([data[0], data[1]]) == PACKET_OUTGOING;
            ethertype(
                u16::from_be_bytes([data[14], data[15]]),
                &data[16..],
                outgoing,
            )
        }
        Link::LinuxSll2 => {
            // The protocol comes first; 20 bytes in all.
            if data.len() < 20 {
                return Err(Skip::Malformed(Malformed::Link));
            }
            let outgoing = data[10] as u16 == PACKET_OUTGOING;
            ethertype(
                u16::from_be_bytes([data[0], data[1]]),
                &data[20..],
                outgoing,
            )
        }
        Link::RawIp => match data.first().map(|b| b >> 4) {
            Some(4) => Ok(ip(false, data)),
            Some(6) => Ok(ip(true, data)),
            _ => Err(Skip::Malformed(Malformed::Link)),
        },
        Link::Ipv4 => Ok(ip(false, data)),
        Link::Ipv6 => Ok(ip(true, data)),
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
                2 => Ok(ip(false, &data[4..])),
                // AF_INET6 is 24, 28 or 30 depending on the BSD, 10 on Linux.
                10 | 24 | 28 | 30 => Ok(ip(true, &data[4..])),
                _ => Err(Skip::NotIp),
            }
        }
        Link::EtherType(t) => ethertype(t, data, false),
    }
}

/// Linux's packet type PACKET_OUTGOING: the frame was leaving the host.
const PACKET_OUTGOING: u16 = 4;

#[inline]
fn ip(v6: bool, bytes: &[u8]) -> Network<'_> {
    Network {
        v6,
        bytes,
        outgoing: false,
    }
}

/// Whether EtherType `t` is a VLAN tag's (802.1Q, 802.1ad, or the older QinQ value).
#[inline]
pub fn is_vlan(t: u16) -> bool {
    matches!(t, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD)
}

/// The payload of EtherType `t`, through at most `MAX_VLAN_TAGS` VLAN tags.
#[inline]
fn ethertype(mut t: u16, mut payload: &[u8], outgoing: bool) -> Result<Network<'_>, Skip> {
    let mut tags = 0;
    loop {
        match t {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => {
                return Ok(Network {
                    v6: t == ETHERTYPE_IPV6,
                    bytes: payload,
                    outgoing,
                })
            }
            _ if is_vlan(t) => {
                if tags >= MAX_VLAN_TAGS {
                    return Err(Skip::TooDeep);
                }
                // A tag is 2 bytes of priority and VLAN id, then the next EtherType.
                if payload.len() < 4 {
                    return Err(Skip::Malformed(Malformed::Link));
                }
                t = u16::from_be_bytes([payload[2], payload[3]]);
                payload = &payload[4..];
                tags += 1;
            }
            _ => return Err(Skip::NotIp),
        }
    }
}
