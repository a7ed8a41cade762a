//! The per-task logo of the idrl bumpers: a PNG image of sane size, checked before it is
//! stored (the logo demuxer reads PNG only).

use crate::domain::ErrorCode;

/// Largest per-task logo accepted, in bytes and in pixels per side.
pub const MAX_LOGO_BYTES: u64 = 4 * 1024 * 1024;
pub const MAX_LOGO_SIDE: u32 = 4096;

/// Why a logo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    /// Not a PNG image at all.
    #[error("the logo must be a PNG image")]
    NotPng,
    /// A PNG image with a side of 0 or above [`MAX_LOGO_SIDE`] pixels.
    #[error("the logo is {width}x{height}; each side must be 1 to {MAX_LOGO_SIDE} pixels")]
    BadSize { width: u32, height: u32 },
}

impl LogoError {
    /// Stable snake_case error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            LogoError::NotPng => ErrorCode::UnsupportedLogo,
            LogoError::BadSize { .. } => ErrorCode::InvalidLogo,
        }
    }
}

/// Check that `bytes` start like a PNG image of sane size. Returns its width and height.
pub fn check_logo_png(bytes: &[u8]) -> Result<(u32, u32), LogoError> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return Err(LogoError::NotPng);
    }
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if width == 0 || height == 0 || width > MAX_LOGO_SIDE || height > MAX_LOGO_SIDE {
        return Err(LogoError::BadSize { width, height });
    }
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logo_png_checks() {
        let logo = include_bytes!("../../assets/logo.png");
        assert_eq!(check_logo_png(logo), Ok((640, 256)));
        assert!(check_logo_png(b"GIF89a....................").is_err());
        assert!(check_logo_png(&logo[..20]).is_err());
        let mut huge = logo.to_vec();
        huge[16..20].copy_from_slice(&30000u32.to_be_bytes());
        assert!(
            check_logo_png(&huge)
                .unwrap_err()
                .to_string()
                .contains("30000x256")
        );
        // The codes the upload handler answers with.
        assert_eq!(
            check_logo_png(&logo[..20]).unwrap_err().code(),
            "unsupported_logo"
        );
        assert_eq!(check_logo_png(&huge).unwrap_err().code(), "invalid_logo");
    }
}
