//! E-mail through a real SMTP server (aiosmtpd, `reelforge_testkit::smtp`): `reelforge mail
//! test` as a process in each connection mode, the settings it refuses, and a task e-mail
//! sent by `mail::Mailer` in-process, read back with an independent parser.

use std::time::Duration;

use reelforge::config::{Settings, SettingsArgs};
use reelforge::mail::{MailOutput, Mailer, SendError, TaskMail, TaskMailKind, task_mail};
use reelforge_testkit::smtp::{ReceivedMail, SmtpMode, SmtpServer};

use super::REELFORGE;

const FROM: &str = "Reelforge <noreply@reelforge.test>";
/// A password with characters that must be percent-encoded in the URL.
const PASSWORD: &str = "s3cret p@ss:/word";

/// What `reelforge mail test ARGS…` printed, and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `reelforge mail ARGS…` with `env` (and no other `REELFORGE_*` variable) in an empty
/// folder.
async fn reelforge_mail(args: &[&str], env: &[(String, String)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(REELFORGE.0);
    cmd.arg("mail").args(args).current_dir(dir.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("REELFORGE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("reelforge mail did not finish within 60 s")
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_test_mail(m: &ReceivedMail, to: &str) {
    assert_eq!(m.header("From"), Some(FROM), "{m:#?}");
    assert_eq!(m.header("To"), Some(to));
    assert_eq!(m.header("Subject"), Some("Reelforge test e-mail"));
    let id = m.header("Message-ID").unwrap();
    assert!(
        id.starts_with('<') && id.ends_with("@reelforge.test>"),
        "{id}"
    );
    assert!(m.header("Date").is_some());
    assert_eq!(m.content_type, "multipart/alternative");
    assert_eq!(m.parts, ["text/plain", "text/html"]);
    assert!(
        m.text
            .as_deref()
            .unwrap()
            .contains("the SMTP settings work"),
        "{m:#?}"
    );
    let html = m.html.as_deref().unwrap();
    assert!(html.contains("<code>reelforge mail test</code>"), "{html}");
    // The sender, escaped in HTML.
    assert!(
        html.contains("Reelforge &lt;noreply@reelforge.test&gt;"),
        "{html}"
    );
    assert_eq!(m.mail_from, "noreply@reelforge.test");
    assert_eq!(m.rcpt_to, ["you@example.com"]);
}

#[tokio::test]
async fn mail_test_arrives_through_starttls_tls_and_plain() {
    for (mode, auth, word) in [
        (SmtpMode::StartTls, Some(("mailer", PASSWORD)), "starttls"),
        (SmtpMode::Tls, Some(("mailer", PASSWORD)), "tls"),
        (SmtpMode::Plain, None, "plain"),
    ] {
        let Some(server) = SmtpServer::start("mail test", mode, auth).await else {
            return;
        };
        let run = reelforge_mail(&["test", "you@example.com"], &server.env(FROM)).await;
        assert!(run.ok, "{mode:?}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim(),
            format!(
                "sent a test e-mail to you@example.com through {} ({word})",
                server.addr
            )
        );
        let messages = server.wait_for_messages(1, Duration::from_secs(10)).await;
        assert_eq!(messages.len(), 1, "{mode:?}");
        let m = &messages[0];
        assert_test_mail(m, "you@example.com");
        assert_eq!(m.tls, mode != SmtpMode::Plain, "{mode:?}");
        assert_eq!(m.auth_user.as_deref(), auth.map(|(u, _)| u), "{mode:?}");
        // Nothing of the URL or its password is printed.
        for secret in [PASSWORD, "s3cret", "p%40ss"] {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
        }
    }
}

#[tokio::test]
async fn mail_test_with_a_wrong_password_fails_and_says_why() {
    let Some(server) = SmtpServer::start(
        "wrong password",
        SmtpMode::StartTls,
        Some(("mailer", PASSWORD)),
    )
    .await
    else {
        return;
    };
    let mut env = server.env(FROM);
    env[0].1 = server.url_with("mailer", "not-the-password-9431");
    let run = reelforge_mail(&["test", "you@example.com"], &env).await;
    assert!(!run.ok, "{}", run.stdout);
    let line = run.stderr.trim();
    assert!(
        line.contains("the test e-mail to you@example.com was not sent (refused)")
            && line.contains(&format!("the mail server {} refused: 535", server.addr))
            && line.contains("Authentication credentials invalid"),
        "{line}"
    );
    assert!(!line.contains("not-the-password-9431"), "{line}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_certificate_not_trusted_is_refused() {
    let Some(server) = SmtpServer::start("untrusted certificate", SmtpMode::Tls, None).await else {
        return;
    };
    // Without REELFORGE_SMTP_CA_FILE the throw-away CA is unknown.
    let env: Vec<_> = server
        .env(FROM)
        .into_iter()
        .filter(|(k, _)| k != "REELFORGE_SMTP_CA_FILE")
        .collect();
    let run = reelforge_mail(&["test", "you@example.com"], &env).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("(a temporary failure)")
            && run
                .stderr
                .contains("the TLS handshake with the mail server")
            && run.stderr.contains("UnknownIssuer"),
        "{}",
        run.stderr
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn mail_settings_are_checked_before_any_connection() {
    // Plain text beyond loopback: refused by the settings (`.invalid` never resolves, and
    // nothing is looked up anyway).
    let env = [
        (
            "REELFORGE_SMTP_URL".to_string(),
            "smtp://mailer:hunter2@mail.invalid:25?tls=none".to_string(),
        ),
        ("REELFORGE_MAIL_FROM".to_string(), FROM.to_string()),
    ];
    let run = reelforge_mail(&["test", "you@example.com"], &env).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "REELFORGE_SMTP_URL: tls=none (plain text) is only allowed to a loopback host"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);

    // No SMTP at all: say what to set.
    let run = reelforge_mail(&["test", "you@example.com"], &[]).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("SMTP is not configured: set REELFORGE_SMTP_URL")
            && run.stderr.contains("REELFORGE_MAIL_FROM"),
        "{}",
        run.stderr
    );

    // SMTP without a sender.
    let env = [(
        "REELFORGE_SMTP_URL".to_string(),
        "smtp://127.0.0.1:2525?tls=none".to_string(),
    )];
    let run = reelforge_mail(&["test", "you@example.com"], &env).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("REELFORGE_MAIL_FROM: must be set with REELFORGE_SMTP_URL"),
        "{}",
        run.stderr
    );

    // Not an address.
    let env = [
        (
            "REELFORGE_SMTP_URL".to_string(),
            "smtp://127.0.0.1:2525?tls=none".to_string(),
        ),
        ("REELFORGE_MAIL_FROM".to_string(), FROM.to_string()),
    ];
    let run = reelforge_mail(&["test", "not an address"], &env).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("\"not an address\" is not an e-mail address"),
        "{}",
        run.stderr
    );
}

/// The mailer of settings made from `url` (and the server's CA).
fn mailer(server: &SmtpServer, url: String) -> Mailer {
    reelforge::install_crypto_provider();
    let settings = Settings::resolve(
        SettingsArgs {
            smtp_url: Some(url),
            mail_from: Some(FROM.into()),
            smtp_ca_file: server.ca_file(),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    settings.mailer().unwrap().unwrap()
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

#[tokio::test]
async fn a_task_mail_arrives_with_links_parts_and_one_click_unsubscribe() {
    let Some(server) =
        SmtpServer::start("task mail", SmtpMode::StartTls, Some(("mailer", PASSWORD))).await
    else {
        return;
    };
    let mailer = mailer(&server, server.url());
    assert_eq!(mailer.from().to_string(), FROM);
    let public = url("https://reelforge.test/");
    let mail = TaskMail {
        message_id: reelforge::mail::message_id(
            "0190a0a0-0000-7000-8000-00000000000a.succeeded",
            &public,
        ),
        to: "Rosa Díaz <rosa@example.com>".parse().unwrap(),
        from: mailer.from().clone(),
        username: "rosa".into(),
        event: TaskMailKind::Succeeded,
        input_name: "Vidéo <1> & more.mp4".into(),
        profile: "compress".into(),
        outputs: vec![MailOutput {
            name: "Vidéo <1> & more_small.mp4".into(),
            size_bytes: 1_400_000,
            duration_seconds: Some(75.4),
            download_url: url(
                "https://reelforge.test/api/tasks/0190a0a0-0000-7000-8000-00000000000a/outputs/Vid%C3%A9o_small.mp4",
            ),
        }],
        task_url: url("https://reelforge.test/#/tasks/0190a0a0-0000-7000-8000-00000000000a"),
        error: None,
        unsubscribe_url: url(
            "https://reelforge.test/api/notifications/unsubscribe?token=tok_123&u=7",
        ),
    };
    mailer.send(task_mail(&mail).unwrap()).await.unwrap();
    // A redelivery (the outbox retrying after a crash) carries the same Message-ID.
    mailer.send(task_mail(&mail).unwrap()).await.unwrap();
    let messages = server.wait_for_messages(2, Duration::from_secs(10)).await;
    for m in &messages {
        assert!(m.tls && m.auth_user.as_deref() == Some("mailer"));
        assert_eq!(
            m.header("Message-ID"),
            Some("<0190a0a0-0000-7000-8000-00000000000a.succeeded@reelforge.test>")
        );
        assert_eq!(
            m.header("Subject"),
            Some("Your file is ready: Vidéo <1> & more.mp4")
        );
        assert_eq!(m.header("To"), Some("Rosa Díaz <rosa@example.com>"));
        assert_eq!(m.header("From"), Some(FROM));
        assert_eq!(m.rcpt_to, ["rosa@example.com"]);
        assert_eq!(
            m.raw_header("List-Unsubscribe"),
            ["<https://reelforge.test/api/notifications/unsubscribe?token=tok_123&u=7>"]
        );
        assert_eq!(
            m.raw_header("List-Unsubscribe-Post"),
            ["List-Unsubscribe=One-Click"]
        );
        assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
        assert_eq!(m.parts, ["text/plain", "text/html"]);
        let text = m.text.as_deref().unwrap();
        for needle in [
            "Hello rosa,",
            "Vidéo <1> & more.mp4 has been processed with the profile compress.",
            "- Vidéo <1> & more_small.mp4 (1.4 MB, 1:15)",
            "Download: https://reelforge.test/api/tasks/0190a0a0-0000-7000-8000-00000000000a/outputs/Vid%C3%A9o_small.mp4",
            "The task: https://reelforge.test/#/tasks/0190a0a0-0000-7000-8000-00000000000a",
            "To turn them off, open this link: https://reelforge.test/api/notifications/unsubscribe?token=tok_123&u=7",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let html = m.html.as_deref().unwrap();
        for needle in [
            "<strong>Vidéo &lt;1&gt; &amp; more.mp4</strong>",
            "<a href=\"https://reelforge.test/api/tasks/0190a0a0-0000-7000-8000-00000000000a/outputs/Vid%C3%A9o_small.mp4\">Vidéo &lt;1&gt; &amp; more_small.mp4</a> (1.4 MB, 1:15)",
            "<a href=\"https://reelforge.test/#/tasks/0190a0a0-0000-7000-8000-00000000000a\">",
            "href=\"https://reelforge.test/api/notifications/unsubscribe?token=tok_123&amp;u=7\"",
        ] {
            assert!(html.contains(needle), "{needle:?} not in\n{html}");
        }
        assert!(!html.contains("<1>") && !html.contains("<img") && !html.contains("<script"));
    }
}

#[tokio::test]
async fn send_errors_say_whether_to_retry() {
    let Some(server) = SmtpServer::start(
        "send errors",
        SmtpMode::StartTls,
        Some(("mailer", PASSWORD)),
    )
    .await
    else {
        return;
    };
    let message = || {
        reelforge::mail::test_mail(
            "<e1@reelforge.test>",
            "you@example.com".parse().unwrap(),
            FROM.parse().unwrap(),
        )
        .unwrap()
    };
    // A wrong password is a 5xx: permanent.
    let wrong = mailer(&server, server.url_with("mailer", "nope-5521"));
    match wrong.send(message()).await {
        Err(SendError::Permanent(m)) => {
            assert!(m.contains("535") && !m.contains("nope-5521"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // Nobody listening: try again later.
    let port = server.port();
    drop(server);
    let url = format!("smtp://127.0.0.1:{port}?tls=none");
    let settings = Settings::resolve(
        SettingsArgs {
            smtp_url: Some(url),
            mail_from: Some(FROM.into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    let gone = settings.mailer().unwrap().unwrap();
    // The server may take a moment to let go of its port.
    let mut outcome = gone.send(message()).await;
    for _ in 0..50 {
        if matches!(outcome, Err(SendError::Transient(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = gone.send(message()).await;
    }
    match outcome {
        Err(SendError::Transient(m)) => assert!(
            m.contains(&format!(
                "the connection to the mail server 127.0.0.1:{port} failed"
            )),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}
