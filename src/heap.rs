//! The allocator's settings. What counts on a board is the resident size, and glibc's malloc
//! (the native builds; the boards' static musl has no such knobs) keeps more resident than is
//! in use unless told otherwise.

/// Called first thing in `main`, before any other thread. glibc gives each thread an arena of
/// its own and, once a large buffer is freed, raises its mmap threshold so later large buffers
/// come from the heap and stay resident after they are freed. One arena (no thread allocates
/// per packet) and a fixed threshold keep the resident size that of what is in use.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; called before any other thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Hands the heap's free pages back to the system. Buffers below the mmap threshold (a
/// compaction's read and write buffers, the report's copies of small days) come from the heap,
/// and glibc returns only the free memory at its top: under a flood the pages freed below stayed
/// resident, about 0.4 MiB of the OpenWrt router profile's 16. Called after a flush, at most a
/// few times a second and never per packet; it walks the free chunks of one small arena.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages malloc holds free; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
