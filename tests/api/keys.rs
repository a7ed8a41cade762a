//! API keys: made once and shown once, stored hashed, accepted as `Bearer rf_…` on the API,
//! `read` keys refused every unsafe method, revocation and expiry at once, last-used time,
//! and keys never managing keys.

use chrono::Utc;
use reelforge::auth::token_hash;
use reelforge::db::NewApiKey;
use reelforge::domain::KeyScope;
use reelforge_testkit::app::*;
use serde_json::{Value, json};

async fn make_key(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post_json_as("/api/keys", token, &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_and_works_on_the_api() {
    let app = spawn_app().await;
    let login = app.user("scripter").await;
    let made = make_key(&app, &login, json!({"name": "nightly job"})).await;
    let key = made["token"].as_str().unwrap().to_string();
    assert!(key.starts_with("rf_") && key.len() >= 46, "{key}");
    assert_eq!(made["scope"], "read-write");
    assert_eq!(made["prefix"], &key[..11]);
    assert!(made["expires_at"].is_null() && made["last_used_at"].is_null());

    // Listed without the key; stored only as its hash.
    let (status, list) = app.get_json("/api/keys", &login).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&key));
    let db = std::fs::read(app.data_dir.path().join("reelforge.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(&key));

    // It works like a login token, and its use is recorded.
    let r = app.upload(&key, "a.txt", b"x".to_vec(), &[]).await;
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    assert_eq!(app.get_json(&format!("/api/tasks/{id}"), &key).await.0, 200);
    let (_, list) = app.get_json("/api/keys", &login).await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");

    // Keys do not manage keys.
    for (status, _) in [
        app.get_json("/api/keys", &key).await,
        (
            app.post_json_as("/api/keys", &key, &json!({"name": "more"}))
                .await
                .status()
                .as_u16(),
            Value::Null,
        ),
    ] {
        assert_eq!(status, 403);
    }

    // Revoked: refused at once.
    let r = app
        .delete(
            &format!("/api/keys/{}", made["id"].as_str().unwrap()),
            &login,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, e) = app.get_json("/api/tasks", &key).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_token");
    assert!(
        app.get_json("/api/keys", &login)
            .await
            .1
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = app
        .delete(
            &format!("/api/keys/{}", made["id"].as_str().unwrap()),
            &login,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "revoked once");
}

#[tokio::test]
async fn a_read_key_only_reads() {
    let app = spawn_app().await;
    let login = app.user("reader").await;
    let id = id_of(app.upload(&login, "a.txt", b"x".to_vec(), &[]).await).await;
    let made = make_key(&app, &login, json!({"name": "dashboard", "scope": "read"})).await;
    let key = made["token"].as_str().unwrap();
    assert_eq!(app.get_json("/api/tasks", key).await.0, 200);
    assert_eq!(app.get_json(&format!("/api/tasks/{id}"), key).await.0, 200);
    let refused = [
        app.upload(key, "b.txt", b"x".to_vec(), &[]).await,
        app.post(&format!("/api/tasks/{id}/cancel"), key)
            .send()
            .await
            .unwrap(),
        app.post(&format!("/api/tasks/{id}/retry"), key)
            .send()
            .await
            .unwrap(),
        app.delete(&format!("/api/tasks/{id}"), key)
            .send()
            .await
            .unwrap(),
    ];
    for r in refused {
        assert_eq!(r.status(), 403);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "insufficient_scope", "{e}");
    }
    assert_eq!(
        app.get_json(&format!("/api/tasks/{id}"), &login).await.0,
        200
    );
}

#[tokio::test]
async fn an_expired_key_or_a_disabled_owner_is_refused() {
    let app = spawn_app().await;
    let login = app.user("expiring").await;
    let made = make_key(
        &app,
        &login,
        json!({"name": "month", "expires_in_days": 30}),
    )
    .await;
    let expires: chrono::DateTime<Utc> = made["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - Utc::now()).num_hours();
    assert!((719..=720).contains(&days), "{days} h");
    // A key past its expiry (written directly: the API allows a day at least).
    let key = "rf_expiredexpiredexpiredexpiredexpiredexpired1";
    let owner = app
        .notifier
        .db
        .user_for_login("expiring")
        .await
        .unwrap()
        .unwrap();
    app.notifier
        .db
        .create_api_key(NewApiKey {
            user_id: owner.user.id,
            name: "old".into(),
            prefix: key[..11].into(),
            key_hash: token_hash(key),
            scope: KeyScope::ReadWrite,
            expires_at: Some(Utc::now() - chrono::Duration::seconds(1)),
        })
        .await
        .unwrap();
    assert_eq!(app.get_json("/api/tasks", key).await.0, 401);
    // A disabled owner's keys stop too, within a second when disabled behind the process's
    // back (as `reelforge user disable` does).
    let live = made["token"].as_str().unwrap();
    assert_eq!(app.get_json("/api/tasks", live).await.0, 200);
    app.notifier
        .db
        .set_user_disabled("expiring", true)
        .await
        .unwrap();
    within_a_second("the disabled owner", || async {
        app.get_json("/api/tasks", live).await.0 == 401
    })
    .await;
}

#[tokio::test]
async fn bad_key_requests_are_refused_in_words() {
    let app = spawn_app().await;
    let login = app.user("wordy").await;
    for (body, field) in [
        (json!({"name": "  "}), "name"),
        (
            json!({"name": "x", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (json!({"name": "x", "scope": "admin"}), "scope"),
        (json!({}), "name"),
    ] {
        let r = app.post_json_as("/api/keys", &login, &body).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
}

/// `GET /api/account` says who asks and with what; a key may revoke itself (logout) but no
/// other key.
#[tokio::test]
async fn the_account_names_the_credential_and_a_key_may_revoke_only_itself() {
    let app = spawn_app().await;
    let login = app.user("self").await;
    let (status, me) = app.get_json("/api/account", &login).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["username"], "self");
    assert_eq!(me["user"]["email"], "self@example.com");
    assert_eq!(me["credential"], "token");
    assert_eq!(me["key"], Value::Null);
    let cookie = app.session_cookie("self").await;
    let r = app
        .client
        .get(app.url("/api/account"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["credential"], "session");

    let one = make_key(
        &app,
        &login,
        json!({"name": "laptop", "scope": "read-write"}),
    )
    .await;
    let two = make_key(&app, &login, json!({"name": "ci", "scope": "read"})).await;
    let (key_one, key_two) = (
        one["token"].as_str().unwrap(),
        two["token"].as_str().unwrap(),
    );
    let (status, me) = app.get_json("/api/account", key_two).await;
    assert_eq!(status, 200, "a read key may ask");
    assert_eq!(me["credential"], "api_key");
    assert_eq!(me["key"]["name"], "ci");
    assert_eq!(me["key"]["scope"], "read");
    assert_eq!(me["key"]["id"], two["id"]);
    assert!(me["key"].get("token").is_none(), "{me}");

    let r = app
        .delete(
            &format!("/api/keys/{}", two["id"].as_str().unwrap()),
            key_one,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not another key");
    let r = app
        .delete(
            &format!("/api/keys/{}", one["id"].as_str().unwrap()),
            key_one,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "itself");
    assert_eq!(app.get_json("/api/account", key_one).await.0, 401);
    assert_eq!(app.get_json("/api/account", key_two).await.0, 200);
    assert_eq!(app.get_json("/api/account", "").await.0, 401);
}
