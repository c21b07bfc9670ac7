//! The big tables' memory: rooms of fixed capacity, each a mapping of its own.
//!
//! A table probed at random touches a new page almost every time. Backed by 4 KiB pages, each
//! of those costs a TLB miss and a page walk (two levels of them in a virtual machine), before
//! the miss on the data itself; backed by 2 MiB pages, the whole table fits in the TLB. The
//! kernel gives huge pages only to whole, aligned 2 MiB stretches of a mapping that asked for
//! them, and the allocator's blocks start anywhere: a 4 MiB index from `vec!` had half of it on
//! small pages, a 2 MiB one all of it. A `Room` maps its own memory, starting on a 2 MiB
//! boundary when it is that large, and asks for huge pages before any page is touched. The asking is a hint:
//! where the kernel has no transparent huge pages, pages are small, as before.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The huge page size the rooms are aligned to (x86-64 and arm64 with 4 KiB pages; elsewhere
/// the alignment is harmless).
const HUGE: usize = 2 * 1024 * 1024;

/// Room for `capacity` elements of `T`, of which the first `len` are held: a vector that
/// never grows or moves. Its memory reads as zero until written.
pub struct Room<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    capacity: usize,
    /// The mapping's length in bytes (0: nothing mapped).
    mapped: usize,
}

// SAFETY: a Room owns its elements as a Vec does.
unsafe impl<T: Copy + Send> Send for Room<T> {}
// SAFETY: as above; shared access only reads.
unsafe impl<T: Copy + Sync> Sync for Room<T> {}

/// Types for which memory of zero bytes is a value (so a fresh room is already full of them).
///
/// # Safety
/// All-zero bytes must be a valid value of the type.
pub unsafe trait ZeroValid: Copy {}
// SAFETY: integers.
unsafe impl ZeroValid for u32 {}
// SAFETY: integers.
unsafe impl ZeroValid for u64 {}

/// The kernel's page size: 4 KiB on most boards, 16 KiB on a Raspberry Pi 5's kernel.
fn page() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

impl<T: Copy> Room<T> {
    /// Empty, with room for `capacity` elements. Panics when the system has no memory to map,
    /// as a vector's allocation would.
    pub fn with_capacity(capacity: usize) -> Room<T> {
        let bytes = capacity
            .checked_mul(std::mem::size_of::<T>())
            .expect("room size overflows");
        if bytes == 0 {
            return Room::default();
        }
        let page = page().max(std::mem::align_of::<T>());
        // The length is not rounded up to huge pages: a last stretch shorter than one stays on
        // small pages rather than costing a router up to 2 MiB it never uses.
        let mapped = bytes.next_multiple_of(page);
        let align = if bytes >= HUGE { HUGE } else { page };
        // Map `align` more than needed, then give back what lies before the first aligned
        // address and after the room.
        let over = mapped + if align > page { align } else { 0 };
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            panic!(
                "cannot map {over} bytes for a table: {}",
                std::io::Error::last_os_error()
            );
        }
        let start = (base as usize).next_multiple_of(align);
        let head = start - base as usize;
        let tail = over - head - mapped;
        // SAFETY: both ranges lie inside the mapping just made and are page-aligned (`start`
        // and `mapped` are multiples of the page); nothing uses them.
        unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            if tail > 0 {
                libc::munmap((start + mapped) as *mut libc::c_void, tail);
            }
            if align == HUGE {
                libc::madvise(start as *mut libc::c_void, mapped, libc::MADV_HUGEPAGE);
            }
        }
        Room {
            ptr: NonNull::new(start as *mut T).expect("mmap never maps page 0"),
            len: 0,
            capacity,
            mapped,
        }
    }

    /// Full of copies of `value`: every page is written now.
    pub fn filled(len: usize, value: T) -> Room<T> {
        let mut r = Room::<T>::with_capacity(len);
        for i in 0..len {
            // SAFETY: `i` is inside the room.
            unsafe { r.ptr.as_ptr().add(i).write(value) };
        }
        r.len = len;
        r
    }

    /// Full of zeroes, which the kernel supplies page by page as they are first used.
    pub fn zeroed(len: usize) -> Room<T>
    where
        T: ZeroValid,
    {
        let mut r = Room::with_capacity(len);
        r.len = len;
        r
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `value` after the elements held. Panics when the room is full: callers check
    /// `len() < capacity()` first.
    #[inline]
    pub fn push(&mut self, value: T) {
        assert!(self.len < self.capacity, "a table's room overflowed");
        // SAFETY: inside the room (checked above).
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Backs the whole room with memory now. A live sensor's table is bound to fill (every
    /// flood fills it), so it takes its memory at start: a board short of memory finds out
    /// then, not in the middle of a flood, and the kernel zeroes the pages before the traffic
    /// instead of during it (a fifth of the live CPU of a fresh sensor went to that). False
    /// where the kernel refused (before Linux 5.14).
    pub fn commit(&mut self) -> bool {
        if self.mapped == 0 {
            return true;
        }
        // SAFETY: the range is this room's mapping; MADV_POPULATE_WRITE faults the pages in
        // as a write would, and leaves what they hold as it is.
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast(),
                self.mapped,
                libc::MADV_POPULATE_WRITE,
            ) == 0
        }
    }
}

impl<T: Copy> Default for Room<T> {
    /// No room at all, nothing mapped.
    fn default() -> Room<T> {
        Room {
            ptr: NonNull::dangling(),
            len: 0,
            capacity: 0,
            mapped: 0,
        }
    }
}

impl<T: Copy> Drop for Room<T> {
    fn drop(&mut self) {
        if self.mapped > 0 {
            // SAFETY: the room's own mapping, unmapped once; T is Copy, so nothing to drop.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
        }
    }
}

impl<T: Copy> Deref for Room<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` elements were written (or are zeroes of a `ZeroValid` type),
        // and the pointer is aligned and non-null even when nothing is mapped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for Room<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of the pages of `r`'s mapping are in memory.
    fn resident<T: Copy>(r: &Room<T>) -> (usize, usize) {
        let mut flags = vec![0u8; r.mapped.div_ceil(page())];
        // SAFETY: `flags` has one byte per page of the mapping.
        let e = unsafe { libc::mincore(r.ptr.as_ptr().cast(), r.mapped, flags.as_mut_ptr()) };
        assert_eq!(e, 0, "mincore: {}", std::io::Error::last_os_error());
        (flags.iter().filter(|f| *f & 1 == 1).count(), flags.len())
    }

    /// Kilobytes of the mapping at `at` backed by huge pages, from /proc/self/smaps.
    fn huge_kib(at: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&at);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("AnonHugePages:") {
                    return v.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn a_room_holds_what_is_pushed_and_reads_zero_before() {
        let mut r: Room<(u64, u32)> = Room::with_capacity(1000);
        assert_eq!((r.len(), r.capacity()), (0, 1000));
        for i in 0..1000u64 {
            r.push((i, i as u32 * 3));
        }
        assert!(r
            .iter()
            .enumerate()
            .all(|(i, &(a, b))| a == i as u64 && b == 3 * i as u32));
        r.truncate(10);
        assert_eq!(r.len(), 10);
        r[9].1 = 7;
        assert_eq!(r[9], (9, 7));
        r.truncate(0);
        assert!(r.is_empty());
        let z: Room<u64> = Room::zeroed(5000);
        assert!(z.len() == 5000 && z.iter().all(|&x| x == 0));
        let f: Room<u32> = Room::filled(3000, u32::MAX);
        assert!(f.len() == 3000 && f.iter().all(|&x| x == u32::MAX));
        let none: Room<u64> = Room::default();
        assert!(none.is_empty() && none.capacity() == 0);
        let mut e: Room<u64> = Room::with_capacity(0);
        assert!(e.commit());
    }

    #[test]
    #[should_panic(expected = "overflowed")]
    fn pushing_into_a_full_room_is_refused() {
        let mut r: Room<u8> = Room::with_capacity(2);
        for _ in 0..3 {
            r.push(1);
        }
    }

    #[test]
    fn a_large_room_is_aligned_and_comes_in_when_committed() {
        let mut r: Room<u64> = Room::zeroed(3 * HUGE / 8 + 5);
        assert_eq!(
            r.ptr.as_ptr() as usize % HUGE,
            0,
            "not on a huge page boundary"
        );
        assert_eq!(r.mapped, 3 * HUGE + page());
        let (before, pages) = resident(&r);
        assert_eq!(before, 0, "pages in before any use");
        if !r.commit() {
            eprintln!("SKIP: this kernel has no MADV_POPULATE_WRITE (before 5.14)");
            return;
        }
        assert_eq!(resident(&r), (pages, pages));
        assert!(r.iter().all(|&x| x == 0));
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !(thp.contains("[always]") || thp.contains("[madvise]")) {
            eprintln!("SKIP: no transparent huge pages here ({})", thp.trim());
            return;
        }
        // A room aligned and asked for huge pages before its first use gets them (the
        // kernel compacts memory to find them when asked with madvise).
        let huge = huge_kib(r.ptr.as_ptr() as usize).expect("the room's mapping in smaps");
        eprintln!(
            "huge pages backing a committed room: {huge} KiB of {} KiB",
            r.mapped / 1024
        );
        assert!(huge > 0, "no huge page backs the room");
        assert!(huge as usize * 1024 <= r.mapped);
    }
}
