//! Media with real ffmpeg and processes: every planner's argv run for real on small
//! lavfi-generated clips, and the process runner.
//!
//! The idrl, convert, compress and thumbnail plans run with the real ffmpeg; every output is
//! probed with ffprobe (through the same safe argv as the service) and checked against what
//! the profile promises: container, codecs, frame size, frame rate, duration within ±0.2 s,
//! audio present.

mod chunks;
mod compress;
mod convert;
mod idrl;
mod process;
mod thumbnail;

use std::path::{Path, PathBuf};

use reelforge_testkit::plans::cached_clip;

/// A generated input clip (see [`cached_clip`]), kept under cargo's target tmp dir.
pub fn clip(name: &str, spec: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("profile-clips");
    cached_clip(&dir, name, spec)
}

/// 3 s, 160x90, 25 fps, H.264 + AAC stereo 48 kHz.
pub fn small_mp4() -> PathBuf {
    clip(
        "small.mp4",
        "-f lavfi -i testsrc2=s=160x90:r=25:d=3 -f lavfi -i sine=f=440:r=48000:d=3 -ac 2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
    )
}

/// 3 s, 320x180, 30 fps, H.264 + AAC stereo 44.1 kHz.
pub fn medium_mp4() -> PathBuf {
    clip(
        "medium.mp4",
        "-f lavfi -i testsrc2=s=320x180:r=30:d=3 -f lavfi -i sine=f=300:r=44100:d=3 -ac 2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
    )
}
