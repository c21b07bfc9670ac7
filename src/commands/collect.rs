//! `tsusen collect`: NetFlow v5/v9 and IPFIX from routers into the same daily files, report
//! page and events as captured packets; and [`FlowInput`], the same input inside `tsusen run`
//! when NETFLOW_LISTEN is set.
//!
//! One owner per piece of state: the listener's thread owns the socket, the decoder and the
//! templates; the thread that owns the sensor owns the flow rules (held records and
//! conversations) and the flow sensors, and takes decoded flows from a bounded queue.

use super::{settings, usage_exit, EXIT_FAILURE, EXIT_USAGE};
use crate::addr::{Addr, NetSet};
use crate::classify::flow_rules::{FlowRuleStats, FlowRules};
use crate::classify::Rules;
use crate::cli::{self, Spec};
use crate::config::Settings;
use crate::detect::flows::FlowRecord;
use crate::policy::{FLOW_RECORDS_HELD, FLOW_RECORD_HOLD, LIVE_POLL_SECONDS, NETFLOW_LISTEN};
use crate::report::{self, LiveHandle};
use crate::sensor::{Flush, Sensor};
use crate::signals;
use crate::source::netflow::listen::{Batch, Listener};
use crate::source::netflow::{Counters, Flow};
use crate::store::snapshot;
use crate::tables::day_of;
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SPEC: Spec = Spec {
    command: "collect",
    help: "\
Usage: tsusen collect [OPTIONS]

Listens for NetFlow v5, v9 and IPFIX (RFC 7011) from any number of exporters and records the
connection attempts from the outside to our networks in the daily CSV files, as `tsusen run`
does from packets; the flow sensors (portscan, winscan, spam) run on every record, the
exporter's address as observer. Flushes every WRITE_PERIOD seconds, at the change of day and
on SIGINT/SIGTERM, then prints one summary line.

A record from outside to ours counts as for packets: TCP with SYN and no ACK, its packets
(less one with RST); ICMP queries, their packets; TCP with SYN and ACK, one, and UDP and
other protocols, their packets, both unless our side began the exchange: these wait two
minutes for the reverse record before they are decided (records arrive out of order).

Options:
  --config FILE          read settings from FILE (tsusen.conf format)
  --listen ADDR:PORT     UDP address to listen on (NETFLOW_LISTEN, default 0.0.0.0:2055)
  --log-dir DIR          where the daily CSV files go (LOG_DIRECTORY, default /var/log/tsusen)
  --local CIDR           a network of ours (repeat, or LOCAL_NETWORKS); required
  --write-period SECS    seconds between flushes (WRITE_PERIOD, default 900)
  --state-file FILE      snapshot kept at every flush (STATE_FILE; default none)
  --table-capacity N     rows held in memory before an early flush (TABLE_CAPACITY)
  --flow-capacity N      exchanges followed at once (FLOW_CAPACITY)
  --alerts               print threat events on stderr too
  -h, --help             this text

Exit status: 0 stopped by a signal; 1 socket or file failure; 2 usage.",
    valued: &[
        "--config",
        "--listen",
        "--log-dir",
        "--local",
        "--write-period",
        "--table-capacity",
        "--flow-capacity",
        "--state-file",
    ],
    flags: &["--alerts"],
};

/// Distinct exporter names kept for the flow sensors' observer field before starting over.
const MAX_OBSERVER_NAMES: usize = 1024;

fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// NetFlow/IPFIX input feeding a sensor.
pub struct FlowInput {
    listener: Listener,
    rules: FlowRules,
    observers: HashMap<Addr, String>,
}

impl FlowInput {
    /// Starts on a socket bound earlier (see [`Listener::start`]).
    pub fn start(socket: UdpSocket, s: &Settings, local: NetSet) -> std::io::Result<FlowInput> {
        Ok(FlowInput {
            listener: Listener::start(socket)?,
            rules: FlowRules::new(
                Rules::from_settings(s, local),
                FLOW_RECORD_HOLD,
                FLOW_RECORDS_HELD,
                s.flow_capacity,
            ),
            observers: HashMap::new(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr
    }

    /// The flows of one datagram: into attempts, and through the flow sensors.
    pub fn batch(&mut self, sensor: &mut Sensor, b: Batch) {
        for f in &b.flows {
            self.rules.record(f, b.arrival, &mut |a| {
                sensor.attempts(&a.key, a.first, a.last, a.count)
            });
            if let Some(alerts) = sensor.alerts.as_mut() {
                if !self.rules.ignored(f) {
                    if self.observers.len() >= MAX_OBSERVER_NAMES {
                        self.observers.clear();
                    }
                    let observer = self
                        .observers
                        .entry(f.exporter)
                        .or_insert_with(|| f.exporter.to_string());
                    let (_, outbound) = self.rules.direction(f);
                    alerts.flow_record(&record(observer, f), outbound, b.arrival);
                }
            }
        }
    }

    /// Takes what the listener has queued, then decides the held records that are due.
    pub fn drain(&mut self, sensor: &mut Sensor, now: i64) {
        while let Some(b) = self.listener.try_recv() {
            self.batch(sensor, b);
        }
        self.release(sensor, now);
    }

    pub fn release(&mut self, sensor: &mut Sensor, now: i64) {
        self.rules.release(now, &mut |a| {
            sensor.attempts(&a.key, a.first, a.last, a.count)
        });
    }

    pub fn recv(&self, wait: Duration) -> Option<Batch> {
        self.listener.recv_timeout(wait)
    }

    /// Stops listening, takes what was queued and decides every held record.
    pub fn finish(&mut self, sensor: &mut Sensor) {
        self.listener.stop();
        while let Some(b) = self.listener.try_recv() {
            self.batch(sensor, b);
        }
        self.rules
            .finish(&mut |a| sensor.attempts(&a.key, a.first, a.last, a.count));
    }

    pub fn counters(&self) -> (Counters, FlowRuleStats) {
        (self.listener.counters(), self.rules.stats)
    }

    /// The counters as `name value` pairs, for the metrics.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        let (c, r) = self.counters();
        let mut v = c.pairs().to_vec();
        v.extend([
            ("skipped", c.skipped()),
            ("ignored", r.ignored),
            ("counted_records", r.counted_records),
            ("attempts", r.attempts),
            ("local_began", r.local_began),
            ("late", r.late),
            ("forced", r.forced),
            ("conversation_evictions", r.evictions),
        ]);
        v
    }

    /// One line: datagrams, records, skipped by reason, attempts.
    pub fn summary(&self) -> String {
        let mut s = String::from("netflow:");
        for (i, (k, v)) in self.pairs().into_iter().enumerate() {
            let _ = write!(
                s,
                "{} {} {v}",
                if i == 0 { "" } else { "," },
                k.replace('_', "-")
            );
        }
        s
    }
}

fn record<'a>(observer: &'a str, f: &Flow) -> FlowRecord<'a> {
    FlowRecord {
        observer,
        src: f.src,
        dst: f.dst,
        sport: f.sport,
        dport: f.dport,
        proto: f.proto,
        tcp_flags: f.tcp_flags,
        packets: f.packets,
        bytes: f.bytes,
        first: f.first_ms.div_euclid(1000),
        last: f.last_ms.div_euclid(1000),
    }
}

/// The listening address from `--listen`, NETFLOW_LISTEN, or the default.
pub fn listen_address(option: Option<&str>, s: &Settings) -> Result<SocketAddr, String> {
    let v = option
        .or(s.netflow_listen.as_deref())
        .unwrap_or(NETFLOW_LISTEN);
    crate::config::netflow_address(v)
}

pub fn main(args: Vec<String>) -> ExitCode {
    let p = match cli::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(extra) = p.positional.first() {
        return usage_exit(cli::Usage(format!(
            "tsusen collect: unexpected argument '{extra}'\nTry 'tsusen collect --help'."
        )));
    }
    let s = match settings(&p, "collect") {
        Ok(s) => s,
        Err(u) => return usage_exit(u),
    };
    if s.local_networks.is_empty() {
        eprintln!(
            "tsusen collect: no local networks: give --local CIDR (or LOCAL_NETWORKS in the \
             config); without them no flow is inbound"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let addr = match listen_address(p.last("--listen"), &s) {
        Ok(a) => a,
        Err(e) => return usage_exit(cli::Usage(format!("tsusen collect: --listen: {e}"))),
    };
    let socket = match crate::source::netflow::listen::bind(addr) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tsusen collect: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let local = NetSet::new(s.local_networks.clone());
    let mut sensor = match Sensor::new(&s, local.clone()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tsusen collect: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    sensor.alerts = Some(super::alerts(&s, "netflow", true, p.flag("--alerts"), true));
    signals::install();
    let now = wall_clock();
    if let Some(path) = s.state_file.clone().filter(|f| !f.as_os_str().is_empty()) {
        match snapshot::load(&path) {
            Ok(Some(state))
                if state.replay.is_none()
                    && (0..=1).contains(&(day_of(now) - day_of(state.now))) =>
            {
                if day_of(state.now) != day_of(now) {
                    if let Err(e) = sensor.prepare_day(state.now) {
                        log::error!("yesterday's file: {e}");
                    }
                }
                sensor.restore(&state, true);
                log::info!("{}: going on from the last flush", path.display());
            }
            Ok(Some(_)) => log::info!("{}: snapshot of another day, ignored", path.display()),
            Ok(None) => {}
            Err(why) => log::warn!("{}: ignored: {why}", path.display()),
        }
        sensor.keep_state(path);
    }
    if let Err(e) = sensor.prepare_day(now) {
        log::error!("today's file: {e}");
    }
    sensor.advance(now);
    let mut input = match FlowInput::start(socket, &s, local) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("tsusen collect: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let interface = format!("netflow {}", input.addr());
    log::info!(
        "listening for NetFlow/IPFIX on udp {}; writing to {} every {} s",
        input.addr(),
        s.log_directory.display(),
        s.write_period
    );
    let live = LiveHandle::new();
    let http = match report::serve(&s, live.clone()) {
        Ok(r) => {
            log::info!("report page on http://{}/", r.addr);
            Some(r)
        }
        Err(e) => {
            log::error!("report page on {}:{}: {e}", s.http_address, s.http_port);
            None
        }
    };
    let mut published = (i64::MIN, u64::MAX);
    while !signals::stop_requested() {
        if let Some(b) = input.recv(Duration::from_secs(LIVE_POLL_SECONDS)) {
            input.batch(&mut sensor, b);
        }
        let now = wall_clock();
        sensor.advance(now);
        input.release(&mut sensor, now);
        if now != published.0 && (sensor.stats.flushes != published.1 || live.wanted()) {
            // Right after a flush the table holds little: its rows go along whoever asked.
            let with_rows = sensor.stats.flushes != published.1 || live.rows_wanted();
            let mut l = sensor.live_summary(now, &interface, with_rows);
            l.netflow = input.pairs();
            report::publish(&live, l);
            published = (now, sensor.stats.flushes);
        }
    }
    input.finish(&mut sensor);
    sensor.advance(wall_clock());
    let mut status = ExitCode::SUCCESS;
    if !sensor.flush(Flush::Stop) {
        status = ExitCode::from(EXIT_FAILURE);
    }
    let events = sensor.alerts.take().map_or(0, |mut a| {
        a.finish();
        // portscan, winscan and spam (EVENT_KINDS 1 to 3).
        a.stats.events[1..4].iter().sum::<u64>()
    });
    if let Some(h) = http {
        h.join();
    }
    let st = sensor.stats;
    println!(
        "{}; attempts {}, rows {}, events {}, lost {}",
        input.summary(),
        st.attempts,
        st.rows,
        events,
        st.lost
    );
    status
}
