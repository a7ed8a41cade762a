//! tar.gz and tar.bz2: reading through the [`Extractor`], writing from a
//! collected tree. Tar is a stream with no index, so each entry is checked on
//! its own, before anything is written for it. The tar crate is used in raw
//! mode and the metadata records (GNU long names, pax headers) are handled
//! here, so that their size and number stay bounded.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::AtomicBool;

use tar::EntryType;

use super::create::{Item, Kind, open_item, stored_mode};
use super::extract::{Extractor, read_chunk};
use super::limits::{link_refused, refuse_nul, special_file};
use super::{ArchiveError, CHUNK, check_cancel, corrupt};

/// Upper bound for tar metadata records (GNU long names, pax headers) that are
/// read into memory.
const TAR_META_MAX: u64 = 1024 * 1024;

/// Most bytes accepted after the tar end marker (record padding: GNU tar's
/// largest blocking factor makes 1 MiB records).
const TAR_TRAILING_MAX: u64 = 2 * 1024 * 1024;

/// gzip level, the same as `gzip`'s default.
pub(super) const GZIP_LEVEL: u32 = 6;
/// bzip2 block size, the same as `bzip2`'s default (`-9`, 900 k).
pub(super) const BZIP2_LEVEL: u32 = 9;

pub(super) fn extract_gz(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(CHUNK, file));
    extract(gz, ex)
}

pub(super) fn extract_bz2(file: File, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let bz = bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(CHUNK, file));
    extract(bz, ex)
}

/// Extracts a decompressed tar stream, one entry at a time.
fn extract<R: Read>(reader: R, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut meta = PendingMeta::default();
    for entry in entries {
        check_cancel(ex.cancel)?;
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if is_meta(kind) {
            meta.read(&mut entry, kind, ex)?;
            continue;
        }
        ex.begin_entry()?;
        let name = meta.entry_name(entry.header())?;
        meta.check_size(entry.size(), &name, ex)?;
        write_entry(kind, &name, &mut entry, ex)?;
    }
    meta.finish()?;
    drain_trailing(archive.into_inner(), ex)
}

/// GNU long names, GNU long link names and pax headers: records that describe
/// the entry after them rather than being entries themselves.
fn is_meta(kind: EntryType) -> bool {
    kind.is_gnu_longname()
        || kind.is_gnu_longlink()
        || kind.is_pax_local_extensions()
        || kind.is_pax_global_extensions()
}

/// What the metadata records since the last entry said about the next one.
#[derive(Default)]
struct PendingMeta {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// Metadata records read so far in the whole archive.
    records: u64,
}

impl PendingMeta {
    /// Reads one metadata record; at most four per allowed entry, each of
    /// bounded size.
    fn read<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        ex: &Extractor<'_>,
    ) -> Result<(), ArchiveError> {
        self.records += 1;
        if self.records > ex.budget.entries.saturating_mul(4) {
            return Err(ex.budget.too_many_entries());
        }
        let data = read_meta(entry)?;
        if kind.is_gnu_longname() {
            let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            self.long_name = Some(data[..end].to_vec());
        } else if kind.is_pax_local_extensions() {
            self.read_pax(&data)?;
        }
        // Long link names are read and dropped: the link entry that
        // follows is refused anyway. Global pax headers carry nothing we use.
        Ok(())
    }

    /// Keeps the `path` and `size` of a local pax header; sparse files are
    /// refused.
    fn read_pax(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        for ext in tar::PaxExtensions::new(data) {
            let ext = ext.map_err(corrupt)?;
            match ext.key_bytes() {
                b"path" => self.pax_path = Some(ext.value_bytes().to_vec()),
                b"size" => {
                    let size = ext
                        .value()
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .ok_or_else(|| corrupt("bad pax size"))?;
                    self.pax_size = Some(size);
                }
                key if key.starts_with(b"GNU.sparse.") => {
                    return Err(ArchiveError::Corrupt(
                        "sparse tar entries are not supported".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The name of the entry with `header`: a GNU long name, else a pax path,
    /// else the header's own. Both pending names are used up.
    fn entry_name(&mut self, header: &tar::Header) -> Result<String, ArchiveError> {
        let name_bytes = self
            .long_name
            .take()
            .or_else(|| self.pax_path.take())
            .unwrap_or_else(|| header.path_bytes().into_owned());
        self.pax_path = None;
        refuse_nul(&name_bytes)?;
        // Names that are not UTF-8 are kept readable rather than refused.
        Ok(String::from_utf8_lossy(&name_bytes).into_owned())
    }

    /// A pax size that differs from the header's is refused (as too large
    /// when it is past the budget); the pending size is used up.
    fn check_size(
        &mut self,
        header_size: u64,
        name: &str,
        ex: &Extractor<'_>,
    ) -> Result<(), ArchiveError> {
        if let Some(size) = self.pax_size.take()
            && size != header_size
        {
            if size > ex.budget.bytes {
                return Err(ex.budget.too_large());
            }
            return Err(ArchiveError::Corrupt(format!(
                "pax size override for {} is not supported",
                name.escape_debug()
            )));
        }
        Ok(())
    }

    /// A long name or pax path with no entry after it means a cut archive.
    fn finish(&self) -> Result<(), ArchiveError> {
        if self.long_name.is_some() || self.pax_path.is_some() {
            return Err(corrupt("tar metadata record without an entry"));
        }
        Ok(())
    }
}

/// Reads a tar metadata record (long name, pax header) of bounded size.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<u8>, ArchiveError> {
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

/// Writes one entry that is not a metadata record: regular files and
/// directories only; links, devices, fifos and sparse files are refused.
fn write_entry<R: Read>(
    kind: EntryType,
    name: &str,
    entry: &mut tar::Entry<'_, R>,
    ex: &mut Extractor<'_>,
) -> Result<(), ArchiveError> {
    let mode = entry.header().mode().ok();
    // Pre-POSIX tars mark directories with a trailing slash only.
    let old_style_dir = kind == EntryType::Regular && name.ends_with('/') && entry.size() == 0;
    match kind {
        _ if old_style_dir => ex.dir(name),
        EntryType::Regular | EntryType::Continuous => ex.file(name, entry, mode),
        EntryType::Directory => {
            ex.dir(name)?;
            ex.copy(entry, None)
        }
        EntryType::Symlink | EntryType::Link => Err(link_refused(name)),
        EntryType::Char | EntryType::Block | EntryType::Fifo => Err(special_file(name)),
        EntryType::GNUSparse => Err(ArchiveError::Corrupt(
            "sparse tar entries are not supported".into(),
        )),
        other => Err(ArchiveError::Corrupt(format!(
            "unsupported tar entry type {:?} for {}",
            other.as_byte() as char,
            name.escape_debug()
        ))),
    }
}

/// Reads the compressed stream to its end, so that the gzip / bzip2
/// checksums that follow the tar end marker are verified too. Only record
/// padding belongs there, so the amount is bounded.
fn drain_trailing(mut rest: impl Read, ex: &mut Extractor<'_>) -> Result<(), ArchiveError> {
    let mut trailing: u64 = 0;
    loop {
        let n = read_chunk(&mut rest, &mut ex.buf, ex.cancel)?;
        if n == 0 {
            return Ok(());
        }
        trailing += n as u64;
        if trailing > TAR_TRAILING_MAX {
            return Err(corrupt("data after the end of the tar archive"));
        }
    }
}

/// Writes `items` as a tar stream into `writer` (a gzip or bzip2 encoder)
/// and hands the writer back for its final flush.
pub(super) fn create<W: Write>(
    items: &[Item],
    writer: W,
    cancel: &AtomicBool,
) -> Result<W, ArchiveError> {
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
