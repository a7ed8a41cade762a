//! Every convert format, the options, and the remux shortcut.

use std::path::Path;
use std::time::Duration;

use reelforge::media::Paths;
use reelforge::media::codecs::{Quality, Rate};
use reelforge::media::convert::{ConvertOptions, plan_convert};
use reelforge::media::formats::Format;
use reelforge_testkit::plans::{Expect, check, probe, probe_output, run_plan, scratch};

use crate::{clip, medium_mp4, small_mp4};

fn convert(
    input: &Path,
    opts: &ConvertOptions,
) -> (reelforge::media::probe::MediaInfo, Duration, Vec<String>) {
    let info = probe(input);
    let (dir, out_dir) = scratch();
    let paths = Paths {
        input: input.to_path_buf(),
        out_dir,
        logo: None,
    };
    let plan = plan_convert(&info, opts, &paths, "clip").unwrap();
    let took = run_plan(&plan, dir.path());
    let run = &plan.runs[0];
    assert_eq!(run.output_name, format!("clip.{}", opts.format.extension()));
    let out = probe_output(&run.output);
    if let Some(v) = &out.video {
        assert_eq!((v.width, v.height), (plan.width, plan.height), "{opts:?}");
    }
    assert!(
        (out.duration - run.expected_duration).abs() <= 0.2,
        "{opts:?}"
    );
    (out, took, run.argv.clone())
}

#[test]
fn every_format_from_an_mp4() {
    let input = small_mp4();
    let v = |codec, fps| Some((codec, 160, 90, fps));
    let cases = [
        (Format::Mp4, "mp4", v("h264", 25.0), Some("aac")),
        (Format::Webm, "webm", v("vp9", 25.0), Some("opus")),
        (Format::Avi, "avi", v("mpeg4", 25.0), Some("mp3")),
        (Format::Mpeg, "mpeg", v("mpeg2video", 25.0), Some("mp2")),
        (Format::Wmv, "asf", v("wmv2", 25.0), Some("wmav2")),
        (Format::Mkv, "matroska", v("h264", 25.0), Some("aac")),
        (Format::Mov, "mov", v("h264", 25.0), Some("aac")),
        (Format::Gif, "gif", v("gif", 15.0), None),
        (Format::Mp3, "mp3", None, Some("mp3")),
        (Format::M4a, "m4a", None, Some("aac")),
        (Format::Ogg, "ogg", None, Some("vorbis")),
        (Format::Opus, "ogg", None, Some("opus")),
        (Format::Wav, "wav", None, Some("pcm_s16le")),
        (Format::Flac, "flac", None, Some("flac")),
        (Format::Wma, "asf", None, Some("wmav2")),
    ];
    std::thread::scope(|s| {
        for (format, container, video, audio) in cases {
            let input = &input;
            s.spawn(move || {
                // mp4/mov/mkv/m4a would be remuxed: ask for a re-encode.
                let mut opts = ConvertOptions::new(format);
                if matches!(
                    format,
                    Format::Mp4 | Format::Mov | Format::Mkv | Format::M4a
                ) {
                    opts.quality = Some(Quality::High);
                }
                let (out, _, argv) = convert(input, &opts);
                assert!(!argv.contains(&"copy".to_owned()));
                let want = Expect {
                    container,
                    video,
                    audio,
                    duration: 3.0,
                };
                check(&out, &want, &format.to_string());
            });
        }
    });
}

#[test]
fn options_are_applied() {
    let input = medium_mp4();
    let cases = [
        (
            ConvertOptions {
                max_height: Some(144),
                fps: Some(Rate::whole(12)),
                ..ConvertOptions::new(Format::Mp4)
            },
            Expect {
                container: "mp4",
                video: Some(("h264", 256, 144, 12.0)),
                audio: Some("aac"),
                duration: 3.0,
            },
        ),
        (
            ConvertOptions {
                start: Some(0.5),
                end: Some(2.0),
                quality: Some(Quality::Low),
                audio_bitrate: Some("64k".into()),
                ..ConvertOptions::new(Format::Webm)
            },
            Expect {
                container: "webm",
                video: Some(("vp9", 320, 180, 30.0)),
                audio: Some("opus"),
                duration: 1.5,
            },
        ),
        (
            ConvertOptions {
                start: Some(1.0),
                ..ConvertOptions::new(Format::Mkv)
            },
            Expect {
                container: "matroska",
                video: Some(("h264", 320, 180, 30.0)),
                audio: Some("aac"),
                duration: 2.0,
            },
        ),
        (
            ConvertOptions {
                fps: Some(Rate::whole(15)),
                ..ConvertOptions::new(Format::Mpeg)
            },
            // MPEG-2 cannot signal 15 fps: the nearest legal rate.
            Expect {
                container: "mpeg",
                video: Some(("mpeg2video", 320, 180, 23.976)),
                audio: Some("mp2"),
                duration: 3.0,
            },
        ),
        (
            ConvertOptions {
                end: Some(1.0),
                ..ConvertOptions::new(Format::Gif)
            },
            Expect {
                container: "gif",
                video: Some(("gif", 320, 180, 15.0)),
                audio: None,
                duration: 1.0,
            },
        ),
        (
            ConvertOptions {
                start: Some(1.0),
                audio_bitrate: Some("48k".into()),
                ..ConvertOptions::new(Format::Mp3)
            },
            Expect {
                container: "mp3",
                video: None,
                audio: Some("mp3"),
                duration: 2.0,
            },
        ),
    ];
    std::thread::scope(|s| {
        for (opts, want) in cases {
            let input = &input;
            s.spawn(move || {
                let (out, _, argv) = convert(input, &opts);
                assert!(!argv.contains(&"copy".to_owned()), "{opts:?}");
                check(&out, &want, &format!("{opts:?}"));
            });
        }
    });
}

#[test]
fn audio_only_and_surround_inputs() {
    let surround = clip(
        "surround.m4a",
        "-f lavfi -i sine=f=440:r=48000:d=2 -ac 6 -c:a aac",
    );
    for (format, container, codec, channels) in [
        (Format::Mp3, "mp3", "mp3", 2),
        (Format::Opus, "ogg", "opus", 2),
        (Format::Flac, "flac", "flac", 6),
    ] {
        let (out, _, _) = convert(&surround, &ConvertOptions::new(format));
        check(
            &out,
            &Expect {
                container,
                video: None,
                audio: Some(codec),
                duration: 2.0,
            },
            &format.to_string(),
        );
        assert_eq!(out.audio.unwrap().channels, channels, "{format}");
    }
}

/// Remux (stream copy) when the streams fit the container: mp4 → mkv, mov,
/// mp4; webm → mkv. The copy must take under a tenth of a re-encode (best of
/// two copies: most of a copy's time is ffmpeg starting up).
#[test]
fn fitting_streams_are_remuxed_quickly() {
    let input = clip(
        "remux_src.mp4",
        "-f lavfi -i testsrc2=s=1280x720:r=30:d=10 -f lavfi -i sine=f=440:r=48000:d=10 -ac 2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
    );
    let src = probe(&input);
    let (_, reencode, argv) = convert(
        &input,
        &ConvertOptions {
            quality: Some(Quality::Medium),
            ..ConvertOptions::new(Format::Mkv)
        },
    );
    assert!(argv.contains(&"libx264".to_owned()));
    let v = src.video.as_ref().unwrap();
    for format in [Format::Mkv, Format::Mov, Format::Mp4] {
        let (out, first, argv) = convert(&input, &ConvertOptions::new(format));
        let remux = first.min(convert(&input, &ConvertOptions::new(format)).1);
        let i = argv.iter().position(|a| a == "-c").unwrap();
        assert_eq!(argv[i + 1], "copy");
        eprintln!(
            "remux mp4 → {format}: {:.0} ms; x264 re-encode: {:.0} ms ({:.1}× slower)",
            remux.as_secs_f64() * 1000.0,
            reencode.as_secs_f64() * 1000.0,
            reencode.as_secs_f64() / remux.as_secs_f64()
        );
        assert!(remux * 10 < reencode, "{remux:?} vs {reencode:?}");
        let container = if format == Format::Mkv {
            "matroska"
        } else {
            "mp4"
        };
        check(
            &out,
            &Expect {
                container,
                video: Some(("h264", v.width, v.height, 30.0)),
                audio: Some("aac"),
                duration: 10.0,
            },
            &format.to_string(),
        );
    }
    let webm = clip(
        "remux_src.webm",
        "-f lavfi -i testsrc2=s=160x90:r=25:d=2 -f lavfi -i sine=r=48000:d=2 -ac 2 \
         -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -c:a libopus -shortest",
    );
    for format in [Format::Mkv, Format::Webm] {
        let (out, _, argv) = convert(&webm, &ConvertOptions::new(format));
        assert!(argv.windows(2).any(|w| w[0] == "-c" && w[1] == "copy"));
        check(
            &out,
            &Expect {
                container: "matroska",
                video: Some(("vp9", 160, 90, 25.0)),
                audio: Some("opus"),
                duration: 2.0,
            },
            &format.to_string(),
        );
    }
}

/// Benchmark (run with `--ignored --nocapture`): VP9 on a 10 s 720p30 clip
/// must run faster than realtime.
#[test]
#[ignore = "benchmark: a few seconds of VP9 encoding"]
fn vp9_720p_runs_faster_than_realtime() {
    let input = clip(
        "vp9_bench_720p.mp4",
        "-f lavfi -i testsrc2=s=1280x720:r=30:d=10 -f lavfi -i sine=f=440:r=48000:d=10 -ac 2 \
         -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p -c:a aac -shortest",
    );
    let (out, took, _) = convert(&input, &ConvertOptions::new(Format::Webm));
    let factor = 10.0 / took.as_secs_f64();
    eprintln!(
        "VP9 720p30: {:.2} s for 10 s = {factor:.2}× realtime",
        took.as_secs_f64()
    );
    assert_eq!(out.video.unwrap().codec, "vp9");
    assert!(factor >= 1.0, "{factor}");
}

/// A phone clip with a rotation: copied where the container keeps the
/// rotation (mov), rotated into the pixels everywhere else.
#[test]
fn rotated_input() {
    let raw = clip(
        "phone_raw.mp4",
        "-f lavfi -i testsrc2=s=320x180:r=30:d=2 -f lavfi -i sine=r=48000:d=2 -ac 2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
    );
    // ffmpeg 5.1 writes the display matrix for `rotate` only when copying.
    let rotated = clip(
        "phone_rotated.mp4",
        &format!("-i {} -c copy -metadata:s:v:0 rotate=90", raw.display()),
    );
    assert_eq!(probe(&rotated).video.unwrap().rotation, 270);
    let (out, _, argv) = convert(&rotated, &ConvertOptions::new(Format::Mov));
    assert!(argv.windows(2).any(|w| w[0] == "-c" && w[1] == "copy"));
    let v = out.video.unwrap();
    assert_eq!((v.width, v.height, v.rotation), (320, 180, 270));
    for format in [Format::Mkv, Format::Webm, Format::Avi] {
        let (out, _, _) = convert(&rotated, &ConvertOptions::new(format));
        let v = out.video.unwrap();
        assert_eq!(
            (v.display_width(), v.display_height()),
            (180, 320),
            "{format}"
        );
    }
    let (out, _, _) = convert(
        &rotated,
        &ConvertOptions {
            quality: Some(Quality::Low),
            ..ConvertOptions::new(Format::Mp4)
        },
    );
    let v = out.video.unwrap();
    assert_eq!(
        (v.display_width(), v.display_height()),
        (180, 320),
        "re-encoded mp4: {v:?}"
    );
}
