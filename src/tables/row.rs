//! One row of a daily file, and the order rows are written in.

use crate::addr::Addr;
use crate::proto::SortRank;
use std::cmp::Ordering;

/// What one row counts: attempts of one protocol to one port of one of our addresses, from one
/// source, on the day of the row's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub proto: u8,
    /// `None` for protocols without ports (written `-`).
    pub port: Option<u16>,
    pub dst: Addr,
    pub src: Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    /// Whole Unix seconds of the day's first and last attempt.
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

impl Row {
    /// The UTC day (days since 1970-01-01) the row belongs to.
    #[inline]
    pub fn day(&self) -> i64 {
        day_of(self.first)
    }

    /// Folds another row of the same key and day into this one.
    #[inline]
    pub fn merge(&mut self, other: &Row) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.count = self.count.saturating_add(other.count);
    }
}

#[inline]
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(86_400)
}

/// The file order: protocol name as text, port with `-` first, destination, then source
/// (IPv4 before IPv6). Rows of different days are kept apart by day first.
pub struct RowOrder {
    rank: SortRank,
}

impl RowOrder {
    pub fn new() -> RowOrder {
        RowOrder {
            rank: SortRank::new(),
        }
    }

    #[inline]
    pub fn keys(&self, a: &Key, b: &Key) -> Ordering {
        self.rank
            .of(a.proto)
            .cmp(&self.rank.of(b.proto))
            .then(a.port.cmp(&b.port))
            .then(a.dst.cmp(&b.dst))
            .then(a.src.cmp(&b.src))
    }

    #[inline]
    pub fn rows(&self, a: &Row, b: &Row) -> Ordering {
        a.day()
            .cmp(&b.day())
            .then_with(|| self.keys(&a.key, &b.key))
    }

    /// Sorts rows into file order by comparing them, in place. `sort_with` is the fast way.
    pub fn sort(&self, rows: &mut [Row]) {
        rows.sort_unstable_by(|a, b| self.rows(a, b));
    }

    /// Sorts rows into file order as `sort` does, with `scratch` as room beside them: from two
    /// words a row to four and 36,864 more, whatever they hold. Returns how many words it
    /// wrote, from the start (0 when it did without), left for the caller to clear: the
    /// attempt table lends its index, which it empties at a flush anyway, so the sort adds
    /// nothing to the peak memory and no pass of its own to clear.
    ///
    /// Each row's place in the order is cut to 99 bits (day, protocol rank, port, and the
    /// first 32 bits of each address with its family) and kept beside the row's number. Those
    /// pairs are sorted (by radix where the room allows, else as 128-bit integers), cheap to
    /// move, and the 64-byte rows then move once each, where a sort of the rows themselves
    /// moves them at every step. Rows whose cut places tie (IPv6 addresses that share their
    /// first 32 bits) are ordered by their addresses among themselves. Without the room, or
    /// for rows the cut does not fit, this is `sort`.
    pub fn sort_with(&self, rows: &mut [Row], scratch: &mut [u64]) -> usize {
        let n = rows.len();
        // A row's day grows with its first second: the days' range is that of the seconds.
        let (first, last) = rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.first), hi.max(r.first))
        });
        let (base, last) = (day_of(first), day_of(last));
        // The day takes 8 bits of the cut: rows of more days than that (never from a live
        // table) are compared in full.
        if !(2..=CUT_ROWS).contains(&n) || scratch.len() < 2 * n || last - base >= 256 {
            self.sort(rows);
            return 0;
        }
        let used = if scratch.len() >= 2 * n + radix_room(n) {
            2 * n + radix_room(n)
        } else {
            2 * n
        };
        let (items, room) = scratch[..used].split_at_mut(2 * n);
        let (items, _) = items.as_chunks_mut::<2>();
        for (i, (item, r)) in items.iter_mut().zip(rows.iter()).enumerate() {
            let cut = self.cut(r, base, base == last);
            *item = [
                (cut >> CUT_LOW) as u64,
                (cut as u64 & CUT_LOW_MASK) << ROW_BITS | i as u64,
            ];
        }
        let items = if room.is_empty() {
            items.sort_unstable_by_key(pair_key);
            items
        } else {
            let (spare, counts) = room.split_at_mut(2 * n);
            let (spare, _) = spare.as_chunks_mut::<2>();
            if radix_sort(items, spare, counts) {
                spare
            } else {
                items
            }
        };
        let place = |item: &[u64; 2]| (item[0], item[1] >> ROW_BITS);
        let row_of = |item: &[u64; 2]| (item[1] & ROW_MASK) as usize;
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && place(&items[end]) == place(&items[start]) {
                end += 1;
            }
            if end - start > 1 {
                // One place is one day, protocol and port: the addresses tell the rows apart.
                // Compared where they lie: a key of the two addresses would copy 34 bytes
                // at every comparison.
                items[start..end].sort_unstable_by(|a, b| {
                    let (a, b) = (&rows[row_of(a)].key, &rows[row_of(b)].key);
                    a.dst.cmp(&b.dst).then_with(|| a.src.cmp(&b.src))
                });
            }
            start = end;
        }
        // Each place `j` takes the row `items[j]` names, cycle by cycle; a place done names
        // itself.
        for k in 0..n {
            if row_of(&items[k]) == k {
                continue;
            }
            let held = rows[k];
            let mut j = k;
            loop {
                let from = row_of(&items[j]);
                items[j][1] = j as u64;
                if from == k {
                    rows[j] = held;
                    break;
                }
                rows[j] = rows[from];
                j = from;
            }
        }
        used
    }

    /// The first 99 bits of a row's place in the order (see `sort_with`): what follows an
    /// IPv6 address's first 32 bits is left zero, for those rows are told apart in full.
    #[inline]
    fn cut(&self, r: &Row, base: i64, one_day: bool) -> u128 {
        let top = |a: &Addr| {
            let b = a.bytes();
            (a.is_v6() as u128) << 32 | u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u128
        };
        let port = r.key.port.map_or(0, |p| p as u128 + 1);
        // Rows of one day (a live flush's) all take day 0, without a division each.
        let day = if one_day { 0 } else { r.day() - base };
        let head = (day as u128) << 91
            | (self.rank.of(r.key.proto) as u128) << 83
            | port << 66
            | top(&r.key.dst) << 33;
        if r.key.dst.is_v6() {
            head
        } else {
            head | top(&r.key.src)
        }
    }
}

/// How `sort_with` packs a row's cut place and number into two words: the place's top 64
/// bits, then its low `CUT_LOW` bits above the row's number in `ROW_BITS`.
const CUT_LOW: u32 = 35;
const CUT_LOW_MASK: u64 = (1 << CUT_LOW) - 1;
const ROW_BITS: u32 = 64 - CUT_LOW;
const ROW_MASK: u64 = (1 << ROW_BITS) - 1;
/// Most rows `sort_with` numbers in `ROW_BITS`.
const CUT_ROWS: usize = 1 << ROW_BITS;
/// The cut place as the radix sort reads it: nine digits of 10 to 12 bits, each within one
/// word of a pair (word, lowest bit, bits), the lowest first. Nine tables of counts stay in
/// the cache, and a digit is one shift and one mask.
const DIGIT_AT: [(usize, u32, u32); 9] = [
    (1, ROW_BITS, 12),
    (1, ROW_BITS + 12, 12),
    (1, ROW_BITS + 24, 11),
    (0, 0, 11),
    (0, 11, 11),
    (0, 22, 11),
    (0, 33, 11),
    (0, 44, 10),
    (0, 54, 10),
];
const DIGITS: usize = DIGIT_AT.len();
const RADIX: usize = 1 << 12;
// The digits cover the cut's 99 bits: 35 in the low word above the row's number, 64 in the
// high word.
const _: () = assert!(ROW_BITS + 35 == 64 && CUT_LOW == 35);
/// Words of room the radix sort takes beside the pairs, for `n` rows: as many again, and the
/// counts.
const fn radix_room(n: usize) -> usize {
    2 * n + DIGITS * RADIX
}

/// Digit `i` (0 the lowest) of a pair's cut place: a shift and a mask.
#[inline(always)]
fn digit_at(item: &[u64; 2], i: usize) -> usize {
    let (word, low, bits) = DIGIT_AT[i];
    (item[word] >> low) as usize & ((1 << bits) - 1)
}

/// `digit_at` for a digit known when compiled: a constant shift and mask.
#[inline(always)]
fn digit<const I: usize>(item: &[u64; 2]) -> usize {
    digit_at(item, I)
}

/// Counts digit `I` of a pair.
#[inline(always)]
fn count<const I: usize>(counts: &mut [u64], item: &[u64; 2]) {
    counts[I * RADIX + digit::<I>(item)] += 1;
}

/// Moves the pairs of `src` to `dst` in the order of their digit `I`, keeping the order of
/// equals; `next` holds where each digit's pairs start.
///
/// # Safety
/// `next` must have been made from the counts of digit `I` of exactly the pairs of `src`
/// (each count the sum of those before it), and `dst` be as long as `src`: then the pairs of
/// one digit fill `dst` from their start up to the next digit's, and every place lies in it.
unsafe fn scatter<const I: usize>(src: &[[u64; 2]], dst: &mut [[u64; 2]], next: &mut [u64]) {
    debug_assert_eq!(src.len(), dst.len());
    for item in src {
        let d = digit::<I>(item);
        let at = next[d] as usize;
        debug_assert!(at < dst.len());
        // SAFETY: see above. The unchecked move is a third shorter, and it runs once per
        // pair for each digit the pairs do not all share.
        unsafe { *dst.get_unchecked_mut(at) = *item };
        next[d] += 1;
    }
}

/// A pair of words as the 128-bit number it packs.
#[inline(always)]
fn pair_key(item: &[u64; 2]) -> u128 {
    (item[0] as u128) << 64 | item[1] as u128
}

/// Sorts pairs by their cut places (the bits above the row number; pairs of one place keep
/// the order they came in), into `items` or `spare` (as many pairs, any content): true when
/// it is `spare`. `counts` has room for `DIGITS * RADIX` words, any content.
///
/// A least-significant-digit radix sort: one pass counts every digit, then each digit the
/// pairs do not all share moves every pair once, and a digit they all share (the day, most
/// of our addresses) is skipped. For the 74,000 rows of a flush of the replay benchmark a
/// quicksort of the 128-bit numbers compared and moved each pair 17 levels deep.
fn radix_sort(items: &mut [[u64; 2]], spare: &mut [[u64; 2]], counts: &mut [u64]) -> bool {
    let n = items.len();
    if n < 2 {
        return false;
    }
    // As long as `items`, as the scatters' safety needs.
    let spare = &mut spare[..n];
    let counts = &mut counts[..DIGITS * RADIX];
    counts.fill(0);
    for item in items.iter() {
        count::<0>(counts, item);
        count::<1>(counts, item);
        count::<2>(counts, item);
        count::<3>(counts, item);
        count::<4>(counts, item);
        count::<5>(counts, item);
        count::<6>(counts, item);
        count::<7>(counts, item);
        count::<8>(counts, item);
    }
    let mut from_items = true;
    for i in 0..DIGITS {
        let next = &mut counts[i * RADIX..(i + 1) * RADIX];
        if next[digit_at(&items[0], i)] == n as u64 {
            // All pairs share this digit.
            continue;
        }
        // Each count becomes where the pairs of its digit start.
        let mut at = 0;
        for c in next.iter_mut() {
            let k = *c;
            *c = at;
            at += k;
        }
        let (src, dst): (&[[u64; 2]], &mut [[u64; 2]]) = if from_items {
            (items, spare)
        } else {
            (spare, items)
        };
        // SAFETY: `next` was made just above from the counts of digit `i` of every pair, and
        // `src` holds every pair (it is `items` or the permutation of them the last scatter
        // left in `spare`, as long).
        unsafe {
            match i {
                0 => scatter::<0>(src, dst, next),
                1 => scatter::<1>(src, dst, next),
                2 => scatter::<2>(src, dst, next),
                3 => scatter::<3>(src, dst, next),
                4 => scatter::<4>(src, dst, next),
                5 => scatter::<5>(src, dst, next),
                6 => scatter::<6>(src, dst, next),
                7 => scatter::<7>(src, dst, next),
                _ => scatter::<8>(src, dst, next),
            }
        }
        from_items = !from_items;
    }
    !from_items
}

impl Default for RowOrder {
    fn default() -> Self {
        RowOrder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_rows() -> Vec<Row> {
        let addrs = [
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([198, 51, 100, 9]),
            Addr::v4([198, 51, 101, 9]),
            Addr::v4([255, 255, 255, 255]),
            Addr::from("::".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("::ffff:10.0.0.1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("2001:db8::1".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("2001:db8::1:0".parse::<std::net::IpAddr>().unwrap()),
            Addr::from("ffff::1".parse::<std::net::IpAddr>().unwrap()),
        ];
        let mut rows = Vec::new();
        for (i, proto) in [6u8, 17, 1, 58, 47, 132, 0, 255].into_iter().enumerate() {
            for port in [None, Some(0), Some(22), Some(255), Some(256), Some(65535)] {
                for (j, dst) in addrs.iter().enumerate() {
                    for k in 0..3 {
                        let src = addrs[(i + j + k) % addrs.len()];
                        for first in [0i64, 86_399, 86_400, 86_400 * 300] {
                            let key = Key {
                                proto,
                                port,
                                dst: *dst,
                                src,
                            };
                            rows.push(Row {
                                key,
                                first,
                                last: first,
                                count: 1,
                            });
                        }
                    }
                }
            }
        }
        rows
    }

    /// Shuffles with a fixed linear congruential sequence, so a failure repeats.
    fn shuffle(rows: &mut [Row], mut seed: u64) {
        for i in (1..rows.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            rows.swap(i, (seed >> 33) as usize % (i + 1));
        }
    }

    /// The radix sort orders pairs by their places as a sort of 128-bit numbers does, keeping
    /// the pairs of one place in the order they came: over sets whose digits are shared by
    /// all, by a few, or spread, and whose room holds anything to start with.
    #[test]
    fn the_radix_sort_orders_pairs_by_place_and_keeps_ties_in_order() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 16
        };
        for n in [0, 1, 2, 3, 300, 5_000, 60_000] {
            // Per digit: shared by all (1 value), by a few (3), or spread (all of them); the
            // top one has its highest bit set for some sets.
            for _ in 0..8 {
                let spread: [u64; DIGITS] =
                    std::array::from_fn(|_| [1, 3, RADIX as u64][(next() % 3) as usize]);
                let high = next() % 2 == 1;
                let items: Vec<[u64; 2]> = (0..n)
                    .map(|row| {
                        let mut k = row as u128;
                        for (i, &m) in spread.iter().enumerate() {
                            let (word, low, bits) = DIGIT_AT[i];
                            let v = if m == 1 { 0x5a5 } else { next() % m } & ((1 << bits) - 1);
                            k |= (v as u128) << (64 * (1 - word) as u32 + low);
                        }
                        if high {
                            k |= 1 << 127;
                        }
                        [(k >> 64) as u64, k as u64]
                    })
                    .collect();
                let mut want = items.clone();
                want.sort_unstable();
                let mut got = items.clone();
                let mut spare = vec![[0xa5a5_a5a5_a5a5_a5a5u64; 2]; n];
                let mut counts = vec![0xa5a5_a5a5_a5a5_a5a5u64; DIGITS * RADIX];
                let got = if radix_sort(&mut got, &mut spare, &mut counts) {
                    spare
                } else {
                    got
                };
                assert_eq!(got, want, "n {n}, {spread:?}");
            }
        }
    }

    #[test]
    fn the_flush_sort_gives_the_comparison_order() {
        let order = RowOrder::new();
        let all = sample_rows();
        // Whole set (days 300 apart: compared in full), two days (the cut places, with IPv6
        // ties), a few rows, and repeated keys.
        let one_day: Vec<Row> = all.iter().filter(|r| r.day() <= 1).copied().collect();
        let mut twice = one_day.clone();
        twice.extend_from_slice(&one_day[..500]);
        for (n, set) in [all.clone(), one_day, twice, all[..9].to_vec()]
            .iter()
            .enumerate()
        {
            let mut want = set.clone();
            want.sort_by(|a, b| order.rows(a, b));
            let keys = |v: &[Row]| v.iter().map(|r| (r.day(), r.key)).collect::<Vec<_>>();
            let mut got = set.clone();
            shuffle(&mut got, n as u64 + 1);
            order.sort(&mut got);
            assert_eq!(keys(&got), keys(&want), "set {n}");
            // With room for the radix and the pairs (the cut path, or `sort` for the set of days
            // 300 apart), for the pairs alone, and without.
            let m = set.len();
            for room in [2 * m + radix_room(m) + 3, 2 * m + 3, m] {
                let mut got = set.clone();
                shuffle(&mut got, n as u64 + 7);
                // The words the sort uses may hold anything before.
                let mut scratch = vec![0x5a5a_5a5a_5a5a_5a5au64; room];
                let used = order.sort_with(&mut got, &mut scratch);
                assert_eq!(keys(&got), keys(&want), "set {n}, room {room}");
                let days = set.iter().map(Row::day);
                let span = days.clone().max().unwrap() - days.min().unwrap();
                let cut = room >= 2 * m && m >= 2 && span < 256;
                let uses = if room >= 2 * m + radix_room(m) {
                    2 * m + radix_room(m)
                } else {
                    2 * m
                };
                assert_eq!(used, if cut { uses } else { 0 }, "set {n}, room {room}");
                assert!(
                    scratch[used..].iter().all(|&w| w == 0x5a5a_5a5a_5a5a_5a5a),
                    "scratch past what was used touched"
                );
            }
        }
    }
}
