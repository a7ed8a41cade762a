use super::super::testutil::{arg_after, check_safety, fixture, has_flag, paths};
use super::*;

fn by_quality(q: Quality) -> CompressOptions {
    CompressOptions {
        quality: Some(q),
        ..CompressOptions::default()
    }
}

fn by_size(mb: f64) -> CompressOptions {
    CompressOptions {
        target_size_mb: Some(mb),
        ..CompressOptions::default()
    }
}

fn argv_of(name: &str, opts: &CompressOptions) -> Vec<String> {
    let plan = plan_compress(&fixture(name), opts, &paths(), "My clip").unwrap();
    assert_eq!(plan.runs.len(), 1);
    let argv = plan.runs[0].argv.clone();
    check_safety(&argv);
    assert!(!has_flag(&argv, "-c"), "never a remux");
    argv
}

#[test]
fn quality_keeps_the_container_with_its_codecs() {
    let cases = [
        (
            "landscape",
            "mp4",
            Some(("libx264", "-crf", "27")),
            Some("96k"),
        ),
        ("no_audio", "mp4", Some(("libx264", "-crf", "27")), None),
        (
            "webm",
            "webm",
            Some(("libvpx-vp9", "-crf", "39")),
            Some("64k"),
        ),
        ("odd", "mkv", Some(("libx264", "-crf", "27")), None),
        ("avi", "avi", Some(("mpeg4", "-q:v", "8")), Some("96k")),
        (
            "mpeg2",
            "mpg",
            Some(("mpeg2video", "-q:v", "8")),
            Some("96k"),
        ),
        ("audio_only", "m4a", None, Some("96k")),
    ];
    for (name, ext, video, audio) in cases {
        let plan = plan_compress(
            &fixture(name),
            &by_quality(Quality::Medium),
            &paths(),
            "My clip",
        )
        .unwrap();
        let run = &plan.runs[0];
        check_safety(&run.argv);
        assert_eq!(run.output_name, format!("My_clip.{ext}"), "{name}");
        assert!((run.expected_duration - fixture(name).duration).abs() < 1e-9);
        match video {
            Some((codec, flag, value)) => {
                assert_eq!(arg_after(&run.argv, "-c:v"), codec, "{name}");
                assert_eq!(arg_after(&run.argv, flag), value, "{name}");
            }
            None => assert!(has_flag(&run.argv, "-vn")),
        }
        match audio {
            Some(b) => assert_eq!(arg_after(&run.argv, "-b:a"), b, "{name}"),
            None => assert!(!has_flag(&run.argv, "-c:a"), "{name}"),
        }
    }
    let crf = |q| arg_after(&argv_of("landscape", &by_quality(q)), "-crf").to_owned();
    assert_eq!(
        [crf(Quality::High), crf(Quality::Medium), crf(Quality::Low)],
        ["24", "27", "31"]
    );
}

#[test]
fn format_and_max_height() {
    let argv = argv_of(
        "landscape",
        &CompressOptions {
            max_height: Some(720),
            format: Some(Format::Webm),
            ..by_quality(Quality::Low)
        },
    );
    assert_eq!(arg_after(&argv, "-vf"), "scale=1280:720");
    assert_eq!(arg_after(&argv, "-c:v"), "libvpx-vp9");
    assert_eq!(arg_after(&argv, "-crf"), "45");
    // A lossless input needs a lossy format.
    let err =
        plan_compress(&fixture("wav"), &by_quality(Quality::High), &paths(), "x").unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    assert!(err.to_string().contains("options.format"), "{err}");
    let argv = argv_of(
        "wav",
        &CompressOptions {
            format: Some(Format::Opus),
            ..by_quality(Quality::High)
        },
    );
    assert_eq!(arg_after(&argv, "-c:a"), "libopus");
    assert_eq!(arg_after(&argv, "-b:a"), "96k");
    // An audio format from a video input drops the video.
    let argv = argv_of(
        "landscape",
        &CompressOptions {
            format: Some(Format::Mp3),
            ..by_quality(Quality::Low)
        },
    );
    assert!(has_flag(&argv, "-vn"));
    assert_eq!(arg_after(&argv, "-b:a"), "64k");
    // Unknown container without a format.
    let mut info = fixture("landscape");
    info.format_name = "mxf".into();
    let err = plan_compress(&info, &by_quality(Quality::High), &paths(), "x").unwrap_err();
    assert!(err.to_string().contains("options.format"), "{err}");
    // Missing streams.
    let err = plan_compress(
        &fixture("no_audio"),
        &CompressOptions {
            format: Some(Format::M4a),
            ..by_quality(Quality::High)
        },
        &paths(),
        "x",
    )
    .unwrap_err();
    assert_eq!(err.code(), "no_audio_stream");
    let err = plan_compress(
        &fixture("audio_only"),
        &CompressOptions {
            format: Some(Format::Mp4),
            ..by_quality(Quality::High)
        },
        &paths(),
        "x",
    )
    .unwrap_err();
    assert_eq!(err.code(), "no_video_stream");
}

#[test]
fn target_size_sets_bitrates() {
    // 45 s, 1 MB: 1e6 × 8 × 0.98 / 45 = 174.2 kbit/s; audio 32k.
    let argv = argv_of("long", &by_size(1.0));
    assert_eq!(arg_after(&argv, "-b:v"), "142k");
    assert_eq!(arg_after(&argv, "-maxrate"), "213k");
    assert_eq!(arg_after(&argv, "-bufsize"), "284k");
    assert_eq!(arg_after(&argv, "-b:a"), "32k");
    assert!(!has_flag(&argv, "-crf"));
    assert_eq!(arg_after(&argv, "-preset"), "veryfast");
    // 2 s, 1 MB: 3920 kbit/s; audio capped at 128k.
    let argv = argv_of("landscape", &by_size(1.0));
    assert_eq!(arg_after(&argv, "-b:v"), "3792k");
    assert_eq!(arg_after(&argv, "-b:a"), "128k");
    // No audio: everything to the video.
    let argv = argv_of("no_audio", &by_size(1.0));
    assert_eq!(arg_after(&argv, "-b:v"), "3920k");
    // VP9 and MPEG-2 (MP2 bitrate at most the share, from its table).
    let argv = argv_of("webm", &by_size(0.5));
    assert_eq!(arg_after(&argv, "-c:v"), "libvpx-vp9");
    assert!(!has_flag(&argv, "-crf"));
    let b = arg_after(&argv, "-b:v");
    assert_eq!(arg_after(&argv, "-minrate"), b);
    assert_eq!(arg_after(&argv, "-maxrate"), b);
    let t = target_bitrates(10.0, 1.0, Format::Mpeg, true).unwrap();
    assert_eq!(t.audio_kbps, Some(96));
    assert_eq!(t.video_kbps, Some(784 - 96));
    // Audio formats spend the whole budget on audio.
    let t = target_bitrates(45.0, 1.0, Format::Mp3, true).unwrap();
    assert_eq!(
        t,
        TargetBitrates {
            video_kbps: None,
            audio_kbps: Some(174)
        }
    );
    let t = target_bitrates(10.0, 100.0, Format::Mp3, true).unwrap();
    assert_eq!(t.audio_kbps, Some(320));
    assert_eq!(
        target_bitrates(10.0, 1.0, Format::M4a, false).unwrap_err(),
        PlanError::NoAudio
    );
    assert_eq!(
        target_bitrates(f64::NAN, 1.0, Format::Mp4, true).unwrap_err(),
        PlanError::InvalidDuration
    );
}

#[test]
fn target_too_small_names_the_option() {
    let err = plan_compress(&fixture("long"), &by_size(0.2), &paths(), "x").unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    let text = err.to_string();
    assert!(
        text.contains("options.target_size_mb") && text.contains("0.48 MB"),
        "{text}"
    );
    let err = target_bitrates(3600.0, 1.0, Format::Opus, true).unwrap_err();
    assert!(err.to_string().contains("target_size_mb"));
}

#[test]
fn option_errors_name_the_option() {
    let cases: Vec<(CompressOptions, &str)> = vec![
        (CompressOptions::default(), "quality"),
        (
            CompressOptions {
                quality: Some(Quality::Low),
                target_size_mb: Some(1.0),
                ..CompressOptions::default()
            },
            "target_size_mb",
        ),
        (by_size(0.0), "target_size_mb"),
        (by_size(-1.0), "target_size_mb"),
        (by_size(f64::NAN), "target_size_mb"),
        (by_size(1e6), "target_size_mb"),
        (
            CompressOptions {
                max_height: Some(100),
                ..by_size(1.0)
            },
            "max_height",
        ),
        (
            CompressOptions {
                max_height: Some(720),
                format: Some(Format::Mp3),
                ..by_size(1.0)
            },
            "max_height",
        ),
        (
            CompressOptions {
                format: Some(Format::Gif),
                ..by_size(1.0)
            },
            "format",
        ),
        (
            CompressOptions {
                format: Some(Format::Flac),
                ..by_quality(Quality::High)
            },
            "format",
        ),
        (
            CompressOptions {
                format: Some(Format::Wav),
                ..by_quality(Quality::High)
            },
            "format",
        ),
    ];
    for (opts, name) in cases {
        let err = opts.validate().unwrap_err();
        assert_eq!(err.option, name, "{opts:?}");
        let perr = plan_compress(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
        assert_eq!(perr.code(), "invalid_options");
    }
}

#[test]
fn options_deserialize_and_refuse_unknown_fields() {
    let opts: CompressOptions =
        serde_json::from_str(r#"{"target_size_mb":8,"max_height":720}"#).unwrap();
    assert_eq!(opts.target_size_mb, Some(8.0));
    assert_eq!(opts.max_height, Some(720));
    assert_eq!(opts.validate(), Ok(()));
    let opts: CompressOptions =
        serde_json::from_str(r#"{"quality":"low","format":"webm"}"#).unwrap();
    assert_eq!(opts.quality, Some(Quality::Low));
    assert_eq!(opts.format, Some(Format::Webm));
    for bad in [
        r#"{"quality":"low","x":1}"#,
        r#"{"quality":"best"}"#,
        r#"{"target_size_mb":"8"}"#,
        r#"{"format":"exe"}"#,
    ] {
        assert!(
            serde_json::from_str::<CompressOptions>(bad).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        serde_json::to_value(by_quality(Quality::High)).unwrap(),
        serde_json::json!({"quality": "high"})
    );
}
