//! The sink thread: scanlogd's lines to syslog (facility daemon, priority alert, as scanlogd
//! logs them), events as JSON lines to a file, and either to stderr when asked.

use super::Alert;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// LOG_DAEMON | LOG_ALERT, scanlogd's priority.
const SYSLOG_PRIORITY: u8 = 3 * 8 + 1;

#[derive(Clone, Debug, Default)]
pub struct Sinks {
    /// The syslog socket (normally /dev/log).
    pub syslog: Option<PathBuf>,
    /// A file that gets one JSON event per line.
    pub event_file: Option<PathBuf>,
    /// Lines and events on stderr too.
    pub stderr: bool,
}

impl Sinks {
    pub fn is_empty(&self) -> bool {
        self.syslog.is_none() && self.event_file.is_none() && !self.stderr
    }
}

pub fn spawn(sinks: Sinks, queue: usize) -> (SyncSender<Alert>, JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Alert>(queue);
    let handle = std::thread::Builder::new()
        .name("tsusen-alerts".into())
        .spawn(move || {
            let syslog = sinks.syslog.as_ref().and_then(|path| {
                let s = UnixDatagram::unbound().ok()?;
                match s.connect(path) {
                    Ok(()) => Some(s),
                    Err(e) => {
                        log::warn!(
                            "syslog at {}: {e}: scan reports go elsewhere only",
                            path.display()
                        );
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
            let pid = std::process::id();
            for alert in rx {
                match alert {
                    Alert::Line(line) => {
                        if let Some(s) = &syslog {
                            let stamp = chrono::Local::now().format("%b %e %H:%M:%S");
                            let msg = format!("<{SYSLOG_PRIORITY}>{stamp} tsusen[{pid}]: {line}");
                            let _ = s.send(msg.as_bytes());
                        }
                        if sinks.stderr {
                            eprintln!("tsusen: scan: {line}");
                        }
                    }
                    Alert::Event(json) => {
                        if let Some(f) = events.as_mut() {
                            if let Err(e) = writeln!(f, "{json}") {
                                log::error!("event file: {e}");
                            }
                        }
                        if sinks.stderr {
                            eprintln!("tsusen: event: {json}");
                        }
                    }
                }
            }
            if let Some(f) = events.as_mut() {
                let _ = f.sync_data();
            }
        })
        .expect("spawn the alert thread");
    (tx, handle)
}
