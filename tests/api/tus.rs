//! Resumable uploads (tus 1.0) on local storage: every status code through raw HTTP, the
//! independent `tuspy` client, one writer at a time, and expiry. The same protocol cases
//! run on S3 in tests/storage/tus.rs.

use std::time::Duration;

use chrono::Utc;
use reelforge_testkit::app::*;
use reelforge_testkit::tus::{self, RawPatch, create, data, offset, patch, protocol_cases};
use reqwest::Method;
use serde_json::Value;

const MAX_UPLOAD: &str = "5MB";

async fn app() -> TestApp {
    spawn_app_with(Options {
        max_upload: Some(MAX_UPLOAD),
        ..Default::default()
    })
    .await
}

/// Files under the data dir's `uploads/` (staged bytes of unfinished uploads).
fn staged(app: &TestApp) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    walk(&app.data_dir.path().join("objects/uploads"), &mut out);
    out
}

#[tokio::test]
async fn every_status_code_of_the_protocol_on_local_storage() {
    let app = app().await;
    protocol_cases(&app, 5_000_000).await;
    assert!(staged(&app).is_empty(), "{:?}", staged(&app));
}

#[tokio::test]
async fn tuspy_uploads_in_checksummed_chunks_and_the_task_is_queued() {
    let Some(python) = tus::tuspy_python("tuspy_on_local_storage") else {
        return;
    };
    let app = app().await;
    let t = app.user("tuspy").await;
    let bytes = data(1_234_567);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holiday clip.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let meta = [("filename", "holiday clip.mp4"), ("profile", "thumbnail")];
    let url = tus::tuspy_upload(&python, &app, &t, &file, 300_000, &meta).await;
    let id = url.rsplit('/').next().unwrap();
    let task = app.task(&t, id).await;
    assert_eq!(task["status"], "queued");
    assert_eq!(task["profile"], "thumbnail");
    assert_eq!(task["source"]["filename"], "holiday_clip.mp4");
    let input = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert!(input.bytes().await.unwrap() == bytes, "the input differs");
    assert!(staged(&app).is_empty());
}

/// While one PATCH streams, a second one to the same upload is refused (423) and the
/// first one's bytes are stored intact.
#[tokio::test]
async fn a_second_writer_is_refused_while_one_streams() {
    let app = app().await;
    let t = app.user("busy").await;
    let all = data(200_000);
    let up = create(&app, &t, all.len() as u64, &[]).await;
    let mut first = RawPatch::start(&app, &t, &up, 0, all.len() as u64).await;
    first.send(&all[..50_000]).await;
    // Wait until the first request holds the upload (as the repository shows it).
    let user = app
        .worker
        .db
        .user_for_login("busy")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let id = uuid::Uuid::parse_str(up.rsplit('/').next().unwrap()).unwrap();
    let mut held = false;
    for _ in 0..1000 {
        let upload = app.worker.db.get_upload(user, id).await.unwrap().unwrap();
        if upload.locked_until.is_some() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(held, "the first request never took the upload");
    let refused = patch(&app, &t, &up, 0, all[..10].to_vec()).await;
    assert_eq!(error_code(refused).await, (423, "upload_locked".into()));
    first.send(&all[50_000..]).await;
    assert_eq!(first.status().await, 204);
    assert_eq!(offset(&app, &t, &up).await, all.len() as u64);
    let r = app
        .post_json_as("/api/tasks", &t, &serde_json::json!({"upload": up}))
        .await;
    let id = id_of(r).await;
    let input = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert!(input.bytes().await.unwrap() == all);
}

/// A connection cut mid-way: the bytes that arrived are kept, and the upload resumes from
/// there to the exact file.
#[tokio::test]
async fn an_upload_cut_off_mid_way_keeps_what_arrived_and_resumes() {
    let app = app().await;
    let t = app.user("cut").await;
    let all = data(400_000);
    let up = create(&app, &t, all.len() as u64, &[]).await;
    let mut cut = RawPatch::start(&app, &t, &up, 0, all.len() as u64).await;
    cut.send(&all[..150_000]).await;
    cut.cut().await;
    // The server records what it read once it sees the end of the connection.
    let mut at = 0;
    for _ in 0..1000 {
        at = offset(&app, &t, &up).await;
        if at > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(at, 150_000, "the bytes that arrived were not kept");
    let mut status = 0;
    for _ in 0..1000 {
        // 423 while the cut request still releases its hold.
        status = patch(&app, &t, &up, at, all[at as usize..].to_vec())
            .await
            .status()
            .as_u16();
        if status != 423 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 204);
    let id = id_of(
        app.post_json_as("/api/tasks", &t, &serde_json::json!({"upload": up}))
            .await,
    )
    .await;
    let input = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert!(input.bytes().await.unwrap() == all);
}

/// The client of an upload's last PATCH goes away while the server makes the upload whole:
/// the server finishes anyway (the upload complete, its task queued, nothing left staged)
/// instead of stopping half-way with the request.
#[tokio::test]
async fn a_last_patch_whose_client_goes_away_still_finishes_the_upload() {
    let app = app().await;
    let t = app.user("leaver").await;
    let all = data(300_000);
    let meta = [("filename", "clip.mp4"), ("profile", "thumbnail")];
    let up = create(&app, &t, all.len() as u64, &meta).await;
    let r = patch(&app, &t, &up, 0, all[..100_000].to_vec()).await;
    assert_eq!(r.status(), 204);
    tus::finish_and_leave(&app, &t, &up, 100_000, &all[100_000..]).await;
    let r = tus::request(&app, Method::HEAD, &up, &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(tus::header_u64(&r, "upload-offset"), all.len() as u64);
    assert_eq!(tus::header_u64(&r, "upload-length"), all.len() as u64);
    let task_url = r.headers()["reelforge-task"].to_str().unwrap().to_string();
    let task: Value = app
        .get(&task_url, &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "queued");
    let input = app
        .get(&format!("{task_url}/input"), &t)
        .send()
        .await
        .unwrap();
    assert!(input.bytes().await.unwrap() == all, "the input differs");
    assert!(staged(&app).is_empty(), "{:?}", staged(&app));
}

/// An upload past its expiry answers 410; the sweep removes it and its bytes, and leaves a
/// finished upload's task input alone.
#[tokio::test]
async fn expired_uploads_answer_410_and_are_swept() {
    let app = app().await;
    let t = app.user("late").await;
    let up = create(&app, &t, 1000, &[]).await;
    assert_eq!(patch(&app, &t, &up, 0, data(300)).await.status(), 204);
    let done = create(&app, &t, 100, &[("profile", "thumbnail")]).await;
    let r = patch(&app, &t, &done, 0, data(100)).await;
    let task_url = r.headers()["reelforge-task"].to_str().unwrap().to_string();
    assert_eq!(staged(&app).len(), 1);

    let later = Utc::now() + chrono::Duration::hours(25);
    let db = &app.worker.db;
    let removed = reelforge::http::tus::sweep_expired(db, &app.worker.storage, later)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(staged(&app).is_empty(), "{:?}", staged(&app));
    let r = tus::request(&app, Method::HEAD, &up, &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The task made from the finished one still has its input.
    let task: Value = app
        .get(&task_url, &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let input = app
        .get(
            &format!("/api/tasks/{}/input", task["id"].as_str().unwrap()),
            &t,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(input.status(), 200);

    // Before the sweep, an expired upload answers 410 (its expiry moved into the past
    // through the repository, as the clock would).
    let up = create(&app, &t, 1000, &[]).await;
    let id = uuid::Uuid::parse_str(up.rsplit('/').next().unwrap()).unwrap();
    let now = Utc::now();
    let held = db
        .lock_upload(id, "test", now, now + chrono::Duration::seconds(5))
        .await;
    let held = held.unwrap().unwrap();
    let progress = reelforge::db::UploadProgress {
        offset: 0,
        parts: held.parts.clone(),
        expires_at: now - chrono::Duration::seconds(1),
        completed_at: None,
    };
    assert!(db.save_upload(id, "test", &progress).await.unwrap());
    db.unlock_upload(id, "test").await.unwrap();
    let r = patch(&app, &t, &up, 0, data(10)).await;
    assert_eq!(error_code(r).await, (410, "upload_expired".into()));
}
