//! 7z: reading through the [`Extractor`], writing from a collected tree.
//! Like zip, the header lists every entry before the data, so all of them
//! are checked before the first write; links and special files show up as
//! Windows attributes or as unix modes in the "unix extension" bits.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::sync::atomic::AtomicBool;

use sevenz_rust2::{ArchiveEntry, ArchiveReader};

use super::create::{Item, Kind, finish_writer, open_item, stored_mode};
use super::extract::Extractor;
use super::limits::{check_indexed_name, check_unix_mode, link_refused};
use super::{ArchiveError, CHUNK, check_cancel, corrupt};

/// Most memory a 7z header buffer or decoder (dictionary, model) may claim.
/// 7-Zip's strongest preset uses a 64 MiB dictionary; 512 MiB leaves room for
/// hand-tuned archives and refuses headers that ask for gigabytes.
const SEVENZ_MEMORY_LIMIT_KIB: usize = 512 * 1024;

/// LZMA2 preset, the same as `7z`'s default ("normal").
const LZMA2_PRESET: u32 = 6;

// Windows attributes used by 7z.
const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
const FILE_ATTRIBUTE_UNIX_EXTENSION: u32 = 0x8000;

/// Refuses links and special files described by 7z (Windows) attributes.
fn check_attributes(entry: &ArchiveEntry) -> Result<(), ArchiveError> {
    if !entry.has_windows_attributes {
        return Ok(());
    }
    let attr = entry.windows_attributes;
    if attr & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(link_refused(&entry.name));
    }
    if attr & FILE_ATTRIBUTE_UNIX_EXTENSION != 0 {
        check_unix_mode(attr >> 16, &entry.name)?;
    }
    Ok(())
}

fn unix_mode(entry: &ArchiveEntry) -> Option<u32> {
    let attr = entry.windows_attributes;
    (entry.has_windows_attributes && attr & FILE_ATTRIBUTE_UNIX_EXTENSION != 0)
        .then_some(attr >> 16)
}

pub(super) fn extract(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut reader = ArchiveReader::new_with_memory_limit(
        BufReader::with_capacity(CHUNK, file),
        sevenz_rust2::Password::empty(),
        SEVENZ_MEMORY_LIMIT_KIB,
    )
    .map_err(corrupt)?;
    // The service runs several tasks side by side; one decoding thread each.
    reader.set_thread_count(1);
    check_index(&reader.archive().files, ex)?;

    let mut failure: Option<ArchiveError> = None;
    let result = reader.for_each_entries_with_decision(|entry, data| {
        let step = ex.begin_entry().and_then(|()| {
            if entry.is_directory {
                ex.dir(&entry.name)?;
                ex.copy(data, None)
            } else {
                ex.file(&entry.name, data, unix_mode(entry))
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

/// The header lists everything: check every entry before the first byte is
/// written.
fn check_index(files: &[ArchiveEntry], ex: &Extractor<'_>) -> Result<(), ArchiveError> {
    ex.budget.check_entries(files.len() as u64)?;
    let mut declared: u128 = 0;
    for entry in files {
        check_cancel(ex.cancel)?;
        check_attributes(entry)?;
        if entry.is_anti_item {
            return Err(ArchiveError::Corrupt(format!(
                "anti-item {}",
                entry.name.escape_debug()
            )));
        }
        check_indexed_name(&entry.name, entry.is_directory, ex.limits.max_depth)?;
        declared += u128::from(entry.size);
    }
    ex.budget.check_declared(declared)
}

pub(super) fn create(
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
        let entry = archive_entry(item);
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

/// The 7z entry of `item`: its kind and mode as Windows attributes with the
/// unix extension, and its modification time when it has one.
fn archive_entry(item: &Item) -> ArchiveEntry {
    let mut entry = match item.kind {
        Kind::Dir => ArchiveEntry::new_directory(&item.name),
        Kind::File { .. } => ArchiveEntry::new_file(&item.name),
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
    entry
}
