//! Webhooks (Standard Webhooks 1.0): endpoints, signed deliveries checked by the
//! `standardwebhooks` package, the retry schedule walked with a driven clock, `410 Gone`,
//! five days of failures, rotation, test events, redelivery, and SSRF refusals at
//! registration and at delivery.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reelforge::db::DeliveryEnd;
use reelforge::fetch::{FetchPolicy, Fetcher};
use reelforge::notify::{Notifier, Step, run_one};
use reelforge_testkit::app::*;
use reelforge_testkit::webhooks::{HOST, Receiver};
use serde_json::{Value, json};
use uuid::Uuid;

async fn webhook_app() -> TestApp {
    spawn_app_with(Options {
        fetch_allow: Some(HOST.into()),
        ..Default::default()
    })
    .await
}

/// Register an endpoint; its JSON (with `secret`).
async fn endpoint(app: &TestApp, token: &str, url: &str, events: Option<&[&str]>) -> Value {
    let mut body = json!({"url": url});
    if let Some(events) = events {
        body["events"] = json!(events);
    }
    let r = app.post_json_as("/api/webhooks", token, &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json().await.unwrap()
}

/// A task that fails when run (not media), with an optional own webhook URL.
async fn failing_task(app: &TestApp, token: &str, webhook_url: Option<&str>) -> String {
    let extra: Vec<(&str, &str)> = webhook_url
        .map(|u| ("webhook_url", u))
        .into_iter()
        .collect();
    let r = app
        .upload(token, "notes.txt", b"not a video".to_vec(), &extra)
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    id_of(r).await
}

async fn send_test_event(app: &TestApp, token: &str, endpoint: &str) -> String {
    let r = app
        .post(&format!("/api/webhooks/{endpoint}/test"), token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    v["message_id"].as_str().unwrap().to_string()
}

/// `now` plus `secs`, in whole milliseconds (as times are stored).
fn clock(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::seconds(secs);
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn message_uuid(msg_id: &str) -> Uuid {
    Uuid::try_parse(msg_id.strip_prefix("msg_").unwrap()).unwrap()
}

async fn run_at(app: &TestApp, msg_id: &str) -> DateTime<Utc> {
    app.notifier
        .db
        .notification(message_uuid(msg_id))
        .await
        .unwrap()
        .unwrap()
        .run_at
}

#[tokio::test]
async fn endpoints_are_managed_and_their_secret_is_shown_once() {
    let app = webhook_app().await;
    let t = app.user("hookowner").await;
    let url = format!("http://{HOST}:9/hook/a");
    let created = endpoint(&app, &t, &url, None).await;
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    assert_eq!(
        created["events"],
        json!([
            "task.started",
            "task.succeeded",
            "task.failed",
            "task.cancelled"
        ])
    );
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();

    let list: Value = app.get_json("/api/webhooks", &t).await.1;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none(), "{list}");
    assert!(!list.to_string().contains(secret));

    let r = app
        .client
        .patch(app.url(&format!("/api/webhooks/{id}")))
        .bearer_auth(&t)
        .json(&json!({"events": ["task.failed"], "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["events"], json!(["task.failed"]));
    assert_eq!(v["enabled"], false);

    for (body, status, code) in [
        (json!({"url": url, "events": []}), 400, "invalid_field"),
        (
            json!({"url": url, "events": ["webhook.test"]}),
            400,
            "invalid_field",
        ),
        (
            json!({"url": url, "events": ["task.exploded"]}),
            400,
            "invalid_field",
        ),
        (json!({"url": "ftp://x.example/"}), 422, "url_not_allowed"),
        (json!({"url": "not a url"}), 400, "invalid_url"),
        (json!({"url": url, "secret": "mine"}), 400, "invalid_field"),
    ] {
        let r = app.post_json_as("/api/webhooks", &t, &body).await;
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{body}: {e}");
    }

    // Another user sees none of it.
    let other = app.user("stranger").await;
    for path in [
        format!("/api/webhooks/{id}"),
        format!("/api/webhooks/{id}/deliveries"),
    ] {
        assert_eq!(app.get_json(&path, &other).await.0, 404, "{path}");
    }
    let r = app
        .delete(&format!("/api/webhooks/{id}"), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .delete(&format!("/api/webhooks/{id}"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.get_json(&format!("/api/webhooks/{id}"), &t).await.0,
        404
    );
}

#[tokio::test]
async fn task_events_reach_endpoints_and_the_task_url_signed() {
    let Some(rx) = Receiver::start("task_events_reach_endpoints_and_the_task_url_signed") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("hooked").await;
    let ep = endpoint(
        &app,
        &t,
        &rx.url("ep"),
        Some(&["task.started", "task.failed"]),
    )
    .await;
    rx.set_secrets("ep", &[ep["secret"].as_str().unwrap()])
        .await;
    let default: Value = app.get_json("/api/account/webhook-secret", &t).await.1;
    let default_secret = default["secret"].as_str().unwrap();
    assert!(default_secret.starts_with("whsec_"));
    rx.set_secrets("task", &[default_secret]).await;
    // An endpoint that asks for successes only hears nothing of a failure.
    let quiet = endpoint(&app, &t, &rx.url("quiet"), Some(&["task.succeeded"])).await;
    rx.set_secrets("quiet", &[quiet["secret"].as_str().unwrap()])
        .await;

    let task_url = format!("{}?token=s3cret", rx.url("task"));
    let id = failing_task(&app, &t, Some(&task_url)).await;
    app.drain().await;
    let steps = app.deliver_due(Utc::now()).await;
    assert_eq!(steps.len(), 4, "{steps:?}");

    for hook in ["ep", "task"] {
        let got = rx.received_by(hook);
        let types: Vec<&str> = got
            .iter()
            .map(|r| r.body["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["task.started", "task.failed"], "{hook}");
        for r in &got {
            assert!(r.verified, "{hook}: signature not verified: {r:?}");
            assert!(r.id.starts_with("msg_"));
            assert_eq!(r.content_type, "application/json");
            assert_eq!(r.body["data"]["id"], id.as_str());
            assert!(r.body["data"].get("notifications").is_none());
            assert!(r.body["timestamp"].as_str().unwrap().ends_with('Z'));
            assert!((r.timestamp - Utc::now().timestamp()).abs() < 60);
        }
        assert_eq!(got[1].body["data"]["status"], "failed");
        assert_eq!(got[1].body["data"]["error"]["code"], "invalid_media");
    }
    assert!(rx.received_by("quiet").is_empty());
    // The task's own URL is shown, and sent, without leaking its query elsewhere.
    let v = app.task(&t, &id).await;
    assert_eq!(v["webhook_url"], rx.url("task"));
    let notifications = v["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 4, "{v}");
    for n in notifications {
        assert_eq!(n["channel"], "webhook");
        assert_eq!(n["status"], "sent", "{n}");
        assert_eq!(n["attempts"], 1);
        assert!(n["sent_at"].is_string());
        assert!(n["last_error"].is_null());
        assert!(!n["target"].as_str().unwrap().contains("s3cret"), "{n}");
    }
    assert!(!v.to_string().contains("s3cret"));
    assert!(!v.to_string().contains(default_secret));

    let log: Value = app
        .get(
            &format!("/api/webhooks/{}/deliveries", ep["id"].as_str().unwrap()),
            &t,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["event"], "task.failed", "newest first");
    assert_eq!(log[0]["status_code"], 200);
    assert_eq!(log[0]["attempt"], 1);
    assert!(log[0]["latency_ms"].as_u64().is_some());
}

#[tokio::test]
async fn failed_deliveries_follow_the_schedule_and_honour_retry_after() {
    let Some(rx) = Receiver::start("failed_deliveries_follow_the_schedule") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("patient").await;
    let ep = endpoint(&app, &t, &rx.url("flaky"), None).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    rx.set_secrets("flaky", &[ep["secret"].as_str().unwrap()])
        .await;
    rx.script(
        "flaky",
        &[(500, &[]), (503, &[]), (429, &[("Retry-After", "7200")])],
    )
    .await;
    let msg = send_test_event(&app, &t, &ep_id).await;

    let t0 = clock(1);
    let secs = chrono::Duration::seconds;
    // Attempt 1 at once, fails: the next is due 5 s later, not before.
    assert_eq!(app.deliver_due(t0).await.len(), 1);
    assert_eq!(run_at(&app, &msg).await, t0 + secs(5));
    assert!(app.deliver_due(t0 + secs(4)).await.is_empty());
    // Attempt 2, then 5 min; attempt 3 answers 429 with Retry-After: 2 h (over the
    // schedule's 30 min).
    assert_eq!(app.deliver_due(t0 + secs(5)).await.len(), 1);
    assert_eq!(run_at(&app, &msg).await, t0 + secs(5 + 300));
    assert_eq!(app.deliver_due(t0 + secs(305)).await.len(), 1);
    assert_eq!(run_at(&app, &msg).await, t0 + secs(305 + 7200));
    assert!(app.deliver_due(t0 + secs(305 + 1800)).await.is_empty());
    let steps = app.deliver_due(t0 + secs(305 + 7200)).await;
    assert!(
        matches!(
            steps.as_slice(),
            [Step::Attempted {
                end: DeliveryEnd::Sent,
                ..
            }]
        ),
        "{steps:?}"
    );

    let got = rx.received_by("flaky");
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.id == msg && r.verified), "{got:?}");
    let stamps: Vec<i64> = got.iter().map(|r| r.timestamp - t0.timestamp()).collect();
    assert_eq!(
        stamps,
        [0, 5, 305, 7505],
        "webhook-timestamp is each attempt's time"
    );
    let log: Value = app
        .get_json(&format!("/api/webhooks/{ep_id}/deliveries"), &t)
        .await
        .1;
    let codes: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [200, 429, 503, 500]);
    // Healthy again: no failure streak.
    let v: Value = app.get_json(&format!("/api/webhooks/{ep_id}"), &t).await.1;
    assert!(v["failing_since"].is_null(), "{v}");
}

#[tokio::test]
async fn a_message_is_given_up_after_ten_attempts() {
    let Some(rx) = Receiver::start("a_message_is_given_up_after_ten_attempts") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("doomed").await;
    let ep = endpoint(&app, &t, &rx.url("down"), None).await;
    let failures: Vec<(u16, &[(&str, &str)])> = vec![(500, &[]); 10];
    rx.script("down", &failures).await;
    let msg = send_test_event(&app, &t, ep["id"].as_str().unwrap()).await;
    let start = clock(1);
    let mut now = start;
    for attempt in 1..=10 {
        let steps = app.deliver_due(now).await;
        assert_eq!(steps.len(), 1, "attempt {attempt}");
        if attempt < 10 {
            now = run_at(&app, &msg).await;
        } else {
            match &steps[0] {
                Step::Attempted {
                    end: DeliveryEnd::Failed(e),
                    ..
                } => assert!(e.contains("gave up after 10 attempts"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }
    // 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 14 h + 20 h + 24 h.
    assert_eq!((now - start).num_seconds(), 272_105);
    assert_eq!(rx.received_by("down").len(), 10);
    assert!(
        app.deliver_due(now + chrono::Duration::days(30))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_five_days_of_failures_too() {
    let Some(rx) = Receiver::start("gone_disables_the_endpoint") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("goner").await;
    let gone = endpoint(&app, &t, &rx.url("gone"), None).await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    rx.script("gone", &[(410, &[])]).await;
    send_test_event(&app, &t, &gone_id).await;
    let steps = app.deliver_due(Utc::now()).await;
    assert!(
        matches!(
            steps.as_slice(),
            [Step::Attempted {
                end: DeliveryEnd::Failed(_),
                ..
            }]
        ),
        "{steps:?}"
    );
    let v: Value = app
        .get_json(&format!("/api/webhooks/{gone_id}"), &t)
        .await
        .1;
    assert_eq!(v["enabled"], false);
    assert!(
        v["disabled_reason"].as_str().unwrap().contains("410"),
        "{v}"
    );
    // A disabled endpoint is owed nothing more; a test event to it is refused.
    let id = failing_task(&app, &t, None).await;
    app.drain().await;
    assert!(app.deliver_due(Utc::now()).await.is_empty());
    assert!(
        app.task(&t, &id).await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = app
        .post(&format!("/api/webhooks/{gone_id}/test"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // Re-enabled, it is healthy again.
    let r = app
        .client
        .patch(app.url(&format!("/api/webhooks/{gone_id}")))
        .bearer_auth(&t)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["enabled"], true);
    assert!(v["disabled_reason"].is_null());

    // Five days of failures: the streak starts at the first failed attempt.
    let down = endpoint(&app, &t, &rx.url("down"), None).await;
    let down_id = down["id"].as_str().unwrap().to_string();
    rx.script("down", &vec![(500, &[][..]); 20]).await;
    send_test_event(&app, &t, &down_id).await;
    let t0 = Utc::now() + chrono::Duration::seconds(1);
    app.deliver_due(t0).await;
    send_test_event(&app, &t, &down_id).await;
    app.deliver_due(t0 + chrono::Duration::days(4)).await;
    let v: Value = app
        .get_json(&format!("/api/webhooks/{down_id}"), &t)
        .await
        .1;
    assert_eq!(v["enabled"], true, "4 days: still on");
    assert!(v["failing_since"].is_string());
    send_test_event(&app, &t, &down_id).await;
    app.deliver_due(t0 + chrono::Duration::days(5)).await;
    let v: Value = app
        .get_json(&format!("/api/webhooks/{down_id}"), &t)
        .await
        .1;
    assert_eq!(v["enabled"], false, "{v}");
    assert!(
        v["disabled_reason"].as_str().unwrap().contains("5 days"),
        "{v}"
    );
    // What was still queued for it is cancelled, not sent.
    let before = rx.received_by("down").len();
    assert!(
        app.deliver_due(t0 + chrono::Duration::days(9))
            .await
            .is_empty()
    );
    assert_eq!(rx.received_by("down").len(), before);
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_and_redelivery_keeps_the_id() {
    let Some(rx) = Receiver::start("a_rotated_secret_signs_beside_the_old_one") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("rotator").await;
    let ep = endpoint(&app, &t, &rx.url("r"), None).await;
    let id = ep["id"].as_str().unwrap().to_string();
    let old = ep["secret"].as_str().unwrap().to_string();
    let r = app
        .post(&format!("/api/webhooks/{id}/rotate-secret"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let until: DateTime<Utc> = rotated["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let overlap = until - Utc::now();
    assert!(overlap > chrono::Duration::hours(23) && overlap <= chrono::Duration::hours(24));
    rx.set_secrets("r", &[&new, &old]).await;
    let msg = send_test_event(&app, &t, &id).await;
    app.deliver_due(Utc::now()).await;
    let got = rx.received_by("r");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].verified_with,
        [0, 1],
        "signed with both: {}",
        got[0].signature
    );
    assert_eq!(got[0].body["type"], "webhook.test");

    // After 24 h only the new one signs.
    let r = app
        .post(
            &format!("/api/webhooks/{id}/deliveries/{msg}/redeliver"),
            &t,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    app.deliver_due(Utc::now() + chrono::Duration::hours(25))
        .await;
    let got = rx.received_by("r");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].id, msg, "a redelivery keeps the webhook-id");
    assert_eq!(got[1].verified_with, [0]);
    // Only a finished message of this endpoint can be redelivered.
    let r = app
        .post(
            &format!(
                "/api/webhooks/{id}/deliveries/msg_{}/redeliver",
                Uuid::now_v7().simple()
            ),
            &t,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn private_destinations_are_refused_at_registration_and_at_delivery() {
    let Some(rx) = Receiver::start("private_destinations_are_refused") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("ssrf").await;
    let port = rx.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook/x"),
        format!("http://localhost:{port}/hook/x"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("http://10.1.2.3:{port}/"),
    ] {
        let r = app
            .post_json_as("/api/webhooks", &t, &json!({"url": url}))
            .await;
        assert_eq!(r.status(), 422, "{url}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "url_not_allowed", "{url}: {e}");
        // A task's own URL, the same.
        let r = app
            .upload(&t, "a.txt", b"x".to_vec(), &[("webhook_url", &url)])
            .await;
        assert_eq!(r.status(), 422, "task webhook_url {url}");
    }

    // A redirect is not followed: one request, to the registered URL only.
    let ep = endpoint(&app, &t, &rx.url("redirect"), None).await;
    let target = format!("http://{HOST}:{port}/hook/target");
    rx.script("redirect", &[(302, &[("Location", &target)])])
        .await;
    send_test_event(&app, &t, ep["id"].as_str().unwrap()).await;
    let steps = app.deliver_due(Utc::now()).await;
    assert!(
        matches!(
            steps.as_slice(),
            [Step::Attempted {
                end: DeliveryEnd::Retry { .. },
                ..
            }]
        ),
        "{steps:?}"
    );
    assert_eq!(rx.received_by("redirect").len(), 1);
    assert!(rx.received_by("target").is_empty());

    // Checked again at delivery: destinations registered while an allow-list let them
    // through (a loopback literal, its IPv4-mapped IPv6 form, a name that resolves to it,
    // and the receiver itself) are refused when the allowance is gone, and nothing is sent.
    let Some(inner) = Receiver::start_on("private_destinations_are_refused", "127.0.0.1") else {
        return;
    };
    let lenient = spawn_app_with(Options {
        fetch_allow: Some(format!("{HOST},127.0.0.1,::ffff:127.0.0.1,localhost")),
        ..Default::default()
    })
    .await;
    let t2 = lenient.user("lenient").await;
    let inner_port = inner.port();
    for url in [
        inner.url("literal"),
        format!("http://[::ffff:127.0.0.1]:{inner_port}/hook/mapped"),
        format!("http://localhost:{inner_port}/hook/named"),
    ] {
        let ep = endpoint(&lenient, &t2, &url, None).await;
        send_test_event(&lenient, &t2, ep["id"].as_str().unwrap()).await;
    }
    let app = lenient;
    let ep = endpoint(&app, &t2, &rx.url("later"), None).await;
    send_test_event(&app, &t2, ep["id"].as_str().unwrap()).await;
    let strict = Notifier {
        db: app.notifier.db.clone(),
        fetcher: Arc::new(Fetcher::new(FetchPolicy::default()).unwrap()),
        mailer: None,
        lease: Duration::from_secs(30),
        signals: app.notifier.signals.clone(),
        link_key: app.notifier.link_key.clone(),
        links: app.notifier.links.clone(),
    };
    let mut ends = vec![];
    loop {
        match run_one(&strict, "strict", Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap()
        {
            Step::Idle => break,
            Step::Attempted { end, .. } => ends.push(end),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(
        ends.iter()
            .all(|e| matches!(e, DeliveryEnd::Failed(m) if m.contains("not allowed"))),
        "{ends:?}"
    );
    assert!(rx.received_by("later").is_empty());
    assert!(inner.received().is_empty(), "{:?}", inner.received());
}

#[tokio::test]
async fn twenty_endpoints_at_most() {
    let app = webhook_app().await;
    let t = app.user("collector").await;
    for i in 0..20 {
        endpoint(&app, &t, &format!("http://{HOST}:9/hook/{i}"), None).await;
    }
    let r = app
        .post_json_as(
            "/api/webhooks",
            &t,
            &json!({"url": format!("http://{HOST}:9/hook/more")}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "too_many_endpoints");
}

/// A receiver that does not answer within 15 s has failed the attempt (retried on the
/// schedule); the log says so. (The one test here that waits: 15 s of a real timeout.)
#[tokio::test]
async fn a_receiver_silent_for_15_s_fails_the_attempt() {
    let Some(rx) = Receiver::start("a_receiver_silent_for_15_s") else {
        return;
    };
    let app = webhook_app().await;
    let t = app.user("patience").await;
    let ep = endpoint(&app, &t, &rx.url("slow"), None).await;
    rx.hang("slow", 20).await;
    send_test_event(&app, &t, ep["id"].as_str().unwrap()).await;
    let started = std::time::Instant::now();
    let steps = app.deliver_due(Utc::now()).await;
    let took = started.elapsed();
    assert!(
        matches!(steps.as_slice(), [Step::Attempted { end: DeliveryEnd::Retry { error, .. }, .. }]
            if error.contains("15 s")),
        "{steps:?}"
    );
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(19),
        "{took:?}"
    );
    let (_, log) = app
        .get_json(
            &format!("/api/webhooks/{}/deliveries", ep["id"].as_str().unwrap()),
            &t,
        )
        .await;
    assert!(log[0]["status_code"].is_null(), "{log}");
    assert!(log[0]["latency_ms"].as_u64().unwrap() >= 15_000, "{log}");
}
