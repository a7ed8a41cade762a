//! The app with S3 storage: readiness follows the server, downloads answer 302 to a
//! presigned URL that serves the bytes (ranges too), and a whole task runs through it.

use std::time::{Duration, Instant};

use reelforge_testkit::app::*;
use reelforge_testkit::clips::{clip_short, probe, streams};
use serde_json::Value;

use crate::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};
use crate::sign::sigv4_signature;

/// An app whose storage is `s3://reels/tenant-1` on `moto`.
async fn app_on(moto: &Moto, workers: usize) -> TestApp {
    app_on_db(moto, workers, false).await
}

/// [`app_on`], on a fresh PostgreSQL database when `postgres`.
async fn app_on_db(moto: &Moto, workers: usize, postgres: bool) -> TestApp {
    moto.bucket("reels").await;
    spawn_app_with(Options {
        storage_url: Some("s3://reels/tenant-1".into()),
        s3_endpoint: Some(moto.endpoint.clone()),
        storage_extra: moto.extra(),
        workers,
        postgres,
        ..Default::default()
    })
    .await
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET `path` as `token`, expect 302, and return the `Location`.
async fn redirect(app: &TestApp, path: &str, token: &str) -> url::Url {
    let r = no_redirects()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{path}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(r.bytes().await.unwrap().is_empty(), "the API sent bytes");
    url::Url::parse(&loc).unwrap()
}

fn query(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// A SigV4 presigned GET at the custom endpoint, under the prefix, expiring within 15 min
/// of its signing time, which is now.
fn check_presigned(url: &url::Url, moto: &Moto, key_suffix: &str) {
    check_presigned_at(url, &moto.endpoint, key_suffix);
}

/// [`check_presigned`] at `endpoint`, where the URL's host is part of what is signed.
fn check_presigned_at(url: &url::Url, endpoint: &str, key_suffix: &str) {
    assert!(
        url.as_str()
            .starts_with(&format!("{endpoint}/reels/tenant-1/tasks/")),
        "{url}"
    );
    assert!(url.path().ends_with(key_suffix), "{url}");
    assert_eq!(query(url, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    let expires: u64 = query(url, "X-Amz-Expires").parse().unwrap();
    assert!(expires > 0 && expires <= 15 * 60, "expires in {expires}s");
    let signed = chrono::NaiveDateTime::parse_from_str(&query(url, "X-Amz-Date"), "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    let age = (chrono::Utc::now() - signed).num_seconds();
    assert!((-5..=60).contains(&age), "signed {age}s ago");
    assert_eq!(
        query(url, "X-Amz-Credential"),
        format!(
            "{ACCESS_KEY}/{}/{REGION}/s3/aws4_request",
            &query(url, "X-Amz-Date")[..8]
        )
    );
    // moto does not check signatures: recompute it by the SigV4 rules, so the URL is one
    // that S3 itself accepts for these credentials.
    assert_eq!(
        query(url, "X-Amz-Signature"),
        sigv4_signature(url, SECRET_KEY, REGION)
    );
}

/// With `REELFORGE_S3_PUBLIC_ENDPOINT` the API talks to the store at one address and signs
/// downloads for another (here `localhost` for the same server, as a proxy in front of a
/// private name would be): the URL is signed for the public host, and it serves the bytes.
#[tokio::test]
async fn downloads_are_signed_for_the_public_endpoint_when_one_is_set() {
    let Some(moto) = Moto::start("downloads_are_signed_for_the_public_endpoint").await else {
        return;
    };
    moto.bucket("reels").await;
    let public = moto.endpoint.replace("127.0.0.1", "localhost");
    assert_ne!(public, moto.endpoint);
    let app = spawn_app_with(Options {
        storage_url: Some("s3://reels/tenant-1".into()),
        s3_endpoint: Some(moto.endpoint.clone()),
        s3_public_endpoint: Some(public.clone()),
        storage_extra: moto.extra(),
        ..Default::default()
    })
    .await;
    let t = app.user("pia").await;
    let bytes = b"public endpoint bytes".to_vec();
    let r = app.upload(&t, "in.mov", bytes.clone(), &[]).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let loc = redirect(&app, &format!("/api/tasks/{id}/input"), &t).await;
    check_presigned_at(&loc, &public, ".mov");
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let got = plain.get(loc).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn downloads_redirect_to_presigned_urls_that_serve_the_bytes() {
    let Some(moto) = Moto::start("downloads_redirect_to_presigned_urls_that_serve_the_bytes").await
    else {
        return;
    };
    let app = app_on(&moto, 0).await;
    let t = app.user("sven").await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let r = app
        .upload(&t, "Holiday \"2026\".mov", bytes.clone(), &[])
        .await;
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    // Only the input is stored, under the URL's prefix; nothing on local disk.
    let keys = moto.all_keys("reels").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("tenant-1/tasks/{id}/input/")),
        "{keys:?}"
    );
    assert_eq!(app.stored_files(), Vec::<std::path::PathBuf>::new());

    let loc = redirect(&app, &format!("/api/tasks/{id}/input"), &t).await;
    check_presigned(&loc, &moto, ".mov");
    // The download's name is part of the signed request (S3 and GCS answer with it).
    let name = task["source"]["filename"].as_str().unwrap().to_string();
    assert_eq!(name, "Holiday__2026_.mov");
    assert_eq!(
        query(&loc, "response-content-disposition"),
        format!("attachment; filename=\"{name}\"")
    );
    assert_eq!(query(&loc, "response-content-type"), "video/quicktime");
    // A plain client with no token fetches it, with the type stored at upload.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let got = plain.get(loc.clone()).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "video/quicktime");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
    // Range goes to the store.
    let part = plain
        .get(loc.clone())
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[1000..2000]);
    // The following client (the default) lands on the bytes; the token does not follow
    // to the store (reqwest drops it across origins).
    let followed = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.bytes().await.unwrap().to_vec(), bytes);

    // The legacy /api/files name lookup redirects the same way.
    let loc = redirect(&app, &format!("/api/files/{name}"), &t).await;
    check_presigned(&loc, &moto, ".mov");
    // What does not exist is a JSON 404 from the API, never a redirect.
    let r = no_redirects()
        .get(app.url(&format!("/api/tasks/{id}/outputs/nope.mp4")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (404, "not_found".to_string()));
    // Another user gets nothing either.
    let eve = app.user("eve").await;
    let r = no_redirects()
        .get(app.url(&format!("/api/tasks/{id}/input")))
        .bearer_auth(&eve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Deleting the task removes its objects from the bucket.
    let r = app
        .delete(&format!("/api/tasks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(moto.all_keys("reels").await, Vec::<String>::new());
}

#[tokio::test]
async fn readyz_follows_the_s3_server() {
    let Some(mut moto) = Moto::start("readyz_follows_the_s3_server").await else {
        return;
    };
    let app = app_on(&moto, 0).await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The probe object is gone again.
    assert_eq!(moto.all_keys("reels").await, Vec::<String>::new());
    moto.stop();
    let start = Instant::now();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(error_code(r).await, (503, "not_ready".to_string()));
}

#[tokio::test]
async fn a_task_runs_on_s3_and_its_output_downloads_through_a_signed_url() {
    let Some(moto) =
        Moto::start("a_task_runs_on_s3_and_its_output_downloads_through_a_signed_url").await
    else {
        return;
    };
    task_on_s3(&moto, app_on(&moto, 0).await).await;
}

/// `serve` on PostgreSQL and S3 together, as a scaled-out installation runs.
#[tokio::test]
async fn a_task_runs_on_postgres_and_s3() {
    let Some(moto) = Moto::start("a_task_runs_on_postgres_and_s3").await else {
        return;
    };
    if std::env::var(reelforge_testkit::pg::PG_URL_VAR).is_err() {
        // No server: skipped (said on stderr) outside CI, a failure under CI.
        assert!(reelforge_testkit::pg::PgDatabase::create().await.is_none());
        return;
    }
    let app = app_on_db(&moto, 0, true).await;
    task_on_s3(&moto, app).await;
}

/// Convert a clip to mkv on `app` (storage `s3://reels/tenant-1` on `moto`): input and one
/// output run in the bucket, nothing on local disk, and the output downloads through a
/// presigned URL and probes as promised.
async fn task_on_s3(moto: &Moto, app: TestApp) {
    let t = app.user("ines").await;
    let r = app
        .upload(
            &t,
            "clip.mp4",
            std::fs::read(clip_short()).unwrap(),
            &[("profile", "convert"), ("options", r#"{"format": "mkv"}"#)],
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    app.drain().await;
    let v = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let out = &v["outputs"][0];
    let name = out["name"].as_str().unwrap();
    let size = out["size"].as_u64().unwrap();
    // Input and one output run in the bucket, nothing on local disk (scratch is cleaned).
    let keys = moto.all_keys("reels").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("tenant-1/tasks/{id}/out/"))),
        "{keys:?}"
    );
    assert_eq!(app.stored_files(), Vec::<std::path::PathBuf>::new());

    let loc = redirect(&app, &format!("/api/tasks/{id}/outputs/{name}"), &t).await;
    check_presigned(&loc, moto, name);
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let got = plain.get(loc).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "video/x-matroska");
    let bytes = got.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    let path = app.data_dir.path().join("downloaded.mkv");
    std::fs::write(&path, &bytes).unwrap();
    let p = probe(&path);
    assert!(
        p["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("matroska"),
        "{p}"
    );
    let (vs, a) = streams(&p);
    assert_eq!(
        (vs["codec_name"].as_str(), a["codec_name"].as_str()),
        (Some("h264"), Some("aac"))
    );
    let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 6.0).abs() <= 0.2, "{duration}");
}

/// An upload over the limit, cut off after whole parts reached the server, leaves no object
/// and no open multipart upload in the bucket.
#[tokio::test]
async fn an_oversized_upload_leaves_nothing_in_the_bucket() {
    let _heavy = crate::backends::HEAVY.lock().await;
    let Some(moto) = Moto::start("an_oversized_upload_leaves_nothing_in_the_bucket").await else {
        return;
    };
    moto.bucket("reels").await;
    let app = spawn_app_with(Options {
        storage_url: Some("s3://reels/tenant-1".into()),
        s3_endpoint: Some(moto.endpoint.clone()),
        storage_extra: moto.extra(),
        max_upload: Some("18MiB"),
        ..Default::default()
    })
    .await;
    let t = app.user("olga").await;
    // Chunked (no Content-Length): two 8 MiB parts are sent before the limit is crossed.
    let r = app.upload_chunked(&t, 24, 1024 * 1024).await;
    assert_eq!(error_code(r).await, (413, "payload_too_large".to_string()));
    assert_eq!(moto.all_keys("reels").await, Vec::<String>::new());
    assert_eq!(moto.open_uploads("reels").await, 0);
}

/// The OpenAPI document tells clients that every download route may redirect.
#[test]
fn openapi_documents_the_download_redirect() {
    let doc = serde_json::to_value(reelforge::http::openapi()).unwrap();
    for path in [
        "/api/tasks/{id}/outputs/{name}",
        "/api/tasks/{id}/input",
        "/api/files/{filename}",
    ] {
        let found = &doc["paths"][path]["get"]["responses"]["302"];
        let text = found["description"].as_str().unwrap_or_default();
        assert!(
            text.contains("presigned") && text.contains("15 minutes"),
            "{path}: {found}"
        );
        assert!(found["headers"]["Location"].is_object(), "{path}: {found}");
    }
}

/// An HLS ladder on S3 plays by following the API: playlists are served by the API (their
/// relative names must resolve to download routes, not to unsigned object URLs), and each
/// segment answers its own 302 to a presigned URL. Walking it as a player does, saving
/// every file under its name, gives a playlist set that ffprobe plays.
#[tokio::test]
async fn an_hls_ladder_on_s3_plays_through_the_api() {
    let Some(moto) = Moto::start("an_hls_ladder_on_s3_plays_through_the_api").await else {
        return;
    };
    let app = app_on(&moto, 0).await;
    let t = app.user("hana").await;
    let r = app
        .upload(
            &t,
            "clip.mp4",
            std::fs::read(clip_short()).unwrap(),
            &[("profile", "hls"), ("options", r#"{"segment_seconds": 2}"#)],
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    app.drain().await;
    let v = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");

    let dir = tempfile::tempdir().unwrap();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("/api/tasks/{id}/outputs/");
    let (mut playlists, mut segments) = (vec!["master.m3u8".to_string()], 0);
    while let Some(name) = playlists.pop() {
        let r = no_redirects()
            .get(app.url(&format!("{base}{name}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name} must be served by the API");
        let text = r.text().await.unwrap();
        std::fs::write(dir.path().join(&name), &text).unwrap();
        for uri in text.lines().map(str::trim) {
            if uri.is_empty() || uri.starts_with('#') {
                continue;
            }
            assert!(!uri.contains('/'), "relative sibling name expected: {uri}");
            if uri.ends_with(".m3u8") {
                playlists.push(uri.to_string());
                continue;
            }
            let loc = redirect(&app, &format!("{base}{uri}"), &t).await;
            check_presigned(&loc, &moto, uri);
            let got = plain.get(loc).send().await.unwrap();
            assert_eq!(got.status(), 200, "{uri}");
            std::fs::write(dir.path().join(uri), got.bytes().await.unwrap()).unwrap();
            segments += 1;
        }
    }
    assert!(segments >= 3, "{segments} segments");
    let p = probe(&dir.path().join("master.m3u8"));
    let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 6.0).abs() <= 0.3, "{duration}");
}

/// The same ladder through a signed playback URL and a share link, read by ffprobe itself
/// with no header: the playlists come from the API (so their relative names stay under the
/// token), every segment is a 302 to a presigned URL of the bucket, served inline.
#[tokio::test]
async fn ffprobe_plays_an_hls_ladder_on_s3_through_playback_and_share_links() {
    let Some(moto) =
        Moto::start("ffprobe_plays_an_hls_ladder_on_s3_through_playback_and_share_links").await
    else {
        return;
    };
    let app = app_on(&moto, 0).await;
    let t = app.user("iris").await;
    let r = app
        .upload(
            &t,
            "clip.mp4",
            std::fs::read(clip_short()).unwrap(),
            &[("profile", "hls"), ("options", r#"{"segment_seconds": 2}"#)],
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    app.drain().await;
    let v = app.task(&t, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");

    let links: Value = app
        .get(&format!("/api/tasks/{id}/playback"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let play = links["baseUrl"].as_str().unwrap().to_string();
    let share: Value = app
        .post(&format!("/api/tasks/{id}/shares"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shared = share["url"].as_str().unwrap().to_string();
    for base in [play, shared] {
        let r = no_redirects()
            .get(app.url(&format!("{base}master.m3u8")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "playlists are served by the API");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let segment = format!("{base}stream_0_000.ts");
        let r = no_redirects().get(app.url(&segment)).send().await.unwrap();
        assert_eq!(r.status(), 302, "{segment}");
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        check_presigned(&loc, &moto, ".ts");
        assert!(query(&loc, "response-content-disposition").starts_with("inline"));

        let p = reelforge_testkit::clips::probe_url(&app.url(&format!("{base}master.m3u8")))
            .await
            .unwrap();
        let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - 6.0).abs() <= 0.3, "{base}: {duration}");
    }
}
