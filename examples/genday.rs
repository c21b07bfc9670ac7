//! Generates a simulated 24-hour day of DMZ background traffic (see tests/common/day.rs), for
//! the SD card wear figure: `cargo run --release --example genday -- OUT.pcap [PACKETS]`
//! (default 2 million), then `tsusen replay --local 198.51.100.0/24 ...` at the default
//! WRITE_PERIOD.

#[path = "../tests/common/pcapgen.rs"]
mod pcapgen;

#[path = "../tests/common/day.rs"]
mod day;

use std::io::BufWriter;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: genday OUT.pcap [PACKETS]");
    let n: u64 = args
        .next()
        .map_or(2_000_000, |s| s.parse().expect("PACKETS is a number"));
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let mut w = pcapgen::PcapWriter::new(file, pcapgen::LINKTYPE_ETHERNET, 65_535)?;
    day::write_day(&mut w, n)?;
    w.finish()?;
    println!(
        "wrote {out}: {n} packets over 24 hours; local network {}",
        day::LOCAL
    );
    Ok(())
}
