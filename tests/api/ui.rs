//! The web UI's server side: its page and files (embedded, with a strict CSP), the session
//! the page carries, the profiles its forms are built from, and the user-wide event stream
//! its task list follows. The UI itself runs in a real browser in tests/browser.

use reelforge_testkit::app::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script id="session" type="application/json">null</script>"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external resource"
    );
    let mut total = html.len();
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = app
            .client
            .get(app.url(&format!("/ui/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        total += r.bytes().await.unwrap().len();
    }
    assert!(total < 200 * 1024, "the first load is {total} bytes");
    let r = app
        .client
        .get(app.url("/ui/nonesuch.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_page_carries_the_browser_session_escaped() {
    let app = spawn_app().await;
    app.signup("pia").await;
    let r = app
        .client
        .post(app.url("/api/session"))
        .json(&json!({"username": "pia", "password": "Secret123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let session: Value = r.json().await.unwrap();
    let page = app
        .client
        .get(app.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let start = html
        .find(r#"<script id="session" type="application/json">"#)
        .unwrap();
    let data = &html[start..];
    let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
    assert!(!data.contains('<'));
    let carried: Value = serde_json::from_str(data).unwrap();
    assert_eq!(carried["csrfToken"], session["csrfToken"]);
    assert_eq!(carried["user"]["username"], "pia");
}

#[tokio::test]
async fn profiles_are_the_schemas_the_api_validates_with() {
    let app = spawn_app().await;
    let r: Value = app
        .client
        .get(app.url("/api/profiles"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = r["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["idrl", "convert", "compress", "thumbnail", "hls", "archive"]
    );
    let doc = reelforge::http::openapi();
    for p in r["profiles"].as_array().unwrap() {
        let component = reelforge::http::openapi::options_component(p["name"].as_str().unwrap());
        assert_eq!(
            p["options"], doc["components"]["schemas"][&component],
            "{component}"
        );
    }
}

#[tokio::test]
async fn the_user_event_stream_pushes_changes_of_the_callers_tasks_only() {
    let app = spawn_app().await;
    let t = app.user("eve").await;
    let other = app.user("mallory").await;
    let mut events = app.get("/api/events", &t).send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Another user's task: nothing; the caller's: a `task` event, then `deleted`.
    app.upload(&other, "x.mp4", vec![1; 100], &[]).await;
    let id = id_of(app.upload(&t, "mine.mp4", vec![1; 100], &[]).await).await;
    let mut seen = String::new();
    while !seen.contains("event: task") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.chunk())
            .await
            .expect("no event within 10 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(&id), "{seen}");
    assert!(
        !seen.contains("x.mp4"),
        "another user's task was pushed: {seen}"
    );
    assert!(!seen.contains("\"commands\""), "{seen}");
    assert_eq!(
        app.delete(&format!("/api/tasks/{id}"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    while !seen.contains("event: deleted") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.chunk())
            .await
            .expect("no deleted event within 10 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}
