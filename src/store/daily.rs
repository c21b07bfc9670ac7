//! The daily files `LOG_DIRECTORY/YYYY-MM-DD.csv`.
//!
//! An SD card wears out with every byte written, and rewriting the whole day at every flush (as
//! the original tsusen did) writes about 48 times the day's final size. So a periodic flush
//! appends the period's rows to the day's file as one more sorted run, synced: the file stays
//! complete as of the last flush (the rows of one key add up), and an interrupted append is cut
//! back to its last whole line at the next start. When the appended runs outgrow the sorted
//! base or reach MAX_RUNS, and always when a day ends or the sensor stops, the runs are
//! compacted (with read buffers of a fixed budget shared by the runs): one streaming
//! k-way merge (the file may be far larger than memory) into a temporary file that is synced
//! and renamed over the old one, leaving one row per key in tsusen's order. The sensor has a
//! helper thread do the compaction of a file that outgrew its base (see `Helper`), so that
//! capture never waits on it.

use super::csv::{RowReader, RowWriter};
use super::writeback::Writeback;
use crate::faults;
use crate::tables::{merge, Key, Row, RowOrder};
use chrono::NaiveDate;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAY: i64 = 719_163;
/// Unreadable lines reported per file before we only count them.
const BAD_ROW_REPORTS: u64 = 10;
/// Write buffer of an append or a merge: 32 KiB (some 500 rows) already makes the system calls
/// few next to the rows formatted, and it is held beside the full table at every flush.
const WRITE_BUFFER: usize = 32 * 1024;
const READ_BUFFER: usize = 32 * 1024;
/// Read buffers of one merge in all, shared by its runs (each from 4 KiB to READ_BUFFER): a
/// flood that flushes a full table every second appends a run each time, and a buffer per run
/// would grow with the day. A merge's buffers, with its write buffer, are what a flooded
/// sensor's resident size rises by while a helper compacts (the OpenWrt router profile's
/// 16 MiB leaves little beside its tables).
const MERGE_READ_BUDGET: usize = 128 * 1024;
/// Runs a day file holds at most before the next flush compacts it instead of appending,
/// which bounds a merge's open files and buffers (96 periodic flushes a day stay under it).
const MAX_RUNS: usize = 128;

/// Each run's read buffer when `runs` are merged at once.
fn read_buffer(runs: usize) -> usize {
    (MERGE_READ_BUDGET / runs.max(1)).clamp(4096, READ_BUFFER)
}
/// Below this many bytes of base a file is always compacted: appending to a tiny file saves
/// nothing.
const APPEND_FLOOR: u64 = 64 * 1024;

pub fn date_of_day(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(day + UNIX_EPOCH_CE_DAY).ok()?)
}

pub fn day_of_date(date: NaiveDate) -> i64 {
    use chrono::Datelike;
    date.num_days_from_ce() as i64 - UNIX_EPOCH_CE_DAY
}

/// A source of rows is out of order: the file was not written by us (the original tsusen
/// wrote rows in any order) or was edited, and must be sorted from scratch.
struct NotSorted;

/// What we know of a day file we wrote in this process: where its runs start.
#[derive(Clone, Debug)]
struct Layout {
    /// Byte offsets of the sorted runs; the first is 0 (its header line is skipped on reading).
    runs: Vec<u64>,
    /// File length after the last write.
    len: u64,
    /// Length of the compacted base, the first run, and of the runs a helper's merge found
    /// appended after it (see `take_merge`): what is appended past it makes the file grow.
    base: u64,
    /// The file's inode: another writer (a PUT merge) renames a new file in, which may have
    /// the very same length, and our run offsets mean nothing in it.
    ino: u64,
}

impl Layout {
    /// A file that is one sorted run of `len` bytes.
    fn compacted(len: u64, ino: u64) -> Layout {
        Layout {
            runs: vec![0],
            len,
            base: len,
            ino,
        }
    }
}

/// An exclusive `flock` on the log directory, held by whoever rewrites or appends to a day
/// file: the sensor's flushes and a PUT merge (possibly in another process, `tsusen serve`)
/// then never rename a file over each other's work. Released when dropped.
pub struct DirLock {
    _held: Option<File>,
}

/// Takes the lock on `dir`, waiting for it. Where the filesystem cannot lock (some network
/// filesystems) it goes on without, once warned: counting must not stop over it.
pub fn lock_dir(dir: &Path) -> io::Result<DirLock> {
    let f = File::open(dir).map_err(|e| context(dir, e))?;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(DirLock { _held: Some(f) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    log::warn!(
                        "{}: cannot be locked ({e}): going on without",
                        dir.display()
                    )
                });
                return Ok(DirLock { _held: None });
            }
            _ => return Err(context(dir, e)),
        }
    }
}

/// Sorted rows from one run of a file, or from memory, checked for order as they are read.
enum Source<'a> {
    Run {
        reader: Box<RowReader<BufReader<io::Take<File>>>>,
        path: PathBuf,
        prev: Option<Key>,
    },
    Mem(std::slice::Iter<'a, Row>),
}

/// Why a merge stopped short.
enum Stop {
    Io(io::Error),
    NotSorted,
}

impl Source<'_> {
    /// The next row. Lines that are not rows are reported (the first few) and counted in
    /// `bad_rows`; a run that goes backwards in `order` is `NotSorted`.
    fn next(&mut self, order: &RowOrder, bad_rows: &mut u64) -> Result<Option<Row>, Stop> {
        match self {
            Source::Mem(it) => Ok(it.next().copied()),
            Source::Run { reader, path, prev } => loop {
                match reader.next_row().map_err(|e| Stop::Io(context(path, e)))? {
                    None => return Ok(None),
                    Some(Err(b)) => {
                        *bad_rows += 1;
                        if *bad_rows <= BAD_ROW_REPORTS {
                            log::warn!("{}:{}: passed over: {}", path.display(), b.line, b.why);
                        }
                    }
                    Some(Ok(row)) => {
                        if prev.is_some_and(|p| order.keys(&p, &row.key) == Ordering::Greater) {
                            return Err(Stop::NotSorted);
                        }
                        *prev = Some(row.key);
                        return Ok(Some(row));
                    }
                }
            },
        }
    }
}

pub struct DayFiles {
    dir: PathBuf,
    order: RowOrder,
    /// Rows per in-memory run when a file must be sorted from scratch.
    sort_chunk: usize,
    layouts: HashMap<i64, Layout>,
    /// Bytes written to disk by us, for the wear accounting.
    pub bytes_written: u64,
    /// Lines of existing files that could not be read as rows (reported and passed over).
    pub bad_rows: u64,
    /// Whether a growing day file is compacted by a helper thread (the sensor's files) or by
    /// the caller (a second writer's).
    helped: bool,
    helper: Option<Helper>,
}

/// A compaction of a day file's runs, up to the file's length when it began, on a thread of
/// its own while the sensor goes on appending: a flooded day's file grows by a run at every
/// early flush, and compacting it on the capture thread stalled capture for as long as it
/// took to read and rewrite the day, while the kernel dropped what came.
struct Helper {
    day: i64,
    /// The file as the helper found it.
    len: u64,
    ino: u64,
    tmp: PathBuf,
    done: std::thread::JoinHandle<io::Result<Helped>>,
}

/// What a helper made: the merged file's length (`None`: the file was not in order, for the
/// next compaction to sort), and its counts.
struct Helped {
    merged: Option<u64>,
    bytes_written: u64,
    bad_rows: u64,
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl DayFiles {
    /// Opens (creating) the log directory and clears temporary files a power cut left behind.
    pub fn open(dir: &Path, sort_chunk: usize) -> io::Result<DayFiles> {
        let mut files = DayFiles::attach(dir, sort_chunk)?;
        files.helped = true;
        for entry in fs::read_dir(dir).map_err(|e| context(dir, e))? {
            let entry = entry.map_err(|e| context(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") && name.contains(".csv") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(files)
    }

    /// As `open`, for a second writer beside a running sensor (the report's PUT): leaves the
    /// temporary files alone, since they may be the sensor's work in progress.
    pub fn attach(dir: &Path, sort_chunk: usize) -> io::Result<DayFiles> {
        fs::create_dir_all(dir).map_err(|e| context(dir, e))?;
        Ok(DayFiles {
            dir: dir.to_owned(),
            order: RowOrder::new(),
            sort_chunk: sort_chunk.max(1024),
            layouts: HashMap::new(),
            bytes_written: 0,
            bad_rows: 0,
            helped: false,
            helper: None,
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

    /// Takes the directory lock (see `DirLock`).
    fn lock(&self) -> io::Result<DirLock> {
        lock_dir(&self.dir)
    }

    fn temp_path(&self, day: i64, what: &str) -> PathBuf {
        let name = self.path(day);
        let name = name.file_name().map(|n| n.to_string_lossy().into_owned());
        self.dir
            .join(format!(".{}.{what}.tmp", name.unwrap_or_default()))
    }

    /// Writes one day's rows (in file order). A periodic flush appends them as a run; once the
    /// runs have outgrown the base, the sensor's files have a helper thread compact them while
    /// appends go on, and other writers compact them at once. `compact` (day end, shutdown)
    /// always leaves one sorted row per key. Returns the file's rows after a compaction,
    /// `None` after an append.
    pub fn write(&mut self, day: i64, rows: &[Row], compact: bool) -> io::Result<Option<u64>> {
        let _lock = self.lock()?;
        let full = self
            .layouts
            .get(&day)
            .is_some_and(|l| l.runs.len() >= MAX_RUNS);
        // A file with all the runs it may hold waits for the helper's merge, if one runs.
        self.join_helper(full)?;
        let (room, grown) = match self.layouts.get(&day) {
            Some(l) => (
                l.runs.len() < MAX_RUNS,
                l.len - l.base >= l.base.max(APPEND_FLOOR),
            ),
            None => (false, true),
        };
        // An append that finds the file changed under us falls back to compaction.
        if !compact
            && room
            && (!grown || self.helped)
            && (rows.is_empty() || self.append(day, rows)?)
        {
            if grown && self.helper.is_none() {
                self.start_helper(day);
            }
            return Ok(None);
        }
        self.join_helper(true)?;
        self.compact(day, rows).map(Some)
    }

    /// Sets a helper compacting the day's runs as they are now (see `Helper`); on failure the
    /// next flush tries again, or compacts itself once the runs are MAX_RUNS.
    fn start_helper(&mut self, day: i64) {
        let Some(l) = self.layouts.get(&day) else {
            return;
        };
        let (path, tmp) = (self.path(day), self.temp_path(day, "helper"));
        let (starts, len, ino) = (l.runs.clone(), l.len, l.ino);
        let (dir, sort_chunk, to) = (self.dir.clone(), self.sort_chunk, tmp.clone());
        let job = move || -> io::Result<Helped> {
            // SAFETY: setpriority on the calling thread (Linux: 0 names it); no memory passed.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, crate::policy::COMPACT_NICE) };
            let mut files = DayFiles::attach(&dir, sort_chunk)?;
            let sources = files.file_sources(&path, &starts, len)?;
            let merged = match files.merge_into(sources, &to)? {
                Ok(_) => Some(fs::metadata(&to).map_err(|e| context(&to, e))?.len()),
                Err(NotSorted) => None,
            };
            Ok(Helped {
                merged,
                bytes_written: files.bytes_written,
                bad_rows: files.bad_rows,
            })
        };
        match std::thread::Builder::new()
            .name("tsusen-compact".into())
            .spawn(job)
        {
            Ok(done) => {
                self.helper = Some(Helper {
                    day,
                    len,
                    ino,
                    tmp,
                    done,
                })
            }
            Err(e) => log::warn!("{}: no thread to compact it: {e}", self.path(day).display()),
        }
    }

    /// Takes in the helper's work once it is done (waiting for it when `wait`): its merge,
    /// followed by the runs appended since, renamed over the day's file. A file changed under
    /// us meanwhile (a PUT), or a helper that failed, leaves the file as it is for the next
    /// compaction. Called under the directory's lock.
    fn join_helper(&mut self, wait: bool) -> io::Result<()> {
        match &self.helper {
            Some(h) if wait || h.done.is_finished() => {}
            _ => return Ok(()),
        }
        let h = self.helper.take().expect("matched above");
        let done = h
            .done
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the compaction thread panicked")));
        let taken = match done {
            Ok(done) => {
                self.bytes_written += done.bytes_written;
                self.bad_rows += done.bad_rows;
                match done.merged {
                    Some(merged) => self.take_merge(h.day, h.len, h.ino, merged, &h.tmp),
                    None => {
                        // Out of order: the next flush compacts it itself, sorting it.
                        self.layouts.remove(&h.day);
                        Ok(false)
                    }
                }
            }
            Err(e) => {
                log::warn!(
                    "{}: compacting it beside the capture: {e}",
                    self.path(h.day).display()
                );
                Ok(false)
            }
        };
        if !matches!(taken, Ok(true)) {
            let _ = fs::remove_file(&h.tmp);
        }
        taken.map(|_| ())
    }

    /// `join_helper`'s renaming: true when the merge took the file's place.
    fn take_merge(
        &mut self,
        day: i64,
        len: u64,
        ino: u64,
        merged: u64,
        tmp: &Path,
    ) -> io::Result<bool> {
        let path = self.path(day);
        let Some(l) = self.layouts.get(&day).cloned() else {
            return Ok(false);
        };
        let m = fs::metadata(&path).map_err(|e| context(&path, e))?;
        if l.ino != ino || m.ino() != ino || m.len() != l.len || l.len < len {
            return Ok(false);
        }
        let mut from = File::open(&path).map_err(|e| context(&path, e))?;
        from.seek(SeekFrom::Start(len))
            .map_err(|e| context(&path, e))?;
        let mut to = OpenOptions::new()
            .append(true)
            .open(tmp)
            .map_err(|e| context(tmp, e))?;
        let tail = io::copy(&mut from.take(l.len - len), &mut to).map_err(|e| context(tmp, e))?;
        to.sync_all().map_err(|e| context(tmp, e))?;
        self.bytes_written += tail;
        self.rename_synced(tmp, &path)?;
        let m = fs::metadata(&path).map_err(|e| context(&path, e))?;
        // The runs appended since follow the merged one, moved by the bytes it saved. They
        // count with the base for when the file has outgrown it again: the next compaction
        // waits until what is appended doubles the file, as after any other.
        let runs = std::iter::once(0)
            .chain(
                l.runs
                    .iter()
                    .filter(|&&r| r >= len)
                    .map(|&r| r - len + merged),
            )
            .collect();
        self.layouts.insert(
            day,
            Layout {
                runs,
                len: m.len(),
                base: m.len(),
                ino: m.ino(),
            },
        );
        Ok(true)
    }

    /// Compacts every day file with appended runs for which `due` says so.
    pub fn compact_days(&mut self, due: impl Fn(i64) -> bool) -> io::Result<Vec<(i64, u64)>> {
        let _lock = self.lock()?;
        self.join_helper(true)?;
        let mut days: Vec<i64> = self
            .layouts
            .iter()
            .filter(|(d, l)| l.runs.len() > 1 && due(**d))
            .map(|(d, _)| *d)
            .collect();
        days.sort_unstable();
        let mut done = Vec::new();
        for d in days {
            done.push((d, self.compact(d, &[])?));
        }
        Ok(done)
    }

    /// Appends rows as one more run; false when the file is not as we left it.
    fn append(&mut self, day: i64, rows: &[Row]) -> io::Result<bool> {
        let path = self.path(day);
        let Some(layout) = self.layouts.get(&day).cloned() else {
            return Ok(false);
        };
        let file = match OpenOptions::new().append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(context(&path, e)),
        };
        let meta = file.metadata().map_err(|e| context(&path, e))?;
        let len = meta.len();
        if len != layout.len || meta.ino() != layout.ino {
            log::info!(
                "{}: changed by another writer (a PUT?): merging into it",
                path.display()
            );
            self.layouts.remove(&day);
            return Ok(false);
        }
        if faults::hit("append-partial") {
            // Half a line reaches the disk, as a cut in the middle of an append leaves it.
            let mut one = RowWriter::new(Vec::new());
            let _ = one.row(&rows[0]);
            let half = one.into_inner();
            let _ = (&file).write_all(&half[..half.len() / 2]);
            let _ = file.sync_data();
            faults::kill_now();
        }
        let mut w = RowWriter::with_capacity(WRITE_BUFFER, file);
        let wrote = rows.iter().try_for_each(|r| w.row(r));
        self.bytes_written += w.bytes;
        let written = wrote.and_then(|()| w.finish()).and_then(|f| {
            faults::crash_here("append-before-sync");
            f.sync_data()
        });
        match written {
            Ok(_) => {
                let new_len = fs::metadata(&path).map_err(|e| context(&path, e))?.len();
                let l = self.layouts.get_mut(&day).expect("layout checked above");
                l.runs.push(len);
                l.len = new_len;
                Ok(true)
            }
            Err(e) => {
                // Cut the partial run off, so the rows (kept in memory) are not counted twice.
                let cut = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(len).and_then(|()| f.sync_data()));
                if let Err(c) = cut {
                    log::error!("{}: cannot cut back a failed append: {c}", path.display());
                    self.layouts.remove(&day);
                }
                Err(context(&path, e))
            }
        }
    }

    /// Rewrites the day's file as one sorted run with `extra` merged in, atomically.
    fn compact(&mut self, day: i64, extra: &[Row]) -> io::Result<u64> {
        let path = self.path(day);
        let tmp = self.temp_path(day, "merge");
        let mut sources = match self.runs_now(day, &path)? {
            Some((starts, len)) => self.file_sources(&path, &starts, len)?,
            None => Vec::new(),
        };
        sources.push(Source::Mem(extra.iter()));
        let n = match self.merge_into(sources, &tmp) {
            Ok(Ok(n)) => n,
            Ok(Err(NotSorted)) => {
                let _ = fs::remove_file(&tmp);
                log::info!(
                    "{}: rows not in tsusen's order (an older writer?): sorting the file",
                    path.display()
                );
                self.sort_from_scratch(day, extra, &tmp)?
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.install(day, &tmp, &path)?;
        Ok(n)
    }

    /// The runs of the file at `path` that start at `starts`, up to `len`, as sources.
    fn file_sources(
        &self,
        path: &Path,
        starts: &[u64],
        len: u64,
    ) -> io::Result<Vec<Source<'static>>> {
        let buffer = read_buffer(starts.len());
        let ends = starts.iter().skip(1).copied().chain(std::iter::once(len));
        starts
            .iter()
            .zip(ends)
            .map(|(&start, end)| self.run_source(path, start, end, buffer))
            .collect()
    }

    /// Renames a merged file over the day's file and records it as one sorted run.
    fn install(&mut self, day: i64, tmp: &Path, path: &Path) -> io::Result<()> {
        if let Err(e) = self.rename_synced(tmp, path) {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        let m = fs::metadata(path).map_err(|e| context(path, e))?;
        self.layouts
            .insert(day, Layout::compacted(m.len(), m.ino()));
        Ok(())
    }

    /// The day file's sorted runs and length: as we left it, or the whole file as one run when
    /// another writer replaced or changed it since (or we never wrote it). `None`: no file.
    fn runs_now(&mut self, day: i64, path: &Path) -> io::Result<Option<(Vec<u64>, u64)>> {
        let m = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.layouts.remove(&day);
                return Ok(None);
            }
            Err(e) => return Err(context(path, e)),
        };
        if let Some(l) = self.layouts.get(&day) {
            if l.len == m.len() && l.ino == m.ino() {
                return Ok(Some((l.runs.clone(), l.len)));
            }
            self.layouts.remove(&day);
        }
        Ok(Some((vec![0], m.len())))
    }

    /// Merges rows uploaded for `day` into its file: `upload` holds them in any order, every
    /// line already checked to be a row of that day. The upload is first cut into sorted
    /// temporary runs (bounded memory whatever its size); then, under the directory lock, one
    /// k-way merge of the day's file and those runs goes to a temporary file that is synced and
    /// renamed over the day's file, directory synced. Returns the file's rows after. On any
    /// error the day's file is as it was.
    pub fn merge_upload(&mut self, day: i64, upload: &Path, tag: &str) -> io::Result<u64> {
        let mut runs = Vec::new();
        let result = self
            .sorted_runs(day, upload, tag, &mut runs)
            .and_then(|()| {
                let _lock = self.lock()?;
                let path = self.path(day);
                let tmp = self.temp_path(day, &format!("{tag}-merge"));
                let n = match self.merge_runs(day, &path, &runs, true, &tmp) {
                    Ok(Ok(n)) => n,
                    Ok(Err(NotSorted)) => {
                        // The day's file is not in our order (the original tsusen's): sort it too.
                        let _ = fs::remove_file(&tmp);
                        self.sorted_runs(day, &path, &format!("{tag}-old"), &mut runs)?;
                        match self.merge_runs(day, &path, &runs, false, &tmp)? {
                            Ok(n) => n,
                            Err(NotSorted) => {
                                return Err(io::Error::other(format!(
                                    "{}: still unsorted after sorting",
                                    path.display()
                                )))
                            }
                        }
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                self.install(day, &tmp, &path)?;
                Ok(n)
            });
        for run in &runs {
            let _ = fs::remove_file(run);
        }
        result
    }

    /// One merge of temporary sorted `runs`, and the day's file when `with_file` (not once
    /// `sorted_runs` has sorted the file itself into `runs`).
    fn merge_runs(
        &mut self,
        day: i64,
        path: &Path,
        runs: &[PathBuf],
        with_file: bool,
        to: &Path,
    ) -> io::Result<Result<u64, NotSorted>> {
        let mut sources = Vec::new();
        let file_runs = match with_file {
            true => self.runs_now(day, path)?,
            false => None,
        };
        let buffer = read_buffer(runs.len() + file_runs.as_ref().map_or(0, |r| r.0.len()));
        if let Some((starts, len)) = file_runs {
            for (i, &start) in starts.iter().enumerate() {
                let end = starts.get(i + 1).copied().unwrap_or(len);
                sources.push(self.run_source(path, start, end, buffer)?);
            }
        }
        for run in runs {
            let len = fs::metadata(run).map_err(|e| context(run, e))?.len();
            sources.push(self.run_source(run, 0, len, buffer)?);
        }
        self.merge_into(sources, to)
    }

    fn run_source(
        &self,
        path: &Path,
        start: u64,
        end: u64,
        buffer: usize,
    ) -> io::Result<Source<'static>> {
        let mut f = File::open(path).map_err(|e| context(path, e))?;
        f.seek(SeekFrom::Start(start))
            .map_err(|e| context(path, e))?;
        Ok(Source::Run {
            reader: Box::new(RowReader::new(BufReader::with_capacity(
                buffer,
                f.take(end.saturating_sub(start)),
            ))),
            path: path.to_owned(),
            prev: None,
        })
    }

    /// Sorts a file in any order, of any size: sorted chunks of `sort_chunk` rows written as
    /// temporary runs, then one k-way merge with `extra`.
    fn sort_from_scratch(&mut self, day: i64, extra: &[Row], to: &Path) -> io::Result<u64> {
        let path = self.path(day);
        let mut runs: Vec<PathBuf> = Vec::new();
        let result = self
            .sorted_runs(day, &path, "sort", &mut runs)
            .and_then(|()| {
                let mut sources = Vec::new();
                let buffer = read_buffer(runs.len());
                for run in &runs {
                    let len = fs::metadata(run).map_err(|e| context(run, e))?.len();
                    sources.push(self.run_source(run, 0, len, buffer)?);
                }
                sources.push(Source::Mem(extra.iter()));
                match self.merge_into(sources, to)? {
                    Ok(n) => Ok(n),
                    Err(NotSorted) => Err(io::Error::other(format!(
                        "{}: still unsorted after sorting",
                        path.display()
                    ))),
                }
            });
        for run in &runs {
            let _ = fs::remove_file(run);
        }
        result
    }

    /// Cuts `src` (rows in any order) into sorted temporary runs of `sort_chunk` rows, pushed
    /// on `runs` as they are written (so the caller removes them whatever happens). Lines that
    /// are not rows are reported and passed over.
    fn sorted_runs(
        &mut self,
        day: i64,
        src: &Path,
        tag: &str,
        runs: &mut Vec<PathBuf>,
    ) -> io::Result<()> {
        let file = File::open(src).map_err(|e| context(src, e))?;
        let mut reader = RowReader::new(BufReader::with_capacity(READ_BUFFER, file));
        let mut chunk: Vec<Row> = Vec::new();
        let mut bad = 0u64;
        let first = runs.len();
        loop {
            let next = reader.next_row().map_err(|e| context(src, e))?;
            let last = next.is_none();
            match next {
                Some(Ok(row)) => chunk.push(row),
                Some(Err(b)) => {
                    bad += 1;
                    if bad <= BAD_ROW_REPORTS {
                        log::warn!("{}:{}: passed over: {}", src.display(), b.line, b.why);
                    }
                }
                None => {}
            }
            if chunk.len() >= self.sort_chunk || (last && !chunk.is_empty()) {
                let run = self.temp_path(day, &format!("{tag}-run{}", runs.len() - first));
                runs.push(run.clone());
                chunk.sort_unstable_by(|a, b| self.order.keys(&a.key, &b.key));
                match self.merge_into(vec![Source::Mem(chunk.iter())], &run)? {
                    Ok(_) => chunk.clear(),
                    Err(NotSorted) => unreachable!("a sorted chunk is in order"),
                }
            }
            if last {
                break;
            }
        }
        if bad > BAD_ROW_REPORTS {
            log::warn!("{}: {bad} lines passed over in all", src.display());
        }
        self.bad_rows += bad;
        Ok(())
    }

    /// The k-way merge at the heart of every rewrite: rows of equal key from any source (or
    /// repeated within one) fold into one; the result goes to `to`, synced. `NotSorted` when a
    /// source goes backwards.
    fn merge_into(
        &mut self,
        mut sources: Vec<Source<'_>>,
        to: &Path,
    ) -> io::Result<Result<u64, NotSorted>> {
        if let [Source::Mem(rows)] = sources.as_slice() {
            // Rows from memory alone (a day the file did not hold yet) are sorted already:
            // write them, folding neighbours of one key, without the k-way selection.
            return self.write_sorted(rows.as_slice(), to).map(Ok);
        }
        let mut out = self.create(to)?;
        let mut n = 0u64;
        let (order, bad_rows) = (&self.order, &mut self.bad_rows);
        let merged = merge(
            order,
            sources.len(),
            |i| sources[i].next(order, bad_rows),
            |row| {
                n += 1;
                out.row(row).map_err(|e| Stop::Io(context(to, e)))
            },
        );
        match merged {
            Ok(()) => {}
            Err(Stop::NotSorted) => return Ok(Err(NotSorted)),
            Err(Stop::Io(e)) => return Err(e),
        }
        self.finish(out, to)?;
        Ok(Ok(n))
    }

    fn write_sorted(&mut self, rows: &[Row], to: &Path) -> io::Result<u64> {
        let mut out = self.create(to)?;
        let mut n = 0u64;
        for run in rows.chunk_by(|a, b| a.key == b.key) {
            let mut row = run[0];
            for r in &run[1..] {
                row.merge(r);
            }
            out.row(&row).map_err(|e| context(to, e))?;
            n += 1;
        }
        self.finish(out, to)?;
        Ok(n)
    }

    fn create(&mut self, path: &Path) -> io::Result<RowWriter<Writeback>> {
        let f = File::create(path).map_err(|e| context(path, e))?;
        let mut w = RowWriter::with_capacity(WRITE_BUFFER, Writeback::new(f, 0));
        w.header().map_err(|e| context(path, e))?;
        Ok(w)
    }

    /// Flushes and syncs a written file.
    fn finish(&mut self, w: RowWriter<Writeback>, path: &Path) -> io::Result<()> {
        self.bytes_written += w.bytes;
        let f = w.finish().map_err(|e| context(path, e))?.into_inner();
        f.sync_all().map_err(|e| context(path, e))
    }

    /// Renames over the target and syncs the directory, so the rename itself survives a cut.
    fn rename_synced(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        faults::crash_here("compact-before-rename");
        fs::rename(tmp, path).map_err(|e| context(path, e))?;
        faults::crash_here("compact-after-rename");
        let dir = File::open(&self.dir).map_err(|e| context(&self.dir, e))?;
        dir.sync_all().map_err(|e| context(&self.dir, e))
    }

    /// Readies a day's file at start: cuts an append that a power cut interrupted back to its
    /// last whole line, and compacts a file with several runs (or one an older writer left
    /// unsorted), so counting goes on from a clean file. Returns its rows, `None` when there is
    /// no file yet.
    pub fn prepare(&mut self, day: i64) -> io::Result<Option<u64>> {
        let _lock = self.lock()?;
        let path = self.path(day);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(context(&path, e)),
        };
        cut_partial_line(&path, len)?;
        let m = fs::metadata(&path).map_err(|e| context(&path, e))?;
        let len = m.len();
        let Some(rows) = self.strictly_sorted(&path, len)? else {
            // A second run, a repeated key, or a file of the original tsusen: merge it.
            return self.compact(day, &[]).map(Some);
        };
        self.layouts.insert(day, Layout::compacted(len, m.ino()));
        Ok(Some(rows))
    }

    /// The file's rows when they are in tsusen's order with one row per key, else `None`.
    fn strictly_sorted(&mut self, path: &Path, len: u64) -> io::Result<Option<u64>> {
        let f = File::open(path).map_err(|e| context(path, e))?;
        let mut reader = RowReader::new(BufReader::with_capacity(READ_BUFFER, f.take(len)));
        let mut prev: Option<Key> = None;
        let mut rows = 0;
        loop {
            match reader.next_row().map_err(|e| context(path, e))? {
                None => return Ok(Some(rows)),
                Some(Err(_)) => continue,
                Some(Ok(row)) => {
                    if prev.is_some_and(|p| self.order.keys(&p, &row.key) != Ordering::Less) {
                        return Ok(None);
                    }
                    prev = Some(row.key);
                    rows += 1;
                }
            }
        }
    }
}

/// Cuts a file back to its last newline: what follows is an append a power cut interrupted.
fn cut_partial_line(path: &Path, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| context(path, e))?;
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let n = buf.len().min(pos as usize);
        f.seek(SeekFrom::Start(pos - n as u64))
            .map_err(|e| context(path, e))?;
        f.read_exact(&mut buf[..n]).map_err(|e| context(path, e))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = pos - n as u64 + i as u64 + 1;
            if keep != len {
                log::warn!(
                    "{}: cut {} bytes of an interrupted write after the last whole line",
                    path.display(),
                    len - keep
                );
                f.set_len(keep).map_err(|e| context(path, e))?;
                f.sync_all().map_err(|e| context(path, e))?;
            }
            return Ok(());
        }
        pos -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;
    use std::collections::BTreeMap;

    /// A fixed xorshift sequence, below `n` each: a failure repeats.
    fn numbers(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// Sorts rows into file order, folding those of one key.
    fn fold(order: &RowOrder, rows: &mut Vec<Row>) {
        order.sort(rows);
        rows.dedup_by(|b, a| {
            let same = a.key == b.key;
            if same {
                a.merge(b);
            }
            same
        });
    }

    /// A compaction of many appended runs and rows from memory, keys repeated within and
    /// across them, leaves one row per key in file order with the counts summed and the
    /// times widened, whatever the number of runs.
    #[test]
    fn a_compaction_folds_every_run_into_one_row_per_key() {
        let dir = std::env::temp_dir().join(format!("tsusen-daily-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let order = RowOrder::new();
        let day = 19_800;
        let mut rand = numbers(0x9e37_79b9_7f4a_7c15);
        // Forty batches of at most 20 rows stay under APPEND_FLOOR: all but the first append.
        for runs in [1usize, 2, 7, 40] {
            let mut files = DayFiles::open(&dir, 1000).unwrap();
            let mut want: BTreeMap<(u8, Option<u16>, [u8; 4]), Row> = BTreeMap::new();
            let mut batch = |files: &mut DayFiles, compact: bool| {
                let mut rows: Vec<Row> = (0..rand(20) + 1)
                    .map(|_| {
                        let first = day * 86_400 + rand(86_400) as i64;
                        let src = [203, 0, 113, rand(12) as u8];
                        let port = [None, Some(22), Some(443)][rand(3) as usize];
                        Row {
                            key: Key {
                                proto: [6, 17][rand(2) as usize],
                                port,
                                dst: Addr::v4([198, 51, 100, 7]),
                                src: Addr::v4(src),
                            },
                            first,
                            last: first + rand(86_400 - (first % 86_400) as u64) as i64,
                            count: rand(5) + 1,
                        }
                    })
                    .collect();
                order.sort(&mut rows);
                for r in &rows {
                    let k = (
                        r.key.proto,
                        r.key.port,
                        r.key.src.bytes()[..4].try_into().unwrap(),
                    );
                    want.entry(k).and_modify(|w| w.merge(r)).or_insert(*r);
                }
                files.write(day, &rows, compact).unwrap()
            };
            for _ in 0..runs {
                batch(&mut files, false);
            }
            let layout = files.layouts.get(&day).unwrap().runs.len();
            assert_eq!(
                layout, runs,
                "every batch after the first is appended as a run"
            );
            let n = batch(&mut files, true).expect("a compaction counts its rows");
            let mut want: Vec<Row> = want.into_values().collect();
            order.sort(&mut want);
            let path = files.path(day);
            let got = run_rows(&path, 0, fs::metadata(&path).unwrap().len());
            assert_eq!(got, want, "{runs} runs");
            assert_eq!(n, want.len() as u64);
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// Reads the rows of bytes `start..end` of a day file.
    fn run_rows(path: &Path, start: u64, end: u64) -> Vec<Row> {
        let mut f = File::open(path).unwrap();
        f.seek(SeekFrom::Start(start)).unwrap();
        let mut reader = RowReader::new(io::BufReader::new(f.take(end - start)));
        let mut rows = Vec::new();
        while let Some(r) = reader.next_row().unwrap() {
            rows.push(r.unwrap());
        }
        rows
    }

    /// A file that outgrows its base is compacted by a helper while runs go on being appended:
    /// once its merge is taken in, the file is that merge followed by the runs appended since,
    /// each run in order, and all of them together hold every row written; the day's end
    /// leaves one row per key.
    #[test]
    fn a_helper_compacts_while_runs_are_appended() {
        let dir = std::env::temp_dir().join(format!("tsusen-helper-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let order = RowOrder::new();
        let day = 19_800;
        let mut rand = numbers(0x853c_49e6_748f_ea9b);
        let mut files = DayFiles::open(&dir, 1000).unwrap();
        let path = files.path(day);
        let mut written: Vec<Row> = Vec::new();
        let mut batch = || {
            let mut rows: Vec<Row> = (0..3000)
                .map(|_| {
                    let first = day * 86_400 + rand(86_400) as i64;
                    Row {
                        key: Key {
                            proto: 6,
                            port: Some([22, 23, 445][rand(3) as usize]),
                            dst: Addr::v4([198, 51, 100, 7]),
                            src: Addr::v4([203, 0, rand(40) as u8, rand(256) as u8]),
                        },
                        first,
                        last: first,
                        count: 1,
                    }
                })
                .collect();
            fold(&order, &mut rows);
            rows
        };
        // The base, then runs until they outgrow it and a helper is set to work.
        let mut batches = 0;
        while files.helper.is_none() {
            let rows = batch();
            files.write(day, &rows, false).unwrap();
            written.extend_from_slice(&rows);
            batches += 1;
            assert!(batches < 10, "no helper was set to work");
        }
        let before = files.layouts.get(&day).unwrap().clone();
        // Two more runs while it works (whether or not it is done: it is taken in below).
        for _ in 0..2 {
            let rows = batch();
            assert!(files.append(day, &rows).unwrap());
            written.extend_from_slice(&rows);
        }
        files.join_helper(true).unwrap();
        let l = files.layouts.get(&day).unwrap().clone();
        assert_eq!(
            l.runs.len(),
            3,
            "the merge and the two runs after it: {before:?} {l:?}"
        );
        assert!(
            l.base == l.len && l.runs[1] > before.base,
            "{before:?} {l:?}"
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), l.len);
        // Each run in order; together, every row written.
        let mut all = Vec::new();
        for (i, &start) in l.runs.iter().enumerate() {
            let end = l.runs.get(i + 1).copied().unwrap_or(l.len);
            let run = run_rows(&path, start, end);
            assert!(!run.is_empty(), "run {i} at {start}");
            assert!(
                run.windows(2)
                    .all(|w| order.keys(&w[0].key, &w[1].key) == Ordering::Less),
                "run {i} at {start} out of order"
            );
            all.extend(run);
        }
        fold(&order, &mut all);
        fold(&order, &mut written);
        assert_eq!(all, written);
        let n = files.write(day, &[], true).unwrap();
        assert_eq!(n, Some(written.len() as u64));
        assert_eq!(
            run_rows(&path, 0, fs::metadata(&path).unwrap().len()),
            written
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
