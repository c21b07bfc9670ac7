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

    /// Sorts rows into file order.
    ///
    /// An in-place most-significant-digit radix sort over the bytes of the order (day, protocol
    /// rank, port, destination, source): a flush of many rows costs a few passes of byte counts
    /// and swaps instead of n·log n comparisons, and needs no buffer beside the rows, so the
    /// flush of a full table does not raise the peak memory.
    pub fn sort(&self, rows: &mut [Row]) {
        let Some(first) = rows.first() else { return };
        let base = first.day();
        let span_ok = rows.iter().all(|r| (0..256).contains(&(r.day() - base)));
        if !span_ok {
            // Rows span more days than one digit holds (never from a live table): sort by day,
            // then each day on its own.
            rows.sort_unstable_by_key(Row::day);
            for day in rows.chunk_by_mut(|a, b| a.day() == b.day()) {
                self.radix(day, day[0].day(), 1);
            }
            return;
        }
        self.radix(rows, base, 0);
    }

    /// Digit `level` of a row's place in the order, `None` past its last one. Level 0 is the
    /// day (from `base`), then the protocol rank, whether a port exists, its two bytes, then
    /// each address as its family and its bytes (4 for IPv4, 16 for IPv6). Every row of one
    /// bucket shares the digits before `level`, so the family that sets the length is shared too.
    #[inline]
    fn digit(&self, r: &Row, base: i64, level: usize) -> Option<u8> {
        let port = r.key.port.unwrap_or(0);
        Some(match level {
            0 => (r.day() - base) as u8,
            1 => self.rank.of(r.key.proto),
            2 => r.key.port.is_some() as u8,
            3 => (port >> 8) as u8,
            4 => port as u8,
            5 => r.key.dst.is_v6() as u8,
            _ => {
                let dst = addr_len(&r.key.dst);
                let l = level - 6;
                if l < dst {
                    r.key.dst.bytes()[l]
                } else if l == dst {
                    r.key.src.is_v6() as u8
                } else {
                    *r.key.src.bytes()[..addr_len(&r.key.src)].get(l - dst - 1)?
                }
            }
        })
    }

    fn radix(&self, rows: &mut [Row], base: i64, mut level: usize) {
        loop {
            if rows.len() <= RADIX_SMALL {
                if level == 0 {
                    rows.sort_unstable_by(|a, b| self.rows(a, b));
                } else if level < 6 {
                    // The day is shared from level 1 on.
                    rows.sort_unstable_by(|a, b| self.keys(&a.key, &b.key));
                } else {
                    // And protocol and port from level 6 on: the addresses as numbers.
                    rows.sort_unstable_by_key(|r| {
                        let (d, s) = (&r.key.dst, &r.key.src);
                        (
                            d.is_v6(),
                            u128::from_be_bytes(*d.bytes()),
                            s.is_v6(),
                            u128::from_be_bytes(*s.bytes()),
                        )
                    });
                }
                return;
            }
            let mut counts = [0u32; 256];
            for r in rows.iter() {
                match self.digit(r, base, level) {
                    Some(d) => counts[d as usize] += 1,
                    // Past the last digit: every row here has the same key.
                    None => return,
                }
            }
            if counts.iter().any(|&c| c as usize == rows.len()) {
                // One bucket holds all: nothing to move at this level.
                level += 1;
                continue;
            }
            // Where each bucket starts (`next`, moving up as it fills) and ends.
            let mut ends = [0u32; 256];
            let mut next = [0u32; 256];
            let mut at = 0u32;
            for (d, c) in counts.iter().enumerate() {
                next[d] = at;
                at += c;
                ends[d] = at;
            }
            // American flag permutation: each row is swapped straight into its bucket.
            for d in 0..256 {
                while next[d] < ends[d] {
                    let i = next[d] as usize;
                    let to = self.digit(&rows[i], base, level).unwrap_or(0) as usize;
                    if to == d {
                        next[d] += 1;
                    } else {
                        rows.swap(i, next[to] as usize);
                        next[to] += 1;
                    }
                }
            }
            let mut start = 0usize;
            for &end in ends.iter() {
                let end = end as usize;
                if end - start > 1 {
                    self.radix(&mut rows[start..end], base, level + 1);
                }
                start = end;
            }
            return;
        }
    }
}

/// Buckets at most this long are sorted by comparison: cheaper than another 256-way count.
const RADIX_SMALL: usize = 32;

/// Bytes of an address that take part in the order (IPv4 keeps its last 12 bytes zero).
#[inline]
fn addr_len(a: &Addr) -> usize {
    if a.is_v6() {
        16
    } else {
        4
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

    fn sample_rows() -> Vec<Row> {
        let addrs = [
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([198, 51, 100, 9]),
            Addr::v4([198, 51, 101, 9]),
            Addr::v4([255, 255, 255, 255]),
            Addr::from("::".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("::ffff:10.0.0.1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("2001:db8::1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("2001:db8::1:0".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("ffff::1".parse::<std::net::IpAddr>().unwrap()),
        ];
        let mut rows = Vec::new();
        for (i, proto) in [6u8, 17, 1, 58, 47, 132, 0, 255].into_iter().enumerate() {
            for port in [None, Some(0), Some(22), Some(255), Some(256), Some(65535)] {
                for (j, dst) in addrs.iter().enumerate() {
                    for k in 0..3 {
                        let src = addrs[(i + j + k) % addrs.len()];
                        for first in [0i64, 86_399, 86_400, 86_400 * 300] {
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
        }
        rows
    }

    /// Shuffles with a fixed linear congruential sequence, so a failure repeats.
    fn shuffle(rows: &mut [Row], mut seed: u64) {
        for i in (1..rows.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            rows.swap(i, (seed >> 33) as usize % (i + 1));
        }
    }

    #[test]
    fn radix_sort_gives_the_comparison_order() {
        let order = RowOrder::new();
        let all = sample_rows();
        // Whole set (days 300 apart: the by-day path), one day (the radix alone), small
        // slices (the comparison path), and repeated keys.
        let one_day: Vec<Row> = all.iter().filter(|r| r.day() <= 1).copied().collect();
        let mut twice = one_day.clone();
        twice.extend_from_slice(&one_day[..500]);
        for (n, set) in [all.clone(), one_day, twice, all[..9].to_vec()]
            .iter()
            .enumerate()
        {
            let mut want = set.clone();
            want.sort_by(|a, b| order.rows(a, b));
            let mut got = set.clone();
            shuffle(&mut got, n as u64 + 1);
            order.sort(&mut got);
            let keys = |v: &[Row]| v.iter().map(|r| (r.day(), r.key)).collect::<Vec<_>>();
            assert_eq!(keys(&got), keys(&want), "set {n}");
        }
    }
}
