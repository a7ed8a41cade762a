use std::sync::atomic::Ordering;
use std::time::Duration;

use reelforge_testkit::app::{Options, spawn_app_with};
use reelforge_testkit::clips::{clip_raw_200mib, clip_tiny};
use reelforge_testkit::proxy::Proxy;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::*;

const MIB: u64 = 1024 * 1024;

/// The upload's offset once it stops moving (the server finishes storing what arrived
/// before a cut connection).
async fn settled_offset(app: &TestApp, token: &str, upload: &str) -> u64 {
    let mut last = None;
    loop {
        let r = app
            .client
            .head(app.url(upload))
            .bearer_auth(token)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "HEAD {upload}");
        let offset: u64 = r.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if last == Some(offset) {
            return offset;
        }
        last = Some(offset);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A server (with `workers`), its user `ana` (the login token), a proxy in front of it, and
/// a client logged in through the proxy.
async fn through_a_proxy(workers: usize) -> (TestApp, String, Proxy, Cli) {
    let app = spawn_app_with(Options {
        workers,
        ..Default::default()
    })
    .await;
    let token = app.user("ana").await;
    let proxy = Proxy::start(&app.base).await;
    let cli = Cli::default();
    cli.login(&proxy.base, "ana").await;
    (app, token, proxy, cli)
}

/// The one pending upload the cache dir keeps.
fn pending_upload(cli: &Cli) -> String {
    let dir = cli.cache_dir().join("uploads");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "one pending upload in {dir:?}");
    let path = files[0].as_ref().unwrap().path();
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["upload"].as_str().unwrap().to_string()
}

/// Ctrl-C in the middle of a 200 MiB upload, then the same command again: the server gets
/// the bytes it lacks and no more, and the task succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_stopped_by_ctrl_c_resumes_with_the_missing_bytes_only() {
    let (app, token, proxy, cli) = through_a_proxy(1).await;
    let clip = clip_raw_200mib();
    let size = std::fs::metadata(&clip).unwrap().len();
    assert!(size >= 200 * MIB, "{size}");

    // Slowed down so that the interruption lands in the middle.
    proxy.faults.rate.store(40 * MIB, Ordering::SeqCst);
    let start = proxy.up();
    let mut cmd = cli.command(&["submit", s(&clip), "--profile", "thumbnail", "--json"]);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "upload" && e["bytes"].as_u64().unwrap() >= 48 * MIB {
            break;
        }
    }
    let pid = child.id().unwrap() as i32;
    // SAFETY: a signal to the child this test started and still waits for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "Ctrl-C stopped it: {status:?}");
    proxy.faults.rate.store(0, Ordering::SeqCst);
    let upload = pending_upload(&cli);
    let offset = settled_offset(&app, &token, &upload).await;
    assert!(
        offset >= 40 * MIB && offset < size,
        "stored {offset} of {size}"
    );
    let first_run = proxy.up() - start;

    let before = proxy.up();
    let r = cli
        .run(&["submit", s(&clip), "--profile", "thumbnail", "--wait"])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("resuming the upload at"), "{}", r.stderr);
    let second_run = proxy.up() - before;
    let missing = size - offset;
    eprintln!(
        "MEASURED: {size} bytes; first run sent {first_run}, server kept {offset}; second \
         run sent {second_run} for the {missing} missing"
    );
    assert!(
        second_run >= missing && second_run <= missing + 256 * 1024,
        "the rerun sent {second_run} bytes for {missing} missing"
    );
    assert!(
        first_run + second_run <= size + 512 * 1024,
        "nothing sent twice: {first_run} + {second_run} for {size}"
    );
    let task = app.task(&token, r.stdout.trim()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["source"]["size"], size);
    let left: Vec<_> = std::fs::read_dir(cli.cache_dir().join("uploads"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "the finished upload is forgotten");
}

/// A connection cut in the middle of an upload is resumed within the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_resumed_within_the_run() {
    let (app, token, proxy, cli) = through_a_proxy(0).await;
    let file = junk_file(cli.home.path(), "big.mp4", 24 * MIB as usize);
    let start = proxy.up();
    proxy
        .faults
        .cut_at
        .store(start + 10 * MIB, Ordering::SeqCst);
    let r = cli
        .run(&["submit", s(&file), "--profile", "thumbnail"])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("resuming in"), "{}", r.stderr);
    let sent = proxy.up() - start;
    assert!(sent <= 24 * MIB + 512 * 1024, "sent {sent} for 24 MiB");
    let task = app.task(&token, r.stdout.trim()).await;
    assert_eq!(task["source"]["size"], 24 * MIB);
}

/// A download cut short leaves `NAME.part`; `reelforge download` asks for the rest only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_download_is_continued_with_range() {
    let (app, token, proxy, cli) = through_a_proxy(1).await;
    let r = cli
        .run(&[
            "submit",
            s(&clip_tiny()),
            "-p",
            "convert",
            "-o",
            "format=mkv",
            "--wait",
        ])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    let id = r.stdout.trim().to_string();
    let task = app.task(&token, &id).await;
    let output = &task["outputs"][0];
    let name = output["name"].as_str().unwrap();
    let whole = output_bytes(&app, &token, output["url"].as_str().unwrap()).await;
    let half = whole.len() / 2;
    let dir = cli.path("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.part")), &whole[..half]).unwrap();

    let before = proxy.down();
    let r = cli.run(&["download", &id, "--output", s(&dir)]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let received = proxy.down() - before;
    let rest = (whole.len() - half) as u64;
    assert!(
        received >= rest && received < rest + 16 * 1024,
        "{received} bytes came for the {rest} missing"
    );
    assert_eq!(std::fs::read(dir.join(name)).unwrap(), whole);
    assert!(!dir.join(format!("{name}.part")).exists());

    // Already whole: nothing is fetched again.
    let before = proxy.down();
    let r = cli.run(&["download", &id, "-o", s(&dir)]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("is already here"), "{}", r.stderr);
    assert!(proxy.down() - before < 16 * 1024);
}
