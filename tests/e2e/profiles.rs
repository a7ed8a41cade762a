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

/// What a file named with this extension must be.
enum Truth {
    /// ffprobe's container (one of the names of `format_name`).
    Container(&'static str),
    /// The codec of the one stream of an image.
    Image(&'static str),
    /// The first bytes.
    Magic(&'static [u8]),
}

/// The `Content-Type` and the real content an output named `name` must have.
fn truth_of(name: &str) -> (&'static str, Truth) {
    use Truth::*;
    let ext = name.rsplit('.').next().unwrap();
    match ext {
        "mp4" => ("video/mp4", Container("mp4")),
        "mov" => ("video/quicktime", Container("mov")),
        "m4a" => ("audio/mp4", Container("m4a")),
        "webm" => ("video/webm", Container("webm")),
        "mkv" => ("video/x-matroska", Container("matroska")),
        "avi" => ("video/x-msvideo", Container("avi")),
        "mpg" => ("video/mpeg", Container("mpeg")),
        "wmv" => ("video/x-ms-wmv", Container("asf")),
        "wma" => ("audio/x-ms-wma", Container("asf")),
        "gif" => ("image/gif", Container("gif")),
        "mp3" => ("audio/mpeg", Container("mp3")),
        "ogg" | "opus" => ("audio/ogg", Container("ogg")),
        "wav" => ("audio/wav", Container("wav")),
        "flac" => ("audio/flac", Container("flac")),
        "ts" => ("video/mp2t", Container("mpegts")),
        "jpg" => ("image/jpeg", Image("mjpeg")),
        "png" => ("image/png", Image("png")),
        "webp" => ("image/webp", Image("webp")),
        "m3u8" => ("application/vnd.apple.mpegurl", Magic(b"#EXTM3U")),
        "zip" => ("application/zip", Magic(b"PK\x03\x04")),
        "7z" => ("application/x-7z-compressed", Magic(b"7z\xbc\xaf\x27\x1c")),
        "gz" => ("application/gzip", Magic(b"\x1f\x8b")),
        "bz2" => ("application/x-bzip2", Magic(b"BZh")),
        other => panic!("no expectation for .{other} ({name})"),
    }
}

/// Download every output of a finished task and check that each is what its name and its
/// `Content-Type` say: ffprobe's container (WebM also by its codecs, audio names without
/// video), an image's codec, or an archive's or playlist's first bytes.
async fn check_outputs(app: &TestApp, t: &str, v: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let outputs = v["outputs"].as_array().unwrap();
    assert!(!outputs.is_empty(), "{v}");
    for o in outputs {
        let name = o["name"].as_str().unwrap();
        let r = app.get(o["url"].as_str().unwrap(), t).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let served = r.headers()["content-type"].to_str().unwrap().to_string();
        let bytes = r.bytes().await.unwrap();
        let (content_type, truth) = truth_of(name);
        assert_eq!(served, content_type, "Content-Type of {name}");
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        match truth {
            Truth::Magic(magic) => assert!(bytes.starts_with(magic), "{name} is no such file"),
            Truth::Image(codec) => {
                let p = probe(&path);
                assert_eq!(p["streams"][0]["codec_name"], codec, "{name}: {p}");
            }
            Truth::Container(container) => {
                let p = probe(&path);
                let format = p["format"]["format_name"].as_str().unwrap();
                assert!(
                    format.split(',').any(|n| n == container),
                    "{name} is a {format} file, not {container}"
                );
                let codecs: Vec<(&str, &str)> = p["streams"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["codec_type"].as_str().unwrap_or(""),
                            s["codec_name"].as_str().unwrap_or(""),
                        )
                    })
                    .collect();
                if name.ends_with(".webm") {
                    // ffprobe names Matroska and WebM alike; WebM allows only these.
                    let webm = ["vp8", "vp9", "av1", "opus", "vorbis"];
                    assert!(
                        codecs.iter().all(|(_, c)| webm.contains(c)),
                        "{name}: {codecs:?}"
                    );
                }
                if content_type.starts_with("audio/") {
                    assert!(
                        codecs.iter().all(|(k, _)| *k == "audio"),
                        "{name}: {codecs:?}"
                    );
                }
            }
        }
    }
}

/// A zip of a few small files, for the archive profile.
fn small_zip() -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [
        ("a.txt", b"alpha\n".repeat(50)),
        ("d/b.bin", vec![7u8; 2000]),
    ] {
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Every output of every profile is what its name and its `Content-Type` say. Among them,
/// compress to another format when the re-encode is larger than the input: the input
/// (QuickTime) is not handed back as `tight.webm`; the WebM re-encode is kept, and the
/// result says so. Without a format (or to one of the input's own container family), the
/// larger re-encode gives way to the input.
#[tokio::test]
async fn every_output_is_what_its_name_and_content_type_say() {
    let app = spawn_app().await;
    let t = app.user("tess").await;
    let tiny = std::fs::read(clip_tiny()).unwrap();
    let tight = std::fs::read(clip_tight()).unwrap();
    let mut tasks: Vec<(String, String)> = vec![];
    let add = |label: String, r: reqwest::Response| async move {
        assert_eq!(r.status(), 201, "{label}");
        (label, id_of(r).await)
    };
    let media: Vec<(String, &str, String)> = [
        ("idrl", None),
        ("thumbnail", Some(r#"{"count": 2, "format": "jpg"}"#)),
        ("thumbnail", Some(r#"{"count": 2, "format": "png"}"#)),
        ("thumbnail", Some(r#"{"count": 2, "format": "webp"}"#)),
        ("hls", Some(r#"{"segment_seconds": 2}"#)),
        ("compress", Some(r#"{"quality": "low"}"#)),
        ("compress", Some(r#"{"quality": "low", "format": "mkv"}"#)),
    ]
    .into_iter()
    .map(|(p, o)| (format!("{p} {o:?}"), p, o.unwrap_or("{}").to_string()))
    .chain(
        [
            "mp4", "webm", "avi", "mpeg", "wmv", "mkv", "mov", "gif", "mp3", "m4a", "ogg", "opus",
            "wav", "flac", "wma",
        ]
        .into_iter()
        .map(|f| {
            (
                format!("convert {f}"),
                "convert",
                format!(r#"{{"format": "{f}"}}"#),
            )
        }),
    )
    .collect();
    for (label, profile, options) in &media {
        let extra = [("profile", *profile), ("options", options.as_str())];
        let r = app.upload(&t, "tiny.mp4", tiny.clone(), &extra).await;
        tasks.push(add(label.clone(), r).await);
    }
    let mut larger = vec![];
    for options in [
        r#"{"quality": "high", "format": "webm"}"#,
        r#"{"quality": "high"}"#,
        r#"{"quality": "high", "format": "mov"}"#,
    ] {
        let extra = [("profile", "compress"), ("options", options)];
        let r = app.upload(&t, "tight.mp4", tight.clone(), &extra).await;
        let (label, id) = add(format!("tight {options}"), r).await;
        larger.push(id.clone());
        tasks.push((label, id));
    }
    for to in ["zip", "7z", "tar.gz", "tar.bz2"] {
        let options = format!(r#"{{"format": "{to}"}}"#);
        let extra = [("profile", "archive"), ("options", options.as_str())];
        let r = app.upload(&t, "files.zip", small_zip(), &extra).await;
        tasks.push(add(format!("archive {to}"), r).await);
    }
    app.drain().await;
    for (label, id) in &tasks {
        let v = app.task(&t, id).await;
        assert_eq!(v["status"], "succeeded", "{label}: {v}");
        check_outputs(&app, &t, &v).await;
    }

    // The larger re-encodes, and which file each kept.
    let tight_size = tight.len() as u64;
    let v = app.task(&t, &larger[0]).await;
    assert_eq!(v["outputs"][0]["name"], "tight.webm", "{v}");
    assert_eq!(v["result"]["kept"], "compressed", "{v}");
    assert!(
        v["result"]["output_size"].as_u64().unwrap() >= tight_size,
        "{v}"
    );
    assert!(
        v["result"]["message"]
            .as_str()
            .unwrap()
            .contains("not a webm file"),
        "{v}"
    );
    for (id, name) in [(&larger[1], "tight.mp4"), (&larger[2], "tight.mov")] {
        let v = app.task(&t, id).await;
        assert_eq!(v["outputs"][0]["name"], name, "{v}");
        assert_eq!(v["result"]["kept"], "input", "{v}");
        assert_eq!(v["outputs"][0]["size"], tight_size, "{v}");
    }
}
