//! Alerts: the detectors that watch inbound packets as they pass (scanlogd's scan detector, the
//! tool fingerprints), and the queue that carries what they find to the sinks. The sensor thread
//! owns the detectors; the sinks run on their own thread behind a bounded queue, and when it is
//! full an alert is dropped and counted rather than waited for.

mod sink;

pub use sink::Sinks;

use crate::decode::Packet;
use crate::detect::fingerprint::{FingerprintParams, FingerprintState, Fingerprinter};
use crate::detect::flows::{FlowParams, FlowRecord, FlowSensors};
use crate::detect::scan::{Report, ScanDetector, ScanParams, ScanState};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Alerts waiting for the sinks before new ones are dropped.
const QUEUE: usize = 4096;

/// What the snapshot keeps of the detectors.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectorState {
    pub scan: ScanState,
    pub tools: FingerprintState,
}

/// What travels to the sink thread.
pub enum Alert {
    /// scanlogd's report line, for syslog.
    Line(String),
    /// A threat event, one JSON object.
    Event(String),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct AlertStats {
    pub scans: u64,
    pub labels: u64,
    /// Alerts dropped because the sinks fell behind.
    pub dropped: u64,
    /// Events of the flow sensors (portscan, winscan, spam).
    pub flow_events: u64,
}

pub struct Alerts {
    scan: ScanDetector,
    tools: Fingerprinter,
    /// Who saw it: the capture interface, or "replay".
    observer: String,
    tx: Option<SyncSender<Alert>>,
    sink: Option<JoinHandle<()>>,
    pub stats: AlertStats,
    /// net-security's flow sensors, made when the first flow record comes.
    flow_sensors: Option<FlowSensors>,
    flow_events: Vec<crate::detect::Event>,
}

impl Alerts {
    pub fn new(scan: ScanParams, observer: String, sinks: Sinks) -> Alerts {
        let (tx, sink) = if sinks.is_empty() {
            (None, None)
        } else {
            let (tx, handle) = sink::spawn(sinks, QUEUE);
            (Some(tx), Some(handle))
        };
        Alerts {
            scan: ScanDetector::new(scan),
            tools: Fingerprinter::new(FingerprintParams::default()),
            observer,
            tx,
            sink,
            stats: AlertStats::default(),
            flow_sensors: None,
            flow_events: Vec::new(),
        }
    }

    /// One flow record (NetFlow/IPFIX) arriving at `now`, through the flow sensors; its
    /// observer is in the record. `outbound`: from ours to the outside.
    pub fn flow_record(&mut self, f: &FlowRecord<'_>, outbound: bool, now: i64) {
        let sensors = self
            .flow_sensors
            .get_or_insert_with(|| FlowSensors::new(FlowParams::default()));
        sensors.observe(f, outbound, now, &mut self.flow_events);
        let mut events = std::mem::take(&mut self.flow_events);
        for e in events.drain(..) {
            self.stats.flow_events += 1;
            self.send(Alert::Event(e.to_json()));
        }
        self.flow_events = events;
    }

    /// One inbound TCP packet (the caller has applied the local networks and ignore lists).
    #[inline]
    pub fn inbound_tcp(&mut self, p: &Packet, ts: i64, ts_us: u32) {
        if let Some(report) = self.scan.observe(p, ts * 1_000_000 + ts_us as i64) {
            self.stats.scans += matches!(report, Report::Scan(_)) as u64;
            self.send(Alert::Line(report.line_local()));
            if let Report::Scan(s) = &report {
                self.send(Alert::Event(s.to_event(&self.observer).to_json()));
            }
        }
        if let Some(label) = self.tools.observe(p, Some(&p.tcp_opts), ts) {
            self.stats.labels += 1;
            self.send(Alert::Event(label.to_event(&self.observer).to_json()));
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

impl Drop for Alerts {
    fn drop(&mut self) {
        self.finish();
    }
}
