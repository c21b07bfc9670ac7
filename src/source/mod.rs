//! Where frames come from: capture files (replay) and live interfaces. A source lends each
//! frame with its timestamp and link type; nothing is copied per packet.

pub mod bpf;
pub mod capfile;
pub mod live;
pub mod netflow;
pub mod ring;

/// How the bytes of a frame begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    /// Linux "cooked" capture, version 1 (LINKTYPE_LINUX_SLL).
    LinuxSll,
    /// Linux "cooked" capture, version 2 (LINKTYPE_LINUX_SLL2).
    LinuxSll2,
    /// A bare IPv4 or IPv6 packet, told apart by its version nibble.
    RawIp,
    Ipv4,
    Ipv6,
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    Null,
    /// OpenBSD loopback: the same family in network byte order.
    Loop,
    /// A network-layer packet whose EtherType is known from elsewhere (live `any` capture).
    EtherType(u16),
}

impl Link {
    /// The link types a capture file may declare that we can decode.
    pub fn from_linktype(linktype: u32) -> Option<Link> {
        Some(match linktype {
            0 => Link::Null,
            1 => Link::Ethernet,
            12 | 14 | 101 => Link::RawIp,
            108 => Link::Loop,
            113 => Link::LinuxSll,
            228 => Link::Ipv4,
            229 => Link::Ipv6,
            276 => Link::LinuxSll2,
            _ => return None,
        })
    }
}

/// One captured frame, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Whole Unix seconds of the capture time (all the counting rules need).
    pub ts: i64,
    /// Microseconds within that second (scanlogd's rules run finer than a second).
    pub ts_us: u32,
    pub link: Link,
    pub data: &'a [u8],
    /// The kernel says this frame is leaving the host (live capture on `any`): a forwarded
    /// frame shows up twice, arriving and leaving.
    pub outgoing: bool,
}
