//! A hint to the CPU that a table slot will be read soon. Tables larger than the cache miss on
//! almost every new key; asking early lets the miss run while other work is done. A hint
//! only: it reads nothing, faults on nothing, and is a no-op where we have no instruction for it.

/// Asks for the cache line holding `slot`.
#[inline(always)]
#[allow(unused_variables)]
pub fn read<T>(slot: &T) {
    let p = slot as *const T as *const u8;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and writes nothing; `p` points into a live slice.
    unsafe {
        std::arch::asm!("prefetcht0 [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
    }
    #[cfg(target_arch = "arm")]
    // SAFETY: as above (ARMv7's PLD).
    unsafe {
        std::arch::asm!("pld [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags));
    }
}

/// Asks the kernel to back the memory of `v` (its whole capacity) with huge pages where it
/// can: a table probed at random touches a new 4 KiB page almost every time, and each one
/// costs a TLB miss.
pub fn huge_pages<T>(v: &mut Vec<T>) {
    let len = v.capacity() * std::mem::size_of::<T>();
    let start = v.as_mut_ptr() as usize;
    const PAGE: usize = 4096;
    let aligned = start.next_multiple_of(PAGE);
    if len < 2 * 1024 * 1024 || aligned >= start + len {
        return;
    }
    // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes how pages are
    // backed, never their contents.
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            (start + len - aligned) / PAGE * PAGE,
            libc::MADV_HUGEPAGE,
        );
    }
}
