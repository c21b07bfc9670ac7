//! `tsusen replay`: capture files through the same path as live traffic, the packets' own
//! timestamps as the clock.

use super::{settings, usage_exit, EXIT_FAILURE, EXIT_USAGE};
use crate::addr::NetSet;
use crate::cli::{self, Spec};
use crate::sensor::Sensor;
use crate::signals;
use crate::source::capfile::{CapError, CaptureFile};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

pub const SPEC: Spec = Spec {
    command: "replay",
    help: "\
Usage: tsusen replay [OPTIONS] FILE...

Reads pcap and pcapng files (Ethernet, Linux cooked v1/v2, raw IP, BSD loopback) as if their
packets were captured live, with each packet's timestamp as the clock, and writes the daily
CSV files. Prints one summary line.

Options:
  --config FILE          read settings from FILE (tsusen.conf format)
  --log-dir DIR          where the daily CSV files go (LOG_DIRECTORY, default /var/log/tsusen)
  --local CIDR           a network of ours (repeat, or LOCAL_NETWORKS); required
  --table-capacity N     rows held in memory before an early flush (TABLE_CAPACITY)
  --flow-capacity N      flows tracked at once (FLOW_CAPACITY)
  --write-period SECS    flush period in packet time (WRITE_PERIOD)
  -h, --help             this text

Exit status: 0 done; 1 a file could not be read (the others are still counted); 2 usage.",
    valued: &[
        "--config",
        "--log-dir",
        "--local",
        "--table-capacity",
        "--flow-capacity",
        "--write-period",
    ],
    flags: &[],
};

pub fn main(args: Vec<String>) -> ExitCode {
    let p = match cli::parse(&SPEC, args) {
        Ok(p) => p,
        Err(u) => return usage_exit(u),
    };
    if p.help {
        println!("{}", SPEC.help);
        return ExitCode::SUCCESS;
    }
    let s = match settings(&p, "replay") {
        Ok(s) => s,
        Err(u) => return usage_exit(u),
    };
    if s.local_networks.is_empty() {
        eprintln!(
            "tsusen replay: no local networks: give --local CIDR (or LOCAL_NETWORKS in the config); \
             without them no packet is inbound"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if p.positional.is_empty() {
        eprintln!("tsusen replay: no capture files given\nTry 'tsusen replay --help'.");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut sensor = match Sensor::new(&s, NetSet::new(s.local_networks.clone())) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tsusen replay: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    signals::install();
    let started = Instant::now();
    let mut failed = false;
    let mut unsupported = 0;
    for file in &p.positional {
        match replay_file(&mut sensor, Path::new(file), &mut unsupported) {
            Ok(()) => {}
            Err(e @ CapError::Truncated { .. }) => eprintln!("tsusen replay: warning: {e}"),
            Err(e) => {
                eprintln!("tsusen replay: {e}");
                failed = true;
            }
        }
        if signals::stop_requested() {
            eprintln!("tsusen replay: interrupted: writing what was counted");
            break;
        }
    }
    let flushed = sensor.flush();
    let secs = started.elapsed().as_secs_f64();
    let st = sensor.stats;
    println!(
        "replay: packets {}, attempts {}, malformed {}, rows {}, seconds {:.3}, packets/s {:.0}, \
         not-ip {}, fragments {}, ignored {}, unsupported {}, bad-time {}, flows evicted {}, \
         early flushes {}, bytes written {}",
        st.packets,
        st.attempts,
        st.malformed,
        st.rows,
        secs,
        st.packets as f64 / secs.max(1e-9),
        st.not_ip,
        st.fragments,
        st.ignored,
        unsupported + st.too_deep,
        st.bad_time,
        sensor.flow_stats().evictions,
        st.early_flushes,
        sensor.files().bytes_written,
    );
    if failed || !flushed || st.lost > 0 {
        if st.lost > 0 {
            eprintln!("tsusen replay: {} attempts could not be written", st.lost);
        }
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

fn replay_file(sensor: &mut Sensor, path: &Path, unsupported: &mut u64) -> Result<(), CapError> {
    let mut cap = CaptureFile::open(path)?;
    let mut n: u32 = 0;
    let result = loop {
        match cap.next_frame() {
            Ok(Some(frame)) => sensor.frame(&frame),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
        n = n.wrapping_add(1);
        if n % 65_536 == 0 && signals::stop_requested() {
            break Ok(());
        }
    };
    *unsupported += cap.unsupported + cap.orphans;
    result
}
