//! Benchmark: `tsusen replay` against tcpdump on the same generated capture.
//!
//! `cargo bench --bench replay [-- --runs N --packets N --snaplen N --keep]`
//! (or the environment variables TSUSEN_BENCH_RUNS, TSUSEN_BENCH_PACKETS,
//! TSUSEN_BENCH_SNAPLEN; TSUSEN_BIN overrides the binary under test).
//!
//! 1. Generates the realistic mixed capture of `examples/gencap.rs` (about one
//!    million packets crossing UTC midnight) into cargo's target tmp dir.
//! 2. Runs, alternately, N times each (default 5), after one warm-up run each:
//!    - `tsusen replay --local 198.51.100.0/24 --local 2001:db8:100::/48 --log-dir DIR FILE`
//!    - `tcpdump -n -r FILE -w /dev/null '(tcp[13] == 2) or not tcp'`
//! 3. Prints the median wall-clock times, the ratio ours/tcpdump and the peak
//!    RSS of each (from `/usr/bin/time -f %M` when present, else by polling
//!    VmHWM in /proc/PID/status).
//!
//! Skips with a printed reason when tcpdump is missing.

#[path = "../examples/gencap.rs"]
#[allow(dead_code)]
mod gencap;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TCPDUMP_FILTER: &str = "(tcp[13] == 2) or not tcp";

struct Opts {
    runs: usize,
    packets: u64,
    snaplen: usize,
    keep: bool,
}

fn opts() -> Opts {
    let env = |k: &str| std::env::var(k).ok();
    let mut o = Opts {
        runs: env("TSUSEN_BENCH_RUNS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
        packets: env("TSUSEN_BENCH_PACKETS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(gencap::DEFAULT_PACKETS),
        snaplen: env("TSUSEN_BENCH_SNAPLEN")
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX),
        keep: false,
    };
    // cargo bench passes `--bench` (and maybe a filter); ignore what we don't know.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let next = args
            .get(i + 1)
            .and_then(|v| v.replace('_', "").parse::<u64>().ok());
        match (args[i].as_str(), next) {
            ("--runs", Some(n)) => {
                o.runs = n.max(1) as usize;
                i += 1;
            }
            ("--packets", Some(n)) => {
                o.packets = n.max(1);
                i += 1;
            }
            ("--snaplen", Some(n)) => {
                o.snaplen = n.max(1) as usize;
                i += 1;
            }
            ("--keep", _) => o.keep = true,
            _ => {}
        }
        i += 1;
    }
    o
}

/// The first of `names` found on PATH (or in /usr/sbin, /sbin).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One timed run: wall time, peak RSS in KiB (if known), stdout.
struct RunResult {
    wall: Duration,
    rss_kib: Option<u64>,
    stdout: String,
}

/// Run `cmd args` with stdout captured and stderr discarded (or shown on
/// failure); peak RSS via `/usr/bin/time -f %M -o FILE` when available.
fn timed(cmd: &Path, args: &[String], time_bin: Option<&Path>, scratch: &Path) -> RunResult {
    let rss_file = scratch.join("rss.txt");
    let _ = std::fs::remove_file(&rss_file);
    let mut c = match time_bin {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&rss_file)
                .arg(cmd)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(cmd);
            c.args(args);
            c
        }
    };
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", cmd.display()));
    let pid = child.id();
    // Without /usr/bin/time: poll the high-water mark while it runs.
    let poller = if time_bin.is_none() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            let mut peak = 0u64;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    for l in st.lines() {
                        if let Some(v) = l.strip_prefix("VmHWM:") {
                            let kib: u64 =
                                v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                            peak = peak.max(kib);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        Some((stop, h))
    } else {
        None
    };
    let out = child.wait_with_output().expect("wait");
    let wall = start.elapsed();
    let polled = poller.map(|(stop, h)| {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap_or(0)
    });
    if !out.status.success() {
        panic!(
            "{} {:?} failed ({}):\n{}",
            cmd.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss_kib = match time_bin {
        Some(_) => std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok())),
        None => polled.filter(|&k| k > 0),
    };
    RunResult {
        wall,
        rss_kib,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let o = opts();
    let Some(tcpdump) = which("tcpdump") else {
        println!("replay bench skipped: tcpdump not found on PATH (apt-get install tcpdump)");
        return;
    };
    let bin = std::env::var_os("TSUSEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tsusen")));
    let time_bin = Some(PathBuf::from("/usr/bin/time")).filter(|p| p.is_file());
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("replay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");

    let snap_txt = if o.snaplen == usize::MAX {
        "whole frames".to_string()
    } else {
        format!("snaplen {}", o.snaplen)
    };
    let cap = scratch.join(format!("mixed-{}.pcap", o.packets));
    let t = Instant::now();
    let st = gencap::generate(&cap, o.packets, o.snaplen).expect("generate the capture");
    let size = std::fs::metadata(&cap).map(|m| m.len()).unwrap_or(0);
    println!(
        "capture: {} packets ({} malformed), {:.1} MiB, {}, seconds {}..{} (crosses midnight), generated in {:.2} s",
        st.packets,
        st.malformed,
        size as f64 / (1 << 20) as f64,
        snap_txt,
        st.first_sec,
        st.last_sec,
        t.elapsed().as_secs_f64()
    );
    println!("local networks: {} {}", gencap::LOCAL_V4, gencap::LOCAL_V6);
    println!("tsusen:  {}", bin.display());
    println!("tcpdump: {}", tcpdump.display());
    println!(
        "peak RSS from: {}",
        if time_bin.is_some() {
            "/usr/bin/time -f %M"
        } else {
            "VmHWM polling"
        }
    );

    let mut run_id = 0u32;
    let mut ours_args = |scratch: &Path| -> (Vec<String>, PathBuf) {
        run_id += 1;
        let logs = scratch.join(format!("logs-{run_id}"));
        std::fs::create_dir_all(&logs).unwrap();
        let args = vec![
            "replay".to_string(),
            "--local".into(),
            gencap::LOCAL_V4.into(),
            "--local".into(),
            gencap::LOCAL_V6.into(),
            "--log-dir".into(),
            logs.display().to_string(),
            cap.display().to_string(),
        ];
        (args, logs)
    };
    let theirs_args: Vec<String> = vec![
        "-n".into(),
        "-r".into(),
        cap.display().to_string(),
        "-w".into(),
        "/dev/null".into(),
        TCPDUMP_FILTER.into(),
    ];

    // Warm-up (page cache), not counted.
    let (a, logs) = ours_args(&scratch);
    let warm = timed(&bin, &a, time_bin.as_deref(), &scratch);
    let _ = std::fs::remove_dir_all(&logs);
    timed(&tcpdump, &theirs_args, time_bin.as_deref(), &scratch);
    println!(
        "tsusen says: {}",
        warm.stdout.lines().last().unwrap_or("").trim()
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut our_rss: Option<u64> = None;
    let mut their_rss: Option<u64> = None;
    for i in 0..o.runs {
        let mut one = |first_ours: bool| {
            if first_ours {
                let (a, logs) = ours_args(&scratch);
                let r = timed(&bin, &a, time_bin.as_deref(), &scratch);
                let _ = std::fs::remove_dir_all(&logs);
                ours.push(r.wall);
                our_rss = our_rss.max(r.rss_kib);
                println!(
                    "  run {:>2}  tsusen  {:>8.3} s  {}",
                    i + 1,
                    r.wall.as_secs_f64(),
                    mib(r.rss_kib)
                );
            } else {
                let r = timed(&tcpdump, &theirs_args, time_bin.as_deref(), &scratch);
                theirs.push(r.wall);
                their_rss = their_rss.max(r.rss_kib);
                println!(
                    "  run {:>2}  tcpdump {:>8.3} s  {}",
                    i + 1,
                    r.wall.as_secs_f64(),
                    mib(r.rss_kib)
                );
            }
        };
        // Alternate which goes first, so neither always gets the warmer cache.
        let ours_first = i % 2 == 0;
        one(ours_first);
        one(!ours_first);
    }
    let mo = median(&mut ours);
    let mt = median(&mut theirs);
    let pps = |d: Duration| st.packets as f64 / d.as_secs_f64().max(1e-9);
    println!();
    println!("median of {} runs each:", o.runs);
    println!(
        "  tsusen replay : {:>8.3} s  ({:>12.0} packets/s)  peak RSS {}",
        mo.as_secs_f64(),
        pps(mo),
        mib(our_rss)
    );
    println!(
        "  tcpdump -r -w : {:>8.3} s  ({:>12.0} packets/s)  peak RSS {}",
        mt.as_secs_f64(),
        pps(mt),
        mib(their_rss)
    );
    println!(
        "  ratio tsusen/tcpdump: {:.2}",
        mo.as_secs_f64() / mt.as_secs_f64().max(1e-9)
    );

    if o.keep {
        println!("kept {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
