//! Which of k sorted sources holds the least head, for the k-way merge of a day file's runs.
//!
//! A flood appends a run at every early flush, so a compaction may merge a hundred runs. Looking
//! at every head for each row written costs k key comparisons a row; this binary heap of source
//! numbers costs about 2·log2 k.

/// Source numbers ordered by their heads, least first. The heads live with the caller, which
/// lends its comparison (`less(a, b)`: source `a`'s head comes before source `b`'s) to each
/// call that reorders.
pub struct Heads {
    heap: Vec<usize>,
}

impl Heads {
    /// The sources `live` (those with a head), ordered.
    pub fn new(live: impl Iterator<Item = usize>, less: impl Fn(usize, usize) -> bool) -> Heads {
        let mut h = Heads {
            heap: live.collect(),
        };
        for i in (0..h.heap.len() / 2).rev() {
            h.sink(i, &less);
        }
        h
    }

    /// The source whose head comes first, if any source has one left.
    #[inline]
    pub fn least(&self) -> Option<usize> {
        self.heap.first().copied()
    }

    /// The least source has a new head (it moved on): puts it where that head belongs.
    #[inline]
    pub fn moved(&mut self, less: impl Fn(usize, usize) -> bool) {
        self.sink(0, &less);
    }

    /// The least source ran dry: it leaves the heap.
    pub fn drained(&mut self, less: impl Fn(usize, usize) -> bool) {
        let Some(last) = self.heap.pop() else { return };
        if let Some(top) = self.heap.first_mut() {
            *top = last;
            self.sink(0, &less);
        }
    }

    /// Moves the source at `i` down until no child comes before it.
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

    /// Merging sorted lists through `Heads` gives every value once per occurrence, in order,
    /// for every count of lists from none to many and lists that run dry at different times.
    #[test]
    fn heads_come_out_least_first() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for k in [0usize, 1, 2, 3, 5, 8, 17, 64, 129] {
            let mut lists: Vec<Vec<u64>> = (0..k)
                .map(|_| {
                    let len = rand(40) as usize;
                    let mut l: Vec<u64> = (0..len).map(|_| rand(100)).collect();
                    l.sort_unstable();
                    l
                })
                .collect();
            let mut want: Vec<u64> = lists.iter().flatten().copied().collect();
            want.sort_unstable();
            // Each list's head is its last element once reversed: popping moves it on.
            for l in lists.iter_mut() {
                l.reverse();
            }
            let less = |lists: &[Vec<u64>], a: usize, b: usize| {
                lists[a].last().unwrap() < lists[b].last().unwrap()
            };
            let live = (0..k).filter(|&i| !lists[i].is_empty());
            let mut heads = Heads::new(live, |a, b| less(&lists, a, b));
            let mut got = Vec::new();
            while let Some(s) = heads.least() {
                got.push(lists[s].pop().unwrap());
                if lists[s].is_empty() {
                    heads.drained(|a, b| less(&lists, a, b));
                } else {
                    heads.moved(|a, b| less(&lists, a, b));
                }
            }
            assert_eq!(got, want, "{k} lists");
        }
    }
}
