//! The read cache (`src/db/cache.rs`) seen from outside: clients read their own writes at
//! once, no one is served another's entry, a disabled account or a revoked key is refused at
//! once on the process that changed it and within a second on another API process
//! (PostgreSQL's change feed), and repeated reads are served from memory.

use reelforge_testkit::app::*;
use reelforge_testkit::pg::PgDatabase;
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    }
}

/// A task that stays queued (the app runs no worker).
async fn url_task(app: &TestApp, token: &str) -> String {
    let body = json!({"url": "http://127.0.0.1:9/a.mp4"});
    let r = app.post_json_as("/api/tasks", token, &body).await;
    assert_eq!(r.status(), 201);
    id_of(r).await
}

async fn listed(app: &TestApp, token: &str) -> Vec<String> {
    let (status, list) = app.get_json("/api/tasks", token).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    let (code, task) = app.get_json(&format!("/api/tasks/{id}"), token).await;
    (code, task["status"].clone())
}

#[tokio::test]
async fn clients_read_their_own_writes_at_once() {
    let app = spawn_app_with(options()).await;
    let t = app.user("ana").await;
    assert!(listed(&app, &t).await.is_empty());
    let id = url_task(&app, &t).await;
    assert_eq!(listed(&app, &t).await, std::slice::from_ref(&id));
    assert_eq!(status_of(&app, &t, &id).await, (200, json!("queued")));
    assert_eq!(app.task_action(&t, &id, "cancel").await.status(), 200);
    assert_eq!(status_of(&app, &t, &id).await, (200, json!("cancelled")));
    assert_eq!(app.task_action(&t, &id, "retry").await.status(), 200);
    assert_eq!(status_of(&app, &t, &id).await, (200, json!("queued")));
    assert_eq!(app.delete_task(&t, &id).await.status(), 204);
    assert_eq!(status_of(&app, &t, &id).await.0, 404);
    assert!(listed(&app, &t).await.is_empty());
}

#[tokio::test]
async fn repeated_reads_are_served_from_memory() {
    let app = spawn_app_with(options()).await;
    let t = app.user("ana").await;
    let id = url_task(&app, &t).await;
    let before = app.worker.signals.reads().stats();
    for _ in 0..10 {
        assert_eq!(status_of(&app, &t, &id).await.0, 200);
    }
    let after = app.worker.signals.reads().stats();
    // Two look-ups a request (the account, the task); all but the first few are hits
    // unless the machine stalls for longer than an entry lives.
    assert_eq!(after.hits + after.misses - before.hits - before.misses, 20);
    assert!(after.hits - before.hits >= 2, "{before:?} {after:?}");
}

#[tokio::test]
async fn another_users_task_is_never_served() {
    let app = spawn_app_with(options()).await;
    let (ana, bob) = (app.user("ana").await, app.user("bob").await);
    let id = url_task(&app, &ana).await;
    assert_eq!(status_of(&app, &ana, &id).await.0, 200);
    assert_eq!(listed(&app, &ana).await, std::slice::from_ref(&id));
    for _ in 0..2 {
        assert_eq!(status_of(&app, &bob, &id).await.0, 404);
        assert!(listed(&app, &bob).await.is_empty());
    }
    assert_eq!(status_of(&app, &ana, &id).await.0, 200);
}

async fn make_key(app: &TestApp, login: &str) -> (String, String) {
    let r = app
        .post_json_as("/api/keys", login, &json!({"name": "script"}))
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let field = |k: &str| made[k].as_str().unwrap().to_string();
    (field("id"), field("token"))
}

async fn disable(app: &TestApp, admin: &str, user: &str) {
    let r = app
        .client
        .patch(app.url(&format!("/api/admin/users/{user}")))
        .bearer_auth(admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

async fn revoke(app: &TestApp, login: &str, key_id: &str) {
    let r = app
        .delete(&format!("/api/keys/{key_id}"), login)
        .send()
        .await;
    assert_eq!(r.unwrap().status(), 204);
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let (_, me) = app.get_json("/api/me", token).await;
    me["user"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_disabled_account_and_a_revoked_key_are_refused_at_once() {
    let app = spawn_app_with(options()).await;
    let root = app.admin("root").await;
    let ana = app.user("ana").await;
    let (key_id, key) = make_key(&app, &ana).await;
    assert_eq!(listed(&app, &key).await.len(), 0);
    revoke(&app, &ana, &key_id).await;
    assert_eq!(app.get_json("/api/tasks", &key).await.0, 401);

    let id = user_id(&app, &ana).await;
    assert_eq!(app.get_json("/api/tasks", &ana).await.0, 200);
    disable(&app, &root, &id).await;
    assert_eq!(app.get_json("/api/tasks", &ana).await.0, 401);
}

#[tokio::test]
async fn another_api_process_sees_changes_within_a_second() {
    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let on_pg = || Options {
        database_url: Some(pg.url.clone()),
        ..options()
    };
    let (a, b) = (spawn_app_with(on_pg()).await, spawn_app_with(on_pg()).await);
    let root = a.admin("root").await;
    let ana = a.user("ana").await;
    // API keys work on either process (a login token is signed with one process's secret).
    let (first_id, first) = make_key(&a, &ana).await;
    let (_, second) = make_key(&a, &ana).await;
    let id = url_task(&a, &ana).await;
    assert_eq!(status_of(&b, &first, &id).await, (200, json!("queued")));
    assert_eq!(listed(&b, &second).await, std::slice::from_ref(&id));

    assert_eq!(a.task_action(&ana, &id, "cancel").await.status(), 200);
    within_a_second("the cancel", || async {
        status_of(&b, &first, &id).await == (200, json!("cancelled"))
    })
    .await;
    let made = url_task(&a, &ana).await;
    within_a_second("the new task", || async {
        listed(&b, &second).await.contains(&made)
    })
    .await;

    revoke(&a, &ana, &first_id).await;
    within_a_second("the revoked key", || async {
        b.get_json("/api/tasks", &first).await.0 == 401
    })
    .await;
    assert_eq!(b.get_json("/api/tasks", &second).await.0, 200);

    disable(&a, &root, &user_id(&a, &ana).await).await;
    within_a_second("the disabled account", || async {
        b.get_json("/api/tasks", &second).await.0 == 401
    })
    .await;
}
