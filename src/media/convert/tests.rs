use super::super::INPUT_FORMAT_WHITELIST;
use super::super::testutil::{arg_after, check_safety, fixture, has_flag, paths};
use super::*;
use crate::media::codecs::X264_PRESET;
use crate::media::geometry::scaled_size;
use std::path::PathBuf;

fn plan_of(name: &str, opts: &ConvertOptions) -> Plan {
    plan_convert(&fixture(name), opts, &paths(), "My clip (final)").unwrap()
}

fn argv_of(name: &str, opts: &ConvertOptions) -> Vec<String> {
    let plan = plan_of(name, opts);
    assert_eq!(plan.runs.len(), 1);
    let argv = plan.runs[0].argv.clone();
    check_safety(&argv);
    argv
}

fn to(format: Format) -> ConvertOptions {
    ConvertOptions::new(format)
}

#[test]
fn mp4_to_webm_full_argv() {
    let plan = plan_of("landscape", &to(Format::Webm));
    assert_eq!((plan.width, plan.height), (1920, 1080));
    let run = &plan.runs[0];
    assert_eq!(run.output_name, "My_clip_final.webm");
    assert_eq!(
        run.output,
        PathBuf::from("/scratch/t1/out/My_clip_final.webm")
    );
    assert!((run.expected_duration - 2.0).abs() < 0.01);
    let expected = [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        INPUT_FORMAT_WHITELIST,
        "-i",
        "file:/scratch/t1/input",
        "-map",
        "0:0",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-row-mt",
        "1",
        "-crf",
        "33",
        "-b:v",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-map",
        "0:1",
        "-c:a",
        "libopus",
        "-b:a",
        "96k",
        "-f",
        "webm",
        "-progress",
        "pipe:1",
        "-nostats",
        "-y",
        "file:/scratch/t1/out/My_clip_final.webm",
    ];
    assert_eq!(run.argv, expected);
}

#[test]
fn every_format_has_its_default_codecs() {
    type Case = (
        Format,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        &'static str,
    );
    let cases: [Case; 15] = [
        (Format::Mp4, Some("libx264"), Some("aac"), "mp4", "mp4"),
        (
            Format::Webm,
            Some("libvpx-vp9"),
            Some("libopus"),
            "webm",
            "webm",
        ),
        (Format::Avi, Some("mpeg4"), Some("libmp3lame"), "avi", "avi"),
        (Format::Mpeg, Some("mpeg2video"), Some("mp2"), "vob", "mpg"),
        (Format::Wmv, Some("wmv2"), Some("wmav2"), "asf", "wmv"),
        (Format::Mkv, Some("libx264"), Some("aac"), "matroska", "mkv"),
        (Format::Mov, Some("libx264"), Some("aac"), "mov", "mov"),
        (Format::Gif, Some("gif"), None, "gif", "gif"),
        (Format::Mp3, None, Some("libmp3lame"), "mp3", "mp3"),
        (Format::M4a, None, Some("aac"), "ipod", "m4a"),
        (Format::Ogg, None, Some("libvorbis"), "ogg", "ogg"),
        (Format::Opus, None, Some("libopus"), "opus", "opus"),
        (Format::Wav, None, Some("pcm_s16le"), "wav", "wav"),
        (Format::Flac, None, Some("flac"), "flac", "flac"),
        (Format::Wma, None, Some("wmav2"), "asf", "wma"),
    ];
    for (format, v, a, muxer, ext) in cases {
        // The SD fixture (h264 + aac 44.1 kHz) fits no container but
        // mp4/mov/mkv/m4a: ask for a quality to re-encode everywhere.
        let mut opts = to(format);
        if !(format == Format::Gif || format.is_lossless_audio()) {
            opts.quality = Some(Quality::Medium);
        }
        let plan = plan_of("sd", &opts);
        let run = &plan.runs[0];
        let argv = &run.argv;
        check_safety(argv);
        assert_eq!(run.output_name, format!("My_clip_final.{ext}"));
        assert_eq!(format.extension(), ext);
        assert_eq!(arg_after(argv, "-f"), muxer, "{format}");
        assert_eq!(format.muxer(), muxer);
        match v {
            Some(v) => {
                assert_eq!(arg_after(argv, "-c:v"), v, "{format}");
                assert!(!format.is_audio());
                let want = if format == Format::Gif {
                    (480, 360)
                } else {
                    (640, 480)
                };
                assert_eq!((plan.width, plan.height), want);
            }
            None => {
                assert!(!has_flag(argv, "-c:v"), "{format}");
                assert!(has_flag(argv, "-vn"), "{format}");
                assert!(format.is_audio());
                assert_eq!((plan.width, plan.height), (0, 0));
            }
        }
        match a {
            Some(a) => {
                assert_eq!(arg_after(argv, "-c:a"), a, "{format}");
                assert_eq!(arg_after(argv, "-map").len(), 3);
            }
            None => {
                assert!(!has_flag(argv, "-c:a"));
                assert!(has_flag(argv, "-an"));
            }
        }
        if matches!(
            v,
            Some("libx264" | "libvpx-vp9" | "mpeg4" | "mpeg2video" | "wmv2")
        ) {
            assert_eq!(arg_after(argv, "-pix_fmt"), "yuv420p", "{format}");
        }
        let faststart = has_flag(argv, "-movflags");
        assert_eq!(
            faststart,
            matches!(format, Format::Mp4 | Format::Mov | Format::M4a),
            "{format}"
        );
        if faststart {
            assert_eq!(arg_after(argv, "-movflags"), "+faststart");
        }
        assert!(!has_flag(argv, "-c"), "{format} is not a remux");
    }
}

#[test]
fn fits_container_table() {
    use Format::*;
    // (fixture, formats whose container takes its streams as they are)
    let cases: [(&str, &[Format]); 10] = [
        ("landscape", &[Mp4, Mov, Mkv, M4a]),
        ("no_audio", &[Mp4, Mov, Mkv]),
        ("webm", &[Webm, Mkv, Opus]),
        ("avi", &[Mkv, Mp3]),
        ("mpeg2", &[Mpeg]),
        ("wav", &[Wav]),
        ("audio_only", &[M4a]),
        ("surround", &[M4a]),
        ("odd", &[]),
        ("rotated", &[Mp4, Mov, M4a]),
    ];
    for (name, fits) in cases {
        let info = fixture(name);
        for format in Format::ALL {
            assert_eq!(
                fits_container(&info, format),
                fits.contains(&format),
                "{name} → {format}"
            );
        }
    }
    // H.264 must be 4:2:0 for mp4/mov players; Matroska takes anything.
    let mut hi444 = fixture("landscape");
    if let Some(v) = hi444.video.as_mut() {
        v.pix_fmt = Some("yuv444p".into());
    }
    assert!(!fits_container(&hi444, Mp4));
    assert!(!fits_container(&hi444, Mov));
    assert!(fits_container(&hi444, Mkv));
}

#[test]
fn fitting_streams_are_remuxed() {
    let cases = [
        ("landscape", Format::Mkv, "0:0", Some("0:1")),
        ("landscape", Format::Mov, "0:0", Some("0:1")),
        ("landscape", Format::Mp4, "0:0", Some("0:1")),
        ("no_audio", Format::Mkv, "0:0", None),
        ("webm", Format::Mkv, "0:0", Some("0:1")),
        ("webm", Format::Webm, "0:0", Some("0:1")),
        ("avi", Format::Mkv, "0:0", Some("0:1")),
        ("mpeg2", Format::Mpeg, "0:0", Some("0:1")),
        ("landscape", Format::M4a, "0:1", None),
        ("webm", Format::Opus, "0:1", None),
        ("wav", Format::Wav, "0:0", None),
    ];
    for (name, format, first, second) in cases {
        let plan = plan_of(name, &to(format));
        let argv = &plan.runs[0].argv;
        check_safety(argv);
        assert_eq!(arg_after(argv, "-c"), "copy", "{name} → {format}");
        let maps: Vec<&str> = argv
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "-map")
            .map(|(i, _)| argv[i + 1].as_str())
            .collect();
        let want: Vec<&str> = [Some(first), second].into_iter().flatten().collect();
        assert_eq!(maps, want, "{name} → {format}");
        for flag in [
            "-c:v",
            "-c:a",
            "-vf",
            "-filter_complex",
            "-b:a",
            "-ss",
            "-to",
        ] {
            assert!(!has_flag(argv, flag), "{name} → {format}: {flag}");
        }
        assert!((plan.runs[0].expected_duration - fixture(name).duration).abs() < 1e-9);
    }
    // Remux keeps the coded frame (the player applies the rotation)...
    let plan = plan_of("rotated", &to(Format::Mov));
    assert_eq!((plan.width, plan.height), (320, 180));
    assert_eq!(arg_after(&plan.runs[0].argv, "-c"), "copy");
    // ... where the container can say so; else ffmpeg rotates the pixels.
    let plan = plan_of("rotated", &to(Format::Mkv));
    assert_eq!((plan.width, plan.height), (180, 320));
    assert_eq!(arg_after(&plan.runs[0].argv, "-c:v"), "libx264");
    // Streams that do not fit are re-encoded.
    let argv = argv_of("avi", &to(Format::Mp4));
    assert_eq!(arg_after(&argv, "-c:v"), "libx264");
    assert_eq!(arg_after(&argv, "-c:a"), "aac");
}

#[test]
fn options_that_change_something_ask_for_reencoding() {
    let remux = |opts: ConvertOptions| {
        let argv = argv_of("landscape", &opts);
        has_flag(&argv, "-c")
    };
    let mkv = || to(Format::Mkv);
    assert!(remux(mkv()));
    // Nothing to do: same fps, max_height above the source, start 0,
    // end past the end.
    assert!(remux(ConvertOptions {
        fps: Some(Rate::whole(30)),
        max_height: Some(1080),
        start: Some(0.0),
        end: Some(60.0),
        ..mkv()
    }));
    for opts in [
        ConvertOptions {
            quality: Some(Quality::High),
            ..mkv()
        },
        ConvertOptions {
            fps: Some(Rate::whole(24)),
            ..mkv()
        },
        ConvertOptions {
            max_height: Some(720),
            ..mkv()
        },
        ConvertOptions {
            start: Some(0.5),
            ..mkv()
        },
        ConvertOptions {
            end: Some(1.5),
            ..mkv()
        },
        ConvertOptions {
            audio_bitrate: Some("96k".into()),
            ..mkv()
        },
    ] {
        assert!(!remux(opts.clone()), "{opts:?}");
    }
}

#[test]
fn quality_presets_per_codec() {
    let value = |format: Format, q: Quality, flag: &str| {
        let argv = argv_of(
            "sd",
            &ConvertOptions {
                quality: Some(q),
                ..to(format)
            },
        );
        arg_after(&argv, flag).to_owned()
    };
    use Quality::*;
    for (q, crf, vp9, qv, aac, opus) in [
        (High, "20", "28", "3", "192k", "128k"),
        (Medium, "23", "33", "5", "128k", "96k"),
        (Low, "28", "40", "8", "96k", "64k"),
    ] {
        assert_eq!(value(Format::Mp4, q, "-crf"), crf);
        assert_eq!(value(Format::Mp4, q, "-preset"), X264_PRESET);
        assert_eq!(value(Format::Mp4, q, "-b:a"), aac);
        assert_eq!(value(Format::Webm, q, "-crf"), vp9);
        assert_eq!(value(Format::Webm, q, "-b:v"), "0");
        assert_eq!(value(Format::Webm, q, "-b:a"), opus);
        assert_eq!(value(Format::Avi, q, "-q:v"), qv);
        assert_eq!(value(Format::Wmv, q, "-q:v"), qv);
        assert_eq!(value(Format::Mpeg, q, "-q:v"), qv);
        assert_eq!(value(Format::Mp3, q, "-b:a"), aac);
        assert_eq!(value(Format::Opus, q, "-b:a"), opus);
    }
    // audio_bitrate overrides the preset; MP2 snaps to its table.
    let bitrate = |format: Format, b: &str| {
        let argv = argv_of(
            "sd",
            &ConvertOptions {
                audio_bitrate: Some(b.into()),
                ..to(format)
            },
        );
        arg_after(&argv, "-b:a").to_owned()
    };
    assert_eq!(bitrate(Format::Mp4, "64k"), "64k");
    assert_eq!(bitrate(Format::Mpeg, "100k"), "96k");
    assert_eq!(bitrate(Format::Mpeg, "512k"), "384k");
    assert_eq!(bitrate(Format::Mp3, "512k"), "320k");
    assert_eq!(bitrate(Format::Ogg, "8K"), "8k");
    // MPEG-4 Part 2 in AVI gets the FourCC players know.
    let argv = argv_of("sd", &to(Format::Avi));
    assert_eq!(arg_after(&argv, "-tag:v"), "XVID");
}

#[test]
fn lossless_audio_has_no_bitrate() {
    for format in [Format::Wav, Format::Flac] {
        let argv = argv_of("landscape", &to(format));
        assert!(!has_flag(&argv, "-b:a"));
        assert!(has_flag(&argv, "-vn"));
        assert_eq!(arg_after(&argv, "-map"), "0:1");
    }
}

#[test]
fn stereo_only_codecs_downmix() {
    for (format, downmix) in [
        (Format::Mp3, true),
        (Format::Opus, true),
        (Format::Wma, true),
        (Format::Ogg, false),
        (Format::Flac, false),
        (Format::Wav, false),
    ] {
        let argv = argv_of("surround", &to(format));
        assert_eq!(has_flag(&argv, "-ac"), downmix, "{format}");
        if downmix {
            assert_eq!(arg_after(&argv, "-ac"), "2");
        }
    }
    // Stereo input: nothing to downmix.
    assert!(!has_flag(&argv_of("landscape", &to(Format::Mp3)), "-ac"));
}

#[test]
fn max_height_scales_down_only_with_even_sizes() {
    let sized = |name: &str, max_height: Option<u32>| {
        let p = plan_of(
            name,
            &ConvertOptions {
                max_height,
                quality: Some(Quality::Medium),
                ..to(Format::Mp4)
            },
        );
        let vf = p.runs[0]
            .argv
            .iter()
            .position(|a| a == "-vf")
            .map(|i| p.runs[0].argv[i + 1].clone());
        ((p.width, p.height), vf)
    };
    assert_eq!(
        sized("landscape", Some(720)),
        ((1280, 720), Some("scale=1280:720".into()))
    );
    assert_eq!(
        sized("landscape", Some(145)),
        ((258, 144), Some("scale=258:144".into()))
    );
    // Never upscaled: a bound above the source changes nothing.
    assert_eq!(sized("sd", Some(4320)), ((640, 480), None));
    assert_eq!(
        sized("portrait", Some(720)),
        ((406, 720), Some("scale=406:720".into()))
    );
    // Odd source sizes become even (H.264 4:2:0 needs it).
    assert_eq!(sized("odd", None), ((160, 90), Some("scale=160:90".into())));
    // Rotation: sizes are in display orientation (ffmpeg autorotates).
    assert_eq!(sized("rotated", None), ((180, 320), None));
    assert_eq!(
        sized("rotated", Some(144)),
        ((82, 144), Some("scale=82:144".into()))
    );
}

#[test]
fn scaled_size_rules() {
    let v = |w, h| VideoStream {
        index: 0,
        codec: "h264".into(),
        width: w,
        height: h,
        fps: None,
        pix_fmt: None,
        rotation: 0,
    };
    assert_eq!(scaled_size(&v(1920, 1080), None, None), Ok((1920, 1080)));
    assert_eq!(scaled_size(&v(1920, 1080), Some(480), None), Ok((854, 480)));
    assert_eq!(scaled_size(&v(1920, 1080), None, Some(480)), Ok((480, 270)));
    assert_eq!(
        scaled_size(&v(1080, 1920), Some(1080), Some(480)),
        Ok((480, 854))
    );
    assert_eq!(scaled_size(&v(320, 240), None, Some(480)), Ok((320, 240)));
    assert_eq!(scaled_size(&v(3, 3), None, None), Ok((2, 2)));
    assert_eq!(
        scaled_size(&v(1, 100), None, None).unwrap_err().code(),
        "invalid_media"
    );
    assert_eq!(
        scaled_size(&v(4000, 2), Some(144), Some(16))
            .unwrap_err()
            .code(),
        "invalid_media"
    );
}

#[test]
fn fps_option_and_mpeg2_rates() {
    let fps_filter = |name: &str, format: Format, fps: Option<u32>| {
        let argv = argv_of(
            name,
            &ConvertOptions {
                fps: fps.map(Rate::whole),
                quality: Some(Quality::Medium),
                ..to(format)
            },
        );
        argv.iter()
            .position(|a| a == "-vf")
            .map(|i| argv[i + 1].clone())
    };
    assert_eq!(fps_filter("sd", Format::Mp4, None), None);
    assert_eq!(fps_filter("sd", Format::Mp4, Some(25)), None);
    assert_eq!(
        fps_filter("sd", Format::Mp4, Some(12)),
        Some("fps=12".into())
    );
    // MPEG-2 can only signal standard rates: snapped to the nearest.
    assert_eq!(fps_filter("landscape", Format::Mpeg, None), None);
    assert_eq!(
        fps_filter("landscape", Format::Mpeg, Some(15)),
        Some("fps=24000/1001".into())
    );
    assert_eq!(
        fps_filter("landscape", Format::Mpeg, Some(29)),
        Some("fps=30000/1001".into())
    );
    assert_eq!(
        fps_filter("landscape", Format::Mpeg, Some(48)),
        Some("fps=50".into())
    );
    let mut unknown = fixture("sd");
    if let Some(v) = unknown.video.as_mut() {
        v.fps = None;
    }
    let p = plan_convert(&unknown, &to(Format::Mpeg), &paths(), "x").unwrap();
    assert_eq!(arg_after(&p.runs[0].argv, "-vf"), "fps=25");
}

#[test]
fn gif_is_palette_generated_with_bounded_fps_and_width() {
    let plan = plan_of("landscape", &to(Format::Gif));
    assert_eq!((plan.width, plan.height), (480, 270));
    let argv = &plan.runs[0].argv;
    check_safety(argv);
    assert_eq!(
        arg_after(argv, "-filter_complex"),
        "[0:0]fps=15,scale=480:270:flags=lanczos,split[g1][g2];\
         [g1]palettegen=stats_mode=diff[pal];\
         [g2][pal]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle[v]"
    );
    assert_eq!(arg_after(argv, "-map"), "[v]");
    assert!(has_flag(argv, "-an"));
    assert!(!has_flag(argv, "-pix_fmt") && !has_flag(argv, "-vf"));
    // Explicit fps; a source slower than the default keeps its rate;
    // small frames are not upscaled; max_height bounds too.
    let g = |name: &str, opts: ConvertOptions| {
        let p = plan_of(name, &opts);
        (
            (p.width, p.height),
            arg_after(&p.runs[0].argv, "-filter_complex")
                .split(',')
                .take(2)
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    let gif = || to(Format::Gif);
    assert_eq!(
        g(
            "sd",
            ConvertOptions {
                fps: Some(Rate::whole(10)),
                ..gif()
            }
        ),
        ((480, 360), "[0:0]fps=10,scale=480:360:flags=lanczos".into())
    );
    assert_eq!(
        g(
            "landscape",
            ConvertOptions {
                max_height: Some(144),
                ..gif()
            }
        ),
        ((256, 144), "[0:0]fps=15,scale=256:144:flags=lanczos".into())
    );
    assert_eq!(
        g("long", gif()),
        ((64, 36), "[0:0]fps=15,scale=64:36:flags=lanczos".into())
    );
    let mut slow = fixture("sd");
    if let Some(v) = slow.video.as_mut() {
        v.fps = Some(10.0);
    }
    let p = plan_convert(&slow, &gif(), &paths(), "x").unwrap();
    assert!(arg_after(&p.runs[0].argv, "-filter_complex").starts_with("[0:0]scale=480:360"));
}

#[test]
fn trim_uses_input_seeking() {
    let p = plan_of(
        "long",
        &ConvertOptions {
            start: Some(10.0),
            end: Some(20.5),
            ..to(Format::Mp4)
        },
    );
    let argv = &p.runs[0].argv;
    check_safety(argv);
    let i = argv.iter().position(|a| a == "-i").unwrap();
    assert_eq!(&argv[i - 4..i], ["-ss", "10", "-to", "20.5"]);
    assert!((p.runs[0].expected_duration - 10.5).abs() < 1e-9);
    // End past the end: no -to, the rest of the input.
    let p = plan_of(
        "long",
        &ConvertOptions {
            start: Some(40.0),
            end: Some(99.0),
            ..to(Format::Mp3)
        },
    );
    assert!(!has_flag(&p.runs[0].argv, "-to"));
    assert!((p.runs[0].expected_duration - 5.0).abs() < 0.05);
    // Only an end.
    let p = plan_of(
        "long",
        &ConvertOptions {
            end: Some(3.0),
            ..to(Format::Webm)
        },
    );
    assert!(!has_flag(&p.runs[0].argv, "-ss"));
    assert_eq!(arg_after(&p.runs[0].argv, "-to"), "3");
    assert!((p.runs[0].expected_duration - 3.0).abs() < 1e-9);
    // A start past the end names the option.
    let err = plan_convert(
        &fixture("long"),
        &ConvertOptions {
            start: Some(45.5),
            ..to(Format::Mp4)
        },
        &paths(),
        "x",
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    assert!(err.to_string().contains("options.start"), "{err}");
}

#[test]
fn missing_streams() {
    let err = plan_convert(&fixture("no_audio"), &to(Format::Mp3), &paths(), "x").unwrap_err();
    assert_eq!(
        (err.clone(), err.code().as_str()),
        (PlanError::NoAudio, "no_audio_stream")
    );
    let err = plan_convert(&fixture("audio_only"), &to(Format::Mp4), &paths(), "x").unwrap_err();
    assert_eq!(err.code(), "no_video_stream");
    let err = plan_convert(&fixture("wav"), &to(Format::Gif), &paths(), "x").unwrap_err();
    assert_eq!(err.code(), "no_video_stream");
    // Video without audio: a video output without audio.
    let argv = argv_of("no_audio", &to(Format::Webm));
    assert!(!has_flag(&argv, "-c:a"));
    assert_eq!(arg_after(&argv, "-map"), "0:0");
    // Audio-only input to audio formats.
    let argv = argv_of("audio_only", &to(Format::Mp3));
    assert_eq!(arg_after(&argv, "-map"), "0:0");
    assert_eq!(arg_after(&argv, "-c:a"), "libmp3lame");
}

#[test]
fn option_errors_name_the_option() {
    let mp4 = || to(Format::Mp4);
    let cases: Vec<(ConvertOptions, &str)> = vec![
        (
            ConvertOptions {
                start: Some(-1.0),
                ..mp4()
            },
            "start",
        ),
        (
            ConvertOptions {
                start: Some(f64::NAN),
                ..mp4()
            },
            "start",
        ),
        (
            ConvertOptions {
                end: Some(0.0),
                ..mp4()
            },
            "end",
        ),
        (
            ConvertOptions {
                end: Some(f64::INFINITY),
                ..mp4()
            },
            "end",
        ),
        (
            ConvertOptions {
                start: Some(5.0),
                end: Some(5.0),
                ..mp4()
            },
            "end",
        ),
        (
            ConvertOptions {
                fps: Some(Rate::whole(0)),
                ..mp4()
            },
            "fps",
        ),
        (
            ConvertOptions {
                fps: Some(Rate::whole(61)),
                ..mp4()
            },
            "fps",
        ),
        (
            ConvertOptions {
                fps: Some(Rate::whole(31)),
                ..to(Format::Gif)
            },
            "fps",
        ),
        (
            ConvertOptions {
                fps: Some(Rate::whole(24)),
                ..to(Format::Mp3)
            },
            "fps",
        ),
        (
            ConvertOptions {
                max_height: Some(143),
                ..mp4()
            },
            "max_height",
        ),
        (
            ConvertOptions {
                max_height: Some(4321),
                ..mp4()
            },
            "max_height",
        ),
        (
            ConvertOptions {
                max_height: Some(720),
                ..to(Format::Flac)
            },
            "max_height",
        ),
        (
            ConvertOptions {
                quality: Some(Quality::High),
                ..to(Format::Wav)
            },
            "quality",
        ),
        (
            ConvertOptions {
                quality: Some(Quality::Low),
                ..to(Format::Gif)
            },
            "quality",
        ),
        (
            ConvertOptions {
                audio_bitrate: Some("128k".into()),
                ..to(Format::Flac)
            },
            "audio_bitrate",
        ),
        (
            ConvertOptions {
                audio_bitrate: Some("128k".into()),
                ..to(Format::Gif)
            },
            "audio_bitrate",
        ),
    ];
    for bad in [
        "", "k", "128", "7k", "513k", "1000k", "12.5k", "-8k", "128kb", " 128k",
    ] {
        assert_eq!(
            parse_kbps(bad).unwrap_err().option,
            "audio_bitrate",
            "{bad:?}"
        );
    }
    for (good, kbps) in [("8k", 8), ("128k", 128), ("320K", 320), ("512k", 512)] {
        assert_eq!(parse_kbps(good), Ok(kbps));
    }
    for (opts, name) in cases.into_iter().chain([(
        ConvertOptions {
            audio_bitrate: Some("lots".into()),
            ..mp4()
        },
        "audio_bitrate",
    )]) {
        let err = opts.validate().unwrap_err();
        assert_eq!(err.option, name, "{opts:?}");
        assert!(err.to_string().contains(name));
        let perr = plan_convert(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
        assert_eq!(perr.code(), "invalid_options");
    }
    for format in Format::ALL {
        assert_eq!(to(format).validate(), Ok(()));
    }
}

#[test]
fn options_deserialize_and_refuse_unknown_fields() {
    let opts: ConvertOptions = serde_json::from_str(r#"{"format":"webm"}"#).unwrap();
    assert_eq!(opts, to(Format::Webm));
    let opts: ConvertOptions = serde_json::from_str(
        r#"{"format":"mpeg","quality":"high","max_height":720,"fps":25,"start":1.5,
            "end":"00:00:03","audio_bitrate":"192k"}"#,
    )
    .unwrap();
    assert_eq!(opts.format, Format::Mpeg);
    assert_eq!(opts.quality, Some(Quality::High));
    assert_eq!(
        (opts.max_height, opts.fps),
        (Some(720), Some(Rate::whole(25)))
    );
    assert_eq!((opts.start, opts.end), (Some(1.5), Some(3.0)));
    assert_eq!(opts.validate(), Ok(()));
    for bad in [
        r#"{}"#,
        r#"{"format":"MP4"}"#,
        r#"{"format":"mp5"}"#,
        r#"{"format":"mp4","quality":"ultra"}"#,
        r#"{"format":"mp4","fps":"fast"}"#,
        r#"{"format":"mp4","newFormat":"x"}"#,
        r#"{"format":"mp4","other":[1]}"#,
        r#"{"format":"mp4","max_height":-1}"#,
        r#"{"format":"mp4","start":"1:75"}"#,
        r#"{"format":"mp4","audio_bitrate":128}"#,
    ] {
        assert!(
            serde_json::from_str::<ConvertOptions>(bad).is_err(),
            "{bad}"
        );
    }
    // Seconds echo like idrl's: whole values as integers.
    let echoed = serde_json::to_value(ConvertOptions {
        start: Some(1.0),
        end: Some(2.5),
        ..to(Format::Mp4)
    })
    .unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({"format": "mp4", "start": 1, "end": 2.5})
    );
    for format in Format::ALL {
        let json = serde_json::to_value(to(format)).unwrap();
        assert_eq!(json, serde_json::json!({ "format": format.to_string() }));
        let back: ConvertOptions = serde_json::from_value(json).unwrap();
        assert_eq!(back.format, format);
    }
}

#[test]
fn container_of_input() {
    use Format::*;
    for (name, want) in [
        ("landscape", Some(Mp4)),
        ("audio_only", Some(M4a)),
        ("webm", Some(Webm)),
        ("odd", Some(Mkv)),
        ("avi", Some(Avi)),
        ("mpeg2", Some(Mpeg)),
        ("wav", Some(Wav)),
    ] {
        assert_eq!(Format::of_input(&fixture(name)), want, "{name}");
    }
    let mut info = fixture("landscape");
    for (format_name, want) in [
        ("mpegts", Some(Mp4)),
        ("flv", Some(Mp4)),
        ("asf", Some(Wmv)),
        ("mxf", None),
        ("", None),
    ] {
        info.format_name = format_name.into();
        assert_eq!(Format::of_input(&info), want, "{format_name}");
    }
}
