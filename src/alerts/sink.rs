//! The sink thread: scanlogd's lines and other events (as JSON) to syslog (local or remote,
//! facility daemon, priority alert, as scanlogd logs them), events as JSON lines to a file,
//! and either to stderr when asked. MQTT and AMQP run on threads of their own, each behind
//! its own bounded buffer, so a dead broker never holds up syslog or the file: when a
//! buffer is full the event is dropped for that sink and counted.

use super::amqp::Amqp;
use super::mqtt::Mqtt;
use super::netsink::{self, BrokerUrl, NetSink};
use super::syslog::{Syslog, SyslogTarget};
use super::Alert;
use crate::detect::event::EventKind;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The sinks, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Syslog,
    File,
    Mqtt,
    Amqp,
}

impl SinkKind {
    pub const ALL: [SinkKind; 4] = [
        SinkKind::Syslog,
        SinkKind::File,
        SinkKind::Mqtt,
        SinkKind::Amqp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Syslog => "syslog",
            SinkKind::File => "file",
            SinkKind::Mqtt => "mqtt",
            SinkKind::Amqp => "amqp",
        }
    }
}

/// Per sink: messages delivered and dropped. Written by the sink threads (once per message,
/// never per packet), read by the metrics. A mutex, not 64-bit atomics: 32-bit MIPS has none.
#[derive(Debug, Default)]
pub struct SinkCounters(Mutex<Counts>);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: [u64; 4],
    dropped: [u64; 4],
    /// Which sinks are configured (bit per `SinkKind`).
    configured: u8,
}

impl SinkCounters {
    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        // A sink thread that panicked leaves its counts as they were: still worth reading.
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    }
    pub fn sent(&self, k: SinkKind) {
        self.with(|c| c.sent[k as usize] += 1);
    }
    pub fn dropped(&self, k: SinkKind) {
        self.with(|c| c.dropped[k as usize] += 1);
    }
    fn configure(&self, k: SinkKind) {
        self.with(|c| c.configured |= 1 << k as usize);
    }
    /// (sink, delivered, dropped) of each configured sink.
    pub fn figures(&self) -> Vec<(SinkKind, u64, u64)> {
        let c = self.with(|c| *c);
        SinkKind::ALL
            .iter()
            .filter(|k| c.configured & (1 << **k as usize) != 0)
            .map(|&k| (k, c.sent[k as usize], c.dropped[k as usize]))
            .collect()
    }
    pub fn dropped_of(&self, k: SinkKind) -> u64 {
        self.with(|c| c.dropped[k as usize])
    }
    pub fn sent_of(&self, k: SinkKind) -> u64 {
        self.with(|c| c.sent[k as usize])
    }
}

#[derive(Clone, Debug, Default)]
pub struct Sinks {
    /// Syslog: the local socket (normally /dev/log) or a remote collector.
    pub syslog: Option<SyslogTarget>,
    /// 3164 or 5424.
    pub syslog_format: u16,
    /// A file that gets one JSON event per line.
    pub event_file: Option<PathBuf>,
    /// Lines and events on stderr too.
    pub stderr: bool,
    /// `mqtt://[user:pass@]host[:port]` and the topic.
    pub mqtt: Option<(String, String)>,
    /// `amqp://user:pass@host:port/vhost` and the queue.
    pub amqp: Option<(String, String)>,
}

impl Sinks {
    pub fn is_empty(&self) -> bool {
        self.syslog.is_none()
            && self.event_file.is_none()
            && !self.stderr
            && self.mqtt.is_none()
            && self.amqp.is_none()
    }

    /// Checks the broker URLs (a bad one is a configuration error, not a runtime warning).
    pub fn validate(&self) -> Result<(), String> {
        if let Some((url, _)) = &self.mqtt {
            BrokerUrl::parse(url, "mqtt", 1883).map_err(|e| format!("MQTT_URL: {e}"))?;
        }
        if let Some((url, _)) = &self.amqp {
            BrokerUrl::parse(url, "amqp", 5672).map_err(|e| format!("AMQP_URL: {e}"))?;
        }
        Ok(())
    }
}

/// A network sink's buffer, from the sink thread's side.
struct Forward {
    kind: SinkKind,
    sink: NetSink,
}

impl Forward {
    fn offer(&self, json: &Arc<str>, counters: &SinkCounters) {
        match self.sink.tx.try_send(json.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                counters.dropped(self.kind)
            }
        }
    }
}

fn client_id() -> String {
    // At most 23 bytes, the length every 3.1.1 broker must accept.
    let mut id = format!(
        "tsusen-{}-{}",
        std::process::id(),
        super::syslog::hostname()
    );
    id.truncate(23);
    id
}

pub fn spawn(
    sinks: Sinks,
    queue: usize,
    counters: Arc<SinkCounters>,
) -> (SyncSender<Alert>, JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Alert>(queue);
    let mut forwards = Vec::new();
    if let Some((url, topic)) = &sinks.mqtt {
        match BrokerUrl::parse(url, "mqtt", 1883) {
            Ok(u) => {
                counters.configure(SinkKind::Mqtt);
                let p = Mqtt::new(u, topic.clone(), client_id());
                let sink = netsink::spawn(
                    p,
                    SinkKind::Mqtt,
                    crate::policy::SINK_BUFFER,
                    counters.clone(),
                );
                forwards.push(Forward {
                    kind: SinkKind::Mqtt,
                    sink,
                });
            }
            Err(e) => log::error!("MQTT_URL: {e}"),
        }
    }
    if let Some((url, queue)) = &sinks.amqp {
        match BrokerUrl::parse(url, "amqp", 5672) {
            Ok(u) => {
                counters.configure(SinkKind::Amqp);
                let p = Amqp::new(u, queue.clone());
                let sink = netsink::spawn(
                    p,
                    SinkKind::Amqp,
                    crate::policy::SINK_BUFFER,
                    counters.clone(),
                );
                forwards.push(Forward {
                    kind: SinkKind::Amqp,
                    sink,
                });
            }
            Err(e) => log::error!("AMQP_URL: {e}"),
        }
    }
    if sinks.syslog.is_some() {
        counters.configure(SinkKind::Syslog);
    }
    if sinks.event_file.is_some() {
        counters.configure(SinkKind::File);
    }
    let handle = std::thread::Builder::new()
        .name("tsusen-alerts".into())
        .spawn(move || {
            let syslog = sinks.syslog.as_ref().and_then(|target| {
                match Syslog::open(target, sinks.syslog_format) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        log::warn!("syslog: {e}: scan reports go elsewhere only");
                        None
                    }
                }
            });
            let mut events: Option<File> = sinks.event_file.as_ref().and_then(|path| {
                match OpenOptions::new().create(true).append(true).open(path) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        log::error!("event file {}: {e}", path.display());
                        None
                    }
                }
            });
            let to_syslog = |msg: &str| {
                if let Some(s) = &syslog {
                    match s.send(msg) {
                        Ok(()) => counters.sent(SinkKind::Syslog),
                        Err(_) => counters.dropped(SinkKind::Syslog),
                    }
                } else if sinks.syslog.is_some() {
                    counters.dropped(SinkKind::Syslog);
                }
            };
            for alert in rx {
                match alert {
                    Alert::Line(line) => {
                        to_syslog(&line);
                        if sinks.stderr {
                            eprintln!("tsusen: scan: {line}");
                        }
                    }
                    Alert::Event { kind, json } => {
                        // A scan's report is already in syslog as scanlogd's line.
                        if kind != EventKind::Scan {
                            to_syslog(&json);
                        }
                        if let Some(f) = events.as_mut() {
                            match writeln!(f, "{json}") {
                                Ok(()) => counters.sent(SinkKind::File),
                                Err(e) => {
                                    counters.dropped(SinkKind::File);
                                    log::error!("event file: {e}");
                                }
                            }
                        }
                        if sinks.stderr {
                            eprintln!("tsusen: event: {json}");
                        }
                        if !forwards.is_empty() {
                            let json: Arc<str> = json.into();
                            for f in &forwards {
                                f.offer(&json, &counters);
                            }
                        }
                    }
                }
            }
            if let Some(f) = events.as_mut() {
                let _ = f.sync_data();
            }
            for f in forwards {
                f.sink
                    .stopping
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                drop(f.sink.tx);
                let _ = f.sink.handle.join();
            }
        })
        .expect("spawn the alert thread");
    (tx, handle)
}
