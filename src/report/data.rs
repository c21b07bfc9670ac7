//! The rows a request works on: each day's file merged with the live rows of that day, and a
//! period's days merged per (proto, dst_port, dst_ip, src_ip). Merging a million rows costs a
//! good part of a second, so the results are cached, keyed by what they were made from (the
//! files' stamps and the live generation): a page view, a refresh or the next page of the
//! table reuses them, and a flush or a new live figure makes them stale by itself.

use super::days::{self, DayCache, Stamp};
use super::live::LiveSummary;
use super::query::Filter;
use crate::addr::Addr;
use crate::proto::SortRank;
use crate::tables::{Key, Row, RowOrder};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Rows of day files kept in memory (64 bytes each): 1 Mi rows ≈ 64 MiB.
pub const DAY_CACHE_ROWS: usize = 1 << 20;
/// Merged periods kept: one (a period of a million rows is 64 MiB).
const VIEWS_KEPT: usize = 1;
/// Sources listed in a day's summary.
pub const TOP: usize = 10;

/// One request's picture of the data: the day files as listed now and the live rows.
pub struct Snapshot {
    pub files: BTreeMap<i64, Stamp>,
    pub live: Arc<LiveSummary>,
    pub live_days: LiveDays,
}

impl Snapshot {
    /// Every day with a file or live rows, oldest first.
    pub fn days(&self) -> Vec<i64> {
        let mut d: Vec<i64> = self
            .files
            .keys()
            .chain(self.live_days.keys())
            .copied()
            .collect();
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The live generation if the day has live rows, else 0.
    fn live_gen(&self, day: i64) -> u64 {
        if self.live_days.contains_key(&day) {
            self.live.generation
        } else {
            0
        }
    }
}

/// Live rows by day, sorted in file order, one per key.
pub type LiveDays = Arc<BTreeMap<i64, Arc<Vec<Row>>>>;

/// Live rows by day as made from a live generation and the file lengths then seen.
type LiveCache = (u64, Vec<(i64, Option<u64>)>, LiveDays);

/// What a day's merged rows were made from.
type DayKey = (Option<Stamp>, u64);

/// What a period's answers were made from: each day's file stamp and live generation.
pub type PeriodKey = Vec<(i64, DayKey)>;

/// A port's figures on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDay {
    pub proto: u8,
    pub port: Option<u16>,
    /// Distinct sources ("intruders", as tsusen's chart called them).
    pub sources: u32,
    pub attempts: u64,
    pub rows: u64,
}

/// A day's figures, for the trendlines and the summary.
#[derive(Clone, Debug, Default)]
pub struct DayStats {
    /// In file order (protocol name, port).
    pub ports: Vec<PortDay>,
    pub rows: u64,
    pub attempts: u64,
    pub sources: u64,
    /// The sources with the most attempts, most first.
    pub top_sources: Vec<(Addr, u64)>,
}

pub struct Data {
    dir: PathBuf,
    order: RowOrder,
    rank: SortRank,
    days: DayCache,
    views: Vec<(PeriodKey, Arc<Vec<Row>>)>,
    stats: HashMap<i64, (DayKey, Arc<DayStats>)>,
    /// The live rows by day, and the live generation they were made from.
    live: Option<LiveCache>,
}

impl Data {
    pub fn new(dir: PathBuf) -> Data {
        Data {
            dir,
            order: RowOrder::new(),
            rank: SortRank::new(),
            days: DayCache::new(DAY_CACHE_ROWS),
            views: Vec::new(),
            stats: HashMap::new(),
            live: None,
        }
    }

    /// Rows of day files held in memory.
    pub fn cached_rows(&self) -> usize {
        self.days.held() + self.views.iter().map(|v| v.1.len()).sum::<usize>()
    }

    pub fn snapshot(&mut self, live: Arc<LiveSummary>) -> io::Result<Snapshot> {
        let files = days::list(&self.dir)?;
        // The live rows kept depend on the files too (see `LiveSummary::file_lens`).
        let lens_now: Vec<(i64, Option<u64>)> = live
            .file_lens
            .iter()
            .flatten()
            .map(|(d, _)| (*d, files.get(d).map(|s| s.len)))
            .collect();
        let live_days = match &self.live {
            Some((g, l, d)) if *g == live.generation && *l == lens_now => d.clone(),
            _ => {
                let mut by_day: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
                for r in &live.rows {
                    by_day.entry(r.day()).or_default().push(*r);
                }
                // Rows a flush has written since they were published are in the file now.
                if let Some(lens) = &live.file_lens {
                    by_day.retain(|day, _| {
                        let then = lens.iter().find(|(d, _)| d == day).map(|(_, l)| *l);
                        let now = files.get(day).map(|s| s.len);
                        then.is_none_or(|then| then == now)
                    });
                }
                let d: BTreeMap<i64, Arc<Vec<Row>>> = by_day
                    .into_iter()
                    .map(|(day, mut rows)| {
                        days::sort_fold(&mut rows, &self.order);
                        (day, Arc::new(rows))
                    })
                    .collect();
                let d = Arc::new(d);
                self.live = Some((live.generation, lens_now, d.clone()));
                d
            }
        };
        Ok(Snapshot {
            files,
            live,
            live_days,
        })
    }

    fn day_key(snap: &Snapshot, day: i64) -> DayKey {
        (snap.files.get(&day).copied(), snap.live_gen(day))
    }

    /// A day's rows: its file merged with its live rows.
    pub fn day_rows(&mut self, snap: &Snapshot, day: i64) -> io::Result<Arc<Vec<Row>>> {
        let file = match snap.files.get(&day) {
            Some(stamp) => Some(self.days.get(&self.dir, day, *stamp, &self.order)?),
            None => None,
        };
        let live = snap.live_days.get(&day).cloned();
        Ok(match (file, live) {
            (Some(f), None) => f,
            (None, Some(l)) => l,
            (None, None) => Arc::new(Vec::new()),
            (Some(f), Some(l)) => Arc::new(merge(&[&f, &l], &self.rank)),
        })
    }

    /// What answers about `period` depend on.
    pub fn period_key(snap: &Snapshot, period: &[i64]) -> PeriodKey {
        period
            .iter()
            .map(|&d| (d, Self::day_key(snap, d)))
            .collect()
    }

    /// The period's rows merged per key (earliest first_seen, latest last_seen, summed count).
    pub fn view(&mut self, snap: &Snapshot, period: &[i64]) -> io::Result<Arc<Vec<Row>>> {
        let key = Self::period_key(snap, period);
        if let Some(i) = self.views.iter().position(|v| v.0 == key) {
            let v = self.views.remove(i);
            let rows = v.1.clone();
            self.views.push(v);
            return Ok(rows);
        }
        // Let the view this one replaces go first, so two never sit in memory together
        // (requests still using it keep their own reference).
        if self.views.len() >= VIEWS_KEPT {
            self.views.remove(0);
        }
        let mut parts = Vec::with_capacity(period.len());
        for &d in period {
            parts.push(self.day_rows(snap, d)?);
        }
        let rows = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            let slices: Vec<&[Row]> = parts.iter().map(|p| p.as_slice()).collect();
            Arc::new(merge(&slices, &self.rank))
        };
        self.views.push((key, rows.clone()));
        Ok(rows)
    }

    /// A day's figures; cached unless filtered.
    pub fn day_stats(
        &mut self,
        snap: &Snapshot,
        day: i64,
        filter: &Filter,
    ) -> io::Result<Arc<DayStats>> {
        let key = Self::day_key(snap, day);
        if filter.is_empty() {
            if let Some((k, s)) = self.stats.get(&day) {
                if *k == key {
                    return Ok(s.clone());
                }
            }
        }
        let rows = self.day_rows(snap, day)?;
        let stats = Arc::new(day_stats(rows.iter().filter(|r| filter.matches(r))));
        if filter.is_empty() {
            // Days leave the trendline period one by one: forget the oldest beyond a year.
            if self.stats.len() > 400 {
                if let Some(&oldest) = self.stats.keys().min() {
                    self.stats.remove(&oldest);
                }
            }
            self.stats.insert(day, (key, stats.clone()));
        }
        Ok(stats)
    }
}

/// The position in file order, as one comparable value.
type SortKey = (u8, Option<u16>, Addr, Addr);

#[inline]
fn sort_key(rank: &SortRank, k: &Key) -> SortKey {
    (rank.of(k.proto), k.port, k.dst, k.src)
}

/// K-way merge of sources in file order (one row per key each) into one row per key.
pub fn merge(sources: &[&[Row]], rank: &SortRank) -> Vec<Row> {
    let total: usize = sources.iter().map(|s| s.len()).sum();
    let mut out: Vec<Row> = Vec::with_capacity(total);
    let mut pos = vec![0usize; sources.len()];
    let mut heap: BinaryHeap<Reverse<(SortKey, usize)>> = BinaryHeap::new();
    for (i, s) in sources.iter().enumerate() {
        if let Some(r) = s.first() {
            heap.push(Reverse((sort_key(rank, &r.key), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let r = sources[i][pos[i]];
        pos[i] += 1;
        if let Some(next) = sources[i].get(pos[i]) {
            heap.push(Reverse((sort_key(rank, &next.key), i)));
        }
        match out.last_mut() {
            Some(last) if last.key == r.key => last.merge(&r),
            _ => out.push(r),
        }
    }
    out
}

/// Figures of one day's rows (in file order).
pub fn day_stats<'a>(rows: impl Iterator<Item = &'a Row>) -> DayStats {
    let mut s = DayStats::default();
    let mut sources: Vec<(Addr, u64)> = Vec::new();
    let mut group: Vec<Addr> = Vec::new();
    let mut current: Option<PortDay> = None;
    let close = |cur: &mut Option<PortDay>, group: &mut Vec<Addr>, out: &mut Vec<PortDay>| {
        if let Some(mut p) = cur.take() {
            group.sort_unstable();
            group.dedup();
            p.sources = group.len() as u32;
            group.clear();
            out.push(p);
        }
    };
    for r in rows {
        s.rows += 1;
        s.attempts = s.attempts.saturating_add(r.count);
        sources.push((r.key.src, r.count));
        let same = current
            .as_ref()
            .is_some_and(|c| c.proto == r.key.proto && c.port == r.key.port);
        if !same {
            close(&mut current, &mut group, &mut s.ports);
            current = Some(PortDay {
                proto: r.key.proto,
                port: r.key.port,
                sources: 0,
                attempts: 0,
                rows: 0,
            });
        }
        let c = current.as_mut().expect("set above");
        c.attempts = c.attempts.saturating_add(r.count);
        c.rows += 1;
        group.push(r.key.src);
    }
    close(&mut current, &mut group, &mut s.ports);
    sources.sort_unstable_by_key(|e| e.0);
    sources.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.saturating_add(next.1);
            true
        } else {
            false
        }
    });
    s.sources = sources.len() as u64;
    let by_count = |a: &(Addr, u64), b: &(Addr, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if sources.len() > TOP {
        sources.select_nth_unstable_by(TOP, by_count);
        sources.truncate(TOP);
    }
    sources.sort_unstable_by(by_count);
    s.top_sources = sources;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(port: u16, src: u8, first: i64, count: u64) -> Row {
        Row {
            key: Key {
                proto: 6,
                port: Some(port),
                dst: Addr::v4([198, 51, 100, 1]),
                src: Addr::v4([203, 0, 113, src]),
            },
            first,
            last: first + 5,
            count,
        }
    }

    #[test]
    fn merges_per_key_over_days() {
        let rank = SortRank::new();
        let a = [row(22, 1, 100, 2), row(22, 2, 100, 1), row(80, 1, 100, 1)];
        let b = [row(22, 2, 90_000, 4), row(443, 9, 90_000, 1)];
        let m = merge(&[&a, &b], &rank);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].key.src, Addr::v4([203, 0, 113, 2]));
        assert_eq!((m[1].first, m[1].last, m[1].count), (100, 90_005, 5));
        let s = day_stats(m.iter());
        assert_eq!((s.rows, s.attempts, s.sources), (4, 9, 3));
        assert_eq!(s.ports[0].sources, 2);
        assert_eq!(s.top_sources[0], (Addr::v4([203, 0, 113, 2]), 5));
    }
}
