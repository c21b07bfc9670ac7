//! A small AMQP 0-9-1 publisher: events to one durable queue, as net-security reported its
//! threats (queue `security-threat`, JSON bodies). The handshake (protocol header,
//! Connection.Start/StartOk with PLAIN, Tune/TuneOk, Open/OpenOk), Channel.Open, Queue.Declare
//! (durable), Confirm.Select, then per event Basic.Publish with a persistent delivery mode and
//! a wait for the broker's Basic.Ack, so an event counts as sent only once the broker has it.
//! Heartbeats are turned off (TuneOk 0): a dead connection shows at the next publish, which
//! then reconnects and sends again. Why not lapin: it brings an executor, a reactor and a TLS
//! stack's worth of dependencies to an embedded binary that sends one kind of message to one
//! queue; this publisher is the dozen methods that takes.

use super::netsink::{BrokerUrl, Publisher};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xce;
/// Largest frame we agree to (and read).
const FRAME_MAX: u32 = 131_072;

pub struct Amqp {
    url: BrokerUrl,
    queue: String,
    stream: Option<TcpStream>,
    frame_max: u32,
    /// Delivery tag of the last publish on this channel.
    tag: u64,
}

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn put_long_str(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + args.len());
    v.extend_from_slice(&class.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(args);
    v
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(kind);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(FRAME_END);
    f
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The reply text of a Connection.Close or Channel.Close (code, short string, ...).
fn close_reason(args: &[u8]) -> String {
    if args.len() < 3 {
        return "closed".into();
    }
    let code = u16::from_be_bytes([args[0], args[1]]);
    let n = args[2] as usize;
    let text = args
        .get(3..3 + n)
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default();
    format!("{code} {text}")
}

impl Amqp {
    pub fn new(url: BrokerUrl, queue: String) -> Amqp {
        Amqp {
            url,
            queue,
            stream: None,
            frame_max: FRAME_MAX,
            tag: 0,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream()?.write_all(bytes)
    }

    fn send_method(&mut self, channel: u16, class: u16, id: u16, args: &[u8]) -> io::Result<()> {
        let f = frame(FRAME_METHOD, channel, &method(class, id, args));
        self.send(&f)
    }

    /// The next frame: type, channel, payload.
    fn read_frame(&mut self) -> io::Result<(u8, u16, Vec<u8>)> {
        let max = self.frame_max.max(4096) as usize;
        let s = self.stream()?;
        let mut h = [0u8; 7];
        s.read_exact(&mut h)?;
        let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
        if size > max {
            return Err(bad(format!("a {size}-byte frame from the broker")));
        }
        let mut payload = vec![0u8; size + 1];
        s.read_exact(&mut payload)?;
        if payload.pop() != Some(FRAME_END) {
            return Err(bad("frame without its end marker"));
        }
        Ok((h[0], u16::from_be_bytes([h[1], h[2]]), payload))
    }

    /// The next method (heartbeats passed over): class, id, arguments. A Close from the broker
    /// is answered and returned as an error with its reason.
    fn read_method(&mut self) -> io::Result<(u16, u16, Vec<u8>)> {
        loop {
            let (kind, channel, p) = self.read_frame()?;
            match kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD if p.len() >= 4 => {
                    let class = u16::from_be_bytes([p[0], p[1]]);
                    let id = u16::from_be_bytes([p[2], p[3]]);
                    let args = p[4..].to_vec();
                    if (class, id) == (10, 50) {
                        let _ = self.send_method(0, 10, 51, &[]);
                        return Err(io::Error::other(format!(
                            "broker closed the connection: {}",
                            close_reason(&args)
                        )));
                    }
                    if (class, id) == (20, 40) {
                        let _ = self.send_method(channel, 20, 41, &[]);
                        return Err(io::Error::other(format!(
                            "broker closed the channel: {}",
                            close_reason(&args)
                        )));
                    }
                    return Ok((class, id, args));
                }
                _ => return Err(bad(format!("unexpected frame type {kind}"))),
            }
        }
    }

    fn expect(&mut self, class: u16, id: u16, what: &str) -> io::Result<Vec<u8>> {
        let (c, i, args) = self.read_method()?;
        if (c, i) != (class, id) {
            return Err(bad(format!(
                "expected {what} ({class}.{id}), got method {c}.{i}"
            )));
        }
        Ok(args)
    }

    fn handshake(&mut self) -> io::Result<()> {
        self.send(b"AMQP\x00\x00\x09\x01")?;
        let start = self.expect(10, 10, "Connection.Start")?;
        // version-major, version-minor, server-properties (table), mechanisms (long string)...
        let long_at = |at: usize| -> Option<(&[u8], usize)> {
            let n = u32::from_be_bytes(start.get(at..at + 4)?.try_into().ok()?) as usize;
            Some((start.get(at + 4..at + 4 + n)?, at + 4 + n))
        };
        let mechs = long_at(2)
            .and_then(|(_, next)| long_at(next))
            .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default();
        if !mechs.split(' ').any(|m| m == "PLAIN") {
            return Err(bad(format!("broker offers no PLAIN login ('{mechs}')")));
        }
        let user = self.url.user.clone().unwrap_or_else(|| "guest".into());
        let pass = self.url.pass.clone().unwrap_or_else(|| "guest".into());
        let mut a = Vec::new();
        // client-properties: an empty table
        a.extend_from_slice(&0u32.to_be_bytes());
        put_short_str(&mut a, "PLAIN");
        let mut resp = vec![0u8];
        resp.extend_from_slice(user.as_bytes());
        resp.push(0);
        resp.extend_from_slice(pass.as_bytes());
        put_long_str(&mut a, &resp);
        put_short_str(&mut a, "en_US");
        self.send_method(0, 10, 11, &a)?;
        let tune = match self.read_method() {
            Ok((10, 30, args)) => args,
            Ok((c, i, _)) => return Err(bad(format!("expected Connection.Tune, got {c}.{i}"))),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{e} (wrong user or password?)"),
                ))
            }
        };
        if tune.len() < 8 {
            return Err(bad("short Connection.Tune"));
        }
        let channel_max = u16::from_be_bytes([tune[0], tune[1]]);
        let server_frame_max = u32::from_be_bytes([tune[2], tune[3], tune[4], tune[5]]);
        self.frame_max = if server_frame_max == 0 {
            FRAME_MAX
        } else {
            server_frame_max.min(FRAME_MAX)
        };
        let mut a = Vec::new();
        a.extend_from_slice(&channel_max.clamp(1, 2047).to_be_bytes());
        a.extend_from_slice(&self.frame_max.to_be_bytes());
        a.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
        self.send_method(0, 10, 31, &a)?;
        let vhost = self.url.path.clone().filter(|p| !p.is_empty());
        let mut a = Vec::new();
        put_short_str(&mut a, vhost.as_deref().unwrap_or("/"));
        put_short_str(&mut a, "");
        a.push(0);
        self.send_method(0, 10, 40, &a)?;
        self.expect(10, 41, "Connection.OpenOk")?;
        self.send_method(1, 20, 10, &[0])?;
        self.expect(20, 11, "Channel.OpenOk")?;
        let mut a = Vec::new();
        a.extend_from_slice(&0u16.to_be_bytes());
        put_short_str(&mut a, &self.queue);
        a.push(0b0000_0010); // durable; not passive, exclusive, auto-delete or no-wait
        a.extend_from_slice(&0u32.to_be_bytes()); // no arguments
        self.send_method(1, 50, 10, &a)?;
        self.expect(50, 11, "Queue.DeclareOk")?;
        self.send_method(1, 85, 10, &[0])?;
        self.expect(85, 11, "Confirm.SelectOk")?;
        self.tag = 0;
        Ok(())
    }
}

impl Amqp {
    /// Basic.Get without acknowledgement: the queue's next message, `None` when it is empty.
    /// For checks and tests: tsusen itself only publishes.
    pub fn get(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut a = Vec::new();
        a.extend_from_slice(&0u16.to_be_bytes());
        put_short_str(&mut a, &self.queue);
        a.push(1); // no-ack
        self.send_method(1, 60, 70, &a)?;
        loop {
            match self.read_method()? {
                (60, 72, _) => return Ok(None),
                (60, 71, _) => break,
                _ => continue,
            }
        }
        let (kind, _, h) = self.read_frame()?;
        if kind != FRAME_HEADER || h.len() < 12 {
            return Err(bad("expected a content header"));
        }
        let size = u64::from_be_bytes(h[4..12].try_into().expect("8 bytes")) as usize;
        let mut body = Vec::with_capacity(size.min(1 << 20));
        while body.len() < size {
            let (kind, _, part) = self.read_frame()?;
            if kind != FRAME_BODY {
                return Err(bad("expected a content body"));
            }
            body.extend_from_slice(&part);
        }
        Ok(Some(body))
    }
}

impl Publisher for Amqp {
    fn connect(&mut self) -> io::Result<()> {
        self.stream = Some(self.url.connect()?);
        let r = self.handshake();
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn publish(&mut self, payload: &[u8], _again: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 128);
        let mut a = Vec::new();
        a.extend_from_slice(&0u16.to_be_bytes());
        put_short_str(&mut a, ""); // the default exchange routes by queue name
        put_short_str(&mut a, &self.queue);
        a.push(0); // not mandatory, not immediate
        out.extend_from_slice(&frame(FRAME_METHOD, 1, &method(60, 40, &a)));
        let mut h = Vec::new();
        h.extend_from_slice(&60u16.to_be_bytes());
        h.extend_from_slice(&0u16.to_be_bytes());
        h.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        h.extend_from_slice(&(0x8000u16 | 0x1000).to_be_bytes()); // content-type, delivery-mode
        put_short_str(&mut h, "application/json");
        h.push(2); // persistent
        out.extend_from_slice(&frame(FRAME_HEADER, 1, &h));
        let chunk = (self.frame_max as usize - 8).max(1);
        for part in payload.chunks(chunk) {
            out.extend_from_slice(&frame(FRAME_BODY, 1, part));
        }
        self.send(&out)?;
        self.tag += 1;
        let tag = self.tag;
        loop {
            let (c, i, args) = self.read_method()?;
            if args.len() < 9 {
                continue;
            }
            let acked = u64::from_be_bytes(args[..8].try_into().expect("8 bytes"));
            let multiple = args[8] & 1 != 0;
            let covers = acked == tag || (multiple && acked >= tag);
            match (c, i) {
                (60, 80) if covers => return Ok(()),
                (60, 120) if covers => return Err(io::Error::other("broker refused the event")),
                _ => {}
            }
        }
    }

    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn idle_period(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn close(&mut self) {
        if self.stream.is_some() {
            let mut a = Vec::new();
            a.extend_from_slice(&200u16.to_be_bytes());
            put_short_str(&mut a, "bye");
            a.extend_from_slice(&[0, 0, 0, 0]);
            let _ = self.send_method(0, 10, 50, &a);
            // No wait for CloseOk: the socket goes either way.
        }
        self.stream = None;
    }

    fn describe(&self) -> String {
        format!("amqp://{} queue {}", self.url.describe(), self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_the_spec_draws_them() {
        let f = frame(FRAME_METHOD, 1, &method(85, 10, &[0]));
        assert_eq!(f, [1, 0, 1, 0, 0, 0, 5, 0, 85, 0, 10, 0, 0xce]);
        assert_eq!(
            close_reason(&[1, 0x93, 3, b'a', b'b', b'c', 0, 0]),
            "403 abc"
        );
    }
}
