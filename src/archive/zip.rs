//! zip: reading through the [`Extractor`], writing from a collected tree.
//! The central directory lists every entry up front, so every name, mode
//! and declared size is checked before the first byte is written.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::sync::atomic::AtomicBool;

use super::create::{Item, Kind, finish_writer, open_item, stored_mode};
use super::extract::Extractor;
use super::limits::{check_indexed_name, check_unix_mode, link_refused, refuse_nul};
use super::{ArchiveError, CHUNK, check_cancel, corrupt};

/// zip deflate level, the same as Info-ZIP `zip`'s default (`-6`).
const ZIP_LEVEL: i64 = 6;

type ZipReader = zip::ZipArchive<BufReader<File>>;

pub(super) fn extract(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut zip = zip::ZipArchive::new(BufReader::with_capacity(CHUNK, file)).map_err(corrupt)?;
    ex.budget.check_entries(zip.len() as u64)?;
    check_index(&mut zip, ex)?;
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

/// The central directory lists everything: check every entry before the
/// first byte is written.
fn check_index(zip: &mut ZipReader, ex: &Extractor<'_>) -> Result<(), ArchiveError> {
    let mut declared: u128 = 0;
    for i in 0..zip.len() {
        check_cancel(ex.cancel)?;
        let entry = zip.by_index_data(i).map_err(corrupt)?;
        let name = zip_name(entry.name_raw(), entry.name())?;
        if entry.is_symlink() {
            return Err(link_refused(&name));
        }
        if let Some(mode) = entry.unix_mode() {
            check_unix_mode(mode, &name)?;
        }
        check_indexed_name(&name, entry.is_dir(), ex.limits.max_depth)?;
        if entry.encrypted() {
            return Err(ArchiveError::Corrupt(format!(
                "encrypted entry {}",
                name.escape_debug()
            )));
        }
        declared += u128::from(entry.size());
    }
    ex.budget.check_declared(declared)
}

fn zip_name(
    raw: &[u8],
    decoded: zip::result::ZipResult<std::borrow::Cow<'_, str>>,
) -> Result<String, ArchiveError> {
    refuse_nul(raw)?;
    decoded.map(|n| n.into_owned()).map_err(corrupt)
}

pub(super) fn create(
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
