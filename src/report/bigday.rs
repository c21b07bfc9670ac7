//! Days too large to read whole (more rows than REPORT_REQUEST_ROWS), streamed in fixed
//! memory: their rows pass from the files through what the answer needs (a day's figures for
//! the trendlines and the summary, one page of the details) and are never held. A flooded day
//! is the day the chart matters most, and on a router it is also the one that does not fit.
//!
//! The answers need the rows in file order, one per key. A compacted day (every day but today)
//! is one sorted run. Today's file is its base followed by the sorted runs of the flushes
//! since. So the period streams first as if each file were one run; a file found out of order
//! has its runs found by a pass of its own and the stream starts over. One k-way merge of all
//! the runs and live rows of the period gives the order, with read buffers of a fixed budget
//! shared by the runs, as the sensor's own compaction does; rows of one key fold into one,
//! across days too, as the period's merge in memory does.

use super::data::{self, Exact, Figures};
use super::days;
use super::query::Filter;
use crate::store::RowReader;
use crate::tables::{merge as merge_rows, Row, RowOrder};
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Read buffers of one stream in all, shared by its runs (each from 4 KiB to 64 KiB).
const READ_BUDGET: usize = 256 * 1024;
/// Runs merged at most (each day's file is one at least): a year of compacted days and today's
/// file, which the sensor compacts before it holds 128 runs. A file in many more was written
/// by something else, in no order, and is refused as too large.
const MAX_RUNS: usize = 512;

/// Run `run` of the stream came out of order.
struct NotSorted(usize);

/// One day of a stream: its file (the first `len` bytes as listed; `None`: no file) and its
/// live rows (sorted, one per key).
pub struct Day {
    pub path: PathBuf,
    pub len: Option<u64>,
    pub live: Arc<Vec<Row>>,
}

/// A day's file as streamed: opened once, so that every pass reads the same file even if the
/// sensor renames a compacted one over it meanwhile, and the bounds of its runs.
struct Opened {
    path: PathBuf,
    file: Arc<File>,
    bounds: Vec<u64>,
    /// Its runs were found by a pass: out of order now means it changed.
    split: bool,
}

/// The rows of `days` merged per key in file order, each given to `push` on what `start`
/// made; what comes back is what `push` made of them all.
pub fn stream<S>(
    days: &[Day],
    order: &RowOrder,
    mut start: impl FnMut() -> S,
    mut push: impl FnMut(&mut S, &Row),
) -> io::Result<S> {
    let context =
        |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let mut files = Vec::new();
    for d in days {
        if let Some(len) = d.len {
            let mut f = File::open(&d.path).map_err(|e| context(&d.path, e))?;
            let len = days::whole_lines(&mut f, len).map_err(|e| context(&d.path, e))?;
            files.push(Opened {
                path: d.path.clone(),
                file: Arc::new(f),
                bounds: vec![0, len],
                split: false,
            });
        }
    }
    let live: Vec<&[Row]> = days.iter().map(|d| d.live.as_slice()).collect();
    loop {
        let mut sink = start();
        let Err(NotSorted(run)) = merge(&files, &live, order, &mut sink, &mut push)? else {
            return Ok(sink);
        };
        // The file that run belongs to has several: find them, and start over.
        let mut i = 0;
        let mut left = run;
        while left >= files[i].bounds.len() - 1 {
            left -= files[i].bounds.len() - 1;
            i += 1;
        }
        let f = &mut files[i];
        if f.split {
            return Err(io::Error::other(format!(
                "{}: changed while read",
                f.path.display()
            )));
        }
        let len = *f.bounds.last().expect("bounds end with the length");
        let mut bounds = run_starts(&f.file, len, order).map_err(|e| context(&f.path, e))?;
        bounds.push(len);
        f.bounds = bounds;
        f.split = true;
        let runs: usize = files.iter().map(|f| f.bounds.len() - 1).sum();
        if runs > MAX_RUNS {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!(
                    "{}: too large to read whole, and in more than {MAX_RUNS} sorted runs \
                     with the rest of the period",
                    files[i].path.display()
                ),
            ));
        }
    }
}

/// The figures of one day streamed, of the rows that `filter` keeps.
pub fn figures(
    day: &Day,
    order: &RowOrder,
    filter: &Filter,
    exact: Exact,
) -> io::Result<data::DayStats> {
    let figures = stream(
        std::slice::from_ref(day),
        order,
        || Figures::new(exact),
        |f, r| {
            if filter.matches(r) {
                f.push(r)
            }
        },
    )?;
    Ok(figures.finish())
}

/// Bytes `at..end` of a file shared by several readers, each with its own position.
struct Span {
    file: Arc<File>,
    at: u64,
    end: u64,
}

impl Read for Span {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.end.saturating_sub(self.at) as usize);
        let n = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Where each sorted run of the file's first `len` bytes starts.
fn run_starts(file: &Arc<File>, len: u64, order: &RowOrder) -> io::Result<Vec<u64>> {
    let span = Span {
        file: file.clone(),
        at: 0,
        end: len,
    };
    let mut reader = RowReader::new(BufReader::with_capacity(64 * 1024, span));
    let mut starts = vec![0];
    let mut prev = None;
    loop {
        let at = reader.position();
        let Some(row) = reader.next_row()? else {
            break;
        };
        let Ok(row) = row else { continue };
        if prev.is_some_and(|p| order.keys(&p, &row.key) != Ordering::Less) {
            starts.push(at);
            if starts.len() > MAX_RUNS {
                break;
            }
        }
        prev = Some(row.key);
    }
    Ok(starts)
}

/// One run of the file: rows strictly in order, else `NotSorted`.
struct Run {
    /// Its number in the stream, for `NotSorted`.
    index: usize,
    reader: RowReader<BufReader<Span>>,
    prev: Option<crate::tables::Key>,
}

impl Run {
    fn next(&mut self, order: &RowOrder) -> io::Result<Result<Option<Row>, NotSorted>> {
        loop {
            match self.reader.next_row()? {
                None => return Ok(Ok(None)),
                Some(Err(_)) => continue,
                Some(Ok(row)) => {
                    if self
                        .prev
                        .is_some_and(|p| order.keys(&p, &row.key) != Ordering::Less)
                    {
                        return Ok(Err(NotSorted(self.index)));
                    }
                    self.prev = Some(row.key);
                    return Ok(Ok(Some(row)));
                }
            }
        }
    }
}

/// One pass of the stream: every run of `files` and every slice of `live`, merged.
fn merge<S>(
    files: &[Opened],
    live: &[&[Row]],
    order: &RowOrder,
    sink: &mut S,
    push: &mut impl FnMut(&mut S, &Row),
) -> io::Result<Result<(), NotSorted>> {
    let runs_n: usize = files.iter().map(|f| f.bounds.len() - 1).sum();
    let buffer = (READ_BUDGET / runs_n.max(1)).clamp(4096, 64 * 1024);
    let mut runs = Vec::with_capacity(runs_n);
    for f in files {
        for w in f.bounds.windows(2) {
            // An empty run (an empty file) still counts, so run numbers map to files.
            let span = Span {
                file: f.file.clone(),
                at: w[0],
                end: w[1],
            };
            runs.push(Run {
                index: runs.len(),
                reader: RowReader::new(BufReader::with_capacity(buffer, span)),
                prev: None,
            });
        }
    }
    // Sources: the runs, then the live slices.
    let mut live_rows: Vec<std::slice::Iter<'_, Row>> = live.iter().map(|l| l.iter()).collect();
    let n = runs.len();
    let next = |i: usize| -> Result<Option<Row>, Stop> {
        if i >= n {
            return Ok(live_rows[i - n].next().copied());
        }
        match runs[i].next(order) {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(Stop::NotSorted(e)),
            Err(e) => Err(Stop::Io(e)),
        }
    };
    let merged = merge_rows(order, n + live.len(), next, |row| {
        push(sink, row);
        Ok(())
    });
    match merged {
        Ok(()) => Ok(Ok(())),
        Err(Stop::NotSorted(e)) => Ok(Err(e)),
        Err(Stop::Io(e)) => Err(e),
    }
}

/// Why a pass of the stream stopped short.
enum Stop {
    Io(io::Error),
    NotSorted(NotSorted),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;
    use crate::report::data::{day_stats, merge};
    use crate::report::query::Query;
    use crate::store::RowWriter;
    use crate::tables::Key;

    fn row(proto: u8, port: u16, dst: u8, src: u32, first: i64, count: u64) -> Row {
        Row {
            key: Key {
                proto,
                // Only protocols with ports have one in a file.
                port: matches!(proto, 6 | 17).then_some(port),
                dst: Addr::v4([198, 51, 100, dst]),
                src: Addr::v4(src.to_be_bytes()),
            },
            first,
            last: first + 7,
            count,
        }
    }

    /// Rows `i` in `range`, spread over protocols, ports, targets and sources, sorted.
    fn part(range: std::ops::Range<u32>, first: i64, order: &RowOrder) -> Vec<Row> {
        let mut rows: Vec<Row> = range
            .map(|i| {
                let proto = [6, 17, 1][(i % 3) as usize];
                row(
                    proto,
                    20 + (i % 7) as u16,
                    (i % 5) as u8,
                    i % 600,
                    first,
                    1 + i as u64 % 4,
                )
            })
            .collect();
        rows.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
        merge(&[&rows], &RowOrder::new())
    }

    fn write(path: &Path, runs: &[&[Row]]) -> u64 {
        let mut w = RowWriter::new(Vec::new());
        w.header().unwrap();
        for run in runs {
            for r in *run {
                w.row(r).unwrap();
            }
        }
        let bytes = w.into_inner();
        std::fs::write(path, &bytes).unwrap();
        bytes.len() as u64
    }

    fn day(path: &Path, len: Option<u64>, live: &[Row]) -> Day {
        Day {
            path: path.to_owned(),
            len,
            live: Arc::new(live.to_vec()),
        }
    }

    fn same(a: &super::super::data::DayStats, b: &super::super::data::DayStats) {
        assert_eq!(
            (a.rows, a.attempts, a.sources, &a.ports, &a.top_sources),
            (b.rows, b.attempts, b.sources, &b.ports, &b.top_sources)
        );
    }

    /// Random periods of random runs, with lines that are not rows among them, stream into
    /// the rows of their merge in memory.
    #[test]
    fn random_runs_stream_as_their_merge() {
        let order = RowOrder::new();
        let dir = std::env::temp_dir().join(format!("tsusen-bigday-r-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Sorted in file order, one row per key, as a run is.
        let sorted = |mut v: Vec<Row>| {
            v.sort_unstable_by(|a, b| order.keys(&a.key, &b.key));
            merge(&[&v], &order)
        };
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        for round in 0..40 {
            let mut period = Vec::new();
            let mut all: Vec<Vec<Row>> = Vec::new();
            for d in 0..1 + rand(3) {
                let path = dir.join(format!("2024-03-0{}.csv", d + 1));
                let runs = rand(5);
                let mut text =
                    b"proto dst_port dst_ip src_ip first_seen last_seen count\n".to_vec();
                for _ in 0..runs {
                    let run: Vec<Row> = (0..rand(60))
                        .map(|_| {
                            let proto = [6, 17, 1, 47][rand(4) as usize];
                            let (port, dst, src) = (rand(9) as u16, rand(3) as u8, rand(40) as u32);
                            row(
                                proto,
                                port,
                                dst,
                                src,
                                1_709_251_200 + rand(80_000) as i64,
                                1 + rand(3),
                            )
                        })
                        .collect();
                    let run = sorted(run);
                    // Rows, and now and then a line that is not one.
                    let mut w = RowWriter::new(Vec::new());
                    for r in &run {
                        w.row(r).unwrap();
                    }
                    for line in w.into_inner().split_inclusive(|&b| b == b'\n') {
                        text.extend_from_slice(line);
                        if rand(12) == 0 {
                            text.extend_from_slice(b"TCP not a row\n");
                        }
                    }
                    all.push(run);
                }
                let len = if runs == 0 && rand(2) == 0 {
                    None
                } else {
                    std::fs::write(&path, &text).unwrap();
                    Some(text.len() as u64)
                };
                let live: Vec<Row> = (0..rand(20))
                    .map(|_| {
                        row(
                            6,
                            rand(9) as u16,
                            rand(3) as u8,
                            rand(40) as u32,
                            1_709_300_000,
                            1,
                        )
                    })
                    .collect();
                let live = sorted(live);
                all.push(live.clone());
                period.push(day(&path, len, &live));
            }
            let parts: Vec<&[Row]> = all.iter().map(|v| v.as_slice()).collect();
            let rows = stream(&period, &order, Vec::new, |v, r| v.push(*r)).unwrap();
            let want = merge(&parts, &order);
            assert!(
                rows == want,
                "round {round}: {} rows, not {}",
                rows.len(),
                want.len()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runs_and_live_rows_stream_into_the_figures_of_their_merge() {
        let order = RowOrder::new();
        let dir = std::env::temp_dir().join(format!("tsusen-bigday-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("2024-03-05.csv");
        let base = 1_709_596_800;
        // A base and two flushes' runs that share keys with it, and live rows.
        let (a, b, c) = (
            part(0..3000, base, &order),
            part(2000..4500, base + 60, &order),
            part(4000..5000, base + 120, &order),
        );
        let live = part(4800..5600, base + 180, &order);
        let all = merge(&[&a, &b, &c, &live], &order);
        let none = Filter::default();

        // Compacted: one run.
        let len = write(&path, &[&all]);
        let s = figures(&day(&path, Some(len), &[]), &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter()));
        assert!(!s.estimated);

        // Today's: a base, runs appended, live rows.
        let len = write(&path, &[&a, &b, &c]);
        let file = Arc::new(File::open(&path).unwrap());
        assert_eq!(run_starts(&file, len, &order).unwrap().len(), 3);
        let s = figures(&day(&path, Some(len), &live), &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter()));
        // Live rows alone, and no file.
        let s = figures(&day(&path, None, &live), &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(live.iter()));

        // A filter sees merged rows.
        let q = Query::parse("port=22").unwrap();
        let f = Filter::from_query(&q).unwrap();
        let s = figures(&day(&path, Some(len), &live), &order, &f, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter().filter(|r| f.matches(r))));

        // A line being appended is left for the next read.
        let cut = merge(&[&a, &b, &c[..c.len() - 1]], &order);
        let s = figures(&day(&path, Some(len - 3), &[]), &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(cut.iter()));

        // Little room: counted figures stay exact, distinct sources are estimated.
        let small = Exact {
            group: 64,
            sources: 64,
        };
        let s = figures(&day(&path, Some(len), &live), &order, &none, small).unwrap();
        let x = day_stats(all.iter());
        assert!(s.estimated);
        assert_eq!(
            (s.rows, s.attempts, s.ports.len()),
            (x.rows, x.attempts, x.ports.len())
        );
        assert!((s.sources as f64 - x.sources as f64).abs() < 0.05 * x.sources as f64);

        // A period: a compacted day before a day of runs with live rows; keys of both days
        // fold into one row, as the merge in memory folds them.
        let before = dir.join("2024-03-04.csv");
        let before_rows = part(1000..3500, base - 86_400, &order);
        let before_len = write(&before, &[&before_rows]);
        let period = [
            day(&before, Some(before_len), &[]),
            day(&path, Some(len), &live),
        ];
        let rows = stream(&period, &order, Vec::new, |v, r| v.push(*r)).unwrap();
        assert!(rows == merge(&[&before_rows, &a, &b, &c, &live], &order));

        // Rows in no order at all (not a file of ours) are refused, not sorted in memory.
        let mut backwards = all.clone();
        backwards.reverse();
        let len = write(&path, &[&backwards]);
        let e = figures(&day(&path, Some(len), &[]), &order, &none, Exact::ALL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
