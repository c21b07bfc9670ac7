//! A simulated 24-hour day of DMZ background traffic, for the SD card wear figures: most probes
//! come from sources seen once (mass scanners, worms); a fifth from a pool of persistent
//! sources that return all day; a tenth of the packets are our own outbound SYNs, which count
//! for nothing.
#![allow(dead_code)]

use super::pcapgen::*;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

/// 2024-03-10 00:00:00 UTC.
pub const DAY_START: u64 = 1_710_028_800;
/// The networks the traffic is aimed at.
pub const LOCAL: &str = "198.51.100.0/24";

/// Writes `n` packets spread evenly over the day.
pub fn write_day<W: Write>(w: &mut PcapWriter<W>, n: u64) -> io::Result<()> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ports = [
        22u16, 23, 80, 443, 445, 3389, 8080, 1433, 5900, 6379, 25, 21, 3306, 8443,
    ];
    for i in 0..n {
        let r = rnd();
        let sec = DAY_START + i * 86_400 / n;
        let ours = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + (r % 32) as u8));
        let port = ports[(r >> 8) as usize % ports.len()];
        let frame = match (r >> 32) % 10 {
            0 => {
                let far = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (r >> 40) as u8));
                ip(
                    ours,
                    far,
                    PROTO_TCP,
                    &tcp(40_000 + (r >> 16) as u16 % 20_000, 443, SYN, &[]),
                )
            }
            1 | 2 => {
                let src = IpAddr::V4(Ipv4Addr::from(0x2d00_0000 + (r >> 40) as u32 % 500));
                ip(src, ours, PROTO_TCP, &tcp(50_000, port, SYN, &[]))
            }
            _ => {
                let once = 0x5000_0000 + (i as u32).wrapping_mul(2_654_435_761) % 0x2000_0000;
                let src = IpAddr::V4(Ipv4Addr::from(once));
                ip(src, ours, PROTO_TCP, &tcp(50_000, port, SYN, &[]))
            }
        };
        w.write(sec, 0, &eth(&frame), 65_535)?;
    }
    Ok(())
}
