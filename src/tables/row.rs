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
}

impl Default for RowOrder {
    fn default() -> Self {
        RowOrder::new()
    }
}
