//! Extraction: the entry point that picks a reader by format, and the
//! [`Extractor`] every reader writes through. The extractor owns everything
//! that touches the destination (creating directories and files without
//! following links, counting bytes against the budget, cleaning up on error),
//! so the readers in `zip`, `sevenz` and `tar` only decode and never write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::limits::{Budget, sanitize, unnamed_file};
use super::{
    ArchiveError, ArchiveFormat, ArchiveSummary, CHUNK, ExtractLimits, check_cancel, corrupt,
    or_cancelled, sevenz, tar, zip,
};

/// Extracts `src`, an archive in `format`, into `dest` (created if missing).
///
/// On error nothing that this call created under `dest` is left behind, and
/// `dest` itself is removed again if this call created it.
pub fn extract(
    src: &Path,
    format: ArchiveFormat,
    dest: &Path,
    limits: &ExtractLimits,
    cancel: &AtomicBool,
) -> Result<ArchiveSummary, ArchiveError> {
    check_cancel(cancel)?;
    let file = File::open(src)?;
    let src_len = file.metadata()?.len();
    let mut ex = Extractor::new(dest, limits, cancel, src_len)?;
    let result = match format {
        ArchiveFormat::Zip => zip::extract(file, &mut ex),
        ArchiveFormat::SevenZ => sevenz::extract(file, &mut ex),
        ArchiveFormat::TarGz => tar::extract_gz(file, &mut ex),
        ArchiveFormat::TarBz2 => tar::extract_bz2(file, &mut ex),
    };
    match result {
        Ok(()) => Ok(ex.summary),
        Err(e) => {
            let e = or_cancelled(cancel, e);
            ex.cleanup();
            Err(e)
        }
    }
}

/// Reads one chunk of `reader` into `buf` (0 at the end of the data), polling
/// cancellation before every read. A read error means the data is broken.
pub(super) fn read_chunk(
    reader: &mut dyn Read,
    buf: &mut [u8],
    cancel: &AtomicBool,
) -> Result<usize, ArchiveError> {
    loop {
        check_cancel(cancel)?;
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(corrupt(e)),
        }
    }
}

/// State of one extraction: the destination, the budgets, and what was created
/// (so that it can be removed again on error).
pub(super) struct Extractor<'a> {
    dest: PathBuf,
    dest_created: bool,
    pub(super) limits: &'a ExtractLimits,
    pub(super) cancel: &'a AtomicBool,
    pub(super) budget: Budget,
    summary: ArchiveSummary,
    /// Roots of the subtrees this extraction created (their parents existed
    /// before), to remove on error.
    created: Vec<PathBuf>,
    pub(super) buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    fn new(
        dest: &Path,
        limits: &'a ExtractLimits,
        cancel: &'a AtomicBool,
        src_len: u64,
    ) -> Result<Self, ArchiveError> {
        let dest_created = match fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                return Err(ArchiveError::Io(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", dest.display()),
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dest)?;
                true
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            dest: dest.to_path_buf(),
            dest_created,
            limits,
            cancel,
            budget: Budget::new(limits, src_len),
            summary: ArchiveSummary::default(),
            created: Vec::new(),
            buf: vec![0; CHUNK],
        })
    }

    /// Counts one entry against the limit (and polls cancellation).
    pub(super) fn begin_entry(&mut self) -> Result<(), ArchiveError> {
        check_cancel(self.cancel)?;
        self.summary.entries += 1;
        self.budget.check_entries(self.summary.entries)
    }

    /// Creates the directories `parts[..upto]` below `dest`, never following an
    /// existing symlink. Returns the path of `parts[..upto]` and whether it was
    /// created by this extraction.
    fn ensure_dirs(
        &mut self,
        parts: &[String],
        name: &str,
    ) -> Result<(PathBuf, bool), ArchiveError> {
        let mut path = self.dest.clone();
        let mut parent_new = false;
        for part in parts {
            path.push(part);
            if parent_new {
                fs::create_dir(&path)?;
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ArchiveError::LinkRefused(format!(
                        "{} passes through an existing symlink",
                        name.escape_debug()
                    )));
                }
                Ok(_) => {
                    return Err(ArchiveError::Corrupt(format!(
                        "{} needs a directory where a file is",
                        name.escape_debug()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path)?;
                    self.created.push(path.clone());
                    parent_new = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((path, parent_new))
    }

    pub(super) fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let parts = sanitize(name, self.limits.max_depth)?;
        if parts.is_empty() {
            // `./`: the destination itself, not an entry of the tree.
            self.summary.entries -= 1;
            return Ok(());
        }
        self.ensure_dirs(&parts, name)?;
        self.summary.dirs += 1;
        Ok(())
    }

    /// Writes one regular file, streaming from `reader` and counting bytes.
    pub(super) fn file(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        mode: Option<u32>,
    ) -> Result<(), ArchiveError> {
        let parts = sanitize(name, self.limits.max_depth)?;
        let Some((leaf, parents)) = parts.split_last() else {
            return Err(unnamed_file(name));
        };
        let (mut path, parent_new) = self.ensure_dirs(parents, name)?;
        path.push(leaf);
        let file = create_new(&path, name, mode)?;
        if !parent_new {
            self.created.push(path);
        }
        self.summary.files += 1;
        self.copy(reader, Some(file))
    }

    /// Streams `reader` into `out` (or nowhere), counting every byte against
    /// the budget before it is written, and polling cancellation per chunk.
    pub(super) fn copy(
        &mut self,
        reader: &mut dyn Read,
        out: Option<File>,
    ) -> Result<(), ArchiveError> {
        let mut out = out.map(|f| BufWriter::with_capacity(CHUNK, f));
        loop {
            let n = read_chunk(reader, &mut self.buf, self.cancel)?;
            if n == 0 {
                break;
            }
            let total = self.summary.total_bytes + n as u64;
            if total > self.budget.bytes {
                return Err(self.budget.too_large());
            }
            if let Some(w) = out.as_mut() {
                w.write_all(&self.buf[..n])?;
            }
            self.summary.total_bytes = total;
        }
        if let Some(w) = out {
            w.into_inner().map_err(|e| e.into_error())?;
        }
        Ok(())
    }

    /// Removes what this extraction created (best effort).
    fn cleanup(&mut self) {
        if self.dest_created {
            let _ = fs::remove_dir_all(&self.dest);
            return;
        }
        for path in self.created.drain(..).rev() {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir_all(&path);
                }
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                }
                Err(_) => {}
            }
        }
    }
}

/// Creates the file of entry `name` at `path` with `create_new` (`O_EXCL`),
/// which neither follows a symlink nor replaces anything that is there.
fn create_new(path: &Path, name: &str, mode: Option<u32>) -> Result<File, ArchiveError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let executable = mode.is_some_and(|m| m & 0o111 != 0);
        options.mode(if executable { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = mode;
    match options.open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(ArchiveError::LinkRefused(format!(
                    "{} would replace an existing symlink",
                    name.escape_debug()
                )));
            }
            Err(ArchiveError::Corrupt(format!(
                "duplicate or conflicting entry {}",
                name.escape_debug()
            )))
        }
        Err(e) => Err(e.into()),
    }
}
