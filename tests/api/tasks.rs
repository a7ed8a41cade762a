use reelforge_testkit::app::*;
use serde_json::{Value, json};

#[tokio::test]
async fn url_submission_rules() {
    let app = spawn_app().await;
    let t = app.user("ivan").await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "missing_field"),
        (json!({"url": 5}), 400, "invalid_field"),
        (json!({"url": "not a url"}), 400, "invalid_url"),
        (
            json!({"url": "ftp://example.com/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (json!({"url": "file:///etc/passwd"}), 422, "url_not_allowed"),
        (
            json!({"url": "http://127.0.0.1/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (json!({"url": "http://[::1]/a.mp4"}), 422, "url_not_allowed"),
        (
            json!({"url": "http://[::ffff:127.0.0.1]/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            422,
            "url_not_allowed",
        ),
        (
            json!({"url": "http://10.0.0.7/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (
            json!({"url": "http://100.64.0.1/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (
            json!({"url": "http://localhost:9/a.mp4"}),
            422,
            "url_not_allowed",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "profile": "nope"}),
            400,
            "invalid_profile",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "profile": "convert"}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "format": "webp"}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "format": "gif", "options": {"fps": 50}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "profile": "compress", "options": {}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "profile": "thumbnail", "options": {"count": 0}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "profile": "hls", "options": {"heights": [999]}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "options": []}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "options": {"fps": "fast"}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "options": {"fps": 500}}),
            400,
            "invalid_options",
        ),
        (
            json!({"url": "http://93.184.216.34/a.mp4", "options": {"background": "black:x=1[a];"}}),
            400,
            "invalid_options",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post("/api/tasks", &t).json(&body).send().await.unwrap();
        assert_eq!(error_code(r).await, (status, code.to_string()), "{body}");
    }
    // Option errors name the option.
    let r = app
        .post("/api/tasks", &t)
        .json(&json!({"url": "http://93.184.216.34/a.mp4", "options": {"fps": 500}}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("fps"), "{v}");
    // None of it left a task behind.
    let list: Vec<Value> = app
        .get("/api/tasks", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn url_task_is_created_queued_with_location_and_defaults() {
    let app = spawn_app().await;
    let t = app.user("judy").await;
    let r = app
        .post("/tasks", &t)
        .json(&json!({"url": "http://93.184.216.34/videos/clip.mp4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let task: Value = r.json().await.unwrap();
    assert_eq!(loc, format!("/api/tasks/{}", task["id"].as_str().unwrap()));
    assert_eq!(task["status"], "queued");
    assert_eq!(task["profile"], "idrl");
    assert_eq!(task["options"]["segment_seconds"], json!(20));
    assert_eq!(task["options"]["bumper_seconds"], json!(1));
    assert!(
        task["options"]["segment_seconds"].is_u64(),
        "whole seconds print as integers"
    );
    assert_eq!(task["options"]["aspect"], "16:9");
    assert_eq!(task["options"]["fit"], "crop");
    assert_eq!(task["options"]["fps"], 24);
    assert_eq!(
        task["source"],
        json!({"kind": "url", "url": "http://93.184.216.34/videos/clip.mp4"})
    );
    assert_eq!(task["attempts"], 0);
    assert_eq!(task["progress"]["percent"], 0.0);
    assert!(task["error"].is_null());
    let id = uuid::Uuid::parse_str(task["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let got: Value = app
        .get(&loc, &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], task["id"]);
    assert!(chrono::DateTime::parse_from_rfc3339(got["created_at"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn list_paginates_with_order_status_and_link() {
    let app = spawn_app().await;
    let t = app.user("ken").await;
    let mut ids = vec![];
    for i in 0..5 {
        let v: Value = app
            .post("/api/tasks", &t)
            .json(&json!({"url": format!("http://93.184.216.34/{i}.mp4")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // Legacy paging: ?max=4&order=1 → newest four, a JSON array, and a next link.
    let r = app.get("/tasks?max=4&order=1", &t).send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let page: Vec<Value> = r.json().await.unwrap();
    let got: Vec<&str> = page.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let mut expect: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(got, expect[..4]);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let r = app.get(next, &t).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], expect[4]);
    // Ascending.
    let page: Vec<Value> = app
        .get("/api/tasks?order=0&max=2", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    expect.reverse();
    assert_eq!(page[0]["id"], expect[0]);
    assert_eq!(page[1]["id"], expect[1]);
    // Status filter.
    app.post(&format!("/api/tasks/{}/cancel", ids[0]), &t)
        .send()
        .await
        .unwrap();
    let page: Vec<Value> = app
        .get("/api/tasks?status=cancelled", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], ids[0]);
    let page: Vec<Value> = app
        .get("/api/tasks?status=queued", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 4);
    for bad in [
        "max=0",
        "max=1001",
        "max=x",
        "order=2",
        "status=lost",
        "cursor=zzz",
    ] {
        let r = app
            .get(&format!("/api/tasks?{bad}"), &t)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await, (400, "invalid_query".into()), "{bad}");
    }
}

#[tokio::test]
async fn cancel_retry_delete_lifecycle() {
    let app = spawn_app().await;
    let t = app.user("leo").await;
    let task: Value = app
        .post("/api/tasks", &t)
        .json(&json!({"url": "http://93.184.216.34/a.mp4"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_str().unwrap();
    let retry = app
        .post(&format!("/api/tasks/{id}/retry"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(retry).await, (409, "not_retryable".into()));
    let c = app
        .post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), 200);
    let v: Value = c.json().await.unwrap();
    assert_eq!(v["status"], "cancelled");
    assert!(v["finished_at"].is_string());
    let again = app
        .post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (409, "not_cancellable".into()));
    // A cancelled task is not picked up by workers.
    assert!(app.drain().await.is_empty());
    let r = app
        .post(&format!("/api/tasks/{id}/retry"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "queued");
    let d = app
        .delete(&format!("/api/tasks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 204);
    let d = app
        .delete(&format!("/api/tasks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(d).await, (404, "not_found".into()));
    assert!(
        app.drain().await.is_empty(),
        "a deleted task's job must be gone"
    );
    for bad in ["nope", "00000000-0000-0000-0000-000000000000"] {
        let r = app
            .get(&format!("/api/tasks/{bad}"), &t)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await, (404, "not_found".into()));
    }
}

#[tokio::test]
async fn users_never_see_each_others_tasks_or_files() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let r = app.upload(&alice, "secret.mp4", vec![7u8; 1000], &[]).await;
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    let id = task["id"].as_str().unwrap();
    let unknown = app
        .get("/api/tasks/00000000-0000-7000-8000-000000000000", &mallory)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (method, path) in [
        ("GET", format!("/api/tasks/{id}")),
        ("GET", format!("/tasks/{id}")),
        ("DELETE", format!("/api/tasks/{id}")),
        ("POST", format!("/api/tasks/{id}/cancel")),
        ("POST", format!("/api/tasks/{id}/retry")),
        ("GET", format!("/api/tasks/{id}/input")),
        ("GET", format!("/api/tasks/{id}/events")),
        ("GET", "/api/files/secret.mp4".to_string()),
    ] {
        let req = match method {
            "GET" => app.get(&path, &mallory),
            "POST" => app.post(&path, &mallory),
            _ => app.delete(&path, &mallory),
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let body = r.text().await.unwrap();
        assert_eq!(
            body, unknown,
            "{method} {path} must look like an unknown id"
        );
    }
    let list: Vec<Value> = app
        .get("/api/tasks", &mallory)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
    // The owner still has it.
    assert_eq!(
        app.get(&format!("/api/tasks/{id}"), &alice)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/files/secret.mp4", &alice)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A loopback server whose every answer is `503 Service Unavailable`.
async fn unavailable_server() -> String {
    let router = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try later") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_task_waiting_to_retry_shows_the_failed_attempt_and_the_next_try() {
    let app = spawn_app_with(Options {
        fetch_allow: Some("127.0.0.1".into()),
        retry_base: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    })
    .await;
    let t = app.user("lena").await;
    let server = unavailable_server().await;
    let r = app
        .post("/api/tasks", &t)
        .json(&json!({"url": format!("{server}/clip.mp4")}))
        .send()
        .await
        .unwrap();
    let id = id_of(r).await;
    let before = chrono::Utc::now();
    app.drain().await;
    let v = app.task(&t, &id).await;
    // Still queued (it will be tried again), but saying why and when.
    assert_eq!(v["status"], "queued", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(v["error"]["code"], "http_status", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("503"),
        "{v}"
    );
    let next = chrono::DateTime::parse_from_rfc3339(v["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let wait = next - before;
    assert!(
        wait > chrono::TimeDelta::seconds(29) && wait < chrono::TimeDelta::seconds(32),
        "first retry after 30 s: {wait}"
    );
    // The list shows the same; a cancel ends the wait.
    let list: Vec<Value> = app
        .get("/api/tasks", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["next_attempt_at"], v["next_attempt_at"]);
    let cancelled: Value = app
        .post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["error"].is_null() && cancelled["next_attempt_at"].is_null());
}

#[tokio::test]
async fn list_can_leave_out_commands() {
    let app = spawn_app().await;
    let t = app.user("mona").await;
    for i in 0..2 {
        app.post("/api/tasks", &t)
            .json(&json!({"url": format!("http://93.184.216.34/{i}.mp4")}))
            .send()
            .await
            .unwrap();
    }
    let list = |query: &'static str| {
        let (app, t) = (&app, &t);
        async move {
            app.get(&format!("/api/tasks{query}"), t)
                .send()
                .await
                .unwrap()
        }
    };
    let full: Vec<Value> = list("").await.json().await.unwrap();
    assert!(full.iter().all(|v| v["commands"].is_array()), "{full:?}");
    for query in ["?commands=false", "?commands=0"] {
        let lean: Vec<Value> = list(query).await.json().await.unwrap();
        assert_eq!(lean.len(), 2);
        assert!(
            lean.iter()
                .all(|v| v.get("commands").is_none() && v["status"] == "queued"),
            "{lean:?}"
        );
    }
    // The next page keeps asking for the same.
    let r = list("?max=1&commands=false").await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("commands=false"), "{link}");
    let r = list("?commands=maybe").await;
    assert_eq!(error_code(r).await, (400, "invalid_query".into()));
    // A single task always has them.
    let one = app.task(&t, full[0]["id"].as_str().unwrap()).await;
    assert!(one["commands"].is_array());
}

/// (event, id, data) of each event of a Server-Sent Events body.
fn sse_events(text: &str) -> Vec<(String, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let (mut event, mut id, mut data) = (String::new(), String::new(), None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(v.trim()).unwrap());
                }
            }
            data.map(|d| (event, id, d))
        })
        .collect()
}

/// The first event of a stream that stays open.
async fn first_event(r: &mut reqwest::Response) -> (String, String, Value) {
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk())
            .await
            .expect("an event")
            .unwrap()
            .expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    sse_events(&text).remove(0)
}

#[tokio::test]
async fn event_ids_let_a_client_resume_without_duplicates() {
    let app = spawn_app().await;
    let t = app.user("nell").await;
    let events = |id: String, last: Option<String>| {
        let (app, t) = (&app, &t);
        async move {
            let mut req = app.get(&format!("/api/tasks/{id}/events"), t);
            if let Some(last) = last {
                req = req.header("last-event-id", last);
            }
            req.send().await.unwrap()
        }
    };
    let create = || async {
        let r = app
            .post("/api/tasks", &t)
            .json(&json!({"url": "http://93.184.216.34/a.mp4"}))
            .send()
            .await
            .unwrap();
        id_of(r).await
    };

    // A live stream: the first event is the whole task, with an id.
    let id = create().await;
    let mut live = events(id.clone(), None).await;
    assert_eq!(live.status(), 200);
    let (event, queued_tag, data) = first_event(&mut live).await;
    assert_eq!(
        (event.as_str(), &data["status"]),
        ("task", &json!("queued"))
    );
    assert!(data["commands"].is_array(), "{data}");
    assert!(!queued_tag.is_empty());
    // A client reconnecting with that id gets nothing again, only what comes next.
    let resumed = events(id.clone(), Some(queued_tag.clone())).await;
    app.post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), resumed.text())
        .await
        .expect("the stream ends after the final state")
        .unwrap();
    let got = sse_events(&text);
    assert_eq!(got.len(), 1, "{text}");
    let (event, final_tag, data) = &got[0];
    assert_eq!(
        (event.as_str(), &data["status"]),
        ("task", &json!("cancelled"))
    );
    assert_ne!(final_tag, &queued_tag);
    // The first stream saw the same change, under the same id (every process agrees).
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), live.text())
        .await
        .unwrap()
        .unwrap();
    let rest = sse_events(&rest);
    assert_eq!(rest.len(), 1);
    assert_eq!(&rest[0].1, final_tag);

    // A client that already has the final state is told there is nothing more.
    let done = events(id.clone(), Some(final_tag.clone())).await;
    assert_eq!(done.status(), 204);
    // One with an older state gets the current one, once, and the stream ends.
    let stale = events(id.clone(), Some(queued_tag)).await;
    let got = sse_events(&stale.text().await.unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0].1, &got[0].2["status"]),
        (final_tag, &json!("cancelled"))
    );
}
