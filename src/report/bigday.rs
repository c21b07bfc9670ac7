//! The figures of a day too large to read whole (more rows than REPORT_REQUEST_ROWS), for the
//! trendlines and the summary, in fixed memory: the rows stream from the file through the
//! figures and are never held. A flooded day is the day the chart matters most, and on a
//! router it is also the one that does not fit.
//!
//! The figures need the rows in file order, one per key. A compacted day (every day but today)
//! is one sorted run and streams in one pass. Today's file is its base followed by the sorted
//! runs of the flushes since: a first pass finds where each run starts, and a k-way merge of
//! the runs (and the live rows) gives the order, with read buffers of a fixed budget shared
//! by the runs, as the sensor's own compaction does.

use super::data::{Exact, Figures};
use super::days;
use super::query::Filter;
use crate::proto::SortRank;
use crate::store::RowReader;
use crate::tables::{Row, RowOrder};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Read buffers of one day in all, shared by its runs (each from 4 KiB to 64 KiB).
const READ_BUDGET: usize = 256 * 1024;
/// Runs merged at most. The sensor compacts a day file before it holds 128 runs; a file with
/// more was written by something else, in no order, and is refused as too large.
const MAX_RUNS: usize = 256;

/// A source of rows out of order: the run ends there.
struct NotSorted;

/// The figures of the day in `path` (its first `len` bytes; `None`: no file) and its live
/// rows (sorted, one per key), of the rows that `filter` keeps.
pub fn figures(
    path: &Path,
    len: Option<u64>,
    live: &[Row],
    order: &RowOrder,
    filter: &Filter,
    exact: Exact,
) -> io::Result<super::data::DayStats> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    // Every pass reads the file opened here: one the sensor renames over it meanwhile (a
    // compaction) is not mixed in.
    let (file, len) = match len {
        Some(len) => {
            let mut f = File::open(path).map_err(context)?;
            let len = days::whole_lines(&mut f, len).map_err(context)?;
            (Some(Arc::new(f)), len)
        }
        None => (None, 0),
    };
    let file = file.as_ref();
    // Most large days are compacted: try the file as one run first.
    if let Ok(stats) = merge(file, &[0, len], live, order, filter, exact).map_err(context)? {
        return Ok(stats);
    }
    // (Live rows alone never come out of order: only a file's runs are checked.)
    let Some(f) = file else {
        return Err(io::Error::other("live rows out of order"));
    };
    let mut starts = run_starts(f, len, order).map_err(context)?;
    if starts.len() > MAX_RUNS {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "{}: too large to read whole, and in more than {MAX_RUNS} sorted runs",
                path.display()
            ),
        ));
    }
    starts.push(len);
    merge(file, &starts, live, order, filter, exact)
        .map_err(context)?
        .map_err(|NotSorted| io::Error::other(format!("{}: changed while read", path.display())))
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
                        return Ok(Err(NotSorted));
                    }
                    self.prev = Some(row.key);
                    return Ok(Ok(Some(row)));
                }
            }
        }
    }
}

/// The figures of the runs between consecutive `bounds` merged with `live`, or `NotSorted`
/// when a run is out of order.
fn merge(
    file: Option<&Arc<File>>,
    bounds: &[u64],
    live: &[Row],
    order: &RowOrder,
    filter: &Filter,
    exact: Exact,
) -> io::Result<Result<super::data::DayStats, NotSorted>> {
    let rank = SortRank::new();
    let runs_n = bounds.len() - 1;
    let buffer = (READ_BUDGET / runs_n.max(1)).clamp(4096, 64 * 1024);
    let mut runs = Vec::with_capacity(runs_n);
    for w in bounds.windows(2).filter(|w| w[1] > w[0]) {
        let Some(file) = file else { break };
        let span = Span {
            file: file.clone(),
            at: w[0],
            end: w[1],
        };
        runs.push(Run {
            reader: RowReader::new(BufReader::with_capacity(buffer, span)),
            prev: None,
        });
    }
    // Heads of every source: the runs, then the live rows as the last.
    let live_at = runs.len();
    let mut live_rows = live.iter();
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(runs.len() + 1);
    for r in runs.iter_mut() {
        match r.next(order)? {
            Ok(h) => heads.push(h),
            Err(NotSorted) => return Ok(Err(NotSorted)),
        }
    }
    heads.push(live_rows.next().copied());
    let key = |r: &Row| super::data::sort_key(&rank, &r.key);
    let mut heap: BinaryHeap<Reverse<(super::data::SortKey, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|r| Reverse((key(r), i))))
        .collect();
    let mut figures = Figures::new(exact);
    let mut pending: Option<Row> = None;
    while let Some(Reverse((_, i))) = heap.pop() {
        let row = heads[i].take().expect("a head in the heap");
        let next = if i == live_at {
            live_rows.next().copied()
        } else {
            match runs[i].next(order)? {
                Ok(n) => n,
                Err(NotSorted) => return Ok(Err(NotSorted)),
            }
        };
        if let Some(n) = next {
            heap.push(Reverse((key(&n), i)));
            heads[i] = Some(n);
        }
        // Rows of one key from several runs fold into one.
        match pending.as_mut() {
            Some(p) if p.key == row.key => p.merge(&row),
            _ => {
                if let Some(p) = pending.replace(row) {
                    if filter.matches(&p) {
                        figures.push(&p);
                    }
                }
            }
        }
    }
    if let Some(p) = pending {
        if filter.matches(&p) {
            figures.push(&p);
        }
    }
    Ok(Ok(figures.finish()))
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
                port: (proto != 1).then_some(port),
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
        merge(&[&rows], &SortRank::new())
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

    fn same(a: &super::super::data::DayStats, b: &super::super::data::DayStats) {
        assert_eq!(
            (a.rows, a.attempts, a.sources, &a.ports, &a.top_sources),
            (b.rows, b.attempts, b.sources, &b.ports, &b.top_sources)
        );
    }

    #[test]
    fn runs_and_live_rows_stream_into_the_figures_of_their_merge() {
        let order = RowOrder::new();
        let rank = SortRank::new();
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
        let all = merge(&[&a, &b, &c, &live], &rank);
        let none = Filter::default();

        // Compacted: one run.
        let len = write(&path, &[&all]);
        let s = figures(&path, Some(len), &[], &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter()));
        assert!(!s.estimated);

        // Today's: a base, runs appended, live rows.
        let len = write(&path, &[&a, &b, &c]);
        let file = Arc::new(File::open(&path).unwrap());
        assert_eq!(run_starts(&file, len, &order).unwrap().len(), 3);
        let s = figures(&path, Some(len), &live, &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter()));
        // Live rows alone, and no file.
        let s = figures(&path, None, &live, &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(live.iter()));

        // A filter sees merged rows.
        let q = Query::parse("port=22").unwrap();
        let f = Filter::from_query(&q).unwrap();
        let s = figures(&path, Some(len), &live, &order, &f, Exact::ALL).unwrap();
        same(&s, &day_stats(all.iter().filter(|r| f.matches(r))));

        // A line being appended is left for the next read.
        let cut = merge(&[&a, &b, &c[..c.len() - 1]], &rank);
        let s = figures(&path, Some(len - 3), &[], &order, &none, Exact::ALL).unwrap();
        same(&s, &day_stats(cut.iter()));

        // Little room: counted figures stay exact, distinct sources are estimated.
        let small = Exact {
            group: 64,
            sources: 64,
        };
        let s = figures(&path, Some(len), &live, &order, &none, small).unwrap();
        let x = day_stats(all.iter());
        assert!(s.estimated);
        assert_eq!(
            (s.rows, s.attempts, s.ports.len()),
            (x.rows, x.attempts, x.ports.len())
        );
        assert!((s.sources as f64 - x.sources as f64).abs() < 0.05 * x.sources as f64);

        // Rows in no order at all (not a file of ours) are refused, not sorted in memory.
        let mut backwards = all.clone();
        backwards.reverse();
        let len = write(&path, &[&backwards[..400]]);
        let e = figures(&path, Some(len), &[], &order, &none, Exact::ALL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
