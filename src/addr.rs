//! A compact, ordered IP address and CIDR sets (local networks, ignore lists).

pub mod text;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 address in 17 bytes with alignment 1, ordered as the CSV wants:
/// every IPv4 address before every IPv6 address, then numerically.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Addr {
    v6: bool,
    bytes: [u8; 16],
}

impl Ord for Addr {
    /// The family, then the address as one number: the byte-wise order, in two word compares
    /// instead of a call to compare memory (the flow table orders both ends of every UDP packet).
    #[inline]
    fn cmp(&self, other: &Addr) -> std::cmp::Ordering {
        (self.v6, self.bits()).cmp(&(other.v6, other.bits()))
    }
}

impl PartialOrd for Addr {
    #[inline]
    fn partial_cmp(&self, other: &Addr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Addr {
    #[inline]
    pub fn v4(octets: [u8; 4]) -> Addr {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&octets);
        Addr { v6: false, bytes }
    }

    #[inline]
    pub fn v6(bytes: [u8; 16]) -> Addr {
        Addr { v6: true, bytes }
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }

    pub fn bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// The address as a number in its family, for prefix matching.
    #[inline]
    fn bits(&self) -> u128 {
        u128::from_be_bytes(self.bytes)
    }

    pub fn to_ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.bytes[0],
                self.bytes[1],
                self.bytes[2],
                self.bytes[3],
            ))
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::v4(a.octets()),
            IpAddr::V6(a) => Addr::v6(a.octets()),
        }
    }
}

impl fmt::Display for Addr {
    /// As std prints the address (IPv6 in RFC 5952 form), at a fraction of the cost.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; text::ROOM];
        let n = text::write(&mut buf, self);
        // The text is ASCII: the check cannot fail, and is cheap next to the rest.
        f.pad(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One network: an address family, a prefix and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    v6: bool,
    prefix: u128,
    mask: u128,
    len: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, len: u8) -> Option<Cidr> {
        let (v6, max) = match addr {
            IpAddr::V4(_) => (false, 32),
            IpAddr::V6(_) => (true, 128),
        };
        if len > max {
            return None;
        }
        // Addresses live in the top bits of the u128 for both families (see `Addr`).
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len as u32)
        };
        let a = Addr::from(addr);
        Some(Cidr {
            v6,
            prefix: a.bits() & mask,
            mask,
            len,
        })
    }

    #[inline]
    pub fn contains(&self, a: &Addr) -> bool {
        a.v6 == self.v6 && a.bits() & self.mask == self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = Addr {
            v6: self.v6,
            bytes: self.prefix.to_be_bytes(),
        };
        write!(f, "{}/{}", a, self.len)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDR/LEN`, or a bare address meaning one host.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("'{s}' has a bad prefix length (0 to {max})"))?,
            None => max,
        };
        Cidr::new(ip, len).ok_or_else(|| format!("'{s}' is not a valid CIDR"))
    }
}

/// A set of networks. Small (a handful of entries), so a linear scan beats anything cleverer.
/// Each family has its own list of (prefix, mask) in its own width: an address is checked
/// against its family's networks only, with no per-network family test, which keeps the
/// scan's branches predictable on a mixed stream (every packet asks two or three times).
#[derive(Clone, Debug, Default)]
pub struct NetSet {
    nets: Vec<Cidr>,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl NetSet {
    pub fn new(nets: Vec<Cidr>) -> NetSet {
        let v4 = nets
            .iter()
            .filter(|n| !n.v6)
            .map(|n| ((n.prefix >> 96) as u32, (n.mask >> 96) as u32))
            .collect();
        let v6 = nets
            .iter()
            .filter(|n| n.v6)
            .map(|n| (n.prefix, n.mask))
            .collect();
        NetSet { nets, v4, v6 }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn nets(&self) -> &[Cidr] {
        &self.nets
    }

    #[inline]
    pub fn contains(&self, a: &Addr) -> bool {
        if a.v6 {
            let bits = a.bits();
            self.v6.iter().any(|&(prefix, mask)| bits & mask == prefix)
        } else {
            let b = &a.bytes;
            let bits = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            self.v4.iter().any(|&(prefix, mask)| bits & mask == prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_ipv4_first_then_numeric() {
        let a: Addr = IpAddr::from_str("9.9.9.9").unwrap().into();
        let b: Addr = IpAddr::from_str("10.0.0.1").unwrap().into();
        let c: Addr = IpAddr::from_str("::1").unwrap().into();
        assert!(a < b && b < c);
        // The order is that of the bytes, for any pair: the first byte that differs decides.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            let (r, s) = (next(), next());
            let mut p = [0u8; 16];
            p[..8].copy_from_slice(&r.to_be_bytes());
            p[8..].copy_from_slice(&s.to_be_bytes());
            let mut q = p;
            // Alike up to a random byte, then anything.
            let at = (r % 16) as usize;
            q[at] = (s >> 8) as u8;
            for (u, v) in [(p, q), (q, p)] {
                for (x, y) in [
                    (Addr::v6(u), Addr::v6(v)),
                    (
                        Addr::v4([u[0], u[1], u[2], u[3]]),
                        Addr::v4([v[0], v[1], v[2], v[3]]),
                    ),
                ] {
                    assert_eq!(x.cmp(&y), x.bytes().cmp(y.bytes()), "{x} against {y}");
                    assert_eq!(x == y, x.cmp(&y).is_eq());
                }
                assert!(Addr::v4([u[0], u[1], u[2], u[3]]) < Addr::v6(v));
            }
        }
    }

    #[test]
    fn netset_checks_each_family_against_its_own_networks() {
        let set = NetSet::new(
            [
                "198.51.100.0/24",
                "10.0.0.0/8",
                "2001:db8::/32",
                "0.0.0.0/0",
            ]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect(),
        );
        let a = |s: &str| -> Addr { IpAddr::from_str(s).unwrap().into() };
        assert!(set.contains(&a("1.2.3.4")), "0.0.0.0/0 takes every IPv4");
        assert!(set.contains(&a("2001:db8:ffff::1")));
        assert!(!set.contains(&a("2001:db9::1")));
        assert!(
            !set.contains(&a("::ffff:1.2.3.4")),
            "no IPv6 is in an IPv4 network"
        );
        let v4 = NetSet::new(vec!["198.51.100.128/25".parse().unwrap()]);
        assert!(v4.contains(&a("198.51.100.200")));
        assert!(!v4.contains(&a("198.51.100.127")));
        assert!(
            !v4.contains(&a("c633:64c8::")),
            "same leading bits, other family"
        );
        let none = NetSet::new(vec![]);
        assert!(!none.contains(&a("198.51.100.1")) && !none.contains(&a("::1")));
        let host: NetSet = NetSet::new(vec!["::1".parse().unwrap()]);
        assert!(host.contains(&a("::1")) && !host.contains(&a("::2")));
    }

    #[test]
    fn cidr_matches_its_family_only() {
        let n: Cidr = "198.51.100.0/24".parse().unwrap();
        assert!(n.contains(&IpAddr::from_str("198.51.100.7").unwrap().into()));
        assert!(!n.contains(&IpAddr::from_str("198.51.101.7").unwrap().into()));
        assert!(!n.contains(&IpAddr::from_str("c633:6400::").unwrap().into()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(!all.contains(&IpAddr::from_str("::").unwrap().into()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(&IpAddr::from_str("2001:db8:1::5").unwrap().into()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn ipv6_prints_in_rfc5952_form() {
        let a: Addr = IpAddr::from_str("2001:0DB8:0:0:0:0:0:1").unwrap().into();
        assert_eq!(a.to_string(), "2001:db8::1");
    }

    #[test]
    fn prints_as_std_prints_with_widths_and_alignment() {
        for text in [
            "0.0.0.0",
            "198.51.100.7",
            "::",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip = IpAddr::from_str(text).unwrap();
            let a = Addr::from(ip);
            assert_eq!(format!("{a}"), format!("{ip}"));
            assert_eq!(
                format!("{a:>20}|{a:<20}|{a:^20}"),
                format!("{ip:>20}|{ip:<20}|{ip:^20}")
            );
            assert_eq!(format!("{a:?}"), format!("{ip}"));
        }
    }
}
