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

/// Free bytes (for an unprivileged user) of the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the right type, which statvfs fills when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    // Both are u64 on 64-bit Linux, but 32-bit on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (stat.f_bavail as u64, stat.f_frsize as u64);
    Ok(blocks.saturating_mul(size))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_bytes_of_a_folder_and_an_error_for_none() {
        let dir = std::env::temp_dir();
        assert!(super::free_bytes(&dir).unwrap() > 0);
        assert!(super::free_bytes(std::path::Path::new("/no/such/folder")).is_err());
    }
}
