//! Real `reelforge serve` processes: SIGKILL in the middle of a job, then a new process on
//! the same data dir finishes the task exactly once; SIGTERM releases the job for the next.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reelforge_testkit::app::{id_of, walk};
use reelforge_testkit::clips::clip_45s;
use serde_json::{Value, json};

/// A running `reelforge` process; killed when dropped.
pub(crate) struct Server {
    pub child: Child,
    /// `http://addr` it listens on (a `worker` serves only health and metrics there).
    pub base: String,
    /// Every line the process wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Whether a line of the process's log contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `reelforge serve` and read the address it logs.
fn start(data: &Path, extra_env: &[(&str, &str)]) -> Server {
    start_role("serve", data, extra_env)
}

/// Start `reelforge ROLE` (`serve`, `api` or `worker`) on its own data dir and wait until it
/// logs the address it listens on (a worker's health listener).
pub(crate) fn start_role(role: &str, data: &Path, extra_env: &[(&str, &str)]) -> Server {
    let data = data.to_string_lossy();
    let listen = match role {
        "worker" => "REELFORGE_WORKER_LISTEN",
        _ => "REELFORGE_LISTEN",
    };
    let mut env = vec![
        ("REELFORGE_DATA_DIR", data.as_ref()),
        (listen, "127.0.0.1:0"),
        ("REELFORGE_WORKERS", "1"),
    ];
    env.extend_from_slice(extra_env);
    start_in(role, Path::new("."), &env, "http://")
}

/// Start `reelforge ROLE` in the folder `cwd` with `env` on top of the test's environment,
/// and wait until a line of its log contains `ready` (the listen line carries `http://`).
/// `Server::base` is the first `http://…` word logged, if any.
fn start_in(role: &str, cwd: &Path, env: &[(&str, &str)], ready: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelforge"));
    cmd.arg(role).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_logged(cmd, ready)
}

/// Spawn `cmd` (logging at `info`, stderr captured) and wait until a line of its log
/// contains `ready`; the process is killed if it exits first or takes over 60 s.
pub(crate) fn spawn_logged(mut cmd: Command, ready: &str) -> Server {
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(vec![]));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    let wanted = ready.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                let addr = line
                    .find("http://")
                    .and_then(|i| line[i..].split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(addr);
                sent = true;
            }
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
    let Ok(base) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        panic!("{cmd:?} did not log {ready:?} within 60 s; its log:\n{log}");
    };
    Server { child, base, log }
}

pub(crate) async fn login(c: &reqwest::Client, base: &str, first: bool) -> String {
    if first {
        let r = c
            .post(format!("{base}/api/auth/signup"))
            .json(&json!({"username": "vic", "email": "vic@example.com", "password1": "Secret123", "password2": "Secret123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r: Value = c
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "vic", "password": "Secret123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

pub(crate) async fn task(c: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    c.get(format!("{base}/api/tasks/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn wait_for(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = task(c, base, token, id).await;
        if pred(&v) {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting; last state {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(c: &reqwest::Client, base: &str, token: &str) -> String {
    submit_file(c, base, token, &clip_45s(), "crash.mp4", &[]).await
}

/// Upload `path` as `name` (plus text `fields`) and return the new task's id.
pub(crate) async fn submit_file(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    path: &Path,
    name: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(path).unwrap()).file_name(name.to_string()),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let r = c
        .post(format!("{base}/api/tasks"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    id_of(r).await
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

pub(crate) fn objects_of(data: &Path, id: &str) -> Vec<String> {
    let mut files = vec![];
    walk(&data.join("objects").join("tasks").join(id), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(data.join("objects"))
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    names.sort();
    names
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

#[tokio::test]
async fn sigterm_past_the_grace_period_releases_the_job_for_the_next_process() {
    let data = tempfile::tempdir().unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = start(data.path(), &[("REELFORGE_SHUTDOWN_GRACE", "200ms")]);
    let token = login(&c, &first.base, true).await;
    let id = submit(&c, &first.base, &token).await;
    wait_for(&c, &first.base, &token, &id, Duration::from_secs(60), |v| {
        v["progress"]["stage"] == "processing"
    })
    .await;
    let mut first = first;
    let pid = first.child.id() as libc::pid_t;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = first.child.wait().unwrap();
    assert!(status.success(), "graceful exit, got {status:?}");

    // The release happened at shutdown (not by the next start's recovery): the task is
    // queued again in the database the process left behind.
    let n = status_counts(data.path()).await;
    assert_eq!((n("queued"), n("running")), (1, 0));
    let second = start(data.path(), &[]);
    let token = login(&c, &second.base, false).await;
    let v = wait_for(
        &c,
        &second.base,
        &token,
        &id,
        Duration::from_secs(120),
        |v| v["status"] == "succeeded" || v["status"] == "failed",
    )
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");
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
