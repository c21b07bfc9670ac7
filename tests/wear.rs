//! SD card wear: a simulated day replayed at the default WRITE_PERIOD writes at most 12 times
//! the size of the day's final CSV (the original tsusen rewrote the file every flush, about 48
//! times), and the sensor's own count of bytes written agrees with the kernel's
//! (/proc/self/io write_bytes). The files go under the target directory, on a real disk: the
//! kernel does not count writes to tmpfs.

mod common;

use common::day::{write_day, LOCAL};
use common::pcapgen::{PcapWriter, LINKTYPE_ETHERNET};
use std::fs;
use std::io::BufWriter;
use std::process::Command;

fn field(summary: &str, name: &str) -> Option<u64> {
    let at = summary.find(name)? + name.len();
    summary[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_day_writes_at_most_twelve_times_its_final_size() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wear-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("day.pcap");
    let mut w = PcapWriter::new(
        BufWriter::new(fs::File::create(&pcap).unwrap()),
        LINKTYPE_ETHERNET,
        65_535,
    )
    .unwrap();
    write_day(&mut w, 300_000).unwrap();
    w.finish().unwrap();
    let logs = dir.join("logs");
    let out = Command::new(env!("CARGO_BIN_EXE_tsusen"))
        .args(["replay", "--local", LOCAL, "--log-dir"])
        .arg(&logs)
        .arg("--state-file")
        .arg(dir.join("state.bin"))
        .arg(&pcap)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = field(&summary, "bytes written").expect("bytes written in the summary");
    let final_size = fs::metadata(logs.join("2024-03-10.csv")).unwrap().len();
    let ratio = ours as f64 / final_size as f64;
    eprintln!("wear: {ours} bytes written for a final CSV of {final_size}: ratio {ratio:.2}");
    assert!(ratio <= 12.0, "ratio {ratio:.2}\n{summary}");
    match field(&summary, "kernel write_bytes") {
        Some(kernel) if kernel > 0 => {
            // The kernel counts whole pages, and a page again each time an append reaches into
            // it: allow a page per flush and the snapshot's pages on top of our count.
            let slack = 4096 * 2 * 100;
            eprintln!("wear: kernel write_bytes {kernel}");
            assert!(
                kernel + slack >= ours && kernel <= ours + slack,
                "our count {ours} and the kernel's {kernel} disagree\n{summary}"
            );
        }
        _ => {
            eprintln!("note: the kernel gave no write_bytes here (tmpfs?): only our count checked")
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}
