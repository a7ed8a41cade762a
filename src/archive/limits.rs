//! What an extraction accepts, whatever the container: entry names (no
//! escape from the destination), unix modes (no links, no special files) and
//! the byte and entry budgets. Kept apart from the readers so that zip, 7z
//! and tar all apply the same rules with the same error messages.

use super::{ArchiveError, ExtractLimits, RATIO_FLOOR};

/// Longest accepted path component, in bytes (the usual file-system limit).
const MAX_COMPONENT: usize = 255;

// Unix file-type bits, as found in tar headers, zip external attributes and the
// 7z "unix extension" attributes.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// Validates an entry name and normalises it into path components.
///
/// Returns an empty vector for a name that denotes the destination itself
/// (`./`), which callers accept only for directory entries.
pub(super) fn sanitize(name: &str, max_depth: usize) -> Result<Vec<String>, ArchiveError> {
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
pub(super) fn check_unix_mode(mode: u32, name: &str) -> Result<(), ArchiveError> {
    match mode & S_IFMT {
        S_IFLNK => Err(link_refused(name)),
        S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK => Err(special_file(name)),
        _ => Ok(()),
    }
}

/// A link entry, refused whatever it points at.
pub(super) fn link_refused(name: &str) -> ArchiveError {
    ArchiveError::LinkRefused(name.escape_debug().to_string())
}

/// A device, fifo or socket entry.
pub(super) fn special_file(name: &str) -> ArchiveError {
    ArchiveError::UnsafePath(format!("special file {}", name.escape_debug()))
}

/// A file entry whose name denotes the destination itself (`./`).
pub(super) fn unnamed_file(name: &str) -> ArchiveError {
    ArchiveError::UnsafePath(format!(
        "file entry without a name: {}",
        name.escape_debug()
    ))
}

/// Refuses a raw entry name with a NUL byte, before it is decoded (a decoder
/// could cut the name there and hide what follows).
pub(super) fn refuse_nul(raw: &[u8]) -> Result<(), ArchiveError> {
    if raw.contains(&0) {
        return Err(ArchiveError::UnsafePath(format!(
            "NUL in name {}",
            String::from_utf8_lossy(raw).escape_debug()
        )));
    }
    Ok(())
}

/// The name check of containers with an index up front (zip, 7z), run for
/// every entry before the first write.
pub(super) fn check_indexed_name(
    name: &str,
    is_dir: bool,
    max_depth: usize,
) -> Result<(), ArchiveError> {
    let parts = sanitize(name, max_depth)?;
    if parts.is_empty() && !is_dir {
        return Err(unnamed_file(name));
    }
    Ok(())
}

/// The byte and entry budgets of one extraction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Most bytes that may be written: `max_total_bytes`, lowered by the ratio.
    pub(super) bytes: u64,
    /// Most entries (files and directories).
    pub(super) entries: u64,
}

impl Budget {
    pub(super) fn new(limits: &ExtractLimits, src_len: u64) -> Self {
        let mut bytes = limits.max_total_bytes;
        if let Some(ratio) = limits.max_ratio {
            // A float-to-int `as` saturates, which is what we want here.
            let by_ratio = ((src_len as f64) * ratio.max(0.0)) as u64;
            bytes = bytes.min(by_ratio.max(RATIO_FLOOR));
        }
        Self {
            bytes,
            entries: limits.max_entries,
        }
    }

    pub(super) fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge { limit: self.bytes }
    }

    pub(super) fn too_many_entries(&self) -> ArchiveError {
        ArchiveError::TooManyEntries {
            limit: self.entries,
        }
    }

    /// Refuses a count of entries past the limit: the running count while
    /// extracting, or early, the length of an index that lists every entry.
    pub(super) fn check_entries(&self, count: u64) -> Result<(), ArchiveError> {
        if count > self.entries {
            return Err(self.too_many_entries());
        }
        Ok(())
    }

    /// Early refusal from declared sizes (which are never relied upon otherwise).
    pub(super) fn check_declared(&self, declared: u128) -> Result<(), ArchiveError> {
        if declared > u128::from(self.bytes) {
            return Err(self.too_large());
        }
        Ok(())
    }
}
