//! Freed memory handed back to the system before a run's peak.
//!
//! The shipped musl binary allocates with jemalloc (`src/main.rs`): freed
//! buffers of 256 KiB and more go back to the system at once, smaller freed
//! memory is kept up to a second for reuse. Returning every page at once
//! cost a 10,000-lead backlog half as many page faults again (system
//! time); keeping them all lets a few megabytes pile up under the peak. So
//! what is kept goes back right before a digest is built, the moment a run
//! holds the most (BENCHMARKS.md). Other builds use their own
//! allocator and this does nothing.

/// Returns the pages the allocator keeps for reuse to the system.
pub fn release_freed() {
    #[cfg(target_env = "musl")]
    // SAFETY: `arena.4096.purge` (4096 is jemalloc's `MALLCTL_ARENAS_ALL`:
    // every arena) takes and gives no value, so every pointer is null; the
    // name is a constant C string. A failure only means the pages stay until
    // jemalloc's own decay returns them: nothing to handle.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}
