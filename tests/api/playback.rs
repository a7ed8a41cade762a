//! Signed playback URLs: ffprobe reads an HLS output through one with no header, tampered,
//! expired and foreign tokens are refused, and no stored file is ever served as a page.

use reelforge::playback::{Grant, PlaybackKey, unix_now};
use reelforge_testkit::app::*;
use reelforge_testkit::clips::{clip_tiny, probe_url};
use serde_json::Value;

/// An HLS task of a 2 s clip, run to its end.
pub(crate) async fn hls_task(app: &TestApp, token: &str) -> String {
    let r = app
        .upload(
            token,
            "clip.mp4",
            std::fs::read(clip_tiny()).unwrap(),
            &[("profile", "hls"), ("options", r#"{"segment_seconds": 2}"#)],
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    app.drain().await;
    let v = app.task(token, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    id
}

async fn links(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .get(&format!("/api/tasks/{id}/playback"), token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn url_of(links: &Value, name: &str) -> String {
    links["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {links}"))["url"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The service's playback key, from the secret `prepare` wrote into the data dir.
fn key(app: &TestApp) -> PlaybackKey {
    let secret = std::fs::read_to_string(app.data_dir.path().join("jwt-secret")).unwrap();
    PlaybackKey::derive(secret.trim())
}

#[tokio::test]
async fn ffprobe_reads_an_hls_output_through_its_signed_url_with_no_header() {
    let app = spawn_app().await;
    let t = app.user("pia").await;
    let id = hls_task(&app, &t).await;
    let l = links(&app, &t, &id).await;
    let base = l["baseUrl"].as_str().unwrap();
    assert!(base.starts_with("/api/play/") && base.ends_with('/'), "{l}");
    let master = url_of(&l, "master.m3u8");
    assert_eq!(master, format!("{base}master.m3u8"));
    let expires: chrono::DateTime<chrono::Utc> = l["expiresAt"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1));

    let p = probe_url(&app.url(&master)).await.unwrap();
    let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 2.0).abs() <= 0.3, "{duration}");
    assert!(
        p["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["codec_name"] == "h264"),
        "{p}"
    );

    // Playlists and segments play inline, with the no-render headers; ranges work.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = plain.get(app.url(&master)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    let segment = l["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"].as_str().unwrap().ends_with(".ts"))
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = plain
        .get(app.url(&segment))
        .header("range", "bytes=0-187")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-type"], "video/mp2t");
    assert_eq!(r.bytes().await.unwrap().len(), 188);
    // The same file through the download route stays an attachment.
    let r = app
        .get(&format!("/api/tasks/{id}/outputs/master.m3u8"), &t)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // The task's input is not an output: not served through the token.
    let r = plain
        .get(app.url(&format!("{base}clip.mp4")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn tampered_expired_and_foreign_playback_links_are_refused() {
    let app = spawn_app().await;
    let t = app.user("quin").await;
    let id = hls_task(&app, &t).await;
    let l = links(&app, &t, &id).await;
    let master = url_of(&l, "master.m3u8");
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let status_of = |path: String| {
        let (plain, url) = (plain.clone(), app.url(&path));
        async move {
            let r = plain.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body["error"].as_str().unwrap_or("").to_string())
        }
    };
    assert_eq!(status_of(master.clone()).await.0, 200);
    // One character of the token changed.
    let token = master.split('/').nth(3).unwrap();
    let mut chars: Vec<char> = token.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_eq!(
        status_of(master.replace(token, &tampered)).await,
        (403, "invalid_link".into())
    );
    assert_eq!(
        status_of("/api/play/short/master.m3u8".into()).await,
        (403, "invalid_link".into())
    );
    // Well signed but expired.
    let mut grant = Grant {
        user: owner_of(&t),
        task: id.parse().unwrap(),
        expires: unix_now() - 1,
    };
    let expired = key(&app).sign(grant);
    assert_eq!(
        status_of(format!("/api/play/{expired}/master.m3u8")).await,
        (403, "invalid_link".into())
    );
    // The same grant, unexpired, works: so it was the expiry that was refused.
    grant.expires = unix_now() + 60;
    let fresh = key(&app).sign(grant);
    assert_eq!(
        status_of(format!("/api/play/{fresh}/master.m3u8")).await.0,
        200
    );
    // A name that is not an output of the task.
    assert_eq!(
        status_of(format!("/api/play/{fresh}/nothing.ts")).await.0,
        404
    );
    // Another user gets no links to this task, and a token naming another owner opens
    // nothing (repository calls are owner-scoped).
    let other = app.user("rosa").await;
    let r = app
        .get(&format!("/api/tasks/{id}/playback"), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    grant.user = owner_of(&other);
    let foreign = key(&app).sign(grant);
    assert_eq!(
        status_of(format!("/api/play/{foreign}/master.m3u8"))
            .await
            .0,
        404
    );
    // A disabled owner's links stop working.
    assert!(app.worker.db.set_user_disabled("quin", true).await.unwrap());
    assert_eq!(status_of(master).await.0, 404);
}

/// The user id of a bearer token's owner (its `sub` claim).
fn owner_of(token: &str) -> uuid::Uuid {
    use base64::Engine;
    let claims = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["sub"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn stored_files_are_never_served_as_html_or_svg() {
    let app = spawn_app().await;
    let t = app.user("sven").await;
    for (name, body) in [
        (
            "x.html",
            "<html><script>alert(document.cookie)</script></html>",
        ),
        (
            "x.svg",
            r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#,
        ),
    ] {
        let r = app.upload(&t, name, body.as_bytes().to_vec(), &[]).await;
        assert_eq!(r.status(), 201);
        let id = id_of(r).await;
        app.drain().await; // fails (not media): no output, the input stays
        for path in [
            format!("/api/tasks/{id}/input"),
            format!("/api/files/{name}"),
        ] {
            let r = app.get(&path, &t).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let h = r.headers();
            let ct = h["content-type"].to_str().unwrap();
            assert_eq!(ct, "application/octet-stream", "{path}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert!(
                h["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment")
            );
            assert!(
                h["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("sandbox")
            );
        }
        // Playback and share routes serve outputs only: the upload is not reachable there.
        let l = links(&app, &t, &id).await;
        let base = l["baseUrl"].as_str().unwrap();
        let r = app
            .client
            .get(app.url(&format!("{base}{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let share: Value = app
            .post(&format!("/api/tasks/{id}/shares"), &t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let shared = format!("{}{name}", share["url"].as_str().unwrap());
        let r = app.client.get(app.url(&shared)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_ne!(
            r.headers().get("content-type").map(|v| v.to_str().unwrap()),
            Some("text/html")
        );
    }
}
