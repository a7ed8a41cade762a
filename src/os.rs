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

/// Whatever the process creates is its owner's alone: files 0600, folders 0700, whatever
/// umask it was started with. The data dir holds password hashes, the JWT secret and
/// users' media; and the files come from many writers (SQLite and its WAL, `object_store`'s
/// staged uploads, scratch folders, ffmpeg's outputs, archive extraction), so one mask at
/// the start covers them all, as PostgreSQL does. Children (ffmpeg) inherit it.
pub fn owner_only_files() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
