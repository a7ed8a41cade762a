//! Process-wide settings of the C library and the kernel that the binary makes once, first
//! thing in `main`, before any file is created or any request served. The library leaves
//! them alone: a program that embeds it (or a test) keeps its own.

/// Large allocations (1 MiB and up) get pages of their own that go back to the system when
/// freed. glibc's default threshold moves up to the size of the largest block freed; past
/// that, each argon2 run (a 19 MiB block aligned to 64 bytes) left its block behind in the
/// heap: RSS grew by 19 MiB per password hash and never came down. Other C libraries
/// already return large blocks.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning value of the allocator, under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
