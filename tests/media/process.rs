//! The process runner against real processes.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use reelforge::process::{CommandSpec, ProcessError, ProgressUpdate, run};
use tokio_util::sync::CancellationToken;

fn spec(program: &str, args: &[&str]) -> CommandSpec {
    CommandSpec {
        program: program.into(),
        args: args.iter().map(OsString::from).collect(),
        cwd: std::env::temp_dir(),
        timeout: Duration::from_secs(60),
        stall_timeout: None,
        capture_stdout: false,
    }
}

#[tokio::test]
async fn captured_stdout_is_returned_and_not_parsed_as_progress() {
    let mut s = spec(
        "sh",
        &[
            "-c",
            "echo out_time_us=5; echo progress=end; printf '{\\\"a\\\": 1}'",
        ],
    );
    s.capture_stdout = true;
    let mut seen = 0;
    let out = run(&s, &CancellationToken::new(), |_| seen += 1)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("out_time_us=5\nprogress=end\n"),
        "{text:?}"
    );
    assert!(text.ends_with("1}"), "{text:?}");
}

/// Alive = exists and is not a zombie (an orphaned zombie may wait for a
/// slow init to reap it, but it no longer runs).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path:?} never written");
}

#[tokio::test]
async fn cancel_kills_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let spec = spec("sh", &["-c", &script]);
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { run(&spec, &cancel, |_| {}).await })
    };
    let pid: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
    assert!(alive(pid));
    let started = Instant::now();
    cancel.cancel();
    let result = task.await.unwrap();
    assert!(matches!(result, Err(ProcessError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Reaped by run(): the pid is gone entirely.
    // SAFETY: signal 0 only checks for existence.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0);
}

#[tokio::test]
async fn already_cancelled_does_not_spawn() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let result = run(&spec("sleep", &["30"]), &cancel, |_| {}).await;
    assert!(matches!(result, Err(ProcessError::Cancelled)));
}

#[tokio::test]
async fn cancel_kills_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let script = format!("sleep 100 & echo $$ $! > {}; sleep 100", pid_file.display());
    let spec = spec("sh", &["-c", &script]);
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { run(&spec, &cancel, |_| {}).await })
    };
    let pids: Vec<i32> = wait_for_file(&pid_file)
        .await
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    cancel.cancel();
    let result = task.await.unwrap();
    assert!(matches!(result, Err(ProcessError::Cancelled)), "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for pid in pids {
        assert!(!alive(pid), "{pid} survived");
    }
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let script = format!("sleep 100 & echo $$ $! > {}; sleep 100", pid_file.display());
    let spec = spec("sh", &["-c", &script]);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(async move { run(&spec, &cancel, |_| {}).await });
    let pids: Vec<i32> = wait_for_file(&pid_file)
        .await
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for pid in pids {
        assert!(!alive(pid), "{pid} survived");
    }
}

#[tokio::test]
async fn timeout_kills() {
    let mut spec = spec("sleep", &["30"]);
    spec.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = run(&spec, &CancellationToken::new(), |_| {}).await;
    assert!(
        matches!(result, Err(ProcessError::Timeout(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn stall_kills_when_progress_stops() {
    let mut spec = spec(
        "sh",
        &["-c", "echo out_time_us=1; echo progress=continue; sleep 30"],
    );
    spec.stall_timeout = Some(Duration::from_secs(1));
    let mut updates = Vec::new();
    let started = Instant::now();
    let result = run(&spec, &CancellationToken::new(), |u| updates.push(u)).await;
    assert!(
        matches!(result, Err(ProcessError::Stalled(_))),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3));
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].out_time, Duration::from_micros(1));
}

#[tokio::test]
async fn advancing_progress_is_not_a_stall() {
    let script = "for i in 1 2 3 4 5 6; do echo out_time_us=${i}00000; \
                  echo progress=continue; sleep 0.2; done; echo progress=end";
    let mut spec = spec("sh", &["-c", script]);
    spec.stall_timeout = Some(Duration::from_millis(700));
    let mut updates = Vec::new();
    let out = run(&spec, &CancellationToken::new(), |u| updates.push(u))
        .await
        .unwrap();
    assert_eq!(updates.len(), 7);
    assert!(out.last_progress.unwrap().done);
}

#[tokio::test]
async fn non_zero_status_keeps_stderr_tail() {
    let script = "i=0; while [ $i -lt 3000 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; \
                  echo 'fatal: the real reason' >&2; exit 3";
    let result = run(
        &spec("sh", &["-c", script]),
        &CancellationToken::new(),
        |_| {},
    )
    .await;
    match result {
        Err(ProcessError::Status { code, stderr_tail }) => {
            assert_eq!(code, Some(3));
            assert!(
                stderr_tail.ends_with("fatal: the real reason"),
                "{stderr_tail}"
            );
            assert!(stderr_tail.len() <= reelforge::process::STDERR_TAIL_BYTES);
            assert!(!stderr_tail.contains("noise line 0\n"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn missing_program_is_not_found() {
    let result = run(
        &spec("/nonexistent/ffmpeg-nope", &[]),
        &CancellationToken::new(),
        |_| {},
    )
    .await;
    let err = result.unwrap_err();
    assert!(matches!(err, ProcessError::NotFound(_)), "{err:?}");
    assert_eq!(err.code(), "program_not_found");
}

#[tokio::test]
async fn real_ffmpeg_progress() {
    let spec = spec(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=24:d=3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-nostats",
            "-",
        ],
    );
    let mut updates: Vec<ProgressUpdate> = Vec::new();
    let out = run(&spec, &CancellationToken::new(), |u| updates.push(u))
        .await
        .unwrap();
    let last = out.last_progress.unwrap();
    assert!(last.done);
    assert!(
        (last.out_time.as_secs_f64() - 3.0).abs() < 0.1,
        "{:?}",
        last.out_time
    );
    assert!(last.speed.is_some());
    assert_eq!(updates.last(), Some(&last));
    assert!(updates.windows(2).all(|w| w[0].out_time <= w[1].out_time));
    assert!(out.stderr_tail.is_empty(), "{}", out.stderr_tail);
}

#[tokio::test]
async fn children_do_not_inherit_the_service_environment() {
    // SAFETY: this test binary sets the variable before spawning and reads no other env.
    unsafe { std::env::set_var("REELFORGE_JWT_SECRET", "do-not-leak-this") };
    let mut s = spec("sh", &["-c", "env"]);
    s.capture_stdout = true;
    let out = run(&s, &CancellationToken::new(), |_| {}).await.unwrap();
    let env = String::from_utf8(out.stdout).unwrap();
    assert!(!env.contains("do-not-leak-this"), "{env}");
    assert!(!env.contains("LD_LIBRARY_PATH"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
}
