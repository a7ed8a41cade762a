//! Real `reelforge serve` processes: SIGKILL in the middle of a job, then a new process on
//! the same data dir finishes the task exactly once; SIGTERM releases the job for the next.

use std::path::Path;
use std::time::{Duration, Instant};

use reelforge_testkit::app::walk;
use reelforge_testkit::clips::clip_45s;
use reelforge_testkit::process::{Server, login, objects_of, submit_file, wait_for};

use super::REELFORGE;

/// Start `reelforge serve` and read the address it logs.
fn start(data: &Path, extra_env: &[(&str, &str)]) -> Server {
    REELFORGE.start_role("serve", data, extra_env)
}

async fn submit(c: &reqwest::Client, base: &str, token: &str) -> String {
    submit_file(c, base, token, &clip_45s(), "crash.mp4", &[]).await
}

/// Task counts by status in the database a stopped process left in `data`.
async fn status_counts(data: &Path) -> impl Fn(&str) -> i64 {
    let db = reelforge::db::connect(&format!("sqlite://{}", data.join("reelforge.db").display()))
        .await
        .unwrap();
    let counts = db.count_by_status().await.unwrap();
    move |s: &str| {
        counts
            .iter()
            .find(|(st, _)| st.as_str() == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn sigkill_mid_job_then_restart_finishes_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = start(data.path(), &[]);
    let token = login(&c, &first.base, true).await;
    let id = submit(&c, &first.base, &token).await;
    wait_for(&c, &first.base, &token, &id, Duration::from_secs(60), |v| {
        v["status"] == "running"
            && v["progress"]["stage"] == "processing"
            && v["progress"]["percent"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    // The kernel takes the ffmpeg child down with its parent.
    let orphan_gone = {
        let start = Instant::now();
        loop {
            let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&id))
                    .unwrap_or(false)
            });
            if !alive || start.elapsed() > Duration::from_secs(5) {
                break !alive;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(orphan_gone, "ffmpeg outlived its killed parent");

    let second = start(data.path(), &[]);
    let token = login(&c, &second.base, false).await;
    let v = wait_for(
        &c,
        &second.base,
        &token,
        &id,
        Duration::from_secs(120),
        |v| v["status"] != "queued" && v["status"] != "running",
    )
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 3);
    // Exactly one set of outputs (run 2) and the input; nothing of the killed run.
    let objects = objects_of(data.path(), &id);
    assert_eq!(
        objects,
        vec![
            format!("tasks/{id}/input/crash.mp4"),
            format!("tasks/{id}/out/2/crash_part_001.mp4"),
            format!("tasks/{id}/out/2/crash_part_002.mp4"),
            format!("tasks/{id}/out/2/crash_part_003.mp4"),
        ]
    );
    let mut scratch = vec![];
    walk(&data.path().join("scratch"), &mut scratch);
    assert!(scratch.is_empty(), "{scratch:?}");
}

/// The task as the database a stopped process left in `data` holds it.
async fn stored_task(data: &Path, id: &str) -> reelforge::domain::TaskRecord {
    let db = reelforge::db::connect(&format!("sqlite://{}", data.join("reelforge.db").display()))
        .await
        .unwrap();
    db.task_for_job(id.parse().unwrap()).await.unwrap().unwrap()
}

/// Three rolling restarts, each stopping `serve` past its grace period while the job runs:
/// each run is given back without using an attempt (the default maximum is 3), so the
/// fourth process still finishes the task, on its first attempt.
#[tokio::test]
async fn sigterm_past_the_grace_period_releases_the_job_for_the_next_process() {
    let data = tempfile::tempdir().unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut id = String::new();
    for restart in 0..3 {
        let server = start(data.path(), &[("REELFORGE_SHUTDOWN_GRACE", "200ms")]);
        let token = login(&c, &server.base, restart == 0).await;
        if restart == 0 {
            id = submit(&c, &server.base, &token).await;
        }
        let v = wait_for(
            &c,
            &server.base,
            &token,
            &id,
            Duration::from_secs(60),
            |v| v["progress"]["stage"] == "processing",
        )
        .await;
        assert_eq!(v["attempts"], 1, "{v}");
        let mut server = server;
        let pid = server.child.id() as libc::pid_t;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = server.child.wait().unwrap();
        assert!(status.success(), "graceful exit, got {status:?}");

        // The release happened at shutdown (not by the next start's recovery): the task is
        // queued again in the database the process left behind, its attempt given back.
        let n = status_counts(data.path()).await;
        assert_eq!((n("queued"), n("running")), (1, 0));
        let t = stored_task(data.path(), &id).await;
        assert_eq!((t.attempts, &t.error), (0, &None), "restart {restart}");
    }
    let last = start(data.path(), &[]);
    let token = login(&c, &last.base, false).await;
    let v = wait_for(&c, &last.base, &token, &id, Duration::from_secs(120), |v| {
        v["status"] == "succeeded" || v["status"] == "failed"
    })
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(objects_of(data.path(), &id).len(), 4);
}

#[tokio::test]
async fn sigterm_within_the_grace_period_lets_the_running_job_finish() {
    let data = tempfile::tempdir().unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = start(data.path(), &[("REELFORGE_SHUTDOWN_GRACE", "120s")]);
    let token = login(&c, &first.base, true).await;
    let id = submit(&c, &first.base, &token).await;
    wait_for(&c, &first.base, &token, &id, Duration::from_secs(60), |v| {
        v["progress"]["stage"] == "processing"
    })
    .await;
    let mut first = first;
    let pid = first.child.id() as libc::pid_t;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    // New connections are refused at once while the job is still running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.get(format!("{}/healthz", first.base))
            .send()
            .await
            .is_err(),
        "the listener must close at SIGTERM"
    );
    let status = first.child.wait().unwrap();
    assert!(status.success(), "graceful exit, got {status:?}");
    let n = status_counts(data.path()).await;
    assert_eq!(n("succeeded"), 1);
    assert_eq!(objects_of(data.path(), &id).len(), 4);
}
