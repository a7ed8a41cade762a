//! What an operator sees of a running `reelforge`: the access log (and that it can be turned
//! off), the start-up summary of the settings, and each command's `--help`.

use std::time::{Duration, Instant};

use reelforge_testkit::process::{Server, login};

use super::REELFORGE;

/// The access log lines for `route` once at least `n` are there (or after 5 s).
async fn access_lines(server: &Server, route: &str, n: usize) -> Vec<String> {
    let needle = format!("route={route} ");
    let start = Instant::now();
    loop {
        let lines: Vec<String> = server
            .lines_with("reelforge::access")
            .into_iter()
            .filter(|l| l.contains(&needle))
            .collect();
        if lines.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_request_is_logged_with_its_route_status_user_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = REELFORGE.start_role(
        "serve",
        dir.path(),
        &[
            ("REELFORGE_WORKERS", "0"),
            ("REELFORGE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    // The start-up line sums up the settings in use.
    let summary = server.lines_with("settings: ");
    assert!(
        summary
            .iter()
            .any(|l| l.contains("database=sqlite storage=file")
                && l.contains("workers=0")
                && l.contains("header_timeout=10s")),
        "{summary:#?}"
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = &server.base;
    let token = login(&c, base, true).await;
    let r = c
        .get(format!(
            "{base}/api/tasks/0190a0a0-0000-7000-8000-000000000000?access_token=SECRETQ"
        ))
        .bearer_auth(&token)
        .header("X-Forwarded-For", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let lines = access_lines(&server, "/api/tasks/{id}", 1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    for field in [
        " INFO ",
        "method=GET",
        "path=/api/tasks/0190a0a0-0000-7000-8000-000000000000 ",
        "status=404",
        "latency_ms=",
        "client=198.51.100.7",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
    let user: serde_json::Value = c
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "vic", "password": "Secret123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["user"]["id"].as_str().unwrap();
    assert!(line.contains(&format!("user={id}")), "{line}");
    assert!(
        !line.contains("SECRETQ") && !line.contains(&token),
        "{line}"
    );
    // Without a valid token there is no user; unmatched paths share one route.
    c.get(format!("{base}/no/such/thing")).send().await.unwrap();
    let lines = access_lines(&server, "unmatched", 1).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=/no/such/thing") && l.contains("user=-")),
        "{lines:#?}"
    );
    let lines = access_lines(&server, "/api/auth/login", 2).await;
    assert!(
        lines
            .iter()
            .all(|l| l.contains("status=200") && !l.contains("Secret123")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    for (setting, logged) in [("on", true), ("false", false)] {
        let dir = tempfile::tempdir().unwrap();
        let server = REELFORGE.start_role(
            "serve",
            dir.path(),
            &[
                ("REELFORGE_WORKERS", "0"),
                ("REELFORGE_ACCESS_LOG", setting),
            ],
        );
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..3 {
            let r = c
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let lines = access_lines(&server, "/healthz", 3).await;
        assert_eq!(
            lines.len(),
            if logged { 3 } else { 0 },
            "{setting}: {lines:#?}"
        );
        assert!(server.logged("listening on"), "the rest of the log is kept");
    }
}

/// `GET /metrics` of a process, as text.
async fn scrape(c: &reqwest::Client, base: &str) -> String {
    c.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the first sample whose line starts with `series ` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .map(|v| v.trim().parse().unwrap())
}

/// What the shipped alerts (deploy/monitoring/alerts.yml) read, from real processes (each
/// with a recorder of its own): worker slots and running jobs, the queue's age, readiness,
/// scratch space, and finished tasks by profile and error code with the processing speed.
#[tokio::test]
async fn metrics_show_busy_ratio_queue_age_readiness_scratch_and_outcomes() {
    use reelforge_testkit::clips::clip_tiny;
    use reelforge_testkit::process::{submit_file, wait_for};
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    // No workers: a task waits, and the age of the oldest due job grows.
    let idle_dir = tempfile::tempdir().unwrap();
    let idle = REELFORGE.start_role("serve", idle_dir.path(), &[("REELFORGE_WORKERS", "0")]);
    let token = login(&c, &idle.base, true).await;
    let text = scrape(&c, &idle.base).await;
    assert_eq!(
        sample(&text, "reelforge_queue_oldest_seconds"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&text, "reelforge_ready"), Some(1.0), "{text}");
    for absent in ["reelforge_worker_slots", "reelforge_scratch_free_bytes"] {
        assert_eq!(sample(&text, absent), None, "no jobs here: {text}");
    }
    let r = c
        .post(format!("{}/api/tasks", idle.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": "http://93.184.216.34/a.mp4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let start = Instant::now();
    loop {
        let waited = sample(
            &scrape(&c, &idle.base).await,
            "reelforge_queue_oldest_seconds",
        );
        if waited.is_some_and(|w| w >= 1.0) {
            assert!(
                waited < Some(start.elapsed().as_secs_f64() + 1.0),
                "{waited:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the age does not grow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Storage gone: not ready.
    std::fs::remove_dir_all(idle_dir.path().join("objects")).unwrap();
    std::fs::write(idle_dir.path().join("objects"), b"not a directory").unwrap();
    let text = scrape(&c, &idle.base).await;
    assert_eq!(sample(&text, "reelforge_ready"), Some(0.0), "{text}");
    drop(idle);

    // Two worker slots; a succeeded and a failed task are counted by profile and code.
    let dir = tempfile::tempdir().unwrap();
    let busy = REELFORGE.start_role("serve", dir.path(), &[("REELFORGE_WORKERS", "2")]);
    let base = &busy.base;
    let token = login(&c, base, true).await;
    let text = scrape(&c, base).await;
    assert_eq!(sample(&text, "reelforge_worker_slots"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "reelforge_jobs_running"), Some(0.0), "{text}");
    assert!(
        sample(&text, "reelforge_scratch_free_bytes").unwrap() > 0.0,
        "{text}"
    );
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let ok = submit_file(
        &c,
        base,
        &token,
        &clip_tiny(),
        "tiny.mp4",
        &[("profile", "thumbnail")],
    )
    .await;
    let bad = submit_file(
        &c,
        base,
        &token,
        &junk,
        "junk.mp4",
        &[("profile", "thumbnail")],
    )
    .await;
    for id in [&ok, &bad] {
        wait_for(&c, base, &token, id, Duration::from_secs(60), |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    }
    let text = scrape(&c, base).await;
    let finished = |outcome: &str, code: &str| {
        sample(
            &text,
            &format!(
                r#"reelforge_tasks_finished_total{{profile="thumbnail",outcome="{outcome}",code="{code}"}}"#
            ),
        )
    };
    assert_eq!(finished("succeeded", ""), Some(1.0), "{text}");
    assert_eq!(finished("failed", "invalid_media"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "reelforge_jobs_running"), Some(0.0), "{text}");
    let media = sample(
        &text,
        r#"reelforge_media_milliseconds_total{profile="thumbnail"}"#,
    );
    assert!(
        media.is_some_and(|ms| (1900.0..2100.0).contains(&ms)),
        "the 2-second clip: {text}"
    );
    assert!(
        sample(
            &text,
            r#"reelforge_processing_milliseconds_total{profile="thumbnail"}"#
        )
        .unwrap()
            > 0.0,
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_the_bytes_users_store_and_who_is_at_the_quota() {
    use reelforge_testkit::process::submit_file;
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = REELFORGE.start_role(
        "serve",
        dir.path(),
        &[
            ("REELFORGE_WORKERS", "0"),
            ("REELFORGE_USER_QUOTA", "4096B"),
        ],
    );
    let token = login(&c, &server.base, true).await;
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    submit_file(&c, &server.base, &token, &junk, "junk.mp4", &[]).await;
    // The first scrape reads the figures (then at most once a minute).
    let text = scrape(&c, &server.base).await;
    assert_eq!(
        sample(&text, "reelforge_stored_bytes"),
        Some(4096.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "reelforge_user_stored_bytes_max"),
        Some(4096.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "reelforge_users_at_quota"),
        Some(1.0),
        "{text}"
    );
}
