//! A small MQTT 3.1.1 publisher (OASIS MQTT 3.1.1): CONNECT/CONNACK, PUBLISH at QoS 1 and its
//! PUBACK, PINGREQ/PINGRESP. Nothing else is needed to hand events to a broker, and a blocking
//! client on the sink's own thread keeps the binary free of an async runtime for this. Why not
//! rumqttc: it drives its event loop on tokio (more of tokio than the report page uses) and
//! keeps its own in-memory queues, while the sink needs exactly one message in flight, a
//! bounded buffer of its own and a resend after reconnection; about 200 lines do that, with no
//! new dependency for the musl/aarch64 builds.

use super::netsink::{BrokerUrl, Publisher};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Seconds of keep alive announced in CONNECT; a PINGREQ goes out after half of it idle.
const KEEP_ALIVE: u16 = 60;
/// Largest packet from the broker we read (we subscribe to nothing: only small acks come).
const MAX_INCOMING: usize = 64 * 1024;

pub struct Mqtt {
    url: BrokerUrl,
    topic: String,
    client_id: String,
    stream: Option<TcpStream>,
    packet_id: u16,
}

impl Mqtt {
    pub fn new(url: BrokerUrl, topic: String, client_id: String) -> Mqtt {
        Mqtt {
            url,
            topic,
            client_id,
            stream: None,
            packet_id: 0,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Reads one packet: its first byte and body.
    fn read_packet(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let s = self.stream()?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        let kind = b[0];
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            s.read_exact(&mut b)?;
            len |= ((b[0] & 0x7f) as usize) << shift;
            if b[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad remaining length",
                ));
            }
        }
        if len > MAX_INCOMING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {len}-byte packet from the broker"),
            ));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        Ok((kind, body))
    }

    /// Reads until a packet of type `want` (upper nibble) comes; returns its body.
    fn wait_for(&mut self, want: u8) -> io::Result<Vec<u8>> {
        loop {
            let (kind, body) = self.read_packet()?;
            if kind >> 4 == want {
                return Ok(body);
            }
            // PINGRESP and anything else unasked for are passed over.
        }
    }
}

/// MQTT's variable-length "remaining length".
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

pub fn connect_packet(client_id: &str, user: Option<&str>, pass: Option<&str>) -> Vec<u8> {
    let mut v = Vec::new();
    put_str(&mut v, b"MQTT");
    v.push(4); // protocol level 3.1.1
    let mut flags = 0x02; // clean session: we resend what was not acknowledged ourselves
    if user.is_some() {
        flags |= 0x80;
    }
    if pass.is_some() && user.is_some() {
        flags |= 0x40;
    }
    v.push(flags);
    v.extend_from_slice(&KEEP_ALIVE.to_be_bytes());
    put_str(&mut v, client_id.as_bytes());
    if let Some(u) = user {
        put_str(&mut v, u.as_bytes());
        if let Some(p) = pass {
            put_str(&mut v, p.as_bytes());
        }
    }
    let mut out = vec![0x10];
    put_len(&mut out, v.len());
    out.extend_from_slice(&v);
    out
}

pub fn publish_packet(topic: &str, id: u16, payload: &[u8], dup: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + topic.len() + 8);
    out.push(0x32 | if dup { 0x08 } else { 0 });
    put_len(&mut out, 2 + topic.len() + 2 + payload.len());
    put_str(&mut out, topic.as_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

impl Publisher for Mqtt {
    fn connect(&mut self) -> io::Result<()> {
        self.stream = None;
        let mut s = self.url.connect()?;
        s.write_all(&connect_packet(
            &self.client_id,
            self.url.user.as_deref(),
            self.url.pass.as_deref(),
        ))?;
        self.stream = Some(s);
        let (kind, body) = self.read_packet()?;
        if kind != 0x20 || body.len() != 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no CONNACK from the broker",
            ));
        }
        let reason = match body[1] {
            0 => return Ok(()),
            1 => "unacceptable protocol version",
            2 => "client identifier rejected",
            3 => "server unavailable",
            4 => "bad user name or password",
            5 => "not authorized",
            _ => "refused",
        };
        self.stream = None;
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("broker refused the connection: {reason}"),
        ))
    }

    fn publish(&mut self, payload: &[u8], again: bool) -> io::Result<()> {
        if !again || self.packet_id == 0 {
            self.packet_id = self.packet_id.checked_add(1).unwrap_or(1);
        }
        let id = self.packet_id;
        let packet = publish_packet(&self.topic, id, payload, again);
        self.stream()?.write_all(&packet)?;
        loop {
            let body = self.wait_for(4)?;
            if body.len() >= 2 && u16::from_be_bytes([body[0], body[1]]) == id {
                return Ok(());
            }
        }
    }

    fn idle(&mut self) -> io::Result<()> {
        self.stream()?.write_all(&[0xc0, 0])?;
        self.wait_for(13).map(|_| ())
    }

    fn idle_period(&self) -> Duration {
        Duration::from_secs(KEEP_ALIVE as u64 / 2)
    }

    fn close(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let _ = s.write_all(&[0xe0, 0]); // DISCONNECT
        }
    }

    fn describe(&self) -> String {
        format!("mqtt://{}", self.url.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_as_the_standard_draws_them() {
        let c = connect_packet("t", Some("u"), Some("p"));
        assert_eq!(
            c,
            [
                0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60, 0, 1, b't', 0, 1, b'u', 0,
                1, b'p'
            ]
        );
        let p = publish_packet("a/b", 7, b"{}", true);
        assert_eq!(p, [0x3a, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'{', b'}']);
        let mut v = Vec::new();
        put_len(&mut v, 321);
        assert_eq!(v, [0xc1, 0x02]);
    }
}
