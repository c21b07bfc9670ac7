//! The event every detector emits: net-security's threat event,
//! `{"type", "observer", "offender", "timestamp", "details"}`, written as one line of JSON by
//! hand (no serde). `observer` is the capture interface or the NetFlow exporter that saw it,
//! `offender` the source address (null for events about a port, such as spikes), `timestamp`
//! Unix seconds, and `details` a flat object whose keys depend on the type.

use crate::addr::Addr;
use crate::json::string;
use std::fmt;

/// The event types of issue 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// scanlogd's detector (details: `ports`, `line`).
    Scan,
    /// net-security's portscan sensor.
    Portscan,
    /// net-security's winscan sensor.
    Winscan,
    /// net-security's spam sensor.
    Spam,
    /// A port whose distinct sources today stand out from its baseline.
    Spike,
    /// A scanning tool recognised from its packets (details: `tool`).
    Tool,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Scan => "scan",
            EventKind::Portscan => "portscan",
            EventKind::Winscan => "winscan",
            EventKind::Spam => "spam",
            EventKind::Spike => "spike",
            EventKind::Tool => "tool",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value in `details`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Str(String),
    Bool(bool),
    Ints(Vec<i64>),
    Strs(Vec<String>),
    /// A JSON number already written (finite), such as a median of 2.5.
    Num(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub observer: String,
    pub offender: Option<Addr>,
    /// Unix seconds.
    pub timestamp: i64,
    /// In the order written.
    pub details: Vec<(&'static str, Value)>,
}

impl Event {
    /// The value of one detail, if present.
    pub fn detail(&self, key: &str) -> Option<&Value> {
        self.details.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// One line of JSON, no trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(160);
        self.write_json(&mut s);
        s
    }

    /// Appends the JSON object to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"type\":");
        string(out, self.kind.as_str());
        out.push_str(",\"observer\":");
        string(out, &self.observer);
        out.push_str(",\"offender\":");
        match &self.offender {
            Some(a) => crate::json::addr(out, a),
            None => out.push_str("null"),
        }
        out.push_str(",\"timestamp\":");
        crate::json::int(out, self.timestamp);
        out.push_str(",\"details\":{");
        for (i, (k, v)) in self.details.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, k);
            out.push(':');
            value(out, v);
        }
        out.push_str("}}");
    }
}

fn value(out: &mut String, v: &Value) {
    match v {
        Value::Int(n) => crate::json::int(out, *n),
        Value::Str(s) => string(out, s),
        Value::Num(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Ints(ns) => {
            out.push('[');
            for (i, n) in ns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                crate::json::int(out, *n);
            }
            out.push(']');
        }
        Value::Strs(ss) => {
            out.push('[');
            for (i, s) in ss.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, s);
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_net_security_shape() {
        let e = Event {
            kind: EventKind::Portscan,
            observer: "eth0".into(),
            offender: Some(Addr::v4([192, 0, 2, 7])),
            timestamp: 1_700_000_000,
            details: vec![
                ("flows", Value::Int(101)),
                ("dst_ports", Value::Ints(vec![22, 80])),
                ("note", Value::Str("a \"b\"\\\n\u{1}".into())),
                ("hosts", Value::Strs(vec!["x".into(), "y".into()])),
                ("ok", Value::Bool(true)),
            ],
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"portscan","observer":"eth0","offender":"192.0.2.7","timestamp":1700000000,"details":{"flows":101,"dst_ports":[22,80],"note":"a \"b\"\\\n\u0001","hosts":["x","y"],"ok":true}}"#
        );
        assert_eq!(e.detail("flows"), Some(&Value::Int(101)));
        assert_eq!(e.detail("nope"), None);
    }

    #[test]
    fn no_offender_no_details() {
        let e = Event {
            kind: EventKind::Spike,
            observer: "any".into(),
            offender: None,
            timestamp: 5,
            details: vec![],
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"spike","observer":"any","offender":null,"timestamp":5,"details":{}}"#
        );
    }

    #[test]
    fn ipv6_offender_in_rfc5952_form() {
        let mut b = [0u8; 16];
        b[0] = 0x20;
        b[1] = 0x01;
        b[2] = 0x0d;
        b[3] = 0xb8;
        b[15] = 1;
        let e = Event {
            kind: EventKind::Tool,
            observer: "eth1".into(),
            offender: Some(Addr::v6(b)),
            timestamp: 0,
            details: vec![("tool", Value::Str("nmap".into()))],
        };
        assert!(e.to_json().contains(r#""offender":"2001:db8::1""#));
    }
}
