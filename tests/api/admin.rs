//! Who may sign up (`REELFORGE_SIGNUP` open, invite or closed, with invite codes spent once)
//! and the admin view: only admins, every user and their tasks read-only, disabling
//! accounts, and the workers, queue and failures — on both database backends.

use std::time::Duration;

use chrono::Utc;
use reelforge::db::{NewInvite, WorkerBeat};
use reelforge::domain::{Stage, TaskError};
use reelforge_testkit::app::*;
use serde_json::{Value, json};

fn signup_body(name: &str, invite: Option<&str>) -> Value {
    let mut body = json!({"username": name, "email": format!("{name}@example.com"),
                          "password1": "Secret123", "password2": "Secret123"});
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    body
}

async fn signup(app: &TestApp, name: &str, invite: Option<&str>) -> (u16, String) {
    error_code(
        app.post_json("/api/auth/signup", &signup_body(name, invite))
            .await,
    )
    .await
}

async fn mode(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/api/auth/signup"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["mode"].clone()
}

async fn invite(app: &TestApp, admin: &str, body: Value) -> (String, Value) {
    let r = app.post_json_as("/api/admin/invites", admin, &body).await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    (
        made["code"].as_str().unwrap().to_string(),
        made["invite"].clone(),
    )
}

#[tokio::test]
async fn signup_is_open_by_default_and_closed_when_set() {
    let app = spawn_app().await;
    assert_eq!(mode(&app).await, "open");
    assert_eq!(signup(&app, "anyone", None).await.0, 201);

    let app = spawn_app_with(Options {
        signup: Some("closed"),
        ..Default::default()
    })
    .await;
    assert_eq!(mode(&app).await, "closed");
    assert_eq!(
        signup(&app, "outsider", None).await,
        (403, "signup_closed".into())
    );
    // Not even with a code: closed means accounts come from an admin.
    assert_eq!(signup(&app, "outsider", Some("x")).await.0, 403);
    assert!(app.worker.db.list_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_invite_code_admits_one_signup_while_it_is_live() {
    let app = spawn_app_with(Options {
        signup: Some("invite"),
        ..Default::default()
    })
    .await;
    assert_eq!(mode(&app).await, "invite");
    // The first admin comes from the command line (here: the database directly).
    let db = &app.worker.db;
    let (code, new) = NewInvite::generate("", None, None).unwrap();
    db.create_invite(new).await.unwrap();
    assert_eq!(signup(&app, "root", Some(&code)).await.0, 201);
    assert!(db.set_user_admin("root", true).await.unwrap());
    let root = login(&app, "root").await;

    assert_eq!(
        signup(&app, "bob", None).await,
        (403, "invite_required".into())
    );
    assert_eq!(
        signup(&app, "bob", Some("not-a-code")).await,
        (403, "invalid_invite".into())
    );
    let (code, shown) = invite(&app, &root, json!({"note": "for Bob"})).await;
    assert_eq!(shown["note"], "for Bob");
    assert_eq!(shown["created_by"], "root");
    assert!(shown["used_by"].is_null());
    let in_days = chrono::DateTime::parse_from_rfc3339(shown["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
        - Utc::now();
    assert!((6..=7).contains(&in_days.num_days()), "{in_days}");
    // The code is never stored or listed as it is.
    let (_, list) = app.get_json("/api/admin/invites", &root).await;
    assert!(!list.to_string().contains(&code));

    // A signup refused for another reason leaves the code unspent.
    let r = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": "root", "email": "other@example.com", "invite": code,
                    "password1": "Secret123", "password2": "Secret123"}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "username_taken".into()));
    assert_eq!(signup(&app, "bob", Some(&code)).await.0, 201);
    // Spent: once only, and the signup it refuses creates nothing.
    assert_eq!(
        signup(&app, "carol", Some(&code)).await,
        (403, "invalid_invite".into())
    );
    assert!(login_status(&app, "carol").await == 401);
    let (_, list) = app.get_json("/api/admin/invites", &root).await;
    let used = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["note"] == "for Bob")
        .unwrap();
    assert_eq!(used["used_by"], "bob");
    assert!(used["used_at"].is_string());
    // A used code cannot be withdrawn; an unused one can, and then it admits nobody.
    let path = format!("/api/admin/invites/{}", used["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &root).send().await.unwrap().status(), 404);
    let (code, shown) = invite(&app, &root, json!({"expires_in_days": 1})).await;
    let path = format!("/api/admin/invites/{}", shown["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, &root).send().await.unwrap().status(), 204);
    assert_eq!(signup(&app, "carol", Some(&code)).await.1, "invalid_invite");
    // An expired code admits nobody.
    let (code, mut new) = NewInvite::generate("", None, Some(1)).unwrap();
    new.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
    db.create_invite(new).await.unwrap();
    assert_eq!(signup(&app, "carol", Some(&code)).await.1, "invalid_invite");
    // Lifetimes out of bounds are refused with words.
    for days in [0, 366] {
        let r = app
            .post_json_as(
                "/api/admin/invites",
                &root,
                &json!({"expires_in_days": days}),
            )
            .await;
        assert_eq!(error_code(r).await, (400, "invalid_field".into()));
    }
}

async fn login_status(app: &TestApp, name: &str) -> u16 {
    app.post_json(
        "/api/auth/login",
        &json!({"username": name, "password": "Secret123"}),
    )
    .await
    .status()
    .as_u16()
}

async fn login(app: &TestApp, name: &str) -> String {
    let r = app
        .post_json(
            "/api/auth/login",
            &json!({"username": name, "password": "Secret123"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn only_admins_reach_the_admin_view() {
    let app = spawn_app().await;
    let user = app.user("plain").await;
    for path in [
        "/api/admin/overview",
        "/api/admin/users",
        "/api/admin/invites",
    ] {
        assert_eq!(
            error_code(app.get(path, &user).send().await.unwrap()).await,
            (403, "admin_only".into()),
            "{path}"
        );
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = app
        .post_json_as("/api/admin/invites", &user, &json!({}))
        .await;
    assert_eq!(error_code(r).await, (403, "admin_only".into()));
    let (_, me) = app.get_json("/api/account", &user).await;
    assert_eq!(me["user"]["admin"], false);
}

#[tokio::test]
async fn an_admin_sees_every_users_tasks_and_disables_accounts() {
    let app = spawn_app().await;
    let root = app.admin("root").await;
    let (_, me) = app.get_json("/api/account", &root).await;
    assert_eq!(me["user"]["admin"], true);
    let alice = app.user("alice").await;
    let r = app.upload(&alice, "a.txt", b"x".to_vec(), &[]).await;
    let task = id_of(r).await;

    let (status, users) = app.get_json("/api/admin/users", &root).await;
    assert_eq!(status, 200);
    let names: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].clone(), u["admin"].clone()))
        .collect();
    assert_eq!(
        names,
        [(json!("root"), json!(true)), (json!("alice"), json!(false))]
    );
    assert_eq!(
        (
            users[0]["stored_bytes"].clone(),
            users[1]["stored_bytes"].clone()
        ),
        (json!(0), json!(1))
    );
    let alice_id = users[1]["id"].as_str().unwrap().to_string();
    let (status, tasks) = app
        .get_json(&format!("/api/admin/users/{alice_id}/tasks"), &root)
        .await;
    assert_eq!(status, 200);
    assert_eq!(tasks[0]["id"], task.as_str());
    let (status, one) = app
        .get_json(&format!("/api/admin/users/{alice_id}/tasks/{task}"), &root)
        .await;
    assert_eq!((status, one["id"].clone()), (200, json!(task)));
    // Read-only: the admin's own task routes do not reach another user's task.
    let r = app
        .delete(&format!("/api/tasks/{task}"), &root)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, _) = app
        .get_json(
            &format!("/api/admin/users/{}/tasks", uuid::Uuid::now_v7()),
            &root,
        )
        .await;
    assert_eq!(status, 404);

    // Disabled: every credential of the account stops at once; enabled: works again.
    let patch = |id: &str, disabled: bool| {
        app.client
            .patch(app.url(&format!("/api/admin/users/{id}")))
            .bearer_auth(&root)
            .json(&json!({ "disabled": disabled }))
            .send()
    };
    let r = patch(&alice_id, true).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(app.get_json("/api/tasks", &alice).await.0, 401);
    assert_eq!(login_status(&app, "alice").await, 401);
    assert_eq!(patch(&alice_id, false).await.unwrap().status(), 200);
    assert_eq!(app.get_json("/api/tasks", &alice).await.0, 200);
    // Not one's own account (that would lock the admin out).
    let root_id = users[0]["id"].as_str().unwrap();
    assert_eq!(
        error_code(patch(root_id, true).await.unwrap()).await,
        (403, "own_account".into())
    );
    // A read-only key of an admin reads the view and changes nothing.
    let r = app
        .post_json_as(
            "/api/keys",
            &root,
            &json!({"name": "dashboards", "scope": "read"}),
        )
        .await;
    let key = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get_json("/api/admin/overview", &key).await.0, 200);
    let r = app
        .client
        .patch(app.url(&format!("/api/admin/users/{alice_id}")))
        .bearer_auth(&key)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (403, "insufficient_scope".into()));
}

#[tokio::test]
async fn the_overview_shows_workers_with_their_jobs_the_queue_and_failures() {
    let app = spawn_app().await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    for name in ["a.txt", "b.txt", "c.txt"] {
        app.upload(&alice, name, b"x".to_vec(), &[]).await;
    }
    let db = &app.worker.db;
    let beat = WorkerBeat {
        id: "box:42:w1".into(),
        host: "box".into(),
        pid: 42,
        slots: 2,
    };
    db.beat_worker(&beat, Duration::from_secs(3600))
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let running = db.claim("box:42:w1:0", lease).await.unwrap().unwrap();
    db.set_progress(&running, Stage::Processing, 40.0, Some(12.0))
        .await
        .unwrap();
    // A job whose worker stopped beating: orphaned until its lease runs out.
    let orphan = db.claim("gone:7:w0:0", lease).await.unwrap().unwrap();

    let (status, view) = app.get_json("/api/admin/overview", &root).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["signup"], "open");
    let workers = view["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{view}");
    let w = &workers[0];
    assert_eq!(
        (w["host"].clone(), w["pid"].clone(), w["slots"].clone()),
        (json!("box"), json!(42), json!(2))
    );
    assert_eq!(w["jobs"].as_array().unwrap().len(), 1);
    let job = &w["jobs"][0];
    assert_eq!(job["task_id"], running.task_id.to_string());
    assert_eq!(job["username"], "alice");
    assert_eq!(
        (job["stage"].clone(), job["percent"].clone()),
        (json!("processing"), json!(40.0))
    );
    assert_eq!(view["orphaned_jobs"].as_array().unwrap().len(), 1);
    assert_eq!(view["queue"]["running"], 2);
    assert_eq!(view["queue"]["due"], 1);
    assert!(view["queue"]["oldest_due_seconds"].as_f64().unwrap() >= 0.0);

    // Failures of the last day, by error code.
    for lease in [running, orphan] {
        let error = TaskError {
            code: "processing_failed".into(),
            message: "ffmpeg refused the input".into(),
        };
        assert!(db.fail(&lease, &error).await.unwrap());
    }
    let (_, view) = app.get_json("/api/admin/overview", &root).await;
    assert_eq!(view["failures_24h"][0]["code"], "processing_failed");
    assert_eq!(view["failures_24h"][0]["count"], 2);
    assert_eq!(view["queue"]["running"], 0);

    // A worker that says it stopped is gone at once.
    db.forget_worker("box:42:w1").await.unwrap();
    let (_, view) = app.get_json("/api/admin/overview", &root).await;
    assert!(view["workers"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_process_with_workers_beats_until_it_stops() {
    let app = spawn_app_with(Options {
        workers: 2,
        ..Default::default()
    })
    .await;
    let root = app.admin("root").await;
    // The first beat is sent as the workers start.
    let mut workers = Value::Null;
    for _ in 0..100 {
        let (_, view) = app.get_json("/api/admin/overview", &root).await;
        workers = view["workers"].clone();
        if !workers.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let w = &workers[0];
    assert_eq!(w["slots"], 2, "{workers}");
    assert_eq!(w["pid"], std::process::id());
    assert!(
        w["id"]
            .as_str()
            .unwrap()
            .starts_with(w["host"].as_str().unwrap())
    );
}
