//! Creation: listing a directory tree (no links, no special files, UTF-8
//! names only) and handing it to the writer of the chosen format. The items
//! and the helpers every writer shares (stored modes, cancellable readers,
//! the final flush) live here so that `zip`, `sevenz` and `tar` only encode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    ArchiveError, ArchiveFormat, ArchiveSummary, CHUNK, check_cancel, or_cancelled, sevenz, tar,
    zip,
};

pub(super) enum Kind {
    Dir,
    File { size: u64 },
}

pub(super) struct Item {
    /// `/`-separated name inside the archive, without a trailing slash.
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) mtime: Option<std::time::SystemTime>,
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
        ArchiveFormat::Zip => zip::create(&items, writer, cancel),
        ArchiveFormat::SevenZ => sevenz::create(&items, writer, cancel),
        ArchiveFormat::TarGz => {
            let level = flate2::Compression::new(tar::GZIP_LEVEL);
            let gz = flate2::write::GzEncoder::new(writer, level);
            tar::create(&items, gz, cancel).and_then(|gz| finish_writer(gz.finish()?))
        }
        ArchiveFormat::TarBz2 => {
            let level = bzip2::Compression::new(tar::BZIP2_LEVEL);
            let bz = bzip2::write::BzEncoder::new(writer, level);
            tar::create(&items, bz, cancel).and_then(|bz| finish_writer(bz.finish()?))
        }
    };
    match result {
        Ok(()) => Ok(summarize(&items)),
        Err(e) => {
            let _ = fs::remove_file(out);
            Err(or_cancelled(cancel, e))
        }
    }
}

fn summarize(items: &[Item]) -> ArchiveSummary {
    let mut summary = ArchiveSummary::default();
    for item in items {
        summary.entries += 1;
        match item.kind {
            Kind::Dir => summary.dirs += 1,
            Kind::File { size } => {
                summary.files += 1;
                summary.total_bytes += size;
            }
        }
    }
    summary
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
        for (name, path, meta) in list_dir(&dir, &prefix)? {
            let item = to_item(name, path, &meta)?;
            if let Kind::Dir = item.kind {
                stack.push((item.path.clone(), item.name.clone()));
            }
            items.push(item);
        }
    }
    // Depth first in name order, every directory before its contents.
    items.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    Ok(items)
}

/// The children of `dir`, named `prefix/child` and sorted by that name, with
/// their own metadata (a symlink is not followed).
fn list_dir(
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(String, PathBuf, fs::Metadata)>, ArchiveError> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir)? {
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
    Ok(children)
}

/// A directory or regular file as an item; anything else is refused.
fn to_item(name: String, path: PathBuf, meta: &fs::Metadata) -> Result<Item, ArchiveError> {
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        return Err(ArchiveError::LinkRefused(name));
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File { size: meta.len() }
    } else {
        return Err(ArchiveError::UnsafePath(format!("special file {name}")));
    };
    Ok(Item {
        name,
        path,
        kind,
        mode: unix_mode(meta),
        mtime: meta.modified().ok(),
    })
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
pub(super) fn stored_mode(item: &Item) -> u32 {
    match item.kind {
        Kind::Dir => 0o755,
        Kind::File { .. } if item.mode & 0o111 != 0 => 0o755,
        Kind::File { .. } => 0o644,
    }
}

/// A reader that fails once the cancel flag is set, so that encoders that pull
/// data themselves stop within one chunk.
pub(super) struct CancelReader<'a, R> {
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

pub(super) fn open_item<'a>(
    item: &Item,
    cancel: &'a AtomicBool,
) -> io::Result<CancelReader<'a, File>> {
    Ok(CancelReader {
        inner: File::open(&item.path)?,
        cancel,
    })
}

/// Flushes the output. No fsync: the output is scratch that the storing
/// stage copies; a crash means the run is retried anyway.
pub(super) fn finish_writer(w: BufWriter<File>) -> Result<(), ArchiveError> {
    w.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}
