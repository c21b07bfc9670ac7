//! Spikes: a port whose distinct sources today stand far above its usual level.
//!
//! The rule, shared by the report page (which marks the spiking trendlines) and the `spike`
//! event, so both always agree. For one series (protocol and port), with `history` the distinct
//! sources of each of the last SPIKE_HISTORY_DAYS days that have a day file (a day with a file
//! but no row for the series counts 0), and `today` today's distinct sources:
//!
//! - no verdict unless there are at least SPIKE_MIN_HISTORY such days;
//! - `median` and `mad` (median absolute deviation) of `history`; the spread is
//!   `max(1, 1.4826 × mad)` (1.4826 × MAD estimates the standard deviation of normal noise;
//!   at least one source, so a flat history does not make any wobble a spike);
//! - the threshold is the least whole count that is at least SPIKE_MIN_SOURCES, more than
//!   `median + SPIKE_MAD_FACTOR × spread`, and at least `SPIKE_RATIO × median`;
//! - a spike when `today` reaches the threshold.
//!
//! Distinct sources are counted exactly up to a bound (see [`DistinctSources`]); past it a
//! series' count stays at the bound, which is still far above any baseline that matters.

use crate::addr::Addr;
use crate::hash::{KeyedHash, KeyedState};
use crate::store::RowReader;
use crate::tables::Room;
use crate::tables::Row;
use std::collections::HashMap;
use std::io::{self, BufReader};
use std::path::Path;

/// The rule's settings (SPIKE_* keys; defaults in `policy`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpikeRule {
    /// Days with a file before today that form the baseline.
    pub history_days: u32,
    /// Fewest such days for a verdict.
    pub min_history: u32,
    /// Fewest distinct sources today for a spike.
    pub min_sources: u32,
    /// How many spreads above the median.
    pub mad_factor: f64,
    /// How many times the median at least.
    pub ratio: f64,
}

impl Default for SpikeRule {
    fn default() -> Self {
        use crate::policy;
        SpikeRule {
            history_days: policy::SPIKE_HISTORY_DAYS,
            min_history: policy::SPIKE_MIN_HISTORY,
            min_sources: policy::SPIKE_MIN_SOURCES,
            mad_factor: policy::SPIKE_MAD_FACTOR,
            ratio: policy::SPIKE_RATIO,
        }
    }
}

/// What the rule saw, for the event's details.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub median: f64,
    pub mad: f64,
    /// Least count that is a spike.
    pub threshold: u64,
    pub spike: bool,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl SpikeRule {
    /// The verdict on `today` against `history` (oldest first; order does not matter), or
    /// `None` when the history is too short to judge.
    pub fn judge(&self, history: &[u32], today: u64) -> Option<Verdict> {
        if history.len() < self.min_history.max(1) as usize {
            return None;
        }
        let mut v: Vec<f64> = history.iter().map(|&c| c as f64).collect();
        let m = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
        let mad = median(&mut dev);
        let spread = (1.4826 * mad).max(1.0);
        // Least whole count strictly above m + k·spread, at least ratio·m and the minimum.
        let above = (m + self.mad_factor * spread).floor() + 1.0;
        let ratio = (self.ratio * m).ceil();
        let threshold = above.max(ratio).max(self.min_sources.max(1) as f64);
        let threshold = if threshold >= u64::MAX as f64 {
            u64::MAX
        } else {
            threshold as u64
        };
        Some(Verdict {
            median: m,
            mad,
            threshold,
            spike: today >= threshold,
        })
    }

    /// The page's question: is the last of `counts` (one per day, oldest first) a spike over
    /// the days before it (the last `history_days` of them)?
    pub fn is_spike(&self, counts: &[u32]) -> bool {
        let Some((&last, before)) = counts.split_last() else {
            return false;
        };
        let from = before.len().saturating_sub(self.history_days as usize);
        self.judge(&before[from..], last as u64)
            .is_some_and(|v| v.spike)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.history_days == 0 || self.history_days > 3660 {
            return Err("SPIKE_HISTORY_DAYS must be from 1 to 3660".into());
        }
        if self.min_history == 0 || self.min_history > self.history_days {
            return Err("SPIKE_MIN_HISTORY must be from 1 to SPIKE_HISTORY_DAYS".into());
        }
        if !(self.mad_factor.is_finite() && self.mad_factor >= 0.0) {
            return Err("SPIKE_MAD_FACTOR must be a number of at least 0".into());
        }
        if !(self.ratio.is_finite() && self.ratio >= 0.0) {
            return Err("SPIKE_RATIO must be a number of at least 0".into());
        }
        Ok(())
    }
}

/// A series: protocol and port (`None` for protocols without ports).
pub type SeriesKey = (u8, Option<u16>);

/// Distinct sources per series over one day, exact up to `capacity` sources held in all
/// (a 64-bit keyed hash of each series and address); past it new sources are not told apart
/// and the counts stop growing, which is counted in `saturated`. The hashes sit in one
/// open-addressing table of twice `capacity` slots, allocated zeroed at the first source of
/// the day: its pages become resident as they fill (2 MiB at a time where huge pages back a
/// large one, as for the tables), and a full day never grows it (a growing
/// hash set would hold its old and its new table at once, one and a half times the final
/// size). A slot keeps the hash's top 32 bits, its low bits being the home slot: 4 bytes a
/// slot, 8 a source. Two sources are taken for one only when their tags match along a probe
/// of a few slots, once in about a billion new sources.
pub struct DistinctSources {
    hash: KeyedHash,
    /// Sources per series.
    series: HashMap<SeriesKey, u64, KeyedState>,
    /// The top half of a hash (never 0), or 0: a free slot.
    slots: Room<u32>,
    held: usize,
    capacity: usize,
    /// Sources that could not be added because the capacity was reached.
    pub saturated: u64,
}

impl DistinctSources {
    pub fn new(capacity: usize) -> DistinctSources {
        DistinctSources {
            hash: KeyedHash::random(),
            series: HashMap::with_hasher(KeyedState::random()),
            slots: Room::default(),
            held: 0,
            capacity,
            saturated: 0,
        }
    }

    /// Forgets the day, giving its table back.
    pub fn clear(&mut self) {
        self.series.clear();
        self.slots = Room::default();
        self.held = 0;
        self.saturated = 0;
    }

    #[inline]
    fn pair_hash(&self, key: SeriesKey, a: &Addr) -> u64 {
        let b = a.bytes();
        let hi = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let lo = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
        let series = (key.0 as u64) << 24 | key.1.map_or(0, |p| p as u64 + 1) << 1;
        self.hash.hash(&[hi, lo, series | a.is_v6() as u64])
    }

    pub fn add(&mut self, key: SeriesKey, src: &Addr) {
        let h = self.pair_hash(key, src);
        // 0 marks a free slot.
        let tag = ((h >> 32) as u32).max(1);
        if self.slots.is_empty() {
            // At most half full, so probes stay short.
            self.slots = Room::zeroed((self.capacity.max(1) * 2).next_power_of_two());
        }
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                0 => break,
                s if s == tag => return,
                _ => i = (i + 1) & mask,
            }
        }
        if self.held >= self.capacity {
            self.saturated += 1;
            return;
        }
        self.slots[i] = tag;
        self.held += 1;
        *self.series.entry(key).or_insert(0) += 1;
    }

    pub fn add_row(&mut self, r: &Row) {
        self.add((r.key.proto, r.key.port), &r.key.src);
    }

    pub fn count(&self, key: &SeriesKey) -> u64 {
        self.series.get(key).copied().unwrap_or(0)
    }

    /// Every series and its count.
    pub fn counts(&self) -> impl Iterator<Item = (SeriesKey, u64)> + '_ {
        self.series.iter().map(|(k, n)| (*k, *n))
    }

    /// Adds every row of a day file, streaming; rows that do not parse are skipped (counted in
    /// the return value). A missing file adds nothing.
    pub fn add_file(&mut self, path: &Path) -> io::Result<u64> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let mut reader = RowReader::new(BufReader::with_capacity(64 * 1024, f));
        let mut bad = 0;
        loop {
            match reader.next_row() {
                Ok(Some(Ok(r))) => self.add_row(&r),
                Ok(Some(Err(_))) => bad += 1,
                Ok(None) => break,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{}: line {}: {e}", path.display(), reader.line()),
                    ))
                }
            }
        }
        Ok(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(min: u32) -> SpikeRule {
        SpikeRule {
            min_sources: min,
            history_days: 9,
            min_history: 3,
            mad_factor: 3.0,
            ratio: 2.0,
        }
    }

    #[test]
    fn the_rule() {
        let r = rule(2);
        assert!(!r.is_spike(&[5, 5, 5, 6]));
        assert!(!r.is_spike(&[0, 0, 0, 1]));
        assert!(r.is_spike(&[0, 0, 0, 5]));
        assert!(!r.is_spike(&[0, 50]), "too little history");
        let v = r.judge(&[10, 12, 8, 10, 30], 40).unwrap();
        assert_eq!(v.median, 10.0);
        assert_eq!(v.mad, 2.0);
        // 10 + 3 × 2.9652 = 18.9 → 19, and at least 2 × 10 = 20.
        assert_eq!(v.threshold, 20);
        assert!(v.spike);
        assert!(!r.judge(&[10, 12, 8, 10, 30], 19).unwrap().spike);
        // The minimum count rules a flat, quiet port.
        assert_eq!(rule(10).judge(&[0, 0, 0], 9).unwrap().threshold, 10);
        // Only the last history_days count.
        let short = SpikeRule {
            history_days: 3,
            ..rule(2)
        };
        assert!(short.is_spike(&[100, 100, 100, 0, 0, 0, 5]));
        assert!(!rule(2).is_spike(&[100, 100, 100, 100, 100, 0, 0, 0, 5]));
    }

    #[test]
    fn distinct_sources_are_bounded() {
        let mut d = DistinctSources::new(100);
        for i in 0..300u32 {
            let b = i.to_be_bytes();
            d.add((6, Some(23)), &Addr::v4([10, b[1], b[2], b[3]]));
            d.add((6, Some(23)), &Addr::v4([10, b[1], b[2], b[3]]));
        }
        assert_eq!(d.count(&(6, Some(23))), 100);
        assert_eq!(d.saturated, 400);
        d.clear();
        d.add((17, Some(53)), &Addr::v4([1, 2, 3, 4]));
        d.add((17, Some(53)), &Addr::v4([1, 2, 3, 4]));
        assert_eq!(d.count(&(17, Some(53))), 1);
        // The same source in another series counts there too.
        d.add((6, Some(22)), &Addr::v4([1, 2, 3, 4]));
        assert_eq!(d.count(&(6, Some(22))), 1);
        assert_eq!(d.count(&(6, Some(80))), 0);
        let mut all: Vec<_> = d.counts().collect();
        all.sort_unstable();
        assert_eq!(all, vec![((6, Some(22)), 1), ((17, Some(53)), 1)]);
    }

    /// Slots hold 32-bit tags, not whole hashes: a full table still tells every source apart
    /// (a false match is about one in ten thousand runs of this test) in 8 bytes a source.
    #[test]
    fn a_full_day_of_sources_is_counted_exactly_in_8_bytes_each() {
        let cap = 1 << 18;
        let mut d = DistinctSources::new(cap);
        let series = [(6, Some(22)), (6, Some(23)), (17, Some(53)), (1, None)];
        for round in 0..2 {
            for i in 0..cap as u32 {
                let b = i.to_be_bytes();
                let s = series[i as usize % series.len()];
                d.add(s, &Addr::v4([b[0] ^ 100, b[1], b[2], b[3]]));
            }
            let total: u64 = d.counts().map(|(_, n)| n).sum();
            assert_eq!((total, d.saturated), (cap as u64, 0), "round {round}");
        }
        assert_eq!(d.count(&(1, None)), cap as u64 / 4);
        d.add((6, Some(22)), &Addr::v4([1, 1, 1, 1]));
        assert_eq!(d.saturated, 1);
        assert_eq!(std::mem::size_of_val(&d.slots[..]), 8 * cap);
    }
}
