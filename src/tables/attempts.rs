//! A fixed-capacity open-addressing table of the day's rows. It never grows: when it is full
//! the sensor flushes it into the day's file and starts again, so memory stays bounded whatever
//! the traffic and no attempt is dropped.

use super::memory::Room;
use super::row::{day_of, Key, Row, RowOrder};
use crate::hash::KeyedHash;

/// An unused slot. Zero, so a new index comes from zeroed pages the kernel maps on first use.
const EMPTY: u64 = 0;

/// A key's hash, from `locate`, for the `add` that follows.
#[derive(Clone, Copy, Debug)]
pub struct Located(u64);

/// The table holds `capacity` rows and this key is not one of them.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

pub struct AttemptTable {
    rows: Room<Row>,
    /// Linear-probing index: row number + 1 in the low half (0 is an empty slot), the hash's
    /// top bits in the high half so most mismatches are told without touching the row.
    index: Room<u64>,
    mask: usize,
    capacity: usize,
    hasher: KeyedHash,
    /// Words at the index's start the last flush left to clear (the sort's room, or the whole
    /// index when it is swept): cleared when the index is next read, so the flush that ends a
    /// run (a replay's end, a stop) never pays for it.
    dirty: usize,
}

impl AttemptTable {
    pub fn new(capacity: usize) -> AttemptTable {
        let capacity = capacity.clamp(1, u32::MAX as usize / 2);
        // At most half full, so probes stay short.
        let slots = (capacity * 2).next_power_of_two();
        // EMPTY is 0: the kernel's zeroed pages are an empty index.
        let index = Room::zeroed(slots);
        let rows = Room::with_capacity(capacity);
        AttemptTable {
            rows,
            index,
            mask: slots - 1,
            capacity,
            hasher: KeyedHash::random(),
            dirty: 0,
        }
    }

    /// Takes the table's whole memory now (see `Room::commit`).
    pub fn commit(&mut self) -> bool {
        self.rows.commit() & self.index.commit()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn hash(&self, key: &Key, day: i64) -> u64 {
        let port = key.port.map_or(0, |p| p as u64 + 1);
        let head = (day as u64) << 32
            | (key.proto as u64) << 24
            | port << 2
            | (key.dst.is_v6() as u64) << 1
            | key.src.is_v6() as u64;
        let w = |a: &[u8; 16], i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&a[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        let (d, s) = (key.dst.bytes(), key.src.bytes());
        self.hasher
            .hash(&[head, w(d, 0), w(d, 1), w(s, 0), w(s, 1)])
    }

    /// Where `key` lives on the day of second `ts`, and a request to bring that index slot
    /// into the cache: the sensor asks as soon as it knows the key and counts after the other
    /// per-packet work, so the index's cache miss overlaps that work instead of stalling it.
    #[inline]
    pub fn locate(&self, key: &Key, ts: i64) -> Located {
        let h = self.hash(key, day_of(ts));
        super::prefetch::read(&self.index[h as usize & self.mask]);
        Located(h)
    }

    /// Counts one attempt at second `ts` of the key `at` was located for.
    #[inline]
    pub fn add(&mut self, key: &Key, ts: i64, at: Located) -> Result<(), Full> {
        self.merge_at(
            &Row {
                key: *key,
                first: ts,
                last: ts,
                count: 1,
            },
            at.0,
        )
    }

    /// Folds a row into the table (its day is that of its first second).
    #[inline]
    pub fn merge(&mut self, row: &Row) -> Result<(), Full> {
        let h = self.hash(&row.key, day_of(row.first));
        self.merge_at(row, h)
    }

    #[inline(always)]
    fn merge_at(&mut self, row: &Row, h: u64) -> Result<(), Full> {
        if self.dirty != 0 {
            self.clean();
        }
        let day = day_of(row.first);
        let tag = h >> 32;
        for i in probe_path(h, self.mask) {
            let slot = self.index[i];
            if slot == EMPTY {
                // While the rows are out (`take_sorted`), the table has no room at all.
                if self.rows.len() >= self.rows.capacity() {
                    return Err(Full);
                }
                self.index[i] = tag << 32 | (self.rows.len() as u64 + 1);
                self.rows.push(*row);
                return Ok(());
            }
            if slot >> 32 == tag {
                let r = &mut self.rows[(slot & 0xffff_ffff) as usize - 1];
                if r.key == row.key && r.day() == day {
                    r.merge(row);
                    return Ok(());
                }
            }
        }
        // Round the whole index without an empty slot: refused, so the table flushes early.
        Err(Full)
    }

    /// The rows in file order, leaving the table empty and without room (a new key is `Full`)
    /// until the buffer comes back with `recycle`. The buffer itself is lent, not replaced by
    /// a new one: a second full-capacity buffer would be the table's size again at every
    /// flush.
    pub fn take_sorted(&mut self, order: &RowOrder) -> Room<Row> {
        // The index is empty until the rows come back: room for the sort, which writes its
        // first words. Rows many enough are cleared with the sort's words in one sweep after
        // it; a few (a periodic flush of a quiet period) slot by slot before it, while the
        // rows are where the index points, and then the words the sort wrote. Either clearing
        // waits for the index's next use.
        self.clean();
        let sweep = self.rows.len() * 16 >= self.index.len();
        if !sweep {
            self.clear_slots();
        }
        let mut rows = std::mem::take(&mut self.rows);
        let used = order.sort_with(&mut rows, &mut self.index);
        self.dirty = if sweep { self.index.len() } else { used };
        rows
    }

    /// Clears what the last flush left dirty of the index.
    #[cold]
    #[inline(never)]
    fn clean(&mut self) {
        self.index[..self.dirty].fill(EMPTY);
        self.dirty = 0;
    }

    /// Empties the slots of the rows held, each found by its hash.
    fn clear_slots(&mut self) {
        for n in 0..self.rows.len() {
            let r = self.rows[n];
            // Every row has its slot on its probe path: clear the one that points at it.
            let h = self.hash(&r.key, r.day());
            if let Some(i) =
                probe_path(h, self.mask).find(|&i| self.index[i] as u32 as usize == n + 1)
            {
                self.index[i] = EMPTY;
            }
        }
    }

    /// A copy of the rows, for a view of today that does not disturb counting.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Puts back the buffer `take_sorted` lent, still holding the rows that must stay (those
    /// a failed write could not store; none after a good flush), so flushing allocates
    /// nothing.
    pub fn recycle(&mut self, rows: Room<Row>) {
        if !rows.is_empty() {
            self.clean();
        }
        self.rows = rows;
        if self.rows.capacity() < self.capacity {
            // Not the room `take_sorted` lent: its rows move into one of the table's size.
            let mut full = Room::with_capacity(self.capacity);
            for r in self.rows.iter().take(self.capacity) {
                full.push(*r);
            }
            self.rows = full;
        }
        // They came out of this table, one per key and day: each takes a free slot.
        for n in 0..self.rows.len() {
            let r = self.rows[n];
            let h = self.hash(&r.key, r.day());
            if let Some(i) = probe_path(h, self.mask).find(|&i| self.index[i] == EMPTY) {
                self.index[i] = (h >> 32) << 32 | (n as u64 + 1);
            }
        }
    }
}

/// The index places a key of hash `h` may sit in, in probe order: from its home, once round
/// the index of `mask + 1` places. At most half full, the index has an empty place on every
/// path long before that; but it is lent to the sort at each flush and cleared lazily after,
/// and should that ever leave it without one, the bound ends the probe instead of spinning.
#[inline(always)]
fn probe_path(h: u64, mask: usize) -> impl Iterator<Item = usize> {
    (0..=mask).map(move |k| (h as usize).wrapping_add(k) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;

    fn add(t: &mut AttemptTable, k: Key, ts: i64) -> Result<(), Full> {
        let at = t.locate(&k, ts);
        t.add(&k, ts, at)
    }

    fn key(src: u8, port: u16) -> Key {
        Key {
            proto: 6,
            port: Some(port),
            dst: Addr::v4([198, 51, 100, 1]),
            src: Addr::v4([203, 0, 113, src]),
        }
    }

    #[test]
    fn merges_per_key_and_day_and_refuses_when_full() {
        let mut t = AttemptTable::new(3);
        add(&mut t, key(1, 22), 100).unwrap();
        add(&mut t, key(1, 22), 50).unwrap();
        add(&mut t, key(1, 22), 86_400 + 5).unwrap(); // next day: its own row
        add(&mut t, key(2, 22), 100).unwrap();
        assert_eq!(add(&mut t, key(3, 22), 100), Err(Full));
        add(&mut t, key(1, 22), 200).unwrap(); // known key still fits
        let mut rows = t.take_sorted(&RowOrder::new());
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].first, rows[0].last, rows[0].count), (50, 200, 3));
        assert_eq!(rows[1].key.src, Addr::v4([203, 0, 113, 2]));
        assert_eq!(rows[2].first, 86_405);
        assert!(t.is_empty());
        // Written: the buffer goes back empty.
        rows.truncate(0);
        t.recycle(rows);
        assert!(t.is_empty());
        add(&mut t, key(3, 22), 100).unwrap();
    }

    /// After a flush the index is empty again by its next use, whether it was swept (many
    /// rows) or cleared slot by slot (few), and whether the sort borrowed it (one day) or did
    /// without (rows of days too far apart for its cut).
    #[test]
    fn a_flush_leaves_the_index_empty() {
        for (rows, days) in [(3000u32, 1), (3000, 300), (20, 1), (20, 300)] {
            let filled = || {
                let mut t = AttemptTable::new(4096);
                for s in 0..rows {
                    let k = Key {
                        proto: 6,
                        port: Some((s % 7) as u16),
                        dst: Addr::v4([198, 51, 100, 1]),
                        src: Addr::v4(s.to_be_bytes()),
                    };
                    add(&mut t, k, 86_400 * (s % days) as i64).unwrap();
                }
                t
            };
            // It is cleared when next used: by an attempt refused while the rows are out, or
            // by the rows coming back (all of them, as after a failed write).
            for refused in [true, false] {
                let mut t = filled();
                let got = t.take_sorted(&RowOrder::new());
                if refused {
                    let late = Key {
                        proto: 17,
                        ..got[0].key
                    };
                    assert_eq!(add(&mut t, late, 0), Err(Full));
                    assert!(
                        t.index.iter().all(|&w| w == EMPTY),
                        "{rows} rows of {days} days: the index is not empty"
                    );
                }
                let (key, first) = (got[0].key, got[0].first);
                t.recycle(got);
                assert_eq!(t.len(), rows as usize, "{rows} rows of {days} days");
                add(&mut t, key, first).unwrap();
                assert_eq!(
                    t.len(),
                    rows as usize,
                    "{rows} rows of {days} days: not found"
                );
            }
        }
    }

    #[test]
    fn recycled_buffer_keeps_the_rows_left_in_it_findable() {
        let mut t = AttemptTable::new(4);
        for s in 1..=4 {
            add(&mut t, key(s, 22), 100).unwrap();
        }
        let mut rows = t.take_sorted(&RowOrder::new());
        // The write of sources 1 and 2 failed: they stay (the rows come sorted by source).
        assert_eq!(rows[1].key.src.bytes()[3], 2);
        rows.truncate(2);
        // While the rows are out, the table has no room.
        assert_eq!(add(&mut t, key(9, 22), 100), Err(Full));
        t.recycle(rows);
        assert_eq!(t.len(), 2);
        // Known keys merge into their rows rather than taking new ones.
        add(&mut t, key(1, 22), 200).unwrap();
        add(&mut t, key(2, 22), 300).unwrap();
        assert_eq!(t.len(), 2);
        add(&mut t, key(9, 22), 300).unwrap();
        add(&mut t, key(5, 22), 100).unwrap();
        assert_eq!(add(&mut t, key(6, 22), 100), Err(Full));
        let rows = t.take_sorted(&RowOrder::new());
        let counts: Vec<u64> = rows.iter().map(|r| r.count).collect();
        assert_eq!(counts, vec![2, 2, 1, 1]);
        // A buffer smaller than the table's (not the one lent) still leaves it its capacity.
        t.recycle(Room::with_capacity(1));
        for s in 1..=4 {
            add(&mut t, key(s, 23), 100).unwrap();
        }
        assert_eq!(add(&mut t, key(5, 23), 100), Err(Full));
    }
}
