//! Hostile and broken inputs: each ends in a failed task with a specific code,
//! the worker lives on, and — shown by tracing every ffmpeg/ffprobe run with strace — no
//! file outside the run's scratch folder is opened and no network connection is attempted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use reelforge_testkit::app::*;
use reelforge_testkit::clips::*;
use serde_json::{Value, json};

/// `ffmpeg`/`ffprobe` stand-ins that run the real program under strace, one log per run.
fn traced_programs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let logs = dir.join("traces");
    std::fs::create_dir_all(&logs).unwrap();
    let mut out = vec![];
    for program in ["ffmpeg", "ffprobe"] {
        let path = dir.join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec strace -f -qq -e trace=open,openat,openat2,connect,socket \
                 -o '{}/'$$.{program}.log {program} \"$@\"\n",
                logs.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        out.push(path);
    }
    (out[0].clone(), out[1].clone(), logs)
}

/// Paths opened outside the allowed places, and any network socket or connect.
fn violations(logs: &Path, scratch: &Path) -> Vec<String> {
    let allowed = [
        "/lib",
        "/usr/",
        "/etc/ld.so",
        "/etc/gcrypt/",
        "/proc/",
        "/sys/",
        "/dev/",
    ];
    let mut bad = vec![];
    let mut runs = 0;
    for e in std::fs::read_dir(logs).unwrap().flatten() {
        runs += 1;
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines() {
            if line.contains("connect(") || line.contains("socket(AF_INET") {
                bad.push(line.to_string());
                continue;
            }
            let Some(start) = line.find("(\"").or_else(|| line.find(", \"")) else {
                continue;
            };
            let rest = &line[start..];
            let Some(q) = rest.find('"') else { continue };
            let path: String = rest[q + 1..].chars().take_while(|c| *c != '"').collect();
            let ok = path.starts_with(scratch.to_str().unwrap())
                || allowed.iter().any(|a| path.starts_with(a))
                || !path.starts_with('/');
            if !ok || path.contains("passwd") {
                bad.push(line.to_string());
            }
        }
    }
    assert!(runs > 0, "no traced run at all");
    bad
}

/// The first third of an MP4 whose index (moov) is at the end.
fn truncated_mp4() -> Vec<u8> {
    let whole = std::fs::read(clip_45s()).unwrap();
    let head = &whole[..4096.min(whole.len())];
    assert!(
        head.windows(4).position(|w| w == b"moov").is_none(),
        "moov must be at the end"
    );
    whole[..whole.len() / 3].to_vec()
}

/// An MJPEG AVI whose headers declare a `size`×`size` frame.
fn huge_frame_avi(size: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.avi");
    let ok = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=16x16:rate=5",
            "-t",
            "1",
            "-c:v",
            "mjpeg",
            "-f",
            "avi",
        ])
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut b = std::fs::read(&p).unwrap();
    let le = size.to_le_bytes();
    let be = (size as u16).to_be_bytes();
    let avih = b.windows(4).position(|w| w == b"avih").unwrap();
    b[avih + 40..avih + 44].copy_from_slice(&le);
    b[avih + 44..avih + 48].copy_from_slice(&le);
    let strf = b.windows(4).position(|w| w == b"strf").unwrap();
    b[strf + 12..strf + 16].copy_from_slice(&le);
    b[strf + 16..strf + 20].copy_from_slice(&le);
    let mut i = 0;
    while let Some(p) = b[i..].windows(2).position(|w| w == [0xff, 0xc0]) {
        let at = i + p;
        b[at + 5..at + 7].copy_from_slice(&be);
        b[at + 7..at + 9].copy_from_slice(&be);
        i = at + 2;
    }
    b
}

#[tokio::test]
async fn hostile_inputs_fail_cleanly_without_touching_anything_outside_scratch() {
    let tools = tempfile::tempdir().unwrap();
    let (ffmpeg, ffprobe, logs) = traced_programs(tools.path());
    // A loopback server the playlist points at: it must never be asked anything.
    let (server, hits) = serve_file(clip_45s()).await;
    // An empty body for the zero-byte case, by URL (uploads refuse empty files up front).
    let empty = tools.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let (empty_server, _) = serve_file(empty).await;
    let app = spawn_app_with(Options {
        ffmpeg: Some(ffmpeg),
        ffprobe: Some(ffprobe),
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("yuri").await;
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:///etc/passwd\n\
         #EXTINF:2,\n{server}/segment.ts\n#EXT-X-ENDLIST\n"
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("playlist.mp4", playlist.into_bytes(), "invalid_media"),
        (
            "concat.mp4",
            b"ffconcat version 1.0\nfile '/etc/passwd'\nfile 'http://127.0.0.1:9/x.ts'\n".to_vec(),
            "invalid_media",
        ),
        (
            "notes.mp4",
            b"just some text, certainly not a video\n".to_vec(),
            "invalid_media",
        ),
        ("truncated.mp4", truncated_mp4(), "invalid_media"),
        ("huge.avi", huge_frame_avi(16_000), "media_too_large_frame"),
        ("absurd.avi", huge_frame_avi(30_000), "invalid_media"),
        (
            "song.m4a",
            std::fs::read(audio_only_clip()).unwrap(),
            "no_video_stream",
        ),
    ];
    let mut ids = vec![];
    for (name, bytes, code) in cases {
        let r = app.upload(&t, name, bytes, &[]).await;
        assert_eq!(r.status(), 201, "{name}");
        ids.push((name.to_string(), id_of(r).await, code));
    }
    let r = app
        .post("/api/tasks", &t)
        .json(&json!({"url": format!("{empty_server}/empty.mp4")}))
        .send()
        .await
        .unwrap();
    ids.push(("zero bytes".into(), id_of(r).await, "invalid_media"));

    app.drain().await;
    for (name, id, code) in &ids {
        let v: Value = app.task(&t, id).await;
        assert_eq!(v["status"], "failed", "{name}: {v}");
        assert_eq!(v["error"]["code"], *code, "{name}: {v}");
        assert_eq!(v["attempts"], 1, "{name}: bad input is not retried");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            !msg.contains(app.data_dir.path().to_str().unwrap()),
            "{name}: path in {msg}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the playlist's URL was fetched"
    );
    let bad = violations(&logs, &app.data_dir.path().join("scratch"));
    assert!(
        bad.is_empty(),
        "opened outside scratch or touched the network:\n{}",
        bad.join("\n")
    );
    // Scratch is empty and the worker still works: a good clip goes through.
    assert!(
        std::fs::read_dir(app.data_dir.path().join("scratch"))
            .unwrap()
            .next()
            .is_none()
    );
    let r = app
        .upload(
            &t,
            "good.mp4",
            std::fs::read(clip_45s()).unwrap(),
            &[("options", r#"{"segment_seconds": 0}"#)],
        )
        .await;
    let id = id_of(r).await;
    app.drain().await;
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let bad = violations(&logs, &app.data_dir.path().join("scratch"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
