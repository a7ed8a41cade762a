//! Test media made by ffmpeg's lavfi sources (once per test binary), a loopback HTTP
//! server for URL tasks, and ffprobe helpers (plain ffprobe, not the service's argv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

fn media_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn generate(name: &str, args: &[&str]) -> PathBuf {
    let out = media_dir().join(name);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg is required for these tests");
    assert!(status.success(), "generating {name}");
    out
}

/// 45 s, 640×360, 30 fps, H.264 + AAC.
pub fn clip_45s() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "clip45.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100",
                "-t",
                "45",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-shortest",
            ],
        )
    })
    .clone()
}

/// 6 s, 480×270, 30 fps, H.264 + AAC: quick to convert.
pub fn clip_short() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "short.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=480x270:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ],
        )
    })
    .clone()
}

/// 2 s, 320×180, 15 fps, H.264 + AAC: the quickest to run every profile and format over.
pub fn clip_tiny() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "tiny.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=15",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ],
        )
    })
    .clone()
}

/// 3 s of a still grey 160×90 frame at H.264's coarsest quantiser, with 8 kbit/s mono AAC:
/// a file no re-encode at a usual quality makes smaller.
pub fn clip_tight() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "tight.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "color=c=gray:s=160x90:r=10",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=22050",
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-crf",
                "51",
                "-preset",
                "veryslow",
                "-c:a",
                "aac",
                "-ac",
                "1",
                "-b:a",
                "8k",
                "-shortest",
            ],
        )
    })
    .clone()
}

/// 10 minutes at 640×360: a single idrl run over it lasts many seconds.
pub fn clip_long() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "long.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=15",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=220",
                "-t",
                "600",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "35",
                "-c:a",
                "aac",
                "-b:a",
                "32k",
                "-shortest",
            ],
        )
    })
    .clone()
}

pub fn audio_only_clip() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "audio.m4a",
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330",
                "-t",
                "3",
                "-c:a",
                "aac",
            ],
        )
    })
    .clone()
}

/// Serve one file at any path on a loopback port; counts requests.
pub async fn serve_file(path: PathBuf) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let path = path.clone();
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let bytes = tokio::fs::read(&path).await.unwrap();
            ([("content-type", "video/mp4")], bytes)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

pub fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (video stream, audio stream) of a probe.
pub fn streams(p: &Value) -> (Value, Value) {
    let all = p["streams"].as_array().unwrap();
    let find = |kind: &str| {
        all.iter()
            .find(|s| s["codec_type"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} stream"))
    };
    (find("video"), find("audio"))
}

/// ffprobe's JSON of a URL, read the way a player reads it: no header of ours, redirects
/// followed, an HLS playlist's relative references resolved against the URL; ffprobe's
/// stderr when it cannot read it. Async, so a server in the test's own runtime
/// keeps answering while ffprobe runs.
pub async fn probe_url(url: &str) -> Result<Value, String> {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            url,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("ffprobe's JSON: {e}"))
}

/// About 200 MiB of uncompressed 640×480 video in AVI (456 frames, 18 s at 25 fps): an
/// upload big enough to interrupt, which ffmpeg still reads in a moment.
pub fn clip_raw_200mib() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        generate(
            "raw-200mib.avi",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x480:rate=25",
                "-frames:v",
                "456",
                "-c:v",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
            ],
        )
    })
    .clone()
}
