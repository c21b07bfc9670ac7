//! Alerts: the detectors that watch packets as they pass (scanlogd's scan detector, the tool
//! fingerprints, net-security's flow sensors over flows built from the packets), the spike
//! watch run at each flush, and the queue that carries what they find to the sinks. The sensor
//! thread owns the detectors; the sinks run on their own thread behind a bounded queue, and
//! when it is full an alert is dropped and counted rather than waited for.

pub mod amqp;
mod mqtt;
pub mod netsink;
mod sink;
pub mod spikes;
mod syslog;

pub use sink::{SinkCounters, SinkKind, Sinks};
pub use syslog::{hostname, SyslogTarget};

use crate::decode::Packet;
use crate::detect::event::{Event, EventKind};
use crate::detect::fingerprint::{FingerprintParams, FingerprintState, Fingerprinter};
use crate::detect::flowbuild::{Flow, FlowBuilder, FlowBuilderStats, Place};
use crate::detect::flows::{FlowParams, FlowRecord, FlowSensors};
use crate::detect::scan::{Report, ScanDetector, ScanParams, ScanState};
use crate::detect::spike::SpikeRule;
use crate::tables::Row;
use spikes::{SpikeState, SpikeWatch};
use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Alerts waiting for the sinks before new ones are dropped.
const QUEUE: usize = 4096;

/// What the snapshot keeps of the detectors.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorState {
    pub scan: ScanState,
    pub tools: FingerprintState,
    /// The series that spiked on the day watched (snapshot version 3 on).
    pub spikes: SpikeState,
}

/// `DetectorState` as the snapshot writes it, the fingerprints lent rather than copied out.
#[derive(serde::Serialize)]
pub struct DetectorStateRef<'a> {
    pub scan: ScanState,
    pub tools: crate::detect::fingerprint::FingerprintView<'a>,
    pub spikes: SpikeState,
}

/// What travels to the sink thread.
pub enum Alert {
    /// scanlogd's report line, for syslog.
    Line(String),
    /// A threat event, one JSON object.
    Event { kind: EventKind, json: String },
}

/// Event types in the order of [`AlertStats::events`].
pub const EVENT_KINDS: [EventKind; 6] = [
    EventKind::Scan,
    EventKind::Portscan,
    EventKind::Winscan,
    EventKind::Spam,
    EventKind::Spike,
    EventKind::Tool,
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    pub scans: u64,
    pub labels: u64,
    /// Events raised, by type in the order of [`EVENT_KINDS`].
    pub events: [u64; 6],
    /// Events over EVENT_RATE_LIMIT, by type: counted, not sent.
    pub suppressed: [u64; 6],
    /// Alerts dropped because the sink thread's queue was full.
    pub dropped: u64,
    /// The live flow builder.
    pub flow_builder: FlowBuilderStats,
}

/// The detectors' figures and, per configured sink, (sink, delivered, dropped).
pub type AlertFigures = (AlertStats, Vec<(SinkKind, u64, u64)>);

/// What the detectors need besides scanlogd's settings.
#[derive(Clone, Debug, Default)]
pub struct DetectorParams {
    pub flows: FlowParams,
    /// Flow builder: slots, idle and active timeouts (seconds).
    pub flow_capacity: usize,
    pub flow_idle: u64,
    pub flow_active: u64,
    pub spike: SpikeRule,
    pub spike_capacity: usize,
}

pub struct Alerts {
    scan: ScanDetector,
    tools: Fingerprinter,
    flows: FlowSensors,
    builder: FlowBuilder,
    spikes: SpikeWatch,
    /// Events of the flow sensors and the spike watch, reused.
    found: Vec<Event>,
    /// Who saw it: the capture interface, or "replay".
    observer: String,
    tx: Option<SyncSender<Alert>>,
    sink: Option<JoinHandle<()>>,
    counters: Arc<SinkCounters>,
    /// Per event type: the minute (of event time) being counted, and events sent in it.
    rate: [(i64, u32); 6],
    pub stats: AlertStats,
    /// The flow builder and the spike watch run only when events have a sink: the builder is
    /// the dearest detector per packet, the watch reads the history files, and a replay with
    /// nowhere to send events needs neither (the page draws its spike marks on its own).
    watch: bool,
}

impl Alerts {
    pub fn new(scan: ScanParams, observer: String, sinks: Sinks) -> Alerts {
        Alerts::with(scan, DetectorParams::defaults(), observer, sinks)
    }

    pub fn with(scan: ScanParams, d: DetectorParams, observer: String, sinks: Sinks) -> Alerts {
        let counters = Arc::new(SinkCounters::default());
        let (tx, sink) = if sinks.is_empty() {
            (None, None)
        } else {
            let (tx, handle) = sink::spawn(sinks, QUEUE, counters.clone());
            (Some(tx), Some(handle))
        };
        let watch = tx.is_some();
        Alerts {
            scan: ScanDetector::new(scan),
            tools: Fingerprinter::new(FingerprintParams::default()),
            flows: FlowSensors::new(d.flows),
            // Not watching: a token table, never used.
            builder: FlowBuilder::new(
                if watch { d.flow_capacity } else { 0 },
                d.flow_idle,
                d.flow_active,
            ),
            spikes: SpikeWatch::new(d.spike, d.spike_capacity),
            found: Vec::new(),
            observer,
            tx,
            sink,
            counters,
            rate: [(i64::MIN, 0); 6],
            stats: AlertStats::default(),
            watch,
        }
    }

    /// One flow record (NetFlow/IPFIX) arriving at `now`, through the flow sensors; its
    /// observer is in the record. `outbound`: from ours to the outside.
    pub fn flow_record(&mut self, f: &FlowRecord<'_>, outbound: bool, now: i64) {
        self.flows.observe(f, outbound, now, &mut self.found);
        if !self.found.is_empty() {
            self.send_found();
        }
    }

    /// Counters the sink threads keep (drops and deliveries per sink), for the metrics.
    pub fn sink_counters(&self) -> Arc<SinkCounters> {
        self.counters.clone()
    }

    /// The figures for the metrics, with the flow builder's.
    pub fn stats(&self) -> AlertStats {
        AlertStats {
            flow_builder: self.builder.stats,
            ..self.stats
        }
    }

    /// Where `p`'s flow would be built, asked of memory ahead (see `FlowBuilder::locate`);
    /// `Place::NONE` when it is not built (`FlowSensors::may_count`), None when the builder
    /// does not run.
    #[inline]
    pub fn locate_flow(&self, p: &Packet) -> Option<Place> {
        if !self.watch {
            return None;
        }
        Some(if self.flows.may_count(p) {
            self.builder.locate(p)
        } else {
            Place::NONE
        })
    }

    /// The second step of `locate_flow`.
    #[inline]
    pub fn prefetch_flow_slot(&self, at: Place) {
        self.builder.prefetch_slot(at);
    }

    /// One packet to or from our networks (inbound: from outside to us; otherwise outbound,
    /// from us to outside), for the flow builder, at `at`: the place `locate_flow` found for
    /// it (so the builder runs and a sensor could count the flow). No allocation unless a flow
    /// sensor fires.
    #[inline]
    pub fn flow_packet(&mut self, p: &Packet, outbound: bool, ts: i64, at: Place) {
        debug_assert!(self.watch && at.is_some());
        let (flows, found, observer) = (&mut self.flows, &mut self.found, self.observer.as_str());
        self.builder.packet(p, outbound, ts, at, &mut |f, now| {
            judge_flow(flows, observer, f, now, found)
        });
        if !self.found.is_empty() {
            self.send_found();
        }
    }

    /// The clock moved on to `now` (a new second): flows that ended are judged.
    pub fn tick(&mut self, now: i64) {
        if !self.watch {
            return;
        }
        let (flows, found, observer) = (&mut self.flows, &mut self.found, self.observer.as_str());
        self.builder
            .sweep(now, &mut |f, t| judge_flow(flows, observer, f, t, found));
        if !self.found.is_empty() {
            self.send_found();
        }
    }

    /// Every flow still open is judged (the sensor stops).
    pub fn drain_flows(&mut self, now: i64) {
        if !self.watch {
            return;
        }
        let (flows, found, observer) = (&mut self.flows, &mut self.found, self.observer.as_str());
        self.builder
            .drain(now, &mut |f, t| judge_flow(flows, observer, f, t, found));
        if !self.found.is_empty() {
            self.send_found();
        }
    }

    /// Reads the spike baseline on a helper thread (`tsusen run`: a day's history files can be
    /// large, and the capture must not wait for them).
    pub fn spikes_in_background(&mut self) {
        self.spikes.in_background();
    }

    /// The rows of `day` a flush is about to write, for the spike watch.
    pub fn spike_rows(&mut self, day: i64, rows: &[Row], dir: &Path) {
        if self.watch {
            self.spikes.rows(day, rows, dir);
        }
    }

    /// After a flush: the spike check of the day being written.
    pub fn check_spikes(&mut self, dir: &Path, now: i64) {
        if !self.watch {
            return;
        }
        self.spikes.check(dir, now, &self.observer, &mut self.found);
        if !self.found.is_empty() {
            self.send_found();
        }
    }

    fn send_found(&mut self) {
        let mut found = std::mem::take(&mut self.found);
        for e in found.drain(..) {
            self.event(&e);
        }
        self.found = found;
    }

    fn event(&mut self, e: &Event) {
        let k = kind_index(e.kind);
        self.stats.events[k] += 1;
        // Spoofed sources can make every packet a new offender: past the limit an event is
        // only counted, so a flood cannot fill the disk or the brokers.
        let (minute, n) = &mut self.rate[k];
        if e.timestamp.div_euclid(60) != *minute {
            *minute = e.timestamp.div_euclid(60);
            *n = 0;
        }
        if *n >= crate::policy::EVENT_RATE_LIMIT {
            self.stats.suppressed[k] += 1;
            return;
        }
        *n += 1;
        self.send(Alert::Event {
            kind: e.kind,
            json: e.to_json(),
        });
    }

    /// One inbound TCP packet (the caller has applied the local networks and ignore lists).
    #[inline]
    pub fn inbound_tcp(&mut self, p: &Packet, ts: i64, ts_us: u32) {
        if let Some(report) = self.scan.observe(p, ts * 1_000_000 + ts_us as i64) {
            self.stats.scans += matches!(report, Report::Scan(_)) as u64;
            self.send(Alert::Line(report.line_local()));
            if let Report::Scan(s) = &report {
                let e = s.to_event(&self.observer);
                self.event(&e);
            }
        }
        if let Some(label) = self.tools.observe(p, Some(&p.tcp_opts), ts) {
            self.stats.labels += 1;
            let e = label.to_event(&self.observer);
            self.event(&e);
        }
    }

    /// The sources the fingerprinter labels now, by address, for the report page.
    pub fn tool_labels(&self) -> Vec<(crate::addr::Addr, String)> {
        let mut v: Vec<_> = self
            .tools
            .labelled()
            .map(|(a, tools)| {
                let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
                (a, names.join("+"))
            })
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// The detectors' state, for the snapshot.
    pub fn export(&self) -> DetectorState {
        DetectorState {
            scan: self.scan.export(),
            tools: self.tools.export(),
            spikes: self.spikes.export(),
        }
    }

    /// `export`, for the snapshot, with the largest part serialised in place.
    pub fn export_ref(&self) -> DetectorStateRef<'_> {
        DetectorStateRef {
            scan: self.scan.export(),
            tools: self.tools.view(),
            spikes: self.spikes.export(),
        }
    }

    /// Goes on from a snapshot's detector state (into fresh detectors).
    pub fn import(&mut self, state: &DetectorState) {
        if !self.scan.import(&state.scan) {
            log::info!(
                "scan detector settings changed since the snapshot: its sources start afresh"
            );
        }
        self.tools.import(&state.tools);
        self.spikes.import(&state.spikes);
    }

    fn send(&mut self, a: Alert) {
        if let Some(tx) = &self.tx {
            match tx.try_send(a) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.stats.dropped += 1
                }
            }
        }
    }

    /// Closes the queue and waits for the sinks to write what it holds.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(h) = self.sink.take() {
            let _ = h.join();
        }
    }
}

impl DetectorParams {
    /// The policy defaults.
    pub fn defaults() -> DetectorParams {
        use crate::policy;
        DetectorParams {
            flows: FlowParams::default(),
            flow_capacity: policy::FLOW_BUILDER_CAPACITY,
            flow_idle: policy::FLOW_BUILDER_IDLE,
            flow_active: policy::FLOW_BUILDER_ACTIVE,
            spike: SpikeRule::default(),
            spike_capacity: policy::SPIKE_SOURCES_CAPACITY,
        }
    }
}

pub fn kind_index(k: EventKind) -> usize {
    EVENT_KINDS.iter().position(|x| *x == k).unwrap_or(0)
}

/// One flow that ended, through net-security's sensors.
fn judge_flow(flows: &mut FlowSensors, observer: &str, f: &Flow, now: i64, out: &mut Vec<Event>) {
    let r = FlowRecord {
        observer,
        src: f.src,
        dst: f.dst,
        sport: f.sport,
        dport: f.dport,
        proto: f.proto,
        tcp_flags: f.tcp_flags,
        packets: f.packets,
        bytes: f.bytes,
        first: f.first,
        last: f.last,
    };
    flows.observe(&r, f.outbound, now, out);
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lent_state_serialises_as_the_exported_one() {
        let mut a = Alerts::new(ScanParams::default(), "eth0".into(), Sinks::default());
        let mut p = crate::detect::test_packet();
        p.src = crate::addr::Addr::v4([203, 0, 113, 7]);
        p.dst = crate::addr::Addr::v4([198, 51, 100, 10]);
        p.tcp_flags = crate::decode::flags::SYN;
        p.ip_id = crate::detect::fingerprint::ZMAP_IP_ID;
        for port in 1..40 {
            p.dport = port;
            a.inbound_tcp(&p, 100 + port as i64, 0);
        }
        let exported = a.export();
        assert!(exported != DetectorState::default());
        assert_eq!(
            postcard::to_stdvec(&a.export_ref()).unwrap(),
            postcard::to_stdvec(&exported).unwrap()
        );
    }
}
