//! The k-way merge of rows in file order, wherever sorted rows meet: a day file's runs at a
//! compaction, the runs and live rows a report streams, the days of a period in memory.

use super::row::{Row, RowOrder};
use std::cmp::Ordering;

/// Merges `sources` sources of rows, each in file order, into one row per key in file order:
/// `next(i)` gives source `i`'s next row (`None` once it is done), and `push` takes each
/// merged row. Rows of one key, from several sources or repeated within one, fold into one.
/// Stops at the first error of either.
///
/// The sources wait in a binary heap of their numbers, ordered by their heads: about
/// 2·log2 k comparisons a row for k sources. A flood appends a run to the day file at every
/// early flush, and a compaction that looked at every head for each row compared k. The heap
/// holds numbers rather than heads with their places (as `BinaryHeap` would): moving 48-byte
/// entries cost more than the comparisons they spare.
pub fn merge<E>(
    order: &RowOrder,
    sources: usize,
    mut next: impl FnMut(usize) -> Result<Option<Row>, E>,
    mut push: impl FnMut(&Row) -> Result<(), E>,
) -> Result<(), E> {
    let mut heads: Vec<Option<Row>> = Vec::with_capacity(sources);
    for i in 0..sources {
        heads.push(next(i)?);
    }
    // Only sources with a head are in the heap.
    let less = |heads: &[Option<Row>], a: usize, b: usize| match (&heads[a], &heads[b]) {
        (Some(a), Some(b)) => order.keys(&a.key, &b.key) == Ordering::Less,
        _ => false,
    };
    let live = (0..sources).filter(|&i| heads[i].is_some());
    let mut heap = Heap::new(live, |a, b| less(&heads, a, b));
    let mut pending: Option<Row> = None;
    while let Some(i) = heap.least() {
        let row = heads[i].expect("a source in the heap has a head");
        heads[i] = next(i)?;
        if heads[i].is_some() {
            heap.moved(|a, b| less(&heads, a, b));
        } else {
            heap.drained(|a, b| less(&heads, a, b));
        }
        match pending.as_mut() {
            Some(p) if p.key == row.key => p.merge(&row),
            _ => {
                if let Some(p) = pending.replace(row) {
                    push(&p)?;
                }
            }
        }
    }
    if let Some(p) = pending {
        push(&p)?;
    }
    Ok(())
}

/// Source numbers ordered by their heads, least first. The heads live with the caller, which
/// lends its comparison (`less(a, b)`: source `a`'s head comes before source `b`'s) to each
/// call that reorders.
struct Heap {
    heap: Vec<usize>,
}

impl Heap {
    fn new(live: impl Iterator<Item = usize>, less: impl Fn(usize, usize) -> bool) -> Heap {
        let mut h = Heap {
            heap: live.collect(),
        };
        for i in (0..h.heap.len() / 2).rev() {
            h.sink(i, &less);
        }
        h
    }

    /// The source whose head comes first, if any source has one left.
    #[inline]
    fn least(&self) -> Option<usize> {
        self.heap.first().copied()
    }

    /// The least source has a new head: puts it where that head belongs.
    #[inline]
    fn moved(&mut self, less: impl Fn(usize, usize) -> bool) {
        self.sink(0, &less);
    }

    /// The least source ran dry: it leaves the heap.
    fn drained(&mut self, less: impl Fn(usize, usize) -> bool) {
        let Some(last) = self.heap.pop() else { return };
        if let Some(top) = self.heap.first_mut() {
            *top = last;
            self.sink(0, &less);
        }
    }

    /// Moves the source at `i` down until no child comes before it.
    #[inline]
    fn sink(&mut self, mut i: usize, less: &impl Fn(usize, usize) -> bool) {
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                return;
            }
            let right = left + 1;
            let child = if right < n && less(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !less(self.heap[child], self.heap[i]) {
                return;
            }
            self.heap.swap(i, child);
            i = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;
    use crate::tables::Key;

    /// Sorted sources, from none to many, keys repeated within and across them, merge into
    /// the rows of every key folded, in order; an error of a source or of the taker stops the
    /// merge where it happens.
    #[test]
    fn sources_merge_into_one_row_per_key_in_order() {
        let order = RowOrder::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for k in [0usize, 1, 2, 3, 5, 17, 129] {
            let mut lists: Vec<Vec<Row>> = (0..k)
                .map(|_| {
                    let mut l: Vec<Row> = (0..rand(30))
                        .map(|_| {
                            let first = rand(86_400) as i64;
                            Row {
                                key: Key {
                                    proto: [6, 17, 1][rand(3) as usize],
                                    port: [None, Some(22), Some(80)][rand(3) as usize],
                                    dst: Addr::v4([198, 51, 100, rand(3) as u8]),
                                    src: Addr::v4([203, 0, 113, rand(9) as u8]),
                                },
                                first,
                                last: first + rand(100) as i64,
                                count: rand(4) + 1,
                            }
                        })
                        .collect();
                    order.sort(&mut l);
                    l
                })
                .collect();
            let mut want: Vec<Row> = Vec::new();
            let mut all: Vec<Row> = lists.iter().flatten().copied().collect();
            order.sort(&mut all);
            for r in all {
                match want.last_mut() {
                    Some(w) if w.key == r.key => w.merge(&r),
                    _ => want.push(r),
                }
            }
            let mut at = vec![0; k];
            let mut got = Vec::new();
            let done: Result<(), ()> = merge(
                &order,
                k,
                |i| {
                    at[i] += 1;
                    Ok(lists[i].get(at[i] - 1).copied())
                },
                |r| {
                    got.push(*r);
                    Ok(())
                },
            );
            assert_eq!(done, Ok(()));
            assert_eq!(got, want, "{k} sources");
            // A source that fails half-way stops the merge with its error.
            if let Some(l) = lists.iter_mut().find(|l| l.len() > 2) {
                l.truncate(2);
                let failing = lists.iter().position(|l| l.len() == 2).unwrap();
                let mut at = vec![0; k];
                let mut pushed = 0;
                let done = merge(
                    &order,
                    k,
                    |i| {
                        at[i] += 1;
                        match lists[i].get(at[i] - 1) {
                            None if i == failing => Err("cut"),
                            r => Ok(r.copied()),
                        }
                    },
                    |_| {
                        pushed += 1;
                        Ok(())
                    },
                );
                assert_eq!(done, Err("cut"), "{k} sources");
                assert!(pushed < want.len(), "{k} sources");
            }
        }
    }
}
