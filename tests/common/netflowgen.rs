//! Hand-built NetFlow v5, v9 and IPFIX datagrams for tests: each builder returns the bytes an
//! exporter would send, lengths and counts filled in (tests then break them on purpose).
#![allow(dead_code)]

/// A v5 record's fields.
#[derive(Clone, Copy, Debug)]
pub struct V5Rec {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub packets: u32,
    pub octets: u32,
    /// Uptime (ms) of the first and last packet.
    pub first: u32,
    pub last: u32,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub proto: u8,
}

pub fn v5(uptime: u32, secs: u32, nsecs: u32, recs: &[V5Rec]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&(recs.len() as u16).to_be_bytes());
    b.extend_from_slice(&uptime.to_be_bytes());
    b.extend_from_slice(&secs.to_be_bytes());
    b.extend_from_slice(&nsecs.to_be_bytes());
    b.extend_from_slice(&7u32.to_be_bytes()); // flow sequence
    b.extend_from_slice(&[0, 0, 0, 0]); // engine type, id, sampling
    for r in recs {
        b.extend_from_slice(&r.src);
        b.extend_from_slice(&r.dst);
        b.extend_from_slice(&[0; 4]); // next hop
        b.extend_from_slice(&[0; 4]); // input, output
        b.extend_from_slice(&r.packets.to_be_bytes());
        b.extend_from_slice(&r.octets.to_be_bytes());
        b.extend_from_slice(&r.first.to_be_bytes());
        b.extend_from_slice(&r.last.to_be_bytes());
        b.extend_from_slice(&r.sport.to_be_bytes());
        b.extend_from_slice(&r.dport.to_be_bytes());
        b.extend_from_slice(&[0, r.flags, r.proto, 0]);
        b.extend_from_slice(&[0; 8]); // AS numbers, masks, padding
    }
    b
}

/// A set (v9 flowset or IPFIX set), padded to 4 bytes.
pub fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    let pad = (4 - body.len() % 4) % 4;
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&((4 + body.len() + pad) as u16).to_be_bytes());
    b.extend_from_slice(body);
    b.extend(std::iter::repeat_n(0u8, pad));
    b
}

/// One template record: id, count, (field, length) pairs.
pub fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (f, l) in fields {
        b.extend_from_slice(&f.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    b
}

/// A v9 options template record: scope fields then option fields.
pub fn v9_options_template(id: u16, scope: &[(u16, u16)], opts: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&((scope.len() * 4) as u16).to_be_bytes());
    b.extend_from_slice(&((opts.len() * 4) as u16).to_be_bytes());
    for (f, l) in scope.iter().chain(opts) {
        b.extend_from_slice(&f.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    b
}

/// An IPFIX options template record.
pub fn ipfix_options_template(id: u16, scope: &[(u16, u16)], opts: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&((scope.len() + opts.len()) as u16).to_be_bytes());
    b.extend_from_slice(&(scope.len() as u16).to_be_bytes());
    for (f, l) in scope.iter().chain(opts) {
        b.extend_from_slice(&f.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    b
}

pub fn v9(uptime: u32, secs: u32, source_id: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&9u16.to_be_bytes());
    b.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    b.extend_from_slice(&uptime.to_be_bytes());
    b.extend_from_slice(&secs.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&source_id.to_be_bytes());
    for s in sets {
        b.extend_from_slice(s);
    }
    b
}

pub fn ipfix(export: u32, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&10u16.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&export.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        b.extend_from_slice(s);
    }
    let len = b.len() as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// The template softflowd uses for IPv4 TCP/UDP (fields: addresses, sysUpTime start/end,
/// counters, interfaces, ports, protocol, flags, version, ToS).
pub const V4_FIELDS: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (22, 4),
    (21, 4),
    (1, 4),
    (2, 4),
    (10, 4),
    (14, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (60, 1),
    (5, 1),
];

/// A record for [`V4_FIELDS`].
#[allow(clippy::too_many_arguments)]
pub fn v4_record(
    src: [u8; 4],
    dst: [u8; 4],
    first: u32,
    last: u32,
    octets: u32,
    packets: u32,
    sport: u16,
    dport: u16,
    proto: u8,
    flags: u8,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b.extend_from_slice(&octets.to_be_bytes());
    b.extend_from_slice(&packets.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&[proto, flags, 4, 0]);
    b
}
