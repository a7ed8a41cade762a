//! Resumable uploads (tus) on S3 (moto): the protocol's status codes, bytes going into a
//! multipart upload part by part with the tail staged between requests, the independent
//! `tuspy` client, and an abandoned upload's multipart upload aborted by the expiry sweep.

use chrono::Utc;
use reelforge_testkit::app::*;
use reelforge_testkit::tus::{self, create, data, offset, patch, protocol_cases};

use crate::moto::Moto;

const BUCKET: &str = "tusreels";

async fn app_on(moto: &Moto, max_upload: &'static str) -> TestApp {
    moto.bucket(BUCKET).await;
    spawn_app_with(Options {
        storage_url: Some(format!("s3://{BUCKET}/t")),
        s3_endpoint: Some(moto.endpoint.clone()),
        storage_extra: moto.extra(),
        max_upload: Some(max_upload),
        ..Default::default()
    })
    .await
}

/// Keys under the uploads' staging prefix.
async fn staged(moto: &Moto) -> Vec<String> {
    let keys = moto.all_keys(BUCKET).await;
    keys.into_iter()
        .filter(|k| k.starts_with("t/uploads/"))
        .collect()
}

#[tokio::test]
async fn every_status_code_of_the_protocol_on_s3() {
    let Some(moto) = Moto::start("tus_protocol_on_s3").await else {
        return;
    };
    let app = app_on(&moto, "5MB").await;
    protocol_cases(&app, 5_000_000).await;
    assert!(staged(&moto).await.is_empty());
    assert_eq!(moto.open_uploads(BUCKET).await, 0);
}

/// 20 MiB in 3 MiB requests: the parts (8 MiB) go into one multipart upload while the tail
/// waits in a staged object; the finished object is the bytes, once, in order.
#[tokio::test]
async fn small_requests_fill_parts_through_a_staged_tail() {
    let Some(moto) = Moto::start("tus_parts_on_s3").await else {
        return;
    };
    let app = app_on(&moto, "64MB").await;
    let t = app.user("parts").await;
    let mib = 1024 * 1024;
    let all = data(20 * mib + 777);
    let up = create(&app, &t, all.len() as u64, &[("filename", "big.mov")]).await;
    assert_eq!(
        moto.open_uploads(BUCKET).await,
        1,
        "no multipart upload started"
    );
    let mut at = 0;
    while at < all.len() {
        let end = (at + 3 * mib).min(all.len());
        let r = patch(&app, &t, &up, at as u64, all[at..end].to_vec()).await;
        assert_eq!(r.status(), 204);
        at = end;
        let tails = staged(&moto).await;
        if at < all.len() {
            // One tail at a time: what does not fill a part, and nothing older.
            assert_eq!(tails.len(), usize::from(at % (8 * mib) != 0), "{tails:?}");
        }
        assert_eq!(offset(&app, &t, &up).await, at as u64);
    }
    assert!(staged(&moto).await.is_empty());
    assert_eq!(moto.open_uploads(BUCKET).await, 0);
    let id = id_of(
        app.post_json_as("/api/tasks", &t, &serde_json::json!({"upload": up}))
            .await,
    )
    .await;
    assert_stored_input(&moto, &id, "big.mov", &all).await;
}

/// The client of the last PATCH goes away while the server completes the multipart upload:
/// it is completed anyway and recorded, the task queued, no part or staged tail left.
#[tokio::test]
async fn a_last_patch_whose_client_goes_away_still_completes_the_multipart_upload() {
    let Some(moto) = Moto::start("tus_leaver_on_s3").await else {
        return;
    };
    let app = app_on(&moto, "64MB").await;
    let t = app.user("leaver").await;
    let mib = 1024 * 1024;
    let all = data(10 * mib + 3);
    let meta = [("filename", "clip.mp4"), ("profile", "thumbnail")];
    let up = create(&app, &t, all.len() as u64, &meta).await;
    // A staged tail first, so finishing has a part, a completion and a tail to remove.
    let r = patch(&app, &t, &up, 0, all[..3 * mib].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(staged(&moto).await.len(), 1);
    tus::finish_and_leave(&app, &t, &up, 3 * mib as u64, &all[3 * mib..]).await;
    assert_eq!(offset(&app, &t, &up).await, all.len() as u64);
    let id = up.rsplit('/').next().unwrap();
    assert_eq!(app.task(&t, id).await["status"], "queued");
    assert_eq!(
        moto.open_uploads(BUCKET).await,
        0,
        "the multipart upload is still open"
    );
    assert!(staged(&moto).await.is_empty(), "{:?}", staged(&moto).await);
    assert_stored_input(&moto, id, "clip.mp4", &all).await;
}

#[tokio::test]
async fn tuspy_uploads_to_s3() {
    let Some(moto) = Moto::start("tuspy_on_s3").await else {
        return;
    };
    let Some(python) = tus::tuspy_python("tuspy_on_s3") else {
        return;
    };
    let app = app_on(&moto, "64MB").await;
    let t = app.user("tuspy").await;
    let bytes = data(11 * 1024 * 1024 + 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let meta = [("filename", "clip.mp4"), ("profile", "thumbnail")];
    let url = tus::tuspy_upload(&python, &app, &t, &file, 3 * 1024 * 1024, &meta).await;
    let id = url.rsplit('/').next().unwrap();
    assert_eq!(app.task(&t, id).await["status"], "queued");
    let object = moto
        .storage(&format!("s3://{BUCKET}/t"))
        .read(&format!("tasks/{id}/input/clip.mp4"), None)
        .await
        .unwrap();
    let got: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(object.body)
        .await
        .unwrap();
    assert!(got.concat() == bytes);
    assert!(staged(&moto).await.is_empty());
    assert_eq!(moto.open_uploads(BUCKET).await, 0);
}

#[tokio::test]
async fn an_abandoned_upload_is_aborted_by_the_expiry_sweep() {
    let Some(moto) = Moto::start("tus_sweep_on_s3").await else {
        return;
    };
    let app = app_on(&moto, "64MB").await;
    let t = app.user("gone").await;
    let up = create(&app, &t, 30 * 1024 * 1024, &[]).await;
    let r = patch(&app, &t, &up, 0, data(9 * 1024 * 1024)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(moto.open_uploads(BUCKET).await, 1);
    assert_eq!(staged(&moto).await.len(), 1);
    let later = Utc::now() + chrono::Duration::hours(25);
    let removed = reelforge::http::tus::sweep_expired(&app.worker.db, &app.worker.storage, later)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        moto.open_uploads(BUCKET).await,
        0,
        "the multipart upload is still open"
    );
    assert!(moto.all_keys(BUCKET).await.is_empty());
}

/// The task's input in the bucket is exactly `sent`.
async fn assert_stored_input(moto: &Moto, id: &str, name: &str, sent: &[u8]) {
    let object = moto
        .storage(&format!("s3://{BUCKET}/t"))
        .read(&format!("tasks/{id}/input/{name}"), None)
        .await
        .unwrap();
    let got: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(object.body)
        .await
        .unwrap();
    assert!(
        got.concat() == sent,
        "the object differs from the bytes sent"
    );
}
