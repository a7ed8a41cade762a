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
