//! Media handling: ffprobe parsing and limits ([`probe`]) and pure ffmpeg
//! command planning ([`plan`]). Nothing in here spawns a process; running the
//! planned argv is the job of [`crate::process`].
//!
//! Every file handed to ffmpeg or ffprobe goes through [`safe_input_args`], so
//! the safety rules of the processing spec live in one place: local files only
//! (`-protocol_whitelist file`), and a demuxer allow-list that contains real
//! container formats but no playlist or reference formats (`hls`, `dash`,
//! `concat`, `image2` patterns, ...), so a crafted upload cannot make ffmpeg
//! open URLs or other local files.

pub mod compress;
pub mod convert;
pub mod hls;
pub mod plan;
pub mod probe;
pub mod thumbnail;

#[cfg(test)]
mod testutil;

use std::ffi::OsString;
use std::path::Path;

/// Protocols ffmpeg/ffprobe may use to open any input.
pub const INPUT_PROTOCOL_WHITELIST: &str = "file";

/// Demuxers allowed for media inputs (uploads, downloads). Container formats
/// only: no playlists (`hls`, `dash`), no reference formats (`concat`,
/// `ffconcat`), no `image2` patterns. Names are ffmpeg demuxer short names;
/// ffmpeg matches a demuxer whose name list (e.g. `mov,mp4,m4a,...`) shares
/// any entry with this list.
pub const INPUT_FORMAT_WHITELIST: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,flv,asf,ogg,wav,w64,mp3,aac,flac,mxf";

/// Demuxers that must never appear in [`INPUT_FORMAT_WHITELIST`]: they read
/// other files or URLs named inside the input.
pub const FORBIDDEN_DEMUXERS: &[&str] = &[
    "hls",
    "dash",
    "concat",
    "ffconcat",
    "image2",
    "image2pipe",
    "webm_dash_manifest",
    "tee",
    "lavfi",
    "data",
    "tty",
    "sdp",
    "rtsp",
    "rtp",
];

/// The single demuxer used for logo images: it reads exactly the one file it
/// is given (no `%d` pattern or glob expansion, unlike `image2`).
pub const LOGO_DEMUXER: &str = "png_pipe";

/// `file:` URL for a local path, so a path can never be mistaken for an
/// option or another protocol (`-`, `concat:...`, `http://...`).
pub fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

/// Largest per-task logo accepted, in bytes and in pixels per side.
pub const MAX_LOGO_BYTES: u64 = 4 * 1024 * 1024;
pub const MAX_LOGO_SIDE: u32 = 4096;

/// Check that `bytes` start like a PNG image of sane size (the logo demuxer reads PNG only).
/// Returns its width and height.
pub fn check_logo_png(bytes: &[u8]) -> Result<(u32, u32), String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return Err("the logo must be a PNG image".into());
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if w == 0 || h == 0 || w > MAX_LOGO_SIDE || h > MAX_LOGO_SIDE {
        return Err(format!(
            "the logo is {w}x{h}; each side must be 1 to {MAX_LOGO_SIDE} pixels"
        ));
    }
    Ok((w, h))
}

/// Seconds as the API shows them: whole values as integers (`20`, not `20.0`).
pub fn serialize_seconds<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Reading back one of the service's own outputs whose demuxer is not in
/// [`INPUT_FORMAT_WHITELIST`] (GIF, still images): the single-file demuxer to
/// force with `-f`, chosen by the output's extension. Forcing matters: by
/// extension ffprobe would pick `image2`, which expands file name patterns.
pub fn output_demuxer(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "gif" => Some("gif"),
        "jpg" | "jpeg" => Some("jpeg_pipe"),
        "png" => Some("png_pipe"),
        "webp" => Some("webp_pipe"),
        _ => None,
    }
}

/// The options that must precede every media `-i`, for ffmpeg and ffprobe.
pub const SAFE_INPUT_ARGS: [&str; 4] = [
    "-protocol_whitelist",
    INPUT_PROTOCOL_WHITELIST,
    "-format_whitelist",
    INPUT_FORMAT_WHITELIST,
];

/// The options that must precede the logo's `-i`: a local file holding one
/// PNG image.
pub const SAFE_LOGO_ARGS: [&str; 6] = [
    "-protocol_whitelist",
    INPUT_PROTOCOL_WHITELIST,
    "-format_whitelist",
    LOGO_DEMUXER,
    "-f",
    LOGO_DEMUXER,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_has_no_forbidden_demuxer() {
        for name in INPUT_FORMAT_WHITELIST.split(',') {
            assert!(!FORBIDDEN_DEMUXERS.contains(&name), "{name} is forbidden");
        }
        assert!(!FORBIDDEN_DEMUXERS.contains(&LOGO_DEMUXER));
    }

    #[test]
    fn logo_png_checks() {
        let logo = include_bytes!("../../assets/logo.png");
        assert_eq!(check_logo_png(logo), Ok((640, 256)));
        assert!(check_logo_png(b"GIF89a....................").is_err());
        assert!(check_logo_png(&logo[..20]).is_err());
        let mut huge = logo.to_vec();
        huge[16..20].copy_from_slice(&30000u32.to_be_bytes());
        assert!(check_logo_png(&huge).unwrap_err().contains("30000x256"));
    }

    #[test]
    fn output_demuxers_are_single_file_readers() {
        for (name, want) in [
            ("a.gif", Some("gif")),
            ("a_thumb_001.jpg", Some("jpeg_pipe")),
            ("a.PNG", Some("png_pipe")),
            ("a.webp", Some("webp_pipe")),
            ("a.mp4", None),
            ("noext", None),
        ] {
            assert_eq!(output_demuxer(Path::new(name)), want, "{name}");
            if let Some(d) = want {
                assert!(!FORBIDDEN_DEMUXERS.contains(&d));
            }
        }
    }

    #[test]
    fn file_url_prefixes_path() {
        assert_eq!(file_url(Path::new("-x.mp4")), OsString::from("file:-x.mp4"));
        assert_eq!(
            file_url(Path::new("/tmp/a b.mp4")),
            OsString::from("file:/tmp/a b.mp4")
        );
    }
}
