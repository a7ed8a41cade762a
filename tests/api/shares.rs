//! Share links: created, listed and revoked by the task's owner only; a revoked, expired or
//! deleted task's link answers 404; ffprobe reads an HLS output through one.

use reelforge_testkit::app::*;
use reelforge_testkit::clips::probe_url;
use serde_json::{Value, json};

use crate::playback::hls_task;
use crate::sessions::browser;

async fn share(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.post(&format!("/api/tasks/{id}/shares"), token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn status(app: &TestApp, path: &str) -> u16 {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn a_share_link_plays_until_it_is_revoked_and_only_its_owner_manages_it() {
    let app = spawn_app().await;
    let t = app.user("ada").await;
    let id = hls_task(&app, &t).await;
    let r = share(&app, &t, &id, None).await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    let url = s["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/s/") && url.ends_with('/'), "{s}");
    let expires: chrono::DateTime<chrono::Utc> = s["expiresAt"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((days - 7.0).abs() < 0.1, "{days}");
    let master = format!("{url}master.m3u8");
    assert!(
        s["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["url"] == master.as_str())
    );

    // ffprobe reads it with no header.
    let p = probe_url(&app.url(&master)).await.unwrap();
    assert_eq!(p["format"]["format_name"], "hls");
    let r = app.client.get(app.url(&master)).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    // A made-up token, or a real one with one character changed, opens nothing.
    assert_eq!(
        status(
            &app,
            "/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/master.m3u8"
        )
        .await,
        404
    );

    // Listed (without its URL: only its hash is kept).
    let listed: Value = app
        .get(&format!("/api/tasks/{id}/shares"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], s["id"]);
    assert!(listed[0].get("url").is_none());

    // Another user: the task does not exist for them, nor its shares.
    let eve = app.user("eve").await;
    let share_path = format!("/api/tasks/{id}/shares/{}", s["id"].as_str().unwrap());
    assert_eq!(share(&app, &eve, &id, None).await.status(), 404);
    let r = app
        .get(&format!("/api/tasks/{id}/shares"), &eve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app.delete(&share_path, &eve).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(status(&app, &master).await, 200);

    // Revoked by its owner: 404 from then on, and gone from the list.
    let r = app.delete(&share_path, &t).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(status(&app, &master).await, 404);
    let r = app.delete(&share_path, &t).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let listed: Value = app
        .get(&format!("/api/tasks/{id}/shares"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn share_lifetimes_are_bounded_and_a_deleted_task_takes_its_shares() {
    let app = spawn_app().await;
    let t = app.user("boris").await;
    let id = hls_task(&app, &t).await;
    for bad in [
        json!({"expiresIn": 0}),
        json!({"expiresIn": 7_776_001}),
        json!({"expiresIn": "1h"}),
    ] {
        let r = share(&app, &t, &id, Some(bad.clone())).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // JSON has one number type: a whole number written with a fraction is that number.
    let r = share(&app, &t, &id, Some(json!({"expiresIn": 3600.0}))).await;
    assert_eq!(r.status(), 201);
    let r = share(&app, &t, &id, Some(json!({"expiresIn": 1}))).await;
    assert_eq!(r.status(), 201);
    let short: Value = r.json().await.unwrap();
    let r = share(&app, &t, &id, Some(json!({"expiresIn": 7_776_000}))).await;
    let long: Value = r.json().await.unwrap();
    let short_url = format!("{}master.m3u8", short["url"].as_str().unwrap());
    let long_url = format!("{}master.m3u8", long["url"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(status(&app, &short_url).await, 404, "expired");
    assert_eq!(status(&app, &long_url).await, 200);
    // Deleting the task deletes its shares.
    let r = app
        .delete(&format!("/api/tasks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(status(&app, &long_url).await, 404);
    let r = app
        .get(&format!("/api/tasks/{id}/shares"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_browser_session_manages_shares_with_its_csrf_token() {
    let app = spawn_app().await;
    let b = browser(&app, "cyril").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"not media".to_vec()).file_name("a.mp4"),
    );
    let r = b
        .send(&app, reqwest::Method::POST, "/api/tasks")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    let path = format!("/api/tasks/{id}/shares");
    // Without the CSRF token: refused.
    let r = app
        .client
        .post(app.url(&path))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .send(&app, reqwest::Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let listed: Value = b
        .get(&app, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
