//! Storage that fails under the sensor: a tiny tmpfs that fills up, then a directory that turns
//! read-only. The sensor must keep counting in memory, log the failure once per flush period
//! (not per packet), leave the last good files readable, and write everything once the storage
//! is back: the final files equal an uninterrupted run's. Needs root (mount); skips otherwise.

mod common;

use common::pcapgen::*;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tsusen");
const SECONDS: u64 = 240;
const SPEED: &str = "20";

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

/// Ten new sources a second knocking on port 22, so every flush has rows to write.
fn stream(path: &Path) {
    let start = 1_710_000_000;
    let mut packets = Vec::new();
    for s in 0..SECONDS {
        for k in 0..10u32 {
            let src = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (s as u32) * 10 + k));
            let dst = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
            packets.push(Packet::at(
                start + s,
                eth(&ip(src, dst, PROTO_TCP, &tcp(4000, 22, SYN, &[]))),
            ));
        }
    }
    write_pcap(path, LINKTYPE_ETHERNET, &packets).unwrap();
}

fn replay(pcap: &Path, logs: &Path, realtime: bool) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "replay",
        "--local",
        "198.51.100.0/24",
        "--write-period",
        "5",
        "--log-dir",
    ])
    .arg(logs)
    .arg(pcap);
    if realtime {
        c.args(["--realtime", "--speed", SPEED]);
    }
    c
}

fn csvs(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv") && !n.starts_with('.'))
        .map(|n| {
            let t = fs::read_to_string(dir.join(&n)).unwrap();
            (n, t)
        })
        .collect();
    v.sort();
    v
}

/// `break_it` takes the storage away, `mend_it` gives it back; both get the mount point.
fn storage_failure(name: &str, break_it: &dyn Fn(&Path), mend_it: &dyn Fn(&Path)) {
    if !is_root() {
        eprintln!("SKIP {name}: needs root to mount a tmpfs");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tsusen-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("stream.pcap");
    stream(&pcap);
    let reference = dir.join("reference");
    assert!(replay(&pcap, &reference, false).status().unwrap().success());
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    assert!(sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=1m",
        "tsusen-test",
        mnt.to_str().unwrap()
    ]));
    let logs = mnt.join("logs");
    let err = dir.join("stderr");
    let mut child = replay(&pcap, &logs, true)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // Let a few flushes land (each is 5 s of packet time, a quarter second here).
    sleep(Duration::from_secs(2));
    let good = csvs(&logs);
    assert!(!good.is_empty(), "no file before the failure");
    break_it(&mnt);
    sleep(Duration::from_secs(4));
    // The last good files are still whole and readable while the storage is gone. A flush
    // may be in the middle of an append (which fails and is cut back) as they are read: a
    // file seen damaged is read again a few times before it counts as damaged.
    let whole = |t: &str| t.ends_with('\n') && t.starts_with("proto ");
    for (n, t) in csvs(&logs) {
        let mut ok = whole(&t);
        for _ in 0..20 {
            if ok {
                break;
            }
            sleep(Duration::from_millis(50));
            ok = fs::read_to_string(logs.join(&n)).is_ok_and(|t| whole(&t));
        }
        assert!(ok, "{n} damaged");
    }
    let failing = fs::read_to_string(&err).unwrap();
    let errors = failing.lines().filter(|l| l.contains("error")).count();
    // 4 s at 20x is 80 s of packets: 16 periods, each logging at most its flush and snapshot.
    assert!(errors >= 1, "the failure was not logged:\n{failing}");
    assert!(
        errors <= 40,
        "{errors} error lines in 16 flush periods: logged per packet?"
    );
    mend_it(&mnt);
    let st = child.wait().unwrap();
    let log = fs::read_to_string(&err).unwrap();
    assert!(st.success(), "{st}\n{log}");
    assert_eq!(
        csvs(&logs),
        csvs(&reference),
        "files after the storage came back\n{log}"
    );
    eprintln!("{name}: {errors} error lines while the storage was gone; everything written after");
    sh(&["umount", mnt.to_str().unwrap()]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_loses_nothing_that_fits_in_memory() {
    storage_failure(
        "diskfull",
        &|mnt| {
            // Fill every free byte.
            let _ = Command::new("dd")
                .args(["if=/dev/zero", "bs=4k"])
                .arg(format!("of={}", mnt.join("filler").display()))
                .stderr(Stdio::null())
                .status();
        },
        &|mnt| fs::remove_file(mnt.join("filler")).unwrap(),
    );
}

#[test]
fn a_read_only_directory_loses_nothing_that_fits_in_memory() {
    storage_failure(
        "readonly",
        // The kernel refuses while a file is open for writing: a flush may be appending.
        &|mnt| {
            let ro = || sh(&["mount", "-o", "remount,ro", mnt.to_str().unwrap()]);
            assert!((0..40).any(|_| ro() || {
                sleep(Duration::from_millis(50));
                false
            }));
        },
        &|mnt| assert!(sh(&["mount", "-o", "remount,rw", mnt.to_str().unwrap()])),
    );
}
