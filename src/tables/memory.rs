//! How the big tables' memory is backed. Both calls are hints: where the kernel refuses them
//! (no transparent huge pages, a kernel older than 5.14) the pages come on first use as before.

/// The kernel's page size: 4 KiB on most boards, 16 KiB on a Raspberry Pi 5's kernel.
fn page() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The whole pages inside the allocation of `v` (its capacity, not its length).
fn pages<T>(v: &mut Vec<T>) -> Option<(*mut libc::c_void, usize)> {
    let len = v.capacity() * std::mem::size_of::<T>();
    let start = v.as_mut_ptr() as usize;
    let page = page();
    let first = start.next_multiple_of(page);
    let end = (start + len) / page * page;
    (first < end).then(|| (first as *mut libc::c_void, end - first))
}

/// Asks the kernel to back `v` with huge pages where it can: a table probed at random touches
/// a new 4 KiB page almost every time, and each one costs a TLB miss.
pub fn huge_pages<T>(v: &mut Vec<T>) {
    if v.capacity() * std::mem::size_of::<T>() < 2 * 1024 * 1024 {
        return;
    }
    if let Some((at, len)) = pages(v) {
        // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes how pages
        // are backed, never their contents.
        unsafe { libc::madvise(at, len, libc::MADV_HUGEPAGE) };
    }
}

/// Backs all of `v` with memory now. A live sensor's table is bound to fill (every flood fills
/// it), so it takes its memory at start: a board short of memory finds out then, not in the
/// middle of a flood, and the kernel zeroes the pages before the traffic instead of during
/// it (a fifth of the live CPU of a fresh sensor went to that). False where the kernel
/// refused (before Linux 5.14).
pub fn commit<T>(v: &mut Vec<T>) -> bool {
    let Some((at, len)) = pages(v) else {
        return true;
    };
    // SAFETY: as above; MADV_POPULATE_WRITE faults the pages in as a write would, and leaves
    // what they hold (zeroes, or the vector's elements) as it is.
    unsafe { libc::madvise(at, len, libc::MADV_POPULATE_WRITE) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of the whole pages of `v` are in memory.
    fn resident<T>(v: &mut Vec<T>) -> (usize, usize) {
        let (at, len) = pages(v).unwrap();
        let mut flags = vec![0u8; len.div_ceil(page())];
        // SAFETY: `flags` has one byte per page of the range, which lies inside `v`.
        let r = unsafe { libc::mincore(at, len, flags.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
        (flags.iter().filter(|f| *f & 1 == 1).count(), flags.len())
    }

    #[test]
    fn commit_brings_every_page_in_and_keeps_the_contents() {
        let mut spare: Vec<u64> = Vec::with_capacity(1 << 20);
        let mut filled: Vec<u64> = (0..1u64 << 20).collect();
        // The allocator may hand out memory already touched: give the spare pages back first
        // (they hold no elements).
        let (at, len) = pages(&mut spare).unwrap();
        // SAFETY: the range is `spare`'s unused capacity.
        assert_eq!(unsafe { libc::madvise(at, len, libc::MADV_DONTNEED) }, 0);
        let (before, pages_total) = resident(&mut spare);
        assert_eq!(before, 0, "pages still in after MADV_DONTNEED");
        if !commit(&mut spare) {
            eprintln!("SKIP: this kernel has no MADV_POPULATE_WRITE (before 5.14)");
            return;
        }
        assert_eq!(resident(&mut spare), (pages_total, pages_total));
        assert!(commit(&mut filled));
        assert!(filled.iter().enumerate().all(|(i, &x)| x == i as u64));
        assert!(
            commit(&mut Vec::<u64>::new()),
            "an empty vector has nothing to commit"
        );
    }
}
