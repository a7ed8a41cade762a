//! End-to-end check of the idrl plan with the real ffmpeg/ffprobe: generate
//! inputs with lavfi, probe them with our argv, plan, run every planned
//! argv, then probe the outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use reelforge::media::Paths;
use reelforge::media::idrl::{IdrlOptions, plan_idrl};
use reelforge::media::probe::{MediaInfo, ProbeLimits, validate};
use reelforge_testkit::plans::{self, ffmpeg, probe};

fn logo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/logo.png")
}

/// Runs every planned argv; returns the outputs' probe results.
fn run_plan(input: &Path, dir: &Path, opts: &IdrlOptions) -> Vec<(MediaInfo, f64)> {
    let info = probe(input);
    validate(&info, &ProbeLimits::default()).unwrap();
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let paths = Paths {
        input: input.to_path_buf(),
        logo: Some(logo()),
        out_dir,
    };
    let plan = plan_idrl(&info, opts, &paths, "clip").unwrap();
    plans::run_plan(&plan, dir);
    plan.runs
        .iter()
        .map(|run| (probe(&run.output), run.expected_duration))
        .collect()
}

fn check_output(info: &MediaInfo, expected_duration: f64, size: (u32, u32)) {
    assert!(
        (info.duration - expected_duration).abs() <= 0.2,
        "duration {} vs {expected_duration}",
        info.duration
    );
    let v = info.video.as_ref().unwrap();
    assert_eq!(v.codec, "h264");
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!((v.width, v.height), size);
    assert_eq!(v.fps, Some(24.0));
    assert_eq!(v.rotation, 0);
    let a = info.audio.as_ref().unwrap();
    assert_eq!(a.codec, "aac");
    assert_eq!((a.sample_rate, a.channels), (48000, 2));
    assert_eq!(info.stream_count, 2);
}

/// Loudest sample of the file's audio in dBFS (ffmpeg volumedetect).
fn max_volume(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("max_volume:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let value = line.split("max_volume:").nth(1).unwrap();
    value.trim().trim_end_matches("dB").trim().parse().unwrap()
}

#[test]
fn forty_five_second_clip_makes_three_exact_parts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    ffmpeg(&format!(
        "-f lavfi -i testsrc2=s=320x180:r=30:d=45 -f lavfi -i sine=f=440:r=44100:d=45 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac {}",
        input.display()
    ));
    let outputs = run_plan(&input, dir.path(), &IdrlOptions::default());
    let durations: Vec<f64> = outputs.iter().map(|(i, _)| i.duration).collect();
    assert_eq!(outputs.len(), 3, "{durations:?}");
    for ((info, expected), want) in outputs.iter().zip([22.0, 22.0, 7.0]) {
        assert!((expected - want).abs() < 0.05);
        check_output(info, want, (320, 180));
    }
    let names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"clip_part_003.mp4".to_owned()));
}

#[test]
fn no_audio_input_gets_silent_aac_track() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("silent.mkv");
    ffmpeg(&format!(
        "-f lavfi -i testsrc2=s=320x240:r=25:d=3 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p {}",
        input.display()
    ));
    assert!(probe(&input).audio.is_none());
    let outputs = run_plan(&input, dir.path(), &IdrlOptions::default());
    assert_eq!(outputs.len(), 1);
    // 4:3 centre-cropped to 16:9 at the source width.
    check_output(&outputs[0].0, 5.0, (320, 180));
    let volume = max_volume(&dir.path().join("out/clip_part_001.mp4"));
    assert!(volume <= -90.0, "max_volume {volume} dB");
}

#[test]
fn rotated_phone_clip_is_framed_upright_and_padded() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.mp4");
    let input = dir.path().join("phone.mp4");
    ffmpeg(&format!(
        "-f lavfi -i testsrc2=s=320x180:r=30:d=2 -f lavfi -i sine=d=2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac {}",
        raw.display()
    ));
    // ffmpeg 5.1 only writes the display matrix when stream-copying.
    ffmpeg(&format!(
        "-i {} -c copy -metadata:s:v:0 rotate=90 {}",
        raw.display(),
        input.display()
    ));
    let info = probe(&input);
    let v = info.video.as_ref().unwrap();
    assert_eq!((v.display_width(), v.display_height()), (180, 320));
    let opts = IdrlOptions {
        fit: reelforge::media::idrl::Fit::Pad,
        background: "#203040".into(),
        ..IdrlOptions::default()
    };
    let outputs = run_plan(&input, dir.path(), &opts);
    // 180x320 upright, pillarboxed into 16:9 at its own height.
    check_output(&outputs[0].0, 4.0, (568, 320));
}
