//! convert, compress, thumbnail and hls through the API and the queue, every output probed.

use reelforge_testkit::app::*;
use reelforge_testkit::clips::*;
use serde_json::{Value, json};

async fn finished(app: &TestApp, t: &str, id: &str) -> Value {
    app.drain().await;
    let v: Value = app
        .get(&format!("/api/tasks/{id}"), t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    v
}

async fn submit(app: &TestApp, t: &str, extra: &[(&str, &str)]) -> String {
    let r = app
        .upload(t, "clip.mp4", std::fs::read(clip_short()).unwrap(), extra)
        .await;
    assert_eq!(r.status(), 201);
    id_of(r).await
}

/// Download an output to a file and probe it.
async fn fetch(app: &TestApp, t: &str, v: &Value, i: usize) -> Value {
    let o = &v["outputs"][i];
    let bytes = app
        .get(o["url"].as_str().unwrap(), t)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, o["size"].as_u64().unwrap());
    let path = app
        .data_dir
        .path()
        .join(format!("dl-{}", o["name"].as_str().unwrap()));
    std::fs::write(&path, &bytes).unwrap();
    probe(&path)
}

fn duration(p: &Value) -> f64 {
    p["format"]["duration"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn convert_by_format_new_format_and_remux() {
    let app = spawn_app().await;
    let t = app.user("cleo").await;
    // The legacy newFormat field on the upload implies convert.
    let webm = submit(&app, &t, &[("newFormat", "webm")]).await;
    let mp3 = submit(
        &app,
        &t,
        &[
            ("profile", "convert"),
            ("options", r#"{"format": "mp3", "audio_bitrate": "96k"}"#),
        ],
    )
    .await;
    let mkv = submit(
        &app,
        &t,
        &[("profile", "convert"), ("options", r#"{"format": "mkv"}"#)],
    )
    .await;
    let trimmed = submit(
        &app,
        &t,
        &[
            ("profile", "convert"),
            (
                "options",
                r#"{"format": "mp4", "start": 1, "end": 4, "max_height": 144}"#,
            ),
        ],
    )
    .await;

    let v = finished(&app, &t, &webm).await;
    assert_eq!(v["profile"], "convert");
    assert_eq!(v["options"]["format"], "webm");
    assert_eq!(v["outputs"][0]["name"], "clip.webm");
    let p = fetch(&app, &t, &v, 0).await;
    assert!(
        p["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("webm")
    );
    let (vs, a) = streams(&p);
    assert_eq!(
        (vs["codec_name"].as_str(), a["codec_name"].as_str()),
        (Some("vp9"), Some("opus"))
    );
    assert!((duration(&p) - 6.0).abs() <= 0.2);

    let v = finished(&app, &t, &mp3).await;
    let p = fetch(&app, &t, &v, 0).await;
    assert_eq!(p["streams"].as_array().unwrap().len(), 1);
    assert_eq!(p["streams"][0]["codec_name"], "mp3");
    assert!((duration(&p) - 6.0).abs() <= 0.2);

    let v = finished(&app, &t, &mkv).await;
    assert!(
        v["commands"][0].as_str().unwrap().contains("-c copy"),
        "{v}"
    );
    let p = fetch(&app, &t, &v, 0).await;
    assert!(
        p["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("matroska")
    );
    let (vs, a) = streams(&p);
    assert_eq!(
        (vs["codec_name"].as_str(), a["codec_name"].as_str()),
        (Some("h264"), Some("aac"))
    );

    let v = finished(&app, &t, &trimmed).await;
    let p = fetch(&app, &t, &v, 0).await;
    let (vs, _) = streams(&p);
    assert_eq!(
        (vs["width"].as_u64(), vs["height"].as_u64()),
        (Some(256), Some(144))
    );
    assert!((duration(&p) - 3.0).abs() <= 0.2, "{}", duration(&p));
}

#[tokio::test]
async fn compress_records_sizes_and_never_returns_something_bigger() {
    let app = spawn_app().await;
    let t = app.user("dora").await;
    let id = submit(
        &app,
        &t,
        &[
            ("profile", "compress"),
            ("options", r#"{"quality": "low"}"#),
        ],
    )
    .await;
    let v = finished(&app, &t, &id).await;
    let r = &v["result"];
    let input = std::fs::metadata(clip_short()).unwrap().len();
    assert_eq!(r["input_size"], input);
    let out = r["output_size"].as_u64().unwrap();
    assert!(out <= input, "{r}");
    assert_eq!(v["outputs"][0]["size"], out);
    assert!((r["ratio"].as_f64().unwrap() - out as f64 / input as f64).abs() < 1e-9);
    // A tiny, already tight file cannot shrink at high quality: the input is kept.
    let dir = tempfile::tempdir().unwrap();
    let tight = dir.path().join("tight.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=160x90:r=10",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-crf",
            "51",
            "-preset",
            "veryslow",
        ])
        .arg(&tight)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let r = app
        .upload(
            &t,
            "tight.mp4",
            std::fs::read(&tight).unwrap(),
            &[
                ("profile", "compress"),
                ("options", r#"{"quality": "high"}"#),
            ],
        )
        .await;
    let id = id_of(r).await;
    let v = finished(&app, &t, &id).await;
    assert_eq!(v["result"]["kept"], "input", "{v}");
    assert_eq!(
        v["outputs"][0]["size"],
        std::fs::metadata(&tight).unwrap().len()
    );
}

#[tokio::test]
async fn thumbnails_and_hls() {
    let app = spawn_app().await;
    let t = app.user("eve").await;
    let thumbs = submit(
        &app,
        &t,
        &[
            ("profile", "thumbnail"),
            ("options", r#"{"count": 3, "format": "png", "width": 160}"#),
        ],
    )
    .await;
    let hls = submit(
        &app,
        &t,
        &[("profile", "hls"), ("options", r#"{"segment_seconds": 2}"#)],
    )
    .await;

    let v = finished(&app, &t, &thumbs).await;
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 3, "{v}");
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o["name"], format!("clip_thumb_{:03}.png", i + 1));
        assert_eq!(
            (o["width"].as_u64(), o["height"].as_u64()),
            (Some(160), Some(90)),
            "{o}"
        );
        let p = fetch(&app, &t, &v, i).await;
        assert_eq!(p["streams"][0]["codec_name"], "png");
    }

    let v = finished(&app, &t, &hls).await;
    // 270 lines: only the 180p-or-below rungs… the ladder starts at 360, so one rung at
    // the source height.
    assert_eq!(
        v["result"]["ladder"],
        json!([{"height": 270, "video_kbps": 600}]),
        "{v}"
    );
    let names: Vec<&str> = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"master.m3u8") && names.contains(&"stream_0.m3u8"),
        "{names:?}"
    );
    assert!(
        names.iter().filter(|n| n.ends_with(".ts")).count() >= 3,
        "{names:?}"
    );
    // The stored master playlist plays: ffprobe reads it from storage, with every segment.
    let master = app
        .stored_files()
        .into_iter()
        .find(|f| f.ends_with("master.m3u8"))
        .unwrap();
    let p = probe(&master);
    assert!((duration(&p) - 6.0).abs() <= 0.3, "{}", duration(&p));
    let (vs, a) = streams(&p);
    assert_eq!(
        (vs["codec_name"].as_str(), vs["height"].as_u64()),
        (Some("h264"), Some(270))
    );
    assert_eq!(a["codec_name"], "aac");
    let playlist = app
        .get(&format!("/api/tasks/{hls}/outputs/master.m3u8"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        playlist.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
}

#[tokio::test]
async fn audio_only_input_converts_to_audio_and_is_refused_for_video_profiles() {
    let app = spawn_app().await;
    let t = app.user("finn").await;
    let bytes = std::fs::read(audio_only_clip()).unwrap();
    let up = |extra: &'static [(&'static str, &'static str)]| {
        let (app, t, bytes) = (&app, &t, bytes.clone());
        async move {
            let r = app.upload(t, "song.m4a", bytes, extra).await;
            id_of(r).await
        }
    };
    let wav = up(&[("newFormat", "wav")]).await;
    let thumb = up(&[("profile", "thumbnail")]).await;
    let v = finished(&app, &t, &wav).await;
    assert_eq!(v["outputs"][0]["audio_codec"], "pcm_s16le");
    let v: Value = app.task(&t, &thumb).await;
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["code"], "no_video_stream");
}
