use reelforge_testkit::app::*;
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_root_and_metrics() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/readyz"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let t = app.user("pat").await;
    app.post("/api/tasks", &t)
        .json(&json!({"url": "http://93.184.216.34/a.mp4"}))
        .send()
        .await
        .unwrap();
    app.get("/api/tasks", &t).send().await.unwrap();
    let text = app.metrics().await;
    assert!(
        text.contains(
            "reelforge_http_requests_total{method=\"GET\",route=\"/api/tasks\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("reelforge_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("reelforge_tasks{status=\"queued\"}"),
        "{text}"
    );
    // Read at scrape (their values are checked per process in tests/e2e/operability.rs:
    // this test binary's apps share one recorder).
    for name in ["reelforge_queue_oldest_seconds ", "reelforge_ready "] {
        assert!(text.contains(name), "{name}: {text}");
    }
    let unknown = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await, (404, "not_found".into()));
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    std::fs::remove_dir_all(app.data_dir.path().join("objects")).unwrap();
    std::fs::write(app.data_dir.path().join("objects"), b"not a directory").unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(error_code(r).await, (503, "not_ready".into()));
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_work_offline() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/auth/signup", vec!["post"]),
        ("/api/auth/login", vec!["post"]),
        ("/api/tasks", vec!["get", "post"]),
        ("/api/tasks/{id}", vec!["get", "delete"]),
        ("/api/tasks/{id}/cancel", vec!["post"]),
        ("/api/tasks/{id}/retry", vec!["post"]),
        ("/api/tasks/{id}/events", vec!["get"]),
        ("/api/tasks/{id}/outputs/{name}", vec!["get"]),
        ("/api/tasks/{id}/input", vec!["get"]),
        ("/api/files/{filename}", vec!["get"]),
        ("/", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/auth/signup", vec!["post"]),
        ("/auth/login", vec!["post"]),
        ("/tasks", vec!["get", "post"]),
        ("/tasks/{id}", vec!["get", "delete"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(m)).is_some(),
                "{m} {path} missing"
            );
        }
    }
    assert_eq!(paths["/tasks"]["get"]["tags"][0], "aliases");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["TaskView"].is_object());
    // The in-process document equals the served one.
    let local = serde_json::to_value(reelforge::http::openapi()).unwrap();
    assert_eq!(local, doc);
    // Swagger UI and its assets come from the binary.
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "docs page must not load remote assets"
    );
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let r = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
}

/// The video platform's legacy Postman collection: JSON content type on every call, GET and DELETE included,
/// against the paths without /api.
#[tokio::test]
async fn seed_a_client_flow_on_alias_paths() {
    let app = spawn_app().await;
    let ct = ("Content-Type", "application/json");
    let r = app
        .client
        .post(app.url("/auth/signup"))
        .header(ct.0, ct.1)
        .body(r#"{"username": "admin", "email": "admin@gmail.com", "password": "Admin123", "password_2": "Admin123"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(ct.0, ct.1)
        .body(r#"{"email": "admin@gmail.com", "password": "Admin123"}"#)
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .post(app.url("/tasks"))
        .header(ct.0, ct.1)
        .bearer_auth(&token)
        .body(r#"{"url": "https://93.184.216.34/video/2023/06/28/169249-840702546_large.mp4"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    let r = app
        .client
        .get(app.url("/tasks?max=4&order=1"))
        .header(ct.0, ct.1)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 1);
    let r = app
        .client
        .get(app.url(&format!("/tasks/{id}")))
        .header(ct.0, ct.1)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["profile"], "idrl");
    let r = app
        .client
        .delete(app.url(&format!("/tasks/{id}")))
        .header(ct.0, ct.1)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .client
        .get(app.url(&format!("/tasks/{id}")))
        .header(ct.0, ct.1)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The load balancer's health check.
    assert_eq!(
        app.client.get(app.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn events_stream_ends_after_the_final_state() {
    let app = spawn_app().await;
    let t = app.user("quinn").await;
    let task: Value = app
        .post("/api/tasks", &t)
        .json(&json!({"url": "http://93.184.216.34/a.mp4"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    let stream = app
        .get(&format!("/api/tasks/{id}/events"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let body = tokio::spawn(async move { stream.text().await.unwrap() });
    app.post(&format!("/api/tasks/{id}/cancel"), &t)
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), body)
        .await
        .expect("stream did not end after the final state")
        .unwrap();
    let statuses: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| {
            serde_json::from_str::<Value>(d.trim()).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, vec!["queued", "cancelled"], "{text}");
}

/// A `reelforge worker` process answers health, readiness and metrics (for orchestrator
/// probes and queue-depth scraping) and nothing of the API.
#[tokio::test]
async fn a_worker_serves_probes_and_metrics_but_no_api() {
    let worker = spawn_app_with(Options {
        role: Some(reelforge::startup::Role::Worker),
        ..Default::default()
    })
    .await;
    for path in ["/healthz", "/readyz"] {
        let r = worker.client.get(worker.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let text = worker.metrics().await;
    assert!(
        text.contains("reelforge_tasks{status=\"queued\"}"),
        "{text}"
    );
    for path in ["/api/tasks", "/", "/docs/", "/api/openapi.json"] {
        let r = worker.client.get(worker.url(path)).send().await.unwrap();
        assert_eq!(error_code(r).await, (404, "not_found".into()), "{path}");
    }
    let r = worker
        .client
        .post(worker.url("/api/auth/signup"))
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Made-up methods and random paths share the `other` and `unmatched` labels: a client cannot
/// grow `/metrics` by inventing requests (2,000 of them once made it 92 MB).
#[tokio::test]
async fn metrics_labels_stay_in_a_closed_set_whatever_clients_send() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let tag = id[id.len() - 8..].to_uppercase();
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("X{tag}{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            "/healthz".to_string()
        } else {
            format!("/nowhere/{tag}/{i}")
        };
        let r = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        let r = app
            .client
            .get(app.url(&format!("/random/{tag}/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let text = app.metrics().await;
    assert!(!text.contains(&tag), "a request's own text became a label");
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("reelforge_http_requests_total{"))
        .collect();
    for line in &requests {
        let method = label(line, "method");
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
                "other"
            ]
            .contains(&method),
            "{line}"
        );
        let route = label(line, "route");
        assert!(route == "unmatched" || route.starts_with('/'), "{line}");
    }
    let unmatched = requests
        .iter()
        .filter(|l| label(l, "route") == "unmatched")
        .count();
    assert!(unmatched <= 10, "{requests:#?}");
    assert!(
        text.contains(r#"method="other",route="/healthz",status="405""#),
        "{text}"
    );
    assert!(text.len() < 256 * 1024, "{} bytes", text.len());
}

/// The value of label `name` in a Prometheus sample line.
fn label<'a>(line: &'a str, name: &str) -> &'a str {
    let start = format!("{name}=\"");
    line.split_once(&start)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value)
        .unwrap_or("")
}
