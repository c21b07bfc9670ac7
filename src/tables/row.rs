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

    /// Sorts rows into file order by comparing them, in place. `sort_with` is the fast way.
    pub fn sort(&self, rows: &mut [Row]) {
        rows.sort_unstable_by(|a, b| self.rows(a, b));
    }

    /// Sorts rows into file order as `sort` does, with `scratch` as room beside them: two words
    /// a row, overwritten (whatever they held) and given back zeroed; returns how many words
    /// that was, from the start (0 when it did without). The attempt table lends its index,
    /// cleared at a flush, so the sort adds nothing to the peak memory.
    ///
    /// Each row's place in the order is cut to 99 bits (day, protocol rank, port, and the
    /// first 32 bits of each address with its family) and kept beside the row's number. Those
    /// pairs sort as plain 128-bit integers, cheap to compare and to move, and the 64-byte rows
    /// then move once each, where a radix over the rows themselves moves them at every byte of
    /// the order. Rows whose cut places tie (IPv6 addresses that share their first 32 bits) are
    /// ordered in full among themselves. Without the room, or for rows the cut does not fit,
    /// this is `sort`.
    pub fn sort_with(&self, rows: &mut [Row], scratch: &mut [u64]) -> usize {
        let n = rows.len();
        let (items, _) = scratch.as_chunks_mut::<2>();
        let (base, last) = rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.day()), hi.max(r.day()))
        });
        // The day takes 8 bits of the cut: rows of more days than that (never from a live
        // table) are compared in full.
        if !(2..=CUT_ROWS).contains(&n) || items.len() < n || last - base >= 256 {
            self.sort(rows);
            return 0;
        }
        let items = &mut items[..n];
        for (i, (item, r)) in items.iter_mut().zip(rows.iter()).enumerate() {
            let cut = self.cut(r, base);
            *item = [
                (cut >> CUT_LOW) as u64,
                (cut as u64 & CUT_LOW_MASK) << ROW_BITS | i as u64,
            ];
        }
        items.sort_unstable_by_key(|item| (item[0] as u128) << 64 | item[1] as u128);
        let place = |item: &[u64; 2]| (item[0], item[1] >> ROW_BITS);
        let row_of = |item: &[u64; 2]| (item[1] & ROW_MASK) as usize;
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && place(&items[end]) == place(&items[start]) {
                end += 1;
            }
            if end - start > 1 {
                items[start..end]
                    .sort_unstable_by(|a, b| self.rows(&rows[row_of(a)], &rows[row_of(b)]));
            }
            start = end;
        }
        // Each place `j` takes the row `items[j]` names, cycle by cycle; a place done names
        // itself.
        for k in 0..n {
            if row_of(&items[k]) == k {
                continue;
            }
            let held = rows[k];
            let mut j = k;
            loop {
                let from = row_of(&items[j]);
                items[j][1] = j as u64;
                if from == k {
                    rows[j] = held;
                    break;
                }
                rows[j] = rows[from];
                j = from;
            }
        }
        items.fill([0, 0]);
        2 * n
    }

    /// The first 99 bits of a row's place in the order (see `sort_with`): what follows an
    /// IPv6 address's first 32 bits is left zero, for those rows are told apart in full.
    #[inline]
    fn cut(&self, r: &Row, base: i64) -> u128 {
        let top = |a: &Addr| {
            let b = a.bytes();
            (a.is_v6() as u128) << 32 | u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u128
        };
        let port = r.key.port.map_or(0, |p| p as u128 + 1);
        let head = ((r.day() - base) as u128) << 91
            | (self.rank.of(r.key.proto) as u128) << 83
            | port << 66
            | top(&r.key.dst) << 33;
        if r.key.dst.is_v6() {
            head
        } else {
            head | top(&r.key.src)
        }
    }
}

/// How `sort_with` packs a row's cut place and number into two words: the place's top 64
/// bits, then its low `CUT_LOW` bits above the row's number in `ROW_BITS`.
const CUT_LOW: u32 = 35;
const CUT_LOW_MASK: u64 = (1 << CUT_LOW) - 1;
const ROW_BITS: u32 = 64 - CUT_LOW;
const ROW_MASK: u64 = (1 << ROW_BITS) - 1;
/// Most rows `sort_with` numbers in `ROW_BITS`.
const CUT_ROWS: usize = 1 << ROW_BITS;

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
    fn the_flush_sort_gives_the_comparison_order() {
        let order = RowOrder::new();
        let all = sample_rows();
        // Whole set (days 300 apart: compared in full), two days (the cut places, with IPv6
        // ties), a few rows, and repeated keys.
        let one_day: Vec<Row> = all.iter().filter(|r| r.day() <= 1).copied().collect();
        let mut twice = one_day.clone();
        twice.extend_from_slice(&one_day[..500]);
        for (n, set) in [all.clone(), one_day, twice, all[..9].to_vec()]
            .iter()
            .enumerate()
        {
            let mut want = set.clone();
            want.sort_by(|a, b| order.rows(a, b));
            let keys = |v: &[Row]| v.iter().map(|r| (r.day(), r.key)).collect::<Vec<_>>();
            let mut got = set.clone();
            shuffle(&mut got, n as u64 + 1);
            order.sort(&mut got);
            assert_eq!(keys(&got), keys(&want), "set {n}");
            // With room (the cut path, or `sort` for the set of days 300 apart), and without.
            for room in [2 * set.len() + 3, set.len()] {
                let mut got = set.clone();
                shuffle(&mut got, n as u64 + 7);
                // The words the sort says it used may hold anything before; the rest is zero.
                let mut scratch = vec![0u64; room];
                let used = (2 * set.len()).min(room);
                scratch[..used].fill(0x5a5a_5a5a_5a5a_5a5a);
                let zeroed = order.sort_with(&mut got, &mut scratch);
                assert_eq!(keys(&got), keys(&want), "set {n}, room {room}");
                assert!(
                    zeroed == 0 || zeroed == used,
                    "set {n}, room {room}: {zeroed}"
                );
                scratch[..used - zeroed].fill(0);
                assert!(scratch.iter().all(|&w| w == 0), "scratch given back dirty");
            }
        }
    }
}
