//! Detection: who is scanning us, with what, as it happens. Each detector is a plain value fed
//! by the sensor (live or replay, with the packet timestamps as the clock) and returns events;
//! none of them allocates per packet once warm, and each holds bounded state whatever the
//! traffic, because the traffic is chosen by the people it watches.
//!
//! - [`scan`]: scanlogd's port scan detector and its report line.
//! - [`flows`]: net-security's flow sensors (portscan, winscan, spam) over flow records.
//! - [`fingerprint`]: labels a source with the scanning tool its packets betray.
//! - [`event`]: the one event shape they all produce (net-security's threat event), as JSON.

pub mod event;
pub mod fingerprint;
pub mod flowbuild;
pub mod flows;
mod lru;
pub mod scan;
pub mod spike;
pub use crate::decode::tcpopts;

pub use event::{Event, EventKind, Value};

/// A TCP SYN from 203.0.113.7:40000 to 198.51.100.10:80 as the decoder makes it, for the unit
/// tests to adjust field by field (built by decoding bytes, so fields the decoder gains later
/// are filled in too).
#[cfg(test)]
pub(crate) fn test_packet() -> crate::decode::Packet {
    let mut b = vec![
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 203, 0, 113, 7, 198, 51, 100, 10,
    ];
    b.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0, 0, 0, 0, 0,
    ]);
    let frame = crate::source::Frame {
        ts: 0,
        ts_us: 0,
        link: crate::source::Link::Ipv4,
        data: &b,
        outgoing: false,
    };
    crate::decode::decode(&frame).expect("test packet decodes")
}
