//! End to end with real ffmpeg: the idrl profile through the HTTP API and the queue, by URL
//! and by upload; cancel and delete while ffmpeg runs; and a `serve` process killed in the
//! middle of a job, recovered by the next one; `api` and `worker` processes sharing PostgreSQL
//! and a store (`scaleout.rs`); the access log and start-up line (`operability.rs`); memory
//! under oversized requests (`resources.rs`); e-mail through a real SMTP server (`mail.rs`).

mod archives;
mod crash;
mod file_modes;
mod hostile;
mod mail;
mod newcomer;
mod notifications;
mod operability;
mod profiles;
mod resources;
mod scaleout;
mod signup_burst;
mod startup;

use std::path::Path;
use std::time::{Duration, Instant};

use reelforge_testkit::app::*;
use reelforge_testkit::clips::*;
use reelforge_testkit::process::Bin;
use serde_json::{Value, json};

/// The built binary, for the processes `crash.rs` and `scaleout.rs` start.
const REELFORGE: Bin = Bin(env!("CARGO_BIN_EXE_reelforge"));

#[tokio::test]
async fn idrl_by_url_and_by_upload_produces_three_probed_parts() {
    let clip = clip_45s();
    let (server, hits) = serve_file(clip.clone()).await;
    let app = spawn_app_with(Options {
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("rosa").await;
    let by_url: Value = app
        .post("/api/tasks", &t)
        .json(&json!({"url": format!("{server}/media/holiday.mp4")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .upload(&t, "holiday.mp4", std::fs::read(&clip).unwrap(), &[])
        .await;
    assert_eq!(r.status(), 201);
    let by_upload: Value = r.json().await.unwrap();

    let outcomes = app.drain().await;
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    for task in [&by_url, &by_upload] {
        let id = task["id"].as_str().unwrap();
        let v: Value = app.task(&t, id).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(v["attempts"], 1);
        assert_eq!(v["progress"]["percent"], 100.0);
        assert!(v["error"].is_null());
        assert!(
            (v["input"]["duration"].as_f64().unwrap() - 45.0).abs() < 0.2,
            "{v}"
        );
        assert_eq!(v["input"]["width"], 640);
        let outputs = v["outputs"].as_array().unwrap();
        let names: Vec<&str> = outputs
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "holiday_part_001.mp4",
                "holiday_part_002.mp4",
                "holiday_part_003.mp4"
            ]
        );
        for (o, want) in outputs.iter().zip([22.0, 22.0, 7.0]) {
            let url = o["url"].as_str().unwrap();
            let bytes = app
                .get(url, &t)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(bytes.len() as u64, o["size"].as_u64().unwrap());
            let local = app
                .data_dir
                .path()
                .join(format!("dl-{id}-{}", o["name"].as_str().unwrap()));
            std::fs::write(&local, &bytes).unwrap();
            let p = probe(&local);
            let (v, a) = streams(&p);
            assert_eq!(v["codec_name"], "h264");
            assert_eq!(v["pix_fmt"], "yuv420p");
            let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
            assert_eq!((w, h), (640, 360));
            assert_eq!(w * 9, h * 16, "16:9");
            assert_eq!(v["avg_frame_rate"], "24/1");
            assert_eq!(a["codec_name"], "aac");
            assert_eq!(a["sample_rate"], "48000");
            assert_eq!(a["channels"], 2);
            let d: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
            assert!((d - want).abs() <= 0.2, "duration {d} want {want}");
            assert!((o["duration"].as_f64().unwrap() - want).abs() <= 0.2);
            assert_eq!(o["width"], 640);
            assert_eq!(o["video_codec"], "h264");
            assert_eq!(o["audio_codec"], "aac");
            // A working Range request on an output.
            let part = app
                .get(url, &t)
                .header("range", "bytes=100-199")
                .send()
                .await
                .unwrap();
            assert_eq!(part.status(), 206);
            assert_eq!(part.bytes().await.unwrap(), bytes.slice(100..200));
        }
    }
    // The URL task's fetched input is stored and downloadable too.
    let id = by_url["id"].as_str().unwrap();
    let input = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(input.status(), 200);
    assert_eq!(
        input.bytes().await.unwrap().len() as u64,
        std::fs::metadata(&clip).unwrap().len()
    );
    // The legacy /api/files route serves outputs by name.
    assert_eq!(
        app.get("/api/files/holiday_part_003.mp4", &t)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Runs and jobs are counted.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("reelforge_process_runs_total{program=\"ffmpeg\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reelforge_jobs_finished_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reelforge_tasks{status=\"succeeded\"} 2"),
        "{metrics}"
    );
    // Exactly the inputs and 3 outputs each are stored; scratch is empty.
    let files = app.stored_files();
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with(app.data_dir.path().join("scratch")))
    );
}

/// Every pid whose command line mentions `needle` (the task id is in its scratch path).
fn pids_with(needle: &str) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// The ffmpeg processes among `pids_with(needle)`.
fn ffmpeg_pids(needle: &str) -> Vec<i32> {
    pids_with(needle)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).starts_with("ffmpeg"))
                .unwrap_or(false)
        })
        .collect()
}

async fn wait_until<F: FnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// Submit a long clip to an app with one worker and wait until ffmpeg runs for it.
async fn running_task(app: &TestApp, t: &str) -> (String, Vec<i32>) {
    let r = app
        .upload(
            t,
            "long.mp4",
            std::fs::read(clip_long()).unwrap(),
            &[("options", r#"{"segment_seconds": 0}"#)],
        )
        .await;
    let id = id_of(r).await;
    let mut pids = vec![];
    let found = wait_until(Duration::from_secs(60), || {
        pids = ffmpeg_pids(&id);
        !pids.is_empty()
    })
    .await;
    assert!(found, "ffmpeg never started for {id}");
    (id, pids)
}

#[tokio::test]
async fn delete_while_running_kills_ffmpeg_and_leaves_nothing() {
    let app = spawn_app_with(Options {
        workers: 1,
        ..Default::default()
    })
    .await;
    let t = app.user("tina").await;
    let (id, pids) = running_task(&app, &t).await;
    let asked = Instant::now();
    let r = app
        .delete(&format!("/api/tasks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let gone = wait_until(Duration::from_secs(2), || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || pids_with(&id).is_empty())
    })
    .await;
    assert!(
        gone,
        "ffmpeg still running {:?} after delete",
        asked.elapsed()
    );
    let clean = wait_until(Duration::from_secs(5), || {
        app.stored_files()
            .iter()
            .all(|f| !f.to_string_lossy().contains(&id))
    })
    .await;
    assert!(clean, "files left: {:?}", app.stored_files());
    assert_eq!(
        app.get(&format!("/api/tasks/{id}"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn cancel_while_running_kills_ffmpeg_and_keeps_the_record() {
    let app = spawn_app_with(Options {
        workers: 1,
        ..Default::default()
    })
    .await;
    let t = app.user("uma").await;
    let (id, _pids) = running_task(&app, &t).await;
    let r = app
        .post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone = wait_until(Duration::from_secs(2), || pids_with(&id).is_empty()).await;
    assert!(gone, "ffmpeg still running after cancel");
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "cancelled");
    assert!(v["outputs"].as_array().unwrap().is_empty());
    // Only the input remains; no output object and no scratch.
    let clean = wait_until(Duration::from_secs(5), || {
        let files = app.stored_files();
        files.len() == 1 && files[0].to_string_lossy().contains("/input/")
    })
    .await;
    assert!(clean, "{:?}", app.stored_files());
}

#[tokio::test]
async fn a_redirect_into_a_blocked_address_fails_the_task_without_retry() {
    // An allowed loopback server that redirects to the cloud metadata address and to a
    // loopback address that is not on the allow-list.
    let app_router = axum::Router::new()
        .route(
            "/meta",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data")
            }),
        )
        .route(
            "/loop",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("http://127.0.0.2:9/x.mp4")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app_router).await.unwrap() });
    let app = spawn_app_with(Options {
        fetch_allow: Some("127.0.0.1/32".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("walt").await;
    let mut ids = vec![];
    for path in ["meta", "loop"] {
        let r = app
            .post("/api/tasks", &t)
            .json(&json!({"url": format!("http://{addr}/{path}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "the first hop is allowed");
        ids.push(id_of(r).await);
    }
    app.drain().await;
    for id in ids {
        let v: Value = app.task(&t, &id).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert_eq!(v["error"]["code"], "url_not_allowed", "{v}");
        assert_eq!(v["attempts"], 1, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            !msg.contains("169.254") && !msg.contains("127.0.0.2"),
            "no internal address in {msg}"
        );
    }
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

#[tokio::test]
async fn a_stalled_ffmpeg_is_killed_by_the_watchdog_and_the_attempt_retried() {
    // A stand-in ffmpeg: reports one progress block and then hangs, until a marker file
    // exists; then it is the real ffmpeg.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("healthy");
    let fake = dir.path().join("ffmpeg");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then exec ffmpeg \"$@\"; fi\n\
             echo out_time_us=1000000; echo progress=continue; exec sleep 600\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = spawn_app_with(Options {
        ffmpeg: Some(fake.clone()),
        stall_timeout: Some("1s"),
        retry_base: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .await;
    let t = app.user("xena").await;
    let r = app
        .upload(&t, "stall.mp4", std::fs::read(clip_45s()).unwrap(), &[])
        .await;
    let id = id_of(r).await;
    let started = Instant::now();
    let outcomes = app.drain().await;
    let took = started.elapsed();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert!(
        took < Duration::from_secs(3),
        "stall 1 s + 2 s, took {took:?}"
    );
    assert!(
        pids_with(&id).is_empty(),
        "the stalled process group is gone"
    );
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "queued", "retried, not failed: {v}");
    assert_eq!(v["attempts"], 1);
    // Second attempt with a working ffmpeg, after the backoff.
    std::fs::write(&marker, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    app.drain().await;
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 2);
    assert_eq!(v["outputs"].as_array().unwrap().len(), 3);
    let files = app.stored_files();
    assert_eq!(
        files.len(),
        4,
        "one input and one set of outputs: {files:?}"
    );
}

/// Mean RGB of a 20×20 block at the centre of the frame at `t` seconds.
fn centre_colour(path: &Path, t: f64) -> [u8; 3] {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-ss",
            &t.to_string(),
            "-i",
        ])
        .arg(path)
        .args([
            "-vf",
            "crop=20:20:(iw-20)/2:(ih-20)/2,scale=1:1",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    [out.stdout[0], out.stdout[1], out.stdout[2]]
}

#[tokio::test]
async fn a_per_task_logo_is_shown_in_the_bumpers() {
    let app = spawn_app().await;
    let t = app.user("ada").await;
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("red.png");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=200x100",
            "-frames:v",
            "1",
        ])
        .arg(&logo)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(clip_45s()).unwrap())
                .file_name("brand.mp4"),
        )
        .part(
            "logo",
            reqwest::multipart::Part::bytes(std::fs::read(&logo).unwrap()).file_name("red.png"),
        )
        .text("options", r#"{"segment_seconds": 0, "background": "navy"}"#);
    let r = app
        .post("/api/tasks", &t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    app.drain().await;
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let url = v["outputs"][0]["url"].as_str().unwrap();
    let bytes = app
        .get(url, &t)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let out = dir.path().join("out.mp4");
    std::fs::write(&out, &bytes).unwrap();
    // 1 s bumper + 45 s + 1 s bumper.
    let d: f64 = probe(&out)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((d - 47.0).abs() <= 0.2, "{d}");
    for at in [0.5, 46.5] {
        let [r, g, b] = centre_colour(&out, at);
        assert!(
            r > 200 && g < 60 && b < 60,
            "bumper at {at}s is not the red logo: {r},{g},{b}"
        );
    }
    // The logo is scaled to fit (2:1 into 16:9), never stretched: the top rows are background.
    let top = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-ss", "0.5", "-i"])
        .arg(&out)
        .args([
            "-vf",
            "crop=20:10:(iw-20)/2:0,scale=1:1",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap()
        .stdout;
    assert!(top[2] > top[0], "navy background above the logo: {top:?}");
    // The main part is the clip, not the logo.
    let [r, g, b] = centre_colour(&out, 10.0);
    assert!(!(r > 200 && g < 60 && b < 60), "main part shows the logo");
}

#[tokio::test]
async fn configured_probe_limits_refuse_long_media_with_their_own_code() {
    let app = spawn_app_with(Options {
        max_duration: Some("30s"),
        ..Default::default()
    })
    .await;
    let t = app.user("bea").await;
    let r = app
        .upload(&t, "long.mp4", std::fs::read(clip_45s()).unwrap(), &[])
        .await;
    let id = id_of(r).await;
    app.drain().await;
    let v: Value = app.task(&t, &id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "media_too_long", "{v}");
    // What was refused is shown: the probed input.
    assert!(
        (v["input"]["duration"].as_f64().unwrap() - 45.0).abs() < 0.2,
        "{v}"
    );
    assert!(v["outputs"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn live_progress_over_sse_only_moves_forward_and_ends_at_100() {
    let clip = clip_45s();
    let (server, _) = serve_file(clip).await;
    let app = spawn_app_with(Options {
        workers: 1,
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("ivy").await;
    let r = app
        .post("/api/tasks", &t)
        .json(&json!({"url": format!("{server}/clip.mp4")}))
        .send()
        .await
        .unwrap();
    let id = id_of(r).await;
    let stream = app
        .get(&format!("/api/tasks/{id}/events"), &t)
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(120), stream.text())
        .await
        .expect("the event stream did not end")
        .unwrap();
    // (event, id, data) of each event.
    let sse: Vec<(String, String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let data = field("data:")?;
            Some((
                field("event:").unwrap_or_default(),
                field("id:").unwrap_or_default(),
                serde_json::from_str(&data).unwrap(),
            ))
        })
        .collect();
    // Every event has an id, none repeats the one before; progress events are small
    // (status and progress, no command lines), the whole task comes on other changes.
    assert!(sse.windows(2).all(|w| w[0].1 != w[1].1), "{text}");
    assert!(sse.iter().all(|(_, id, _)| !id.is_empty()), "{text}");
    let mut progress_events = 0;
    for (event, _, data) in &sse {
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        match event.as_str() {
            "progress" => {
                progress_events += 1;
                assert_eq!(keys, ["id", "progress", "status"], "{data}");
            }
            "task" => assert!(data["commands"].is_array(), "{data}"),
            other => panic!("event {other:?}"),
        }
    }
    assert!(progress_events >= 2, "{text}");
    let (last_event, last_id, _) = sse.last().unwrap();
    assert_eq!(last_event, "task");
    // Reconnecting with the final state's id: nothing more to send.
    let again = app
        .get(&format!("/api/tasks/{id}/events"), &t)
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    let events: Vec<Value> = sse.into_iter().map(|(_, _, data)| data).collect();
    let percents: Vec<f64> = events
        .iter()
        .map(|e| e["progress"]["percent"].as_f64().unwrap())
        .collect();
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "went backwards: {percents:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["progress"]["percent"], 100.0);
    let processing: Vec<f64> = events
        .iter()
        .filter(|e| e["progress"]["stage"] == "processing")
        .map(|e| e["progress"]["percent"].as_f64().unwrap())
        .collect();
    assert!(
        processing.len() >= 2,
        "live progress while processing: {percents:?}"
    );
    assert!(
        processing.iter().any(|p| *p > 5.0 && *p < 99.0),
        "{processing:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["progress"]["eta_seconds"].as_f64().is_some()),
        "an ETA while running"
    );
}
