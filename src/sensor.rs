//! The sensor: owns all counting state and drives each frame through decode → classify →
//! tables, and the tables into the daily files when the clock says so. One thread owns it;
//! nothing here takes a lock. The clock is the packet timestamp in replay and the wall clock
//! live, so every timed rule behaves the same in both.

use crate::addr::NetSet;
use crate::alerts::Alerts;
use crate::classify::{could_count, Classifier, FlowStats, Rules, Verdict};
use crate::config::Settings;
use crate::decode::{self, Packet, Skip};
use crate::detect::flowbuild::Place;
use crate::policy::MAX_TIMESTAMP;
use crate::report::LiveSummary;
use crate::source::Frame;
use crate::store::snapshot::{self, ReplayPosition, State};
use crate::store::DayFiles;
use crate::tables::{day_of, AttemptTable, Key, Located, Row, RowOrder};
use std::io;
use std::path::PathBuf;

/// What the sensor has seen, for the summary line and the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub packets: u64,
    pub attempts: u64,
    /// Frames whose headers are cut short or contradict themselves.
    pub malformed: u64,
    /// Frames that are not IP (ARP, LLDP …).
    pub not_ip: u64,
    pub fragments: u64,
    /// More VLAN tags or IPv6 extension headers than we walk.
    pub too_deep: u64,
    pub ignored: u64,
    /// Frames with a timestamp no day file can hold.
    pub bad_time: u64,
    /// Rows in the day files after the last flush of each day touched.
    pub rows: u64,
    pub flushes: u64,
    /// Flushes forced by a full table rather than the clock.
    pub early_flushes: u64,
    pub flush_errors: u64,
    /// Attempts that could not be kept: the table was full and its flush had just failed.
    pub lost: u64,
}

/// Why the rows held in memory are written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// WRITE_PERIOD is up.
    Period,
    /// The table is full before the period is up.
    Full,
    /// A new UTC day began: the finished day is written in full.
    DayEnd,
    /// The sensor stops (signal, end of replay): every day is written in full.
    Stop,
}

pub struct Sensor {
    classifier: Classifier,
    table: AttemptTable,
    files: DayFiles,
    order: RowOrder,
    write_period: i64,
    /// Latest second seen, and the day it falls in.
    now: Option<i64>,
    next_flush: i64,
    /// After a failed flush, no new attempt before this second.
    retry_at: i64,
    /// Rows in each day file touched, last known.
    rows_per_day: std::collections::BTreeMap<i64, u64>,
    pub stats: Stats,
    state_file: Option<PathBuf>,
    /// Frames handled in full since the start of a replay's input (0 live).
    position: u64,
    /// A replay's input files, for its position in the snapshot.
    replay_inputs: Option<Vec<(String, u64)>>,
    /// Bytes of snapshots written.
    pub snapshot_bytes: u64,
    pub alerts: Option<Alerts>,
    /// Seconds the last flush took, for the metrics.
    pub last_flush_seconds: f64,
    /// Frames decoded and waiting to be counted (see `frame`), oldest at `ahead_head`.
    ahead: [Ahead; LOOKAHEAD],
    ahead_head: usize,
    ahead_len: usize,
    /// The newest frame waiting: its second, and the connections under way of that second
    /// that came after it. Kept here rather than in its slot, for a frame that trails it (most
    /// frames of a busy link) then costs a compare and an add; moved into the slot when
    /// another frame is held or it is counted.
    tail_ts: i64,
    tail_trailing: u64,
}

/// Frames decoded ahead of the one being counted. Eight cover the latency of a miss to
/// memory with the work of the frames between; more only hold frames back longer.
const LOOKAHEAD: usize = 8;

/// A frame decoded and waiting, with the table slots asked for on its behalf.
#[derive(Clone, Copy)]
struct Ahead {
    ts: i64,
    ts_us: u32,
    decoded: Result<(), Skip>,
    p: Packet,
    /// Its flow's hash, when it goes through the flow table.
    flow_hash: Option<u64>,
    /// Its row's place, when it could be an attempt.
    attempt: Option<Located>,
    /// Its place in the flow builder, when that runs.
    built: Place,
    /// Connections under way of its second that came next, counted with it (see `frame`);
    /// for the newest frame, `Sensor::tail_trailing` until another is held.
    trailing: u64,
}

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead {
            ts: 0,
            ts_us: 0,
            decoded: Ok(()),
            p: Packet::default(),
            flow_hash: None,
            attempt: None,
            built: Place::NONE,
            trailing: 0,
        }
    }
}

impl Sensor {
    pub fn new(settings: &Settings, local: NetSet) -> io::Result<Sensor> {
        let rules = Rules::from_settings(settings, local);
        Ok(Sensor {
            classifier: Classifier::new(rules, settings.flow_capacity),
            table: AttemptTable::new(settings.table_capacity),
            files: DayFiles::open(&settings.log_directory, settings.table_capacity)?,
            order: RowOrder::new(),
            write_period: settings.write_period.max(1) as i64,
            now: None,
            next_flush: i64::MAX,
            retry_at: i64::MIN,
            rows_per_day: Default::default(),
            stats: Stats::default(),
            state_file: None,
            position: 0,
            replay_inputs: None,
            snapshot_bytes: 0,
            alerts: None,
            last_flush_seconds: 0.0,
            ahead: [Ahead::default(); LOOKAHEAD],
            ahead_head: 0,
            ahead_len: 0,
            tail_ts: 0,
            tail_trailing: 0,
        })
    }

    /// Takes the memory of the attempt table and of the classifier's flow table now, for a
    /// sensor that runs for days (see `AttemptTable::commit`). The flow table used to come on
    /// first use, to spare a router its size under a flood of SYNs alone; but any link carries
    /// UDP, the table's pages stay once touched, and zeroing them in the middle of traffic
    /// was a tenth of a fresh sensor's capture CPU.
    pub fn commit_memory(&mut self) {
        if !(self.table.commit() & self.classifier.commit()) {
            log::debug!(
                "the kernel cannot populate memory ahead: the tables' pages come on first use"
            );
        }
    }

    /// Keeps a snapshot in `path` at every flush.
    pub fn keep_state(&mut self, path: PathBuf) {
        self.state_file = Some(path);
    }

    /// Marks this sensor as replaying `inputs` (path and size), from frame `position` on.
    pub fn replaying(&mut self, inputs: Vec<(String, u64)>, position: u64) {
        self.replay_inputs = Some(inputs);
        self.position = position;
    }

    /// What the snapshot holds.
    pub fn state(&self) -> State {
        let now = self.now.unwrap_or(0);
        State {
            now,
            next_flush: self.next_flush,
            stats: self.stats,
            flows: self.classifier.export_flows(now),
            replay: self.replay_inputs.as_ref().map(|inputs| ReplayPosition {
                inputs: inputs.clone(),
                frames: self.position,
            }),
            detectors: self.alerts.as_ref().map(Alerts::export),
        }
    }

    /// Goes on from a snapshot: the flows, the clock and (live) the counters.
    pub fn restore(&mut self, state: &State, counters: bool) {
        self.classifier.import_flows(&state.flows);
        self.now = Some(state.now);
        self.next_flush = state.next_flush;
        if let (Some(a), Some(d)) = (self.alerts.as_mut(), state.detectors.as_ref()) {
            a.import(d);
        }
        if counters {
            self.stats = state.stats;
        }
    }

    fn save_state(&mut self) -> bool {
        let Some(path) = self.state_file.clone() else {
            return true;
        };
        // As `state()`, with the flows and fingerprints serialised in place, not copied out.
        let now = self.now.unwrap_or(0);
        let state = snapshot::StateRef {
            now,
            next_flush: self.next_flush,
            stats: &self.stats,
            flows: self.classifier.flows_view(now),
            replay: self.replay_inputs.as_ref().map(|inputs| ReplayPosition {
                inputs: inputs.clone(),
                frames: self.position,
            }),
            detectors: self.alerts.as_ref().map(Alerts::export_ref),
        };
        match snapshot::save(&path, &state) {
            Ok(n) => {
                self.snapshot_bytes += n;
                true
            }
            Err(e) => {
                log::error!("snapshot: {e}");
                false
            }
        }
    }

    pub fn files(&self) -> &DayFiles {
        &self.files
    }

    pub fn flow_stats(&self) -> FlowStats {
        self.classifier.flow_stats()
    }

    /// Checks the file of the day `now` falls in before counting into it.
    pub fn prepare_day(&mut self, now: i64) -> io::Result<Option<u64>> {
        let rows = self.files.prepare(day_of(now))?;
        if let Some(n) = rows {
            self.rows_per_day.insert(day_of(now), n);
        }
        Ok(rows)
    }

    /// One frame, at second `frame.ts`. It is decoded now and counted once `LOOKAHEAD` more
    /// have arrived, or at `drain`: the table slots it will touch are requested from memory
    /// meanwhile, so the cache misses of several frames overlap instead of adding up.
    ///
    /// A connection under way (`Skip::UnderWay`) of the same second as the frame before it
    /// takes no slot: it is counted with that frame, for all it does is move the clock, and
    /// that frame moves it as far. Most frames of a replay are such segments.
    ///
    /// Inlined into the loop of the source, so that those segments cost no call: most are told
    /// at a glance (`decode::plainly_under_way`), the rest by the probe. The rest of the work is
    /// `hold`.
    #[inline(always)]
    pub fn frame(&mut self, frame: &Frame<'_>) {
        self.take::<true>(frame);
    }

    /// As `frame`, for a source whose kernel filter has dropped every plain connection under
    /// way (`Capture::drops_under_way`): the glance would never say yes, and would cost each
    /// frame that does count.
    #[inline(always)]
    pub fn frame_filtered(&mut self, frame: &Frame<'_>) {
        self.take::<false>(frame);
    }

    #[inline(always)]
    fn take<const GLANCE: bool>(&mut self, frame: &Frame<'_>) {
        if GLANCE && decode::plainly_under_way(frame) && self.trail(frame.ts) {
            return;
        }
        // A copy for the probe, made here: lent the source's own, the compiler writes every
        // frame out to memory before the glance, for the few that get this far.
        let copy = *frame;
        let slot = (self.ahead_head + self.ahead_len) % LOOKAHEAD;
        let decoded = decode::probe_into(&copy, &mut self.ahead[slot].p);
        if decoded == Err(Skip::UnderWay) && self.trail(frame.ts) {
            return;
        }
        self.hold(slot, decoded, frame.ts, frame.ts_us);
    }

    /// Counts a connection under way at second `ts` with the frame waiting before it, if that
    /// one is of the same second.
    #[inline(always)]
    fn trail(&mut self, ts: i64) -> bool {
        if self.ahead_len == 0 || self.tail_ts != ts {
            return false;
        }
        self.tail_trailing += 1;
        true
    }

    /// Puts the frame just decoded into `slot` in the line of frames waiting, asks for the
    /// table slots it will touch, and counts the oldest frame once the line is full. Out of
    /// line: inlined too, it made `frame` too large for the source's loop to take in.
    #[inline(never)]
    fn hold(&mut self, slot: usize, decoded: Result<(), Skip>, ts: i64, ts_us: u32) {
        // The frame before this one is no longer the newest (with none waiting, the slot
        // before is free and its count 0: `drain` took it).
        self.ahead[(slot + LOOKAHEAD - 1) % LOOKAHEAD].trailing = self.tail_trailing;
        (self.tail_ts, self.tail_trailing) = (ts, 0);
        let a = &mut self.ahead[slot];
        a.ts = ts;
        a.ts_us = ts_us;
        a.decoded = decoded;
        a.trailing = 0;
        a.flow_hash = None;
        a.attempt = None;
        if decoded.is_ok() {
            let p = &a.p;
            a.flow_hash = self.classifier.prefetch(p);
            if could_count(p) {
                a.attempt = Some(self.table.locate(&Classifier::key(p), ts));
            }
            // Never set when the builder does not run: it stays `Place::NONE`, and the frame is
            // not built.
            if let Some(at) = self.alerts.as_ref().and_then(|al| al.locate_flow(p)) {
                a.built = at;
            }
        }
        self.ahead_len += 1;
        // The records of a frame half-way along: their index slots and tags have arrived.
        let mid = &self.ahead[(self.ahead_head + self.ahead_len / 2) % LOOKAHEAD];
        if let Some(h) = mid.flow_hash {
            self.classifier.prefetch_flow(h);
        }
        if mid.built.is_some() {
            if let Some(al) = self.alerts.as_ref() {
                al.prefetch_flow_slot(mid.built);
            }
        }
        if self.ahead_len == LOOKAHEAD {
            self.next();
        }
    }

    /// Counts every frame still waiting (end of input, a quiet link, before a flush).
    pub fn drain(&mut self) {
        if self.ahead_len > 0 {
            let newest = (self.ahead_head + self.ahead_len - 1) % LOOKAHEAD;
            self.ahead[newest].trailing = std::mem::take(&mut self.tail_trailing);
        }
        while self.ahead_len > 0 {
            self.next();
        }
    }

    /// Counts the oldest frame waiting.
    #[inline]
    fn next(&mut self) {
        let i = self.ahead_head;
        self.ahead_head = (i + 1) % LOOKAHEAD;
        self.ahead_len -= 1;
        self.count_frame(i);
    }

    /// Counts the frame waiting in slot `i` and the connections under way that trail it, read
    /// in place (the slot is not reused before this returns).
    #[inline]
    fn count_frame(&mut self, i: usize) {
        let frames = 1 + self.ahead[i].trailing;
        self.stats.packets += frames;
        let (ts, decoded) = (self.ahead[i].ts, self.ahead[i].decoded);
        if !(0..=MAX_TIMESTAMP).contains(&ts) {
            // The trailing frames share the second.
            self.stats.bad_time += frames;
            self.position += frames;
            return;
        }
        self.tick(ts);
        if let Err(skip) = decoded {
            match skip {
                Skip::NotIp => self.stats.not_ip += 1,
                Skip::Fragment => self.stats.fragments += 1,
                Skip::TooDeep => self.stats.too_deep += 1,
                Skip::Malformed(_) => self.stats.malformed += 1,
                // After the clock, which every frame moves.
                Skip::UnderWay => {}
            }
            self.position += frames;
            return;
        }
        let a = &self.ahead[i];
        let p = &a.p;
        let mut attempt = None;
        let (inbound, ignored) = match self.classifier.classify(p, ts, a.flow_hash) {
            Verdict::Attempt(key) => {
                let at = a.attempt.unwrap_or_else(|| self.table.locate(&key, ts));
                attempt = Some((key, at));
                (true, false)
            }
            Verdict::Ignored => {
                self.stats.ignored += 1;
                (false, true)
            }
            Verdict::Pass { inbound } => (inbound, false),
        };
        if let Some(al) = self.alerts.as_mut() {
            if inbound && p.proto == crate::proto::TCP {
                al.inbound_tcp(p, ts, a.ts_us);
            }
            // Flows in and out of our networks, for net-security's sensors.
            let outbound = || {
                let local = &self.classifier.rules().local;
                !ignored && local.contains(&p.src) && !local.contains(&p.dst)
            };
            // A place is found for the frames of flows a flow sensor could count.
            if a.built.is_some() && (inbound || outbound()) {
                al.flow_packet(p, !inbound, ts, a.built);
            }
        }
        // Counted last: the detectors' work above hides what is left of the table's miss.
        if let Some((key, at)) = attempt {
            self.count(&key, ts, at);
        }
        self.position += frames;
    }

    /// Frames handled in full (see `replaying`).
    pub fn position(&self) -> u64 {
        self.position
    }

    #[inline]
    fn count(&mut self, key: &Key, ts: i64, at: Located) {
        self.stats.attempts += 1;
        if self.table.add(key, ts, at).is_ok() {
            return;
        }
        self.count_full(&Row {
            key: *key,
            first: ts,
            last: ts,
            count: 1,
        });
    }

    /// The table is full: merge what we hold into the files and start again, unless that
    /// just failed.
    fn count_full(&mut self, row: &Row) {
        // The sensor's clock, not the row's: a flow record may tell of an earlier time.
        if self.now.unwrap_or(row.first) >= self.retry_at {
            self.stats.early_flushes += 1;
            self.flush_held(Flush::Full);
            if self.table.merge(row).is_ok() {
                return;
            }
        }
        self.stats.lost += row.count;
    }

    /// `count` attempts under `key` seen from `first` to `last` (Unix seconds), all at once:
    /// what a flow record stands for. They count on the day of `first`; a `last` past that
    /// day's end is kept to it, so a row never claims a time outside its file's day.
    pub fn attempts(&mut self, key: &Key, first: i64, last: i64, count: u64) {
        if count == 0 {
            return;
        }
        if !(0..=MAX_TIMESTAMP).contains(&first) {
            self.stats.bad_time += 1;
            return;
        }
        let day_end = (day_of(first) + 1) * 86_400 - 1;
        let row = Row {
            key: *key,
            first,
            last: last.clamp(first, day_end),
            count,
        };
        self.stats.attempts += count;
        if self.table.merge(&row).is_err() {
            self.count_full(&row);
        }
    }

    /// Moves the clock to `now`, after counting the frames still waiting: flushes when the
    /// write period is up or the day changed.
    pub fn advance(&mut self, now: i64) {
        self.drain();
        self.tick(now);
    }

    /// `advance` from within the count of a frame, whose followers must wait their turn.
    #[inline(always)]
    fn tick(&mut self, now: i64) {
        // Most frames fall in a second already seen.
        if !matches!(self.now, Some(prev) if now <= prev) {
            self.new_second(now);
        }
    }

    /// The clock reaches second `now` (or starts there): the detectors' timers, and a flush
    /// at the end of a day or a period. Out of line: the flush it may call is large.
    #[inline(never)]
    fn new_second(&mut self, now: i64) {
        match self.now {
            Some(prev) if now <= prev => {}
            Some(prev) => {
                self.now = Some(now);
                if let Some(a) = self.alerts.as_mut() {
                    a.tick(now);
                }
                if day_of(now) != day_of(prev) {
                    self.flush_held(Flush::DayEnd);
                } else if now >= self.next_flush {
                    self.flush_held(Flush::Period);
                }
            }
            None => {
                self.now = Some(now);
                self.next_flush = now.saturating_add(self.write_period);
            }
        }
    }

    /// Writes every row held into its day's file. A period's rows are appended to a day that
    /// goes on; a finished day, and every day when the sensor stops, is compacted to one row
    /// per key. On failure the rows stay in memory for the next try, and new attempts wait
    /// until then rather than retrying the disk per packet.
    pub fn flush(&mut self, why: Flush) -> bool {
        self.drain();
        self.flush_held(why)
    }

    /// `flush` of what the table holds, leaving frames that wait for their count waiting.
    fn flush_held(&mut self, why: Flush) -> bool {
        let t = std::time::Instant::now();
        let ok = self.flush_timed(why);
        self.last_flush_seconds = t.elapsed().as_secs_f64();
        ok
    }

    /// Today as it is now, for the report: the counters and, `with_rows`, the rows not yet in
    /// the files. The rows are a copy of the table, so they are taken once a second at most,
    /// and only when someone looks at today's rows rather than the counters.
    pub fn live_summary(&self, started: i64, interface: &str, with_rows: bool) -> LiveSummary {
        let rows = match with_rows {
            true => self.table.rows().to_vec(),
            false => Vec::new(),
        };
        let mut l = LiveSummary {
            at: self.now.unwrap_or(0),
            started,
            rows,
            counters_only: !with_rows,
            stats: self.stats,
            table_rows: self.table.len(),
            table_capacity: self.table.capacity(),
            flows: self.flow_stats(),
            bytes_written: self.files.bytes_written + self.snapshot_bytes,
            last_flush_seconds: self.last_flush_seconds,
            capture_drops: None,
            interface: interface.into(),
            alerts: self
                .alerts
                .as_ref()
                .map(|a| (a.stats(), a.sink_counters().figures())),
            ..Default::default()
        };
        l.tools = self
            .alerts
            .as_ref()
            .map(Alerts::tool_labels)
            .unwrap_or_default();
        // Lets the report tell rows a later flush has written from rows still only here.
        l.stamp_files(self.files.dir());
        l
    }

    fn flush_timed(&mut self, why: Flush) -> bool {
        let now = self.now.unwrap_or(0);
        let today = day_of(now);
        let finished = |day: i64| why == Flush::Stop || day < today;
        self.next_flush = now.saturating_add(self.write_period);
        if why == Flush::Stop {
            if let Some(a) = self.alerts.as_mut() {
                a.drain_flows(now);
            }
        }
        let mut ok = true;
        if !self.table.is_empty() {
            self.stats.flushes += 1;
            let mut rows = self.table.take_sorted(&self.order);
            // Rows of days whose write failed are moved to the front of the buffer, to go
            // back into the table with it.
            let mut kept = 0;
            let mut start = 0;
            while start < rows.len() {
                let day = rows[start].day();
                let end = start + rows[start..].partition_point(|r| r.day() == day);
                if let Some(a) = self.alerts.as_mut() {
                    a.spike_rows(day, &rows[start..end], self.files.dir());
                }
                match self.files.write(day, &rows[start..end], finished(day)) {
                    Ok(Some(n)) => {
                        self.rows_per_day.insert(day, n);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        ok = false;
                        self.stats.flush_errors += 1;
                        log::error!("flush failed, keeping {} rows in memory: {e}", end - start);
                        rows.copy_within(start..end, kept);
                        kept += end - start;
                    }
                }
                start = end;
            }
            rows.truncate(kept);
            self.table.recycle(rows);
        }
        if why == Flush::Stop || why == Flush::DayEnd {
            match self.files.compact_days(finished) {
                Ok(done) => self.rows_per_day.extend(done),
                Err(e) => {
                    ok = false;
                    self.stats.flush_errors += 1;
                    log::error!("compacting a finished day failed (its file stays complete): {e}");
                }
            }
        }
        self.stats.rows = self.rows_per_day.values().sum();
        if let Some(a) = self.alerts.as_mut() {
            a.check_spikes(self.files.dir(), now);
        }
        // After the CSV: a snapshot that claims more than the files hold would lose attempts.
        if ok {
            ok = self.save_state();
        }
        crate::heap::give_back();
        self.retry_at = if ok {
            i64::MIN
        } else {
            // Give the disk a write period (a minute at most) before the next early flush.
            now + self.write_period.min(60)
        };
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Link;

    /// An Ethernet frame of IPv4 TCP from 203.0.113.`src` to 198.51.100.10:80 with `flags`.
    fn tcp_frame(src: u8, flags: u8) -> Vec<u8> {
        let mut b = vec![0u8; 12];
        b.extend_from_slice(&[0x08, 0x00]);
        b.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 203, 0, 113, src, 198, 51, 100, 10,
        ]);
        b.extend_from_slice(&[
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0x04, 0, 0, 0, 0, 0,
        ]);
        b
    }

    impl Sensor {
        /// Frames taken but not yet counted: those in slots and those trailing them.
        fn waiting(&self) -> u64 {
            let older = self.ahead_len.saturating_sub(1);
            let slots: u64 = (0..older)
                .map(|k| 1 + self.ahead[(self.ahead_head + k) % LOOKAHEAD].trailing)
                .sum();
            slots + (self.ahead_len > 0) as u64 * (1 + self.tail_trailing)
        }
    }

    /// Every frame is either counted (in `position` and `packets`) or waiting, whatever runs of
    /// ACK segments, seconds and days it comes in: a snapshot's position never claims a frame
    /// whose effects it lacks, and none is counted twice.
    #[test]
    fn each_frame_is_counted_once_whether_alone_or_trailing() {
        let dir = std::env::temp_dir().join(format!("tsusen-sensor-{}", std::process::id()));
        let settings = Settings {
            log_directory: dir.clone(),
            write_period: 3,
            ..Default::default()
        };
        let local = NetSet::new(vec!["198.51.100.0/24".parse().unwrap()]);
        let mut sensor = Sensor::new(&settings, local).unwrap();
        let midnight = 1_710_028_800;
        let (syn, ack) = (tcp_frame(7, 0x02), tcp_frame(7, 0x10));
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut fed = 0u64;
        let mut trailed = false;
        for i in 0..5000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of a second, now and then a step back in time.
            let ts = midnight - 30 + i / 80 - x.is_multiple_of(23) as i64;
            let data = if x.is_multiple_of(5) { &syn } else { &ack };
            sensor.frame(&Frame {
                ts,
                ts_us: 0,
                link: Link::Ethernet,
                data,
                outgoing: false,
            });
            fed += 1;
            trailed |= sensor.tail_trailing > 0;
            assert_eq!(sensor.position() + sensor.waiting(), fed, "frame {i}");
            assert_eq!(sensor.stats.packets, sensor.position(), "frame {i}");
        }
        assert!(trailed, "no ACK segment trailed a frame");
        sensor.drain();
        assert_eq!((sensor.position(), sensor.stats.packets), (fed, fed));
        assert!(sensor.stats.attempts > 900);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
