//! The data lifecycle: a task's `expires_in` and `REELFORGE_RETENTION` remove its files
//! (the record stays, downloads answer 410, a retry is refused), sweeping is idempotent and
//! safe with many sweepers; `REELFORGE_USER_QUOTA` refuses a new task before it stores
//! anything, on every way in; `GET /api/me` shows the usage. On both database backends.

use std::time::Duration;

use chrono::Utc;
use reelforge::retention::sweep_expired_files;
use reelforge_testkit::app::*;
use reelforge_testkit::clips::clip_tiny;
use reelforge_testkit::tus;
use serde_json::{Value, json};

async fn me(app: &TestApp, token: &str) -> Value {
    let (status, me) = app.get_json("/api/me", token).await;
    assert_eq!(status, 200, "{me}");
    me
}

fn objects_of(app: &TestApp, id: &str) -> Vec<std::path::PathBuf> {
    app.stored_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(id))
        .collect()
}

async fn sweep(app: &TestApp, retention: Option<Duration>, after: chrono::Duration) -> usize {
    let now = Utc::now() + after;
    let w = &app.worker;
    sweep_expired_files(&w.db, &w.storage, &w.signals, retention, now)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_task_keeps_its_files_for_its_expires_in_then_only_its_record_stays() {
    let app = spawn_app().await;
    let t = app.user("kim").await;
    let clip = std::fs::read(clip_tiny()).unwrap();
    let r = app
        .upload(
            &t,
            "clip.mp4",
            clip.clone(),
            &[("profile", "thumbnail"), ("expires_in", "1h")],
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    // A task that keeps its files until deleted, for comparison.
    let keep = id_of(
        app.upload(&t, "keep.mp4", clip.clone(), &[("profile", "thumbnail")])
            .await,
    )
    .await;
    app.drain().await;
    let task = app.task(&t, &id).await;
    assert_eq!(
        (task["status"].clone(), task["expires_in"].clone()),
        (json!("succeeded"), json!(3600))
    );
    assert!(task["files_expired_at"].is_null());
    let output = task["outputs"][0]["url"].as_str().unwrap().to_string();
    let name = task["outputs"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(app.get(&output, &t).send().await.unwrap().status(), 200);
    let r = app
        .post_json_as(&format!("/api/tasks/{id}/shares"), &t, &json!({}))
        .await;
    let share: Value = r.json().await.unwrap();
    let prefix = share["url"].as_str().unwrap();
    let share_url = if prefix.starts_with("http") {
        format!("{prefix}{name}")
    } else {
        app.url(&format!("{prefix}{name}"))
    };

    // Usage: both inputs and their outputs.
    let sizes = |v: &Value| {
        v["source"]["size"].as_u64().unwrap()
            + v["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["size"].as_u64().unwrap())
                .sum::<u64>()
    };
    let kept = app.task(&t, &keep).await;
    let usage = me(&app, &t).await;
    assert_eq!(usage["usage"]["stored_bytes"], sizes(&task) + sizes(&kept));
    assert!(
        usage["usage"]["quota_bytes"].is_null() && usage["usage"]["retention_seconds"].is_null()
    );

    // Not due yet; due an hour after it finished.
    assert_eq!(sweep(&app, None, chrono::Duration::minutes(59)).await, 0);
    assert!(!objects_of(&app, &id).is_empty());
    assert_eq!(sweep(&app, None, chrono::Duration::minutes(61)).await, 1);
    // Idempotent: nothing more to do.
    assert_eq!(sweep(&app, None, chrono::Duration::minutes(61)).await, 0);

    let after = app.task(&t, &id).await;
    assert_eq!(after["status"], "succeeded");
    assert!(after["files_expired_at"].is_string(), "{after}");
    assert_eq!(after["outputs"], task["outputs"], "the record stays");
    assert!(
        objects_of(&app, &id).is_empty(),
        "{:?}",
        objects_of(&app, &id)
    );
    for path in [
        output.clone(),
        format!("/api/tasks/{id}/input"),
        format!("/api/files/{name}"),
    ] {
        let r = app.get(&path, &t).send().await.unwrap();
        let (status, code) = error_code(r).await;
        assert_eq!((status, code.as_str()), (410, "files_expired"), "{path}");
    }
    let r = app.client.get(&share_url).send().await.unwrap();
    assert_eq!(r.status(), 410, "{share_url}");
    // The other task is untouched, and the usage is only its own now.
    assert_eq!(
        app.get(&format!("/api/tasks/{keep}/input"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(me(&app, &t).await["usage"]["stored_bytes"], sizes(&kept));
}

#[tokio::test]
async fn retention_removes_files_of_finished_tasks_once_with_many_sweepers() {
    let app = spawn_app().await;
    let t = app.user("lee").await;
    let mut ids = vec![];
    for i in 0..3 {
        // Not media: each fails at once, with its input stored.
        let r = app
            .upload(&t, &format!("{i}.txt"), b"not a video".to_vec(), &[])
            .await;
        ids.push(id_of(r).await);
    }
    // A queued task is never swept, however old.
    let queued = id_of(app.upload(&t, "late.txt", b"x".to_vec(), &[]).await).await;
    for id in &ids {
        let lease = app
            .worker
            .db
            .claim("sweeper-test", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.task_id.to_string(), *id);
        let error = reelforge::domain::TaskError {
            code: "invalid_media".into(),
            message: "not media".into(),
        };
        assert!(app.worker.db.fail(&lease, &error).await.unwrap());
    }
    let day = Some(Duration::from_secs(24 * 3600));
    assert_eq!(sweep(&app, day, chrono::Duration::hours(23)).await, 0);
    // Four sweepers at once (several API processes): each task's files go once.
    let later = chrono::Duration::hours(25);
    let (a, b, c, d) = tokio::join!(
        sweep(&app, day, later),
        sweep(&app, day, later),
        sweep(&app, day, later),
        sweep(&app, day, later)
    );
    assert_eq!(a + b + c + d, 3);
    for id in &ids {
        assert!(app.task(&t, id).await["files_expired_at"].is_string());
        assert!(objects_of(&app, id).is_empty());
        // Nothing left to run on: a retry is refused with the reason.
        let r = app
            .post(&format!("/api/tasks/{id}/retry"), &t)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await, (410, "files_expired".into()));
    }
    let q = app.task(&t, &queued).await;
    assert_eq!(
        (q["status"].clone(), q["files_expired_at"].clone()),
        (json!("queued"), Value::Null)
    );
    assert!(!objects_of(&app, &queued).is_empty());
}

#[tokio::test]
async fn expires_in_is_checked_on_every_way_in() {
    let app = spawn_app_with(Options {
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("max").await;
    let r = app
        .post_json_as(
            "/api/tasks",
            &t,
            &json!({"url": "http://127.0.0.1:9/a.mp4", "expires_in": 7200}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["expires_in"], 7200);
    for bad in [json!("30s"), json!("forever"), json!(0)] {
        let r = app
            .post_json_as(
                "/api/tasks",
                &t,
                &json!({"url": "http://127.0.0.1:9/a.mp4", "expires_in": bad}),
            )
            .await;
        assert_eq!(error_code(r).await, (400, "invalid_field".into()), "{bad}");
    }
    let r = app
        .upload(&t, "a.mp4", b"x".to_vec(), &[("expires_in", "soon")])
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_field".into()));
    // tus: refused at creation, and taken from the metadata when the upload ends.
    let r = tus::request(&app, reqwest::Method::POST, "/api/uploads", &t)
        .header("upload-length", "5")
        .header(
            "upload-metadata",
            tus::metadata(&[("filename", "a.mp4"), ("expires_in", "x")]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_field".into()));
    let meta = [
        ("filename", "a.mp4"),
        ("profile", "thumbnail"),
        ("expires_in", "2d"),
    ];
    let path = tus::create(&app, &t, 5, &meta).await;
    tus::patch(&app, &t, &path, 0, b"hello".to_vec()).await;
    let id = path.rsplit('/').next().unwrap();
    assert_eq!(app.task(&t, id).await["expires_in"], 2 * 24 * 3600);
}

#[tokio::test]
async fn the_quota_refuses_a_task_and_nothing_it_sent_stays_stored() {
    let app = spawn_app_with(Options {
        user_quota: Some("1MB"),
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let t = app.user("ora").await;
    let other = app.user("pat").await;
    let kb = |n: usize| vec![b'x'; n * 1000];
    let first = id_of(app.upload(&t, "a.bin", kb(400), &[]).await).await;
    assert_eq!(app.upload(&t, "b.bin", kb(400), &[]).await.status(), 201);
    let usage = me(&app, &t).await["usage"].clone();
    assert_eq!(
        (usage["stored_bytes"].clone(), usage["quota_bytes"].clone()),
        (json!(800_000), json!(1_000_000))
    );

    let files = app.stored_files().len();
    // Clearly over (more than the room and a body's envelope): refused unread.
    let r = app.upload(&t, "big.bin", kb(6000), &[]).await;
    let (status, body) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!(
        (status.as_u16(), body["error"].clone()),
        (413, json!("quota_exceeded"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("you have 200000 of your 1000000 bytes left"),
        "{body}"
    );
    // Near the room: cut off where the room ends, and removed.
    let r = app.upload(&t, "c.bin", kb(400), &[]).await;
    let (status, code) = error_code(r).await;
    assert_eq!((status, code.as_str()), (413, "quota_exceeded"));
    // Chunked (no length up front): refused once its size is known, and removed.
    let r = app.upload_chunked(&t, 30, 10_000).await;
    assert_eq!(error_code(r).await, (413, "quota_exceeded".into()));
    // A resumable upload declares its length: refused before any byte.
    let r = tus::request(&app, reqwest::Method::POST, "/api/uploads", &t)
        .header("upload-length", "300000")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "quota_exceeded".into()));
    assert_eq!(
        app.stored_files().len(),
        files,
        "nothing stored by a refused task"
    );
    let (_, list) = app.get_json("/api/tasks", &t).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "no task row either");
    // Each user has their own quota.
    assert_eq!(
        app.upload(&other, "c.bin", kb(400), &[]).await.status(),
        201
    );

    // A URL's size is unknown: it is taken while the user is under the quota…
    let url = json!({"url": "http://127.0.0.1:9/a.mp4"});
    assert_eq!(app.post_json_as("/api/tasks", &t, &url).await.status(), 201);
    // …an upload that fits is too, and at the quota nothing more is.
    let path = tus::create(&app, &t, 200_000, &[("filename", "d.bin")]).await;
    assert_eq!(me(&app, &t).await["usage"]["stored_bytes"], 1_000_000);
    tus::patch(&app, &t, &path, 0, kb(200)).await;
    let r = app.post_json_as("/api/tasks", &t, &url).await;
    assert_eq!(error_code(r).await, (413, "quota_exceeded".into()));
    // Deleting frees room at once.
    let r = app
        .delete(&format!("/api/tasks/{first}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&app, &t).await["usage"]["stored_bytes"], 600_000);
    assert_eq!(app.upload(&t, "e.bin", kb(400), &[]).await.status(), 201);
}

#[tokio::test]
async fn a_worker_waits_for_scratch_space_rather_than_claim_a_job_that_does_not_fit() {
    use reelforge::admission::{MARGIN, Shortfall};
    use reelforge::queue::{Outcome, run_one};
    use tokio_util::sync::CancellationToken;
    const MIB: u64 = 1024 * 1024;
    let app = spawn_app().await;
    let t = app.user("sam").await;
    let id = id_of(
        app.upload(&t, "a.mp4", vec![7u8; 1000], &[("profile", "thumbnail")])
            .await,
    )
    .await;
    let gate = &app.worker.scratch;
    gate.set_free_space(|_| Ok(100 * MIB));
    // Another job of this process holds most of the disk.
    let held = gate.try_reserve(90 * MIB).unwrap();
    let outcome = run_one(&app.worker, "w", &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::WaitingForScratch(Shortfall {
            need: 1000 + 100 + MARGIN,
            free: 100 * MIB,
            promised: 90 * MIB
        })
    );
    // Not claimed: still queued, no attempt spent, no `task.started`.
    let task = app.task(&t, &id).await;
    assert_eq!(
        (task["status"].clone(), task["attempts"].clone()),
        (json!("queued"), json!(0))
    );
    assert!(task["started_at"].is_null(), "{task}");
    // Room again: the job runs.
    drop(held);
    let outcome = run_one(&app.worker, "w", &CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Ran { .. }), "{outcome:?}");
    assert_eq!(gate.promised(), 0, "the promise ends with the run");
}

#[tokio::test]
async fn the_orphan_sweep_removes_what_no_task_accounts_for_and_nothing_else() {
    use reelforge::retention::sweep_orphaned_objects;
    use reelforge::storage::keys;
    let app = spawn_app().await;
    let t = app.user("uma").await;
    let clip = std::fs::read(clip_tiny()).unwrap();
    let done = id_of(
        app.upload(&t, "done.mp4", clip, &[("profile", "thumbnail")])
            .await,
    )
    .await;
    app.drain().await;
    let queued = id_of(app.upload(&t, "later.mp4", b"x".to_vec(), &[]).await).await;
    let storage = &app.worker.storage;
    let file = app.data_dir.path().join("stray.bin");
    std::fs::write(&file, b"stray").unwrap();
    let uuid = |s: &str| uuid::Uuid::parse_str(s).unwrap();
    // A run that died before committing, on a finished task and on a queued one; and the
    // input of a task whose row never came.
    let stray_done = keys::output(uuid(&done), 99, "stray.jpg");
    let stray_queued = keys::output(uuid(&queued), 99, "stray.jpg");
    let lost = keys::input(uuid::Uuid::now_v7(), "lost.mp4");
    for key in [&stray_done, &stray_queued, &lost] {
        storage.put_file(key, &file).await.unwrap();
    }
    let sweep = |after: chrono::Duration| {
        sweep_orphaned_objects(&app.worker.db, storage, Utc::now() + after)
    };
    // Everything is fresh: a task may be storing its input before its row exists.
    assert_eq!(sweep(chrono::Duration::zero()).await.unwrap(), 0);
    assert_eq!(sweep(chrono::Duration::hours(2)).await.unwrap(), 2);
    let left = storage.list("tasks").await.unwrap();
    assert!(
        !left.contains(&stray_done) && !left.contains(&lost),
        "{left:?}"
    );
    assert!(
        left.contains(&stray_queued),
        "a queued task's run may be writing: {left:?}"
    );
    // The finished task's own files stay.
    let task = app.task(&t, &done).await;
    let output = task["outputs"][0]["url"].as_str().unwrap();
    assert_eq!(app.get(output, &t).send().await.unwrap().status(), 200);
    let input = format!("/api/tasks/{done}/input");
    assert_eq!(app.get(&input, &t).send().await.unwrap().status(), 200);
    // Idempotent.
    assert_eq!(sweep(chrono::Duration::hours(2)).await.unwrap(), 0);
}
