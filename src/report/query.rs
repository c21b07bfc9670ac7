//! The query string of an API call: decoded, bounded, and turned into the filters the page
//! keeps in its URL — tsusen's `ip[]=` (an address, a CIDR or a range `A-B`), `port`, `proto`,
//! a free text `q`, and the dates `from` / `to`.

use super::days::parse_date;
use super::services;
use crate::addr::{Addr, Cidr};
use crate::proto;
use crate::tables::Row;
use std::net::IpAddr;

/// Parameters read from one query string; more are refused (they can only be an attack).
const MAX_PARAMS: usize = 64;
/// `ip[]` filters in one query.
const MAX_IP_FILTERS: usize = 32;
/// Words of the text filter.
const MAX_WORDS: usize = 8;

/// A decoded query string.
#[derive(Debug, Default)]
pub struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// Decodes `a=b&c=d` (`+` is a space, `%XX` a byte; invalid UTF-8 is replaced).
    pub fn parse(raw: &str) -> Result<Query, String> {
        let mut params = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            if params.len() == MAX_PARAMS {
                return Err(format!("more than {MAX_PARAMS} parameters"));
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((decode(k), decode(v)));
        }
        Ok(Query { params })
    }

    /// The last value given for `name`, empty values ignored.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A whole number in `lo..=hi`, or `default` when absent.
    pub fn number(&self, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{name}: '{v}' is not a whole number from {lo} to {hi}")),
        }
    }

    /// A date parameter as a day number.
    pub fn date(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name)
            .map(|v| parse_date(v).ok_or_else(|| format!("{name}: '{v}' is not a YYYY-MM-DD date")))
            .transpose()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// One `ip[]` filter.
#[derive(Clone, Copy, Debug)]
enum IpMatch {
    Net(Cidr),
    /// Both ends in one family, inclusive.
    Range(Addr, Addr),
}

impl IpMatch {
    fn parse(s: &str) -> Result<IpMatch, String> {
        if let Some((a, b)) = s.split_once('-') {
            let ip = |t: &str| {
                t.trim()
                    .parse::<IpAddr>()
                    .map(Addr::from)
                    .map_err(|_| format!("ip[]: '{s}' is not an address range"))
            };
            let (a, b) = (ip(a)?, ip(b)?);
            if a.is_v6() != b.is_v6() || a > b {
                return Err(format!("ip[]: '{s}' is not an address range"));
            }
            return Ok(IpMatch::Range(a, b));
        }
        s.parse::<Cidr>()
            .map(IpMatch::Net)
            .map_err(|e| format!("ip[]: {e}"))
    }

    fn contains(&self, a: &Addr) -> bool {
        match self {
            IpMatch::Net(n) => n.contains(a),
            IpMatch::Range(lo, hi) => lo <= a && a <= hi,
        }
    }
}

/// One word of the text filter, read once so that matching a million rows stays cheap.
#[derive(Debug)]
struct Word {
    lower: String,
    /// The word is a whole address: compare addresses, not text.
    ip: Option<Addr>,
    port: Option<u16>,
    /// The word could be the start of an address's text.
    addressish: bool,
}

/// Which rows an API call is about.
#[derive(Debug, Default)]
pub struct Filter {
    ips: Vec<IpMatch>,
    /// An inclusive port range; `Some(None)` asks for rows without a port.
    port: Option<Option<(u16, u16)>>,
    proto: Option<u8>,
    words: Vec<Word>,
}

impl Filter {
    pub fn from_query(q: &Query) -> Result<Filter, String> {
        let mut f = Filter::default();
        for v in q.all("ip[]").chain(q.all("ip")) {
            for item in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                if f.ips.len() == MAX_IP_FILTERS {
                    return Err(format!("more than {MAX_IP_FILTERS} ip[] filters"));
                }
                f.ips.push(IpMatch::parse(item)?);
            }
        }
        if let Some(p) = q.get("port") {
            f.port = Some(if p == "-" {
                None
            } else {
                let r = crate::config::ports(p).map_err(|e| format!("port: {e}"))?;
                match r.as_slice() {
                    [one] => Some(*one),
                    _ => return Err(format!("port: '{p}' is not one port or range")),
                }
            });
        }
        if let Some(p) = q.get("proto") {
            f.proto =
                Some(proto::parse(p.as_bytes()).ok_or_else(|| format!("proto: unknown '{p}'"))?);
        }
        if let Some(text) = q.get("q") {
            for w in text.split_whitespace().take(MAX_WORDS) {
                let lower = w.to_ascii_lowercase();
                f.words.push(Word {
                    ip: w.parse::<IpAddr>().ok().map(Addr::from),
                    port: w.parse().ok(),
                    addressish: w
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':'),
                    lower,
                });
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.port.is_none() && self.proto.is_none() && self.words.is_empty()
    }

    #[inline]
    pub fn matches(&self, r: &Row) -> bool {
        if let Some(p) = self.proto {
            if r.key.proto != p {
                return false;
            }
        }
        if let Some(want) = self.port {
            let ok = match (want, r.key.port) {
                (None, None) => true,
                (Some((lo, hi)), Some(p)) => (lo..=hi).contains(&p),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        // As tsusen: an address filter matches the source or the destination.
        if !self.ips.is_empty()
            && !self
                .ips
                .iter()
                .any(|m| m.contains(&r.key.src) || m.contains(&r.key.dst))
        {
            return false;
        }
        self.words.iter().all(|w| word_matches(w, r))
    }
}

/// A word matches a protocol name, a port, a service name (in part) or the start of an address.
fn word_matches(w: &Word, r: &Row) -> bool {
    if let Some(ip) = w.ip {
        return r.key.src == ip || r.key.dst == ip;
    }
    if w.port.is_some() && w.port == r.key.port {
        return true;
    }
    if proto::name(r.key.proto).eq_ignore_ascii_case(w.lower.as_bytes()) {
        return true;
    }
    if services::name(r.key.proto, r.key.port).is_some_and(|s| s.contains(&w.lower)) {
        return true;
    }
    if w.addressish {
        let starts = |a: &Addr| {
            let mut text = String::with_capacity(40);
            use std::fmt::Write;
            let _ = write!(text, "{a}");
            text.starts_with(&w.lower)
        };
        return starts(&r.key.src) || starts(&r.key.dst);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Key;

    fn row(port: u16, src: [u8; 4]) -> Row {
        Row {
            key: Key {
                proto: 6,
                port: Some(port),
                dst: Addr::v4([198, 51, 100, 1]),
                src: Addr::v4(src),
            },
            first: 0,
            last: 0,
            count: 1,
        }
    }

    #[test]
    fn filters_as_tsusen_and_more() {
        let q =
            Query::parse("ip%5B%5D=203.0.113.0%2F24&ip[]=192.0.2.5-192.0.2.9&port=20-25").unwrap();
        let f = Filter::from_query(&q).unwrap();
        assert!(f.matches(&row(22, [203, 0, 113, 7])));
        assert!(f.matches(&row(22, [192, 0, 2, 9])));
        assert!(!f.matches(&row(22, [192, 0, 2, 10])));
        assert!(!f.matches(&row(80, [203, 0, 113, 7])));
        // The destination counts too.
        let f = Filter::from_query(&Query::parse("ip[]=198.51.100.1").unwrap()).unwrap();
        assert!(f.matches(&row(80, [1, 2, 3, 4])));
        let f = Filter::from_query(&Query::parse("q=SSH+203.0").unwrap()).unwrap();
        assert!(f.matches(&row(22, [203, 0, 113, 7])));
        assert!(!f.matches(&row(23, [203, 0, 113, 7])));
        let f = Filter::from_query(&Query::parse("proto=udp").unwrap()).unwrap();
        assert!(!f.matches(&row(22, [203, 0, 113, 7])));
        for bad in [
            "ip[]=1.2.3.4/33",
            "ip[]=::1-1.2.3.4",
            "port=x",
            "proto=nope",
        ] {
            assert!(
                Filter::from_query(&Query::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(Query::parse("a=%zz%4").unwrap().get("a"), Some("%zz%4"));
        assert_eq!(
            Query::parse("from=2024-01-31").unwrap().date("from"),
            Ok(Some(19_753))
        );
        assert!(Query::parse("from=../x").unwrap().date("from").is_err());
    }
}
