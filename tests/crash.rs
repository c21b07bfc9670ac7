//! Crash torture: `tsusen replay --realtime` on a steady stream crossing midnight, killed with
//! SIGKILL at random moments (and, in half the runs, stopping itself at fault points between
//! the steps of a write), restarted each time from its snapshot. After every kill: every line
//! of every CSV parses, each file is a sequence of sorted runs, no count ever goes down, and no
//! temporary file outlives the restart that follows. At the end the files are fully sorted
//! with one row per key, no key has fewer attempts than in an uninterrupted run, and the excess
//! is at most the attempts of the flush periods that were cut short.

mod common;

use common::pcapgen::*;
use common::rng::Rng;
use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_tsusen");
/// Attempts per second of packet time in the stream (every packet below is one, or a reply).
const RATE: u64 = 12;
const SECONDS: u64 = 1500;
const WRITE_PERIOD: u64 = 5;
const SPEED: &str = "40";
const KILLS: usize = 100;

/// Inbound SYNs from a rolling set of sources, inbound UDP queries, and our own UDP queries
/// answered from outside (replies that must never count, even across a restart).
fn stream(path: &Path) -> u64 {
    let start = 1_710_028_800 - 700; // 23:48:20 UTC: midnight falls inside the stream
    let ours = |n: u64| IpAddr::V4(Ipv4Addr::new(198, 51, 100, (n % 50) as u8 + 1));
    let theirs = |n: u64| IpAddr::V4(Ipv4Addr::from(0xcb00_7100u32 + (n % 4000) as u32));
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut packets = Vec::new();
    let mut attempts = 0;
    for s in 0..SECONDS {
        for _ in 0..RATE {
            let r = rng.next();
            let (src, dst) = (theirs(r >> 8), ours(r >> 40));
            let frame = match r % 10 {
                0..=5 => {
                    attempts += 1;
                    ip(
                        src,
                        dst,
                        PROTO_TCP,
                        &tcp(40_000, 1 + (r >> 20) as u16 % 200, SYN, &[]),
                    )
                }
                6..=7 => {
                    attempts += 1;
                    ip(
                        src,
                        dst,
                        PROTO_UDP,
                        &udp(5000 + (r >> 24) as u16 % 50, 53, b"q"),
                    )
                }
                _ => {
                    // Our query out, its answer back a moment later: one flow, ours.
                    let sport = 10_000 + (r >> 12) as u16 % 3000;
                    packets.push(Packet::at(
                        start + s,
                        eth(&ip(dst, src, PROTO_UDP, &udp(sport, 123, b"q"))),
                    ));
                    ip(src, dst, PROTO_UDP, &udp(123, sport, b"a"))
                }
            };
            packets.push(Packet::at(start + s, eth(&frame)));
        }
    }
    write_pcap(path, LINKTYPE_ETHERNET, &packets).unwrap();
    attempts
}

type Totals = BTreeMap<String, u64>;

/// Reads every CSV: each line must parse, each file must be sorted runs (a run restarts where
/// the order goes back); returns per-key totals and whether every file is one sorted run.
fn read_all(dir: &Path) -> (Totals, bool) {
    let mut totals = Totals::new();
    let mut clean = true;
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".csv") || name.starts_with('.') {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("proto dst_port dst_ip src_ip first_seen last_seen count"),
            "{name}: header"
        );
        let mut prev: Option<(String, u16, u32, u32)> = None;
        let complete = text.ends_with('\n');
        let n = text.lines().count();
        for (i, line) in lines.enumerate() {
            if !complete && i + 2 == n {
                // An append cut by the kill, repaired at the next start. It may have all seven
                // fields and still be cut short (a count of 1 for 17); the next start cuts it
                // all the same, so it never counts.
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 7, "{name}:{}: {line:?}", i + 2);
            let v4 = |s: &str| {
                u32::from(
                    s.parse::<Ipv4Addr>()
                        .unwrap_or_else(|_| panic!("{name}: {line}")),
                )
            };
            let key = (f[0].to_string(), f[1].parse().unwrap(), v4(f[2]), v4(f[3]));
            let count: u64 = f[6].parse().unwrap();
            assert!(f[4].parse::<u64>().unwrap() <= f[5].parse::<u64>().unwrap());
            if let Some(p) = &prev {
                if *p >= key {
                    clean = false; // a new run begins (or a key repeats across runs)
                }
            }
            prev = Some(key.clone());
            *totals
                .entry(format!("{name} {} {} {} {}", key.0, key.1, key.2, key.3))
                .or_default() += count;
        }
    }
    (totals, clean)
}

fn temp_files(dir: &Path, older_than: SystemTime) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < older_than)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn replay(pcap: &Path, logs: &Path, state: &Path, realtime: bool, fault: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.args(["replay", "--local", "198.51.100.0/24", "--write-period"])
        .arg(WRITE_PERIOD.to_string())
        .arg("--log-dir")
        .arg(logs)
        .arg("--state-file")
        .arg(state);
    if realtime {
        c.args(["--realtime", "--speed", SPEED]);
    }
    c.arg(pcap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = fault {
        c.env("TSUSEN_FAULT", p);
    }
    c
}

#[test]
fn killed_at_random_and_at_fault_points_loses_at_most_the_cut_periods() {
    let dir = std::env::temp_dir().join(format!("tsusen-crash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("stream.pcap");
    let attempts = stream(&pcap);
    let reference = dir.join("reference");
    let st = replay(&pcap, &reference, &dir.join("ref-state.bin"), false, None)
        .status()
        .unwrap();
    assert!(st.success());
    let (want, clean) = read_all(&reference);
    assert!(clean);
    assert_eq!(want.values().sum::<u64>(), attempts);

    let logs = dir.join("logs");
    let state = dir.join("state.bin");
    let mut rng = Rng(0x7473_7573_656e_0003);
    let mut seen = Totals::new();
    let (mut kills, mut self_stops, mut finished_early) = (0, 0, 0);
    let started = Instant::now();
    while kills + self_stops < KILLS {
        let fault = (rng.below(2) == 0).then_some("0.15");
        let restart = SystemTime::now();
        let mut child = replay(&pcap, &logs, &state, true, fault).spawn().unwrap();
        let wait = Duration::from_millis(60 + rng.below(400) as u64);
        let t = Instant::now();
        let mut status = None;
        while t.elapsed() < wait {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            sleep(Duration::from_millis(5));
        }
        match status {
            Some(s) if s.success() => {
                finished_early += 1;
                break;
            }
            Some(s) => {
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&s),
                    Some(9),
                    "the sensor failed rather than stopping at a fault point: {s}"
                );
                self_stops += 1;
            }
            None => {
                // Temporary files of an earlier life must be gone once this one started.
                let stale = temp_files(&logs, restart);
                assert!(stale.is_empty(), "left behind: {stale:?}");
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        if logs.exists() {
            let (now, _) = read_all(&logs);
            for (k, v) in &seen {
                let n = now.get(k).copied().unwrap_or(0);
                assert!(n >= *v, "{k}: count went down from {v} to {n}");
            }
            seen = now;
        }
    }
    // The last life runs to the end.
    let st = replay(&pcap, &logs, &state, false, None).status().unwrap();
    assert!(st.success());
    let (got, clean) = read_all(&logs);
    assert!(
        clean,
        "after a clean stop every file is one sorted run with one row per key"
    );
    assert!(temp_files(&logs, SystemTime::now()).is_empty());
    let mut excess = 0;
    for (k, w) in &want {
        let g = got.get(k).copied().unwrap_or(0);
        assert!(
            g >= *w,
            "{k}: {g} attempts, an uninterrupted run counts {w}"
        );
        excess += g - w;
    }
    for k in got.keys() {
        assert!(
            want.contains_key(k),
            "{k}: a row the uninterrupted run does not have"
        );
    }
    // A kill between a flush's CSV write and its snapshot replays that period once more.
    let bound = (kills + self_stops) as u64 * RATE * WRITE_PERIOD;
    eprintln!(
        "crash torture: {kills} SIGKILLs, {self_stops} stops at fault points, {finished_early} early finishes, \
         {:.1} s; {} attempts uninterrupted, {} after the torture (excess {excess}, bound {bound})",
        started.elapsed().as_secs_f64(),
        attempts,
        got.values().sum::<u64>()
    );
    assert!(excess <= bound, "excess {excess} over the bound {bound}");
    fs::remove_dir_all(&dir).unwrap();
}
