//! Shared helpers of the planners' unit tests.

use std::path::PathBuf;

use super::planner::Paths;
use super::probe::{MediaInfo, parse_ffprobe};

/// A committed ffprobe fixture, parsed.
pub fn fixture(name: &str) -> MediaInfo {
    let json = match name {
        "landscape" => &include_bytes!("fixtures/landscape_1080p30.json")[..],
        "portrait" => include_bytes!("fixtures/portrait_1080x1920.json"),
        "sd" => include_bytes!("fixtures/sd_640x480.json"),
        "no_audio" => include_bytes!("fixtures/no_audio_720p.json"),
        "long" => include_bytes!("fixtures/long_45s.json"),
        "clip_20_5" => include_bytes!("fixtures/clip_20_5s.json"),
        "rotated" => include_bytes!("fixtures/rotated_phone.json"),
        "audio_only" => include_bytes!("fixtures/audio_only.json"),
        "webm" => include_bytes!("fixtures/webm_vp9_opus.json"),
        "avi" => include_bytes!("fixtures/avi_h264_mp3.json"),
        "wav" => include_bytes!("fixtures/wav_pcm.json"),
        "surround" => include_bytes!("fixtures/surround_6ch.json"),
        "odd" => include_bytes!("fixtures/odd_161x91_ffv1.json"),
        "mpeg2" => include_bytes!("fixtures/mpeg2_mp2.json"),
        other => panic!("no fixture {other}"),
    };
    parse_ffprobe(json).unwrap()
}

pub fn paths() -> Paths {
    Paths {
        input: PathBuf::from("/scratch/t1/input"),
        out_dir: PathBuf::from("/scratch/t1/out"),
        logo: None,
    }
}

/// The value following `flag` (panics when absent).
pub fn arg_after<'a>(argv: &'a [String], flag: &str) -> &'a str {
    let i = argv
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {argv:?}"));
    &argv[i + 1]
}

pub fn has_flag(argv: &[String], flag: &str) -> bool {
    argv.iter().any(|a| a == flag)
}

/// The safety rules every planned run follows: the fixed prefix, one input
/// with its allow-lists before it, `file:` URLs for input and output, and
/// progress on stdout.
pub fn check_safety(argv: &[String]) {
    assert_eq!(
        &argv[..8],
        [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            super::INPUT_FORMAT_WHITELIST
        ]
    );
    let inputs: Vec<usize> = (0..argv.len()).filter(|i| argv[*i] == "-i").collect();
    assert_eq!(inputs.len(), 1, "{argv:?}");
    assert_eq!(argv[inputs[0] + 1], "file:/scratch/t1/input");
    let n = argv.len();
    assert_eq!(
        &argv[n - 5..n - 1],
        ["-progress", "pipe:1", "-nostats", "-y"]
    );
    assert!(argv[n - 1].starts_with("file:/scratch/t1/out/"));
    assert_eq!(argv[n - 7], "-f");
}
