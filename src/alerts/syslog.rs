//! Syslog: the local socket (/dev/log) or a remote collector over UDP, facility daemon, level
//! alert (scanlogd's priority), in RFC 3164 (BSD, the default) or RFC 5424 form.

use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// LOG_DAEMON | LOG_ALERT, scanlogd's priority.
pub const PRIORITY: u8 = 3 * 8 + 1;

/// Where syslog messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A local datagram socket such as /dev/log.
    Local(PathBuf),
    /// A remote collector, `host:port` (UDP).
    Udp(String),
}

impl SyslogTarget {
    /// SYSLOG's value: an absolute path, `udp://host:port`, or `host:port` (port 514 when
    /// `udp://host` gives none).
    pub fn parse(v: &str) -> Result<SyslogTarget, String> {
        if v.starts_with('/') {
            return Ok(SyslogTarget::Local(v.into()));
        }
        let (rest, scheme) = match v.strip_prefix("udp://") {
            Some(r) => (r.trim_end_matches('/'), true),
            None => (v, false),
        };
        if rest.is_empty() {
            return Err(format!("'{v}': no host"));
        }
        let has_port = match rest.rsplit_once(':') {
            Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok() && !h.ends_with(':'),
            None => false,
        } || (rest.starts_with('[') && rest.contains("]:"));
        if has_port {
            Ok(SyslogTarget::Udp(rest.into()))
        } else if scheme {
            Ok(SyslogTarget::Udp(
                if rest.contains(':') && !rest.starts_with('[') {
                    format!("[{rest}]:514")
                } else {
                    format!("{rest}:514")
                },
            ))
        } else {
            Err(format!(
                "'{v}' is neither a socket path (/dev/log) nor host:port or udp://host:port"
            ))
        }
    }
}

enum Socket {
    Local(UnixDatagram),
    Udp(UdpSocket),
}

/// An open syslog sender.
pub struct Syslog {
    socket: Socket,
    format: u16,
    hostname: String,
    pid: u32,
}

impl Syslog {
    pub fn open(target: &SyslogTarget, format: u16) -> io::Result<Syslog> {
        let socket = match target {
            SyslogTarget::Local(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                Socket::Local(s)
            }
            SyslogTarget::Udp(addr) => {
                let to = addr
                    .to_socket_addrs()
                    .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?
                    .next()
                    .ok_or_else(|| io::Error::other(format!("{addr}: no address")))?;
                let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
                let s = UdpSocket::bind(bind)?;
                s.connect(to)
                    .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
                Socket::Udp(s)
            }
        };
        Ok(Syslog {
            socket,
            format,
            hostname: hostname(),
            pid: std::process::id(),
        })
    }

    /// The message as it goes on the wire at `now`.
    pub fn format(&self, msg: &str, now: chrono::DateTime<chrono::Utc>) -> String {
        let remote = matches!(self.socket, Socket::Udp(_));
        if self.format == 5424 {
            // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
            format!(
                "<{PRIORITY}>1 {} {} tsusen {} - - {msg}",
                now.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                self.hostname,
                self.pid
            )
        } else {
            // RFC 3164: local time; the local socket adds the host name itself.
            let stamp = now.with_timezone(&chrono::Local).format("%b %e %H:%M:%S");
            if remote {
                format!(
                    "<{PRIORITY}>{stamp} {} tsusen[{}]: {msg}",
                    self.hostname, self.pid
                )
            } else {
                format!("<{PRIORITY}>{stamp} tsusen[{}]: {msg}", self.pid)
            }
        }
    }

    /// Sends one message; UDP never waits on the collector.
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let m = self.format(msg, chrono::Utc::now());
        match &self.socket {
            Socket::Local(s) => s.send(m.as_bytes()).map(|_| ()),
            Socket::Udp(s) => s.send(m.as_bytes()).map(|_| ()),
        }
    }
}

/// This host's name (uname's nodename), "localhost" when it has none.
pub fn hostname() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct we own; nodename is NUL-terminated on success.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "localhost".into();
    }
    let bytes: Vec<u8> = u
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        // c_char is i8 on x86-64 and u8 on the ARM boards.
        .map(|&c| c.to_ne_bytes()[0])
        .filter(|c| c.is_ascii_graphic())
        .collect();
    if bytes.is_empty() {
        "localhost".into()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            SyslogTarget::parse("/dev/log").unwrap(),
            SyslogTarget::Local("/dev/log".into())
        );
        assert_eq!(
            SyslogTarget::parse("udp://192.0.2.1:5514").unwrap(),
            SyslogTarget::Udp("192.0.2.1:5514".into())
        );
        assert_eq!(
            SyslogTarget::parse("udp://logs.example").unwrap(),
            SyslogTarget::Udp("logs.example:514".into())
        );
        assert_eq!(
            SyslogTarget::parse("logs.example:514").unwrap(),
            SyslogTarget::Udp("logs.example:514".into())
        );
        assert_eq!(
            SyslogTarget::parse("[2001:db8::1]:514").unwrap(),
            SyslogTarget::Udp("[2001:db8::1]:514".into())
        );
        assert!(SyslogTarget::parse("logs.example").is_err());
        assert!(SyslogTarget::parse("udp://").is_err());
    }

    #[test]
    fn formats_both_rfcs() {
        let l = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = SyslogTarget::Udp(l.local_addr().unwrap().to_string());
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let s = Syslog::open(&t, 5424).unwrap();
        let m = s.format("hello", now);
        assert!(
            m.starts_with("<25>1 2023-11-14T22:13:20.000000Z ") && m.ends_with(" - - hello"),
            "{m}"
        );
        let s = Syslog::open(&t, 3164).unwrap();
        let m = s.format("hello", now);
        assert!(m.starts_with("<25>Nov 1") && m.ends_with("]: hello"), "{m}");
    }
}
