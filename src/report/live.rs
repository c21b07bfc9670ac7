//! What the running sensor shares with the report: the rows it holds that are not yet in the
//! files, and its counters. The sensor thread publishes a whole new `LiveSummary` (at each flush,
//! and between flushes at most once a second, only while someone is looking); readers take the
//! current `Arc` and never hold a lock while they work, so the sensor never waits on the page.

use crate::addr::Addr;
use crate::classify::FlowStats;
use crate::sensor::Stats;
use crate::tables::Row;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The sensor's state at one moment.
#[derive(Clone, Debug, Default)]
pub struct LiveSummary {
    /// Set by `publish`: 0 means "no sensor" (`tsusen serve`), else it grows by one each time.
    pub generation: u64,
    /// The sensor's clock (Unix seconds) when this was taken.
    pub at: i64,
    /// When the sensor started (Unix seconds).
    pub started: i64,
    /// Rows counted since the last flush, of any day (at midnight the table briefly holds
    /// yesterday's too): what the files do not hold yet. Order does not matter. Empty when
    /// `counters_only`. The sensor's copy of its table travels here; `publish` moves it into the
    /// handle, from which the report takes it once (`LiveHandle::take_rows`), so the summaries
    /// readers hold never have rows.
    pub rows: Vec<Row>,
    /// Published for the counters alone (a look at /metrics or /api/status): `rows` is empty
    /// rather than a copy of up to the whole table.
    pub counters_only: bool,
    pub stats: Stats,
    pub table_rows: usize,
    pub table_capacity: usize,
    pub flows: FlowStats,
    /// Bytes the sensor wrote to its files and snapshots since it started.
    pub bytes_written: u64,
    /// How long the last flush took, in seconds.
    pub last_flush_seconds: f64,
    /// Frames the kernel dropped before we read them, when the capture can tell.
    pub capture_drops: Option<u64>,
    pub interface: String,
    /// The detectors' figures and, per configured sink, (sink, delivered, dropped).
    pub alerts: Option<crate::alerts::AlertFigures>,
    /// For each day of `rows`, the length of its file when this was taken (`None`: no file),
    /// filled by `stamp_files`. A file that has changed since (a flush wrote these rows into
    /// it) makes the report pass over that day's live rows rather than count them twice,
    /// until the sensor publishes again. `None` here: no such check.
    pub file_lens: Option<Vec<(i64, Option<u64>)>>,
    /// NetFlow/IPFIX input counters (`name`, value) when the sensor takes flows.
    pub netflow: Vec<(&'static str, u64)>,
    /// Sources the fingerprinter labels now (zmap, masscan …), sorted by address; bounded by
    /// its capacity. Tool names of one source are joined with `+`.
    pub tools: Vec<(Addr, String)>,
}

impl LiveSummary {
    /// The tool a source is labelled with, if any.
    pub fn tool_of(&self, a: &Addr) -> Option<&str> {
        self.tools
            .binary_search_by(|(k, _)| k.cmp(a))
            .ok()
            .map(|i| self.tools[i].1.as_str())
    }

    /// Records the length of the day files of the days `rows` cover, as they are now. The
    /// sensor calls it just before `publish`, on its own thread, after any flush.
    pub fn stamp_files(&mut self, log_directory: &Path) {
        let mut days: Vec<i64> = self.rows.iter().map(Row::day).collect();
        days.sort_unstable();
        days.dedup();
        self.file_lens = Some(
            days.into_iter()
                .map(|d| {
                    let len = std::fs::metadata(super::days::path(log_directory, d))
                        .ok()
                        .map(|m| m.len());
                    (d, len)
                })
                .collect(),
        );
    }
}

/// The current summary, when it was published, and since when a reader has been asking for a
/// fresher one (`None` when nobody is).
struct Current {
    summary: Arc<LiveSummary>,
    /// The rows published with `summary`, until the report takes them.
    rows: Option<Vec<Row>>,
    published: Instant,
    asked: Option<Instant>,
}

struct Shared {
    current: Mutex<Current>,
    published: Condvar,
    /// A reader wanted fresher figures than it found.
    wanted: AtomicBool,
    /// That reader wanted the rows too.
    rows_wanted: AtomicBool,
}

/// A cheap, clonable handle on the latest `LiveSummary`.
#[derive(Clone)]
pub struct LiveHandle(Arc<Shared>);

impl Default for LiveHandle {
    fn default() -> Self {
        LiveHandle::new()
    }
}

/// Readers ask for figures no older than this; the sensor publishes no more often.
pub const FRESH: Duration = Duration::from_secs(1);

impl LiveHandle {
    pub fn new() -> LiveHandle {
        LiveHandle(Arc::new(Shared {
            current: Mutex::new(Current {
                summary: Arc::new(LiveSummary::default()),
                rows: None,
                published: Instant::now(),
                asked: None,
            }),
            published: Condvar::new(),
            wanted: AtomicBool::new(false),
            rows_wanted: AtomicBool::new(false),
        }))
    }

    /// The latest summary (generation 0 when no sensor ever published).
    pub fn current(&self) -> Arc<LiveSummary> {
        self.lock().summary.clone()
    }

    /// The rows published with summary `generation`, once: the report sorts them where they
    /// lie, rather than keep a sorted copy beside a copy of the whole table. `None` when they
    /// were taken, when there were none (counters alone, no sensor), or when a newer summary
    /// has replaced that one.
    pub fn take_rows(&self, generation: u64) -> Option<Vec<Row>> {
        let mut current = self.lock();
        if current.summary.generation != generation {
            return None;
        }
        current.rows.take()
    }

    /// For the sensor, once per second of its clock (not per packet): true when a reader asked
    /// for fresher figures and the last publication is at least `FRESH` old. Publishing only
    /// then keeps the copy of the table off the sensor's path while nobody looks at the page.
    pub fn wanted(&self) -> bool {
        if !self.0.wanted.load(Ordering::Relaxed) {
            return false;
        }
        let current = self.lock();
        current.published.elapsed() >= FRESH || self.rows_wanted() && current.summary.counters_only
    }

    /// For the sensor, when `wanted`: whether to copy its table into the summary.
    pub fn rows_wanted(&self) -> bool {
        self.0.rows_wanted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.0.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current summary, after asking a live sensor for a fresher one and waiting for it up
    /// to `wait` when the one held is older than `FRESH`, or has no rows and `rows` are
    /// wanted. Without a sensor, or when the sensor has not answered an earlier request within
    /// `wait` (busy flushing, or stopped), returns what it has at once, so a stalled sensor
    /// never stalls the page.
    pub fn fresh(&self, wait: Duration, rows: bool) -> Arc<LiveSummary> {
        let mut guard = self.lock();
        let stale = |c: &Current| c.published.elapsed() >= FRESH || rows && c.summary.counters_only;
        if guard.summary.generation == 0 || !stale(&guard) {
            return guard.summary.clone();
        }
        let asked = *guard.asked.get_or_insert_with(Instant::now);
        let left = wait.saturating_sub(asked.elapsed());
        if left.is_zero() {
            return guard.summary.clone();
        }
        if rows {
            self.0.rows_wanted.store(true, Ordering::Relaxed);
        }
        self.0.wanted.store(true, Ordering::Relaxed);
        let gen = guard.summary.generation;
        let (guard, _) = self
            .0
            .published
            .wait_timeout_while(guard, left, |c| {
                c.summary.generation == gen || rows && c.summary.counters_only
            })
            .unwrap_or_else(|p| p.into_inner());
        guard.summary.clone()
    }
}

/// Publishes a new summary (the sensor's side). The table copy is the caller's: build
/// `summary.rows` from `AttemptTable::rows()`.
pub fn publish(handle: &LiveHandle, mut summary: LiveSummary) {
    let mut guard = handle.lock();
    summary.generation = guard.summary.generation + 1;
    let rows = std::mem::take(&mut summary.rows);
    *guard = Current {
        rows: (!summary.counters_only).then_some(rows),
        summary: Arc::new(summary),
        published: Instant::now(),
        asked: None,
    };
    // A request for rows that came while these counters were taken stays asked.
    if !guard.summary.counters_only {
        handle.0.rows_wanted.store(false, Ordering::Relaxed);
    }
    handle
        .0
        .wanted
        .store(handle.rows_wanted(), Ordering::Relaxed);
    drop(guard);
    handle.0.published.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_each_publication_and_can_wait_for_one() {
        let h = LiveHandle::new();
        assert_eq!(h.current().generation, 0);
        // No sensor: no waiting.
        let t = Instant::now();
        assert_eq!(h.fresh(Duration::from_secs(5), true).generation, 0);
        assert!(t.elapsed() < Duration::from_secs(1));
        publish(&h, LiveSummary::default());
        assert_eq!(h.current().generation, 1);
        assert!(!h.wanted());
        std::thread::sleep(FRESH);
        let h2 = h.clone();
        let sensor = std::thread::spawn(move || {
            while !h2.wanted() {
                std::thread::sleep(Duration::from_millis(5));
            }
            publish(
                &h2,
                LiveSummary {
                    at: 42,
                    ..Default::default()
                },
            );
        });
        let s = h.fresh(Duration::from_secs(5), false);
        assert_eq!((s.generation, s.at), (2, 42));
        sensor.join().unwrap();
    }

    /// The rows of a publication are not in the summary readers hold: the report takes them
    /// from the handle, once, and only those of the summary it read.
    #[test]
    fn published_rows_are_taken_once() {
        let h = LiveHandle::new();
        assert_eq!(h.take_rows(0), None);
        let row = Row {
            key: crate::tables::Key {
                proto: 17,
                port: Some(53),
                dst: Addr::v4([198, 51, 100, 1]),
                src: Addr::v4([203, 0, 113, 9]),
            },
            first: 1_700_000_000,
            last: 1_700_000_000,
            count: 3,
        };
        publish(
            &h,
            LiveSummary {
                rows: vec![row; 2],
                ..Default::default()
            },
        );
        assert!(h.current().rows.is_empty());
        assert_eq!(h.take_rows(2), None);
        assert_eq!(h.take_rows(1), Some(vec![row; 2]));
        assert_eq!(h.take_rows(1), None);
        publish(
            &h,
            LiveSummary {
                counters_only: true,
                ..Default::default()
            },
        );
        assert_eq!(h.take_rows(2), None);
    }

    /// A look at the counters alone does not have the sensor copy its table; a look at the
    /// rows then finds fresh counters without rows, and asks again for the rows.
    #[test]
    fn a_look_at_the_counters_alone_does_not_ask_for_the_rows() {
        let h = LiveHandle::new();
        publish(&h, LiveSummary::default());
        std::thread::sleep(FRESH);
        // The sensor's side, as `tsusen run` answers.
        let h2 = h.clone();
        let sensor = std::thread::spawn(move || {
            let mut answered = Vec::new();
            while answered.len() < 2 {
                if h2.wanted() {
                    let rows = h2.rows_wanted();
                    answered.push(rows);
                    let summary = LiveSummary {
                        counters_only: !rows,
                        ..Default::default()
                    };
                    publish(&h2, summary);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            answered
        });
        let s = h.fresh(Duration::from_secs(5), false);
        assert_eq!((s.generation, s.counters_only), (2, true));
        let s = h.fresh(Duration::from_secs(5), true);
        assert_eq!((s.generation, s.counters_only), (3, false));
        assert_eq!(sensor.join().unwrap(), vec![false, true]);
        assert!(!h.wanted() && !h.rows_wanted());
    }
}
