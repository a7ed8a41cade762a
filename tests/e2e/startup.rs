//! The binary's start-up checks and the administration commands, as a user runs them.

use std::process::{Command, Output, Stdio};

fn reelforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelforge"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Fails fast, exit code 1, one line on stderr naming the setting.
fn fails_with(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let start = std::time::Instant::now();
    let out = reelforge(args, env);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("reelforge: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle} not in {stderr}");
}

#[test]
fn bad_settings_fail_fast_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    fails_with(
        &["serve"],
        &[
            ("REELFORGE_DATA_DIR", d),
            ("REELFORGE_STORAGE_URL", "::not a url"),
        ],
        "REELFORGE_STORAGE_URL",
    );
    fails_with(
        &["serve"],
        &[("REELFORGE_DATA_DIR", d), ("REELFORGE_LISTEN", "nowhere")],
        "REELFORGE_LISTEN",
    );
    fails_with(
        &["serve"],
        &[("REELFORGE_DATA_DIR", d), ("REELFORGE_MAX_UPLOAD", "lots")],
        "REELFORGE_MAX_UPLOAD",
    );
    fails_with(
        &["serve"],
        &[
            ("REELFORGE_DATA_DIR", d),
            ("REELFORGE_FETCH_ALLOW", "10.0.0.0/33"),
        ],
        "REELFORGE_FETCH_ALLOW",
    );
    fails_with(
        &["serve"],
        &[
            ("REELFORGE_DATA_DIR", d),
            ("REELFORGE_TRUSTED_PROXIES", "10.0.0.1, nginx"),
        ],
        "REELFORGE_TRUSTED_PROXIES",
    );
    fails_with(
        &["serve", "--token-ttl", "soon"],
        &[("REELFORGE_DATA_DIR", d)],
        "REELFORGE_TOKEN_TTL",
    );
    fails_with(
        &["serve"],
        &[("REELFORGE_DATA_DIR", "/proc/reelforge/cannot")],
        "REELFORGE_DATA_DIR",
    );
    // ffmpeg missing: nothing on PATH.
    fails_with(
        &["serve"],
        &[("REELFORGE_DATA_DIR", d), ("PATH", "/nonexistent")],
        "ffmpeg",
    );
    // An unwritable data dir or missing ffmpeg never leaves a half-made secret behind.
    assert!(!std::path::Path::new("/proc/reelforge").exists());
}

#[test]
fn user_administration_without_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let pw = [("REELFORGE_NEW_PASSWORD", "Admin123")];
    let out = reelforge(
        &[
            "user",
            "create",
            "admin",
            "admin@example.com",
            "--data-dir",
            d,
        ],
        &pw,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created admin"));
    // Settings flags work before or after the action.
    let out = reelforge(&["user", "--data-dir", d, "list"], &[]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("admin\tadmin@example.com\tactive"), "{text}");
    let out = reelforge(&["user", "disable", "admin", "--data-dir", d], &[]);
    assert!(out.status.success(), "{out:?}");
    let out = reelforge(&["user", "list", "--data-dir", d], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\tdisabled"));
    // Mistakes are one-line errors.
    fails_with(
        &["user", "create", "x y", "a@example.com", "--data-dir", d],
        &pw,
        "username",
    );
    fails_with(
        &["user", "create", "bob", "bob@example.com", "--data-dir", d],
        &[("REELFORGE_NEW_PASSWORD", "weak")],
        "password",
    );
    fails_with(
        &["user", "disable", "nobody", "--data-dir", d],
        &[],
        "nobody",
    );
    let out = reelforge(&["migrate", "--data-dir", d], &[]);
    assert!(out.status.success());
    let secret = dir.path().join("jwt-secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// `user create --admin`, `promote`/`demote` and `invite` on the command line; a real
/// `serve` with `REELFORGE_SIGNUP=invite` takes the printed code once, and its admin sees the
/// process's workers.
#[tokio::test]
async fn admins_and_invite_codes_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let pw = [("REELFORGE_NEW_PASSWORD", "Secret123")];
    let out = reelforge(
        &[
            "user",
            "create",
            "root",
            "root@example.com",
            "--admin",
            "--data-dir",
            d,
        ],
        &pw,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("as an admin"));
    let out = reelforge(
        &["user", "create", "ops", "ops@example.com", "--data-dir", d],
        &pw,
    );
    assert!(out.status.success(), "{out:?}");
    let list = |who: &str| {
        let out = reelforge(&["user", "list", "--data-dir", d], &[]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.split('\t').nth(1) == Some(who))
            .map(|l| l.rsplit('\t').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("{who} not listed: {text}"))
    };
    assert_eq!((list("root"), list("ops")), ("admin".into(), "user".into()));
    assert!(
        reelforge(&["user", "promote", "OPS", "--data-dir", d], &[])
            .status
            .success()
    );
    assert_eq!(list("ops"), "admin");
    assert!(
        reelforge(&["user", "demote", "ops", "--data-dir", d], &[])
            .status
            .success()
    );
    assert_eq!(list("ops"), "user");
    fails_with(
        &["user", "promote", "nobody", "--data-dir", d],
        &[],
        "nobody",
    );
    fails_with(
        &["user", "invite", "--expires-in-days", "0", "--data-dir", d],
        &[],
        "expires_in_days",
    );
    // The code alone on stdout (for scripts), what it is on stderr.
    let out = reelforge(
        &["user", "invite", "--note", "for Dana", "--data-dir", d],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(code.len(), 43, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid until"));

    let server =
        super::REELFORGE.start_role("serve", dir.path(), &[("REELFORGE_SIGNUP", "invite")]);
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = &server.base;
    let signup = |invite: Option<&str>| {
        c.post(format!("{base}/api/auth/signup"))
            .json(
                &serde_json::json!({"username": "dana", "email": "dana@example.com",
                "password1": "Secret123", "password2": "Secret123", "invite": invite}),
            )
            .send()
    };
    assert_eq!(signup(None).await.unwrap().status(), 403);
    assert_eq!(signup(Some(&code)).await.unwrap().status(), 201);
    let r = c
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "root", "password": "Secret123"}))
        .send()
        .await
        .unwrap();
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The workers' first beat is sent as they start; the listener may be up before it lands.
    let mut view = serde_json::Value::Null;
    for _ in 0..250 {
        view = c
            .get(format!("{base}/api/admin/overview"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["workers"].as_array().is_some_and(|w| !w.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(view["signup"], "invite");
    let workers = view["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{view}");
    assert_eq!(workers[0]["pid"], server.child.id());
}
