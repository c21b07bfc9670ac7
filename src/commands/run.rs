//! `tsusen run`: live capture into the daily files until SIGINT or SIGTERM.

use super::collect::FlowInput;
use super::{settings, usage_exit, EXIT_FAILURE, EXIT_USAGE};
use crate::addr::NetSet;
use crate::cli::{self, Spec};
use crate::policy::{LIVE_POLL_SECONDS, STATE_FILE};
use crate::report::{self, LiveHandle};
use crate::sensor::{Flush, Sensor};
use crate::signals;
use crate::source::bpf::TcpPass;
use crate::source::live::{interface_networks, Capture, Options};
use crate::source::Frame;
use crate::store::snapshot;
use crate::tables::day_of;
use std::path::PathBuf;
use std::process::ExitCode;
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
  --netflow ADDR:PORT    also take NetFlow v5/v9 and IPFIX on this UDP address
                         (NETFLOW_LISTEN; default: none)
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
        "--netflow",
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
    let opts = Options {
        method: s.capture_method,
        ring_bytes: s.ring_bytes,
        // The scan detector and the fingerprints read FIN, NULL, Xmas and RST probes too.
        tcp: TcpPass::AckClear,
        poll: Duration::from_secs(LIVE_POLL_SECONDS),
    };
    let mut capture = match Capture::open(&iface, &opts) {
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
    // NetFlow input: bound now, while we may still bind any port; its thread starts after
    // privileges are dropped.
    let netflow = p.last("--netflow").or(s.netflow_listen.as_deref());
    let netflow_socket = match netflow
        .map(|v| crate::config::netflow_address(v).map_err(|e| format!("NETFLOW_LISTEN: {e}")))
    {
        None => None,
        Some(Err(e)) => return usage_exit(cli::Usage(format!("tsusen run: {e}"))),
        Some(Ok(addr)) => match crate::source::netflow::listen::bind(addr) {
            Ok(sock) => Some(sock),
            Err(e) => {
                eprintln!("tsusen run: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    let local_set = NetSet::new(local);
    let mut sensor = match Sensor::new(&s, local_set.clone()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tsusen run: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    sensor.commit_memory();
    // SAFETY: getuid cannot fail and touches no memory.
    let root = unsafe { libc::getuid() == 0 };
    if root && !s.run_as_set && crate::privilege::lookup(&s.run_as).is_err() {
        // The default user is made by the packages (and run.sh); a bare machine lacks it.
        log::warn!(
            "no user '{}' to drop to: running as root; create it \
             (useradd --system --no-create-home --shell /usr/sbin/nologin {}) or set RUN_AS none",
            s.run_as,
            s.run_as
        );
    } else if !s.run_as.is_empty() {
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
    let mut alerts = super::alerts(&s, &iface, true, false, true);
    alerts.spikes_in_background();
    sensor.alerts = Some(alerts);
    let mut flows = match netflow_socket.map(|sock| FlowInput::start(sock, &s, local_set)) {
        None => None,
        Some(Ok(f)) => {
            log::info!("taking NetFlow/IPFIX on udp {}", f.addr());
            Some(f)
        }
        Some(Err(e)) => {
            eprintln!("tsusen run: netflow: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
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
    let http = match report::serve(&s, live.clone()) {
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
    // Kernel drop counters: read once a second (one getsockopt), logged after a flush that
    // saw new drops.
    let (mut drops, mut drops_logged) = (None::<u64>, 0u64);
    let mut publish = |sensor: &Sensor,
                       second: i64,
                       drops: Option<u64>,
                       flows: Option<&FlowInput>| {
        // Right after a flush, whatever the second: the table has just been emptied, so the
        // copy the report gets is small (a flood flushes every second or two, and a copy taken
        // a second later would be most of the table again, held beside it).
        let flushed = sensor.stats.flushes != published.1;
        if second == published.0 && !flushed {
            return;
        }
        if flushed || live.wanted() {
            if sensor.stats.flushes != published.1 {
                if let Some(d) = drops.filter(|&d| d > drops_logged) {
                    log::warn!(
                        "capture on {iface}: the kernel dropped {} frames since the last flush ({d} in all)",
                        d - drops_logged
                    );
                    drops_logged = d;
                }
            }
            // Right after a flush the table holds little: its rows go along whoever asked.
            let with_rows = flushed || live.rows_wanted();
            let mut summary = sensor.live_summary(started, &iface, with_rows);
            summary.capture_drops = drops;
            if let Some(f) = flows {
                summary.netflow = f.pairs();
            }
            report::publish(&live, summary);
            published.1 = sensor.stats.flushes;
        }
        published.0 = second;
    };
    log::info!("capturing on {iface} with {}", capture.method());
    let filtered = capture.drops_under_way();
    let mut checked = i64::MIN;
    let mut status = ExitCode::SUCCESS;
    // Flows are taken from their queue once a second, between frames.
    let mut flows_drained = i64::MIN;
    while !signals::stop_requested() {
        match capture.next_frame() {
            Ok(Some(f)) => {
                let (ts, ts_us) = f.ts.unwrap_or_else(wall_clock_us);
                let frame = Frame {
                    ts,
                    ts_us,
                    link: f.link,
                    data: f.data,
                    outgoing: f.outgoing,
                };
                if filtered {
                    sensor.frame_filtered(&frame);
                } else {
                    sensor.frame(&frame);
                }
                if capture.idle() {
                    // A quiet link: count what the sensor holds back before waiting.
                    sensor.drain();
                }
                if ts != checked {
                    checked = ts;
                    drops = capture.drops().map(|d| d.dropped);
                }
                if let Some(fl) = flows.as_mut().filter(|_| ts != flows_drained) {
                    fl.drain(&mut sensor, ts);
                    flows_drained = ts;
                }
                publish(&sensor, ts, drops, flows.as_ref());
            }
            Ok(None) => {
                let now = wall_clock();
                sensor.advance(now);
                drops = capture.drops().map(|d| d.dropped);
                if let Some(fl) = flows.as_mut() {
                    fl.drain(&mut sensor, now);
                    flows_drained = now;
                }
                publish(&sensor, now, drops, flows.as_ref());
            }
            Err(e) => {
                log::error!("capture on {iface}: {e}");
                status = ExitCode::from(EXIT_FAILURE);
                break;
            }
        }
    }
    if let Some(fl) = flows.as_mut() {
        fl.finish(&mut sensor);
        log::info!("{}", fl.summary());
    }
    sensor.advance(wall_clock());
    if !sensor.flush(Flush::Stop) {
        status = ExitCode::from(EXIT_FAILURE);
    }
    if let Some(h) = http {
        h.join();
    }
    let st = sensor.stats;
    // The kernel's drops in all, where the capture counts them: frames never counted.
    let drops = capture
        .drops()
        .map_or(String::new(), |d| format!(", kernel drops {}", d.dropped));
    log::info!(
        "stopped: packets {}, attempts {}, malformed {}, rows {}{drops}",
        st.packets,
        st.attempts,
        st.malformed,
        st.rows
    );
    status
}
