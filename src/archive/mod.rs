//! The `archive` profile: bounded, link-free extraction and creation of
//! `zip`, `7z`, `tar.gz` and `tar.bz2` archives, and recompression between them.
//!
//! Everything here is synchronous and meant to run on a blocking thread. Long
//! operations poll a caller-owned [`AtomicBool`] between entries and between
//! chunks of data, and stop with [`ArchiveError::Cancelled`] once it is set.
//!
//! Safety rules applied on extraction:
//! - every entry name is checked before anything is written for it (for zip and
//!   7z, whose index sits up front, *all* names are checked before the first
//!   write): no empty names, no NUL, no absolute or drive-prefixed paths, no
//!   `..` that climbs above the destination after lexical normalisation, at most
//!   `max_depth` components, no component longer than 255 bytes;
//! - `\` counts as a separator as well as `/`, so Windows-made archives cannot
//!   smuggle a `..\..` past the check;
//! - symbolic and hard links are refused ([`ArchiveError::LinkRefused`]), and so
//!   are device, fifo and socket entries ([`ArchiveError::UnsafePath`]);
//! - the path is built below the destination one component at a time without
//!   following anything that already exists there: an existing symlink on the
//!   way is refused, and files are opened with `create_new` (`O_EXCL`), which
//!   does not follow a symlink either;
//! - decompressed bytes are counted as they stream out of the decoder (headers
//!   are never trusted for this; they are only used to fail earlier), against
//!   `max_total_bytes` and against `max_ratio` × the archive's size (the ratio
//!   applies once more than [`RATIO_FLOOR`] bytes have come out); no write ever
//!   goes past the budget;
//! - on any error everything the extraction created is removed again.
//!
//! Layout: this module holds the public types and [`recompress`]; `format`
//! detects formats, `limits` holds the rules every format shares (names,
//! modes, budgets), `extract` and `create` drive the per-container readers
//! and writers in `zip`, `sevenz` and `tar`.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::ErrorCode;
use serde::{Deserialize, Serialize};

mod create;
mod extract;
mod format;
mod limits;
mod sevenz;
mod tar;
mod zip;

pub use create::create;
pub use extract::extract;
pub use format::ArchiveFormat;

/// Below this many output bytes the compression-ratio limit does not apply, so
/// that small, very compressible archives (a few KiB of zeros) still extract.
pub const RATIO_FLOOR: u64 = 32 * 1024 * 1024;

/// Size of the copy buffer; cancellation is polled once per chunk.
const CHUNK: usize = 256 * 1024;

/// Bounds applied while extracting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractLimits {
    /// Most bytes written in total (all files together).
    pub max_total_bytes: u64,
    /// Most entries (files and directories).
    pub max_entries: u64,
    /// Most path components in one entry name.
    pub max_depth: usize,
    /// Most output bytes per byte of archive, once past [`RATIO_FLOOR`].
    pub max_ratio: Option<f64>,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_total_bytes: 4 * 1024 * 1024 * 1024,
            max_entries: 10_000,
            max_depth: 32,
            max_ratio: Some(200.0),
        }
    }
}

/// What an extraction wrote, or what a creation packed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSummary {
    /// Files plus directories.
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file content.
    pub total_bytes: u64,
}

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a zip, 7z, tar.gz or tar.bz2 archive")]
    UnknownFormat,
    #[error("invalid archive: {0}")]
    Corrupt(String),
    #[error("archive expands past {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("archive entry nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("unsafe archive entry: {0}")]
    UnsafePath(String),
    #[error("archive link entry refused: {0}")]
    LinkRefused(String),
    #[error("cancelled")]
    Cancelled,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl ArchiveError {
    /// Stable error code for the task's `error_code`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownFormat => ErrorCode::UnknownArchive,
            Self::Corrupt(_) => ErrorCode::InvalidArchive,
            Self::TooLarge { .. } => ErrorCode::ArchiveTooLarge,
            Self::TooManyEntries { .. } => ErrorCode::TooManyEntries,
            Self::TooDeep { .. } => ErrorCode::ArchiveTooDeep,
            Self::UnsafePath(_) => ErrorCode::UnsafeArchivePath,
            Self::LinkRefused(_) => ErrorCode::ArchiveLinkRefused,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Io(_) => ErrorCode::IoError,
        }
    }
}

fn corrupt(e: impl fmt::Display) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

fn check_cancel(cancel: &AtomicBool) -> Result<(), ArchiveError> {
    if cancel.load(Ordering::Relaxed) {
        Err(ArchiveError::Cancelled)
    } else {
        Ok(())
    }
}

/// An error seen while the cancel flag is set is reported as a cancellation
/// (the flag makes our readers fail on purpose).
fn or_cancelled(cancel: &AtomicBool, e: ArchiveError) -> ArchiveError {
    if cancel.load(Ordering::Relaxed) {
        ArchiveError::Cancelled
    } else {
        e
    }
}

/// Detects the format of `src` by its magic bytes, extracts it into
/// `work_dir/x` (which must not exist yet) under `limits`, and packs that tree
/// into `out` in format `to`. `work_dir/x` is removed afterwards, whatever the
/// outcome. Returns the summary of what was packed.
pub fn recompress(
    src: &Path,
    to: ArchiveFormat,
    work_dir: &Path,
    out: &Path,
    limits: &ExtractLimits,
    cancel: &AtomicBool,
) -> Result<ArchiveSummary, ArchiveError> {
    let from = ArchiveFormat::detect(src)?;
    let x = work_dir.join("x");
    if fs::symlink_metadata(&x).is_ok() {
        return Err(ArchiveError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", x.display()),
        )));
    }
    let result = extract(src, from, &x, limits, cancel).and_then(|_| create(&x, to, out, cancel));
    match fs::remove_dir_all(&x) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if result.is_ok() => return Err(e.into()),
        Err(_) => {}
    }
    result
}

#[cfg(test)]
mod tests;
