//! `tsusen run`: live capture into the daily files until SIGINT or SIGTERM.

use super::{settings, usage_exit, EXIT_FAILURE, EXIT_USAGE};
use crate::addr::NetSet;
use crate::cli::{self, Spec};
use crate::policy::{LIVE_POLL_SECONDS, STATE_FILE};
use crate::report::{self, LiveHandle};
use crate::sensor::{Flush, Sensor};
use crate::signals;
use crate::source::live::{interface_networks, Capture};
use crate::source::Frame;
use crate::store::snapshot;
use crate::tables::day_of;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SPEC: Spec = Spec {
    command: "run",
    help: "\
Usage: tsusen run [OPTIONS]

Captures live traffic (AF_PACKET) and records every connection attempt from the outside to
our networks in daily CSV files. Flushes every WRITE_PERIOD seconds, at the change of day and
on SIGINT/SIGTERM.

Options:
  --config FILE          read settings from FILE (tsusen.conf format)
  --interface IFACE      interface to capture on (MONITOR_INTERFACE, default any); a named
                         interface is put in promiscuous mode (span port)
  --log-dir DIR          where the daily CSV files go (LOG_DIRECTORY, default /var/log/tsusen)
  --local CIDR           a network of ours (repeat, or LOCAL_NETWORKS); default: the networks
                         of the capture interface's addresses. On a span port set it.
  --write-period SECS    seconds between flushes (WRITE_PERIOD, default 900)
  --state-file FILE      snapshot kept at every flush (STATE_FILE, default
                         /var/lib/tsusen/state.bin; 'none' keeps none)
  -h, --help             this text

Exit status: 0 stopped by a signal; 1 capture or file failure; 2 usage.",
    valued: &[
        "--config",
        "--interface",
        "--log-dir",
        "--local",
        "--write-period",
        "--table-capacity",
        "--flow-capacity",
        "--state-file",
    ],
    flags: &[],
};

/// Now, as whole seconds and the microseconds within.
fn wall_clock_us() -> (i64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_micros()))
}

fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn main(args: Vec<String>) -> ExitCode {
    let p = match cli::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(extra) = p.positional.first() {
        return usage_exit(cli::Usage(format!(
            "tsusen run: unexpected argument '{extra}'\nTry 'tsusen run --help'."
        )));
    }
    let s = match settings(&p, "run") {
        Ok(s) => s,
        Err(u) => return usage_exit(u),
    };
    let iface = s.monitor_interface.clone();
    // Open the capture first: a missing privilege or interface is the likeliest failure.
    let mut capture = match Capture::open(&iface, Duration::from_secs(LIVE_POLL_SECONDS)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tsusen run: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let local = if s.local_networks.is_empty() {
        match interface_networks(&iface) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("tsusen run: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        s.local_networks.clone()
    };
    if local.is_empty() {
        eprintln!(
            "tsusen run: {iface} has no addresses to take local networks from: set --local or LOCAL_NETWORKS"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let names: Vec<String> = local.iter().map(|n| n.to_string()).collect();
    let state_file = match &s.state_file {
        None => Some(PathBuf::from(STATE_FILE)),
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
    };
    let mut sensor = match Sensor::new(&s, NetSet::new(local)) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tsusen run: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if !s.run_as.is_empty() {
        // Before any thread starts: capabilities belong to each thread.
        let mut dirs = vec![s.log_directory.as_path()];
        if let Some(parent) = state_file.as_deref().and_then(|f| f.parent()) {
            dirs.push(parent);
        }
        let dropped = crate::privilege::hand_over(&s.run_as, &dirs)
            .and_then(|()| crate::privilege::drop_to(&s.run_as));
        match dropped {
            Ok(()) => log::info!("running as {} with no capabilities", s.run_as),
            Err(e) => {
                eprintln!("tsusen run: RUN_AS: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    let mut alerts = super::alerts(&s, &iface, true, false);
    alerts.spikes_in_background();
    sensor.alerts = Some(alerts);
    signals::install();
    let now = wall_clock();
    if let Some(path) = state_file {
        match snapshot::load(&path) {
            Ok(Some(state))
                if state.replay.is_none()
                    && (0..=1).contains(&(day_of(now) - day_of(state.now))) =>
            {
                // The day the snapshot was taken may have a file to finish.
                if day_of(state.now) != day_of(now) {
                    if let Err(e) = sensor.prepare_day(state.now) {
                        log::error!("yesterday's file: {e}");
                    }
                }
                sensor.restore(&state, true);
                log::info!(
                    "{}: going on from the snapshot of the last flush",
                    path.display()
                );
            }
            Ok(Some(_)) => log::info!(
                "{}: snapshot of another day or a replay, ignored",
                path.display()
            ),
            Ok(None) => {}
            Err(why) => log::warn!("{}: ignored: {why}", path.display()),
        }
        sensor.keep_state(path);
    }
    match sensor.prepare_day(now) {
        Ok(Some(rows)) => log::info!("continuing today's file with {rows} rows"),
        Ok(None) => {}
        Err(e) => log::error!("today's file: {e}"),
    }
    sensor.advance(now);
    log::info!(
        "capturing on {iface}; local networks {}; writing to {} every {} s",
        names.join(" "),
        s.log_directory.display(),
        s.write_period
    );
    // The report page runs on its own thread; the sensor hands it a copy of today at most
    // once a second, and only after a flush or when someone is looking.
    let live = LiveHandle::new();
    let stop = Arc::new(AtomicBool::new(false));
    let http = match report::serve(&s, live.clone(), stop.clone()) {
        Ok(r) => {
            log::info!("report page on http://{}/", r.addr);
            Some(r)
        }
        Err(e) => {
            // Counting matters more than the page: go on without it.
            log::error!("report page on {}:{}: {e}", s.http_address, s.http_port);
            None
        }
    };
    let started = now;
    let mut published = (i64::MIN, u64::MAX);
    let mut publish = |sensor: &Sensor, second: i64| {
        if second == published.0 {
            return;
        }
        if sensor.stats.flushes != published.1 || live.wanted() {
            report::publish(&live, sensor.live_summary(started, &iface));
            published.1 = sensor.stats.flushes;
        }
        published.0 = second;
    };
    let mut status = ExitCode::SUCCESS;
    while !signals::stop_requested() {
        match capture.next_frame() {
            Ok(Some(f)) => {
                let (ts, ts_us) = wall_clock_us();
                sensor.frame(&Frame {
                    ts,
                    ts_us,
                    link: f.link,
                    data: f.data,
                    outgoing: f.outgoing,
                });
                publish(&sensor, ts);
            }
            Ok(None) => {
                let now = wall_clock();
                sensor.advance(now);
                publish(&sensor, now);
            }
            Err(e) => {
                log::error!("capture on {iface}: {e}");
                status = ExitCode::from(EXIT_FAILURE);
                break;
            }
        }
    }
    sensor.advance(wall_clock());
    if !sensor.flush(Flush::Stop) {
        status = ExitCode::from(EXIT_FAILURE);
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = http {
        h.join();
    }
    let st = sensor.stats;
    log::info!(
        "stopped: packets {}, attempts {}, malformed {}, rows {}",
        st.packets,
        st.attempts,
        st.malformed,
        st.rows
    );
    status
}
