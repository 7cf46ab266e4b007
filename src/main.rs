//! The `lead-notifier` binary. The static musl build that `cargo xtask
//! package` ships allocates with jemalloc: musl's own allocator costs it
//! about a third more CPU than the glibc build on a backlog (its slower
//! small allocations, and every freed page back to the kernel). jemalloc
//! keeps one arena; buffers of 256 KiB and more (a digest's bodies) go back
//! to the system as soon as they are freed, smaller freed memory is kept up
//! to a second for reuse and handed back before each digest
//! (`lead_notifier::memory`), so memory stays what the run holds
//! and a 10,000-lead backlog stays under its 20 MB peak (BENCHMARKS.md).

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its settings from this symbol (`malloc_conf`, with the
/// prefix tikv-jemalloc-sys gives its symbols); `_RJEM_MALLOC_CONF` in the
/// environment still overrides it.
#[cfg(target_env = "musl")]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(
    c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0,oversize_threshold:262144".as_ptr(),
);

#[cfg(target_env = "musl")]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a constant string that is never written.
#[cfg(target_env = "musl")]
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    lead_notifier::cli::main()
}
