//! The planners' argv run with the real ffmpeg, and their outputs probed through the same
//! safe argv as the service (`reelforge::media::probe`) and checked against what a profile
//! promises; inputs made by ffmpeg's lavfi sources, cached between runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reelforge::media::Plan;
use reelforge::media::probe::{MediaInfo, ffprobe_args, ffprobe_output_args, parse_ffprobe};

/// Runs ffmpeg with whitespace-separated arguments (paths have no spaces).
pub fn ffmpeg(args: &str) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A generated input clip, kept in `clips_dir` and reused by later runs: its file name
/// carries a hash of the arguments that made it. `spec` is the ffmpeg arguments between the
/// global options and the output file name. (The test gives the folder: cargo names its
/// target tmp dir, `CARGO_TARGET_TMPDIR`, only to integration tests.)
pub fn cached_clip(clips_dir: &Path, name: &str, spec: &str) -> PathBuf {
    use std::hash::{DefaultHasher, Hash, Hasher};
    std::fs::create_dir_all(clips_dir).unwrap();
    let mut h = DefaultHasher::new();
    spec.hash(&mut h);
    let path = clips_dir.join(format!("{:016x}-{name}", h.finish()));
    if !path.exists() {
        let tmp = clips_dir.join(format!(
            "tmp-{}-{:?}-{name}",
            std::process::id(),
            std::thread::current().id()
        ));
        let tmp = PathBuf::from(tmp.to_string_lossy().replace(['(', ')'], ""));
        ffmpeg(&format!("{spec} {}", tmp.display()));
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// ffprobe's stdout for `args`, asserting it succeeded.
fn ffprobe(args: Vec<std::ffi::OsString>, path: &Path) -> Vec<u8> {
    let out = Command::new("ffprobe").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ffprobe {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn probe(path: &Path) -> MediaInfo {
    parse_ffprobe(&ffprobe(ffprobe_args(path), path)).unwrap()
}

/// ffprobe's JSON for one of our outputs (images have no duration, so
/// [`parse_ffprobe`] would refuse them).
pub fn probe_output_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&ffprobe(ffprobe_output_args(path), path)).unwrap()
}

pub fn probe_output(path: &Path) -> MediaInfo {
    parse_ffprobe(&ffprobe(ffprobe_output_args(path), path)).unwrap()
}

/// A fresh scratch folder with an `out` folder inside.
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    (dir, out)
}

/// Runs ffmpeg with a planned argv in `cwd`, asserting it succeeded.
pub fn run_ffmpeg(argv: &[String], cwd: &Path) -> std::process::Output {
    let out = Command::new("ffmpeg")
        .args(argv)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs every planned argv in `cwd`; returns the wall time.
pub fn run_plan(plan: &Plan, cwd: &Path) -> Duration {
    let started = Instant::now();
    for run in &plan.runs {
        let out = run_ffmpeg(&run.argv, cwd);
        let progress = String::from_utf8_lossy(&out.stdout);
        assert!(progress.contains("progress=end"), "{progress}");
        assert!(run.output.is_file(), "{:?}", run.output);
    }
    started.elapsed()
}

/// What an output must probe as.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// One of the names in ffprobe's `format_name` list.
    pub container: &'static str,
    pub video: Option<(&'static str, u32, u32, f64)>,
    pub audio: Option<&'static str>,
    pub duration: f64,
}

pub fn check(info: &MediaInfo, want: &Expect, what: &str) {
    assert!(
        info.format_name.split(',').any(|n| n == want.container),
        "{what}: container {} is not {}",
        info.format_name,
        want.container
    );
    assert!(
        (info.duration - want.duration).abs() <= 0.2,
        "{what}: duration {} vs {}",
        info.duration,
        want.duration
    );
    match (&info.video, want.video) {
        (Some(v), Some((codec, w, h, fps))) => {
            assert_eq!(
                (v.codec.as_str(), v.width, v.height),
                (codec, w, h),
                "{what}"
            );
            let got = v.fps.unwrap_or(0.0);
            // GIF frame delays are whole centiseconds: 15 fps is stored as
            // delays of 6 and 7 cs, which ffprobe averages to ~15.08.
            let tolerance = if codec == "gif" { 0.25 } else { 0.05 };
            assert!((got - fps).abs() < tolerance, "{what}: fps {got} vs {fps}");
            if codec != "gif" {
                assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"), "{what}");
            }
        }
        (None, None) => {}
        (got, want) => panic!("{what}: video {got:?}, expected {want:?}"),
    }
    assert_eq!(
        info.audio.as_ref().map(|a| a.codec.as_str()),
        want.audio,
        "{what}: audio"
    );
}
