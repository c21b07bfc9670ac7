//! `tsusen replay`: capture files through the same path as live traffic, the packets' own
//! timestamps as the clock.

use super::{settings, usage_exit, EXIT_FAILURE, EXIT_USAGE};
use crate::addr::NetSet;
use crate::cli::{self, Spec};
use crate::policy;
use crate::sensor::{Flush, Sensor};
use crate::signals;
use crate::source::capfile::{CapError, CaptureFile};
use crate::store::snapshot;
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
  --state-file FILE      keep a snapshot (STATE_FILE); a replay restarted with the same
                         files and snapshot goes on after the last flushed frame
  --realtime             pace packets as their timestamps were captured
  --speed X              with --realtime, play X times faster (default 1)
  --alerts               print scan reports and threat events on stderr (they also go to
                         EVENTS_FILE, SYSLOG, MQTT_URL and AMQP_URL when set); flows are
                         built for the flow sensors, and spikes watched, only when events
                         have one of these
  -h, --help             this text

Exit status: 0 done; 1 a file could not be read (the others are still counted); 2 usage.",
    valued: &[
        "--config",
        "--log-dir",
        "--local",
        "--table-capacity",
        "--flow-capacity",
        "--write-period",
        "--state-file",
        "--speed",
    ],
    flags: &["--realtime", "--alerts"],
};

pub fn main(args: Vec<String>) -> ExitCode {
    let p = match cli::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut s = match settings(&p, "replay") {
        Ok(s) => s,
        Err(u) => return usage_exit(u),
    };
    let resumable = s
        .state_file
        .as_ref()
        .is_some_and(|f| !f.as_os_str().is_empty());
    if !resumable && !p.flag("--realtime") && p.last("--write-period").is_none() {
        // Periodic flushes keep a live sensor's losses small; a replay that cannot resume
        // gains nothing from them, and each costs a read-back of the day at compaction.
        // Days are written when they end, when the table fills, and at the end of the input.
        s.write_period = policy::REPLAY_WRITE_PERIOD;
    }
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
    let speed = match p.last("--speed").map(str::parse::<f64>) {
        None => 1.0,
        Some(Ok(x)) if x > 0.0 && x.is_finite() => x,
        Some(_) => {
            return usage_exit(cli::Usage(
                "tsusen replay: --speed needs a positive number\nTry 'tsusen replay --help'."
                    .into(),
            ))
        }
    };
    let pace = p.flag("--realtime").then(|| Pacer::new(speed));
    let inputs: Vec<(String, u64)> = p
        .positional
        .iter()
        .map(|f| (f.clone(), std::fs::metadata(f).map_or(0, |m| m.len())))
        .collect();
    sensor.alerts = Some(super::alerts(
        &s,
        "replay",
        false,
        p.flag("--alerts"),
        false,
    ));
    let mut skip = 0;
    if let Some(state_file) = s.state_file.clone().filter(|f| !f.as_os_str().is_empty()) {
        match snapshot::load(&state_file) {
            Ok(Some(state)) => match &state.replay {
                Some(pos) if pos.inputs == inputs => {
                    log::info!(
                        "{}: going on after frame {} of this replay",
                        state_file.display(),
                        pos.frames
                    );
                    skip = pos.frames;
                    sensor.restore(&state, false);
                    // The day being written when the last life ended may hold appended runs.
                    if let Err(e) = sensor.prepare_day(state.now) {
                        log::error!("{e}");
                    }
                }
                _ => log::info!(
                    "{}: a snapshot of other input, ignored",
                    state_file.display()
                ),
            },
            Ok(None) => {}
            Err(why) => log::warn!("{}: ignored: {why}", state_file.display()),
        }
        sensor.keep_state(state_file);
    }
    sensor.replaying(inputs, skip);
    signals::install();
    let started = Instant::now();
    let mut failed = false;
    let mut unsupported = 0;
    let mut reader = Reader {
        skip,
        pace,
        unsupported: 0,
    };
    for file in &p.positional {
        match reader.file(&mut sensor, Path::new(file)) {
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
    unsupported += reader.unsupported;
    let flushed = sensor.flush(Flush::Stop);
    let alerts = sensor.alerts.take().map(|mut a| {
        a.finish();
        (a.stats(), a.sink_counters().figures())
    });
    let events = alerts.as_ref().map_or(String::new(), |(st, sinks)| {
        let mut s = format!(
            ", flows built {} (evicted {})",
            st.flow_builder.flows, st.flow_builder.evicted
        );
        s.push_str(", events");
        for (k, n) in crate::alerts::EVENT_KINDS.iter().zip(st.events) {
            s.push_str(&format!(" {k} {n}"));
        }
        let suppressed: u64 = st.suppressed.iter().sum();
        s.push_str(&format!(
            ", suppressed {suppressed}, alerts dropped queue {}",
            st.dropped
        ));
        for (k, sent, dropped) in sinks {
            s.push_str(&format!(", {} sent {sent} dropped {dropped}", k.name()));
        }
        s
    });
    let secs = started.elapsed().as_secs_f64();
    let st = sensor.stats;
    println!(
        "replay: packets {}, attempts {}, malformed {}, rows {}, seconds {:.3}, packets/s {:.0}, \
         not-ip {}, fragments {}, ignored {}, unsupported {}, bad-time {}, flows evicted {}, \
         early flushes {}, bytes written {} (csv {}, snapshots {}; kernel write_bytes {}), \
         scans {}, tool labels {}{events}",
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
        sensor.files().bytes_written + sensor.snapshot_bytes,
        sensor.files().bytes_written,
        sensor.snapshot_bytes,
        kernel_write_bytes().map_or("unknown".into(), |b| b.to_string()),
        alerts.as_ref().map_or(0, |a| a.0.scans),
        alerts.as_ref().map_or(0, |a| a.0.labels),
    );
    if failed || !flushed || st.lost > 0 {
        if st.lost > 0 {
            eprintln!("tsusen replay: {} attempts could not be written", st.lost);
        }
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

/// What the kernel counts as written to storage by this process (pages dirtied, less those
/// truncated away), the check on our own accounting of bytes written.
fn kernel_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("write_bytes:")?.saturating_sub(field("cancelled_write_bytes:").unwrap_or(0)))
}

/// Paces frames to their timestamps, `speed` times faster than they were captured.
struct Pacer {
    speed: f64,
    origin: Option<(i64, Instant)>,
}

impl Pacer {
    fn new(speed: f64) -> Pacer {
        Pacer {
            speed,
            origin: None,
        }
    }

    fn wait(&mut self, ts: i64) {
        let (t0, w0) = *self.origin.get_or_insert((ts, Instant::now()));
        let due = (ts - t0).max(0) as f64 / self.speed;
        let ahead = due - w0.elapsed().as_secs_f64();
        if ahead > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(ahead.min(3600.0)));
        }
    }
}

/// Frames read between two looks for a stop request (a look is a system call's worth).
const STOP_CHECK_FRAMES: u32 = 65_536;

/// Feeds capture files to the sensor, passing over frames a snapshot says are done.
struct Reader {
    skip: u64,
    pace: Option<Pacer>,
    unsupported: u64,
}

impl Reader {
    fn file(&mut self, sensor: &mut Sensor, path: &Path) -> Result<(), CapError> {
        let mut cap = CaptureFile::open(path)?;
        let mut n: u32 = 0;
        let result = loop {
            if self.skip == 0 && self.pace.is_none() {
                // The common case, in batches: a stop is looked for between them. The closure
                // is inlined into each of the four pcap loops by request: left to itself, the
                // compiler calls it, and a call costs as much as the glance at an ACK segment.
                match cap.for_frames(
                    STOP_CHECK_FRAMES,
                    #[inline(always)]
                    |frame| sensor.frame(frame),
                ) {
                    Ok(0) => break Ok(()),
                    Ok(_) if signals::stop_requested() => break Ok(()),
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            }
            match cap.next_frame() {
                Ok(Some(frame)) => {
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    match self.pace.as_mut() {
                        Some(p) => {
                            // Paced, a frame counts when its time comes, not when later
                            // ones arrive.
                            p.wait(frame.ts);
                            sensor.frame(&frame);
                            sensor.drain();
                        }
                        None => sensor.frame(&frame),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            n = n.wrapping_add(1);
            if (n.is_multiple_of(STOP_CHECK_FRAMES) || self.pace.is_some())
                && signals::stop_requested()
            {
                break Ok(());
            }
        };
        self.unsupported += cap.unsupported + cap.orphans;
        result
    }
}
