//! Notifications through real `reelforge serve` processes: a process SIGKILLed while a
//! webhook is on the wire, and the next one on the same data dir delivers it again with the
//! same `webhook-id`; a task's events reach its endpoint without any test stepping.

use std::path::Path;
use std::time::{Duration, Instant};

use reelforge_testkit::process::{Server, login};
use reelforge_testkit::webhooks::{HOST, Receiver};
use serde_json::{Value, json};

use super::REELFORGE;

fn start(data: &Path) -> Server {
    REELFORGE.start_role(
        "serve",
        data,
        &[("REELFORGE_FETCH_ALLOW", HOST), ("REELFORGE_LEASE", "3s")],
    )
}

async fn endpoint(c: &reqwest::Client, base: &str, token: &str, url: &str) -> Value {
    let r = c
        .post(format!("{base}/api/webhooks"))
        .bearer_auth(token)
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_webhook_cut_off_by_sigkill_is_delivered_again_with_the_same_id() {
    let Some(rx) = Receiver::start("a_webhook_cut_off_by_sigkill") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut first = start(data.path());
    let token = login(&c, &first.base, true).await;
    let ep = endpoint(&c, &first.base, &token, &rx.url("crash")).await;
    rx.set_secrets("crash", &[ep["secret"].as_str().unwrap()])
        .await;
    // The first request is held open; the process dies while it waits for the answer.
    rx.hang("crash", 60).await;
    let r = c
        .post(format!(
            "{}/api/webhooks/{}/test",
            first.base,
            ep["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let queued: Value = r.json().await.unwrap();
    let got = rx.wait_for("crash", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the first attempt reached the receiver");
    first.child.kill().unwrap(); // SIGKILL, mid-request
    first.child.wait().unwrap();
    let killed_at = Instant::now();

    let second = start(data.path());
    let got = rx.wait_for("crash", 2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "delivered again after the lease ran out");
    assert!(killed_at.elapsed() < Duration::from_secs(15));
    assert_eq!(got[0].id, queued["message_id"].as_str().unwrap());
    assert_eq!(got[1].id, got[0].id, "the same webhook-id");
    assert!(got.iter().all(|r| r.verified), "{got:?}");
    assert_eq!(got[1].body, got[0].body, "the same body");
    // Recorded as sent, once; no third attempt.
    let token = login(&c, &second.base, false).await;
    let start = Instant::now();
    let log = loop {
        let log: Value = c
            .get(format!(
                "{}/api/webhooks/{}/deliveries",
                second.base,
                ep["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !log.as_array().unwrap().is_empty() || start.elapsed() > Duration::from_secs(10) {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "the killed attempt left no log line: {log:?}");
    assert_eq!(log[0]["status_code"], 200);
    assert_eq!(log[0]["attempt"], 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.received_by("crash").len(), 2);
}
