use reelforge_testkit::app::{Options, spawn_app, spawn_app_with};
use serde_json::json;

use super::*;

/// A read-only key of `token`'s user.
async fn read_key(app: &TestApp, token: &str) -> String {
    let r = app
        .post_json_as(
            "/api/keys",
            token,
            &json!({"name": "dashboard", "scope": "read"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Listing, showing, cancelling, retrying and deleting, with what each prints and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_can_be_listed_shown_cancelled_retried_and_deleted() {
    // No workers: tasks stay queued. URLs on this machine may be submitted.
    let app = spawn_app_with(Options {
        fetch_allow: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    let token = app.user("ana").await;
    let cli = Cli::default();

    let r = cli.run(&["tasks", "--server", &app.base]).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "not logged in to {0}: run `reelforge login --server {0}`",
            app.base
        )),
        "{}",
        r.stderr
    );
    cli.login(&app.base, "ana").await;
    let r = cli.run(&["tasks"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("No tasks yet"), "{r:?}");

    let file = junk_file(cli.home.path(), "a.mp4", 10_000);
    let r = cli
        .run(&["submit", s(&file), "-p", "thumbnail", "-o", "count=3"])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    let id = r.stdout.trim().to_string();
    assert_eq!(app.task(&token, &id).await["options"]["count"], 3);

    // Several inputs at once, a file and a URL: a task each, ids in order on stdout.
    let url = "http://127.0.0.1:9/talk.mp4";
    let more = junk_file(cli.home.path(), "b.mp4", 5_000);
    let r = cli.run(&["submit", url, s(&more), "-p", "thumbnail"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let ids: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{r:?}");
    let by_url = app.task(&token, ids[0]).await;
    assert_eq!(by_url["source"], json!({"kind": "url", "url": url}));
    assert_eq!(
        app.task(&token, ids[1]).await["source"]["filename"],
        "b.mp4"
    );
    for other in ids {
        assert_eq!(cli.run(&["delete", other]).await.code, 0);
    }

    let r = cli.run(&["tasks"]).await;
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{}",
        r.stdout
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("queued"),
        "{}",
        r.stdout
    );
    assert!(lines[1].contains("thumbnail") && lines[1].contains("a.mp4"));
    let r = cli.run(&["tasks", "--json", "--status", "queued"]).await;
    assert_eq!(r.events().len(), 1);
    assert_eq!(r.events()[0]["id"], id.as_str());
    let r = cli.run(&["tasks", "--status", "failed"]).await;
    assert!(
        r.stdout.is_empty() && r.stderr.contains("No tasks yet"),
        "{r:?}"
    );
    let r = cli.run(&["tasks", "--status", "bogus"]).await;
    assert_eq!(r.code, 2, "{r:?}");

    let r = cli.run(&["task", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("task      {id}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("status    queued"), "{}", r.stdout);
    assert!(r.stdout.contains("input     a.mp4"), "{}", r.stdout);

    // A read key reads, but may not cancel.
    let read = read_key(&app, &token).await;
    let mut cmd = cli.command(&["cancel", &id]);
    cmd.env("REELFORGE_TOKEN", &read);
    let r = cli.run_with(cmd, None).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("insufficient_scope"), "{}", r.stderr);
    let mut cmd = cli.command(&["task", &id, "--json"]);
    cmd.env("REELFORGE_TOKEN", &read);
    assert_eq!(cli.run_with(cmd, None).await.code, 0);

    let r = cli.run(&["cancel", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(app.task(&token, &id).await["status"], "cancelled");
    // Watching a task that ended badly exits 1 at once.
    let r = cli.run(&["watch", &id]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cancelled"), "{}", r.stderr);
    let r = cli.run(&["download", &id]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("only a succeeded task"), "{}", r.stderr);

    let r = cli.run(&["retry", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(app.task(&token, &id).await["status"], "queued");
    let r = cli.run(&["delete", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = cli.run(&["task", &id]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
    let r = cli.run(&["task", "not-an-id"]).await;
    assert_eq!(r.code, 2, "{r:?}");
}

/// Logging in with a key, REELFORGE_TOKEN over the stored one, and logging out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_login_the_environment_and_go_with_logout() {
    let app = spawn_app().await;
    let token = app.user("ana").await;
    let bob = app.user("bob").await;
    let cli = Cli::default();

    // --with-token: a key made on the account page, read from stdin.
    let key = read_key(&app, &token).await;
    let cmd = cli.command(&["login", "--server", &app.base, "--with-token"]);
    let r = cli.run_with(cmd, Some(&format!("{key}\n"))).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = cli.run(&["whoami"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with(&format!("ana <ana@example.com> on {}", app.base)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("API key \"dashboard\"") && r.stdout.contains(", read,"),
        "{}",
        r.stdout
    );

    // A wrong key is refused at login, and nothing is stored.
    let cmd = cli.command(&["login", "--server", &app.base, "--with-token"]);
    let r = cli.run_with(cmd, Some("rf_not_a_key\n")).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(cli.run(&["whoami"]).await.stdout.contains("dashboard"));

    // REELFORGE_TOKEN wins over the stored credential.
    let mut cmd = cli.command(&["whoami"]);
    cmd.env("REELFORGE_TOKEN", &bob);
    let r = cli.run_with(cmd, None).await;
    assert!(r.stdout.starts_with("bob <bob@example.com>"), "{r:?}");

    // Logging out of a given key forgets it; the key itself lives on.
    let r = cli.run(&["logout"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("still works until you revoke it"),
        "{}",
        r.stderr
    );
    assert_eq!(cli.run(&["whoami", "--server", &app.base]).await.code, 4);
    let (_, keys) = app.get_json("/api/keys", &token).await;
    assert_eq!(keys.as_array().unwrap().len(), 1);

    // A password login makes a key for this machine; a second login replaces it, and
    // logout revokes it.
    cli.login(&app.base, "ana").await;
    cli.login(&app.base, "ana").await;
    let (_, keys) = app.get_json("/api/keys", &token).await;
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("reelforge CLI on ")),
        "{names:?}"
    );
    let r = cli.run(&["logout"]).await;
    assert!(r.stderr.contains("API key is revoked"), "{r:?}");
    let (_, keys) = app.get_json("/api/keys", &token).await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");

    // A wrong password: exit 4 and what to check.
    let cmd = cli.command(&[
        "login",
        "--server",
        &app.base,
        "-u",
        "ana",
        "--password-stdin",
    ]);
    let r = cli.run_with(cmd, Some("wrong\n")).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("refused the username or password"),
        "{}",
        r.stderr
    );
}
