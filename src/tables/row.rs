//! One row of a daily file, and the order rows are written in.

use crate::addr::Addr;
use crate::proto::SortRank;
use std::cmp::Ordering;

/// What one row counts: attempts of one protocol to one port of one of our addresses, from one
/// source, on the day of the row's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub proto: u8,
    /// `None` for protocols without ports (written `-`).
    pub port: Option<u16>,
    pub dst: Addr,
    pub src: Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    /// Whole Unix seconds of the day's first and last attempt.
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

impl Row {
    /// The UTC day (days since 1970-01-01) the row belongs to.
    #[inline]
    pub fn day(&self) -> i64 {
        day_of(self.first)
    }

    /// Folds another row of the same key and day into this one.
    #[inline]
    pub fn merge(&mut self, other: &Row) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.count = self.count.saturating_add(other.count);
    }
}

#[inline]
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(86_400)
}

/// The file order: protocol name as text, port with `-` first, destination, then source
/// (IPv4 before IPv6). Rows of different days are kept apart by day first.
pub struct RowOrder {
    rank: SortRank,
}

impl RowOrder {
    pub fn new() -> RowOrder {
        RowOrder {
            rank: SortRank::new(),
        }
    }

    #[inline]
    pub fn keys(&self, a: &Key, b: &Key) -> Ordering {
        self.rank
            .of(a.proto)
            .cmp(&self.rank.of(b.proto))
            .then(a.port.cmp(&b.port))
            .then(a.dst.cmp(&b.dst))
            .then(a.src.cmp(&b.src))
    }

    #[inline]
    pub fn rows(&self, a: &Row, b: &Row) -> Ordering {
        a.day()
            .cmp(&b.day())
            .then_with(|| self.keys(&a.key, &b.key))
    }

    /// The order of `rows` as plain integers, so a sort of a flush's rows compares words
    /// rather than walking the rank table and two 17-byte addresses at every step.
    #[inline]
    pub fn sort_key(&self, r: &Row) -> (u64, u128, bool, u128) {
        let port = r.key.port.map_or(0, |p| p as u64 + 1);
        // Days from 1970 up to 9999 fit in 22 bits; rows never carry earlier timestamps.
        let head = (r.day().max(0) as u64) << 28
            | (self.rank.of(r.key.proto) as u64) << 20
            | port << 1
            | r.key.dst.is_v6() as u64;
        (
            head,
            u128::from_be_bytes(*r.key.dst.bytes()),
            r.key.src.is_v6(),
            u128::from_be_bytes(*r.key.src.bytes()),
        )
    }

    /// Sorts rows into file order.
    pub fn sort(&self, rows: &mut [Row]) {
        rows.sort_unstable_by_key(|r| self.sort_key(r));
    }
}

impl Default for RowOrder {
    fn default() -> Self {
        RowOrder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_key_orders_as_rows() {
        let addrs = [
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([198, 51, 100, 9]),
            Addr::v4([255, 255, 255, 255]),
            Addr::from("::".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("::ffff:10.0.0.1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("2001:db8::1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("ffff::1".parse::<std::net::IpAddr>().unwrap()),
        ];
        let mut rows = Vec::new();
        for (i, proto) in [6u8, 17, 1, 58, 47, 132, 0, 255].into_iter().enumerate() {
            for port in [None, Some(0), Some(22), Some(65535)] {
                for (j, dst) in addrs.iter().enumerate() {
                    let src = addrs[(i + j) % addrs.len()];
                    for first in [0i64, 86_399, 86_400, 253_402_300_799] {
                        let key = Key {
                            proto,
                            port,
                            dst: *dst,
                            src,
                        };
                        rows.push(Row {
                            key,
                            first,
                            last: first,
                            count: 1,
                        });
                    }
                }
            }
        }
        let order = RowOrder::new();
        for a in rows.iter().step_by(7) {
            for b in rows.iter().step_by(5) {
                assert_eq!(
                    order.sort_key(a).cmp(&order.sort_key(b)),
                    order.rows(a, b),
                    "{a:?} / {b:?}"
                );
            }
        }
    }
}
