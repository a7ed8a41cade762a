//! Scale-out with real processes: `reelforge api` and `reelforge worker` processes of the
//! built binary sharing one PostgreSQL database (a fresh one per test, see
//! `reelforge_testkit::pg`) and one `file://` store, as in a multi-machine deployment. Each
//! process has its own data dir (its own scratch folder); the API processes share the JWT
//! secret, so a token from one is accepted by the other.
//!
//! - an idle worker process starts a job submitted through either API process within 100 ms
//!   (LISTEN/NOTIFY; the polling fallback alone would take up to a second);
//! - a cancel through the other API process kills the ffmpeg of the worker process that
//!   runs the task within 2 s and leaves no output;
//! - a worker process paused past its lease (SIGSTOP, with its ffmpeg) loses the job to
//!   another worker; once resumed it stops its run and drops its result: the task succeeds
//!   once, with attempts = 2 and only the second run's outputs in the store.
//! - a resumable upload whose HEADs and PATCHes alternate between the API processes ends
//!   whole and its task runs.
//!
//! - a burst of 50 tasks through both API processes, run by two worker processes: every
//!   task's webhooks (`task.started` and its end) and e-mail arrive, none missing, and a
//!   duplicate only ever with the same message id.
//!
//! Without `REELFORGE_TEST_PG_URL` these print SKIPPED (they fail under `CI`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reelforge_testkit::app::walk;
use reelforge_testkit::clips::{clip_45s, clip_long, clip_short};
use reelforge_testkit::pg::PgDatabase;
use reelforge_testkit::process::{Server, login, objects_of, submit_file, task, wait_for};
use serde_json::Value;
use sqlx::Connection;

use super::{REELFORGE, ffmpeg_pids, pids_with, wait_until};

/// The queue lease every process of a cluster gets (`REELFORGE_LEASE`): short, so the lease
/// test does not wait out the 30 s default, with room for heartbeats on a loaded machine.
const LEASE: Duration = Duration::from_secs(8);

/// Two API processes, any number of worker processes, one database, one store.
struct Cluster {
    // Fields drop in order: processes first, then the database, then the folders.
    workers: Vec<Server>,
    apis: Vec<Server>,
    db: PgDatabase,
    dir: tempfile::TempDir,
    c: reqwest::Client,
    token: String,
    /// Settings every process gets besides the shared ones.
    extra_env: Vec<(String, String)>,
}

fn terminal(v: &Value) -> bool {
    !matches!(v["status"].as_str(), Some("queued" | "running"))
}

fn time_of(v: &Value, field: &str) -> DateTime<Utc> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{field} {s:?}: {e}"))
        .with_timezone(&Utc)
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this test started (or its ffmpeg child); no memory involved.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

impl Cluster {
    /// `None`: no PostgreSQL server configured (skipped, see `reelforge_testkit::pg`).
    async fn start() -> Option<Cluster> {
        Self::start_with(vec![]).await
    }

    async fn start_with(extra_env: Vec<(String, String)>) -> Option<Cluster> {
        let db = PgDatabase::create().await?;
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            workers: vec![],
            apis: vec![],
            db,
            dir,
            c: reqwest::Client::builder().no_proxy().build().unwrap(),
            token: String::new(),
            extra_env,
        };
        for i in 0..2 {
            let api = cluster.spawn("api", &format!("api{i}"));
            cluster.apis.push(api);
        }
        cluster.token = login(&cluster.c, &cluster.apis[0].base, true).await;
        Some(cluster)
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn env(&self) -> Vec<(String, String)> {
        let shared = vec![
            ("REELFORGE_DATABASE_URL", self.db.url.clone()),
            (
                "REELFORGE_STORAGE_URL",
                format!("file://{}", self.dir.path().join("objects").display()),
            ),
            (
                "REELFORGE_JWT_SECRET",
                "scaleout-test-secret-0123456789abcdef".into(),
            ),
            ("REELFORGE_WORKERS", "1".into()),
            ("REELFORGE_LEASE", format!("{}s", LEASE.as_secs())),
        ];
        shared
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.extra_env.iter().cloned())
            .collect()
    }

    /// Start `reelforge ROLE` with its own data dir under `name` and the shared settings.
    fn spawn(&self, role: &str, name: &str) -> Server {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        REELFORGE.start_role(role, &self.data_dir(name), &env)
    }

    /// Start a worker process (one job at a time) with its own data dir under `name`; wait
    /// until it listens for notifications, i.e. it is idle and ready. Each API process holds
    /// a listening connection too, from its start (the read cache's change feed).
    async fn add_worker(&mut self, name: &str) -> usize {
        let w = self.spawn("worker", name);
        self.workers.push(w);
        let want = self.apis.len() + self.workers.len();
        let start = Instant::now();
        loop {
            let n = self.listeners().await;
            if n == want {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{n} of {want} processes (APIs and workers) listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.workers.len() - 1
    }

    /// Connections of this database waiting on `LISTEN` (one per API process, and one per
    /// idle worker process).
    async fn listeners(&self) -> usize {
        let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        usize::try_from(n).unwrap_or(0)
    }

    fn api(&self, i: usize) -> &str {
        &self.apis[i % self.apis.len()].base
    }

    fn worker_data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn submit(&self, api: usize, clip: &Path, name: &str, fields: &[(&str, &str)]) -> String {
        submit_file(&self.c, self.api(api), &self.token, clip, name, fields).await
    }

    async fn wait(
        &self,
        api: usize,
        id: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(&self.c, self.api(api), &self.token, id, limit, f).await
    }

    fn scratch_is_empty(&self, worker: &str) -> bool {
        let mut files = vec![];
        walk(&self.worker_data(worker).join("scratch"), &mut files);
        files.is_empty()
    }
}

#[tokio::test]
async fn an_idle_worker_process_starts_a_submitted_job_within_100_ms() {
    let Some(mut cl) = Cluster::start().await else {
        return;
    };
    cl.add_worker("w0").await;
    cl.add_worker("w1").await;
    // Five submissions, alternating API processes; each waits for the previous task to end,
    // so both workers are idle (waiting on LISTEN) when a job arrives. Created and started
    // times both come from the database's clock (the insert's and the claim's transaction).
    let mut delays = vec![];
    for i in 0..5 {
        let id = cl.submit(i, &clip_short(), "quick.mp4", &[]).await;
        let v = cl
            .wait(i + 1, &id, Duration::from_secs(120), terminal)
            .await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(v["attempts"], 1, "{v}");
        let delay = time_of(&v, "started_at") - time_of(&v, "created_at");
        delays.push(delay.num_milliseconds());
    }
    let mut sorted = delays.clone();
    sorted.sort_unstable();
    let (median, max) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    eprintln!("submit → claim (ms): {delays:?}; median {median}, max {max}");
    // The promise is per job ("an idle worker starts a newly submitted job within 100 ms"),
    // so the maximum is asserted, not the median. Polling alone (every second) would pass
    // five times in a row with probability 0.1^5.
    assert!(max < 100, "submit → claim took {delays:?} ms");
}

#[tokio::test]
async fn cancel_through_the_other_api_process_kills_ffmpeg_on_the_worker_process() {
    let Some(mut cl) = Cluster::start().await else {
        return;
    };
    cl.add_worker("w0").await;
    let id = cl
        .submit(
            0,
            &clip_long(),
            "long.mp4",
            &[("options", r#"{"segment_seconds": 0}"#)],
        )
        .await;
    let mut pids = vec![];
    let running = wait_until(Duration::from_secs(60), || {
        pids = ffmpeg_pids(&id);
        !pids.is_empty()
    })
    .await;
    assert!(running, "ffmpeg never started for {id}");
    let worker_pid = cl.workers[0].child.id();
    let parent = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap_or_default();
    assert!(
        parent.rsplit(')').next().is_some_and(|s| s
            .split_whitespace()
            .nth(1)
            .is_some_and(|ppid| ppid == worker_pid.to_string())),
        "ffmpeg {} is the worker process's child: {parent}",
        pids[0]
    );

    let asked = Instant::now();
    let r =
        cl.c.post(format!("{}/api/tasks/{id}/cancel", cl.api(1)))
            .bearer_auth(&cl.token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let gone = wait_until(Duration::from_secs(2), || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
            && ffmpeg_pids(&id).is_empty()
    })
    .await;
    assert!(
        gone,
        "ffmpeg still running {:?} after the cancel",
        asked.elapsed()
    );
    eprintln!("cancel → ffmpeg gone: {:?}", asked.elapsed());

    let v = task(&cl.c, cl.api(0), &cl.token, &id).await;
    assert_eq!(v["status"], "cancelled", "{v}");
    assert!(v["outputs"].as_array().unwrap().is_empty(), "{v}");
    // Only the input remains in the store; the worker's scratch is gone; the worker lives.
    let clean = wait_until(Duration::from_secs(5), || {
        objects_of(cl.dir.path(), &id) == [format!("tasks/{id}/input/long.mp4")]
            && cl.scratch_is_empty("w0")
    })
    .await;
    assert!(clean, "{:?}", objects_of(cl.dir.path(), &id));
    assert!(cl.workers[0].logged("run stopped; its result was dropped"));
    assert!(
        cl.workers[0].child.try_wait().unwrap().is_none(),
        "the worker exited"
    );
    let v = task(&cl.c, cl.api(1), &cl.token, &id).await;
    assert_eq!(v["status"], "cancelled", "{v}");
}

#[tokio::test]
async fn a_worker_process_paused_past_its_lease_loses_the_job_and_drops_its_result() {
    let Some(mut cl) = Cluster::start().await else {
        return;
    };
    let a = cl.add_worker("wa").await;
    let id = cl.submit(0, &clip_45s(), "lease.mp4", &[]).await;
    // Run 1 is worker A's: its scratch folder is `{task}-1`.
    let run1 = format!("{id}-1");
    let run2 = format!("{id}-2");
    let started = wait_until(Duration::from_secs(60), || !ffmpeg_pids(&run1).is_empty()).await;
    assert!(started, "worker A never ran ffmpeg");
    let b = cl.add_worker("wb").await;

    // Pause worker A and everything it runs, like a frozen machine.
    let a_pid = cl.workers[a].child.id() as i32;
    signal(a_pid, libc::SIGSTOP);
    let paused_at = Instant::now();
    let a_children = pids_with(&run1);
    for p in &a_children {
        signal(*p, libc::SIGSTOP);
    }

    // Worker B takes the job over once the lease has expired.
    let taken = wait_until(LEASE + Duration::from_secs(60), || {
        !ffmpeg_pids(&run2).is_empty()
    })
    .await;
    assert!(taken, "worker B never took the job over");
    let took = paused_at.elapsed();
    assert!(
        took >= LEASE - Duration::from_secs(2),
        "taken over before the lease expired: {took:?}"
    );
    let v = task(&cl.c, cl.api(1), &cl.token, &id).await;
    assert_eq!(
        (v["status"].as_str(), v["attempts"].as_u64()),
        (Some("running"), Some(2)),
        "{v}"
    );

    // Resume A while B runs: its next heartbeat finds the lease gone; it kills its ffmpeg.
    for p in &a_children {
        signal(*p, libc::SIGCONT);
    }
    signal(a_pid, libc::SIGCONT);
    let resumed = Instant::now();
    let stopped = wait_until(Duration::from_secs(3), || pids_with(&run1).is_empty()).await;
    assert!(
        stopped,
        "worker A's run still going {:?} after resuming",
        resumed.elapsed()
    );
    assert!(
        !ffmpeg_pids(&run2).is_empty() || terminal(&task(&cl.c, cl.api(0), &cl.token, &id).await)
    );

    let v = cl.wait(0, &id, Duration::from_secs(180), terminal).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 3, "{v}");
    let dropped = wait_until(Duration::from_secs(5), || {
        cl.workers[a].logged("run stopped; its result was dropped")
    })
    .await;
    assert!(dropped, "worker A did not drop its run");
    // Exactly one set of outputs, run 2's (worker B's); nothing of run 1 anywhere.
    let want = vec![
        format!("tasks/{id}/input/lease.mp4"),
        format!("tasks/{id}/out/2/lease_part_001.mp4"),
        format!("tasks/{id}/out/2/lease_part_002.mp4"),
        format!("tasks/{id}/out/2/lease_part_003.mp4"),
    ];
    let clean = wait_until(Duration::from_secs(5), || {
        objects_of(cl.dir.path(), &id) == want && cl.scratch_is_empty("wa")
    })
    .await;
    assert!(clean, "{:?}", objects_of(cl.dir.path(), &id));
    assert!(cl.scratch_is_empty("wb"));
    assert!(cl.workers[a].logged("lease lost or task stopped"));
    assert!(!cl.workers[b].logged("run stopped"));
    for w in &mut cl.workers {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker exited");
    }
    // Both API processes agree.
    let other = task(&cl.c, cl.api(1), &cl.token, &id).await;
    assert_eq!(other["outputs"], v["outputs"]);
}

/// A resumable upload whose requests alternate between the two API processes (the state is
/// in the database, the bytes in the shared store): it ends whole, and its task runs on a
/// worker process.
#[tokio::test]
async fn a_resumable_upload_alternates_between_api_processes_and_its_task_runs() {
    let Some(mut cl) = Cluster::start().await else {
        return;
    };
    cl.add_worker("w0").await;
    let bytes = std::fs::read(clip_short()).unwrap();
    let meta =
        reelforge_testkit::tus::metadata(&[("filename", "quick.mp4"), ("profile", "thumbnail")]);
    let tus = |api: usize, method: reqwest::Method, path: &str| {
        cl.c.request(method, format!("{}{path}", cl.api(api)))
            .bearer_auth(&cl.token)
            .header("tus-resumable", "1.0.0")
    };
    let r = tus(0, reqwest::Method::POST, "/api/uploads")
        .header("upload-length", bytes.len().to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let up = r.headers()["location"].to_str().unwrap().to_string();
    let chunk = bytes.len().div_ceil(4);
    let mut task = None;
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        let offset = i * chunk;
        // HEAD on one process, PATCH on the other.
        let head = tus(i, reqwest::Method::HEAD, &up).send().await.unwrap();
        assert_eq!(head.headers()["upload-offset"], offset.to_string().as_str());
        let r = tus(i + 1, reqwest::Method::PATCH, &up)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(piece.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "PATCH {i}");
        task = r
            .headers()
            .get("reelforge-task")
            .map(|v| v.to_str().unwrap().to_string());
    }
    let task = task.expect("the last PATCH made no task");
    let id = task.rsplit('/').next().unwrap();
    let v = cl.wait(0, id, Duration::from_secs(120), terminal).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["source"]["size"], bytes.len());
}

#[tokio::test]
async fn a_burst_of_tasks_is_notified_by_webhook_and_email_with_none_missing() {
    use reelforge_testkit::smtp::{SmtpMode, SmtpServer};
    use reelforge_testkit::webhooks::{HOST, Receiver};
    use std::collections::{BTreeMap, BTreeSet};
    let Some(rx) = Receiver::start("a_burst_of_tasks_is_notified") else {
        return;
    };
    let Some(smtp) =
        SmtpServer::start("a_burst_of_tasks_is_notified", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let mut env = smtp.env("Reelforge <reelforge@example.com>");
    env.push(("REELFORGE_FETCH_ALLOW".into(), HOST.into()));
    env.push((
        "REELFORGE_PUBLIC_URL".into(),
        "https://media.reelforge.test".into(),
    ));
    let Some(mut cl) = Cluster::start_with(env).await else {
        return;
    };
    cl.add_worker("w0").await;
    cl.add_worker("w1").await;
    let ep: Value =
        cl.c.post(format!("{}/api/webhooks", cl.api(0)))
            .bearer_auth(&cl.token)
            .json(&serde_json::json!({"url": rx.url("burst")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    rx.set_secrets("burst", &[ep["secret"].as_str().unwrap()])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, b"not media").unwrap();
    let tiny = reelforge_testkit::clips::clip_tiny();
    let mut ids = vec![];
    for i in 0..50 {
        let id = if i % 2 == 0 {
            cl.submit(i, &tiny, "tiny.mp4", &[("profile", "thumbnail")])
                .await
        } else {
            cl.submit(i, &junk, "notes.txt", &[]).await
        };
        ids.push(id);
    }
    let mut finals = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let v = cl.wait(i, id, Duration::from_secs(240), terminal).await;
        let want = if i % 2 == 0 { "succeeded" } else { "failed" };
        assert_eq!(v["status"], want, "{v}");
        finals.insert(id.clone(), format!("task.{want}"));
    }
    // Two webhooks per task (started, and its end), one e-mail per task.
    let start = Instant::now();
    let unique = |rx: &Receiver| {
        rx.received_by("burst")
            .into_iter()
            .map(|r| r.id)
            .collect::<BTreeSet<_>>()
    };
    while unique(&rx).len() < 100 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = rx.received_by("burst");
    assert!(got.iter().all(|r| r.verified), "every signature checks");
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for r in &got {
        if let Some(first) = by_id.get(&r.id) {
            assert_eq!(first, &r.body, "a duplicate carries the same message");
        }
        by_id.insert(r.id.clone(), r.body.clone());
    }
    assert_eq!(
        by_id.len(),
        100,
        "{} duplicates among {}",
        got.len() - by_id.len(),
        got.len()
    );
    let mut per_task: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for body in by_id.values() {
        let task = body["data"]["id"].as_str().unwrap().to_string();
        per_task
            .entry(task)
            .or_default()
            .push(body["type"].as_str().unwrap().to_string());
    }
    for (id, end) in &finals {
        let mut types = per_task.get(id).cloned().unwrap_or_default();
        types.sort();
        let mut want = vec!["task.started".to_string(), end.clone()];
        want.sort();
        assert_eq!(types, want, "task {id}");
    }
    let mails = smtp.wait_for_messages(50, Duration::from_secs(60)).await;
    let message_ids: BTreeSet<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap().to_string())
        .collect();
    assert_eq!(message_ids.len(), 50, "one e-mail per task");
    for id in finals.keys() {
        assert!(
            mails
                .iter()
                .any(|m| m.text.as_deref().unwrap_or_default().contains(id.as_str())),
            "no e-mail about {id}"
        );
    }
}

#[tokio::test]
async fn an_api_key_revoked_through_one_api_process_stops_within_a_second_on_the_other() {
    let Some(cl) = Cluster::start().await else {
        return;
    };
    let r =
        cl.c.post(format!("{}/api/keys", cl.api(0)))
            .bearer_auth(&cl.token)
            .json(&serde_json::json!({"name": "ci"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let key = made["token"].as_str().unwrap();
    let tasks = |api: usize| {
        cl.c.get(format!("{}/api/tasks", cl.api(api)))
            .bearer_auth(key)
            .send()
    };
    // Used on both: each API process has the key in its read cache.
    assert_eq!(tasks(0).await.unwrap().status(), 200);
    assert_eq!(tasks(1).await.unwrap().status(), 200);
    let r =
        cl.c.delete(format!(
            "{}/api/keys/{}",
            cl.api(1),
            made["id"].as_str().unwrap()
        ))
        .bearer_auth(&cl.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(tasks(1).await.unwrap().status(), 401);
    // The other learns it from PostgreSQL's change feed (milliseconds; its cache's age
    // bounds it at 0.5 s).
    reelforge_testkit::app::within_a_second("the revoked key on the other API process", || async {
        tasks(0).await.unwrap().status() == 401
    })
    .await;
}
