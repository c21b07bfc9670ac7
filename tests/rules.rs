//! Integration tests for the counting rules of issue 2: every test builds a
//! capture with `common::pcapgen`, runs the real `tsusen replay` on it and
//! compares the daily CSV files, as whole texts, with what the rules say.
//!
//! Local networks in every test: 198.51.100.0/24 and 2001:db8:100::/48.
//! Remote hosts: 203.0.113.0/24, 192.0.2.0/24 and 2001:db8:bad::/48 etc.

mod common;

use common::rng::Rng;

use common::pcapgen::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Time, addresses, expected text
// ---------------------------------------------------------------------------

/// 2024-03-10 00:00:00 UTC.
const DAY0: u64 = 1_710_028_800;
/// 2024-03-10 01:00:00 UTC: the base time of most tests.
const T: u64 = DAY0 + 3600;
/// 2024-03-11 00:00:00 UTC.
const MIDNIGHT: u64 = DAY0 + 86_400;
const D1: &str = "2024-03-10";
const D2: &str = "2024-03-11";
const HEADER: &str = "proto dst_port dst_ip src_ip first_seen last_seen count";

const LOCAL_V4: &str = "198.51.100.0/24";
const LOCAL_V6: &str = "2001:db8:100::/48";

/// Local hosts.
const L1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const L2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const L3: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const L6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
const L6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x9);
/// Remote hosts.
const R1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const R2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const R3: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 1);
const R6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 2);

fn a(ip: impl Into<IpAddr>) -> IpAddr {
    ip.into()
}

/// TCP segment with `flags` from src:40000 to dst:dport, in an Ethernet frame.
fn tcpf(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, dport: u16, flags: u8) -> Vec<u8> {
    eth_tcp(src.into(), 40000, dst.into(), dport, flags)
}

/// A plain SYN from src:40000 to dst:dport.
fn syn(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, dport: u16) -> Vec<u8> {
    tcpf(src, dst, dport, SYN)
}

/// UDP datagram src:sport -> dst:dport with a small payload.
fn udpf(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>, dport: u16) -> Vec<u8> {
    eth_udp(src.into(), sport, dst.into(), dport, b"probe!")
}

/// An IP packet (no link layer) carrying a SYN.
fn ip_syn(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, dport: u16) -> Vec<u8> {
    ip(
        src.into(),
        dst.into(),
        PROTO_TCP,
        &tcp(40000, dport, SYN, &[]),
    )
}

fn at(sec: u64, frame: Vec<u8>) -> Packet {
    Packet::at(sec, frame)
}

/// The whole expected CSV text for these rows.
fn csv_text(rows: &[String]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

macro_rules! rows {
    ($($fmt:expr),* $(,)?) => { [$($fmt.to_string()),*] };
}

// ---------------------------------------------------------------------------
// An independent model, for the bulk tests (only traffic whose every packet is
// an attempt: remote to local SYNs, ICMP queries, remote-initiated UDP).
// ---------------------------------------------------------------------------

type Key = (String, Option<u16>, IpAddr, IpAddr);

#[derive(Default)]
struct Model {
    days: BTreeMap<String, BTreeMap<Key, (u64, u64, u64)>>,
}

impl Model {
    fn add(&mut self, proto: &str, port: Option<u16>, dst: IpAddr, src: IpAddr, sec: u64) {
        let e = self
            .days
            .entry(day_of(sec))
            .or_default()
            .entry((proto.to_string(), port, dst, src))
            .or_insert((sec, sec, 0));
        e.0 = e.0.min(sec);
        e.1 = e.1.max(sec);
        e.2 += 1;
    }

    /// BTreeMap order is the spec's order: proto text (bytes), port (None = `-`
    /// first, then numeric), dst then src (IPv4 before IPv6, then numeric).
    fn csv(&self, day: &str) -> String {
        let rows: Vec<String> = self.days[day]
            .iter()
            .map(|((p, port, d, s), (f, l, c))| {
                let port = port.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
                format!("{p} {port} {d} {s} {f} {l} {c}")
            })
            .collect();
        csv_text(&rows)
    }

    fn total(&self) -> u64 {
        self.days
            .values()
            .flat_map(|d| d.values())
            .map(|v| v.2)
            .sum()
    }
}

/// UTC date of a Unix second, YYYY-MM-DD (civil-from-days).
fn day_of(sec: u64) -> String {
    let z = (sec / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

/// `n` packets over 3000 s around midnight, every one an attempt; and the model.
fn bulk_traffic(n: usize) -> (Vec<Packet>, Model) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut m = Model::default();
    let mut out = Vec::with_capacity(n);
    let start = MIDNIGHT - 1500;
    let ports = [22u16, 23, 80, 443, 3389, 8080, 5900];
    let uports = [53u16, 123, 161, 1900];
    for i in 0..n {
        let sec = start + (i as u64 * 3000 / n as u64);
        let r = rng.next();
        let src4 = Ipv4Addr::new(203, 0, 113, ((r >> 8) % 60 + 1) as u8);
        let dst4 = Ipv4Addr::new(198, 51, 100, ((r >> 16) % 5 + 1) as u8);
        let src6 = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, ((r >> 8) % 40 + 1) as u16);
        let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, ((r >> 16) % 3 + 1) as u16);
        let port = ports[((r >> 24) % 7) as usize];
        let frame = match r % 10 {
            0..=5 => {
                m.add("TCP", Some(port), a(dst4), a(src4), sec);
                syn(src4, dst4, port)
            }
            6 => {
                let up = uports[((r >> 32) % 4) as usize];
                m.add("UDP", Some(up), a(dst4), a(src4), sec);
                udpf(src4, 1024 + ((r >> 40) % 1000) as u16, dst4, up)
            }
            7 => {
                m.add("ICMP", None, a(dst4), a(src4), sec);
                eth_icmp(src4, dst4, 8)
            }
            8 => {
                m.add("TCP", Some(port), a(dst6), a(src6), sec);
                syn(src6, dst6, port)
            }
            _ => {
                m.add("ICMPV6", None, a(dst6), a(src6), sec);
                eth_icmpv6(src6, dst6, 128)
            }
        };
        out.push(Packet::new(sec, (r % 1_000_000) as u32, frame));
    }
    (out, m)
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "tsusen failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "wrong exit code\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A number from the summary line on stdout: `packets N`, `attempts N`...
    fn stat(&self, key: &str) -> u64 {
        let pat = format!("{key} ");
        let i = self
            .stdout
            .find(&pat)
            .unwrap_or_else(|| panic!("no `{key} N` in summary: {:?}", self.stdout));
        let digits: String = self.stdout[i + pat.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number after `{key}` in {:?}", self.stdout))
    }
}

/// Run tsusen with `args`; never waits more than two minutes (a hang fails).
fn tsusen(args: &[String]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsusen"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tsusen");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        so.read_to_end(&mut v).ok();
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        se.read_to_end(&mut v).ok();
        v
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("tsusen hung (killed after 120 s): {args:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = Out {
        code: status.code(),
        stdout: String::from_utf8_lossy(&t1.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t2.join().unwrap()).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "tsusen panicked: {args:?}\n{}",
        out.stderr
    );
    assert!(
        status.code().is_some(),
        "tsusen killed by a signal: {args:?}\n{}",
        out.stderr
    );
    out
}

/// A test's own temporary directory with a `logs/` folder, removed on drop.
struct Case {
    dir: PathBuf,
    logs: PathBuf,
}

impl Case {
    fn new(name: &str) -> Case {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tsusen-rules-{name}-{}-{nanos}",
            std::process::id()
        ));
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        Case { dir, logs }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// An Ethernet pcap file.
    fn pcap(&self, name: &str, packets: &[Packet]) -> PathBuf {
        self.file(name, &pcap_bytes(LINKTYPE_ETHERNET, packets))
    }

    fn logs_arg(&self) -> String {
        self.logs.display().to_string()
    }

    /// `tsusen replay --local V4 --local V6 --log-dir LOGS EXTRA... FILES...`
    fn replay(&self, extra: &[&str], files: &[&Path]) -> Out {
        let mut args: Vec<String> = vec![
            "replay".into(),
            "--local".into(),
            LOCAL_V4.into(),
            "--local".into(),
            LOCAL_V6.into(),
            "--log-dir".into(),
            self.logs_arg(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|p| p.display().to_string()));
        tsusen(&args)
    }

    fn csv(&self, day: &str) -> Option<String> {
        std::fs::read_to_string(self.logs.join(format!("{day}.csv"))).ok()
    }

    fn assert_csv(&self, day: &str, rows: &[String]) {
        let want = csv_text(rows);
        match self.csv(day) {
            Some(got) => assert_eq!(
                got, want,
                "{day}.csv differs\n--- got:\n{got}--- want:\n{want}"
            ),
            None if rows.is_empty() => {}
            None => panic!("{day}.csv was not written; want:\n{want}"),
        }
    }

    /// Only these day files exist in the log directory (temporary files aside).
    fn assert_days(&self, days: &[&str]) {
        let mut got: Vec<String> = std::fs::read_dir(&self.logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".csv"))
            .collect();
        got.sort();
        let want: Vec<String> = days.iter().map(|d| format!("{d}.csv")).collect();
        assert_eq!(got, want, "day files in the log directory");
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if std::env::var_os("TSUSEN_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs of decimal digits in `s`, after removing `path` (which holds digits of its own).
fn numbers_in(s: &str, path: &Path) -> Vec<u64> {
    let s = s.replace(&path.display().to_string(), " ");
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

#[test]
fn tcp_syn_flags_and_retransmissions() {
    let c = Case::new("tcpflags");
    let f = c.pcap(
        "tcp.pcap",
        &[
            // SYN to 22, twice retransmitted: three attempts.
            at(T, syn(R1, L1, 22)),
            at(T + 1, syn(R1, L1, 22)),
            at(T + 3, syn(R1, L1, 22)),
            // ECN-setup SYN (SYN+ECE+CWR): an attempt (tsusen missed it).
            at(T + 4, tcpf(R1, L1, 80, SYN | ECE | CWR)),
            // Other flags beside SYN are ignored: SYN+PSH+URG counts.
            at(T + 5, tcpf(R1, L1, 8080, SYN | PSH | URG)),
            // SYN+ACK, SYN+RST, SYN+FIN, SYN+ACK+ECE: never.
            at(T + 6, tcpf(R1, L1, 443, SYN | ACK)),
            at(T + 7, tcpf(R1, L1, 444, SYN | RST)),
            at(T + 8, tcpf(R1, L1, 445, SYN | FIN)),
            at(T + 9, tcpf(R1, L1, 446, SYN | ACK | ECE)),
            // No SYN at all: never.
            at(T + 10, tcpf(R1, L1, 25, ACK)),
            at(T + 11, tcpf(R1, L1, 26, RST)),
            at(T + 12, tcpf(R1, L1, 27, FIN | PSH | URG)),
            at(T + 13, tcpf(R1, L1, 28, 0)),
            // A SYN with the usual options is still a SYN.
            at(
                T + 14,
                eth(&ipv4(R1, L1, PROTO_TCP, &{
                    let mut h = TcpHdr::new(40001, 3389, SYN);
                    h.options = tcp_syn_options();
                    h.build(&[])
                })),
            ),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 3", T, T + 3),
            format!("TCP 80 198.51.100.10 203.0.113.5 {} {} 1", T + 4, T + 4),
            format!("TCP 3389 198.51.100.10 203.0.113.5 {} {} 1", T + 14, T + 14),
            format!("TCP 8080 198.51.100.10 203.0.113.5 {} {} 1", T + 5, T + 5),
        ],
    );
    assert_eq!(out.stat("packets"), 14);
    assert_eq!(out.stat("attempts"), 6);
    assert_eq!(out.stat("malformed"), 0);
    assert_eq!(out.stat("rows"), 4);
    c.assert_days(&[D1]);
}

#[test]
fn tcp_direction_local_and_nonlocal() {
    let c = Case::new("tcpdir");
    let f = c.pcap(
        "dir.pcap",
        &[
            at(T, syn(L1, R1, 22)),      // local -> remote: outbound, no
            at(T + 1, syn(L1, L2, 22)),  // local -> local: no
            at(T + 2, syn(R1, R2, 22)),  // remote -> remote: no
            at(T + 3, syn(R2, L2, 23)),  // remote -> local: yes
            at(T + 4, syn(L6, R6, 22)),  // IPv6 local -> remote: no
            at(T + 5, syn(L6, L6B, 22)), // IPv6 local -> local: no
            at(T + 6, syn(R6, R6B, 22)), // IPv6 remote -> remote: no
            at(T + 7, syn(R6, L6, 23)),  // IPv6 remote -> local: yes
            // Replies to an outbound connection are not attempts either.
            at(T + 8, tcpf(R1, L1, 40000, SYN | ACK)),
            // The edges of the local networks.
            at(T + 9, syn(R1, Ipv4Addr::new(198, 51, 100, 0), 24)),
            at(T + 10, syn(R1, Ipv4Addr::new(198, 51, 100, 255), 24)),
            at(T + 11, syn(R1, Ipv4Addr::new(198, 51, 101, 0), 24)), // outside
            at(T + 12, syn(R1, Ipv4Addr::new(198, 51, 99, 255), 24)), // outside
            at(
                T + 13,
                syn(
                    R6,
                    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff),
                    24,
                ),
            ),
            at(
                T + 14,
                syn(R6, Ipv6Addr::new(0x2001, 0xdb8, 0x101, 0, 0, 0, 0, 1), 24),
            ), // outside
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 23 198.51.100.9 203.0.113.7 {} {} 1", T + 3, T + 3),
            format!(
                "TCP 23 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 7,
                T + 7
            ),
            format!("TCP 24 198.51.100.0 203.0.113.5 {} {} 1", T + 9, T + 9),
            format!("TCP 24 198.51.100.255 203.0.113.5 {} {} 1", T + 10, T + 10),
            format!(
                "TCP 24 2001:db8:100:ffff:ffff:ffff:ffff:ffff 2001:db8:bad::1 {} {} 1",
                T + 13,
                T + 13
            ),
        ],
    );
    assert_eq!(out.stat("attempts"), 5);
}

// ---------------------------------------------------------------------------
// UDP and the flow table
// ---------------------------------------------------------------------------

#[test]
fn udp_local_initiated_flow_is_not_counted() {
    let c = Case::new("udplocal");
    let f = c.pcap(
        "udp.pcap",
        &[
            // Our DNS query and its answers.
            at(T, udpf(L1, 5353, R1, 53)),
            at(T + 1, udpf(R1, 53, L1, 5353)),
            at(T + 2, udpf(R1, 53, L1, 5353)),
            at(T + 3, udpf(L1, 5353, R1, 53)),
            at(T + 4, udpf(R1, 53, L1, 5353)),
            // Same over IPv6.
            at(T + 5, udpf(L6, 40000, R6, 123)),
            at(T + 6, udpf(R6, 123, L6, 40000)),
            at(T + 7, udpf(R6, 123, L6, 40000)),
            // Remote to remote and local to local: never.
            at(T + 8, udpf(R1, 1000, R2, 2000)),
            at(T + 9, udpf(L1, 1000, L2, 2000)),
            // One attempt so that the file exists.
            at(T + 10, syn(R1, L1, 22)),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![format!(
            "TCP 22 198.51.100.10 203.0.113.5 {} {} 1",
            T + 10,
            T + 10
        )],
    );
    assert_eq!(out.stat("attempts"), 1);
}

#[test]
fn udp_remote_initiated_flow_counts_every_initiator_packet() {
    let c = Case::new("udpremote");
    let f = c.pcap(
        "udp.pcap",
        &[
            at(T, udpf(R2, 40000, L1, 161)),
            at(T + 1, udpf(L1, 161, R2, 40000)), // response: never
            at(T + 2, udpf(R2, 40000, L1, 161)),
            Packet::new(T + 2, 500_000, udpf(R2, 40000, L1, 161)),
            at(T + 3, udpf(L1, 161, R2, 40000)),
            // Another flow from the same host (other source port): same row.
            at(T + 4, udpf(R2, 40001, L1, 161)),
            // IPv6.
            at(T + 5, udpf(R6, 5000, L6, 53)),
            at(T + 6, udpf(L6, 53, R6, 5000)),
            at(T + 6, udpf(R6, 5000, L6, 53)),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!(
                "UDP 53 2001:db8:100::10 2001:db8:bad::1 {} {} 2",
                T + 5,
                T + 6
            ),
            format!("UDP 161 198.51.100.10 203.0.113.7 {} {} 4", T, T + 4),
        ],
    );
    assert_eq!(out.stat("attempts"), 6);
}

#[test]
fn flow_timeout_default_is_300_whole_seconds() {
    let c = Case::new("timeout300");
    let u = T + 2000;
    let f = c.pcap(
        "flow.pcap",
        &[
            // Flow 1: we start it.
            Packet::new(T, 0, udpf(L1, 5000, R1, 53)),
            // 300.9 s later, but 300 whole seconds: the same flow, a reply.
            Packet::new(T + 300, 900_000, udpf(R1, 53, L1, 5000)),
            // 301 whole seconds after the last packet: a new flow, started
            // by the remote end, so an attempt.
            Packet::new(T + 601, 100_000, udpf(R1, 53, L1, 5000)),
            // Our answer in that flow: never.
            at(T + 602, udpf(L1, 5000, R1, 53)),
            // Exactly 300 s after our answer (either direction refreshes):
            // still the same remote-initiated flow, another attempt.
            at(T + 902, udpf(R1, 53, L1, 5000)),
            // Flow 2: they start it (attempt)...
            at(u, udpf(R2, 1234, L1, 69)),
            // ...it ends; we speak first 301 s later: a new flow of ours...
            at(u + 301, udpf(L1, 69, R2, 1234)),
            // ...so their packets are now replies, 1 s and 300 s later.
            at(u + 302, udpf(R2, 1234, L1, 69)),
            at(u + 602, udpf(R2, 1234, L1, 69)),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("UDP 69 198.51.100.10 203.0.113.7 {u} {u} 1"),
            format!(
                "UDP 5000 198.51.100.10 203.0.113.5 {} {} 2",
                T + 601,
                T + 902
            ),
        ],
    );
    assert_eq!(out.stat("attempts"), 3);
}

#[test]
fn flow_timeout_from_config_file() {
    let c = Case::new("timeoutconf");
    let conf = c.file("tsusen.conf", b"# short flows\nFLOW_TIMEOUT 10\n");
    let f = c.pcap(
        "flow.pcap",
        &[
            at(T, udpf(L1, 5000, R1, 53)),
            at(T + 10, udpf(R1, 53, L1, 5000)), // 10 s: same flow, reply
            at(T + 21, udpf(R1, 53, L1, 5000)), // 11 s: new flow, theirs
            at(T + 31, udpf(R1, 53, L1, 5000)), // 10 s: same flow, attempt
            at(T + 41, udpf(L1, 5000, R1, 53)), // 10 s: our reply
            at(T + 52, udpf(L1, 5000, R1, 53)), // 11 s: new flow, ours
            at(T + 53, udpf(R1, 53, L1, 5000)), // reply: never
        ],
    );
    let out = c.replay(&["--config", conf.to_str().unwrap()], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![format!(
            "UDP 5000 198.51.100.10 203.0.113.5 {} {} 2",
            T + 21,
            T + 31
        )],
    );
}

#[test]
fn flows_are_not_ended_by_midnight() {
    let c = Case::new("midnightflow");
    let m = MIDNIGHT;
    let f = c.pcap(
        "flow.pcap",
        &[
            // Ours, before midnight; their reply after it: still a reply.
            at(m - 60, udpf(L1, 5000, R1, 53)),
            // Theirs, before midnight; they go on after it: attempts each day.
            at(m - 30, udpf(R2, 40000, L1, 161)),
            at(m - 10, syn(R1, L1, 22)),
            at(m + 10, syn(R1, L1, 22)),
            at(m + 60, udpf(R1, 53, L1, 5000)),
            at(m + 100, udpf(R2, 40000, L1, 161)),
            at(m + 150, udpf(L1, 161, R2, 40000)), // our response: never
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 1", m - 10, m - 10),
            format!("UDP 161 198.51.100.10 203.0.113.7 {} {} 1", m - 30, m - 30),
        ],
    );
    c.assert_csv(
        D2,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 1", m + 10, m + 10),
            format!(
                "UDP 161 198.51.100.10 203.0.113.7 {} {} 1",
                m + 100,
                m + 100
            ),
        ],
    );
    c.assert_days(&[D1, D2]);
}

#[test]
fn other_protocols_use_the_flow_table() {
    let c = Case::new("otherproto");
    let gre_body = gre(0x0800, &ipv4(R1, L1, PROTO_UDP, &udp(1, 2, b"x")));
    let f = c.pcap(
        "other.pcap",
        &[
            at(T, eth_raw(a(R1), a(L1), PROTO_GRE, &gre_body)),
            at(T + 1, eth_raw(a(R1), a(L1), PROTO_GRE, &gre_body)),
            // A GRE tunnel we start: their packets are replies.
            at(T + 2, eth_raw(a(L2), a(R2), PROTO_GRE, &gre_body)),
            at(T + 3, eth_raw(a(R2), a(L2), PROTO_GRE, &gre_body)),
            // SCTP has ports.
            at(
                T + 4,
                eth_raw(
                    a(R1),
                    a(L1),
                    PROTO_SCTP,
                    &sctp(5000, 2905, 0, &sctp_init_chunk()),
                ),
            ),
            // ESP, IGMP: no ports.
            at(
                T + 5,
                eth_raw(
                    a(R1),
                    a(L1),
                    PROTO_ESP,
                    &[0, 0, 1, 0, 0, 0, 0, 1, 0xde, 0xad],
                ),
            ),
            at(
                T + 6,
                eth_raw(a(R1), a(L1), PROTO_IGMP, &[0x11, 100, 0, 0, 0, 0, 0, 0]),
            ),
            // A protocol without an IANA keyword: its number.
            at(T + 7, eth_raw(a(R1), a(L1), 253, b"experiment")),
            // UDP-Lite and DCCP have ports.
            at(
                T + 8,
                eth_raw(a(R1), a(L1), PROTO_UDPLITE, &udplite(1000, 3000, b"lite")),
            ),
            at(
                T + 9,
                eth_raw(a(R1), a(L1), PROTO_DCCP, &dccp_request(1000, 5001)),
            ),
            // IPv6: No Next Header, GRE.
            at(T + 10, eth(&ipv6(R6, L6, PROTO_IPV6_NONXT, &[]))),
            at(T + 11, eth(&ipv6(R6, L6, PROTO_GRE, &gre(0x86dd, &[])))),
            // An SCTP association we start: their answer is no attempt.
            at(
                T + 12,
                eth_raw(
                    a(L1),
                    a(R2),
                    PROTO_SCTP,
                    &sctp(7000, 2905, 0, &sctp_init_chunk()),
                ),
            ),
            at(
                T + 13,
                eth_raw(a(R2), a(L1), PROTO_SCTP, &sctp(2905, 7000, 1, &[])),
            ),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("253 - 198.51.100.10 203.0.113.5 {} {} 1", T + 7, T + 7),
            format!("DCCP 5001 198.51.100.10 203.0.113.5 {} {} 1", T + 9, T + 9),
            format!("ESP - 198.51.100.10 203.0.113.5 {} {} 1", T + 5, T + 5),
            format!("GRE - 198.51.100.10 203.0.113.5 {} {} 2", T, T + 1),
            format!(
                "GRE - 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 11,
                T + 11
            ),
            format!("IGMP - 198.51.100.10 203.0.113.5 {} {} 1", T + 6, T + 6),
            format!(
                "IPV6-NONXT - 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 10,
                T + 10
            ),
            format!("SCTP 2905 198.51.100.10 203.0.113.5 {} {} 1", T + 4, T + 4),
            format!(
                "UDPLITE 3000 198.51.100.10 203.0.113.5 {} {} 1",
                T + 8,
                T + 8
            ),
        ],
    );
    assert_eq!(out.stat("attempts"), 10);
    assert_eq!(out.stat("malformed"), 0);
}

// ---------------------------------------------------------------------------
// ICMP
// ---------------------------------------------------------------------------

#[test]
fn icmp_queries_count_replies_and_errors_do_not() {
    let c = Case::new("icmp");
    let src = |last: u8| Ipv4Addr::new(203, 0, 113, last);
    let noisy = src(200);
    let mut p = vec![
        // Queries, one source per type: echo, timestamp, information, address mask.
        at(T, eth_icmp(src(108), L1, 8)),
        at(
            T + 1,
            eth(&ipv4(
                src(108),
                L1,
                PROTO_ICMP,
                &icmp(8, 1, echo_rest(7, 2), b"odd code"),
            )),
        ),
        at(T + 2, eth_icmp(src(113), L1, 13)),
        at(T + 3, eth_icmp(src(115), L1, 15)),
        at(T + 4, eth_icmp(src(117), L1, 17)),
        // A query from us, and one between remote hosts: never.
        at(T + 5, eth_icmp(L2, R1, 8)),
        at(T + 6, eth_icmp(R1, R2, 8)),
        // ICMPv6 echo request: counts; from us: never.
        at(T + 7, eth_icmpv6(R6, L6, 128)),
        at(T + 8, eth_icmpv6(L6, R6, 128)),
    ];
    // Replies and errors (and router solicitation/advertisement): never.
    for (i, t) in [0u8, 3, 4, 5, 9, 10, 11, 12, 14, 16, 18].iter().enumerate() {
        p.push(at(T + 10 + i as u64, eth_icmp(noisy, L1, *t)));
    }
    for (i, t) in [1u8, 2, 3, 4, 129, 130, 133, 134, 135, 136, 137]
        .iter()
        .enumerate()
    {
        p.push(at(T + 30 + i as u64, eth_icmpv6(R6B, L6, *t)));
    }
    let f = c.pcap("icmp.pcap", &p);
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("ICMP - 198.51.100.10 203.0.113.108 {} {} 2", T, T + 1),
            format!("ICMP - 198.51.100.10 203.0.113.113 {} {} 1", T + 2, T + 2),
            format!("ICMP - 198.51.100.10 203.0.113.115 {} {} 1", T + 3, T + 3),
            format!("ICMP - 198.51.100.10 203.0.113.117 {} {} 1", T + 4, T + 4),
            format!(
                "ICMPV6 - 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 7,
                T + 7
            ),
        ],
    );
    assert_eq!(out.stat("attempts"), 6);
    assert_eq!(out.stat("malformed"), 0);
}

// ---------------------------------------------------------------------------
// Fragments, IPv6 extension headers
// ---------------------------------------------------------------------------

#[test]
fn non_first_fragments_are_skipped() {
    let c = Case::new("frag");
    let v4frag = |dport: u16, offset: u16, more: bool| {
        let mut h = Ipv4Hdr::new(R1, L1, PROTO_TCP);
        h.frag_offset = offset;
        h.more_fragments = more;
        eth(&h.build(&tcp(40000, dport, SYN, &[0x55; 64])))
    };
    let v6frag = |proto: u8, l4: Vec<u8>, offset: u16, more: bool| {
        eth(&ipv6_ext(
            R6,
            L6,
            &[Ext::Fragment {
                offset,
                more,
                id: 77,
            }],
            proto,
            &l4,
        ))
    };
    let f = c.pcap(
        "frag.pcap",
        &[
            at(T, v4frag(22, 0, true)),        // first fragment: counts
            at(T + 1, v4frag(23, 185, false)), // last fragment: skipped
            at(T + 2, v4frag(24, 10, true)),   // middle fragment: skipped
            at(T + 3, {
                // a non-first fragment that looks like UDP: skipped
                let mut h = Ipv4Hdr::new(R2, L1, PROTO_UDP);
                h.frag_offset = 50;
                eth(&h.build(&udp(1, 25, b"zz")))
            }),
            at(
                T + 4,
                v6frag(PROTO_UDP, udp(1000, 53, &[0x42; 32]), 0, true),
            ), // first: counts
            at(
                T + 5,
                v6frag(PROTO_TCP, tcp(40000, 23, SYN, &[]), 100, false),
            ), // skipped
            at(T + 6, v6frag(PROTO_TCP, tcp(40000, 22, SYN, &[]), 0, false)), // atomic: counts
            at(
                T + 7,
                v6frag(PROTO_ICMPV6, icmpv6(128, 0, echo_rest(1, 1), &[]), 3, true),
            ), // skipped
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1"),
            format!(
                "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 6,
                T + 6
            ),
            format!(
                "UDP 53 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 4,
                T + 4
            ),
        ],
    );
    assert_eq!(out.stat("attempts"), 3);
    assert_eq!(
        out.stat("malformed"),
        0,
        "non-first fragments are not malformed"
    );
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let c = Case::new("ext6");
    let syn6 = |exts: &[Ext], dport: u16| {
        eth(&ipv6_ext(
            R6,
            L6,
            exts,
            PROTO_TCP,
            &tcp(40000, dport, SYN, &[]),
        ))
    };
    let long_hbh = {
        // hop-by-hop options of 24 bytes (length field 2), then TCP
        let mut body = ipv6_opts_header(PROTO_TCP, 2);
        body.extend_from_slice(&tcp(40000, 1007, SYN, &[]));
        eth(&ipv6(R6, L6, PROTO_HOPOPT, &body))
    };
    let f = c.pcap(
        "ext.pcap",
        &[
            at(T + 1, syn6(&[Ext::HopByHop], 1001)),
            at(T + 2, syn6(&[Ext::Routing], 1002)),
            at(T + 3, syn6(&[Ext::DestOpts], 1003)),
            at(
                T + 4,
                syn6(
                    &[Ext::Fragment {
                        offset: 0,
                        more: false,
                        id: 1,
                    }],
                    1004,
                ),
            ),
            at(T + 5, syn6(&[Ext::Ah], 1005)),
            at(
                T + 6,
                syn6(
                    &[
                        Ext::HopByHop,
                        Ext::DestOpts,
                        Ext::Routing,
                        Ext::Fragment {
                            offset: 0,
                            more: true,
                            id: 2,
                        },
                        Ext::Ah,
                        Ext::DestOpts,
                    ],
                    1006,
                ),
            ),
            at(T + 7, long_hbh),
            // Non-first fragment behind a hop-by-hop header: skipped.
            at(
                T + 8,
                syn6(
                    &[
                        Ext::HopByHop,
                        Ext::Fragment {
                            offset: 8,
                            more: true,
                            id: 3,
                        },
                    ],
                    1008,
                ),
            ),
            // SYN+ACK behind extension headers: never.
            at(
                T + 9,
                eth(&ipv6_ext(
                    R6,
                    L6,
                    &[Ext::HopByHop],
                    PROTO_TCP,
                    &tcp(40000, 1009, SYN | ACK, &[]),
                )),
            ),
            // UDP and ICMPv6 behind extension headers.
            at(
                T + 10,
                eth(&ipv6_ext(
                    R6,
                    L6,
                    &[Ext::DestOpts],
                    PROTO_UDP,
                    &udp(999, 53, b"q"),
                )),
            ),
            at(
                T + 11,
                eth(&ipv6_ext(
                    R6,
                    L6,
                    &[Ext::HopByHop],
                    PROTO_ICMPV6,
                    &icmpv6(128, 0, echo_rest(1, 1), &[]),
                )),
            ),
            at(
                T + 12,
                eth(&ipv6_ext(
                    R6,
                    L6,
                    &[Ext::HopByHop],
                    PROTO_ICMPV6,
                    &icmpv6(129, 0, echo_rest(1, 1), &[]),
                )),
            ),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    let r = |port: u16, t: u64| format!("TCP {port} 2001:db8:100::10 2001:db8:bad::1 {t} {t} 1");
    c.assert_csv(
        D1,
        &[
            format!(
                "ICMPV6 - 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 11,
                T + 11
            ),
            r(1001, T + 1),
            r(1002, T + 2),
            r(1003, T + 3),
            r(1004, T + 4),
            r(1005, T + 5),
            r(1006, T + 6),
            r(1007, T + 7),
            format!(
                "UDP 53 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 10,
                T + 10
            ),
        ],
    );
    assert_eq!(out.stat("malformed"), 0);
}

// ---------------------------------------------------------------------------
// Snap length, malformed headers
// ---------------------------------------------------------------------------

#[test]
fn snap_length_cut_packets_count_when_headers_are_whole() {
    let c = Case::new("snap");
    let big = vec![0x61u8; 1000];
    let syn_opts = |dport: u16| {
        let mut h = TcpHdr::new(40000, dport, SYN);
        h.options = tcp_syn_options(); // 40-byte header
        eth(&ipv4(R1, L1, PROTO_TCP, &h.build(&big)))
    };
    let padded = {
        // A minimum-size Ethernet frame: 6 bytes of padding after the IP packet.
        let mut f = syn(R2, L1, 25);
        f.extend_from_slice(&[0; 6]);
        f
    };
    let f = c.pcap(
        "snap.pcap",
        &[
            // Whole headers, payload cut: count.
            at(T, eth(&ipv4(R1, L1, PROTO_TCP, &tcp(40000, 22, SYN, &big)))).snap(100),
            at(T + 1, syn_opts(23)).snap(14 + 20 + 40),
            at(T + 2, eth_udp(a(R2), 5000, a(L1), 53, &big)).snap(14 + 20 + 8),
            at(
                T + 3,
                eth(&ipv6(R6, L6, PROTO_TCP, &tcp(40000, 22, SYN, &big))),
            )
            .snap(100),
            at(T + 4, eth_udp(a(R6), 5000, a(L6), 53, &big)).snap(14 + 40 + 8),
            at(
                T + 5,
                eth(&ipv4(
                    R1,
                    L1,
                    PROTO_ICMP,
                    &icmp(8, 0, echo_rest(1, 1), &big),
                )),
            )
            .snap(14 + 20 + 8),
            at(T + 6, padded),
            // Headers cut: malformed.
            at(
                T + 7,
                eth(&ipv4(R1, L1, PROTO_TCP, &tcp(40000, 80, SYN, &big))),
            )
            .snap(14 + 20 + 10),
            at(T + 8, syn_opts(81)).snap(14 + 20 + 30),
            at(T + 9, eth_udp(a(R2), 5000, a(L1), 82, &big)).snap(14 + 20 + 4),
            at(
                T + 10,
                eth(&ipv4(R1, L1, PROTO_TCP, &tcp(40000, 83, SYN, &big))),
            )
            .snap(14 + 12),
            at(
                T + 11,
                eth(&ipv6(R6, L6, PROTO_TCP, &tcp(40000, 84, SYN, &big))),
            )
            .snap(14 + 30),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("ICMP - 198.51.100.10 203.0.113.5 {} {} 1", T + 5, T + 5),
            format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1"),
            format!(
                "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 3,
                T + 3
            ),
            format!("TCP 23 198.51.100.10 203.0.113.5 {} {} 1", T + 1, T + 1),
            format!("TCP 25 198.51.100.10 203.0.113.7 {} {} 1", T + 6, T + 6),
            format!("UDP 53 198.51.100.10 203.0.113.7 {} {} 1", T + 2, T + 2),
            format!(
                "UDP 53 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 4,
                T + 4
            ),
        ],
    );
    assert_eq!(out.stat("packets"), 12);
    assert_eq!(out.stat("attempts"), 7);
    assert_eq!(out.stat("malformed"), 5);
}

#[test]
fn malformed_headers_are_skipped_and_counted() {
    let c = Case::new("malformed");
    let tcp_syn = tcp(40000, 22, SYN, &[]);
    let v4 = |f: &dyn Fn(&mut Ipv4Hdr), l4: &[u8]| {
        let mut h = Ipv4Hdr::new(R1, L1, PROTO_TCP);
        f(&mut h);
        eth(&h.build(l4))
    };
    let mut bad = vec![
        v4(&|h| h.ihl_override = Some(4), &tcp_syn), // IHL < 5
        v4(&|h| h.total_len_override = Some(16), &tcp_syn), // total length < header
        v4(&|h| h.ihl_override = Some(15), &tcp_syn), // 60-byte header, 40 bytes there
        eth(&ipv4(R1, L1, PROTO_TCP, &{
            let mut t = TcpHdr::new(40000, 22, SYN);
            t.data_offset_override = Some(4); // TCP data offset < 5
            t.build(&[])
        })),
        eth(&ipv4(R1, L1, PROTO_TCP, &{
            let mut t = TcpHdr::new(40000, 22, SYN);
            t.data_offset_override = Some(15); // 60-byte TCP header, 20 there
            t.build(&[])
        })),
        eth(&ipv4(R1, L1, PROTO_UDP, &udp(1, 53, &[])[..6])), // UDP < 8
        eth(&ipv4(R1, L1, PROTO_ICMP, &icmp(8, 0, [0; 4], &[])[..4])), // ICMP < 8
        eth(&ipv6(
            R6,
            L6,
            PROTO_ICMPV6,
            &icmpv6(128, 0, [0; 4], &[])[..4],
        )), // ICMPv6 < 8
        eth(&ipv4(R1, L1, PROTO_SCTP, &sctp(1, 2905, 0, &[])[..8])), // SCTP < 12
        eth(&ipv6(R6, L6, PROTO_TCP, &tcp_syn)[..30]),        // IPv6 header cut
        {
            // hop-by-hop header claiming 88 bytes, 28 there
            let mut body = ipv6_opts_header(PROTO_TCP, 0);
            body[1] = 10;
            body.extend_from_slice(&tcp_syn);
            eth(&ipv6(R6, L6, PROTO_HOPOPT, &body))
        },
        eth(&ipv4(R1, L1, PROTO_TCP, &tcp_syn))[..10].to_vec(), // Ethernet header cut
        {
            // VLAN tag cut short
            let f = eth_vlan(
                &[Vlan {
                    tpid: ETHERTYPE_VLAN,
                    vid: 5,
                }],
                &ipv4(R1, L1, PROTO_TCP, &tcp_syn),
            );
            f[..16].to_vec()
        },
    ];
    let n_bad = bad.len() as u64;
    let mut p: Vec<Packet> = bad
        .drain(..)
        .enumerate()
        .map(|(i, f)| at(T + i as u64, f))
        .collect();
    // Well-formed things that are not IP, and one attempt.
    p.push(at(
        T + 50,
        ethernet(MAC_A, MAC_B, &[], ETHERTYPE_ARP, &[0u8; 28]),
    ));
    p.push(at(T + 51, ethernet(MAC_A, MAC_B, &[], 0x88cc, &[0u8; 40])));
    p.push(at(T + 52, syn(R1, L1, 22)));
    let f = c.pcap("bad.pcap", &p);
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![format!(
            "TCP 22 198.51.100.10 203.0.113.5 {} {} 1",
            T + 52,
            T + 52
        )],
    );
    assert_eq!(out.stat("packets"), n_bad + 3);
    assert_eq!(out.stat("attempts"), 1);
    assert_eq!(out.stat("malformed"), n_bad);
}

// ---------------------------------------------------------------------------
// Link layers and file formats
// ---------------------------------------------------------------------------

#[test]
fn two_vlan_tags_are_decoded() {
    let c = Case::new("vlan");
    let q = |vid| Vlan {
        tpid: ETHERTYPE_VLAN,
        vid,
    };
    let ad = |vid| Vlan {
        tpid: ETHERTYPE_QINQ,
        vid,
    };
    let f = c.pcap(
        "vlan.pcap",
        &[
            at(T, eth_vlan(&[q(10)], &ip_syn(R1, L1, 22))),
            at(T + 1, eth_vlan(&[ad(100), q(10)], &ip_syn(R1, L1, 23))),
            at(T + 2, eth_vlan(&[q(100), q(10)], &ip_syn(R6, L6, 22))),
            at(
                T + 3,
                eth_vlan(&[q(7)], &ipv4(R2, L1, PROTO_UDP, &udp(5000, 53, b"q"))),
            ),
            at(
                T + 4,
                eth_vlan(&[q(7)], &ipv4(L1, R2, PROTO_UDP, &udp(53, 5000, b"a"))),
            ),
            at(
                T + 5,
                eth_vlan(
                    &[ad(1), q(2)],
                    &ipv4(R1, L1, PROTO_ICMP, &icmp(8, 0, echo_rest(1, 1), &[])),
                ),
            ),
            at(
                T + 6,
                eth_vlan(
                    &[ad(1), q(2)],
                    &ip(a(R1), a(L1), PROTO_TCP, &tcp(40000, 24, SYN | ACK, &[])),
                ),
            ),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("ICMP - 198.51.100.10 203.0.113.5 {} {} 1", T + 5, T + 5),
            format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1"),
            format!(
                "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 2,
                T + 2
            ),
            format!("TCP 23 198.51.100.10 203.0.113.5 {} {} 1", T + 1, T + 1),
            format!("UDP 53 198.51.100.10 203.0.113.7 {} {} 1", T + 3, T + 3),
        ],
    );
    assert_eq!(out.stat("malformed"), 0);
}

/// IP packets for the link-type tests, and the CSV they give.
fn link_scenario() -> (Vec<(u64, Vec<u8>)>, Vec<String>) {
    let pkts = vec![
        (T, ip_syn(R1, L1, 22)),
        (T + 1, ip_syn(R6, L6, 443)),
        (T + 2, ipv4(R2, L1, PROTO_UDP, &udp(5000, 53, b"q"))),
        (T + 3, ipv4(L1, R2, PROTO_UDP, &udp(53, 5000, b"a"))),
        (
            T + 4,
            ipv4(R1, L1, PROTO_ICMP, &icmp(8, 0, echo_rest(1, 1), b"ping")),
        ),
        (
            T + 5,
            ipv6(
                R6,
                L6,
                PROTO_ICMPV6,
                &icmpv6(128, 0, echo_rest(1, 1), b"ping"),
            ),
        ),
        (T + 6, ip_syn(L1, R1, 22)),
    ];
    let rows = rows![
        format!("ICMP - 198.51.100.10 203.0.113.5 {} {} 1", T + 4, T + 4),
        format!(
            "ICMPV6 - 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
            T + 5,
            T + 5
        ),
        format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1"),
        format!(
            "TCP 443 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
            T + 1,
            T + 1
        ),
        format!("UDP 53 198.51.100.10 203.0.113.7 {} {} 1", T + 2, T + 2),
    ];
    (pkts, rows.to_vec())
}

fn is_v4(ipb: &[u8]) -> bool {
    ipb[0] >> 4 == 4
}

#[test]
fn linux_cooked_and_raw_link_types() {
    let (pkts, want) = link_scenario();
    type Wrap = fn(&[u8]) -> Vec<u8>;
    let cases: [(&str, u32, Wrap); 4] = [
        ("sll", LINKTYPE_LINUX_SLL, |p| sll(0, ethertype_of(p), p)),
        ("sll2", LINKTYPE_LINUX_SLL2, |p| {
            sll2(0, ethertype_of(p), 2, p)
        }),
        ("raw", LINKTYPE_RAW, |p| p.to_vec()),
        ("ethernet", LINKTYPE_ETHERNET, |p| eth(p)),
    ];
    for (name, lt, wrap) in cases {
        let c = Case::new(name);
        let packets: Vec<Packet> = pkts.iter().map(|(t, p)| at(*t, wrap(p))).collect();
        let f = c.file(&format!("{name}.pcap"), &pcap_bytes(lt, &packets));
        let out = c.replay(&[], &[&f]);
        out.assert_ok();
        assert_eq!(
            c.csv(D1).as_deref(),
            Some(csv_text(&want).as_str()),
            "link type {name} ({lt})"
        );
        assert_eq!(out.stat("malformed"), 0, "link type {name}");
    }
    // LINKTYPE_IPV4 (228) and LINKTYPE_IPV6 (229): one family each.
    for (lt, v4) in [(LINKTYPE_IPV4, true), (LINKTYPE_IPV6, false)] {
        let c = Case::new(&format!("raw{lt}"));
        let packets: Vec<Packet> = pkts
            .iter()
            .filter(|(_, p)| is_v4(p) == v4)
            .map(|(t, p)| at(*t, p.clone()))
            .collect();
        let f = c.file("raw.pcap", &pcap_bytes(lt, &packets));
        c.replay(&[], &[&f]).assert_ok();
        let rows: Vec<String> = want
            .iter()
            .filter(|r| r.contains("2001:") != v4)
            .cloned()
            .collect();
        c.assert_csv(D1, &rows);
    }
}

#[test]
fn pcapng_files_read() {
    let (pkts, want) = link_scenario();
    for (name, lt) in [
        ("eth", LINKTYPE_ETHERNET),
        ("raw", LINKTYPE_RAW),
        ("sll2", LINKTYPE_LINUX_SLL2),
    ] {
        let c = Case::new(&format!("pcapng-{name}"));
        let packets: Vec<Packet> = pkts
            .iter()
            .map(|(t, p)| {
                let frame = match lt {
                    LINKTYPE_ETHERNET => eth(p),
                    LINKTYPE_LINUX_SLL2 => sll2(0, ethertype_of(p), 3, p),
                    _ => p.clone(),
                };
                Packet::new(*t, 123_456, frame)
            })
            .collect();
        let f = c.file("cap.pcapng", &pcapng_bytes(lt, &packets));
        let out = c.replay(&[], &[&f]);
        out.assert_ok();
        c.assert_csv(D1, &want);
        assert_eq!(out.stat("packets"), pkts.len() as u64);
    }
}

#[test]
fn pcapng_interface_with_unsupported_link_type_is_skipped() {
    let c = Case::new("pcapng-multi");
    // Interface 0: Ethernet; interface 1: LINKTYPE_USER0 (147).
    let packets = vec![
        (0, at(T, syn(R1, L1, 22))),
        (1, at(T + 1, syn(R1, L1, 23))),
        (0, at(T + 2, syn(R1, L1, 24))),
    ];
    let f = c.file(
        "multi.pcapng",
        &pcapng_bytes_multi(&[LINKTYPE_ETHERNET, 147], &packets),
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1"),
            format!("TCP 24 198.51.100.10 203.0.113.5 {} {} 1", T + 2, T + 2),
        ],
    );
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn ignore_addresses_and_ports_from_config() {
    let c = Case::new("ignore");
    let conf = c.file(
        "tsusen.conf",
        b"# tsusen test configuration\n\
          LOCAL_NETWORKS 198.51.100.0/24 2001:db8:100::/48\n\
          \n\
          IGNORE_ADDRESSES 203.0.113.9, 192.0.2.0/24, 198.51.100.20, 2001:db8:bad::9\n\
          IGNORE_PORTS 137-139, 445\n",
    );
    let ign = Ipv4Addr::new(203, 0, 113, 9);
    let f = c.pcap(
        "ign.pcap",
        &[
            at(T, syn(ign, L1, 22)),                              // source address
            at(T + 1, syn(Ipv4Addr::new(192, 0, 2, 77), L1, 22)), // source in a CIDR
            at(T + 2, syn(R1, L3, 22)),                           // destination address
            at(
                T + 3,
                syn("2001:db8:bad::9".parse::<Ipv6Addr>().unwrap(), L6, 22),
            ),
            at(T + 4, syn(R1, L1, 137)), // destination ports
            at(T + 5, syn(R1, L1, 138)),
            at(T + 6, syn(R1, L1, 139)),
            at(T + 7, syn(R1, L1, 445)),
            at(T + 8, eth_tcp(a(R1), 445, a(L1), 80, SYN)), // source port
            at(T + 9, udpf(R1, 5000, L1, 137)),
            at(T + 10, eth_icmp(ign, L1, 8)),
            // Not ignored:
            at(T + 11, syn(R1, L1, 22)),
            at(T + 12, syn(R1, L1, 136)),
            at(T + 13, syn(R1, L1, 140)),
            at(T + 14, syn(R6, L6, 22)),
        ],
    );
    let out = tsusen(&[
        "replay".into(),
        "--config".into(),
        conf.display().to_string(),
        "--log-dir".into(),
        c.logs_arg(),
        f.display().to_string(),
    ]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 1", T + 11, T + 11),
            format!(
                "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 14,
                T + 14
            ),
            format!("TCP 136 198.51.100.10 203.0.113.5 {} {} 1", T + 12, T + 12),
            format!("TCP 140 198.51.100.10 203.0.113.5 {} {} 1", T + 13, T + 13),
        ],
    );
    assert_eq!(out.stat("attempts"), 4);
}

#[test]
fn command_line_wins_over_config_file() {
    let c = Case::new("cliwins");
    let other_logs = c.path("conf-logs");
    std::fs::create_dir_all(&other_logs).unwrap();
    let conf = c.file(
        "tsusen.conf",
        format!(
            "LOCAL_NETWORKS 10.0.0.0/8\nLOG_DIRECTORY {}\nFLOW_TIMEOUT 10\n",
            other_logs.display()
        )
        .as_bytes(),
    );
    let f = c.pcap(
        "cap.pcap",
        &[
            at(T, syn(R1, L1, 22)),
            at(T + 1, syn(R1, Ipv4Addr::new(10, 1, 2, 3), 22)),
        ],
    );
    let out = tsusen(&[
        "replay".into(),
        "--config".into(),
        conf.display().to_string(),
        "--local".into(),
        LOCAL_V4.into(),
        "--log-dir".into(),
        c.logs_arg(),
        f.display().to_string(),
    ]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1")],
    );
    assert!(
        !other_logs.join(format!("{D1}.csv")).exists(),
        "--log-dir must win over LOG_DIRECTORY"
    );
}

// ---------------------------------------------------------------------------
// Days, restart, merge
// ---------------------------------------------------------------------------

#[test]
fn day_change_writes_two_files() {
    let c = Case::new("daychange");
    let m = MIDNIGHT;
    let f = c.pcap(
        "days.pcap",
        &[
            at(m - 100, syn(R1, L1, 22)),
            Packet::new(m - 1, 999_999, syn(R1, L1, 22)),
            at(m - 50, eth_icmp(R2, L1, 8)),
            at(m, syn(R1, L1, 22)), // 00:00:00 belongs to the new day
            at(m + 5, syn(R1, L1, 22)),
            at(m + 7, syn(R6, L6, 80)),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("ICMP - 198.51.100.10 203.0.113.7 {} {} 1", m - 50, m - 50),
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 2", m - 100, m - 1),
        ],
    );
    c.assert_csv(
        D2,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {m} {} 2", m + 5),
            format!(
                "TCP 80 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                m + 7,
                m + 7
            ),
        ],
    );
    c.assert_days(&[D1, D2]);
    assert_eq!(out.stat("attempts"), 6);
}

#[test]
fn restart_continues_the_days_file() {
    let c = Case::new("restart");
    let first = c.pcap(
        "a.pcap",
        &[
            at(T + 10, syn(R1, L1, 22)),
            at(T + 20, syn(R1, L1, 22)),
            at(T + 30, syn(R2, L1, 80)),
            at(T + 40, syn(R6, L6, 22)),
        ],
    );
    let second = c.pcap(
        "b.pcap",
        &[
            at(T + 5, syn(R1, L1, 22)), // earlier than the first run's first_seen
            at(T + 50, syn(R3, L1, 443)),
            at(T + 100, syn(R1, L1, 22)),
            at(T + 110, eth_icmp(R2, L1, 8)),
        ],
    );
    c.replay(&[], &[&first]).assert_ok();
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 2", T + 10, T + 20),
            format!(
                "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
                T + 40,
                T + 40
            ),
            format!("TCP 80 198.51.100.10 203.0.113.7 {} {} 1", T + 30, T + 30),
        ],
    );
    c.replay(&[], &[&second]).assert_ok();
    let want = rows![
        format!("ICMP - 198.51.100.10 203.0.113.7 {} {} 1", T + 110, T + 110),
        format!("TCP 22 198.51.100.10 203.0.113.5 {} {} 4", T + 5, T + 100),
        format!(
            "TCP 22 2001:db8:100::10 2001:db8:bad::1 {} {} 1",
            T + 40,
            T + 40
        ),
        format!("TCP 80 198.51.100.10 203.0.113.7 {} {} 1", T + 30, T + 30),
        format!("TCP 443 198.51.100.10 192.0.2.1 {} {} 1", T + 50, T + 50),
    ];
    c.assert_csv(D1, &want);

    // The same two files in one run give the same file.
    let one = Case::new("restart-onerun");
    one.replay(&[], &[&first, &second]).assert_ok();
    one.assert_csv(D1, &want);

    // A later run on the next day leaves the finished day's file alone.
    let third = c.pcap("c.pcap", &[at(MIDNIGHT + 60, syn(R1, L1, 22))]);
    c.replay(&[], &[&third]).assert_ok();
    c.assert_csv(D1, &want);
    c.assert_csv(
        D2,
        &rows![format!(
            "TCP 22 198.51.100.10 203.0.113.5 {} {} 1",
            MIDNIGHT + 60,
            MIDNIGHT + 60
        )],
    );
}

#[test]
fn reads_a_file_written_by_the_original_tsusen() {
    let c = Case::new("original");
    // The original's columns, rows in no particular order (it sorted as text).
    let old = format!(
        "{HEADER}\n\
         TCP 80 198.51.100.10 203.0.113.7 1710030000 1710030100 5\n\
         UDP 161 198.51.100.10 192.0.2.44 1710029200 1710029300 2\n\
         TCP 135 198.51.100.10 203.0.113.5 1710029000 1710029500 3\n\
         ICMP - 198.51.100.10 203.0.113.5 1710029100 1710029100 1\n\
         TCP 22 198.51.100.10 203.0.113.5 1710029900 1710029950 2\n\
         TCP 1080 198.51.100.9 203.0.113.5 1710029000 1710029000 1\n"
    );
    std::fs::write(c.logs.join(format!("{D1}.csv")), old).unwrap();
    let f = c.pcap(
        "new.pcap",
        &[
            at(T, syn(R1, L1, 22)),
            at(T + 1, syn(R1, L1, 22)),
            at(T + 2, syn(R1, L1, 135)),
            at(T + 3, eth_icmp(Ipv4Addr::new(203, 0, 113, 6), L1, 8)),
            at(T + 4, udpf(R3, 999, L1, 161)),
        ],
    );
    c.replay(&[], &[&f]).assert_ok();
    c.assert_csv(
        D1,
        &rows![
            "ICMP - 198.51.100.10 203.0.113.5 1710029100 1710029100 1",
            format!("ICMP - 198.51.100.10 203.0.113.6 {} {} 1", T + 3, T + 3),
            format!("TCP 22 198.51.100.10 203.0.113.5 1710029900 {} 4", T + 1),
            "TCP 80 198.51.100.10 203.0.113.7 1710030000 1710030100 5",
            format!("TCP 135 198.51.100.10 203.0.113.5 1710029000 {} 4", T + 2),
            "TCP 1080 198.51.100.9 203.0.113.5 1710029000 1710029000 1",
            format!("UDP 161 198.51.100.10 192.0.2.1 {} {} 1", T + 4, T + 4),
            "UDP 161 198.51.100.10 192.0.2.44 1710029200 1710029300 2",
        ],
    );
}

// ---------------------------------------------------------------------------
// Bounded memory: early flush, tiny flow table
// ---------------------------------------------------------------------------

#[test]
fn early_flush_with_a_tiny_table_gives_the_same_csv() {
    let (packets, model) = bulk_traffic(3000);
    let keys: usize = model.days.values().map(|d| d.len()).sum();
    assert!(
        keys > 500,
        "the traffic must be far larger than the table ({keys} keys)"
    );

    let big = Case::new("flush-big");
    let f = big.pcap("bulk.pcap", &packets);
    let out = big.replay(&[], &[&f]);
    out.assert_ok();
    assert_eq!(out.stat("attempts"), model.total());
    for day in [D1, D2] {
        assert_eq!(
            big.csv(day).unwrap(),
            model.csv(day),
            "{day} with the default table"
        );
    }

    let small = Case::new("flush-small");
    let out = small.replay(&["--table-capacity", "4"], &[&f]);
    out.assert_ok();
    assert_eq!(out.stat("attempts"), model.total());
    for day in [D1, D2] {
        assert_eq!(
            small.csv(day).unwrap(),
            model.csv(day),
            "{day} with --table-capacity 4"
        );
    }
    small.assert_days(&[D1, D2]);
    // If the summary reports early flushes (an optional field), there were some.
    if out.stdout.contains("early flushes") {
        assert!(out.stat("early flushes") > 0, "{}", out.stdout);
    }
}

/// A replay hands most frames of a busy link (TCP segments with ACK set) to the sensor's
/// shortcut: one of the same second as the frame before it is counted with that frame rather
/// than waiting in a slot of its own. Around midnight, with period flushes every 2 s, ACK
/// segments of every kind (IPv4 and IPv6, VLAN-tagged, cut short, out of time order) among
/// the attempts: the counters and the day files are those of the model, and the same as a
/// paced replay's, which counts each frame as it comes, alone.
#[test]
fn connections_under_way_count_as_frames_and_change_no_row() {
    let mut rng = Rng(0x7473_7573_656e_0acc);
    let mut m = Model::default();
    let mut packets = Vec::new();
    let (mut cut, mut acks) = (0u64, 0u64);
    let vlan = [Vlan {
        tpid: 0x8100,
        vid: 7,
    }];
    let start = MIDNIGHT - 20;
    // An ACK segment first of all: nothing waits before it.
    packets.push(at(start, tcpf(R1, L1, 443, ACK)));
    acks += 1;
    for i in 0..4000u64 {
        let sec = start + i * 40 / 4000;
        let r = rng.next();
        let src4 = Ipv4Addr::new(203, 0, 113, ((r >> 8) % 50 + 1) as u8);
        let dst4 = Ipv4Addr::new(198, 51, 100, ((r >> 16) % 4 + 1) as u8);
        let src6 = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, ((r >> 8) % 30 + 1) as u16);
        let port = [22u16, 80, 443, 3389][((r >> 24) % 4) as usize];
        let (sec, frame) = match r % 12 {
            0..=2 => {
                m.add("TCP", Some(port), a(dst4), a(src4), sec);
                (sec, syn(src4, dst4, port))
            }
            3 => {
                m.add("UDP", Some(53), a(dst4), a(src4), sec);
                (sec, udpf(src4, 5000, dst4, 53))
            }
            4 => {
                m.add("TCP", Some(port), a(L6), a(src6), sec);
                (sec, syn(src6, L6, port))
            }
            5 => (sec, tcpf(src4, dst4, port, ACK | PSH)),
            6 => (sec, tcpf(dst4, src4, 40000, ACK)),
            7 => (sec, tcpf(src6, L6, port, ACK)),
            8 => (
                sec,
                eth_vlan(
                    &vlan,
                    &ip(a(src4), a(dst4), PROTO_TCP, &tcp(40000, port, ACK, &[])),
                ),
            ),
            9 => {
                // Out of time order: a second or two behind the frames around it.
                (
                    sec.saturating_sub(1 + (r >> 40) % 2),
                    tcpf(src4, dst4, port, ACK | FIN),
                )
            }
            10 => {
                // Cut inside its TCP header, after the flags: malformed, whatever they say.
                cut += 1;
                packets.push(Packet::at(sec, tcpf(src4, dst4, port, ACK)).snap(14 + 20 + 16));
                continue;
            }
            _ => (sec, tcpf(src4, dst4, port, ACK)),
        };
        if r % 12 >= 5 {
            acks += 1;
        }
        packets.push(Packet::new(sec, (r % 1_000_000) as u32, frame));
    }
    assert!(
        acks > 1500 && cut > 200,
        "{acks} ACK segments, {cut} cut short"
    );

    let fast = Case::new("under-way-fast");
    let f = fast.pcap("mixed.pcap", &packets);
    let a_out = fast.replay(&["--write-period", "2"], &[&f]);
    a_out.assert_ok();
    let paced = Case::new("under-way-paced");
    let b_out = paced.replay(
        &["--write-period", "2", "--realtime", "--speed", "1000000"],
        &[&f],
    );
    b_out.assert_ok();
    for out in [&a_out, &b_out] {
        assert_eq!(out.stat("packets"), packets.len() as u64, "{}", out.stdout);
        assert_eq!(out.stat("attempts"), m.total(), "{}", out.stdout);
        assert_eq!(out.stat("malformed"), cut, "{}", out.stdout);
        assert_eq!(out.stat("ignored"), 0, "{}", out.stdout);
    }
    for day in [D1, D2] {
        assert_eq!(fast.csv(day).unwrap(), m.csv(day), "{day}");
        assert_eq!(paced.csv(day).unwrap(), m.csv(day), "{day}, paced");
    }
    fast.assert_days(&[D1, D2]);
}

#[test]
fn tiny_flow_table_does_not_panic() {
    // Only remote-initiated traffic: evictions cannot change the counts.
    let (packets, model) = bulk_traffic(2000);
    let c = Case::new("flowcap");
    let f = c.pcap("bulk.pcap", &packets);
    let out = c.replay(&["--flow-capacity", "2"], &[&f]);
    out.assert_ok();
    // If the summary reports evictions (an optional field), there were some.
    if out.stdout.contains("flows evicted") {
        assert!(out.stat("flows evicted") > 0, "{}", out.stdout);
    }
    for day in [D1, D2] {
        assert_eq!(
            c.csv(day).unwrap(),
            model.csv(day),
            "{day} with --flow-capacity 2"
        );
    }

    // Many two-way flows through a two-entry table: no panic, a valid file.
    let c2 = Case::new("flowcap2");
    let mut p = Vec::new();
    for i in 0..500u64 {
        let r = Ipv4Addr::new(203, 0, 113, (i % 200) as u8 + 1);
        p.push(at(T + i, udpf(L1, 10_000 + i as u16, r, 53)));
        p.push(at(T + i, udpf(r, 2000 + i as u16, L1, 161)));
        p.push(at(T + i, udpf(r, 53, L1, 10_000 + i as u16)));
        p.push(at(T + i, udpf(L1, 161, r, 2000 + i as u16)));
        p.push(at(
            T + i,
            eth_raw(a(r), a(L1), PROTO_GRE, &gre(0x0800, &[])),
        ));
    }
    let f2 = c2.pcap("twoway.pcap", &p);
    let out = c2.replay(&["--flow-capacity", "2"], &[&f2]);
    out.assert_ok();
    let text = c2.csv(D1).expect("a CSV file");
    assert!(text.starts_with(&format!("{HEADER}\n")));
    assert!(text.lines().count() > 1);
}

// ---------------------------------------------------------------------------
// Output format: sort order, IPv6 text
// ---------------------------------------------------------------------------

#[test]
fn rows_are_sorted_by_proto_port_number_and_address() {
    let c = Case::new("sort");
    let r10 = Ipv4Addr::new(203, 0, 113, 10);
    // Deliberately out of order.
    let frames = vec![
        udpf(R1, 1, L1, 10000),
        syn(R1, L1, 8080),
        syn(R6, L6, 22),
        syn(R1, L1, 1024),
        eth_icmpv6(R6, L6, 128),
        syn(r10, L1, 22),
        syn(R1, L1, 443),
        syn(R6, L6B, 22),
        udpf(R1, 1, L1, 9),
        syn(R1, L1, 22),
        eth_icmp(R1, L1, 8),
        syn(R3, L1, 22),
        syn(R1, L2, 22),
        eth_raw(a(R1), a(L1), PROTO_GRE, &gre(0x0800, &[])),
        syn(R1, L1, 2),
    ];
    let p: Vec<Packet> = frames.into_iter().map(|f| at(T, f)).collect();
    let f = c.pcap("sort.pcap", &p);
    c.replay(&[], &[&f]).assert_ok();
    let rows: Vec<String> = [
        "GRE - 198.51.100.10 203.0.113.5",
        "ICMP - 198.51.100.10 203.0.113.5",
        "ICMPV6 - 2001:db8:100::10 2001:db8:bad::1",
        "TCP 2 198.51.100.10 203.0.113.5",
        "TCP 22 198.51.100.9 203.0.113.5",
        "TCP 22 198.51.100.10 192.0.2.1",
        "TCP 22 198.51.100.10 203.0.113.5",
        "TCP 22 198.51.100.10 203.0.113.10",
        "TCP 22 2001:db8:100::9 2001:db8:bad::1",
        "TCP 22 2001:db8:100::10 2001:db8:bad::1",
        "TCP 443 198.51.100.10 203.0.113.5",
        "TCP 1024 198.51.100.10 203.0.113.5",
        "TCP 8080 198.51.100.10 203.0.113.5",
        "UDP 9 198.51.100.10 203.0.113.5",
        "UDP 10000 198.51.100.10 203.0.113.5",
    ]
    .iter()
    .map(|r| format!("{r} {T} {T} 1"))
    .collect();
    c.assert_csv(D1, &rows);
}

#[test]
fn ipv6_addresses_are_written_in_rfc5952_form() {
    let c = Case::new("rfc5952");
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xbad);
    let src2 = Ipv6Addr::new(0x2001, 0x0db8, 0x00ba, 0, 0, 0, 0, 0x0001);
    let dsts = [
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0xabcd, 0xef00, 0, 0, 0xa),
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 1, 1, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 1, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 1, 0, 0),
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1),
    ];
    let mut p: Vec<Packet> = dsts.iter().map(|d| at(T, syn(src, *d, 22))).collect();
    p.push(at(T + 1, syn(src2, dsts[4], 23)));
    let f = c.pcap("v6.pcap", &p);
    c.replay(&[], &[&f]).assert_ok();
    let t1 = T + 1;
    c.assert_csv(
        D1,
        &rows![
            format!("TCP 22 2001:db8:100::1 2001:db8::bad {T} {T} 1"),
            format!("TCP 22 2001:db8:100::1:0:0 2001:db8::bad {T} {T} 1"),
            format!("TCP 22 2001:db8:100:0:1::1 2001:db8::bad {T} {T} 1"),
            format!("TCP 22 2001:db8:100:1:0:1:1:1 2001:db8::bad {T} {T} 1"),
            format!("TCP 22 2001:db8:100:abcd:ef00::a 2001:db8::bad {T} {T} 1"),
            format!("TCP 23 2001:db8:100::1 2001:db8:ba::1 {t1} {t1} 1"),
        ],
    );
}

// ---------------------------------------------------------------------------
// Command line and error handling
// ---------------------------------------------------------------------------

#[test]
fn replay_without_local_networks_exits_2() {
    let c = Case::new("nolocal");
    let f = c.pcap("a.pcap", &[at(T, syn(R1, L1, 22))]);
    let out = tsusen(&[
        "replay".into(),
        "--log-dir".into(),
        c.logs_arg(),
        f.display().to_string(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.to_lowercase().contains("local"),
        "the message must say local networks are missing: {}",
        out.stderr
    );
    c.assert_days(&[]);
}

#[test]
fn unknown_option_exits_2() {
    let c = Case::new("badopt");
    let f = c.pcap("a.pcap", &[at(T, syn(R1, L1, 22))]);
    let out = c.replay(&["--bogus-option"], &[&f]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("bogus"),
        "name the wrong option: {}",
        out.stderr
    );
    let out = tsusen(&["no-such-subcommand".into()]);
    out.assert_code(2);
    assert!(!out.stderr.trim().is_empty());
    let out = c.replay(&["--table-capacity", "many"], &[&f]);
    out.assert_code(2);
}

#[test]
fn help_on_each_subcommand() {
    for (sub, opt) in [("replay", "--local"), ("run", "--interface")] {
        let out = tsusen(&[sub.into(), "--help".into()]);
        out.assert_ok();
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains(opt),
            "`tsusen {sub} --help` mentions {opt}: {text}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_capture_is_refused_by_name() {
    let c = Case::new("notcap");
    let bad = c.file("notcap.pcap", b"hello, this is not a capture at all\n");
    let good = c.pcap("good.pcap", &[at(T, syn(R1, L1, 22))]);
    let out = c.replay(&[], &[&bad, &good]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("notcap.pcap"),
        "name the file: {}",
        out.stderr
    );
    // The other file is still processed.
    c.assert_csv(
        D1,
        &rows![format!("TCP 22 198.51.100.10 203.0.113.5 {T} {T} 1")],
    );

    // Unsupported link type (LINKTYPE_USER0).
    let c = Case::new("badlink");
    let f = c.file("user0.pcap", &pcap_bytes(147, &[at(T, ip_syn(R1, L1, 22))]));
    let out = c.replay(&[], &[&f]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("user0.pcap"),
        "name the file: {}",
        out.stderr
    );

    // Missing file, empty file: a message naming it, no panic.
    let c = Case::new("missing");
    let missing = c.path("missing.pcap");
    let out = c.replay(&[], &[&missing]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("missing.pcap"),
        "name the file: {}",
        out.stderr
    );
    let empty = c.file("empty.pcap", b"");
    let out = c.replay(&[], &[&empty]);
    assert!(
        matches!(out.code, Some(0) | Some(1)),
        "{:?} {}",
        out.code,
        out.stderr
    );
    assert!(
        out.stderr.contains("empty.pcap"),
        "name the file: {}",
        out.stderr
    );
}

#[test]
fn a_truncated_capture_reports_the_packets_read() {
    let packets: Vec<Packet> = (0..8u16)
        .map(|i| at(T + i as u64, syn(R1, L1, 1000 + i)))
        .collect();
    let whole = pcap_bytes(LINKTYPE_ETHERNET, &packets);
    let rec = 16 + packets[0].data.len();
    let start8 = 24 + 7 * rec;
    let ng = pcapng_bytes(LINKTYPE_ETHERNET, &packets);
    let ng_cut = ng.len() - 20; // inside the last enhanced packet block
    let cuts: [(&str, Vec<u8>); 3] = [
        ("cut-in-data.pcap", whole[..start8 + 16 + 20].to_vec()),
        ("cut-in-record-header.pcap", whole[..start8 + 8].to_vec()),
        ("cut.pcapng", ng[..ng_cut].to_vec()),
    ];
    let want: Vec<String> = (0..7u64)
        .map(|i| {
            format!(
                "TCP {} 198.51.100.10 203.0.113.5 {} {} 1",
                1000 + i,
                T + i,
                T + i
            )
        })
        .collect();
    for (name, bytes) in cuts {
        let c = Case::new(&format!("cut-{}", name.replace('.', "-")));
        let f = c.file(name, &bytes);
        let out = c.replay(&[], &[&f]);
        out.assert_ok();
        assert!(
            out.stderr.contains(name),
            "{name}: name the file: {}",
            out.stderr
        );
        assert!(
            numbers_in(&out.stderr, &f).contains(&7),
            "{name}: say 7 packets were read before the cut: {}",
            out.stderr
        );
        c.assert_csv(D1, &want);
        assert_eq!(out.stat("packets"), 7, "{name}");
    }
}

#[test]
fn config_errors_name_file_line_and_key() {
    let c = Case::new("conferr");
    let f = c.pcap("a.pcap", &[at(T, syn(R1, L1, 22))]);
    let cases = [
        (
            "unknown.conf",
            "# test\nLOCAL_NETWORKS 198.51.100.0/24\n\nFOO_BAR 1\n",
            4,
            "FOO_BAR",
        ),
        (
            "badvalue.conf",
            "LOCAL_NETWORKS 198.51.100.0/24\nFLOW_TIMEOUT abc\n",
            2,
            "FLOW_TIMEOUT",
        ),
        (
            "badcidr.conf",
            "# nets\n# more\nLOCAL_NETWORKS 198.51.100.0/99\n",
            3,
            "LOCAL_NETWORKS",
        ),
    ];
    for (name, text, line, key) in cases {
        let conf = c.file(name, text.as_bytes());
        let out = tsusen(&[
            "replay".into(),
            "--config".into(),
            conf.display().to_string(),
            "--log-dir".into(),
            c.logs_arg(),
            f.display().to_string(),
        ]);
        out.assert_code(2);
        assert!(
            out.stderr.contains(name),
            "{name}: name the file: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(key),
            "{name}: name the key {key}: {}",
            out.stderr
        );
        assert!(
            numbers_in(&out.stderr, &conf).contains(&line),
            "{name}: name line {line}: {}",
            out.stderr
        );
    }
    c.assert_days(&[]);
}

#[test]
fn summary_line_counts() {
    let c = Case::new("summary");
    let f = c.pcap(
        "s.pcap",
        &[
            at(T, syn(R1, L1, 22)),
            at(T + 1, syn(R1, L1, 22)),
            at(T + 2, tcpf(L1, R1, 40000, SYN | ACK)),
            at(T + 3, eth(&ipv4(R1, L1, PROTO_UDP, &[1, 2, 3]))), // malformed UDP
            at(T + 4, syn(R2, L1, 80)),
        ],
    );
    let out = c.replay(&[], &[&f]);
    out.assert_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("packets"))
        .unwrap_or("");
    assert!(
        line.starts_with("replay:"),
        "summary line: {:?}",
        out.stdout
    );
    assert_eq!(out.stat("packets"), 5);
    assert_eq!(out.stat("attempts"), 3);
    assert_eq!(out.stat("malformed"), 1);
    assert_eq!(out.stat("rows"), 2);
    assert!(
        line.contains("seconds") && line.contains("packets/s"),
        "{line}"
    );
}
