//! Archive formats and their detection by magic bytes: the one place that
//! decides which reader a file gets, whatever its name says.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ArchiveError;

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
