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
