use std::path::PathBuf;

use super::super::args::secs;
use super::super::testutil::{arg_after, fixture};
use super::super::{INPUT_FORMAT_WHITELIST, LOGO_DEMUXER};
use super::*;

fn paths() -> Paths {
    Paths {
        input: PathBuf::from("/scratch/t1/input.mp4"),
        out_dir: PathBuf::from("/scratch/t1/out"),
        logo: Some(PathBuf::from("/srv/assets/logo.png")),
    }
}

fn plan(name: &str, opts: &IdrlOptions) -> Plan {
    plan_idrl(&fixture(name), opts, &paths(), "My clip (final)").unwrap()
}

fn graph(run: &PlannedRun) -> &str {
    arg_after(&run.argv, "-filter_complex")
}

/// Every `-i` has its own allow-lists among the options since the
/// previous input; returns the inputs.
fn check_safety(argv: &[String]) -> Vec<String> {
    assert_eq!(
        &argv[..4],
        ["-nostdin", "-hide_banner", "-loglevel", "error"]
    );
    let mut inputs = Vec::new();
    let mut since = 0;
    for (i, a) in argv.iter().enumerate() {
        if a != "-i" {
            continue;
        }
        let opts = &argv[since..i];
        let value = |flag: &str| {
            let j = opts.iter().position(|o| o == flag).unwrap_or_else(|| {
                panic!("{flag} missing before input {}", argv[i + 1]);
            });
            opts[j + 1].clone()
        };
        assert_eq!(value("-protocol_whitelist"), "file");
        let formats = value("-format_whitelist");
        assert!(
            formats == INPUT_FORMAT_WHITELIST || formats == LOGO_DEMUXER,
            "{formats}"
        );
        if formats == LOGO_DEMUXER {
            assert_eq!(value("-f"), LOGO_DEMUXER);
        }
        assert!(argv[i + 1].starts_with("file:"));
        inputs.push(argv[i + 1].clone());
        since = i + 2;
    }
    inputs
}

#[test]
fn landscape_1080p_full_argv() {
    let plan = plan("landscape", &IdrlOptions::default());
    assert_eq!((plan.width, plan.height), (1920, 1080));
    assert_eq!(plan.runs.len(), 1);
    let run = &plan.runs[0];
    assert_eq!(run.output_name, "My_clip_final_part_001.mp4");
    assert_eq!(
        run.output,
        PathBuf::from("/scratch/t1/out/My_clip_final_part_001.mp4")
    );
    assert!((run.expected_duration - 4.0).abs() < 0.05);
    let expected_graph = "[0:0]fps=24,crop=1920:1080:0:0,scale=1920:1080,setsar=1,\
        format=yuv420p,tpad=stop=-1:stop_mode=clone,trim=duration=2,setpts=PTS-STARTPTS[mv];\
        [0:1]aresample=48000:async=1:first_pts=0,\
        aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,apad,\
        atrim=duration=2,asetpts=PTS-STARTPTS[ma];\
        color=c=black:s=1920x1080:r=24:d=1,format=yuv420p[bg];\
        [1:v]scale=1920:1080:force_original_aspect_ratio=decrease:force_divisible_by=2[logo];\
        [bg][logo]overlay=x=(W-w)/2:y=(H-h)/2:format=auto,setsar=1,format=yuv420p,\
        split=2[b1][b2];\
        anullsrc=r=48000:cl=stereo,\
        aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,\
        atrim=duration=1,asplit=2[s1][s2];\
        [b1][s1][mv][ma][b2][s2]concat=n=3:v=1:a=1[v][a]";
    let expected: Vec<&str> = vec![
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        INPUT_FORMAT_WHITELIST,
        "-ss",
        "0",
        "-t",
        "2",
        "-i",
        "file:/scratch/t1/input.mp4",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        "png_pipe",
        "-f",
        "png_pipe",
        "-i",
        "file:/srv/assets/logo.png",
        "-filter_complex",
        expected_graph,
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "19",
        "-pix_fmt",
        "yuv420p",
        "-r",
        "24",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "-progress",
        "pipe:1",
        "-nostats",
        "-y",
        "file:/scratch/t1/out/My_clip_final_part_001.mp4",
    ];
    // The fixture lasts 2.000000 s (up to ffprobe's rounding).
    let mut argv = run.argv.clone();
    let t = argv.iter().position(|a| a == "-t").unwrap();
    let dur: f64 = argv[t + 1].parse().unwrap();
    assert!((dur - 2.0).abs() < 0.05, "{dur}");
    argv[t + 1] = "2".into();
    let g = argv.iter().position(|a| a == "-filter_complex").unwrap() + 1;
    argv[g] = argv[g].replace(&format!("duration={}", secs(dur)), "duration=2");
    assert_eq!(argv, expected);
    assert_eq!(check_safety(&run.argv).len(), 2);
}

#[test]
fn portrait_crops_to_16_9() {
    let plan = plan("portrait", &IdrlOptions::default());
    assert_eq!((plan.width, plan.height), (1080, 608));
    let g = graph(&plan.runs[0]);
    assert!(g.contains("crop=1080:608:0:656,scale=1080:608,"), "{g}");
    check_safety(&plan.runs[0].argv);
}

#[test]
fn portrait_kept_portrait_with_9_16() {
    let opts = IdrlOptions {
        aspect: Aspect::Portrait9x16,
        ..IdrlOptions::default()
    };
    // max_height counts lines, so the default 1080 caps a 9:16 output.
    let plan = plan("portrait", &opts);
    assert_eq!((plan.width, plan.height), (608, 1080));
    let tall = IdrlOptions {
        max_height: 1920,
        ..opts.clone()
    };
    let plan = plan_idrl(&fixture("portrait"), &tall, &paths(), "x").unwrap();
    assert_eq!((plan.width, plan.height), (1080, 1920));
    assert!(graph(&plan.runs[0]).contains("crop=1080:1920:0:0,scale=1080:1920,"));
    // max_height caps, width follows the ratio.
    let opts = IdrlOptions {
        max_height: 1280,
        ..opts
    };
    let plan = plan_idrl(&fixture("portrait"), &opts, &paths(), "x").unwrap();
    assert_eq!((plan.width, plan.height), (720, 1280));
}

#[test]
fn sd_4_3_crops_to_640x360() {
    let plan = plan("sd", &IdrlOptions::default());
    assert_eq!((plan.width, plan.height), (640, 360));
    assert!(graph(&plan.runs[0]).contains("crop=640:360:0:60,scale=640:360,"));
}

#[test]
fn pad_letterboxes_on_background() {
    let opts = IdrlOptions {
        fit: Fit::Pad,
        background: "#1a2B3c".into(),
        ..IdrlOptions::default()
    };
    // 640x480 into 16:9 without cropping: 854x480 box (never upscaled).
    let plan = plan("sd", &opts);
    assert_eq!((plan.width, plan.height), (854, 480));
    let g = graph(&plan.runs[0]);
    assert!(
        g.contains(
            "scale=854:480:force_original_aspect_ratio=decrease:force_divisible_by=2,\
             pad=854:480:(ow-iw)/2:(oh-ih)/2:color=0x1A2B3C,"
        ),
        "{g}"
    );
    assert!(g.contains("color=c=0x1A2B3C:s=854x480"));
    assert!(!g.contains("crop="));
    // Portrait padded to 16:9 is pillarboxed at the source height, capped.
    let plan = plan_idrl(&fixture("portrait"), &opts, &paths(), "x").unwrap();
    assert_eq!((plan.width, plan.height), (1920, 1080));
}

#[test]
fn geometry_table() {
    let v = |w, h, rotation| VideoStream {
        index: 0,
        codec: "h264".into(),
        width: w,
        height: h,
        fps: None,
        pix_fmt: None,
        rotation,
    };
    let cases = [
        (
            v(640, 360, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (640, 360),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (1920, 1080),
        ),
        (
            v(3840, 2160, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (1920, 1080),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            720,
            (1280, 720),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Standard4x3,
            Fit::Crop,
            1080,
            (1440, 1080),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Square1x1,
            Fit::Crop,
            1080,
            (1080, 1080),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Portrait9x16,
            Fit::Crop,
            1080,
            (608, 1080),
        ),
        (
            v(1080, 1920, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (1080, 608),
        ),
        (
            v(640, 480, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (640, 360),
        ),
        (
            v(321, 181, 0),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (320, 180),
        ),
        (
            v(1000, 700, 0),
            Aspect::Source,
            Fit::Crop,
            1080,
            (1000, 700),
        ),
        (
            v(1001, 701, 0),
            Aspect::Source,
            Fit::Crop,
            1080,
            (1000, 700),
        ),
        (v(1920, 1080, 0), Aspect::Source, Fit::Crop, 480, (854, 480)),
        // Rotated phone clip: 1920x1080 coded, 1080x1920 displayed.
        (
            v(1920, 1080, 90),
            Aspect::Landscape16x9,
            Fit::Crop,
            1080,
            (1080, 608),
        ),
        (
            v(1920, 1080, 270),
            Aspect::Source,
            Fit::Crop,
            1080,
            (608, 1080),
        ),
        (
            v(1920, 1080, 180),
            Aspect::Source,
            Fit::Crop,
            1080,
            (1920, 1080),
        ),
        (
            v(640, 480, 0),
            Aspect::Landscape16x9,
            Fit::Pad,
            1080,
            (854, 480),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Square1x1,
            Fit::Pad,
            1080,
            (1080, 1080),
        ),
        (
            v(1280, 720, 0),
            Aspect::Square1x1,
            Fit::Pad,
            4320,
            (1280, 1280),
        ),
        (
            v(1920, 1080, 0),
            Aspect::Landscape16x9,
            Fit::Pad,
            1080,
            (1920, 1080),
        ),
    ];
    for (video, aspect, fit, max_h, want) in cases {
        let g = output_geometry(&video, aspect, fit, max_h).unwrap();
        assert_eq!(
            (g.width, g.height),
            want,
            "{video:?} {aspect:?} {fit:?} {max_h}"
        );
        assert_eq!(g.width % 2 + g.height % 2, 0);
        assert!(g.height <= max_h);
        if let Framing::Crop {
            width,
            height,
            x,
            y,
        } = g.framing
        {
            // Never upscaled, crop inside the display frame.
            assert!(g.width <= width && g.height <= height);
            assert!(x + width <= video.display_width());
            assert!(y + height <= video.display_height());
        }
    }
    let tiny = v(1, 1, 0);
    let err = output_geometry(&tiny, Aspect::Landscape16x9, Fit::Crop, 1080).unwrap_err();
    assert_eq!(err.code(), "invalid_media");
}

#[test]
fn rotated_fixture_is_cropped_in_display_orientation() {
    let plan = plan("rotated", &IdrlOptions::default());
    // 320x180 coded, rotated to 180x320 → 16:9 crop of 180x101 → 180x100.
    assert_eq!((plan.width, plan.height), (178, 100));
    assert!(graph(&plan.runs[0]).contains("crop=180:101:0:109,scale=178:100,"));
}

#[test]
fn no_audio_uses_generated_silence() {
    let plan = plan("no_audio", &IdrlOptions::default());
    assert_eq!((plan.width, plan.height), (1280, 720));
    let g = graph(&plan.runs[0]);
    assert!(!g.contains("[0:1]"));
    assert!(
        g.contains(
            "anullsrc=r=48000:cl=stereo,\
         aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,\
         atrim=duration=2[ma];"
        ),
        "{g}"
    );
    assert!(g.ends_with("concat=n=3:v=1:a=1[v][a]"));
}

#[test]
fn forty_five_seconds_make_three_parts() {
    let plan = plan("long", &IdrlOptions::default());
    assert_eq!(plan.runs.len(), 3);
    let names: Vec<&str> = plan.runs.iter().map(|r| r.output_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "My_clip_final_part_001.mp4",
            "My_clip_final_part_002.mp4",
            "My_clip_final_part_003.mp4"
        ]
    );
    let expected = [22.0, 22.0, 7.0];
    let starts = ["0", "20", "40"];
    for ((run, want), start) in plan.runs.iter().zip(expected).zip(starts) {
        assert!(
            (run.expected_duration - want).abs() < 0.05,
            "{}",
            run.expected_duration
        );
        assert_eq!(arg_after(&run.argv, "-ss"), start);
        check_safety(&run.argv);
    }
    assert_eq!(arg_after(&plan.runs[0].argv, "-t"), "20");
    assert!(graph(&plan.runs[1]).contains("trim=duration=20,"));
    let tail: f64 = arg_after(&plan.runs[2].argv, "-t").parse().unwrap();
    assert!((tail - 5.0).abs() < 0.05);
    // 64x36 source: 16:9 at native size (never upscaled).
    assert_eq!((plan.width, plan.height), (64, 36));
}

#[test]
fn twenty_and_a_half_seconds_make_one_part() {
    let plan = plan("clip_20_5", &IdrlOptions::default());
    assert_eq!(plan.runs.len(), 1);
    assert!((plan.runs[0].expected_duration - 22.5).abs() < 0.05);
    let t: f64 = arg_after(&plan.runs[0].argv, "-t").parse().unwrap();
    assert!((t - 20.5).abs() < 0.05);
}

#[test]
fn no_split_and_no_bumper() {
    let opts = IdrlOptions {
        segment_seconds: 0.0,
        bumper_seconds: 0.0,
        ..IdrlOptions::default()
    };
    let plan = plan("long", &opts);
    assert_eq!(plan.runs.len(), 1);
    let run = &plan.runs[0];
    assert!((run.expected_duration - 45.0).abs() < 0.05);
    // No logo input at all, and no bumper in the graph.
    assert_eq!(check_safety(&run.argv).len(), 1);
    let g = graph(run);
    assert!(g.ends_with("[mv][ma]concat=n=1:v=1:a=1[v][a]"));
    assert!(!g.contains("[1:v]") && !g.contains("color=c="));
}

#[test]
fn split_rules() {
    let durs =
        |d: f64, s: f64| -> Vec<f64> { split_parts(d, s).iter().map(|p| p.duration).collect() };
    assert_eq!(durs(45.0, 20.0), [20.0, 20.0, 5.0]);
    assert_eq!(durs(20.5, 20.0), [20.5]);
    assert_eq!(durs(40.0, 20.0), [20.0, 20.0]);
    assert_eq!(durs(40.9, 20.0), [20.0, 20.9]);
    assert_eq!(durs(41.0, 20.0), [20.0, 20.0, 1.0]);
    assert_eq!(durs(45.0, 0.0), [45.0]);
    assert_eq!(durs(0.4, 20.0), [0.4]);
    assert_eq!(durs(3.0, 1.0), [1.0, 1.0, 1.0]);
    assert!(split_parts(0.0, 20.0).is_empty());
    assert!(split_parts(f64::NAN, 20.0).is_empty());
    let starts: Vec<f64> = split_parts(45.0, 20.0).iter().map(|p| p.start).collect();
    assert_eq!(starts, [0.0, 20.0, 40.0]);
}

#[test]
fn audio_only_is_no_video_stream() {
    let err = plan_idrl(
        &fixture("audio_only"),
        &IdrlOptions::default(),
        &paths(),
        "a",
    )
    .unwrap_err();
    assert_eq!(err, PlanError::NoVideo);
    assert_eq!(err.code(), "no_video_stream");
}

#[test]
fn options_deserialize_with_defaults_and_refuse_unknown_fields() {
    let opts: IdrlOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(opts, IdrlOptions::default());
    let opts: IdrlOptions = serde_json::from_str(
        r##"{"aspect":"9:16","fit":"pad","fps":30,"segment_seconds":0,"bumper_seconds":2.5,
            "max_height":720,"background":"#ff0000"}"##,
    )
    .unwrap();
    assert_eq!(opts.aspect, Aspect::Portrait9x16);
    assert_eq!(opts.fit, Fit::Pad);
    assert_eq!((opts.fps, opts.max_height), (Rate::whole(30), 720));
    assert_eq!(opts.segment_seconds, 0.0);
    assert_eq!(opts.validate(), Ok(()));
    for bad in [
        r#"{"fps":"fast"}"#,
        r#"{"fps":0}"#,
        r#"{"something_new":[1,2]}"#,
        r#"{"segmentSeconds":5}"#,
        r#"{"aspect":"21:9"}"#,
        r#"{"fit":"stretch"}"#,
        r#"{"segment_seconds":"twenty"}"#,
        r#"{"background":1}"#,
    ] {
        assert!(serde_json::from_str::<IdrlOptions>(bad).is_err(), "{bad}");
    }
    // Times and rates are read as people type them.
    let typed: IdrlOptions = serde_json::from_str(
        r#"{"segment_seconds":"00:01:30","bumper_seconds":"0:02.5","fps":"30000/1001"}"#,
    )
    .unwrap();
    assert_eq!((typed.segment_seconds, typed.bumper_seconds), (90.0, 2.5));
    assert_eq!(typed.fps, Rate::fraction(30000, 1001));
    assert_eq!(typed.validate(), Ok(()));
    let typed: IdrlOptions = serde_json::from_str(r#"{"fps":29.97}"#).unwrap();
    assert_eq!(typed.fps, Rate::fraction(30000, 1001));
    // Resolved options echo back with the API's spelling.
    let echoed = serde_json::to_value(IdrlOptions::default()).unwrap();
    assert_eq!(echoed["aspect"], "16:9");
    assert_eq!(echoed["fit"], "crop");
    assert_eq!(echoed["segment_seconds"], serde_json::json!(20));
    let half = IdrlOptions {
        segment_seconds: 12.5,
        ..IdrlOptions::default()
    };
    let echoed = serde_json::to_value(&half).unwrap();
    assert_eq!(echoed["segment_seconds"], serde_json::json!(12.5));
    let back: IdrlOptions = serde_json::from_value(echoed).unwrap();
    assert_eq!(back, half);
}

#[test]
fn option_errors_name_the_option() {
    let d = IdrlOptions::default;
    let cases: Vec<(IdrlOptions, &str)> = vec![
        (
            IdrlOptions {
                segment_seconds: 0.5,
                ..d()
            },
            "segment_seconds",
        ),
        (
            IdrlOptions {
                segment_seconds: 3601.0,
                ..d()
            },
            "segment_seconds",
        ),
        (
            IdrlOptions {
                segment_seconds: -1.0,
                ..d()
            },
            "segment_seconds",
        ),
        (
            IdrlOptions {
                segment_seconds: f64::INFINITY,
                ..d()
            },
            "segment_seconds",
        ),
        (
            IdrlOptions {
                bumper_seconds: 10.5,
                ..d()
            },
            "bumper_seconds",
        ),
        (
            IdrlOptions {
                bumper_seconds: -0.1,
                ..d()
            },
            "bumper_seconds",
        ),
        (
            IdrlOptions {
                bumper_seconds: f64::NAN,
                ..d()
            },
            "bumper_seconds",
        ),
        (
            IdrlOptions {
                fps: Rate::whole(0),
                ..d()
            },
            "fps",
        ),
        (
            IdrlOptions {
                fps: Rate::whole(61),
                ..d()
            },
            "fps",
        ),
        (
            IdrlOptions {
                max_height: 143,
                ..d()
            },
            "max_height",
        ),
        (
            IdrlOptions {
                max_height: 4321,
                ..d()
            },
            "max_height",
        ),
        (
            IdrlOptions {
                background: "".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "Black".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "notacolour".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "random".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "#12345".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "#1234567".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "#12345g".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "0x123456".into(),
                ..d()
            },
            "background",
        ),
        (
            IdrlOptions {
                background: "black@0.5".into(),
                ..d()
            },
            "background",
        ),
    ];
    for (opts, name) in cases {
        let err = opts.validate().unwrap_err();
        assert_eq!(err.option, name, "{opts:?}");
        assert!(err.to_string().contains(name));
        let perr = plan_idrl(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
        assert_eq!(perr.code(), "invalid_options");
    }
    for ok in [
        "black",
        "white",
        "navy",
        "lightgoldenrodyellow",
        "#000000",
        "#FFaa00",
    ] {
        let opts = IdrlOptions {
            background: ok.into(),
            ..d()
        };
        assert_eq!(opts.validate(), Ok(()), "{ok}");
    }
    for ok in [0.0, 1.0, 20.0, 3600.0] {
        assert_eq!(
            IdrlOptions {
                segment_seconds: ok,
                ..d()
            }
            .validate(),
            Ok(())
        );
    }
}

#[test]
fn background_cannot_inject_filter_syntax() {
    for evil in [
        "black:x=1[a];",
        "black,drawtext=text=hi",
        "black[v];movie=/etc/passwd",
        "black'",
        "black;",
        "#000000;x",
        "red\n",
        " black",
    ] {
        let opts = IdrlOptions {
            background: evil.into(),
            ..IdrlOptions::default()
        };
        let err = opts.validate().unwrap_err();
        assert_eq!(err.option, "background", "{evil:?}");
        assert!(plan_idrl(&fixture("landscape"), &opts, &paths(), "x").is_err());
    }
}

#[test]
fn encode_settings_are_shared() {
    let fast = EncodeSettings {
        preset: "ultrafast".into(),
        crf: 30,
        audio_bitrate_kbps: 96,
    };
    let plan = plan_idrl_with(
        &fixture("landscape"),
        &IdrlOptions::default(),
        &paths(),
        "b",
        &fast,
    )
    .unwrap();
    let argv = &plan.runs[0].argv;
    assert_eq!(arg_after(argv, "-preset"), "ultrafast");
    assert_eq!(arg_after(argv, "-crf"), "30");
    assert_eq!(arg_after(argv, "-b:a"), "96k");
}
