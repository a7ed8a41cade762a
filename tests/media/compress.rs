//! compress by quality and by target size, with the real encoders.

use std::path::{Path, PathBuf};

use reelforge::media::Paths;
use reelforge::media::codecs::Quality;
use reelforge::media::compress::{CompressOptions, plan_compress};
use reelforge::media::formats::Format;
use reelforge::media::probe::MediaInfo;
use reelforge_testkit::plans::{Expect, check, probe, probe_output, run_plan, scratch};

use crate::clip;

/// 12 s of noisy 320x180 video, encoded nearly losslessly (large input).
fn noisy_12s() -> PathBuf {
    clip(
        "noisy_12s.mp4",
        "-f lavfi -i testsrc2=s=320x180:r=30:d=12,noise=alls=10:allf=t \
         -f lavfi -i sine=f=440:r=48000:d=12 -ac 2 \
         -c:v libx264 -preset ultrafast -crf 10 -pix_fmt yuv420p -c:a aac -b:a 192k -shortest",
    )
}

/// 15 s of a Mandelbrot zoom at 320x180, 25 fps.
fn mandelbrot_15s() -> PathBuf {
    clip(
        "mandelbrot_15s.mp4",
        "-f lavfi -i mandelbrot=s=320x180:r=25,trim=duration=15 \
         -f lavfi -i sine=f=300:r=44100:d=15 -ac 2 \
         -c:v libx264 -preset ultrafast -crf 10 -pix_fmt yuv420p -c:a aac -shortest",
    )
}

fn compress(input: &Path, opts: &CompressOptions) -> (MediaInfo, u64, String) {
    let info = probe(input);
    let (dir, out_dir) = scratch();
    let paths = Paths {
        input: input.to_path_buf(),
        out_dir,
        logo: None,
    };
    let plan = plan_compress(&info, opts, &paths, "clip").unwrap();
    run_plan(&plan, dir.path());
    let run = &plan.runs[0];
    let size = std::fs::metadata(&run.output).unwrap().len();
    (probe_output(&run.output), size, run.output_name.clone())
}

#[test]
fn quality_presets_shrink_the_file() {
    let input = noisy_12s();
    let input_size = std::fs::metadata(&input).unwrap().len();
    let cases = [
        (
            CompressOptions {
                quality: Some(Quality::Medium),
                ..CompressOptions::default()
            },
            "clip.mp4",
            Expect {
                container: "mp4",
                video: Some(("h264", 320, 180, 30.0)),
                audio: Some("aac"),
                duration: 12.0,
            },
        ),
        (
            CompressOptions {
                quality: Some(Quality::Low),
                max_height: Some(144),
                format: Some(Format::Webm),
                ..CompressOptions::default()
            },
            "clip.webm",
            Expect {
                container: "webm",
                video: Some(("vp9", 256, 144, 30.0)),
                audio: Some("opus"),
                duration: 12.0,
            },
        ),
        (
            CompressOptions {
                quality: Some(Quality::High),
                format: Some(Format::M4a),
                ..CompressOptions::default()
            },
            "clip.m4a",
            Expect {
                container: "m4a",
                video: None,
                audio: Some("aac"),
                duration: 12.0,
            },
        ),
    ];
    std::thread::scope(|s| {
        for (opts, name, want) in cases {
            let input = &input;
            s.spawn(move || {
                let (out, size, output_name) = compress(input, &opts);
                assert_eq!(output_name, name);
                check(&out, &want, name);
                eprintln!(
                    "compress {name}: {input_size} → {size} bytes (ratio {:.3})",
                    size as f64 / input_size as f64
                );
                assert!(size * 4 < input_size, "{size} vs {input_size}");
            });
        }
    });
}

/// `target_size_mb` lands within ±10 % for inputs of 10 s or more.
#[test]
fn target_size_within_ten_percent() {
    let cases = [
        (noisy_12s(), 0.6, None, 12.0),
        (noisy_12s(), 0.3, None, 12.0),
        (mandelbrot_15s(), 0.5, None, 15.0),
        (mandelbrot_15s(), 0.25, Some(Format::Mkv), 15.0),
        (noisy_12s(), 1.2, Some(Format::Webm), 12.0),
        (mandelbrot_15s(), 0.5, Some(Format::Webm), 15.0),
    ];
    std::thread::scope(|s| {
        for (input, mb, format, duration) in cases {
            s.spawn(move || {
                let opts = CompressOptions {
                    target_size_mb: Some(mb),
                    format,
                    ..CompressOptions::default()
                };
                let (out, size, name) = compress(&input, &opts);
                let target = mb * 1e6;
                let error = (size as f64 - target) / target;
                eprintln!(
                    "target {mb} MB → {name}: {size} bytes ({:+.1} %)",
                    error * 100.0
                );
                assert!(
                    error.abs() <= 0.10,
                    "{name} {mb} MB: {:+.1} %",
                    error * 100.0
                );
                assert!((out.duration - duration).abs() <= 0.2);
                assert!(out.audio.is_some() && out.video.is_some());
            });
        }
    });
}
