//! The daily files as the report sees them: which days exist, a date from a URL checked into a
//! day number (the only way a URL reaches the filesystem), and a day's rows read into memory
//! sorted in file order with one row per key, cached within a bound on rows held.

use crate::store::{date_of_day, day_of_date, RowReader};
use crate::tables::{Row, RowOrder};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// What tells one version of a day file from another: an append changes the length, a
/// compaction renames a new file in (new modification time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// `YYYY-MM-DD` (exactly that: ten characters, a real date) as a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(day_of_date)
}

/// The day's date as `YYYY-MM-DD`.
pub fn date_text(day: i64) -> String {
    date_of_day(day).map_or_else(
        || format!("day-{day}"),
        |d| d.format("%Y-%m-%d").to_string(),
    )
}

/// The path of a day's file, built from the day number alone.
pub fn path(dir: &Path, day: i64) -> PathBuf {
    dir.join(format!("{}.csv", date_text(day)))
}

/// The days that have a file in `dir`, with their stamps. A missing directory has no days.
pub fn list(dir: &Path) -> io::Result<BTreeMap<i64, Stamp>> {
    let mut days = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(days),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".csv"))
            .and_then(parse_date)
        else {
            continue;
        };
        // Follows a symbolic link, as reading the file will.
        if let Ok(m) = fs::metadata(entry.path()) {
            if m.is_file() {
                days.insert(
                    day,
                    Stamp {
                        len: m.len(),
                        modified: m.modified().ok(),
                    },
                );
            }
        }
    }
    Ok(days)
}

/// Longer than any row we write (IPv6 addresses, 20-digit times and count: 160 bytes), so a
/// file longer than `limit` times this holds more than `limit` rows (or lines padded by hand).
const MAX_ROW_BYTES: u64 = 192;

/// Whether `len` bytes of day files surely hold more than `limit` rows: then they are refused
/// before a byte is read.
pub fn surely_more_rows(len: u64, limit: usize) -> bool {
    len > (limit as u64).saturating_mul(MAX_ROW_BYTES)
}

/// Shorter than any row (seven fields, six spaces and a newline: `6 1 :: :: 0 0 1`), so a file
/// no longer than `limit` times this holds at most `limit` rows.
const MIN_ROW_BYTES: u64 = 16;

/// Whether `len` bytes of a day file surely hold at most `limit` rows.
fn surely_fewer_rows(len: u64, limit: usize) -> bool {
    len <= (limit as u64).saturating_mul(MIN_ROW_BYTES)
}

/// The newlines in the first `len` bytes of `f`, from its start, counted until they are more
/// than `enough` (a flooded file is known too long a third of the way in).
fn count_lines(f: &mut File, len: u64, enough: u64) -> io::Result<u64> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut left, mut lines) = (len, 0u64);
    while left > 0 && lines <= enough {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    Ok(lines)
}

/// The error of a read that would hold more than its `limit` of rows.
pub fn too_many_rows(path: &Path, limit: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("{}: more than {limit} rows", path.display()),
    )
}

/// Reads a day's file up to `len` bytes, cut back to its last whole line (the sensor may be
/// appending right now), into rows in file order with one row per key. A file of more than
/// `limit` lines is refused (`ErrorKind::FileTooLarge`) once that many are read, so a day
/// swollen by a flood never takes more than `limit` rows of memory.
pub fn read(path: &Path, len: u64, order: &RowOrder, limit: usize) -> io::Result<Vec<Row>> {
    if surely_more_rows(len, limit) {
        return Err(too_many_rows(path, limit));
    }
    let mut f = File::open(path)?;
    let len = whole_lines(&mut f, len)?;
    // Between the sure bounds, the lines are counted before a row is parsed: a flooded day of
    // 60-byte rows was read up to `limit` rows (32 MiB of the OpenWrt router's 524,288) only
    // to learn that it streams. The header and any line that is not a row count as rows
    // here; a file padded with such lines streams, with the same answers.
    let lines = limit as u64 + 1;
    if !surely_fewer_rows(len, limit) && count_lines(&mut f, len, lines)? > lines {
        return Err(too_many_rows(path, limit));
    }
    f.seek(SeekFrom::Start(0))?;
    let mut reader = RowReader::new(BufReader::with_capacity(256 * 1024, f.take(len)));
    // About 50 bytes a row: a good first guess that saves the copies of growing.
    let mut rows = Vec::with_capacity(((len / 48) as usize).min(limit));
    let mut bad = 0u64;
    while let Some(r) = reader.next_row()? {
        match r {
            Ok(row) if rows.len() < limit => rows.push(row),
            Ok(_) => return Err(too_many_rows(path, limit)),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        log::debug!("{}: {bad} lines that are not rows", path.display());
    }
    sort_fold(&mut rows, order);
    // The first guess may be well over: what a cache keeps is counted in rows, so hold no more.
    rows.shrink_to_fit();
    Ok(rows)
}

/// Sorts rows in file order and folds rows of one key into one. A compacted file is sorted
/// already, and checking that is much cheaper than sorting.
pub fn sort_fold(rows: &mut Vec<Row>, order: &RowOrder) {
    let sorted = rows
        .windows(2)
        .all(|w| order.keys(&w[0].key, &w[1].key).is_lt());
    if sorted {
        return;
    }
    rows.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
    rows.dedup_by(|next, kept| {
        if next.key == kept.key {
            kept.merge(next);
            true
        } else {
            false
        }
    });
}

/// The length of the file's whole lines within its first `len` bytes (or all of it, if it is
/// shorter now).
pub(super) fn whole_lines(f: &mut File, len: u64) -> io::Result<u64> {
    // A compaction may have renamed a shorter file in since `len` was seen.
    let mut pos = len.min(f.metadata()?.len());
    let mut buf = vec![0u8; 4096];
    while pos > 0 {
        let n = buf.len().min(pos as usize);
        f.seek(SeekFrom::Start(pos - n as u64))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(pos - n as u64 + i as u64 + 1);
        }
        pos -= n as u64;
    }
    Ok(0)
}

struct Entry {
    stamp: Stamp,
    rows: Arc<Vec<Row>>,
    used: u64,
}

/// Days' rows kept in memory, the least recently used dropped first when more than `budget`
/// rows are held. A day larger than the budget is read each time it is needed, never kept.
pub struct DayCache {
    entries: HashMap<i64, Entry>,
    held: usize,
    budget: usize,
    tick: u64,
}

impl DayCache {
    pub fn new(budget: usize) -> DayCache {
        DayCache {
            entries: HashMap::new(),
            held: 0,
            budget,
            tick: 0,
        }
    }

    /// Rows held now, for the metrics.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether `rows` is the day's kept vector itself.
    pub fn holds(&self, day: i64, rows: &Arc<Vec<Row>>) -> bool {
        self.entries
            .get(&day)
            .is_some_and(|e| Arc::ptr_eq(&e.rows, rows))
    }

    /// Holds at most `budget` rows from now on, the least recently used going first.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict_to(budget);
    }

    /// Drops the least recently used days until at most `limit` rows are held.
    fn evict_to(&mut self, limit: usize) {
        while self.held > limit {
            let Some((&oldest, _)) = self.entries.iter().min_by_key(|(_, e)| e.used) else {
                break;
            };
            let e = self.entries.remove(&oldest).expect("found above");
            self.held -= e.rows.len();
        }
    }

    /// The day's rows, from the cache or its file; a file of more than `limit` rows is
    /// refused (see `read`).
    pub fn get(
        &mut self,
        dir: &Path,
        day: i64,
        stamp: Stamp,
        order: &RowOrder,
        limit: usize,
    ) -> io::Result<Arc<Vec<Row>>> {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(&day) {
            if e.stamp == stamp {
                e.used = self.tick;
                return Ok(e.rows.clone());
            }
        }
        if let Some(old) = self.entries.remove(&day) {
            self.held -= old.rows.len();
        }
        let rows = Arc::new(read(&path(dir, day), stamp.len, order, limit)?);
        if rows.len() <= self.budget {
            self.evict_to(self.budget - rows.len());
            self.held += rows.len();
            self.entries.insert(
                day,
                Entry {
                    stamp,
                    rows: rows.clone(),
                    used: self.tick,
                },
            );
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_too_long_for_its_rows_is_refused_before_it_is_read() {
        let path = std::env::temp_dir().join(format!("tsusen-days-{}.csv", std::process::id()));
        let order = RowOrder::new();
        // No line of it is a row: read, it gives none; its length alone refuses it for 10.
        std::fs::write(&path, vec![b'x'; 10 * MAX_ROW_BYTES as usize + 1]).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        assert_eq!(read(&path, len, &order, 11).unwrap().len(), 0);
        let e = read(&path, len, &order, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let _ = fs::remove_file(&path);
    }

    /// Between the sure bounds the lines are counted before any row is parsed: the last line
    /// that fits is read, one more is refused (even one that is not a row: padding streams).
    #[test]
    fn lines_are_counted_before_a_row_is_read() {
        let path = std::env::temp_dir().join(format!("tsusen-days-c-{}.csv", std::process::id()));
        let mut w = crate::store::RowWriter::new(Vec::new());
        w.header().unwrap();
        let mut text = w.into_inner();
        for port in 1..=5 {
            text.extend_from_slice(
                format!("TCP {port} 198.51.100.1 203.0.113.9 1709251200 1709251260 3\n").as_bytes(),
            );
        }
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as u64;
        assert!(!surely_fewer_rows(len, 5) && !surely_more_rows(len, 5));
        let count = |len: u64, enough: u64| {
            count_lines(&mut File::open(&path).unwrap(), len, enough).unwrap()
        };
        assert_eq!((count(len, 6), count(len - 1, 6)), (6, 5));
        // Past `enough`, counting stops with the buffer it has read: 64 KiB of a longer file.
        let line = "TCP 22 198.51.100.1 203.0.113.9 1709251200 1709251260 3\n";
        std::fs::write(&path, line.repeat(3000)).unwrap();
        let all = (line.len() * 3000) as u64;
        assert_eq!(count(all, 3000), 3000);
        assert_eq!(count(all, 10), (64 * 1024 / line.len()) as u64);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read(&path, len, &RowOrder::new(), 5).unwrap().len(), 5);
        let too_large =
            |r: io::Result<Vec<Row>>| r.unwrap_err().kind() == io::ErrorKind::FileTooLarge;
        assert!(too_large(read(&path, len, &RowOrder::new(), 4)));
        text.extend_from_slice(b"not a row\n");
        std::fs::write(&path, &text).unwrap();
        assert!(too_large(read(
            &path,
            text.len() as u64,
            &RowOrder::new(),
            5
        )));
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn a_file_shorter_than_listed_is_read_to_its_end() {
        // A compaction renamed a shorter file in after the listing: no error, its whole lines.
        let path = std::env::temp_dir().join(format!("tsusen-days-s-{}.csv", std::process::id()));
        let mut w = crate::store::RowWriter::new(Vec::new());
        w.header().unwrap();
        let text = w.into_inner();
        let row = "TCP 22 198.51.100.1 203.0.113.9 1709251200 1709251260 3\n";
        std::fs::write(&path, [&text[..], row.as_bytes(), b"TCP 23"].concat()).unwrap();
        let rows = read(&path, 100_000, &RowOrder::new(), 1000).unwrap();
        assert_eq!((rows.len(), rows[0].count), (1, 3));
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn only_real_dates_in_the_exact_shape_are_days() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(date_text(1), "1970-01-02");
        for bad in [
            "2024-02-30",
            "2024-2-03",
            "+2024-02-03",
            "2024-02-03 ",
            "../etc/pa",
            "2024/02/03",
            "２０２４-02-03",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
