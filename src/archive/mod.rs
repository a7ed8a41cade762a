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

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// Below this many output bytes the compression-ratio limit does not apply, so
/// that small, very compressible archives (a few KiB of zeros) still extract.
pub const RATIO_FLOOR: u64 = 32 * 1024 * 1024;

/// Size of the copy buffer; cancellation is polled once per chunk.
const CHUNK: usize = 256 * 1024;

/// Upper bound for tar metadata records (GNU long names, pax headers) that are
/// read into memory.
const TAR_META_MAX: u64 = 1024 * 1024;

/// Most bytes accepted after the tar end marker (record padding: GNU tar's
/// largest blocking factor makes 1 MiB records).
const TAR_TRAILING_MAX: u64 = 2 * 1024 * 1024;

/// Most memory a 7z header buffer or decoder (dictionary, model) may claim.
/// 7-Zip's strongest preset uses a 64 MiB dictionary; 512 MiB leaves room for
/// hand-tuned archives and refuses headers that ask for gigabytes.
const SEVENZ_MEMORY_LIMIT_KIB: usize = 512 * 1024;

/// Longest accepted path component, in bytes (the usual file-system limit).
const MAX_COMPONENT: usize = 255;

/// zip deflate level, the same as Info-ZIP `zip`'s default (`-6`).
const ZIP_LEVEL: i64 = 6;
/// gzip level, the same as `gzip`'s default.
const GZIP_LEVEL: u32 = 6;
/// bzip2 block size, the same as `bzip2`'s default (`-9`, 900 k).
const BZIP2_LEVEL: u32 = 9;
/// LZMA2 preset, the same as `7z`'s default ("normal").
const LZMA2_PRESET: u32 = 6;

// Unix file-type bits, as found in tar headers, zip external attributes and the
// 7z "unix extension" attributes.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

// Windows attributes used by 7z.
const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
const FILE_ATTRIBUTE_UNIX_EXTENSION: u32 = 0x8000;

/// The archive formats of the `archive` profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArchiveFormat {
    #[serde(rename = "zip")]
    Zip,
    #[serde(rename = "7z")]
    SevenZ,
    #[serde(rename = "tar.gz", alias = "tgz")]
    TarGz,
    #[serde(rename = "tar.bz2", alias = "tbz2")]
    TarBz2,
}

impl ArchiveFormat {
    /// Every format, in a fixed order.
    pub const ALL: [ArchiveFormat; 4] = [Self::Zip, Self::SevenZ, Self::TarGz, Self::TarBz2];

    /// The canonical name, as accepted by [`FromStr`] and used by serde.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zip => "zip",
            Self::SevenZ => "7z",
            Self::TarGz => "tar.gz",
            Self::TarBz2 => "tar.bz2",
        }
    }

    /// File-name extension without the leading dot (`"tar.gz"` for tar.gz).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// Recognises a format from the first bytes of a file (at least 6 are
    /// needed for 7z). The name of the file plays no part.
    pub fn from_magic(head: &[u8]) -> Option<Self> {
        match head {
            [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] | [b'P', b'K', 7, 8, ..] => {
                Some(Self::Zip)
            }
            [b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C, ..] => Some(Self::SevenZ),
            [0x1F, 0x8B, ..] => Some(Self::TarGz),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Self::TarBz2),
            _ => None,
        }
    }

    /// Detects the format of the file at `path` by its magic bytes.
    pub fn detect(path: &Path) -> Result<Self, ArchiveError> {
        let mut file = File::open(path)?;
        let mut head = [0u8; 8];
        let mut len = 0;
        while len < head.len() {
            match file.read(&mut head[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::Io(e)),
            }
        }
        Self::from_magic(&head[..len]).ok_or(ArchiveError::UnknownFormat)
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArchiveFormat {
    type Err = ArchiveError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zip" => Ok(Self::Zip),
            "7z" => Ok(Self::SevenZ),
            "tar.gz" | "tgz" => Ok(Self::TarGz),
            "tar.bz2" | "tbz2" => Ok(Self::TarBz2),
            _ => Err(ArchiveError::UnknownFormat),
        }
    }
}

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
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownFormat => "unknown_archive",
            Self::Corrupt(_) => "invalid_archive",
            Self::TooLarge { .. } => "archive_too_large",
            Self::TooManyEntries { .. } => "too_many_entries",
            Self::TooDeep { .. } => "archive_too_deep",
            Self::UnsafePath(_) => "unsafe_archive_path",
            Self::LinkRefused(_) => "archive_link_refused",
            Self::Cancelled => "cancelled",
            Self::Io(_) => "io_error",
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

// ---------------------------------------------------------------------------
// Entry names
// ---------------------------------------------------------------------------

/// Validates an entry name and normalises it into path components.
///
/// Returns an empty vector for a name that denotes the destination itself
/// (`./`), which callers accept only for directory entries.
fn sanitize(name: &str, max_depth: usize) -> Result<Vec<String>, ArchiveError> {
    let shown = || name.escape_debug().to_string();
    if name.is_empty() {
        return Err(ArchiveError::UnsafePath("empty entry name".into()));
    }
    if name.contains('\0') {
        return Err(ArchiveError::UnsafePath(format!("NUL in name {}", shown())));
    }
    if name.starts_with(['/', '\\']) {
        return Err(ArchiveError::UnsafePath(format!(
            "absolute path {}",
            shown()
        )));
    }
    if let [drive, b':', ..] = name.as_bytes()
        && drive.is_ascii_alphabetic()
    {
        return Err(ArchiveError::UnsafePath(format!("drive path {}", shown())));
    }
    let mut parts: Vec<String> = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ArchiveError::UnsafePath(format!(
                        "path escapes the destination: {}",
                        shown()
                    )));
                }
            }
            _ => {
                if part.len() > MAX_COMPONENT {
                    return Err(ArchiveError::UnsafePath(format!(
                        "path component longer than {MAX_COMPONENT} bytes in {}",
                        shown()
                    )));
                }
                parts.push(part.to_owned());
                if parts.len() > max_depth {
                    return Err(ArchiveError::TooDeep { limit: max_depth });
                }
            }
        }
    }
    Ok(parts)
}

/// Refuses links and special files described by unix mode bits.
fn check_unix_mode(mode: u32, name: &str) -> Result<(), ArchiveError> {
    match mode & S_IFMT {
        S_IFLNK => Err(ArchiveError::LinkRefused(name.escape_debug().to_string())),
        S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK => Err(ArchiveError::UnsafePath(format!(
            "special file {}",
            name.escape_debug()
        ))),
        _ => Ok(()),
    }
}

/// Refuses links and special files described by 7z (Windows) attributes.
fn check_7z_attributes(entry: &sevenz_rust2::ArchiveEntry) -> Result<(), ArchiveError> {
    if !entry.has_windows_attributes {
        return Ok(());
    }
    let attr = entry.windows_attributes;
    if attr & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(ArchiveError::LinkRefused(
            entry.name.escape_debug().to_string(),
        ));
    }
    if attr & FILE_ATTRIBUTE_UNIX_EXTENSION != 0 {
        check_unix_mode(attr >> 16, &entry.name)?;
    }
    Ok(())
}

fn mode_7z(entry: &sevenz_rust2::ArchiveEntry) -> Option<u32> {
    let attr = entry.windows_attributes;
    (entry.has_windows_attributes && attr & FILE_ATTRIBUTE_UNIX_EXTENSION != 0)
        .then_some(attr >> 16)
}

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------

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
        ArchiveFormat::Zip => extract_zip(file, &mut ex),
        ArchiveFormat::SevenZ => extract_7z(file, &mut ex),
        ArchiveFormat::TarGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(CHUNK, file));
            extract_tar(gz, &mut ex)
        }
        ArchiveFormat::TarBz2 => {
            let bz = bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(CHUNK, file));
            extract_tar(bz, &mut ex)
        }
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

/// State of one extraction: the destination, the budgets, and what was created
/// (so that it can be removed again on error).
struct Extractor<'a> {
    dest: PathBuf,
    dest_created: bool,
    limits: &'a ExtractLimits,
    cancel: &'a AtomicBool,
    /// Most bytes that may be written: `max_total_bytes`, lowered by the ratio.
    budget: u64,
    summary: ArchiveSummary,
    /// Roots of the subtrees this extraction created (their parents existed
    /// before), to remove on error.
    created: Vec<PathBuf>,
    buf: Vec<u8>,
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
        let mut budget = limits.max_total_bytes;
        if let Some(ratio) = limits.max_ratio {
            // A float-to-int `as` saturates, which is what we want here.
            let by_ratio = ((src_len as f64) * ratio.max(0.0)) as u64;
            budget = budget.min(by_ratio.max(RATIO_FLOOR));
        }
        Ok(Self {
            dest: dest.to_path_buf(),
            dest_created,
            limits,
            cancel,
            budget,
            summary: ArchiveSummary::default(),
            created: Vec::new(),
            buf: vec![0; CHUNK],
        })
    }

    fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge { limit: self.budget }
    }

    /// Counts one entry against the limit (and polls cancellation).
    fn begin_entry(&mut self) -> Result<(), ArchiveError> {
        check_cancel(self.cancel)?;
        self.summary.entries += 1;
        if self.summary.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Early refusal from an index that lists every entry (zip, 7z).
    fn precheck_count(&self, count: u64) -> Result<(), ArchiveError> {
        if count > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Early refusal from declared sizes (which are never relied upon otherwise).
    fn precheck_declared(&self, declared: u128) -> Result<(), ArchiveError> {
        if declared > u128::from(self.budget) {
            return Err(self.too_large());
        }
        Ok(())
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

    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
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
    fn file(
        &mut self,
        name: &str,
        reader: &mut dyn Read,
        mode: Option<u32>,
    ) -> Result<(), ArchiveError> {
        let parts = sanitize(name, self.limits.max_depth)?;
        let Some((leaf, parents)) = parts.split_last() else {
            return Err(ArchiveError::UnsafePath(format!(
                "file entry without a name: {}",
                name.escape_debug()
            )));
        };
        let (mut path, parent_new) = self.ensure_dirs(parents, name)?;
        path.push(leaf);
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
        let file = match options.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(ArchiveError::LinkRefused(format!(
                        "{} would replace an existing symlink",
                        name.escape_debug()
                    )));
                }
                return Err(ArchiveError::Corrupt(format!(
                    "duplicate or conflicting entry {}",
                    name.escape_debug()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if !parent_new {
            self.created.push(path);
        }
        self.summary.files += 1;
        self.copy(reader, Some(file))
    }

    /// Streams `reader` into `out` (or nowhere), counting every byte against
    /// the budget before it is written, and polling cancellation per chunk.
    fn copy(&mut self, reader: &mut dyn Read, out: Option<File>) -> Result<(), ArchiveError> {
        let mut out = out.map(|f| BufWriter::with_capacity(CHUNK, f));
        loop {
            check_cancel(self.cancel)?;
            let n = match reader.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            let total = self.summary.total_bytes + n as u64;
            if total > self.budget {
                return Err(self.too_large());
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

fn extract_zip(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut zip = zip::ZipArchive::new(BufReader::with_capacity(CHUNK, file)).map_err(corrupt)?;
    ex.precheck_count(zip.len() as u64)?;

    // The central directory lists everything: check every entry before the
    // first byte is written.
    let mut declared: u128 = 0;
    for i in 0..zip.len() {
        check_cancel(ex.cancel)?;
        let entry = zip.by_index_data(i).map_err(corrupt)?;
        let name = zip_name(entry.name_raw(), entry.name())?;
        if entry.is_symlink() {
            return Err(ArchiveError::LinkRefused(name.escape_debug().to_string()));
        }
        if let Some(mode) = entry.unix_mode() {
            check_unix_mode(mode, &name)?;
        }
        let parts = sanitize(&name, ex.limits.max_depth)?;
        if parts.is_empty() && !entry.is_dir() {
            return Err(ArchiveError::UnsafePath(format!(
                "file entry without a name: {}",
                name.escape_debug()
            )));
        }
        if entry.encrypted() {
            return Err(ArchiveError::Corrupt(format!(
                "encrypted entry {}",
                name.escape_debug()
            )));
        }
        declared += u128::from(entry.size());
    }
    ex.precheck_declared(declared)?;

    for i in 0..zip.len() {
        ex.begin_entry()?;
        let mut entry = zip.by_index(i).map_err(corrupt)?;
        let name = zip_name(entry.name_raw(), entry.name())?;
        if entry.is_dir() {
            ex.dir(&name)?;
            ex.copy(&mut entry, None)?;
        } else {
            let mode = entry.unix_mode();
            ex.file(&name, &mut entry, mode)?;
        }
    }
    Ok(())
}

fn zip_name(
    raw: &[u8],
    decoded: zip::result::ZipResult<std::borrow::Cow<'_, str>>,
) -> Result<String, ArchiveError> {
    if raw.contains(&0) {
        return Err(ArchiveError::UnsafePath(format!(
            "NUL in name {}",
            String::from_utf8_lossy(raw).escape_debug()
        )));
    }
    decoded.map(|n| n.into_owned()).map_err(corrupt)
}

fn extract_7z(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut reader = sevenz_rust2::ArchiveReader::new_with_memory_limit(
        BufReader::with_capacity(CHUNK, file),
        sevenz_rust2::Password::empty(),
        SEVENZ_MEMORY_LIMIT_KIB,
    )
    .map_err(corrupt)?;
    // The service runs several tasks side by side; one decoding thread each.
    reader.set_thread_count(1);

    let files = &reader.archive().files;
    ex.precheck_count(files.len() as u64)?;
    let mut declared: u128 = 0;
    for entry in files {
        check_cancel(ex.cancel)?;
        check_7z_attributes(entry)?;
        if entry.is_anti_item {
            return Err(ArchiveError::Corrupt(format!(
                "anti-item {}",
                entry.name.escape_debug()
            )));
        }
        let parts = sanitize(&entry.name, ex.limits.max_depth)?;
        if parts.is_empty() && !entry.is_directory {
            return Err(ArchiveError::UnsafePath(format!(
                "file entry without a name: {}",
                entry.name.escape_debug()
            )));
        }
        declared += u128::from(entry.size);
    }
    ex.precheck_declared(declared)?;

    let mut failure: Option<ArchiveError> = None;
    let result = reader.for_each_entries_with_decision(|entry, data| {
        let step = ex.begin_entry().and_then(|()| {
            if entry.is_directory {
                ex.dir(&entry.name)?;
                ex.copy(data, None)
            } else {
                ex.file(&entry.name, data, mode_7z(entry))
            }
        });
        match step {
            Ok(()) => Ok(sevenz_rust2::EntryDecision::Continue),
            Err(e) => {
                failure = Some(e);
                Ok(sevenz_rust2::EntryDecision::Stop)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(corrupt)
}

/// Reads a tar metadata record (long name, pax header) of bounded size.
fn read_tar_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<u8>, ArchiveError> {
    if entry.size() > TAR_META_MAX {
        return Err(ArchiveError::Corrupt(format!(
            "tar metadata record of {} bytes",
            entry.size()
        )));
    }
    let mut v = Vec::new();
    entry
        .take(TAR_META_MAX)
        .read_to_end(&mut v)
        .map_err(corrupt)?;
    Ok(v)
}

/// Tar is a stream: entries are checked one at a time, each before anything is
/// written for it. The tar crate is used in raw mode and the metadata records
/// (GNU long names, pax headers) are handled here, so that their size stays
/// bounded.
fn extract_tar<R: Read>(reader: R, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    let mut meta_records: u64 = 0;

    for entry in entries {
        check_cancel(ex.cancel)?;
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            meta_records += 1;
            if meta_records > ex.limits.max_entries.saturating_mul(4) {
                return Err(ArchiveError::TooManyEntries {
                    limit: ex.limits.max_entries,
                });
            }
            let data = read_tar_meta(&mut entry)?;
            if kind.is_gnu_longname() {
                let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                long_name = Some(data[..end].to_vec());
            } else if kind.is_pax_local_extensions() {
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(corrupt)?;
                    match ext.key_bytes() {
                        b"path" => pax_path = Some(ext.value_bytes().to_vec()),
                        b"size" => {
                            let size = ext
                                .value()
                                .ok()
                                .and_then(|v| v.trim().parse::<u64>().ok())
                                .ok_or_else(|| corrupt("bad pax size"))?;
                            pax_size = Some(size);
                        }
                        key if key.starts_with(b"GNU.sparse.") => {
                            return Err(ArchiveError::Corrupt(
                                "sparse tar entries are not supported".into(),
                            ));
                        }
                        _ => {}
                    }
                }
            }
            // Long link names are read and dropped: the link entry that
            // follows is refused anyway. Global pax headers carry nothing we use.
            continue;
        }

        ex.begin_entry()?;
        let name_bytes = long_name
            .take()
            .or_else(|| pax_path.take())
            .unwrap_or_else(|| entry.header().path_bytes().into_owned());
        pax_path = None;
        if name_bytes.contains(&0) {
            return Err(ArchiveError::UnsafePath(format!(
                "NUL in name {}",
                String::from_utf8_lossy(&name_bytes).escape_debug()
            )));
        }
        // Names that are not UTF-8 are kept readable rather than refused.
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        if let Some(size) = pax_size.take()
            && size != entry.size()
        {
            if size > ex.budget {
                return Err(ex.too_large());
            }
            return Err(ArchiveError::Corrupt(format!(
                "pax size override for {} is not supported",
                name.escape_debug()
            )));
        }

        let mode = entry.header().mode().ok();
        // Pre-POSIX tars mark directories with a trailing slash only.
        let old_style_dir =
            kind == tar::EntryType::Regular && name.ends_with('/') && entry.size() == 0;
        match kind {
            _ if old_style_dir => ex.dir(&name)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                ex.file(&name, &mut entry, mode)?;
            }
            tar::EntryType::Directory => {
                ex.dir(&name)?;
                ex.copy(&mut entry, None)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(ArchiveError::LinkRefused(name.escape_debug().to_string()));
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(ArchiveError::UnsafePath(format!(
                    "special file {}",
                    name.escape_debug()
                )));
            }
            tar::EntryType::GNUSparse => {
                return Err(ArchiveError::Corrupt(
                    "sparse tar entries are not supported".into(),
                ));
            }
            other => {
                return Err(ArchiveError::Corrupt(format!(
                    "unsupported tar entry type {:?} for {}",
                    other.as_byte() as char,
                    name.escape_debug()
                )));
            }
        }
    }
    if long_name.is_some() || pax_path.is_some() {
        return Err(corrupt("tar metadata record without an entry"));
    }
    // Read the compressed stream to its end, so that the gzip / bzip2
    // checksums that follow the tar end marker are verified too. Only record
    // padding belongs there, so the amount is bounded.
    let mut rest = archive.into_inner();
    let mut trailing: u64 = 0;
    loop {
        check_cancel(ex.cancel)?;
        let n = match rest.read(&mut ex.buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e)),
        };
        trailing += n as u64;
        if trailing > TAR_TRAILING_MAX {
            return Err(corrupt("data after the end of the tar archive"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------

enum Kind {
    Dir,
    File { size: u64 },
}

struct Item {
    /// `/`-separated name inside the archive, without a trailing slash.
    name: String,
    path: PathBuf,
    kind: Kind,
    mode: u32,
    mtime: Option<std::time::SystemTime>,
}

/// Lists `root` depth first, sorted by name, each directory before its
/// contents. Symlinks and special files are refused.
fn collect(root: &Path, cancel: &AtomicBool) -> Result<Vec<Item>, ArchiveError> {
    let meta = fs::symlink_metadata(root)?;
    if !meta.is_dir() {
        return Err(ArchiveError::Io(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", root.display()),
        )));
    }
    let mut items = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        check_cancel(cancel)?;
        let mut children: Vec<(String, PathBuf, fs::Metadata)> = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                return Err(ArchiveError::UnsafePath(format!(
                    "name that is not UTF-8: {}",
                    entry.path().display()
                )));
            };
            let name = if prefix.is_empty() {
                file_name.to_owned()
            } else {
                format!("{prefix}/{file_name}")
            };
            children.push((name, entry.path(), fs::symlink_metadata(entry.path())?));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, path, meta) in children {
            let ft = meta.file_type();
            let mode = unix_mode(&meta);
            let mtime = meta.modified().ok();
            if ft.is_symlink() {
                return Err(ArchiveError::LinkRefused(name));
            } else if ft.is_dir() {
                items.push(Item {
                    name: name.clone(),
                    path: path.clone(),
                    kind: Kind::Dir,
                    mode,
                    mtime,
                });
                subdirs.push((path, name));
            } else if ft.is_file() {
                items.push(Item {
                    name,
                    path,
                    kind: Kind::File { size: meta.len() },
                    mode,
                    mtime,
                });
            } else {
                return Err(ArchiveError::UnsafePath(format!("special file {name}")));
            }
        }
        stack.extend(subdirs);
    }
    // Depth first in name order, every directory before its contents.
    items.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    Ok(items)
}

#[cfg(unix)]
fn unix_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn unix_mode(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

/// Permissions stored in archives: rwx for the owner, r-x/r-- for the others,
/// no set-id or sticky bits.
fn stored_mode(item: &Item) -> u32 {
    match item.kind {
        Kind::Dir => 0o755,
        Kind::File { .. } if item.mode & 0o111 != 0 => 0o755,
        Kind::File { .. } => 0o644,
    }
}

/// A reader that fails once the cancel flag is set, so that encoders that pull
/// data themselves stop within one chunk.
struct CancelReader<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for CancelReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

fn open_item<'a>(item: &Item, cancel: &'a AtomicBool) -> io::Result<CancelReader<'a, File>> {
    Ok(CancelReader {
        inner: File::open(&item.path)?,
        cancel,
    })
}

/// Packs the contents of `src_dir` (not the folder itself) into a new archive
/// at `out`, which must not exist yet. On error `out` is removed.
pub fn create(
    src_dir: &Path,
    format: ArchiveFormat,
    out: &Path,
    cancel: &AtomicBool,
) -> Result<ArchiveSummary, ArchiveError> {
    check_cancel(cancel)?;
    let items = collect(src_dir, cancel)?;
    let file = OpenOptions::new().write(true).create_new(true).open(out)?;
    let writer = BufWriter::with_capacity(CHUNK, file);
    let result = match format {
        ArchiveFormat::Zip => create_zip(&items, writer, cancel),
        ArchiveFormat::SevenZ => create_7z(&items, writer, cancel),
        ArchiveFormat::TarGz => {
            let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::new(GZIP_LEVEL));
            create_tar(&items, gz, cancel).and_then(|gz| finish_writer(gz.finish()?))
        }
        ArchiveFormat::TarBz2 => {
            let bz = bzip2::write::BzEncoder::new(writer, bzip2::Compression::new(BZIP2_LEVEL));
            create_tar(&items, bz, cancel).and_then(|bz| finish_writer(bz.finish()?))
        }
    };
    match result {
        Ok(()) => {
            let mut summary = ArchiveSummary::default();
            for item in &items {
                summary.entries += 1;
                match item.kind {
                    Kind::Dir => summary.dirs += 1,
                    Kind::File { size } => {
                        summary.files += 1;
                        summary.total_bytes += size;
                    }
                }
            }
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_file(out);
            Err(or_cancelled(cancel, e))
        }
    }
}

/// Flushes the output. No fsync: the output is scratch that the storing
/// stage copies; a crash means the run is retried anyway.
fn finish_writer(w: BufWriter<File>) -> Result<(), ArchiveError> {
    w.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn create_zip(
    items: &[Item],
    writer: BufWriter<File>,
    cancel: &AtomicBool,
) -> Result<(), ArchiveError> {
    let zip_err = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(e) => ArchiveError::Io(e),
        other => corrupt(other),
    };
    let mut zip = zip::ZipWriter::new(writer);
    let base = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(ZIP_LEVEL));
    for item in items {
        check_cancel(cancel)?;
        let mut options = base.unix_permissions(stored_mode(item));
        if let Some(t) = item.mtime.and_then(zip_time) {
            options = options.last_modified_time(t);
        }
        match item.kind {
            Kind::Dir => zip
                .add_directory(format!("{}/", item.name), options)
                .map_err(zip_err)?,
            Kind::File { size } => {
                // Zip64 headers only where needed (at or above 4 GiB, with
                // room for growth of the file while it is read).
                let options = options.large_file(size >= 0xFFFF_0000);
                zip.start_file(item.name.as_str(), options)
                    .map_err(zip_err)?;
                let mut src = open_item(item, cancel)?;
                io::copy(&mut src, &mut zip)?;
            }
        }
    }
    let writer = zip.finish().map_err(zip_err)?;
    finish_writer(writer)
}

fn zip_time(t: std::time::SystemTime) -> Option<zip::DateTime> {
    let t = chrono::DateTime::<chrono::Utc>::from(t).naive_utc();
    zip::DateTime::try_from(t).ok()
}

fn create_tar<W: Write>(items: &[Item], writer: W, cancel: &AtomicBool) -> Result<W, ArchiveError> {
    let mut builder = tar::Builder::new(writer);
    for item in items {
        check_cancel(cancel)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(stored_mode(item));
        header.set_uid(0);
        header.set_gid(0);
        let mtime = item
            .mtime
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        header.set_mtime(mtime);
        match item.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", item.name), io::empty())?;
            }
            Kind::File { size } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                // The header promises `size` bytes: a file that changed size
                // since it was listed is an error, not a broken archive.
                let mut src = open_item(item, cancel)?.take(size);
                let mut counted = CountingReader {
                    inner: &mut src,
                    count: 0,
                };
                builder.append_data(&mut header, &item.name, &mut counted)?;
                if counted.count != size {
                    return Err(ArchiveError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} changed while being archived", item.name),
                    )));
                }
            }
        }
    }
    Ok(builder.into_inner()?)
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn create_7z(
    items: &[Item],
    writer: BufWriter<File>,
    cancel: &AtomicBool,
) -> Result<(), ArchiveError> {
    let sz_err = |e: sevenz_rust2::Error| match e {
        sevenz_rust2::Error::Io(e, _) | sevenz_rust2::Error::FileOpen(e, _) => ArchiveError::Io(e),
        other => corrupt(other),
    };
    let mut sz = sevenz_rust2::ArchiveWriter::new(writer).map_err(sz_err)?;
    sz.set_content_methods(vec![
        sevenz_rust2::EncoderConfiguration::new(sevenz_rust2::EncoderMethod::LZMA2).with_options(
            sevenz_rust2::encoder_options::Lzma2Options::from_level(LZMA2_PRESET).into(),
        ),
    ]);
    for item in items {
        check_cancel(cancel)?;
        let mut entry = match item.kind {
            Kind::Dir => sevenz_rust2::ArchiveEntry::new_directory(&item.name),
            Kind::File { .. } => sevenz_rust2::ArchiveEntry::new_file(&item.name),
        };
        let file_type = match item.kind {
            Kind::Dir => 0o040_000,
            Kind::File { .. } => 0o100_000,
        };
        entry.has_windows_attributes = true;
        entry.windows_attributes = match item.kind {
            Kind::Dir => FILE_ATTRIBUTE_DIRECTORY,
            Kind::File { .. } => FILE_ATTRIBUTE_ARCHIVE,
        } | FILE_ATTRIBUTE_UNIX_EXTENSION
            | ((file_type | stored_mode(item)) << 16);
        if let Some(t) = item
            .mtime
            .and_then(|t| sevenz_rust2::NtTime::try_from(t).ok())
        {
            entry.last_modified_date = t;
            entry.has_last_modified_date = true;
        }
        match item.kind {
            // Empty files carry no stream, as 7-Zip writes them.
            Kind::Dir | Kind::File { size: 0 } => {
                sz.push_archive_entry(entry, None::<io::Empty>)
                    .map_err(sz_err)?;
            }
            Kind::File { .. } => {
                let src = open_item(item, cancel)?;
                sz.push_archive_entry(entry, Some(src)).map_err(sz_err)?;
            }
        }
    }
    let writer = sz.finish()?;
    finish_writer(writer)
}

// ---------------------------------------------------------------------------
// Recompression
// ---------------------------------------------------------------------------

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
