use super::*;

const LANDSCAPE: &[u8] = include_bytes!("../fixtures/landscape_1080p30.json");
const PORTRAIT: &[u8] = include_bytes!("../fixtures/portrait_1080x1920.json");
const SD: &[u8] = include_bytes!("../fixtures/sd_640x480.json");
const NO_AUDIO: &[u8] = include_bytes!("../fixtures/no_audio_720p.json");
const LONG: &[u8] = include_bytes!("../fixtures/long_45s.json");
const CLIP_20_5: &[u8] = include_bytes!("../fixtures/clip_20_5s.json");
const ROTATED: &[u8] = include_bytes!("../fixtures/rotated_phone.json");
const AUDIO_ONLY: &[u8] = include_bytes!("../fixtures/audio_only.json");

fn parse(json: &[u8]) -> MediaInfo {
    parse_ffprobe(json).unwrap()
}

#[test]
fn args_are_safe_and_end_with_file_url() {
    let args = ffprobe_args(Path::new("/scratch/in put.mp4"));
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    let i = args.iter().position(|a| *a == "-i").unwrap();
    assert_eq!(args[i + 1], "file:/scratch/in put.mp4");
    assert_eq!(i + 2, args.len());
    let before = &args[..i];
    let pw = before
        .iter()
        .position(|a| *a == "-protocol_whitelist")
        .unwrap();
    assert_eq!(before[pw + 1], "file");
    let fw = before
        .iter()
        .position(|a| *a == "-format_whitelist")
        .unwrap();
    assert_eq!(before[fw + 1], super::super::INPUT_FORMAT_WHITELIST);
    for want in ["-show_format", "-show_streams", "json"] {
        assert!(before.contains(&want));
    }
}

#[test]
fn landscape_1080p_with_audio() {
    let info = parse(LANDSCAPE);
    assert_eq!(info.format_name, "mov,mp4,m4a,3gp,3g2,mj2");
    assert!((info.duration - 2.0).abs() < 0.05, "{}", info.duration);
    assert_eq!(info.stream_count, 2);
    assert!(info.size.unwrap() > 0);
    let v = info.video.unwrap();
    assert_eq!((v.index, v.codec.as_str()), (0, "h264"));
    assert_eq!((v.width, v.height), (1920, 1080));
    assert_eq!((v.display_width(), v.display_height()), (1920, 1080));
    assert_eq!(v.fps, Some(30.0));
    assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!(v.rotation, 0);
    let a = info.audio.unwrap();
    assert_eq!(
        a,
        AudioStream {
            index: 1,
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48000
        }
    );
}

#[test]
fn portrait_and_sd() {
    let v = parse(PORTRAIT).video.unwrap();
    assert_eq!((v.display_width(), v.display_height()), (1080, 1920));
    let info = parse(SD);
    let v = info.video.unwrap();
    assert_eq!((v.width, v.height), (640, 480));
    assert_eq!(v.fps, Some(25.0));
    assert_eq!(info.audio.unwrap().sample_rate, 44100);
}

#[test]
fn no_audio() {
    let info = parse(NO_AUDIO);
    assert!(info.audio.is_none());
    assert_eq!(info.stream_count, 1);
    let v = info.video.unwrap();
    assert_eq!((v.width, v.height, v.fps), (1280, 720, Some(24.0)));
}

#[test]
fn durations() {
    assert!((parse(LONG).duration - 45.0).abs() < 0.05);
    assert!((parse(CLIP_20_5).duration - 20.5).abs() < 0.05);
    let v = parse(LONG).video.unwrap();
    assert_eq!((v.width, v.height), (64, 36));
}

#[test]
fn rotated_phone_clip_swaps_display_size() {
    let v = parse(ROTATED).video.unwrap();
    assert_eq!((v.width, v.height), (320, 180));
    // Display matrix says 90° counter-clockwise = 270° clockwise.
    assert_eq!(v.rotation, 270);
    assert!(v.is_quarter_turn());
    assert_eq!((v.display_width(), v.display_height()), (180, 320));
}

#[test]
fn legacy_rotate_tag() {
    let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264",
        "width":1920,"height":1080,"avg_frame_rate":"30000/1001","tags":{"rotate":"90"}}],
        "format":{"format_name":"mov,mp4","duration":"3.5"}}"#;
    let info = parse(json);
    let v = info.video.unwrap();
    assert_eq!(v.rotation, 90);
    assert_eq!((v.display_width(), v.display_height()), (1080, 1920));
    assert!((v.fps.unwrap() - 29.97).abs() < 0.01);
    assert_eq!(info.size, None);
}

#[test]
fn audio_only_parses_but_has_no_video() {
    let info = parse(AUDIO_ONLY);
    assert!(info.video.is_none());
    assert_eq!(info.audio.as_ref().unwrap().channels, 1);
    assert_eq!(validate(&info, &ProbeLimits::default()), Ok(()));
    let err = info.require_video().unwrap_err();
    assert_eq!(err.code(), "no_video_stream");
}

#[test]
fn cover_art_is_not_video() {
    let json = br#"{"streams":[
        {"index":0,"codec_type":"audio","codec_name":"mp3","channels":2,"sample_rate":"44100"},
        {"index":1,"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,
         "disposition":{"attached_pic":1}}],
        "format":{"format_name":"mp3","duration":"180.0","size":"4000000"}}"#;
    let info = parse(json);
    assert!(info.video.is_none());
    assert_eq!(info.stream_count, 2);
}

#[test]
fn duration_falls_back_to_longest_stream() {
    let json = br#"{"streams":[
        {"index":0,"codec_type":"video","codec_name":"vp9","width":640,"height":360,"duration":"9.5"},
        {"index":1,"codec_type":"audio","codec_name":"opus","channels":2,"sample_rate":"48000","duration":"10.02"}],
        "format":{"format_name":"matroska,webm","duration":"N/A"}}"#;
    assert!((parse(json).duration - 10.02).abs() < 1e-9);
}

#[test]
fn non_media_is_invalid_media() {
    // What ffprobe prints on stdout for a file it cannot open.
    for json in [
        &b"{\n\n}\n"[..],
        b"",
        b"not json",
        b"[]",
        br#"{"format":{}}"#,
    ] {
        let err = parse_ffprobe(json).unwrap_err();
        assert_eq!(err.code(), "invalid_media", "{json:?}");
    }
    // A format without any duration (e.g. a single image).
    let json = br#"{"streams":[{"index":0,"codec_type":"video","width":10,"height":10}],
        "format":{"format_name":"png_pipe"}}"#;
    assert_eq!(parse_ffprobe(json).unwrap_err().code(), "invalid_media");
    // Wrong types anywhere we read are invalid media, not a panic.
    let json = br#"{"streams":[{"index":"zero"}],"format":{"format_name":"x","duration":"1"}}"#;
    assert_eq!(parse_ffprobe(json).unwrap_err().code(), "invalid_media");
}

#[test]
fn every_fixture_passes_default_limits() {
    for json in [
        LANDSCAPE, PORTRAIT, SD, NO_AUDIO, LONG, CLIP_20_5, ROTATED, AUDIO_ONLY,
    ] {
        let info = parse(json);
        assert_eq!(validate(&info, &ProbeLimits::default()), Ok(()));
        // MediaInfo round-trips through serde (it is stored with tasks).
        let back: MediaInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
        assert_eq!(back, info);
    }
}

#[test]
fn limits_have_distinct_codes() {
    let info = parse(LANDSCAPE);
    let base = ProbeLimits::default();
    let cases = [
        (
            ProbeLimits {
                max_duration_s: 1.0,
                ..base.clone()
            },
            "media_too_long",
        ),
        (
            ProbeLimits {
                max_pixels: 1280 * 720,
                ..base.clone()
            },
            "media_too_large_frame",
        ),
        (
            ProbeLimits {
                max_streams: 1,
                ..base.clone()
            },
            "too_many_streams",
        ),
        (
            ProbeLimits {
                max_file_size: 1000,
                ..base.clone()
            },
            "file_too_large",
        ),
    ];
    for (limits, code) in cases {
        assert_eq!(validate(&info, &limits).unwrap_err().code(), code);
    }
    let mut broken = info.clone();
    broken.duration = f64::NAN;
    assert_eq!(
        validate(&broken, &base).unwrap_err().code(),
        "invalid_media"
    );
}
