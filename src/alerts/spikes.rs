//! The spike watch: at every flush, each series' distinct sources of the day being written
//! against its baseline from the day files before it (rule in `detect::spike`); one event per
//! series per day, the series that fired kept in the snapshot so a restart does not fire again.
//!
//! Today's sources come from the rows each flush takes out of the sensor's table (and once, at
//! the first flush of a day or after a restart, from what the day's file already holds); the
//! baseline is read from the previous days' files once per day and kept until the day changes.

use crate::detect::event::{Event, EventKind, Value};
use crate::detect::spike::{DistinctSources, SeriesKey, SpikeRule};
use crate::tables::Row;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// What the snapshot keeps: the day watched and the series that fired on it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpikeState {
    pub day: i64,
    pub fired: Vec<(u8, Option<u16>)>,
}

struct Baseline {
    day: i64,
    /// Days with a file in the history.
    days: usize,
    counts: HashMap<SeriesKey, Vec<u32>>,
}

pub struct SpikeWatch {
    rule: SpikeRule,
    day: Option<i64>,
    today: DistinctSources,
    /// Today's file has been read into `today`.
    seeded: bool,
    baseline: Option<Baseline>,
    fired: BTreeSet<SeriesKey>,
    capacity: usize,
    /// Read the baseline on a helper thread (live), and the load under way.
    background: bool,
    loading: Option<(i64, std::thread::JoinHandle<Baseline>)>,
}

/// The distinct sources per series on each of the last `history_days` days with a file
/// before `day`, read streaming from their files.
fn compute_baseline(day: i64, dir: &Path, history_days: u32, capacity: usize) -> Baseline {
    let files = match crate::report::days::list(dir) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("spikes: listing {}: {e}", dir.display());
            Default::default()
        }
    };
    let history: Vec<i64> = files.keys().copied().filter(|&d| d < day).collect();
    let from = history.len().saturating_sub(history_days as usize);
    let history = &history[from..];
    let mut counts: HashMap<SeriesKey, Vec<u32>> = HashMap::new();
    let mut scratch = DistinctSources::new(capacity);
    for (i, &d) in history.iter().enumerate() {
        scratch.clear();
        let path = crate::report::days::path(dir, d);
        if let Err(e) = scratch.add_file(&path) {
            log::warn!("spikes: baseline from {}: {e}", path.display());
        }
        for (k, n) in scratch.counts() {
            counts.entry(k).or_insert_with(|| vec![0; history.len()])[i] =
                n.min(u32::MAX as u64) as u32;
        }
    }
    Baseline {
        day,
        days: history.len(),
        counts,
    }
}

impl SpikeWatch {
    pub fn new(rule: SpikeRule, capacity: usize) -> SpikeWatch {
        SpikeWatch {
            rule,
            day: None,
            today: DistinctSources::new(capacity),
            seeded: false,
            baseline: None,
            fired: BTreeSet::new(),
            capacity,
            background: false,
            loading: None,
        }
    }

    fn start_day(&mut self, day: i64) {
        self.day = Some(day);
        self.today.clear();
        self.seeded = false;
        self.fired.clear();
    }

    fn seed(&mut self, dir: &Path) {
        let Some(day) = self.day else { return };
        if self.seeded {
            return;
        }
        self.seeded = true;
        let path = crate::report::days::path(dir, day);
        if let Err(e) = self.today.add_file(&path) {
            log::warn!("spikes: today's sources from {}: {e}", path.display());
        }
    }

    /// The rows of `day` a flush is about to write (call before writing them).
    pub fn rows(&mut self, day: i64, rows: &[Row], dir: &Path) {
        match self.day {
            Some(d) if day < d => return,
            Some(d) if day == d => {}
            _ => self.start_day(day),
        }
        self.seed(dir);
        for r in rows {
            self.today.add_row(r);
        }
    }

    /// Makes the baseline of `day` ready if it can: at once when reading files on this thread
    /// is fine (replay), else on a helper thread whose result a later check picks up, so a day
    /// of large history files never stalls the capture. `false`: not ready yet.
    fn load_baseline(&mut self, day: i64, dir: &Path) -> bool {
        if self.baseline.as_ref().is_some_and(|b| b.day == day) {
            return true;
        }
        let (history_days, capacity) = (self.rule.history_days, self.capacity);
        if !self.background {
            self.baseline = Some(compute_baseline(day, dir, history_days, capacity));
            return true;
        }
        match self.loading.take() {
            Some((d, h)) if d == day && h.is_finished() => match h.join() {
                Ok(b) => {
                    self.baseline = Some(b);
                    true
                }
                Err(_) => false,
            },
            Some((d, h)) if d == day => {
                self.loading = Some((d, h));
                false
            }
            // None, or a finished day's load still running (it ends on its own).
            _ => {
                let dir = dir.to_path_buf();
                let spawned = std::thread::Builder::new()
                    .name("tsusen-baseline".into())
                    .spawn(move || compute_baseline(day, &dir, history_days, capacity));
                match spawned {
                    Ok(h) => self.loading = Some((day, h)),
                    Err(e) => log::warn!("spikes: baseline thread: {e}"),
                }
                false
            }
        }
    }

    /// Reads the baseline on a helper thread from now on (`tsusen run`).
    pub fn in_background(&mut self) {
        self.background = true;
    }

    /// Checks every series of the day watched; new spikes become events stamped `now`.
    pub fn check(&mut self, dir: &Path, now: i64, observer: &str, out: &mut Vec<Event>) {
        let Some(day) = self.day else { return };
        self.seed(dir);
        if !self.load_baseline(day, dir) {
            return;
        }
        let b = self.baseline.as_ref().expect("loaded above");
        if b.days < self.rule.min_history as usize {
            return;
        }
        let zeros = vec![0u32; b.days];
        let mut spikes: Vec<(SeriesKey, u64)> = self
            .today
            .counts()
            .filter(|(k, n)| *n >= self.rule.min_sources as u64 && !self.fired.contains(k))
            .collect();
        spikes.sort_unstable();
        for (key, n) in spikes {
            let history = b.counts.get(&key).unwrap_or(&zeros);
            let Some(v) = self.rule.judge(history, n) else {
                continue;
            };
            if !v.spike {
                continue;
            }
            self.fired.insert(key);
            let pname = String::from_utf8_lossy(crate::proto::name(key.0)).into_owned();
            let mut details = vec![("proto", Value::Str(pname))];
            if let Some(p) = key.1 {
                details.push(("port", Value::Int(p as i64)));
            }
            details.extend([
                ("sources", Value::Int(n as i64)),
                ("median", Value::Num(format!("{}", v.median))),
                ("mad", Value::Num(format!("{}", v.mad))),
                (
                    "threshold",
                    Value::Int(v.threshold.min(i64::MAX as u64) as i64),
                ),
                ("history_days", Value::Int(b.days as i64)),
                ("day", Value::Str(crate::report::days::date_text(day))),
            ]);
            out.push(Event {
                kind: EventKind::Spike,
                observer: observer.into(),
                offender: None,
                timestamp: now,
                details,
            });
        }
    }

    pub fn export(&self) -> SpikeState {
        SpikeState {
            day: self.day.unwrap_or(i64::MIN),
            fired: self.fired.iter().copied().collect(),
        }
    }

    pub fn import(&mut self, s: &SpikeState) {
        if s.day == i64::MIN {
            return;
        }
        self.start_day(s.day);
        self.fired = s.fired.iter().copied().collect();
    }

    /// Sources the day's count could not tell apart (capacity reached).
    pub fn saturated(&self) -> u64 {
        self.today.saturated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;
    use crate::store::RowWriter;
    use crate::tables::Key;

    const DAY: i64 = 20_454; // 2026-01-01

    fn row(day: i64, port: u16, src: u8) -> Row {
        let t = day * 86_400 + 3600;
        Row {
            key: Key {
                proto: 6,
                port: Some(port),
                dst: Addr::v4([198, 51, 100, 10]),
                src: Addr::v4([203, 0, 113, src]),
            },
            first: t,
            last: t,
            count: 1,
        }
    }

    fn write_day(dir: &Path, day: i64, rows: &[Row]) {
        let f = std::fs::File::create(crate::report::days::path(dir, day)).unwrap();
        let mut w = RowWriter::new(f);
        w.header().unwrap();
        for r in rows {
            w.row(r).unwrap();
        }
    }

    #[test]
    fn fires_once_per_series_per_day_and_not_again_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("tsusen-spikes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for d in 0..5 {
            let rows: Vec<Row> = (1..=4 + d as u8 % 2).map(|s| row(DAY + d, 23, s)).collect();
            write_day(&dir, DAY + d, &rows);
        }
        let today = DAY + 5;
        let mut w = SpikeWatch::new(SpikeRule::default(), 1000);
        let mut out = Vec::new();
        // A normal day: no event.
        let normal: Vec<Row> = (1..=5).map(|s| row(today, 23, s)).collect();
        w.rows(today, &normal, &dir);
        w.check(&dir, today * 86_400 + 3600, "eth0", &mut out);
        assert!(out.is_empty());
        // Then the spike, over two flushes: one event.
        let burst: Vec<Row> = (10..40).map(|s| row(today, 23, s)).collect();
        w.rows(today, &burst, &dir);
        w.check(&dir, today * 86_400 + 7200, "eth0", &mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.kind, EventKind::Spike);
        assert_eq!(e.offender, None);
        assert_eq!(e.detail("port"), Some(&Value::Int(23)));
        assert_eq!(e.detail("sources"), Some(&Value::Int(35)));
        assert_eq!(e.detail("threshold"), Some(&Value::Int(10)));
        assert_eq!(e.detail("history_days"), Some(&Value::Int(5)));
        let more: Vec<Row> = (40..60).map(|s| row(today, 23, s)).collect();
        w.rows(today, &more, &dir);
        w.check(&dir, today * 86_400 + 9000, "eth0", &mut out);
        assert_eq!(out.len(), 1, "once a day");
        // A restart from the snapshot: today's file holds the rows, and it does not fire again.
        let mut all = normal.clone();
        all.extend(&burst);
        all.extend(&more);
        write_day(&dir, today, &all);
        let state = w.export();
        let mut w2 = SpikeWatch::new(SpikeRule::default(), 1000);
        w2.import(&state);
        w2.rows(today, &[row(today, 23, 99)], &dir);
        w2.check(&dir, today * 86_400 + 9900, "eth0", &mut out);
        assert_eq!(out.len(), 1, "not again after a restart");
        // Without the snapshot it would have.
        let mut w3 = SpikeWatch::new(SpikeRule::default(), 1000);
        w3.rows(today, &[row(today, 23, 99)], &dir);
        w3.check(&dir, today * 86_400 + 9900, "eth0", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].detail("sources"), Some(&Value::Int(56)));
        // Live, the baseline is read on a helper thread: the first check only starts it.
        let mut w4 = SpikeWatch::new(SpikeRule::default(), 1000);
        w4.in_background();
        w4.rows(today, &burst, &dir);
        let n = out.len();
        w4.check(&dir, today * 86_400 + 9900, "eth0", &mut out);
        assert_eq!(out.len(), n, "baseline not read yet");
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            w4.check(&dir, today * 86_400 + 9901, "eth0", &mut out);
            if out.len() > n {
                break;
            }
        }
        assert_eq!(out.len(), n + 1, "then it fires");
        out.truncate(n);
        // The next day starts afresh.
        let next: Vec<Row> = (100..140).map(|s| row(today + 1, 23, s)).collect();
        w2.rows(today + 1, &next, &dir);
        w2.check(&dir, (today + 1) * 86_400 + 3600, "eth0", &mut out);
        assert_eq!(out.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
