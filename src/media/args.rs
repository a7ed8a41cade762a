//! ffmpeg argument helpers: the input safety options every `-i` gets, the fixed
//! prefix and suffix of a run, and how times and paths are written.

//!
//! Every file handed to ffmpeg or ffprobe goes through [`SAFE_INPUT_ARGS`] (or
//! [`SAFE_LOGO_ARGS`] for the logo), so the input safety rules live in one place: local
//! files only (`-protocol_whitelist file`), and a demuxer allow-list that contains real
//! container formats but no playlist or reference formats (`hls`, `dash`, `concat`,
//! `image2` patterns, ...), so a crafted upload cannot make ffmpeg open URLs or other local
//! files.

use std::ffi::OsString;
use std::path::Path;

use super::planner::PlanError;

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

/// The options that open every run: no stdin, no banner, errors only.
pub const QUIET_ARGS: [&str; 4] = ["-nostdin", "-hide_banner", "-loglevel", "error"];

/// Seconds as an ffmpeg time/duration: up to microseconds, no trailing zeros.
pub(crate) fn secs(value: f64) -> String {
    let s = format!("{:.6}", value.max(0.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The path as UTF-8 (every argv entry is a `String`).
pub(crate) fn path_str(path: &Path) -> Result<&str, PlanError> {
    path.to_str()
        .ok_or_else(|| PlanError::NonUtf8Path(path.to_path_buf()))
}

/// Owned copies of fixed arguments.
pub(crate) fn strings(items: &[&str]) -> impl Iterator<Item = String> {
    items.iter().map(|s| (*s).to_owned())
}

/// The argv prefix shared by every run: quiet, no stdin, the input's
/// allow-lists, optional input seeking, then the input itself.
pub(crate) fn input_args(
    input: &Path,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> = strings(&QUIET_ARGS).collect();
    argv.extend(strings(&SAFE_INPUT_ARGS));
    if let Some(s) = start {
        argv.extend(["-ss".to_owned(), secs(s)]);
    }
    if let Some(e) = end {
        argv.extend(["-to".to_owned(), secs(e)]);
    }
    argv.extend(["-i".to_owned(), format!("file:{}", path_str(input)?)]);
    Ok(argv)
}

/// The argv suffix: muxer, progress on stdout, overwrite, output URL.
pub(crate) fn output_args(muxer: &str, output: &Path) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> =
        strings(&["-f", muxer, "-progress", "pipe:1", "-nostats", "-y"]).collect();
    argv.push(format!("file:{}", path_str(output)?));
    Ok(argv)
}

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
    fn seconds_format() {
        assert_eq!(secs(0.0), "0");
        assert_eq!(secs(20.0), "20");
        assert_eq!(secs(20.5), "20.5");
        assert_eq!(secs(45.016 - 40.0), "5.016");
        assert_eq!(secs(-1.0), "0");
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
