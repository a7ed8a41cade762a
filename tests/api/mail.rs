//! E-mail notifications through a real SMTP server (STARTTLS, `tests/mail/smtp_server.py`):
//! the messages finished tasks owe, their links (task page, downloads through the session,
//! RFC 8058 one-click unsubscribe that really turns e-mail off), and password reset by
//! e-mail, which works once.

use chrono::Utc;
use reelforge_testkit::app::*;
use reelforge_testkit::clips::clip_tiny;
use reelforge_testkit::smtp::{ReceivedMail, SmtpMode, SmtpServer};
use serde_json::{Value, json};

/// Links in e-mails point here; tests swap it for the app's address to follow them.
const PUBLIC: &str = "https://media.reelforge.test";

async fn mail_app(server: &SmtpServer) -> TestApp {
    spawn_app_with(Options {
        smtp: Some(SmtpSettings::of(server, PUBLIC)),
        ..Default::default()
    })
    .await
}

/// `url` (under [`PUBLIC`]) on the test app.
fn local(app: &TestApp, url: &str) -> String {
    url.replacen(PUBLIC, &app.base, 1)
}

/// The first `{PUBLIC}…` link in `text` that starts with `prefix`.
fn link(text: &str, prefix: &str) -> String {
    let start = text
        .find(&format!("{PUBLIC}{prefix}"))
        .unwrap_or_else(|| panic!("no {prefix} link in {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .next()
        .unwrap()
        .to_string()
}

fn to_of(m: &ReceivedMail) -> &str {
    m.header("To").unwrap_or_default()
}

#[tokio::test]
async fn finished_tasks_are_emailed_with_links_and_one_click_unsubscribe() {
    let Some(smtp) =
        SmtpServer::start("finished_tasks_are_emailed", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let app = mail_app(&smtp).await;
    let t = app.user("mailee").await;
    let r = app
        .upload(
            &t,
            "clip.mp4",
            std::fs::read(clip_tiny()).unwrap(),
            &[("profile", "thumbnail")],
        )
        .await;
    let ok = id_of(r).await;
    let r = app
        .upload(&t, "notes.txt", b"not media".to_vec(), &[])
        .await;
    let bad = id_of(r).await;
    app.drain().await;
    assert_eq!(app.deliver_due(Utc::now()).await.len(), 2);
    let mails = smtp
        .wait_for_messages(2, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(mails.len(), 2);
    let ready = mails
        .iter()
        .find(|m| m.header("Subject") == Some("Your file is ready: clip.mp4"))
        .unwrap_or_else(|| panic!("{mails:#?}"));
    let failed = mails
        .iter()
        .find(|m| m.header("Subject") == Some("Processing failed: notes.txt"))
        .unwrap_or_else(|| panic!("{mails:#?}"));
    for m in [ready, failed] {
        assert!(m.tls, "sent after STARTTLS");
        assert!(to_of(m).contains("mailee@example.com"), "{m:#?}");
        assert!(m.header("From").unwrap().contains("reelforge@example.com"));
        assert!(m.text.is_some() && m.html.is_some(), "text and HTML parts");
        let id = m.header("Message-ID").unwrap();
        assert!(
            id.starts_with('<') && id.ends_with("@media.reelforge.test>"),
            "{id}"
        );
        assert_eq!(
            m.header("List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(
            m.header("List-Unsubscribe")
                .unwrap()
                .starts_with(&format!("<{PUBLIC}/api/unsubscribe/")),
            "{m:#?}"
        );
    }
    // The ready e-mail: the output, its size, the task page, a download link that works
    // later through the session.
    let text = ready.text.as_deref().unwrap();
    let task = app.task(&t, &ok).await;
    let output = &task["outputs"][0];
    let name = output["name"].as_str().unwrap();
    assert!(text.contains(name), "{text}");
    assert!(text.contains(&format!("{PUBLIC}/#/tasks/{ok}")), "{text}");
    let download = link(text, "/go/outputs/");
    assert_eq!(download, format!("{PUBLIC}/go/outputs/{ok}/{name}"));
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(local(&app, &download))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "logged out: to the log-in page");
    let to = r.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with("/?next=%2Fgo%2Foutputs%2F") && to.ends_with("#/login"),
        "{to}"
    );
    let cookie = app.session_cookie("mailee").await;
    let r = no_redirects
        .get(local(&app, &download))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "logged in: to a fresh playback URL");
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/api/play/"), "{to}");
    let bytes = app.client.get(app.url(&to)).send().await.unwrap();
    assert_eq!(bytes.status(), 200);
    assert_eq!(
        bytes.bytes().await.unwrap().len() as u64,
        output["size"].as_u64().unwrap()
    );
    // The failure e-mail says why, in words.
    let why = app.task(&t, &bad).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        failed.text.as_deref().unwrap().contains(&why),
        "{failed:#?}"
    );
    // Each task lists its e-mail.
    for id in [&ok, &bad] {
        let v = app.task(&t, id).await;
        let n = &v["notifications"][0];
        assert_eq!(n["channel"], "email");
        assert_eq!(n["target"], "mailee@example.com");
        assert_eq!(n["status"], "sent", "{v}");
    }

    // One-click unsubscribe (RFC 8058): a POST, no session, turns e-mail off.
    let unsubscribe = ready.header("List-Unsubscribe").unwrap();
    let unsubscribe = local(&app, unsubscribe.trim_matches(|c| c == '<' || c == '>'));
    let page = app.client.get(&unsubscribe).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("mailee"));
    let r = app
        .client
        .post(&unsubscribe)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let settings: Value = app.get_json("/api/account/notifications", &t).await.1;
    assert_eq!(
        settings,
        json!({"email": {"on_success": false, "on_failure": false}, "email_available": true})
    );
    let r = app.upload(&t, "more.txt", b"not media".to_vec(), &[]).await;
    let later = id_of(r).await;
    app.drain().await;
    app.deliver_due(Utc::now()).await;
    assert!(
        app.task(&t, &later).await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(smtp.messages().len(), 2, "nothing more is sent");
    // A forged link changes nothing.
    let forged = format!("{}x", &unsubscribe[..unsubscribe.len() - 1]);
    let r = app.client.post(&forged).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_email_queued_before_an_unsubscribe_is_not_sent() {
    let Some(smtp) = SmtpServer::start("an_email_queued_before", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let app = mail_app(&smtp).await;
    let t = app.user("changer").await;
    let id = id_of(app.upload(&t, "a.txt", b"x".to_vec(), &[]).await).await;
    app.drain().await; // the failure's e-mail is queued
    let r = app
        .client
        .put(app.url("/api/account/notifications"))
        .bearer_auth(&t)
        .json(&json!({"email": {"on_success": true, "on_failure": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.deliver_due(Utc::now()).await;
    let v = app.task(&t, &id).await;
    assert_eq!(v["notifications"][0]["status"], "cancelled", "{v}");
    assert!(smtp.messages().is_empty());
}

async fn ask(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/api/password-reset", &json!({ "email": email }))
        .await
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    let body = json!({"token": token, "password": password, "passwordConfirmation": password});
    app.post_json("/api/password-reset/confirm", &body).await
}

async fn login(app: &TestApp, password: &str) -> reqwest::Response {
    let body = json!({"username": "forgetful", "password": password});
    app.post_json("/api/auth/login", &body).await
}

#[tokio::test]
async fn a_password_reset_works_once_and_ends_every_session() {
    let Some(smtp) =
        SmtpServer::start("a_password_reset_works_once", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let app = mail_app(&smtp).await;
    let t = app.user("forgetful").await;
    let cookie = app.session_cookie("forgetful").await;
    let r = ask(&app, "forgetful@example.com").await;
    assert_eq!(r.status(), 202);
    let known: Value = r.json().await.unwrap();
    let r = ask(&app, "nobody@example.com").await;
    assert_eq!(r.status(), 202);
    let unknown: Value = r.json().await.unwrap();
    assert_eq!(
        known, unknown,
        "the same answer whether or not the address exists"
    );
    app.deliver_due(Utc::now()).await;
    let mails = smtp
        .wait_for_messages(1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(to_of(&mails[0]).contains("forgetful@example.com"));
    let text = mails[0].text.as_deref().unwrap();
    assert!(text.contains("30 minutes"), "{text}");
    let token = link(text, "/#/reset/")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // The token is nowhere in the database in clear.
    let db = std::fs::read(app.data_dir.path().join("reelforge.db")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(&token));

    let r = confirm(&app, &token, "weak").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "weak_password");
    let r = confirm(&app, &token, "Renewed789").await;
    assert_eq!(r.status(), 200);
    // Every session and login token of the old password ended.
    assert_eq!(
        app.get("/api/tasks", &t).send().await.unwrap().status(),
        401
    );
    let r = app
        .client
        .get(app.url("/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(login(&app, "Secret123").await.status(), 401);
    assert_eq!(login(&app, "Renewed789").await.status(), 200);
    // Once only.
    let r = confirm(&app, &token, "Another789").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_reset_token"
    );

    // At most three an hour per account; the answer stays the same.
    for _ in 0..3 {
        assert_eq!(ask(&app, "Forgetful@Example.com").await.status(), 202);
    }
    app.deliver_due(Utc::now()).await;
    assert_eq!(
        smtp.messages().len(),
        3,
        "the first and two more; the fourth was not sent"
    );
}

#[tokio::test]
async fn a_reset_link_expires_after_30_minutes() {
    let Some(smtp) = SmtpServer::start("a_reset_link_expires", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let app = mail_app(&smtp).await;
    app.user("late").await;
    app.post_json("/api/password-reset", &json!({"email": "late@example.com"}))
        .await;
    app.deliver_due(Utc::now()).await;
    let mails = smtp
        .wait_for_messages(1, std::time::Duration::from_secs(5))
        .await;
    let token = link(mails[0].text.as_deref().unwrap(), "/#/reset/")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let hash = reelforge::auth::token_hash(&token);
    let later = Utc::now() + chrono::Duration::minutes(31);
    let used = app
        .notifier
        .db
        .reset_password(&hash, "x", later)
        .await
        .unwrap();
    assert_eq!(used, None, "31 minutes later the link no longer works");
    let soon = Utc::now() + chrono::Duration::minutes(29);
    let hashed = reelforge::auth::hash_password("Later1234").unwrap();
    let used = app
        .notifier
        .db
        .reset_password(&hash, &hashed, soon)
        .await
        .unwrap();
    assert!(used.is_some(), "29 minutes later it still does");
}

#[tokio::test]
async fn without_smtp_there_is_no_email_and_resets_say_so() {
    let app = spawn_app().await;
    let t = app.user("offline").await;
    let r = app
        .post_json(
            "/api/password-reset",
            &json!({"email": "offline@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "email_unavailable"
    );
    let id = id_of(app.upload(&t, "a.txt", b"x".to_vec(), &[]).await).await;
    app.drain().await;
    assert!(
        app.task(&t, &id).await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let settings: Value = app.get_json("/api/account/notifications", &t).await.1;
    assert_eq!(settings["email_available"], false);
}

#[tokio::test]
async fn the_owner_of_a_disabled_endpoint_is_emailed() {
    use reelforge_testkit::webhooks::{HOST, Receiver};
    let Some(smtp) =
        SmtpServer::start("owner_of_a_disabled_endpoint", SmtpMode::StartTls, None).await
    else {
        return;
    };
    let Some(rx) = Receiver::start("owner_of_a_disabled_endpoint") else {
        return;
    };
    let app = spawn_app_with(Options {
        smtp: Some(SmtpSettings::of(&smtp, PUBLIC)),
        fetch_allow: Some(HOST.into()),
        ..Default::default()
    })
    .await;
    let t = app.user("hookless").await;
    let r = app
        .post_json_as("/api/webhooks", &t, &json!({"url": rx.url("gone")}))
        .await;
    let ep: Value = r.json().await.unwrap();
    rx.script("gone", &[(410, &[])]).await;
    let r = app
        .post(
            &format!("/api/webhooks/{}/test", ep["id"].as_str().unwrap()),
            &t,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    app.deliver_due(Utc::now()).await;
    let mails = smtp
        .wait_for_messages(1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(mails.len(), 1);
    let text = mails[0].text.as_deref().unwrap();
    assert!(text.contains(&rx.url("gone")), "{text}");
    assert!(text.contains("410"), "{text}");
    assert!(text.contains(&format!("{PUBLIC}/#/account")), "{text}");
}
