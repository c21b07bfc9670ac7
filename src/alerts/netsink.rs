//! A network sink on its own thread (MQTT, AMQP): its own bounded buffer, so a slow or dead
//! broker fills that buffer and drops there (counted for that sink) while syslog and the file
//! go on; one message in flight at a time, kept until the broker acknowledges it and sent again
//! after a reconnection; reconnection with exponential backoff.

use super::sink::{SinkCounters, SinkKind};
use crate::policy::{SINK_BACKOFF_MAX, SINK_BACKOFF_MIN};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seconds a sink keeps trying to deliver what it holds once the sensor stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Seconds to connect and to wait for any answer of the broker.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker protocol, one connection at a time.
pub trait Publisher {
    /// Connects (and sets up the session), dropping any previous connection.
    fn connect(&mut self) -> io::Result<()>;
    /// Delivers one message and waits for the broker's acknowledgement. `again`: the same
    /// message as the last call, after a reconnection.
    fn publish(&mut self, payload: &[u8], again: bool) -> io::Result<()>;
    /// Nothing to send for a while: keep the connection alive (or notice it is dead).
    fn idle(&mut self) -> io::Result<()>;
    /// Seconds between two `idle` calls.
    fn idle_period(&self) -> Duration;
    fn close(&mut self);
    /// For the log: the broker's address without credentials.
    fn describe(&self) -> String;
}

pub struct NetSink {
    pub tx: SyncSender<Arc<str>>,
    pub handle: JoinHandle<()>,
    pub stopping: Arc<AtomicBool>,
}

pub fn spawn<P: Publisher + Send + 'static>(
    mut p: P,
    kind: SinkKind,
    buffer: usize,
    counters: Arc<SinkCounters>,
) -> NetSink {
    let (tx, rx) = sync_channel::<Arc<str>>(buffer);
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let handle = std::thread::Builder::new()
        .name(format!("tsusen-{}", kind.name()))
        .spawn(move || run(&mut p, kind, rx, &counters, &stop))
        .expect("spawn a sink thread");
    NetSink {
        tx,
        handle,
        stopping,
    }
}

fn run<P: Publisher>(
    p: &mut P,
    kind: SinkKind,
    rx: Receiver<Arc<str>>,
    counters: &SinkCounters,
    stopping: &AtomicBool,
) {
    let mut pending: Option<Arc<str>> = None;
    let mut again = false;
    let mut connected = false;
    let mut backoff = Duration::from_secs(SINK_BACKOFF_MIN);
    let mut stop_at: Option<Instant> = None;
    let mut warned = false;
    loop {
        if stop_at.is_none() && stopping.load(Ordering::Relaxed) {
            stop_at = Some(Instant::now() + SHUTDOWN_GRACE);
        }
        if pending.is_none() {
            let wait = if connected {
                p.idle_period()
            } else {
                Duration::from_secs(3600)
            };
            match rx.recv_timeout(wait) {
                Ok(m) => {
                    pending = Some(m);
                    again = false;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if connected {
                        if let Err(e) = p.idle() {
                            log::warn!("{} {}: {e}", kind.name(), p.describe());
                            p.close();
                            connected = false;
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if !connected {
            if stop_at.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            match p.connect() {
                Ok(()) => {
                    connected = true;
                    backoff = Duration::from_secs(SINK_BACKOFF_MIN);
                    if warned {
                        log::info!("{} {}: connected again", kind.name(), p.describe());
                        warned = false;
                    }
                }
                Err(e) => {
                    if !warned {
                        log::warn!(
                            "{} {}: {e}; retrying with backoff (holding at most the sink buffer)",
                            kind.name(),
                            p.describe()
                        );
                        warned = true;
                    }
                    p.close();
                    sleep_unless_stopping(backoff, stopping, stop_at);
                    backoff = (backoff * 2).min(Duration::from_secs(SINK_BACKOFF_MAX));
                    continue;
                }
            }
        }
        let m = pending.as_ref().expect("set above");
        match p.publish(m.as_bytes(), again) {
            Ok(()) => {
                counters.sent(kind);
                pending = None;
            }
            Err(e) => {
                log::warn!("{} {}: {e}", kind.name(), p.describe());
                warned = true;
                p.close();
                connected = false;
                again = true;
            }
        }
    }
    // Whatever could not be delivered in time.
    let left = pending.is_some() as u64 + rx.try_iter().count() as u64;
    for _ in 0..left {
        counters.dropped(kind);
    }
    p.close();
}

fn sleep_unless_stopping(d: Duration, stopping: &AtomicBool, stop_at: Option<Instant>) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stopping.load(Ordering::Relaxed) && stop_at.is_none() {
            return;
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker URL: `scheme://[user[:pass]@]host[:port][/path]`, user, password and path
/// percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub user: Option<String>,
    pub pass: Option<String>,
    pub host: String,
    pub port: u16,
    /// The path after the first `/`, decoded (`None`: no path).
    pub path: Option<String>,
}

impl BrokerUrl {
    pub fn parse(url: &str, scheme: &str, default_port: u16) -> Result<BrokerUrl, String> {
        let rest = url
            .strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| format!("'{}' does not start with {scheme}://", redact(url)))?;
        let (auth_host, path) = match rest.split_once('/') {
            Some((a, p)) => (a, Some(decode(p)?)),
            None => (rest, None),
        };
        let (auth, hostport) = match auth_host.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, auth_host),
        };
        let (user, pass) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some(decode(u)?), Some(decode(p)?)),
                None => (Some(decode(a)?), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| "unclosed [ in the host".to_string())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port '{p}'"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("junk after the host: '{after}'")),
            };
            (h.to_string(), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("bad port '{p}'"))?,
                ),
                None => (hostport.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("'{}': no host", redact(url)));
        }
        Ok(BrokerUrl {
            user,
            pass,
            host,
            port,
            path,
        })
    }

    pub fn connect(&self) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.host)))?
            .collect();
        let mut last = io::Error::other(format!("{}: no address", self.host));
        for a in addrs {
            match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
                Ok(s) => {
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = io::Error::new(e.kind(), format!("{a}: {e}")),
            }
        }
        Err(last)
    }

    pub fn describe(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &url[s + 3..at];
            let user = auth.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad %-escape in the URL".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to invalid UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        let u = BrokerUrl::parse("amqp://guest:gu%40st@127.0.0.1:5673/%2f", "amqp", 5672).unwrap();
        assert_eq!(u.user.as_deref(), Some("guest"));
        assert_eq!(u.pass.as_deref(), Some("gu@st"));
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 5673));
        assert_eq!(u.path.as_deref(), Some("/"));
        let u = BrokerUrl::parse("mqtt://broker.example", "mqtt", 1883).unwrap();
        assert_eq!((u.user, u.port, u.path), (None, 1883, None));
        let u = BrokerUrl::parse("mqtt://u@[::1]:1884", "mqtt", 1883).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        assert!(BrokerUrl::parse("http://x", "mqtt", 1883).is_err());
        assert!(BrokerUrl::parse("mqtt://:1883", "mqtt", 1883).is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999", "mqtt", 1883).is_err());
        assert_eq!(redact("amqp://u:secret@h/v"), "amqp://u:***@h/v");
    }
}
