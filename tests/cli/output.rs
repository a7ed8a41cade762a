use std::sync::atomic::Ordering;

use reelforge_testkit::app::{Options, spawn_app, spawn_app_with};
use reelforge_testkit::clips::clip_tiny;
use reelforge_testkit::proxy::Proxy;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// `script` (util-linux) running `reelforge ARGS…` under a pseudo-terminal: its stdin is
/// typed there, and its stdout is the screen.
fn terminal(cli: &Cli, args: &[&str]) -> tokio::process::Command {
    let line = std::iter::once(REELFORGE)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    cli.program("script", &["-qec", &line, "/dev/null"])
}

/// `reelforge ARGS…` under a pseudo-terminal: all it wrote there.
async fn on_a_terminal(cli: &Cli, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = terminal(cli, args);
    cmd.env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = cli.run_with(cmd, None).await;
    (r.code, r.stdout + &r.stderr)
}

/// On a terminal: a bar that redraws itself, and colours unless NO_COLOR. Piped: no
/// control character at all. `--json`: every stdout line a JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_on_a_terminal_plain_lines_when_piped_and_ndjson_with_json() {
    let app = spawn_app_with(Options {
        workers: 1,
        ..Default::default()
    })
    .await;
    app.user("ana").await;
    let cli = Cli::default();
    cli.login(&app.base, "ana").await;
    let clip = clip_tiny();
    let submit = ["submit", s(&clip), "-p", "thumbnail", "--wait"];

    let (code, screen) = on_a_terminal(&cli, &submit, &[]).await;
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("\r\u{1b}[2K"),
        "the bar redraws in place: {screen:?}"
    );
    assert!(
        screen.contains("] ") && screen.contains("[===="),
        "a bar: {screen:?}"
    );
    assert!(
        screen.contains("\u{1b}[32msucceeded"),
        "coloured: {screen:?}"
    );
    let (code, screen) = on_a_terminal(&cli, &submit, &[("NO_COLOR", "1")]).await;
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("[===="), "still a bar: {screen:?}");
    assert!(!screen.contains("\u{1b}[32m"), "NO_COLOR: {screen:?}");

    let r = cli.run(&submit).await;
    assert_eq!(r.code, 0, "{r:?}");
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{name} piped has control characters: {text:?}"
        );
    }
    assert!(r.stderr.contains("tiny.mp4: uploaded 100%"), "{}", r.stderr);
    assert!(r.stderr.contains("succeeded (1 output)"), "{}", r.stderr);

    let mut json = submit.to_vec();
    json.push("--json");
    let r = cli.run(&json).await;
    assert_eq!(r.code, 0, "{r:?}");
    let events = r.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"upload"), "{kinds:?}");
    assert!(kinds.contains(&"queued"), "{kinds:?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "task");
    assert_eq!(last["task"]["status"], "succeeded");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

/// `-o` is read against the profile's schema and refused in the API's words before a byte
/// reaches the server; so is a missing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_inputs_are_refused_before_anything_is_sent() {
    let app = spawn_app().await;
    let proxy = Proxy::start(&app.base).await;
    let cli = Cli::default();
    let file = junk_file(cli.home.path(), "a.mp4", 1000);
    for (args, said) in [
        (
            vec!["-p", "convert", "-o", "format=webm", "-o", "fps=500"],
            "invalid_options: options.fps",
        ),
        (
            vec![
                "-p",
                "convert",
                "-o",
                "format=webm",
                "-o",
                "segmentSeconds=5",
            ],
            "segmentSeconds",
        ),
        (
            vec!["-p", "thumbnails"],
            "invalid_profile: unknown profile \"thumbnails\"",
        ),
        (vec!["-o", "fps"], "key=value"),
    ] {
        let mut full = vec!["submit", "--server", &proxy.base, s(&file)];
        full.extend(args);
        let r = cli.run(&full).await;
        assert_eq!(r.code, 2, "{full:?}: {r:?}");
        assert!(r.stderr.contains(said), "{full:?}: {}", r.stderr);
    }
    let r = cli
        .run(&["submit", "--server", &proxy.base, "missing.mp4"])
        .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("missing.mp4") && r.stderr.contains("give a file or an http(s) URL"));
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        0,
        "nothing reached the server"
    );
    let r = cli.run(&["submit"]).await;
    assert_eq!(r.code, 2, "clap's usage error: {r:?}");
}

#[tokio::test]
async fn completions_for_bash_zsh_and_fish() {
    let cli = Cli::default();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef reelforge"),
        ("fish", "complete -c reelforge"),
    ] {
        let r = cli.run(&["completions", shell]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
        let download_flag = r.stdout.contains("--download") || r.stdout.contains("-l download");
        assert!(r.stdout.contains("submit") && download_flag, "{shell}");
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).await.code, 2);
}

/// Read the screen until `prompt` shows (60 s at most).
async fn wait_for_prompt(
    screen: &mut (impl AsyncReadExt + Unpin),
    seen: &mut String,
    prompt: &str,
) {
    let mut buf = [0u8; 1024];
    let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while !seen.contains(prompt) {
            let n = screen.read(&mut buf).await.unwrap();
            assert!(n > 0, "the screen closed before {prompt:?}: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(found.is_ok(), "no {prompt:?} on the screen: {seen:?}");
}

/// On a terminal `login` asks for the user name, then for the password without echoing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_asks_on_the_terminal_and_does_not_echo_the_password() {
    let app = spawn_app().await;
    app.user("ana").await;
    let cli = Cli::default();
    let mut child = terminal(&cli, &["login", "--server", &app.base])
        .spawn()
        .unwrap();
    let mut keys = child.stdin.take().unwrap();
    let mut screen = child.stdout.take().unwrap();
    let mut seen = String::new();
    wait_for_prompt(&mut screen, &mut seen, "Username or e-mail: ").await;
    keys.write_all(b"ana\n").await.unwrap();
    wait_for_prompt(&mut screen, &mut seen, "Password: ").await;
    // The prompt is written just before echo is turned off: typing a moment later is what
    // a person does, and keeps the check below from racing that.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    keys.write_all(b"Secret123\n").await.unwrap();
    screen.read_to_string(&mut seen).await.unwrap();
    let status = child.wait().await.unwrap();
    drop(keys);
    assert!(status.success(), "{seen:?}");
    assert!(
        seen.contains("Logged in to") && seen.contains("as ana"),
        "{seen:?}"
    );
    assert!(
        !seen.contains("Secret123"),
        "the password was echoed: {seen:?}"
    );
    assert!(
        seen.contains("ana"),
        "the user name is echoed as typed: {seen:?}"
    );
    let r = cli.run(&["whoami"]).await;
    assert!(r.stdout.starts_with("ana <ana@example.com>"), "{r:?}");
}
