//! Generates a flood of connection attempts from distinct spoofed sources, for the bounded-memory
//! check: `cargo run --release --example genflood -- OUT.pcap [SOURCES]` (default 10 million).
//! Half are TCP SYNs, half UDP probes (each a new flow); all to 198.51.100.0/24 within one UTC
//! day, so every packet is an attempt with a key of its own.

#[path = "../tests/common/pcapgen.rs"]
mod pcapgen;

use pcapgen::*;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: genflood OUT.pcap [SOURCES]");
    let n: u64 = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("SOURCES is a number"));
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let mut w = PcapWriter::new(file, LINKTYPE_ETHERNET, 65_535)?;
    // 2024-03-10 00:00:00 UTC; the flood spreads over 20 hours of that day.
    let start = 1_710_028_800u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        // A bijection of i keeps every source distinct without a set.
        let src = (i as u32).wrapping_mul(2_654_435_761) | 0x0100_0000;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let dst = Ipv4Addr::new(198, 51, 100, (x & 0xff) as u8);
        let src = IpAddr::V4(Ipv4Addr::from(src & 0xbfff_ffff));
        let port = 1 + (x >> 8) as u16 % 1024;
        let l4 = if i % 2 == 0 {
            ip(
                src,
                IpAddr::V4(dst),
                PROTO_TCP,
                &tcp(40_000, port, SYN, &[]),
            )
        } else {
            ip(src, IpAddr::V4(dst), PROTO_UDP, &udp(40_000, port, &[]))
        };
        let sec = start + i * 72_000 / n;
        w.write(sec, 0, &eth(&l4), 65_535)?;
    }
    w.finish()?;
    println!("wrote {out}: {n} packets from {n} distinct sources");
    Ok(())
}
