//! A small, dependency-free capture writer and packet builder for tests.
//!
//! - Files: classic pcap (microsecond timestamps, any link type) and a minimal
//!   pcapng (section header, one interface description per link type, enhanced
//!   packet blocks).
//! - Frames: Ethernet with up to two VLAN tags, Linux cooked SLL and SLL2, raw IP.
//! - Network: IPv4 (fragment fields, options), IPv6 with extension headers
//!   (hop-by-hop, routing, destination options, fragment, AH).
//! - Transport: TCP (any flags, options), UDP, ICMP, ICMPv6, GRE, SCTP, and raw
//!   bytes for anything else.
//!
//! Every builder returns the bytes of its header followed by the payload it
//! was given, so packets are built from the inside out:
//! `ethernet(.., ipv4(.., tcp(..)))`. Checksums: the IPv4 header checksum is
//! filled in; TCP/UDP/ICMP checksums are left zero (the sensor does not check
//! them, as offloading makes them wrong on real captures anyway).
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

/// pcap link types.
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// EtherTypes.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100; // 802.1Q
pub const ETHERTYPE_QINQ: u16 = 0x88a8; // 802.1ad
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// IP protocol numbers.
pub const PROTO_HOPOPT: u8 = 0;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IGMP: u8 = 2;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_DCCP: u8 = 33;
pub const PROTO_IPV6_ROUTE: u8 = 43;
pub const PROTO_IPV6_FRAG: u8 = 44;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_ESP: u8 = 50;
pub const PROTO_AH: u8 = 51;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_IPV6_NONXT: u8 = 59;
pub const PROTO_IPV6_OPTS: u8 = 60;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_UDPLITE: u8 = 136;

/// TCP flag bits (the low byte of the flags field).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Default MAC addresses for test frames.
pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

// ---------------------------------------------------------------------------
// Captured packets and snap length
// ---------------------------------------------------------------------------

/// One captured packet: timestamp, captured bytes and original wire length.
#[derive(Clone, Debug)]
pub struct Packet {
    pub sec: u64,
    pub usec: u32,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

impl Packet {
    /// A whole (uncut) packet at `sec`.`usec`.
    pub fn new(sec: u64, usec: u32, data: Vec<u8>) -> Packet {
        let orig_len = data.len() as u32;
        Packet {
            sec,
            usec,
            data,
            orig_len,
        }
    }

    /// A whole packet at a whole second.
    pub fn at(sec: u64, data: Vec<u8>) -> Packet {
        Packet::new(sec, 0, data)
    }

    /// The same packet cut to at most `snaplen` captured bytes (orig_len kept).
    pub fn snap(mut self, snaplen: usize) -> Packet {
        self.data.truncate(snaplen);
        self
    }
}

/// Cut a frame to `snaplen` bytes as a capture with that snap length would;
/// returns (captured bytes, original length).
pub fn snap_cut(frame: &[u8], snaplen: usize) -> (Vec<u8>, u32) {
    let n = frame.len().min(snaplen);
    (frame[..n].to_vec(), frame.len() as u32)
}

// ---------------------------------------------------------------------------
// Classic pcap
// ---------------------------------------------------------------------------

/// The 24-byte classic pcap global header (little-endian, microseconds).
pub fn pcap_header(linktype: u32, snaplen: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic: microseconds
    b.extend_from_slice(&2u16.to_le_bytes()); // version major
    b.extend_from_slice(&4u16.to_le_bytes()); // version minor
    b.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    b.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    b.extend_from_slice(&snaplen.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    b
}

/// One classic pcap record: 16-byte record header + captured bytes.
pub fn pcap_record(p: &Packet) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + p.data.len());
    b.extend_from_slice(&(p.sec as u32).to_le_bytes());
    b.extend_from_slice(&p.usec.to_le_bytes());
    b.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
    b.extend_from_slice(&p.orig_len.to_le_bytes());
    b.extend_from_slice(&p.data);
    b
}

/// A whole classic pcap file in memory.
pub fn pcap_bytes(linktype: u32, packets: &[Packet]) -> Vec<u8> {
    let mut b = pcap_header(linktype, 65535);
    for p in packets {
        b.extend_from_slice(&pcap_record(p));
    }
    b
}

/// Write a classic pcap file.
pub fn write_pcap(path: &Path, linktype: u32, packets: &[Packet]) -> io::Result<()> {
    std::fs::write(path, pcap_bytes(linktype, packets))
}

/// A streaming classic pcap writer (for large generated captures).
pub struct PcapWriter<W: Write> {
    out: W,
    pub packets: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        out.write_all(&pcap_header(linktype, snaplen))?;
        Ok(PcapWriter { out, packets: 0 })
    }

    /// Write one frame, cut to `snaplen` captured bytes.
    pub fn write(&mut self, sec: u64, usec: u32, frame: &[u8], snaplen: usize) -> io::Result<()> {
        let cap = frame.len().min(snaplen);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..cap])?;
        self.packets += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

// ---------------------------------------------------------------------------
// pcapng (minimal: SHB + IDB(s) + EPB)
// ---------------------------------------------------------------------------

fn pad4(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

/// A pcapng block: type, total length, body (padded), total length.
fn pcapng_block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let mut padded = body.to_vec();
    pad4(&mut padded);
    let total = (12 + padded.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(&padded);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// Section header block (little-endian, version 1.0, unknown section length).
pub fn pcapng_shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes()); // byte-order magic
    body.extend_from_slice(&1u16.to_le_bytes()); // major
    body.extend_from_slice(&0u16.to_le_bytes()); // minor
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
    pcapng_block(0x0a0d_0d0a, &body)
}

/// Interface description block (no options: timestamps in microseconds).
pub fn pcapng_idb(linktype: u32, snaplen: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(linktype as u16).to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // reserved
    body.extend_from_slice(&snaplen.to_le_bytes());
    pcapng_block(1, &body)
}

/// Enhanced packet block on interface `iface`.
pub fn pcapng_epb(iface: u32, p: &Packet) -> Vec<u8> {
    let ts = p.sec * 1_000_000 + p.usec as u64;
    let mut body = Vec::new();
    body.extend_from_slice(&iface.to_le_bytes());
    body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts as u32).to_le_bytes());
    body.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
    body.extend_from_slice(&p.orig_len.to_le_bytes());
    body.extend_from_slice(&p.data);
    pcapng_block(6, &body)
}

/// A pcapng file with one interface of `linktype`.
pub fn pcapng_bytes(linktype: u32, packets: &[Packet]) -> Vec<u8> {
    let tagged: Vec<(u32, Packet)> = packets.iter().map(|p| (0, p.clone())).collect();
    pcapng_bytes_multi(&[linktype], &tagged)
}

/// A pcapng file with several interfaces; each packet names its interface index.
pub fn pcapng_bytes_multi(linktypes: &[u32], packets: &[(u32, Packet)]) -> Vec<u8> {
    let mut b = pcapng_shb();
    for &lt in linktypes {
        b.extend_from_slice(&pcapng_idb(lt, 65535));
    }
    for (iface, p) in packets {
        b.extend_from_slice(&pcapng_epb(*iface, p));
    }
    b
}

pub fn write_pcapng(path: &Path, linktype: u32, packets: &[Packet]) -> io::Result<()> {
    std::fs::write(path, pcapng_bytes(linktype, packets))
}

// ---------------------------------------------------------------------------
// Link layer
// ---------------------------------------------------------------------------

/// A VLAN tag: TPID (0x8100 or 0x88a8) and VLAN id (PCP/DEI zero).
#[derive(Clone, Copy, Debug)]
pub struct Vlan {
    pub tpid: u16,
    pub vid: u16,
}

/// Ethernet II frame with up to two VLAN tags (outer first).
pub fn ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    vlans: &[Vlan],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    b.extend_from_slice(&dst);
    b.extend_from_slice(&src);
    for v in vlans {
        b.extend_from_slice(&v.tpid.to_be_bytes());
        b.extend_from_slice(&(v.vid & 0x0fff).to_be_bytes());
    }
    b.extend_from_slice(&ethertype.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The EtherType for an IP packet, from its version nibble.
pub fn ethertype_of(ip: &[u8]) -> u16 {
    match ip.first().map(|b| b >> 4) {
        Some(6) => ETHERTYPE_IPV6,
        _ => ETHERTYPE_IPV4,
    }
}

/// Ethernet frame (default MACs, no VLAN) around an IP packet.
pub fn eth(ip: &[u8]) -> Vec<u8> {
    ethernet(MAC_A, MAC_B, &[], ethertype_of(ip), ip)
}

/// Ethernet frame with VLAN tags around an IP packet.
pub fn eth_vlan(vlans: &[Vlan], ip: &[u8]) -> Vec<u8> {
    ethernet(MAC_A, MAC_B, vlans, ethertype_of(ip), ip)
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16-byte header).
/// packet_type: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing.
pub fn sll(packet_type: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + payload.len());
    b.extend_from_slice(&packet_type.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    b.extend_from_slice(&6u16.to_be_bytes()); // address length
    b.extend_from_slice(&MAC_B);
    b.extend_from_slice(&[0, 0]); // address padded to 8 bytes
    b.extend_from_slice(&protocol.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20-byte header).
pub fn sll2(packet_type: u8, protocol: u16, ifindex: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + payload.len());
    b.extend_from_slice(&protocol.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes()); // reserved
    b.extend_from_slice(&ifindex.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    b.push(packet_type);
    b.push(6); // address length
    b.extend_from_slice(&MAC_B);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    b
}

// ---------------------------------------------------------------------------
// IPv4
// ---------------------------------------------------------------------------

/// IPv4 header fields. `Ipv4Hdr::new(src, dst, proto)` gives a plain,
/// unfragmented header; change fields for fragments, options or broken headers.
#[derive(Clone, Debug)]
pub struct Ipv4Hdr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub id: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Options (padded to a multiple of 4 with zeros, i.e. end-of-list).
    pub options: Vec<u8>,
    /// Force the IHL field (in 32-bit words) instead of computing it.
    pub ihl_override: Option<u8>,
    /// Force the total length field instead of computing it.
    pub total_len_override: Option<u16>,
}

impl Ipv4Hdr {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ipv4Hdr {
        Ipv4Hdr {
            src,
            dst,
            proto,
            ttl: 64,
            id: 0x1234,
            dont_fragment: false,
            more_fragments: false,
            frag_offset: 0,
            options: Vec::new(),
            ihl_override: None,
            total_len_override: None,
        }
    }

    /// Header + payload bytes.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        pad4(&mut opts);
        let hlen = 20 + opts.len();
        let ihl = self.ihl_override.unwrap_or((hlen / 4) as u8);
        let total = self
            .total_len_override
            .unwrap_or((hlen + payload.len()) as u16);
        let mut flags_frag = self.frag_offset & 0x1fff;
        if self.dont_fragment {
            flags_frag |= 0x4000;
        }
        if self.more_fragments {
            flags_frag |= 0x2000;
        }
        let mut b = Vec::with_capacity(hlen + payload.len());
        b.push(0x40 | (ihl & 0x0f));
        b.push(0); // DSCP/ECN
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&self.id.to_be_bytes());
        b.extend_from_slice(&flags_frag.to_be_bytes());
        b.push(self.ttl);
        b.push(self.proto);
        b.extend_from_slice(&[0, 0]); // checksum, filled below
        b.extend_from_slice(&self.src.octets());
        b.extend_from_slice(&self.dst.octets());
        b.extend_from_slice(&opts);
        let sum = checksum(&b[..hlen]);
        b[10..12].copy_from_slice(&sum.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }
}

/// A plain IPv4 packet.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    Ipv4Hdr::new(src, dst, proto).build(payload)
}

/// Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += word as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------------------
// IPv6 and its extension headers
// ---------------------------------------------------------------------------

/// A plain IPv6 packet: 40-byte header with `next_header`, then payload.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(40 + payload.len());
    b.extend_from_slice(&0x6000_0000u32.to_be_bytes()); // version 6, class 0, flow 0
    b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    b.push(next_header);
    b.push(64); // hop limit
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(payload);
    b
}

/// An IPv6 extension header, outermost first in a chain.
#[derive(Clone, Debug)]
pub enum Ext {
    /// Hop-by-hop options (one PadN option filling 6 bytes).
    HopByHop,
    /// Routing header type 0 with `segments_left` = 0, no addresses.
    Routing,
    /// Destination options (one PadN option).
    DestOpts,
    /// Fragment header: offset in 8-byte units, more-fragments flag, id.
    Fragment { offset: u16, more: bool, id: u32 },
    /// Authentication header with a 12-byte ICV (AH length field 4).
    Ah,
}

impl Ext {
    /// The protocol number that announces this header.
    pub fn number(&self) -> u8 {
        match self {
            Ext::HopByHop => PROTO_HOPOPT,
            Ext::Routing => PROTO_IPV6_ROUTE,
            Ext::DestOpts => PROTO_IPV6_OPTS,
            Ext::Fragment { .. } => PROTO_IPV6_FRAG,
            Ext::Ah => PROTO_AH,
        }
    }

    /// The header's bytes, given the next header that follows it.
    pub fn build(&self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop | Ext::DestOpts => ipv6_opts_header(next, 0),
            Ext::Routing => ipv6_routing_header(next),
            Ext::Fragment { offset, more, id } => ipv6_fragment_header(next, *offset, *more, *id),
            Ext::Ah => ipv6_ah_header(next),
        }
    }
}

/// Hop-by-hop or destination options header: 8 * (1 + ext_len) bytes of
/// which all but the first two are one PadN option.
pub fn ipv6_opts_header(next: u8, ext_len: u8) -> Vec<u8> {
    let total = 8 * (1 + ext_len as usize);
    let mut b = vec![next, ext_len, 1, (total - 4) as u8];
    b.resize(total, 0);
    b
}

/// Routing header (type 0, segments left 0, 8 bytes).
pub fn ipv6_routing_header(next: u8) -> Vec<u8> {
    vec![next, 0, 0, 0, 0, 0, 0, 0]
}

/// Fragment header (8 bytes). `offset` in 8-byte units.
pub fn ipv6_fragment_header(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let off = (offset << 3) | more as u16;
    let mut b = vec![next, 0];
    b.extend_from_slice(&off.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b
}

/// Authentication header: payload length 4 (= (24 / 4) - 2), SPI, sequence,
/// 12-byte ICV; 24 bytes in all.
pub fn ipv6_ah_header(next: u8) -> Vec<u8> {
    let mut b = vec![next, 4, 0, 0];
    b.extend_from_slice(&0x0000_1000u32.to_be_bytes()); // SPI
    b.extend_from_slice(&1u32.to_be_bytes()); // sequence
    b.extend_from_slice(&[0xaa; 12]); // ICV
    b
}

/// IPv6 packet with a chain of extension headers before `proto` + payload.
pub fn ipv6_ext(src: Ipv6Addr, dst: Ipv6Addr, exts: &[Ext], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map(|n| n.number()).unwrap_or(proto);
        body.extend_from_slice(&e.build(next));
    }
    body.extend_from_slice(payload);
    let first = exts.first().map(|e| e.number()).unwrap_or(proto);
    ipv6(src, dst, first, &body)
}

/// IPv4 or IPv6 packet by the addresses' family (they must match).
pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(s, d, proto, payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6(s, d, proto, payload),
        _ => panic!("ip(): mixed address families"),
    }
}

// ---------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------

/// TCP header fields; `TcpHdr::new(sport, dport, flags)` gives a 20-byte header.
#[derive(Clone, Debug)]
pub struct TcpHdr {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options (padded with zeros to a multiple of 4).
    pub options: Vec<u8>,
    /// Force the data offset field (in 32-bit words).
    pub data_offset_override: Option<u8>,
}

impl TcpHdr {
    pub fn new(sport: u16, dport: u16, flags: u8) -> TcpHdr {
        TcpHdr {
            sport,
            dport,
            seq: 0x0100_0000,
            ack: if flags & ACK != 0 { 0x0200_0000 } else { 0 },
            flags,
            window: 64240,
            options: Vec::new(),
            data_offset_override: None,
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        pad4(&mut opts);
        let hlen = 20 + opts.len();
        let doff = self.data_offset_override.unwrap_or((hlen / 4) as u8);
        let mut b = Vec::with_capacity(hlen + payload.len());
        b.extend_from_slice(&self.sport.to_be_bytes());
        b.extend_from_slice(&self.dport.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.ack.to_be_bytes());
        b.push(doff << 4);
        b.push(self.flags);
        b.extend_from_slice(&self.window.to_be_bytes());
        b.extend_from_slice(&[0, 0]); // checksum (not computed)
        b.extend_from_slice(&[0, 0]); // urgent pointer
        b.extend_from_slice(&opts);
        b.extend_from_slice(payload);
        b
    }
}

/// A TCP segment with the given flags and no options.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    TcpHdr::new(sport, dport, flags).build(payload)
}

/// Typical SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
pub fn tcp_syn_options() -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    o.extend_from_slice(&[1, 3, 3, 7]);
    o
}

/// A UDP datagram (length field = 8 + payload).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]); // checksum (none)
    b.extend_from_slice(payload);
    b
}

/// An ICMPv4 message: type, code, checksum, 4 bytes "rest of header", payload.
pub fn icmp(icmp_type: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![icmp_type, code, 0, 0];
    b.extend_from_slice(&rest);
    b.extend_from_slice(payload);
    let sum = checksum(&b);
    b[2..4].copy_from_slice(&sum.to_be_bytes());
    b
}

/// An ICMPv6 message (checksum left zero: it needs the pseudo-header).
pub fn icmpv6(icmp_type: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![icmp_type, code, 0, 0];
    b.extend_from_slice(&rest);
    b.extend_from_slice(payload);
    b
}

/// Echo request/reply style "rest of header": identifier and sequence.
pub fn echo_rest(id: u16, seq: u16) -> [u8; 4] {
    let i = id.to_be_bytes();
    let s = seq.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

/// GRE header (RFC 2784, no checksum/key/sequence) carrying `protocol_type`.
pub fn gre(protocol_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&protocol_type.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// SCTP common header (12 bytes) followed by `chunks`.
pub fn sctp(sport: u16, dport: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + chunks.len());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&vtag.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC32c (not computed)
    b.extend_from_slice(chunks);
    b
}

/// An SCTP INIT chunk (20 bytes).
pub fn sctp_init_chunk() -> Vec<u8> {
    let mut b = vec![1, 0];
    b.extend_from_slice(&20u16.to_be_bytes());
    b.extend_from_slice(&0x1122_3344u32.to_be_bytes()); // initiate tag
    b.extend_from_slice(&65535u32.to_be_bytes()); // a_rwnd
    b.extend_from_slice(&10u16.to_be_bytes()); // outbound streams
    b.extend_from_slice(&10u16.to_be_bytes()); // inbound streams
    b.extend_from_slice(&1u32.to_be_bytes()); // initial TSN
    b
}

/// DCCP generic header with 48-bit sequence numbers (16 bytes), type Request (0).
pub fn dccp_request(sport: u16, dport: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.push(5); // data offset in 32-bit words (16-byte header + 4-byte service code)
    b.push(0); // CCVal, CsCov
    b.extend_from_slice(&[0, 0]); // checksum
    b.push(0x01); // type 0 (Request) << 1, X = 1
    b.push(0); // reserved
    b.extend_from_slice(&[0, 0, 0, 0, 0, 1]); // sequence number (48 bits)
    b.extend_from_slice(&[0, 0, 0, 0]); // service code
    b
}

/// UDP-Lite header (8 bytes; checksum coverage 8 = header only).
pub fn udplite(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(&8u16.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    b
}

// ---------------------------------------------------------------------------
// Shorthands used by most tests: a whole Ethernet frame in one call.
// ---------------------------------------------------------------------------

/// Ethernet + IPv4/IPv6 + TCP with `flags`.
pub fn eth_tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    eth(&ip(src, dst, PROTO_TCP, &tcp(sport, dport, flags, &[])))
}

/// Ethernet + IPv4/IPv6 + UDP with `payload`.
pub fn eth_udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(&ip(src, dst, PROTO_UDP, &udp(sport, dport, payload)))
}

/// Ethernet + IPv4 + ICMP of `icmp_type` (code 0).
pub fn eth_icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp_type: u8) -> Vec<u8> {
    eth(&ipv4(
        src,
        dst,
        PROTO_ICMP,
        &icmp(icmp_type, 0, echo_rest(1, 1), b"abcdefgh"),
    ))
}

/// Ethernet + IPv6 + ICMPv6 of `icmp_type` (code 0).
pub fn eth_icmpv6(src: Ipv6Addr, dst: Ipv6Addr, icmp_type: u8) -> Vec<u8> {
    eth(&ipv6(
        src,
        dst,
        PROTO_ICMPV6,
        &icmpv6(icmp_type, 0, echo_rest(1, 1), b"abcdefgh"),
    ))
}

/// Ethernet + IPv4/IPv6 + any protocol with raw payload bytes.
pub fn eth_raw(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(&ip(src, dst, proto, payload))
}
