use super::super::testutil::fixture;
use super::*;

/// The run and rungs for a fixture, with the default options and encode settings.
fn run_of(name: &str) -> Result<(PlannedRun, Vec<Rung>), PlanError> {
    let paths = Paths {
        input: "/s/input".into(),
        out_dir: "/s/out".into(),
        logo: None,
    };
    ladder_run(
        &fixture(name),
        &HlsOptions::default(),
        &paths,
        &EncodeSettings::default(),
    )
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
    let (run, rungs) = run_of("landscape").unwrap();
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
    let (run, rungs) = run_of("no_audio").unwrap();
    assert_eq!(rungs.len(), 3);
    let a = run.argv.join(" ");
    assert!(a.contains("-var_stream_map v:0 v:1 v:2"), "{a}");
    assert!(!a.contains("-c:a"), "{a}");
}

#[test]
fn audio_only_input_is_refused() {
    let e = run_of("audio_only");
    assert_eq!(e.unwrap_err().code(), "no_video_stream");
}

#[test]
fn plan_reports_the_ladder() {
    let paths = Paths {
        input: "/s/input".into(),
        out_dir: "/s/out".into(),
        logo: None,
    };
    let plan = plan_hls(&fixture("no_audio"), &HlsOptions::default(), &paths, "x").unwrap();
    let (run, _) = run_of("no_audio").unwrap();
    assert_eq!(plan.runs, [run]);
    assert_eq!(
        plan.result,
        Some(serde_json::json!({"master": "master.m3u8", "ladder": [
            {"height": 360, "video_kbps": 800},
            {"height": 480, "video_kbps": 1400},
            {"height": 720, "video_kbps": 2800},
        ]}))
    );
}
