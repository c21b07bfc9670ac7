//! The daily files `LOG_DIRECTORY/YYYY-MM-DD.csv`. Each flush merges the rows held in memory
//! into the day's file in one streaming pass (the file may be far larger than memory), writing
//! a temporary file that is synced and renamed over the old one, so a reader or a power cut
//! sees the old file or the new one, never half of either.

use super::csv::{RowReader, RowWriter};
use crate::tables::{Key, Row, RowOrder};
use chrono::NaiveDate;
use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAY: i64 = 719_163;
/// Unreadable lines reported per file before we only count them.
const BAD_ROW_REPORTS: u64 = 10;
const WRITE_BUFFER: usize = 256 * 1024;

pub fn date_of_day(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(day + UNIX_EPOCH_CE_DAY).ok()?)
}

pub fn day_of_date(date: NaiveDate) -> i64 {
    use chrono::Datelike;
    date.num_days_from_ce() as i64 - UNIX_EPOCH_CE_DAY
}

/// The existing file is not in our row order (the original tsusen wrote rows in any order),
/// or repeats a key.
struct NotSorted;

pub struct DayFiles {
    dir: PathBuf,
    order: RowOrder,
    /// Rows per in-memory run when a file must be sorted from scratch.
    sort_chunk: usize,
    /// Bytes written to disk by us, for the wear accounting.
    pub bytes_written: u64,
    /// Lines of existing files that could not be read as rows (reported and passed over).
    pub bad_rows: u64,
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl DayFiles {
    /// Opens (creating) the log directory and clears temporary files a power cut left behind.
    pub fn open(dir: &Path, sort_chunk: usize) -> io::Result<DayFiles> {
        fs::create_dir_all(dir).map_err(|e| context(dir, e))?;
        for entry in fs::read_dir(dir).map_err(|e| context(dir, e))? {
            let entry = entry.map_err(|e| context(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") && name.contains(".csv") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(DayFiles {
            dir: dir.to_owned(),
            order: RowOrder::new(),
            sort_chunk: sort_chunk.max(1024),
            bytes_written: 0,
            bad_rows: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, day: i64) -> PathBuf {
        match date_of_day(day) {
            Some(d) => self.dir.join(format!("{}.csv", d.format("%Y-%m-%d"))),
            None => self.dir.join(format!("day-{day}.csv")),
        }
    }

    fn temp_path(&self, day: i64, what: &str) -> PathBuf {
        let name = self.path(day);
        let name = name.file_name().map(|n| n.to_string_lossy().into_owned());
        self.dir
            .join(format!(".{}.{what}.tmp", name.unwrap_or_default()))
    }

    /// Merges `rows` (one day's, in file order) into the day's file; returns the rows the file
    /// now holds.
    pub fn merge(&mut self, day: i64, rows: &[Row]) -> io::Result<u64> {
        match self.try_merge(day, rows)? {
            Ok(n) => Ok(n),
            Err(NotSorted) => {
                let path = self.path(day);
                log::info!(
                    "{}: rows not in tsusen's order (an older writer?): sorting the file once",
                    path.display()
                );
                self.normalize(day)?;
                match self.try_merge(day, rows)? {
                    Ok(n) => Ok(n),
                    Err(NotSorted) => Err(io::Error::other(format!(
                        "{}: still unsorted after sorting",
                        path.display()
                    ))),
                }
            }
        }
    }

    fn try_merge(&mut self, day: i64, rows: &[Row]) -> io::Result<Result<u64, NotSorted>> {
        let path = self.path(day);
        let mut existing = match File::open(&path) {
            Ok(f) => Some(RowReader::new(BufReader::with_capacity(WRITE_BUFFER, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(context(&path, e)),
        };
        let tmp = self.temp_path(day, "merge");
        let mut out = self.create(&tmp)?;
        let mut written = 0u64;
        let mut bad = 0u64;
        let mut prev: Option<Key> = None;
        let order = &self.order;
        let mut next_existing =
            |prev: &mut Option<Key>, bad: &mut u64| -> io::Result<Result<Option<Row>, NotSorted>> {
                let Some(r) = existing.as_mut() else {
                    return Ok(Ok(None));
                };
                loop {
                    match r.next_row().map_err(|e| context(&path, e))? {
                        None => return Ok(Ok(None)),
                        Some(Err(badrow)) => {
                            *bad += 1;
                            if *bad <= BAD_ROW_REPORTS {
                                log::warn!(
                                    "{}:{}: passed over: {}",
                                    path.display(),
                                    badrow.line,
                                    badrow.why
                                );
                            }
                        }
                        Some(Ok(row)) => {
                            if let Some(p) = prev {
                                if order.keys(p, &row.key) != Ordering::Less {
                                    return Ok(Err(NotSorted));
                                }
                            }
                            *prev = Some(row.key);
                            return Ok(Ok(Some(row)));
                        }
                    }
                }
            };
        let mut file_row = match next_existing(&mut prev, &mut bad)? {
            Ok(r) => r,
            Err(NotSorted) => return Ok(Err(NotSorted)),
        };
        let mut mem = rows.iter().peekable();
        let result = loop {
            let next = match (file_row, mem.peek()) {
                (None, None) => break Ok(()),
                (Some(f), None) => {
                    file_row = None;
                    f
                }
                (None, Some(&&m)) => {
                    mem.next();
                    m
                }
                (Some(f), Some(&&m)) => match order.keys(&f.key, &m.key) {
                    Ordering::Less => {
                        file_row = None;
                        f
                    }
                    Ordering::Greater => {
                        mem.next();
                        m
                    }
                    Ordering::Equal => {
                        mem.next();
                        file_row = None;
                        let mut merged = f;
                        merged.merge(&m);
                        merged
                    }
                },
            };
            if let Err(e) = out.row(&next) {
                break Err(context(&tmp, e));
            }
            written += 1;
            if file_row.is_none() {
                match next_existing(&mut prev, &mut bad) {
                    Ok(Ok(r)) => file_row = r,
                    Ok(Err(NotSorted)) => {
                        drop(out);
                        let _ = fs::remove_file(&tmp);
                        return Ok(Err(NotSorted));
                    }
                    Err(e) => break Err(e),
                }
            }
        };
        if bad > BAD_ROW_REPORTS {
            log::warn!("{}: {bad} lines passed over in all", path.display());
        }
        self.bad_rows += bad;
        match result.and_then(|()| self.commit(out, &tmp, &path)) {
            Ok(()) => Ok(Ok(written)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Rewrites a day's file in our order with one row per key, whatever order it was in and
    /// however large: sorted runs of `sort_chunk` rows, then one k-way merge.
    pub fn normalize(&mut self, day: i64) -> io::Result<u64> {
        let path = self.path(day);
        let file = File::open(&path).map_err(|e| context(&path, e))?;
        let mut reader = RowReader::new(BufReader::with_capacity(WRITE_BUFFER, file));
        let mut chunk: Vec<Row> = Vec::new();
        let mut runs: Vec<PathBuf> = Vec::new();
        let mut bad = 0u64;
        let result = (|| -> io::Result<u64> {
            loop {
                let next = reader.next_row().map_err(|e| context(&path, e))?;
                match next {
                    Some(Ok(row)) => {
                        chunk.push(row);
                        if chunk.len() >= self.sort_chunk {
                            let run = self.temp_path(day, &format!("run{}", runs.len()));
                            runs.push(run.clone());
                            self.write_sorted_chunk(&mut chunk, &run)?;
                        }
                    }
                    Some(Err(b)) => {
                        bad += 1;
                        if bad <= BAD_ROW_REPORTS {
                            log::warn!("{}:{}: passed over: {}", path.display(), b.line, b.why);
                        }
                    }
                    None => break,
                }
            }
            let tmp = self.temp_path(day, "sort");
            if runs.is_empty() {
                let n = self.write_sorted_chunk(&mut chunk, &tmp)?;
                self.rename_synced(&tmp, &path)?;
                return Ok(n);
            }
            if !chunk.is_empty() {
                let run = self.temp_path(day, &format!("run{}", runs.len()));
                runs.push(run.clone());
                self.write_sorted_chunk(&mut chunk, &run)?;
            }
            let n = self.merge_runs(&runs, &tmp)?;
            self.rename_synced(&tmp, &path)?;
            Ok(n)
        })();
        for run in &runs {
            let _ = fs::remove_file(run);
        }
        self.bad_rows += bad;
        result
    }

    /// Sorts rows, folds repeated keys, writes them to `to` (synced), empties `chunk`.
    fn write_sorted_chunk(&mut self, chunk: &mut Vec<Row>, to: &Path) -> io::Result<u64> {
        let order = &self.order;
        chunk.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
        let mut out = self.create(to)?;
        let mut n = 0;
        let mut i = 0;
        while i < chunk.len() {
            let mut r = chunk[i];
            i += 1;
            while i < chunk.len() && chunk[i].key == r.key {
                r.merge(&chunk[i]);
                i += 1;
            }
            out.row(&r).map_err(|e| context(to, e))?;
            n += 1;
        }
        chunk.clear();
        self.finish(out, to)?;
        Ok(n)
    }

    fn merge_runs(&mut self, runs: &[PathBuf], to: &Path) -> io::Result<u64> {
        let mut readers = Vec::with_capacity(runs.len());
        let mut heads: Vec<Option<Row>> = Vec::with_capacity(runs.len());
        for run in runs {
            let f = File::open(run).map_err(|e| context(run, e))?;
            let mut r = RowReader::new(BufReader::new(f));
            heads.push(next_good(&mut r).map_err(|e| context(run, e))?);
            readers.push(r);
        }
        let mut out = self.create(to)?;
        let mut n = 0;
        loop {
            let mut best: Option<usize> = None;
            for (i, h) in heads.iter().enumerate() {
                if let Some(h) = h {
                    let better = match best.and_then(|b| heads[b].as_ref()) {
                        None => true,
                        Some(b) => self.order.keys(&h.key, &b.key) == Ordering::Less,
                    };
                    if better {
                        best = Some(i);
                    }
                }
            }
            let Some(b) = best else { break };
            let mut row = heads[b].take().expect("best points at a head");
            heads[b] = next_good(&mut readers[b]).map_err(|e| context(&runs[b], e))?;
            // The same key may stand in other runs (each run holds it once at most).
            for i in 0..heads.len() {
                while let Some(h) = heads[i].filter(|h| h.key == row.key) {
                    row.merge(&h);
                    heads[i] = next_good(&mut readers[i]).map_err(|e| context(&runs[i], e))?;
                }
            }
            out.row(&row).map_err(|e| context(to, e))?;
            n += 1;
        }
        self.finish(out, to)?;
        Ok(n)
    }

    fn create(&mut self, path: &Path) -> io::Result<RowWriter<BufWriter<File>>> {
        let f = File::create(path).map_err(|e| context(path, e))?;
        let mut w = RowWriter::new(BufWriter::with_capacity(WRITE_BUFFER, f));
        w.header().map_err(|e| context(path, e))?;
        Ok(w)
    }

    /// Flushes and syncs a written file.
    fn finish(&mut self, w: RowWriter<BufWriter<File>>, path: &Path) -> io::Result<()> {
        self.bytes_written += w.bytes;
        let f = w
            .into_inner()
            .into_inner()
            .map_err(|e| context(path, e.into_error()))?;
        f.sync_all().map_err(|e| context(path, e))
    }

    fn commit(&mut self, w: RowWriter<BufWriter<File>>, tmp: &Path, path: &Path) -> io::Result<()> {
        self.finish(w, tmp)?;
        self.rename_synced(tmp, path)
    }

    /// Renames over the target and syncs the directory, so the rename itself survives a cut.
    fn rename_synced(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        fs::rename(tmp, path).map_err(|e| context(path, e))?;
        let dir = File::open(&self.dir).map_err(|e| context(&self.dir, e))?;
        dir.sync_all().map_err(|e| context(&self.dir, e))
    }

    /// Checks a day's file at start: sorts it once if an older writer left it unsorted, so the
    /// first flush is a plain merge. Returns its rows, `None` when there is no file yet.
    pub fn prepare(&mut self, day: i64) -> io::Result<Option<u64>> {
        let path = self.path(day);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(context(&path, e)),
        };
        let mut reader = RowReader::new(BufReader::with_capacity(WRITE_BUFFER, file));
        let mut prev: Option<Key> = None;
        let mut rows = 0u64;
        while let Some(next) = reader.next_row().map_err(|e| context(&path, e))? {
            // Unreadable lines are reported when the file is next merged.
            let Ok(row) = next else { continue };
            if prev.is_some_and(|p| self.order.keys(&p, &row.key) != Ordering::Less) {
                log::info!(
                    "{}: rows not in tsusen's order (an older writer?): sorting the file once",
                    path.display()
                );
                return self.normalize(day).map(Some);
            }
            prev = Some(row.key);
            rows += 1;
        }
        Ok(Some(rows))
    }
}

/// The next readable row of a run we wrote ourselves.
fn next_good<R: io::BufRead>(r: &mut RowReader<R>) -> io::Result<Option<Row>> {
    loop {
        match r.next_row()? {
            None => return Ok(None),
            Some(Ok(row)) => return Ok(Some(row)),
            Some(Err(_)) => continue,
        }
    }
}
