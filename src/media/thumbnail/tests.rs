use super::super::testutil::{arg_after, check_safety, fixture, has_flag, paths};
use super::*;

fn plan_of(name: &str, opts: &ThumbnailOptions) -> Plan {
    let plan = plan_thumbnails(&fixture(name), opts, &paths(), "My clip").unwrap();
    for run in &plan.runs {
        check_safety(&run.argv);
        assert_eq!(arg_after(&run.argv, "-frames:v"), "1");
        assert!(has_flag(&run.argv, "-an"));
    }
    plan
}

fn seek(argv: &[String]) -> Option<f64> {
    argv.iter()
        .position(|a| a == "-ss")
        .map(|i| argv[i + 1].parse().unwrap())
}

#[test]
fn evenly_spaced_times() {
    assert_eq!(thumbnail_times(10.0, 1), [5.0]);
    assert_eq!(thumbnail_times(10.0, 4), [2.0, 4.0, 6.0, 8.0]);
    let t = thumbnail_times(45.0, 100);
    assert_eq!(t.len(), 100);
    assert!(t[0] > 0.0 && t[99] < 45.0);
    assert!(t.windows(2).all(|w| w[1] > w[0]));
    assert!(thumbnail_times(0.0, 3).is_empty());
    assert!(thumbnail_times(f64::NAN, 3).is_empty());
}

#[test]
fn default_is_one_jpeg_from_the_middle() {
    let plan = plan_of("landscape", &ThumbnailOptions::default());
    assert_eq!((plan.width, plan.height), (1920, 1080));
    assert_eq!(plan.runs.len(), 1);
    let run = &plan.runs[0];
    assert_eq!(run.output_name, "My_clip_thumb_001.jpg");
    assert_eq!(
        run.output,
        std::path::PathBuf::from("/scratch/t1/out/My_clip_thumb_001.jpg")
    );
    assert!((run.expected_duration - 1.0 / 30.0).abs() < 1e-9);
    let i = run.argv.iter().position(|a| a == "-i").unwrap();
    assert_eq!(&run.argv[i - 2..i], ["-ss", "1"]);
    let tail: Vec<&str> = run.argv[i + 2..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "-map",
            "0:0",
            "-frames:v",
            "1",
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "-an",
            "-f",
            "image2pipe",
            "-progress",
            "pipe:1",
            "-nostats",
            "-y",
            "file:/scratch/t1/out/My_clip_thumb_001.jpg"
        ]
    );
}

#[test]
fn count_names_and_times() {
    let plan = plan_of(
        "long",
        &ThumbnailOptions {
            count: Some(4),
            format: ImageFormat::Png,
            ..ThumbnailOptions::default()
        },
    );
    let names: Vec<&str> = plan.runs.iter().map(|r| r.output_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "My_clip_thumb_001.png",
            "My_clip_thumb_002.png",
            "My_clip_thumb_003.png",
            "My_clip_thumb_004.png"
        ]
    );
    let times: Vec<f64> = plan.runs.iter().filter_map(|r| seek(&r.argv)).collect();
    assert_eq!(times, [9.0, 18.0, 27.0, 36.0]);
    for run in &plan.runs {
        assert_eq!(arg_after(&run.argv, "-c:v"), "png");
        assert_eq!(arg_after(&run.argv, "-f"), "image2pipe");
    }
}

#[test]
fn explicit_times() {
    let plan = plan_of(
        "landscape",
        &ThumbnailOptions {
            at: Some(vec![0.0, 1.5, 1.99]),
            format: ImageFormat::Webp,
            ..ThumbnailOptions::default()
        },
    );
    let times: Vec<Option<f64>> = plan.runs.iter().map(|r| seek(&r.argv)).collect();
    // t = 0 needs no seek; a time within the last frame is moved onto it.
    assert_eq!(times, [None, Some(1.5), Some(1.966667)]);
    let run = &plan.runs[1];
    assert_eq!(arg_after(&run.argv, "-c:v"), "libwebp");
    assert_eq!(arg_after(&run.argv, "-f"), "webp");
    assert_eq!(run.output_name, "My_clip_thumb_002.webp");
    let err = plan_thumbnails(
        &fixture("landscape"),
        &ThumbnailOptions {
            at: Some(vec![1.0, 2.0]),
            ..ThumbnailOptions::default()
        },
        &paths(),
        "x",
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    assert!(err.to_string().contains("options.at"), "{err}");
}

#[test]
fn width_scales_down_only() {
    let size = |name: &str, width: Option<u32>| {
        let plan = plan_of(
            name,
            &ThumbnailOptions {
                width,
                ..ThumbnailOptions::default()
            },
        );
        let argv = &plan.runs[0].argv;
        let vf = argv
            .iter()
            .position(|a| a == "-vf")
            .map(|i| argv[i + 1].clone());
        ((plan.width, plan.height), vf)
    };
    assert_eq!(
        size("landscape", Some(320)),
        ((320, 180), Some("scale=320:180".into()))
    );
    assert_eq!(size("sd", Some(4000)), ((640, 480), None));
    // Display orientation.
    assert_eq!(size("rotated", None), ((180, 320), None));
    assert_eq!(
        size("rotated", Some(90)),
        ((90, 160), Some("scale=90:160".into()))
    );
}

#[test]
fn errors() {
    let err = plan_thumbnails(
        &fixture("audio_only"),
        &ThumbnailOptions::default(),
        &paths(),
        "x",
    )
    .unwrap_err();
    assert_eq!(err.code(), "no_video_stream");
    let d = ThumbnailOptions::default;
    let cases: Vec<(ThumbnailOptions, &str)> = vec![
        (
            ThumbnailOptions {
                count: Some(0),
                ..d()
            },
            "count",
        ),
        (
            ThumbnailOptions {
                count: Some(101),
                ..d()
            },
            "count",
        ),
        (
            ThumbnailOptions {
                count: Some(2),
                at: Some(vec![1.0]),
                ..d()
            },
            "at",
        ),
        (
            ThumbnailOptions {
                at: Some(vec![]),
                ..d()
            },
            "at",
        ),
        (
            ThumbnailOptions {
                at: Some(vec![0.5; 101]),
                ..d()
            },
            "at",
        ),
        (
            ThumbnailOptions {
                at: Some(vec![1.0, -0.5]),
                ..d()
            },
            "at",
        ),
        (
            ThumbnailOptions {
                at: Some(vec![f64::NAN]),
                ..d()
            },
            "at",
        ),
        (
            ThumbnailOptions {
                width: Some(8),
                ..d()
            },
            "width",
        ),
        (
            ThumbnailOptions {
                width: Some(7681),
                ..d()
            },
            "width",
        ),
    ];
    for (opts, name) in cases {
        let err = opts.validate().unwrap_err();
        assert_eq!(err.option, name, "{opts:?}");
        let perr = plan_thumbnails(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
        assert_eq!(perr.code(), "invalid_options");
    }
}

#[test]
fn options_deserialize_and_refuse_unknown_fields() {
    let opts: ThumbnailOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(opts, ThumbnailOptions::default());
    assert_eq!(opts.format, ImageFormat::Jpg);
    let opts: ThumbnailOptions =
        serde_json::from_str(r#"{"count":3,"format":"webp","width":320}"#).unwrap();
    assert_eq!(opts.count, Some(3));
    assert_eq!(opts.format, ImageFormat::Webp);
    assert_eq!(opts.width, Some(320));
    let opts: ThumbnailOptions = serde_json::from_str(r#"{"at":[1,2.5]}"#).unwrap();
    assert_eq!(opts.at, Some(vec![1.0, 2.5]));
    assert_eq!(
        serde_json::to_value(&opts).unwrap(),
        serde_json::json!({"at": [1, 2.5], "format": "jpg"})
    );
    for bad in [
        r#"{"zzz":true}"#,
        r#"{"format":"bmp"}"#,
        r#"{"count":-1}"#,
        r#"{"at":1}"#,
        r#"{"width":"320"}"#,
    ] {
        assert!(
            serde_json::from_str::<ThumbnailOptions>(bad).is_err(),
            "{bad}"
        );
    }
    for f in [ImageFormat::Jpg, ImageFormat::Png, ImageFormat::Webp] {
        assert_eq!(
            serde_json::to_value(f).unwrap(),
            serde_json::json!(f.extension())
        );
        assert!(f.demuxer().ends_with("_pipe"));
    }
}
