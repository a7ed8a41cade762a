//! What a newcomer meets first, with the defaults a newcomer gets:
//! - the README's tour, run from README.md itself (not a copy) against the real binary
//!   started in a fresh empty folder with no path settings;
//! - relative path settings, and a failed probe explained in the log;
//! - an `api` and two `worker` processes started on one host with the same settings.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reelforge_testkit::clips::clip_short;
use reelforge_testkit::process::{Server, login, spawn_logged, submit_file, task, wait_for};
use serde_json::Value;

/// The README, read at build time: editing it rebuilds this test.
const README: &str = include_str!("../../README.md");
const TOUR: &str = "A 5-minute tour";

/// The `sh` code blocks of the README section whose heading is `heading`, in order.
fn shell_blocks(markdown: &str, heading: &str) -> Vec<String> {
    let start = markdown
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section '## {heading}'"));
    let section = &markdown[start + 1..];
    let end = section[1..].find("\n## ").map_or(section.len(), |i| i + 1);
    let mut blocks = vec![];
    let mut current: Option<String> = None;
    for line in section[..end].lines() {
        let fence = line.trim_start().starts_with("```");
        match current.as_mut() {
            None if fence && line.trim_start() == "```sh" => current = Some(String::new()),
            Some(_) if fence => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// `text` with every `from` replaced; the README must still contain `from`.
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the README tour no longer contains {from:?}; tests/e2e/newcomer.rs points it at \
         the test's own server and folders: update the substitution there"
    );
    text.replace(from, to)
}

/// The test process's environment without any `REELFORGE_*` setting, for a child that
/// must see only what the README gives it.
fn without_settings(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REELFORGE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Run a bash script in `cwd` with no `REELFORGE_*` settings; (stdout, stderr) when it
/// exits 0 within `limit`, a panic with both otherwise.
async fn run_script(script: &str, cwd: &Path, limit: Duration) -> (String, String) {
    let mut cmd = without_settings(Command::new("bash"));
    // The client keeps its credential under the tour's folder, not the tester's home.
    cmd.arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join(".config"))
        .env("XDG_CACHE_HOME", cwd.join(".cache"));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the tour took longer than {limit:?}"))
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "the tour failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// The value the tour's shell printed as `tour: NAME=value`.
fn reported<'a>(stdout: &'a str, name: &str) -> &'a str {
    let prefix = format!("tour: {name}=");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the tour did not report {name}:\n{stdout}"))
}

#[tokio::test]
async fn readme_tour_runs_as_written_from_a_fresh_folder() {
    let blocks = shell_blocks(README, TOUR);
    let (start, client) = blocks.split_first().expect("the tour has no sh blocks");
    assert!(client.len() >= 6, "{blocks:#?}");

    // The tour's first block starts the service. Its command runs as written except that
    // `bash scripts/run.sh` (install, build, run from the repo root) is the binary under
    // test, run in a fresh empty folder; the listen address is the only setting added.
    let home = tempfile::tempdir().unwrap();
    let start = substitute(
        start,
        "bash scripts/run.sh",
        &format!("exec {} serve", env!("CARGO_BIN_EXE_reelforge")),
    );
    let mut cmd = without_settings(Command::new("bash"));
    cmd.arg("-c")
        .arg(&start)
        .current_dir(home.path())
        .env("REELFORGE_LISTEN", "127.0.0.1:0");
    let server = spawn_logged(cmd, "listening on");

    // The other blocks run in one shell, in order, as a reader pastes them.
    let files = tempfile::tempdir().unwrap();
    let web = free_port();
    let mut script = client.concat();
    script = substitute(&script, "http://127.0.0.1:8080", &server.base);
    script = substitute(&script, "http.server 8000", &format!("http.server {web}"));
    script = substitute(&script, "127.0.0.1:8000", &format!("127.0.0.1:{web}"));
    script = substitute(
        &script,
        "/tmp/reelforge-tour",
        &files.path().to_string_lossy(),
    );
    script = substitute(
        &script,
        "~/reelforge/target/release/reelforge",
        env!("CARGO_BIN_EXE_reelforge"),
    );
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}\n\
         echo \"tour: STATUS=$s\"; echo \"tour: TASK=$TASK\"; echo \"tour: UPLOAD=$UPLOAD\"\n\
         echo \"tour: TOKEN=$TOKEN\"\n"
    );
    let (stdout, _) = run_script(&script, files.path(), Duration::from_secs(300)).await;

    // The client: three thumbnails downloaded, and the table lists the tasks.
    let mut thumbs: Vec<String> = std::fs::read_dir(files.path().join("thumbs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    thumbs.sort();
    assert_eq!(
        thumbs,
        [
            "clip_thumb_001.jpg",
            "clip_thumb_002.jpg",
            "clip_thumb_003.jpg"
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("STATUS") && stdout.contains("thumbnail"),
        "{stdout}"
    );

    // By URL: the SSE stream ran to the end, polling saw success, two parts of 1+20+1 and
    // 1+5+1 seconds; the ranged download answered 206 with 1,024 bytes.
    assert_eq!(reported(&stdout, "STATUS"), "succeeded", "{stdout}");
    assert!(stdout.contains("event: task"), "{stdout}");
    assert!(stdout.contains(r#""status":"succeeded""#), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 206 Partial Content"), "{stdout}");
    assert!(stdout.contains("content-range: bytes 0-1023/"), "{stdout}");
    assert_eq!(
        std::fs::metadata(files.path().join("head.bin"))
            .unwrap()
            .len(),
        1024
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = reported(&stdout, "TOKEN");
    let by_url = task(&c, &server.base, token, reported(&stdout, "TASK")).await;
    let parts: Vec<(&str, f64)> = by_url["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["duration"].as_f64().unwrap()))
        .collect();
    assert_eq!(parts.len(), 2, "{by_url}");
    assert_eq!(
        by_url["attempts"], 1,
        "the tour's first attempt failed: {by_url}"
    );
    assert_eq!(parts[0].0, "clip_part_001.mp4");
    assert!(
        (parts[0].1 - 22.0).abs() < 0.3 && (parts[1].1 - 7.0).abs() < 0.3,
        "{parts:?}"
    );
    let downloaded = std::fs::metadata(files.path().join("clip_part_001.mp4")).unwrap();
    assert_eq!(
        Some(downloaded.len()),
        by_url["outputs"][0]["size"].as_u64()
    );

    // By upload with options: three square parts.
    let upload = reported(&stdout, "UPLOAD").to_string();
    let done = wait_for(
        &c,
        &server.base,
        token,
        &upload,
        Duration::from_secs(120),
        |v| v["status"] != "queued" && v["status"] != "running",
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["options"]["segment_seconds"], 10.0, "{done}");
    let outputs = done["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 3, "{done}");
    assert!(outputs.iter().all(|o| o["width"] == o["height"]), "{done}");

    // Everything lives under the relative default ./data of the folder it started in.
    let data = home.path().join("data");
    assert!(data.join("reelforge.db").is_file());
    assert!(data.join("objects").join("tasks").is_dir());
    drop(server);
}

#[tokio::test]
async fn relative_path_settings_work_and_a_failed_probe_says_why_in_the_log() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = without_settings(Command::new(env!("CARGO_BIN_EXE_reelforge")));
    cmd.arg("serve")
        .current_dir(home.path())
        .env("REELFORGE_LISTEN", "127.0.0.1:0")
        .env("REELFORGE_DATA_DIR", "state")
        .env("REELFORGE_SCRATCH_DIR", "tmp/../tmp/scratch");
    let server = spawn_logged(cmd, "listening on");
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = login(&c, &server.base, true).await;

    let good = submit_file(&c, &server.base, &token, &clip_short(), "short.mp4", &[]).await;
    let notes = home.path().join("notes.txt");
    std::fs::write(&notes, "these are notes, not a video\n").unwrap();
    let bad = submit_file(&c, &server.base, &token, &notes, "notes.mp4", &[]).await;
    let finished = |v: &Value| v["status"] != "queued" && v["status"] != "running";
    let good = wait_for(
        &c,
        &server.base,
        &token,
        &good,
        Duration::from_secs(120),
        finished,
    )
    .await;
    assert_eq!(good["status"], "succeeded", "{good}");
    let bad = wait_for(
        &c,
        &server.base,
        &token,
        &bad,
        Duration::from_secs(60),
        finished,
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid_media", "{bad}");

    assert!(home.path().join("state/reelforge.db").is_file());
    assert!(home.path().join("tmp/scratch").is_dir());
    // The user gets a short message; the operator's log has the program, its exit status
    // and what it wrote on stderr.
    let deadline = Instant::now() + Duration::from_secs(5);
    let explained = || {
        server.logged("process failed")
            && server.logged("program=ffprobe")
            && server.logged("status=status 1")
            && server.logged("Invalid data found when processing input")
    };
    while !explained() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(explained(), "the log does not explain the failed probe");
}

/// Two workers and an API on one host, all started with the same settings (as from one
/// environment file): the workers do not take the API's address, and they run jobs.
#[tokio::test]
async fn an_api_and_two_workers_start_on_one_host_with_the_same_settings() {
    let home = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let settings = [("REELFORGE_LISTEN", listen.as_str())];
    let start = |role: &str, ready: &str| -> Server {
        let mut cmd = without_settings(Command::new(env!("CARGO_BIN_EXE_reelforge")));
        cmd.arg(role).current_dir(home.path()).envs(settings);
        spawn_logged(cmd, ready)
    };
    let api = start("api", "listening on");
    let mut workers = [
        start("worker", "not listening"),
        start("worker", "not listening"),
    ];

    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = login(&c, &api.base, true).await;
    let id = submit_file(&c, &api.base, &token, &clip_short(), "short.mp4", &[]).await;
    let done = wait_for(&c, &api.base, &token, &id, Duration::from_secs(120), |v| {
        v["status"] != "queued" && v["status"] != "running"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    for w in &mut workers {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker exited");
    }
}

#[test]
fn shell_blocks_are_read_from_the_named_section_only() {
    let md = "# T\n## A\n```sh\na1\n```\ntext\n```\nnot sh\n```\n```sh\na2\nx\n```\n\
              ## B\n```sh\nb\n```\n";
    assert_eq!(shell_blocks(md, "A"), vec!["a1\n", "a2\nx\n"]);
    assert_eq!(shell_blocks(md, "B"), vec!["b\n"]);
}
