//! The rows a request works on: each day's file merged with the live rows of that day, and a
//! period's days merged per (proto, dst_port, dst_ip, src_ip). Merging a million rows costs a
//! good part of a second, so the results are cached, keyed by what they were made from (the
//! files' stamps and the live generation): a page view, a refresh or the next page of the
//! table reuses them, and a flush or a new live figure makes them stale by itself.
//!
//! What is kept between requests is bounded by REPORT_CACHE_ROWS (`budget`): the days' rows
//! and the merged period together hold at most that many rows, and the days' figures at most
//! `STATS_BYTES_PER_ROW` bytes per row of it. A period or a day larger than what is left is
//! built for its request and dropped afterwards. One with more rows than REPORT_REQUEST_ROWS
//! is not read into memory at all: `bigday` streams it.

use super::bigday;
use super::days::{self, DayCache, Stamp};
use super::live::LiveSummary;
use super::query::Filter;
use super::sketch::Distinct;
use crate::addr::Addr;
use crate::tables::{merge as merge_rows, Row, RowOrder};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes of day figures kept per row of the budget: an eighth of a row's 64 (a day scanned on
/// every port has figures for 65 536 ports, 2 MiB).
const STATS_BYTES_PER_ROW: usize = 8;
/// Days whose figures are kept at most, however small (a year and a bit of trendlines).
const STATS_DAYS_KEPT: usize = 400;
/// A day too large to read streams through its figures, which hold a port's sources and the
/// day's sources exactly up to this share of REPORT_REQUEST_ROWS each: at 17 and 32 bytes an
/// address, well within the memory of the rows a request may read (76 bytes each).
const EXACT_SHARE: usize = 4;
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
    /// Distinct sources are estimates and the top sources' attempts lower bounds: the day
    /// held more sources than a request may count exactly (see `Exact`).
    pub estimated: bool,
}

impl DayStats {
    /// Bytes held, for the cache's bound.
    fn bytes(&self) -> usize {
        std::mem::size_of::<DayStats>()
            + self.ports.capacity() * std::mem::size_of::<PortDay>()
            + self.top_sources.capacity() * std::mem::size_of::<(Addr, u64)>()
    }
}

/// A day's figures as kept: what they were made from, their bytes and their last use.
struct KeptStats {
    key: DayKey,
    stats: Arc<DayStats>,
    bytes: usize,
    used: u64,
}

pub struct Data {
    dir: PathBuf,
    order: RowOrder,
    /// Rows kept between requests, by the day cache and the kept period together.
    budget: usize,
    /// Rows one request may read, from files and live rows: its memory while it runs.
    request_rows: usize,
    /// Its budget is always `budget` less the kept period's rows.
    days: DayCache,
    /// The one merged period kept (its rows are not also the day cache's).
    view: Option<(PeriodKey, Arc<Vec<Row>>)>,
    stats: HashMap<i64, KeptStats>,
    stats_bytes: usize,
    tick: u64,
    /// The live rows by day, and the live generation they were made from.
    live: Option<LiveCache>,
}

/// Live rows by day, sorted in file order and folded to one per key, the days `keep` wants.
/// Sorted where they lie: the later days are split off (around midnight the table holds two),
/// the first keeps the vector, so they take no more memory than the sensor's copy.
fn live_days(
    mut rows: Vec<Row>,
    order: &RowOrder,
    keep: impl Fn(i64) -> bool,
) -> BTreeMap<i64, Arc<Vec<Row>>> {
    order.sort(&mut rows);
    rows.dedup_by(|next, kept| {
        let same = next.key == kept.key && next.day() == kept.day();
        if same {
            kept.merge(next);
        }
        same
    });
    let mut by_day = BTreeMap::new();
    while let Some(last) = rows.last() {
        let day = last.day();
        let start = rows.partition_point(|r| r.day() < day);
        let mut one = if start == 0 {
            std::mem::take(&mut rows)
        } else {
            rows.split_off(start)
        };
        if keep(day) {
            one.shrink_to_fit();
            by_day.insert(day, Arc::new(one));
        }
    }
    by_day
}

impl Data {
    /// A cache over `dir` that keeps at most `budget` rows between requests (REPORT_CACHE_ROWS)
    /// and lets one request read at most `request_rows` (REPORT_REQUEST_ROWS).
    pub fn new(dir: PathBuf, budget: usize, request_rows: usize) -> Data {
        Data {
            dir,
            order: RowOrder::new(),
            budget,
            request_rows,
            days: DayCache::new(budget),
            view: None,
            stats: HashMap::new(),
            stats_bytes: 0,
            tick: 0,
            live: None,
        }
    }

    /// Rows of day files and merged periods held in memory (at most the budget).
    pub fn cached_rows(&self) -> usize {
        self.days.held() + self.view.as_ref().map_or(0, |v| v.1.len())
    }

    /// Bytes of day figures held in memory.
    pub fn cached_stats_bytes(&self) -> usize {
        self.stats_bytes
    }

    /// The files as they are now and the live rows of summary `live`. `rows` gives the rows
    /// published with it (`LiveHandle::take_rows`); it is asked only for a generation not
    /// seen yet, and what it gives is sorted where it lies and kept until the next one.
    pub fn snapshot(
        &mut self,
        live: Arc<LiveSummary>,
        rows: impl FnOnce(u64) -> Option<Vec<Row>>,
    ) -> io::Result<Snapshot> {
        let files = days::list(&self.dir)?;
        // The live rows kept depend on the files too (see `LiveSummary::file_lens`).
        let lens_now: Vec<(i64, Option<u64>)> = live
            .file_lens
            .iter()
            .flatten()
            .map(|(d, _)| (*d, files.get(d).map(|s| s.len)))
            .collect();
        // Rows a flush has written since they were published are in the file now.
        let unchanged = |day: i64| {
            let then = live
                .file_lens
                .as_ref()
                .and_then(|lens| lens.iter().find(|(d, _)| *d == day).map(|(_, l)| *l));
            then.is_none_or(|then| then == files.get(&day).map(|s| s.len))
        };
        let live_days = match self.live.take() {
            Some((g, l, d)) if g == live.generation => {
                let d = if l == lens_now {
                    d
                } else {
                    Arc::new(
                        d.iter()
                            .filter(|(day, _)| unchanged(**day))
                            .map(|(day, r)| (*day, r.clone()))
                            .collect(),
                    )
                };
                self.live = Some((g, lens_now, d.clone()));
                d
            }
            // Counters alone (the sensor did not bring its rows in time): the rows last seen
            // stand, rather than none.
            Some(kept) if live.counters_only => {
                let d = kept.2.clone();
                self.live = Some(kept);
                d
            }
            kept => match rows(live.generation) {
                Some(rows) => {
                    // The rows last seen go first: the new ones are up to a table's size.
                    drop(kept);
                    let d = Arc::new(live_days(rows, &self.order, unchanged));
                    self.live = Some((live.generation, lens_now, d.clone()));
                    d
                }
                // Taken already, or replaced by a newer summary since this one was read:
                // the rows last seen stand until the next request.
                None => {
                    let d = kept.as_ref().map(|k| k.2.clone()).unwrap_or_default();
                    self.live = kept;
                    d
                }
            },
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

    /// A day's rows: its file merged with its live rows. More than `limit` rows in the two
    /// together is refused (`ErrorKind::FileTooLarge`) before more than `limit` are read.
    pub fn day_rows(
        &mut self,
        snap: &Snapshot,
        day: i64,
        limit: usize,
    ) -> io::Result<Arc<Vec<Row>>> {
        let live = snap.live_days.get(&day).cloned();
        let live_rows = live.as_ref().map_or(0, |l| l.len());
        let too_many = || days::too_many_rows(&days::path(&self.dir, day), limit);
        let file_limit = limit.checked_sub(live_rows).ok_or_else(too_many)?;
        let file = match snap.files.get(&day) {
            // A kept day is returned whatever its size: check it too.
            Some(stamp) => match self
                .days
                .get(&self.dir, day, *stamp, &self.order, file_limit)?
            {
                f if f.len() > file_limit => return Err(too_many()),
                f => Some(f),
            },
            None => None,
        };
        Ok(match (file, live) {
            (Some(f), None) => f,
            (None, Some(l)) => l,
            (None, None) => Arc::new(Vec::new()),
            (Some(f), Some(l)) => Arc::new(merge(&[&f, &l], &self.order)),
        })
    }

    /// REPORT_REQUEST_ROWS.
    pub fn request_rows(&self) -> usize {
        self.request_rows
    }

    /// The period's days as `bigday` streams them: for a period too large to read. The stream
    /// needs nothing of the cache, so it can run without its lock.
    pub fn stream_days(&self, snap: &Snapshot, period: &[i64]) -> Vec<bigday::Day> {
        period.iter().map(|&d| self.stream_day(snap, d)).collect()
    }

    /// A day as `bigday` streams it.
    pub fn stream_day(&self, snap: &Snapshot, day: i64) -> bigday::Day {
        bigday::Day {
            path: days::path(&self.dir, day),
            len: snap.files.get(&day).map(|s| s.len),
            live: snap.live_days.get(&day).cloned().unwrap_or_default(),
        }
    }

    /// What answers about `period` depend on.
    pub fn period_key(snap: &Snapshot, period: &[i64]) -> PeriodKey {
        period
            .iter()
            .map(|&d| (d, Self::day_key(snap, d)))
            .collect()
    }

    /// The period's rows merged per key (earliest first_seen, latest last_seen, summed count).
    ///
    /// The result is kept for the next request when it fits the budget: a period of files
    /// alone (stable until the next flush) pushes days out of the day cache to make room; one
    /// with live rows (stale within a second under a running sensor) only takes what the days
    /// leave free, since the next request rebuilds it from them.
    pub fn view(&mut self, snap: &Snapshot, period: &[i64]) -> io::Result<Arc<Vec<Row>>> {
        let key = Self::period_key(snap, period);
        if let Some((k, rows)) = &self.view {
            if *k == key {
                return Ok(rows.clone());
            }
        }
        // Files surely too long for the request are refused before anything is read or let go.
        let bytes: u64 = period
            .iter()
            .filter_map(|d| snap.files.get(d))
            .map(|s| s.len)
            .sum();
        if days::surely_more_rows(bytes, self.request_rows) {
            return Err(days::too_many_rows(&self.dir, self.request_rows));
        }
        // Let the view this one replaces go first, so two never sit in memory together
        // (requests still using it keep their own reference); the days get its room back.
        self.view = None;
        self.days.set_budget(self.budget);
        // The request's rows, read and merged, are bounded as a whole.
        let mut left = self.request_rows;
        let mut parts = Vec::with_capacity(period.len());
        for &d in period {
            let part = self.day_rows(snap, d, left)?;
            left = left.saturating_sub(part.len());
            parts.push(part);
        }
        let rows = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            let slices: Vec<&[Row]> = parts.iter().map(|p| p.as_slice()).collect();
            Arc::new(merge(&slices, &self.order))
        };
        drop(parts);
        // A day of files alone is the day cache's own vector: kept there, or too large.
        let cached_day = period.len() == 1 && self.days.holds(period[0], &rows);
        let live = key.iter().any(|(_, (_, generation))| *generation != 0);
        let room = if live {
            self.budget.saturating_sub(self.days.held())
        } else {
            self.budget
        };
        if !cached_day && rows.len() <= room {
            self.days.set_budget(self.budget - rows.len());
            self.view = Some((key, rows.clone()));
        }
        Ok(rows)
    }

    /// A day's figures; cached unless filtered (the stream, if any, run under the lock).
    #[cfg(test)]
    pub fn day_stats(
        &mut self,
        snap: &Snapshot,
        day: i64,
        filter: &Filter,
    ) -> io::Result<Arc<DayStats>> {
        match self.day_stats_or_stream(snap, day, filter)? {
            Ok(stats) => Ok(stats),
            Err(stream) => {
                let stats = stream.run(filter)?;
                self.keep_streamed(&stream, filter, stats.clone());
                Ok(stats)
            }
        }
    }

    /// A day's figures, kept or read now; or, for a day too large to read, the stream that
    /// makes them, for the caller to run without the cache's lock (a flooded day takes
    /// seconds) and then to `keep_streamed`.
    pub fn day_stats_or_stream(
        &mut self,
        snap: &Snapshot,
        day: i64,
        filter: &Filter,
    ) -> io::Result<Result<Arc<DayStats>, FiguresStream>> {
        let key = Self::day_key(snap, day);
        self.tick += 1;
        if filter.is_empty() {
            if let Some(k) = self.stats.get_mut(&day) {
                if k.key == key {
                    k.used = self.tick;
                    return Ok(Ok(k.stats.clone()));
                }
            }
        }
        let stats = match self.day_rows(snap, day, self.request_rows) {
            Ok(rows) => Arc::new(day_stats(rows.iter().filter(|r| filter.matches(r)))),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Ok(Err(FiguresStream {
                    day,
                    key,
                    source: self.stream_day(snap, day),
                    exact: Exact {
                        group: self.request_rows / EXACT_SHARE,
                        sources: self.request_rows / EXACT_SHARE,
                    },
                }))
            }
            Err(e) => return Err(e),
        };
        if filter.is_empty() {
            self.keep_stats(day, key, stats.clone());
        }
        Ok(Ok(stats))
    }

    /// Keeps the figures a stream made (unless filtered), as `day_stats` keeps its own.
    pub fn keep_streamed(&mut self, stream: &FiguresStream, filter: &Filter, stats: Arc<DayStats>) {
        if filter.is_empty() {
            self.keep_stats(stream.day, stream.key, stats);
        }
    }

    /// Keeps a day's figures within STATS_BYTES_PER_ROW × budget bytes and STATS_DAYS_KEPT
    /// days, the least recently used going first; figures larger than that are not kept.
    fn keep_stats(&mut self, day: i64, key: DayKey, stats: Arc<DayStats>) {
        if let Some(old) = self.stats.remove(&day) {
            self.stats_bytes -= old.bytes;
        }
        let bytes = stats.bytes();
        let limit = self.budget.saturating_mul(STATS_BYTES_PER_ROW);
        if bytes > limit {
            return;
        }
        while self.stats_bytes + bytes > limit || self.stats.len() >= STATS_DAYS_KEPT {
            let Some((&oldest, _)) = self.stats.iter().min_by_key(|(_, k)| k.used) else {
                break;
            };
            let k = self.stats.remove(&oldest).expect("found above");
            self.stats_bytes -= k.bytes;
        }
        self.stats_bytes += bytes;
        let used = self.tick;
        self.stats.insert(
            day,
            KeptStats {
                key,
                stats,
                bytes,
                used,
            },
        );
    }
}

/// The figures of a day too large to read, to be streamed (see `Data::day_stats_or_stream`).
pub struct FiguresStream {
    day: i64,
    key: DayKey,
    source: bigday::Day,
    exact: Exact,
}

impl FiguresStream {
    pub fn run(&self, filter: &Filter) -> io::Result<Arc<DayStats>> {
        bigday::figures(&self.source, &RowOrder::new(), filter, self.exact).map(Arc::new)
    }
}

/// K-way merge of sources in file order (one row per key each) into one row per key.
pub fn merge(sources: &[&[Row]], order: &RowOrder) -> Vec<Row> {
    let total: usize = sources.iter().map(|s| s.len()).sum();
    let mut out: Vec<Row> = Vec::with_capacity(total);
    let mut pos = vec![0usize; sources.len()];
    let next = |i: usize| {
        pos[i] += 1;
        Ok(sources[i].get(pos[i] - 1).copied())
    };
    let merged: Result<(), Infallible> = merge_rows(order, sources.len(), next, |row| {
        out.push(*row);
        Ok(())
    });
    let Ok(()) = merged;
    // Keys seen on many days leave the output far smaller than its sources: a kept period is
    // counted in rows, so it holds no more than its rows.
    out.shrink_to_fit();
    out
}

/// Figures of one day's rows (in file order), all exact.
pub fn day_stats<'a>(rows: impl Iterator<Item = &'a Row>) -> DayStats {
    let mut f = Figures::new(Exact::ALL);
    rows.for_each(|r| f.push(r));
    f.finish()
}

/// How many addresses the figures of one day may hold to count exactly. Past `group` in one
/// port, its distinct sources are estimated; past `sources` in the day, the day's distinct
/// sources are estimated and the least active sources are let go (the top sources' attempts
/// become lower bounds). Either way the figures say they are `estimated`.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    pub group: usize,
    pub sources: usize,
}

impl Exact {
    pub const ALL: Exact = Exact {
        group: usize::MAX,
        sources: usize::MAX,
    };
}

/// A day's figures, built one row at a time in file order.
pub struct Figures {
    s: DayStats,
    exact: Exact,
    current: Option<PortDay>,
    /// The current port's sources, exact while `group_sketch` is off.
    group: Vec<Addr>,
    group_sketch: Option<Distinct>,
    group_estimated: bool,
    /// The day's sources and their attempts; folded when full (see `fold_sources`).
    sources: Vec<(Addr, u64)>,
    /// Every source, once `sources` has let some go.
    day_sketch: Option<Distinct>,
}

impl Figures {
    pub fn new(exact: Exact) -> Figures {
        Figures {
            s: DayStats::default(),
            exact,
            current: None,
            group: Vec::new(),
            group_sketch: None,
            group_estimated: false,
            sources: Vec::new(),
            day_sketch: None,
        }
    }

    pub fn push(&mut self, r: &Row) {
        self.s.rows += 1;
        self.s.attempts = self.s.attempts.saturating_add(r.count);
        if let Some(d) = self.day_sketch.as_mut() {
            d.insert(&r.key.src);
        }
        self.sources.push((r.key.src, r.count));
        if self.sources.len() >= self.exact.sources {
            self.fold_sources();
        }
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| c.proto == r.key.proto && c.port == r.key.port);
        if !same {
            self.close_port();
            self.current = Some(PortDay {
                proto: r.key.proto,
                port: r.key.port,
                sources: 0,
                attempts: 0,
                rows: 0,
            });
        }
        let c = self.current.as_mut().expect("set above");
        c.attempts = c.attempts.saturating_add(r.count);
        c.rows += 1;
        if self.group_estimated {
            self.group_sketch.as_mut().expect("on").insert(&r.key.src);
        } else {
            self.group.push(r.key.src);
            if self.group.len() >= self.exact.group {
                dedup(&mut self.group);
                if self.group.len() > self.exact.group / 2 {
                    // Half full of distinct sources even so: count them by estimate.
                    let g = self.group_sketch.get_or_insert_with(Distinct::new);
                    self.group.iter().for_each(|a| g.insert(a));
                    self.group.clear();
                    self.group_estimated = true;
                    self.s.estimated = true;
                }
            }
        }
    }

    fn close_port(&mut self) {
        let Some(mut p) = self.current.take() else {
            return;
        };
        if self.group_estimated {
            let g = self.group_sketch.as_mut().expect("on");
            p.sources = g.estimate().min(u32::MAX as u64) as u32;
            g.clear();
            self.group_estimated = false;
        } else {
            dedup(&mut self.group);
            p.sources = self.group.len() as u32;
            self.group.clear();
        }
        self.s.ports.push(p);
    }

    /// Folds the day's sources to one entry each; if they still fill more than half the room,
    /// the day's distinct sources go to an estimate and the less active half is let go (a
    /// spoofed flood's sources send one attempt each; a real scanner stays).
    fn fold_sources(&mut self) {
        fold_by_source(&mut self.sources);
        let room = self.exact.sources;
        if self.sources.len() <= room / 2 {
            return;
        }
        if self.day_sketch.is_none() {
            let mut d = Distinct::new();
            self.sources.iter().for_each(|(a, _)| d.insert(a));
            self.day_sketch = Some(d);
        }
        let keep = (room / 4).max(TOP);
        if self.sources.len() > keep {
            self.sources
                .select_nth_unstable_by(keep, |a, b| b.1.cmp(&a.1));
            self.sources.truncate(keep);
        }
        self.s.estimated = true;
    }

    pub fn finish(mut self) -> DayStats {
        self.close_port();
        let mut s = self.s;
        s.ports.shrink_to_fit();
        let mut sources = self.sources;
        fold_by_source(&mut sources);
        s.sources = match &self.day_sketch {
            Some(d) => d.estimate(),
            None => sources.len() as u64,
        };
        let by_count = |a: &(Addr, u64), b: &(Addr, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        if sources.len() > TOP {
            sources.select_nth_unstable_by(TOP, by_count);
            sources.truncate(TOP);
        }
        sources.sort_unstable_by(by_count);
        // Ten kept of a row each: without this a kept day's figures would hold all its rows' room.
        sources.shrink_to_fit();
        s.top_sources = sources;
        s
    }
}

fn dedup(v: &mut Vec<Addr>) {
    v.sort_unstable();
    v.dedup();
}

/// One entry per source, its attempts summed.
fn fold_by_source(v: &mut Vec<(Addr, u64)>) {
    v.sort_unstable_by_key(|e| e.0);
    v.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.saturating_add(next.1);
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Key;

    /// A snapshot of `live` as the report makes one of a sensor's publication: the rows apart.
    fn snapshot_of(data: &mut Data, mut live: LiveSummary) -> Snapshot {
        let rows = std::mem::take(&mut live.rows);
        data.snapshot(Arc::new(live), |_| Some(rows)).unwrap()
    }

    /// The rows of a publication are taken once and sorted where they lie, by day; a flush
    /// that writes a day's rows into its file drops that day, and counters alone keep the
    /// rows last seen.
    #[test]
    fn live_rows_are_taken_once_and_kept_by_day() {
        let dir = std::env::temp_dir().join(format!("tsusen-live-days-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (d1, d2) = (19_800, 19_801);
        // Midnight: yesterday's rows still in the table, today's first ones, out of order and
        // with one key twice (the fold).
        let rows = vec![
            row(80, 2, d2 * 86_400 + 5, 1),
            row(22, 9, d1 * 86_400 + 7, 2),
            row(22, 1, d2 * 86_400 + 3, 4),
            row(22, 9, d1 * 86_400 + 9, 3),
        ];
        let mut live = LiveSummary {
            generation: 7,
            file_lens: Some(vec![(d1, None), (d2, None)]),
            ..Default::default()
        };
        let mut data = Data::new(dir.clone(), 1000, 1000);
        let mut asked = Vec::new();
        let snap = data
            .snapshot(Arc::new(live.clone()), |g| {
                asked.push(g);
                Some(rows)
            })
            .unwrap();
        assert_eq!(asked, vec![7]);
        let day1 = &snap.live_days[&d1];
        assert_eq!(day1.len(), 1);
        assert_eq!(
            (day1[0].count, day1[0].first, day1[0].last),
            (5, d1 * 86_400 + 7, d1 * 86_400 + 14)
        );
        let ports: Vec<_> = snap.live_days[&d2].iter().map(|r| r.key.port).collect();
        assert_eq!(ports, vec![Some(22), Some(80)]);
        // The same generation again: kept, not asked for.
        let again = data
            .snapshot(Arc::new(live.clone()), |_| panic!("asked twice"))
            .unwrap();
        assert!(Arc::ptr_eq(&again.live_days, &snap.live_days));
        // A flush wrote yesterday's file since: its live rows are in it now.
        std::fs::write(
            days::path(&dir, d1),
            "proto dst_port dst_ip src_ip first_seen last_seen count\n",
        )
        .unwrap();
        let flushed = data
            .snapshot(Arc::new(live.clone()), |_| panic!("asked twice"))
            .unwrap();
        assert_eq!(
            flushed.live_days.keys().copied().collect::<Vec<_>>(),
            vec![d2]
        );
        // Counters alone, a newer generation: the rows last seen stand.
        live.generation = 8;
        live.counters_only = true;
        let counters = data
            .snapshot(Arc::new(live.clone()), |_| {
                panic!("no rows with counters alone")
            })
            .unwrap();
        assert!(Arc::ptr_eq(&counters.live_days, &flushed.live_days));
        // Rows gone (a newer summary replaced this one): the rows last seen stand too.
        live.generation = 9;
        live.counters_only = false;
        let gone = data.snapshot(Arc::new(live), |_| None).unwrap();
        assert!(Arc::ptr_eq(&gone.live_days, &flushed.live_days));
        let _ = std::fs::remove_dir_all(&dir);
    }

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

    /// Three days of `n` rows each (ports 1..=n from one source, so every day has the same
    /// keys), written as the sensor writes them.
    fn three_days(n: u16) -> (PathBuf, Vec<i64>) {
        let dir = std::env::temp_dir().join(format!("tsusen-data-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let days: Vec<i64> = (19_783..19_786).collect();
        for &d in &days {
            let mut w = crate::store::RowWriter::new(Vec::new());
            w.header().unwrap();
            for p in 1..=n {
                w.row(&row(p, 1, d * 86_400, 1)).unwrap();
            }
            std::fs::write(days::path(&dir, d), w.into_inner()).unwrap();
        }
        (dir, days)
    }

    #[test]
    fn a_kept_period_and_the_days_share_one_budget() {
        let (dir, days) = three_days(10);
        let mut data = Data::new(dir.clone(), 25, 1 << 20);
        let snap = data
            .snapshot(Arc::new(LiveSummary::default()), |_| None)
            .unwrap();
        // Files alone: the merged period (10 rows) pushes days out to keep itself.
        let v = data.view(&snap, &days).unwrap();
        assert_eq!((v.len(), v[0].count), (10, 3));
        assert_eq!((data.days.held(), data.cached_rows()), (10, 20));
        // Reused as long as nothing changes.
        assert!(Arc::ptr_eq(&v, &data.view(&snap, &days).unwrap()));
        // A period of one cached day is the day cache's own vector, not kept twice (and the
        // period it replaces is gone).
        let one = data.view(&snap, &days[2..]).unwrap();
        assert_eq!((one.len(), data.cached_rows()), (10, 10));
        assert!(data.view.is_none() && data.days.holds(days[2], &one));

        // With live rows the period only takes what the days leave: 20 rows of days (two
        // days fit 25) leave 5, too few for the 10 of the period; it is built and dropped.
        let live = LiveSummary {
            rows: vec![row(99, 2, days[2] * 86_400 + 10, 4)],
            generation: 1,
            ..Default::default()
        };
        let snap = snapshot_of(&mut data, live.clone());
        let v = data.view(&snap, &days).unwrap();
        assert_eq!(v.len(), 11);
        assert_eq!(v.iter().map(|r| r.count).sum::<u64>(), 34);
        assert!(data.view.is_none());
        assert_eq!(data.cached_rows(), 20);
        // A budget of 0 keeps nothing and answers the same.
        let mut none = Data::new(dir.clone(), 0, 1 << 20);
        let snap0 = snapshot_of(&mut none, live.clone());
        assert_eq!(*none.view(&snap0, &days).unwrap(), *v);
        let stats = none.day_stats(&snap0, days[0], &Filter::default()).unwrap();
        assert_eq!((stats.rows, stats.ports.len()), (10, 10));
        assert_eq!((none.cached_rows(), none.cached_stats_bytes()), (0, 0));
        // Day figures are kept within 8 bytes a row of the budget.
        data.day_stats(&snap, days[0], &Filter::default()).unwrap();
        assert_eq!(
            data.cached_stats_bytes(),
            0,
            "10 ports do not fit 200 bytes"
        );
        let mut roomy = Data::new(dir.clone(), 1000, 1 << 20);
        let snap1 = snapshot_of(&mut roomy, live);
        for &d in &days {
            roomy.day_stats(&snap1, d, &Filter::default()).unwrap();
        }
        assert_eq!(roomy.stats.len(), 3);
        assert!(roomy.cached_stats_bytes() <= 8000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_request_reads_at_most_its_rows() {
        let (dir, days) = three_days(12);
        let too_large = |e: io::Error| e.kind() == io::ErrorKind::FileTooLarge;
        // 30 rows a request: each day (12) fits, the three together (36) do not.
        let mut data = Data::new(dir.clone(), 1000, 30);
        let snap = data
            .snapshot(Arc::new(LiveSummary::default()), |_| None)
            .unwrap();
        for &d in &days {
            assert_eq!(
                data.day_stats(&snap, d, &Filter::default()).unwrap().rows,
                12
            );
        }
        // The days are kept now; being kept does not let a period past the limit.
        assert_eq!(data.cached_rows(), 36);
        assert!(too_large(data.view(&snap, &days).unwrap_err()));
        assert_eq!(data.view(&snap, &days[1..]).unwrap().len(), 12);
        // Cold, with live rows counted too: 12 + 12 + 5 live fit 30, one more live row does not.
        // (A new generation each, as a sensor publishes them.)
        let live_rows = |n: u16| LiveSummary {
            rows: (0..n)
                .map(|i| row(100 + i, 7, days[2] * 86_400 + 9, 1))
                .collect(),
            generation: n as u64,
            ..Default::default()
        };
        let mut cold = Data::new(dir.clone(), 0, 29);
        let snap = snapshot_of(&mut cold, live_rows(5));
        assert_eq!(cold.view(&snap, &days[1..]).unwrap().len(), 17);
        let snap = snapshot_of(&mut cold, live_rows(6));
        assert!(too_large(cold.view(&snap, &days[1..]).unwrap_err()));
        // One day larger than the limit is refused before it is read whole; its figures
        // stream instead, and nothing of it is kept.
        let mut small = Data::new(dir.clone(), 1000, 11);
        let snap = small
            .snapshot(Arc::new(LiveSummary::default()), |_| None)
            .unwrap();
        assert!(too_large(small.day_rows(&snap, days[0], 11).unwrap_err()));
        let s = small.day_stats(&snap, days[0], &Filter::default()).unwrap();
        assert_eq!(
            (s.rows, s.attempts, s.sources, s.ports.len()),
            (12, 12, 1, 12)
        );
        assert_eq!(small.cached_rows(), 0);
        // Files surely longer than the rows allowed (padded here with lines that are not rows:
        // 30 rows allow 5 760 bytes, the padded day has about 5 300, the two 6 000) are refused
        // before anything is read, and the period kept stays.
        let padded = days[2] + 1;
        let text = std::fs::read_to_string(days::path(&dir, days[2])).unwrap();
        let junk = "#".repeat(100) + "\n";
        std::fs::write(days::path(&dir, padded), text + &junk.repeat(45)).unwrap();
        let mut data = Data::new(dir.clone(), 1000, 30);
        let snap = data
            .snapshot(Arc::new(LiveSummary::default()), |_| None)
            .unwrap();
        assert_eq!(data.view(&snap, &days[1..]).unwrap().len(), 12);
        let kept = data.cached_rows();
        assert!(too_large(data.view(&snap, &[days[2], padded]).unwrap_err()));
        assert_eq!(data.cached_rows(), kept);
        // Alone it is not surely too long, but its lines, counted before any is parsed, are
        // more than 30: refused too, its figures stream, from its 12 rows.
        assert!(too_large(data.view(&snap, &[padded]).unwrap_err()));
        let s = data.day_stats(&snap, padded, &Filter::default()).unwrap();
        assert_eq!((s.rows, s.attempts), (12, 12));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A flood's day: `n` spoofed sources with one attempt each on port 23, a scanner with
    /// many on port 22, in file order.
    fn flood_rows(n: u32) -> Vec<Row> {
        let mut rows: Vec<Row> = (0..n)
            .map(|i| {
                let mut r = row(23, 0, 1_000, 1);
                r.key.src = Addr::v4((0x0a00_0000 + i).to_be_bytes());
                r
            })
            .collect();
        rows.push(row(22, 9, 1_000, 500));
        rows.push(row(23, 9, 1_000, 400));
        let order = RowOrder::new();
        rows.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
        rows
    }

    #[test]
    fn figures_past_their_room_estimate_and_keep_the_loud_sources() {
        let rows = flood_rows(200_000);
        let exact = day_stats(rows.iter());
        assert!(!exact.estimated);
        let mut f = Figures::new(Exact {
            group: 4096,
            sources: 4096,
        });
        rows.iter().for_each(|r| f.push(r));
        let est = f.finish();
        assert!(est.estimated);
        // Rows, attempts and the ports are counted, never estimated.
        assert_eq!((est.rows, est.attempts), (exact.rows, exact.attempts));
        assert_eq!(est.ports.len(), 2);
        assert_eq!(est.ports[0].sources, 1);
        let near = |e: u64, x: u64| (e as f64 - x as f64).abs() / (x as f64) < 0.04;
        assert!(near(est.sources, exact.sources), "{}", est.sources);
        assert!(near(
            est.ports[1].sources as u64,
            exact.ports[1].sources as u64
        ));
        // The scanner stays on top, with all its attempts.
        assert_eq!(est.top_sources[0], (Addr::v4([203, 0, 113, 9]), 900));
        assert_eq!(est.top_sources[0], exact.top_sources[0]);
    }

    #[test]
    fn merges_per_key_over_days() {
        let order = RowOrder::new();
        let a = [row(22, 1, 100, 2), row(22, 2, 100, 1), row(80, 1, 100, 1)];
        let b = [row(22, 2, 90_000, 4), row(443, 9, 90_000, 1)];
        let m = merge(&[&a, &b], &order);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].key.src, Addr::v4([203, 0, 113, 2]));
        assert_eq!((m[1].first, m[1].last, m[1].count), (100, 90_005, 5));
        let s = day_stats(m.iter());
        assert_eq!((s.rows, s.attempts, s.sources), (4, 9, 3));
        assert_eq!(s.ports[0].sources, 2);
        assert_eq!(s.top_sources[0], (Addr::v4([203, 0, 113, 2]), 5));
    }
}
