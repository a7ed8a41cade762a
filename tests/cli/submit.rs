use std::os::unix::fs::PermissionsExt;

use reelforge_testkit::app::{Options, spawn_app_with};
use reelforge_testkit::clips::clip_tiny;

use super::*;

/// The path a newcomer's script takes: log in, submit and wait, get the outputs; then a
/// file that is not media, and a key revoked on the account page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_download_then_a_failing_input_then_a_revoked_key() {
    let app = spawn_app_with(Options {
        workers: 1,
        ..Default::default()
    })
    .await;
    let token = app.user("ana").await;
    let cli = Cli::default();
    cli.login(&app.base, "ana").await;
    let creds = cli.path("config/reelforge/credentials.json");
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the credential file is the user's alone");
    assert!(!std::fs::read_to_string(&creds).unwrap().contains(PASSWORD));

    // No --server: the server logged in to is remembered.
    let out = cli.path("out");
    let clip = clip_tiny();
    let r = cli
        .run(&[
            "submit",
            s(&clip),
            "--profile",
            "thumbnail",
            "--wait",
            "--download",
            s(&out),
        ])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    let id = r.stdout.trim();
    assert_eq!(id.len(), 36, "stdout is the task id alone: {r:?}");
    let task = app.task(&token, id).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let outputs = task["outputs"].as_array().unwrap();
    assert!(!outputs.is_empty());
    for o in outputs {
        let name = o["name"].as_str().unwrap();
        let local = std::fs::read(out.join(name)).unwrap();
        let served = output_bytes(&app, &token, o["url"].as_str().unwrap()).await;
        assert_eq!(local, served, "{name} downloaded whole");
        assert!(!out.join(format!("{name}.part")).exists());
    }

    // Not media: the task fails, and the command says why with exit status 1.
    let bad = junk_file(cli.home.path(), "holiday.mp4", 64 * 1024);
    let r = cli.run(&["submit", s(&bad), "--wait"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("holiday.mp4 failed: invalid_media:"),
        "the error is said: {}",
        r.stderr
    );

    // The key this machine logged in with, revoked elsewhere: exit 4, and what to do.
    let who = cli.run(&["whoami", "--json"]).await;
    assert_eq!(who.code, 0, "{who:?}");
    let account: Value = serde_json::from_str(&who.stdout).unwrap();
    assert_eq!(account["user"]["username"], "ana");
    assert_eq!(account["credential"], "api_key");
    let key = account["key"]["id"].as_str().unwrap();
    let r = app
        .delete(&format!("/api/keys/{key}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = cli.run(&["tasks"]).await;
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("revoked or expired")
            && r.stderr
                .contains(&format!("run `reelforge login --server {}`", app.base)),
        "{}",
        r.stderr
    );
    let r = cli.run(&["submit", s(&clip), "--wait"]).await;
    assert_eq!(r.code, 4, "{r:?}");
}
