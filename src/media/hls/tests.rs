use super::*;
use crate::media::probe::parse_ffprobe;

fn fixture(name: &str) -> MediaInfo {
    let path = format!("{}/src/media/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    parse_ffprobe(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn ladder_never_goes_above_the_source() {
    let d = HlsOptions::default();
    let h = |v: &[Rung]| v.iter().map(|r| r.height).collect::<Vec<_>>();
    assert_eq!(h(&ladder(1080, &d)), [360, 480, 720, 1080]);
    assert_eq!(h(&ladder(720, &d)), [360, 480, 720]);
    assert_eq!(h(&ladder(719, &d)), [360, 480]);
    assert_eq!(h(&ladder(180, &d)), [180]);
    assert_eq!(h(&ladder(181, &d)), [180]);
    let only = HlsOptions {
        heights: Some(vec![360, 1080]),
        ..d
    };
    assert_eq!(h(&ladder(720, &only)), [360]);
}

#[test]
fn options_are_validated_by_name() {
    let bad = HlsOptions {
        segment_seconds: 1.0,
        ..HlsOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().option, "segment_seconds");
    let bad = HlsOptions {
        heights: Some(vec![999]),
        ..HlsOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().option, "heights");
    let bad = HlsOptions {
        heights: Some(vec![]),
        ..HlsOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().option, "heights");
}

#[test]
fn one_run_maps_every_rung_with_audio_and_safe_input() {
    let info = fixture("landscape_1080p30.json");
    let paths = HlsPaths {
        input: "/s/input".into(),
        out_dir: "/s/out".into(),
    };
    let (run, rungs) = plan_hls(
        &info,
        &HlsOptions::default(),
        &paths,
        &EncodeSettings::default(),
    )
    .unwrap();
    assert_eq!(rungs.len(), 4);
    let a = run.argv.join(" ");
    assert!(
        a.starts_with(
            "-nostdin -hide_banner -loglevel error -y -protocol_whitelist file -format_whitelist "
        ),
        "{a}"
    );
    assert!(a.contains("-i file:/s/input"), "{a}");
    assert!(a.contains("split=4[s0][s1][s2][s3]"), "{a}");
    assert!(
        a.contains("[s3]scale=-2:1080,setsar=1,format=yuv420p[v3]"),
        "{a}"
    );
    assert!(
        a.contains("-var_stream_map v:0,a:0 v:1,a:1 v:2,a:2 v:3,a:3"),
        "{a}"
    );
    assert!(
        a.contains("-b:v:3 5000k -maxrate:v:3 5350k -bufsize:v:3 7500k"),
        "{a}"
    );
    assert!(
        a.contains("-force_key_frames expr:gte(t,n_forced*6)"),
        "{a}"
    );
    assert!(
        a.ends_with("-progress pipe:1 -nostats /s/out/stream_%v.m3u8"),
        "{a}"
    );
    assert_eq!(run.output_name, "master.m3u8");
}

#[test]
fn silent_input_maps_video_only() {
    let info = fixture("no_audio_720p.json");
    let paths = HlsPaths {
        input: "/s/input".into(),
        out_dir: "/s/out".into(),
    };
    let (run, rungs) = plan_hls(
        &info,
        &HlsOptions::default(),
        &paths,
        &EncodeSettings::default(),
    )
    .unwrap();
    assert_eq!(rungs.len(), 3);
    let a = run.argv.join(" ");
    assert!(a.contains("-var_stream_map v:0 v:1 v:2"), "{a}");
    assert!(!a.contains("-c:a"), "{a}");
}

#[test]
fn audio_only_input_is_refused() {
    let info = fixture("audio_only.json");
    let paths = HlsPaths {
        input: "/s/input".into(),
        out_dir: "/s/out".into(),
    };
    let e = plan_hls(
        &info,
        &HlsOptions::default(),
        &paths,
        &EncodeSettings::default(),
    );
    assert_eq!(e.unwrap_err().code(), "no_video_stream");
}
