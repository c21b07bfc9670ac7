//! Generate a realistic mixed capture for benchmarks and manual tests.
//!
//! Usage: `cargo run --release --example gencap -- OUT.pcap [PACKETS] [SNAPLEN]`
//!
//! About PACKETS (default 1,000,000) Ethernet frames over one hour that crosses
//! UTC midnight (2024-03-10 23:30 to 2024-03-11 00:30), deterministic (own
//! PRNG, fixed seed): established TCP traffic both ways, inbound connections
//! with their SYN-ACKs, outbound SYNs, inbound SYN scans from many (partly
//! spoofed) sources, UDP probes and replies, our own DNS lookups, ICMP and
//! ICMPv6, GRE/ESP, about 10% IPv6, about 6% VLAN-tagged frames (some with two
//! tags) and a few malformed frames. SNAPLEN (default: whole frames) cuts the
//! captured bytes as a capture with that snap length would.
//!
//! The local networks are printed so the bench can pass them as `--local`.

#[path = "../tests/common/pcapgen.rs"]
mod pcapgen;

use pcapgen::*;
use std::io::{self, BufWriter};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The monitored networks of the generated capture.
pub const LOCAL_V4: &str = "198.51.100.0/24";
pub const LOCAL_V6: &str = "2001:db8:100::/48";
pub const DEFAULT_PACKETS: u64 = 1_000_000;
/// 2024-03-10 23:30:00 UTC; the capture lasts one hour.
pub const START: u64 = 1_710_113_400;
pub const DURATION: u64 = 3600;

/// What was generated.
#[derive(Debug, Default, Clone)]
pub struct GenStats {
    pub packets: u64,
    pub bytes: u64,
    pub malformed: u64,
    pub first_sec: u64,
    pub last_sec: u64,
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `percent`/100.
    fn pct(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One end of a TCP/UDP conversation.
#[derive(Clone, Copy)]
struct End {
    ip: IpAddr,
    port: u16,
}

/// An established TCP connection: a (local or remote) client and a server.
#[derive(Clone, Copy)]
struct Conn {
    client: End,
    server: End,
    vlan: u8, // 0: none, 1: one tag, 2: two tags
}

struct Gen<W: io::Write> {
    rng: Rng,
    out: PcapWriter<W>,
    snaplen: usize,
    /// Clock in microseconds since the epoch.
    now_us: u64,
    step_us: u64,
    target: u64,
    conns: Vec<Conn>,
    scanners: Vec<Ipv4Addr>,
    stats: GenStats,
}

const SERVER_PORTS: [u16; 6] = [80, 443, 443, 443, 22, 25];
const SCAN_PORTS: [u16; 16] = [
    22, 23, 80, 443, 445, 3389, 8080, 1433, 3306, 5900, 6379, 8443, 21, 25, 135, 139,
];
const UDP_PROBE_PORTS: [u16; 8] = [53, 123, 161, 1900, 5060, 11211, 137, 500];

impl<W: io::Write> Gen<W> {
    fn local_v4(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(198, 51, 100, 1 + self.rng.below(254) as u8)
    }
    fn local_v6(&mut self) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x100,
            0,
            0,
            0,
            0,
            1 + self.rng.below(64) as u16,
        )
    }
    fn remote_v4(&mut self) -> Ipv4Addr {
        // Anything outside 198.51.100.0/24 (and not multicast/reserved).
        loop {
            let x = self.rng.next() as u32;
            let ip = Ipv4Addr::from(x);
            let o = ip.octets();
            if o[0] != 0
                && o[0] != 10
                && o[0] != 127
                && o[0] < 224
                && !(o[0] == 198 && o[1] == 51 && o[2] == 100)
            {
                return ip;
            }
        }
    }
    fn remote_v6(&mut self) -> Ipv6Addr {
        let r = self.rng.next();
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x2000 + (r & 0xfff) as u16,
            (r >> 12) as u16,
            0,
            0,
            0,
            1 + (r >> 28) as u16 % 200,
        )
    }
    /// A (local, remote) address pair, IPv6 with probability `v6`%.
    fn pair(&mut self, v6: u64) -> (IpAddr, IpAddr) {
        if self.rng.pct(v6) {
            (self.local_v6().into(), self.remote_v6().into())
        } else {
            (self.local_v4().into(), self.remote_v4().into())
        }
    }
    fn ephemeral(&mut self) -> u16 {
        32768 + self.rng.below(28232) as u16
    }
    fn vlan_kind(&mut self) -> u8 {
        match self.rng.below(100) {
            0..=4 => 1,
            5 => 2,
            _ => 0,
        }
    }

    /// Write one IP packet in an Ethernet frame (with VLAN tags if asked).
    fn emit(&mut self, ip_packet: Vec<u8>, vlan: u8) -> io::Result<()> {
        let tags: &[Vlan] = match vlan {
            1 => &[Vlan {
                tpid: ETHERTYPE_VLAN,
                vid: 100,
            }],
            2 => &[
                Vlan {
                    tpid: ETHERTYPE_QINQ,
                    vid: 10,
                },
                Vlan {
                    tpid: ETHERTYPE_VLAN,
                    vid: 200,
                },
            ],
            _ => &[],
        };
        let frame = eth_vlan(tags, &ip_packet);
        self.emit_frame(&frame)
    }

    fn emit_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.stats.packets >= self.target {
            return Ok(());
        }
        // Advance the clock by about one step, with jitter, never backwards.
        let jitter = self.rng.below(self.step_us.max(1) * 2 + 1);
        self.now_us += jitter;
        let sec = self.now_us / 1_000_000;
        let usec = (self.now_us % 1_000_000) as u32;
        if self.stats.packets == 0 {
            self.stats.first_sec = sec;
        }
        self.stats.last_sec = sec;
        self.out.write(sec, usec, frame, self.snaplen)?;
        self.stats.packets += 1;
        self.stats.bytes += 16 + frame.len().min(self.snaplen) as u64;
        Ok(())
    }

    fn tcp_packet(&mut self, from: End, to: End, flags: u8, payload_len: usize) -> Vec<u8> {
        let mut h = TcpHdr::new(from.port, to.port, flags);
        h.seq = self.rng.next() as u32;
        if flags & ACK != 0 {
            h.ack = self.rng.next() as u32;
        }
        if flags & SYN != 0 {
            h.options = tcp_syn_options();
        } else {
            // timestamps option on established segments, as Linux sends them
            h.options = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        }
        let payload = vec![0x5a; payload_len];
        let seg = h.build(&payload);
        ip(from.ip, to.ip, PROTO_TCP, &seg)
    }

    fn payload_size(&mut self) -> usize {
        match self.rng.below(100) {
            0..=44 => 0,
            45..=74 => 20 + self.rng.below(300) as usize,
            _ => 1200 + self.rng.below(249) as usize,
        }
    }

    fn new_conn(&mut self, inbound: bool) -> Conn {
        let (l, r) = self.pair(10);
        let vlan = self.vlan_kind();
        if inbound {
            let sp = self.rng.pick(&SERVER_PORTS);
            let cp = self.ephemeral();
            Conn {
                client: End { ip: r, port: cp },
                server: End { ip: l, port: sp },
                vlan,
            }
        } else {
            let sp = self.rng.pick(&[443u16, 443, 80, 993, 22]);
            let cp = self.ephemeral();
            Conn {
                client: End { ip: l, port: cp },
                server: End { ip: r, port: sp },
                vlan,
            }
        }
    }

    // --- events -----------------------------------------------------------

    /// Data and ACKs both ways on an established connection.
    fn established(&mut self) -> io::Result<()> {
        let i = self.rng.below(self.conns.len() as u64) as usize;
        let c = self.conns[i];
        for _ in 0..1 + self.rng.below(4) {
            let (from, to) = if self.rng.pct(50) {
                (c.server, c.client)
            } else {
                (c.client, c.server)
            };
            let len = self.payload_size();
            let flags = if len > 0 { PSH | ACK } else { ACK };
            let p = self.tcp_packet(from, to, flags, len);
            self.emit(p, c.vlan)?;
        }
        if self.rng.pct(2) {
            // the connection closes; a new one takes its place
            let p = self.tcp_packet(c.client, c.server, FIN | ACK, 0);
            self.emit(p, c.vlan)?;
            let p = self.tcp_packet(c.server, c.client, FIN | ACK, 0);
            self.emit(p, c.vlan)?;
            let inbound = self.rng.pct(50);
            self.conns[i] = self.new_conn(inbound);
        }
        Ok(())
    }

    /// Three-way handshake, inbound (their SYN, our SYN-ACK) or outbound.
    fn handshake(&mut self, inbound: bool) -> io::Result<()> {
        let c = self.new_conn(inbound);
        let p = self.tcp_packet(c.client, c.server, SYN, 0);
        self.emit(p.clone(), c.vlan)?;
        if self.rng.pct(5) {
            self.emit(p, c.vlan)?; // retransmitted SYN
        }
        let p = self.tcp_packet(c.server, c.client, SYN | ACK, 0);
        self.emit(p, c.vlan)?;
        let p = self.tcp_packet(c.client, c.server, ACK, 0);
        self.emit(p, c.vlan)?;
        let i = self.rng.below(self.conns.len() as u64) as usize;
        self.conns[i] = c;
        Ok(())
    }

    /// A SYN scan probe from a scanner (or a spoofed source).
    fn syn_scan(&mut self) -> io::Result<()> {
        let v6 = self.rng.pct(8);
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (self.remote_v6().into(), self.local_v6().into())
        } else if self.rng.pct(30) {
            (self.remote_v4().into(), self.local_v4().into()) // spoofed flood
        } else {
            let s = self.rng.pick(&self.scanners.clone()[..]);
            (s.into(), self.local_v4().into())
        };
        let port = if self.rng.pct(70) {
            self.rng.pick(&SCAN_PORTS)
        } else {
            1 + self.rng.below(65535) as u16
        };
        let from = End {
            ip: src,
            port: self.ephemeral(),
        };
        let to = End { ip: dst, port };
        let flags = if self.rng.pct(3) {
            SYN | ECE | CWR
        } else {
            SYN
        };
        let vlan = self.vlan_kind();
        let p = self.tcp_packet(from, to, flags, 0);
        self.emit(p, vlan)?;
        match self.rng.below(10) {
            0..=2 => {
                let p = self.tcp_packet(to, from, RST | ACK, 0);
                self.emit(p, vlan)?;
            }
            3 => {
                let p = self.tcp_packet(to, from, SYN | ACK, 0);
                self.emit(p, vlan)?;
                let p = self.tcp_packet(from, to, RST, 0);
                self.emit(p, vlan)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A UDP probe from outside, sometimes answered.
    fn udp_probe(&mut self) -> io::Result<()> {
        let (l, r) = self.pair(10);
        let port = if self.rng.pct(80) {
            self.rng.pick(&UDP_PROBE_PORTS)
        } else {
            1 + self.rng.below(65535) as u16
        };
        let from = End {
            ip: r,
            port: self.ephemeral(),
        };
        let to = End { ip: l, port };
        let vlan = self.vlan_kind();
        let n = 1 + self.rng.below(3);
        for _ in 0..n {
            let len = 20 + self.rng.below(100) as usize;
            self.emit(
                ip(
                    from.ip,
                    to.ip,
                    PROTO_UDP,
                    &udp(from.port, to.port, &vec![0x11; len]),
                ),
                vlan,
            )?;
        }
        if self.rng.pct(40) {
            let len = 40 + self.rng.below(400) as usize;
            self.emit(
                ip(
                    to.ip,
                    from.ip,
                    PROTO_UDP,
                    &udp(to.port, from.port, &vec![0x22; len]),
                ),
                vlan,
            )?;
        }
        Ok(())
    }

    /// Our own DNS/NTP lookups and their answers.
    fn udp_ours(&mut self) -> io::Result<()> {
        let (l, r) = self.pair(10);
        let port = self.rng.pick(&[53u16, 53, 53, 123]);
        let from = End {
            ip: l,
            port: self.ephemeral(),
        };
        let to = End { ip: r, port };
        let vlan = self.vlan_kind();
        self.emit(
            ip(
                from.ip,
                to.ip,
                PROTO_UDP,
                &udp(from.port, to.port, &[0x33; 40]),
            ),
            vlan,
        )?;
        if self.rng.pct(95) {
            let len = 60 + self.rng.below(200) as usize;
            self.emit(
                ip(
                    to.ip,
                    from.ip,
                    PROTO_UDP,
                    &udp(to.port, from.port, &vec![0x44; len]),
                ),
                vlan,
            )?;
        }
        Ok(())
    }

    fn icmp(&mut self) -> io::Result<()> {
        let vlan = self.vlan_kind();
        let id = self.rng.next() as u16;
        if self.rng.pct(15) {
            let (l, r) = (self.local_v6(), self.remote_v6());
            let (src, dst) = if self.rng.pct(60) { (r, l) } else { (l, r) };
            self.emit(
                ipv6(
                    src,
                    dst,
                    PROTO_ICMPV6,
                    &icmpv6(128, 0, echo_rest(id, 1), &[0x61; 56]),
                ),
                vlan,
            )?;
            if self.rng.pct(70) {
                self.emit(
                    ipv6(
                        dst,
                        src,
                        PROTO_ICMPV6,
                        &icmpv6(129, 0, echo_rest(id, 1), &[0x61; 56]),
                    ),
                    vlan,
                )?;
            }
            if self.rng.pct(20) {
                // neighbour solicitation
                self.emit(
                    ipv6(src, dst, PROTO_ICMPV6, &icmpv6(135, 0, [0; 4], &l.octets())),
                    vlan,
                )?;
            }
            return Ok(());
        }
        let (l, r) = (self.local_v4(), self.remote_v4());
        match self.rng.below(10) {
            0..=5 => {
                // their ping, our echo reply
                let t = if self.rng.pct(95) {
                    8
                } else {
                    self.rng.pick(&[13u8, 15, 17])
                };
                self.emit(
                    ipv4(r, l, PROTO_ICMP, &icmp(t, 0, echo_rest(id, 1), &[0x61; 56])),
                    vlan,
                )?;
                if t == 8 && self.rng.pct(80) {
                    self.emit(
                        ipv4(l, r, PROTO_ICMP, &icmp(0, 0, echo_rest(id, 1), &[0x61; 56])),
                        vlan,
                    )?;
                }
            }
            6..=7 => {
                // our ping and its reply
                self.emit(
                    ipv4(l, r, PROTO_ICMP, &icmp(8, 0, echo_rest(id, 1), &[0x61; 56])),
                    vlan,
                )?;
                self.emit(
                    ipv4(r, l, PROTO_ICMP, &icmp(0, 0, echo_rest(id, 1), &[0x61; 56])),
                    vlan,
                )?;
            }
            _ => {
                // an error coming back to us, quoting one of our packets
                let quoted = ipv4(l, r, PROTO_UDP, &udp(33434, 33435, &[]));
                let t = self.rng.pick(&[3u8, 11]);
                self.emit(ipv4(r, l, PROTO_ICMP, &icmp(t, 3, [0; 4], &quoted)), vlan)?;
            }
        }
        Ok(())
    }

    /// GRE and ESP, both ways.
    fn other(&mut self) -> io::Result<()> {
        let (l, r) = (self.local_v4(), self.remote_v4());
        let (proto, body) = if self.rng.pct(50) {
            (
                PROTO_GRE,
                gre(
                    0x0800,
                    &ipv4(
                        Ipv4Addr::new(10, 0, 0, 1),
                        Ipv4Addr::new(10, 0, 0, 2),
                        PROTO_UDP,
                        &udp(1, 2, &[0; 32]),
                    ),
                ),
            )
        } else {
            (PROTO_ESP, {
                let mut b = (self.rng.next() as u32).to_be_bytes().to_vec();
                b.extend_from_slice(&[0x77; 100]);
                b
            })
        };
        let inbound = self.rng.pct(50);
        for _ in 0..1 + self.rng.below(4) {
            let (s, d) = if inbound ^ self.rng.pct(30) {
                (r, l)
            } else {
                (l, r)
            };
            self.emit(ipv4(s, d, proto, &body), 0)?;
        }
        Ok(())
    }

    /// A broken frame (counted as malformed by the sensor).
    fn malformed(&mut self) -> io::Result<()> {
        let (l, r) = (self.local_v4(), self.remote_v4());
        let syn = tcp(40000, 80, SYN, &[]);
        let frame = match self.rng.below(4) {
            0 => {
                let mut h = Ipv4Hdr::new(r, l, PROTO_TCP);
                h.ihl_override = Some(3);
                eth(&h.build(&syn))
            }
            1 => {
                let mut t = TcpHdr::new(40000, 80, SYN);
                t.data_offset_override = Some(2);
                eth(&ipv4(r, l, PROTO_TCP, &t.build(&[])))
            }
            2 => eth(&ipv4(r, l, PROTO_UDP, &[0x01, 0x02, 0x03])),
            _ => {
                let f = eth(&ipv4(r, l, PROTO_TCP, &syn));
                f[..14 + 12].to_vec()
            }
        };
        self.stats.malformed += 1;
        self.emit_frame(&frame)
    }

    fn run(&mut self) -> io::Result<()> {
        while self.stats.packets < self.target {
            match self.rng.below(10_000) {
                0..=5199 => self.established()?,
                5200..=5799 => self.handshake(true)?,
                5800..=6399 => self.handshake(false)?,
                6400..=8199 => self.syn_scan()?,
                8200..=8999 => self.udp_probe()?,
                9000..=9499 => self.udp_ours()?,
                9500..=9879 => self.icmp()?,
                9880..=9994 => self.other()?,
                _ => self.malformed()?,
            }
        }
        Ok(())
    }
}

/// Write the capture to `path`.
pub fn generate(path: &Path, packets: u64, snaplen: usize) -> io::Result<GenStats> {
    let file = std::fs::File::create(path)?;
    let out = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, file),
        LINKTYPE_ETHERNET,
        snaplen.min(262_144) as u32,
    )?;
    let mut g = Gen {
        rng: Rng(0x7453_7573_656e_2021), // "tsusen !"
        out,
        snaplen,
        now_us: START * 1_000_000,
        step_us: DURATION * 1_000_000 / packets.max(1),
        target: packets,
        conns: Vec::new(),
        scanners: Vec::new(),
        stats: GenStats::default(),
    };
    for _ in 0..5000 {
        let s = g.remote_v4();
        g.scanners.push(s);
    }
    for i in 0..2000 {
        let c = g.new_conn(i % 2 == 0);
        g.conns.push(c);
    }
    g.run()?;
    let stats = g.stats.clone();
    g.out.finish()?;
    Ok(stats)
}

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!(
            "usage: gencap OUT.pcap [PACKETS (default {DEFAULT_PACKETS})] [SNAPLEN (default: whole frames)]"
        );
        std::process::exit(if args.is_empty() { 2 } else { 0 });
    }
    let parse = |s: &String, what: &str| -> u64 {
        s.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("gencap: bad {what}: {s}");
            std::process::exit(2)
        })
    };
    let packets = args
        .get(1)
        .map(|s| parse(s, "PACKETS"))
        .unwrap_or(DEFAULT_PACKETS);
    let snaplen = args
        .get(2)
        .map(|s| parse(s, "SNAPLEN") as usize)
        .unwrap_or(usize::MAX);
    let path = Path::new(&args[0]);
    match generate(path, packets, snaplen) {
        Ok(s) => {
            println!("local networks: {LOCAL_V4} {LOCAL_V6}");
            println!(
                "replay with: tsusen replay --local {LOCAL_V4} --local {LOCAL_V6} --log-dir DIR {}",
                path.display()
            );
            println!(
                "wrote {}: {} packets ({} malformed), {} bytes, seconds {}..{} (crosses 2024-03-11 00:00 UTC)",
                path.display(),
                s.packets,
                s.malformed,
                s.bytes + 24,
                s.first_sec,
                s.last_sec
            );
        }
        Err(e) => {
            eprintln!("gencap: {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
