//! The sink thread: scanlogd's lines and other events (as JSON) to syslog (local or remote,
//! facility daemon, priority alert, as scanlogd logs them), events as JSON lines to a file,
//! and either to stderr when asked. MQTT and AMQP run on threads of their own, each behind
//! its own bounded buffer, so a dead broker never holds up syslog or the file: when a
//! buffer is full the event is dropped for that sink and counted. The thread takes alerts in
//! bursts (SINK_GATHER_MS), so a flood of events wakes it a few times a second, not per event.

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
use std::time::Duration;

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
    /// `n` messages of one write, delivered or not.
    fn wrote(&self, k: SinkKind, n: u64, ok: bool) {
        self.with(|c| {
            let to = if ok { &mut c.sent } else { &mut c.dropped };
            to[k as usize] += n;
        });
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
    /// How long an alert waits for others to join it (`policy::SINK_GATHER_MS`) when alerts
    /// come in real time; zero for a replay, whose alerts come as fast as the file is read and
    /// would overflow the queue meanwhile.
    pub gather: Duration,
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
            // The event file's lines of one wake, written at once.
            let mut lines = String::new();
            let mut pending = 0u64;
            while let Ok(first) = rx.recv() {
                // A burst gathers for a moment: the thread wakes, and the file is written, once
                // for all of it rather than once an event, and the sensor's sends meanwhile
                // find no sleeper to wake.
                if !sinks.gather.is_zero() {
                    std::thread::sleep(sinks.gather);
                }
                for alert in std::iter::once(first).chain(rx.try_iter()) {
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
                            if events.is_some() {
                                lines.push_str(&json);
                                lines.push('\n');
                                pending += 1;
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
                if let Some(f) = events.as_mut().filter(|_| pending > 0) {
                    let r = f.write_all(lines.as_bytes());
                    if let Err(e) = &r {
                        log::error!("event file: {e}");
                    }
                    counters.wrote(SinkKind::File, pending, r.is_ok());
                    lines.clear();
                    pending = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Alert> {
        (0..n)
            .map(|i| Alert::Event {
                kind: EventKind::Winscan,
                json: format!("{{\"type\":\"winscan\",\"n\":{i}}}"),
            })
            .collect()
    }

    /// Sends `alerts` to a sink thread writing `file`, then closes the queue and waits.
    fn run(file: &std::path::Path, gather: Duration, alerts: Vec<Alert>) -> Arc<SinkCounters> {
        let counters = Arc::new(SinkCounters::default());
        let sinks = Sinks {
            event_file: Some(file.to_path_buf()),
            gather,
            ..Default::default()
        };
        let (tx, handle) = spawn(sinks, 4096, counters.clone());
        for a in alerts {
            tx.try_send(a).expect("room in the queue");
        }
        drop(tx);
        handle.join().unwrap();
        counters
    }

    /// A burst gathered or not, every event is one line, in order, counted once.
    #[test]
    fn a_burst_reaches_the_event_file_whole() {
        let dir = std::env::temp_dir().join(format!("tsusen-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, gather) in [
            ("gathered", Duration::from_millis(20)),
            ("at once", Duration::ZERO),
        ] {
            let file = dir.join(format!("{}.jsonl", name.replace(' ', "-")));
            let _ = std::fs::remove_file(&file);
            let counters = run(&file, gather, events(3000));
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 3000, "{name}");
            assert_eq!(lines[2999], "{\"type\":\"winscan\",\"n\":2999}", "{name}");
            assert_eq!(
                counters.figures(),
                vec![(SinkKind::File, 3000, 0)],
                "{name}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A write that fails drops every event it held, and says so in the counters.
    #[test]
    fn a_failed_write_counts_each_event_dropped() {
        let full = std::path::Path::new("/dev/full");
        if !full.exists() {
            eprintln!("SKIP: no /dev/full");
            return;
        }
        let counters = run(full, Duration::from_millis(20), events(10));
        assert_eq!(counters.figures(), vec![(SinkKind::File, 0, 10)]);
    }
}
