//! The client commands (`reelforge login`, `submit`, `tasks`, …) as a user runs them: the
//! built binary in its own process, with its own home (config and cache dirs), against a
//! spawned server; sometimes through a proxy that measures what reached the server.
//!
//! - `submit.rs`: submit → wait → download with real ffmpeg, a failing input, a revoked key;
//! - `resume.rs`: uploads interrupted (Ctrl-C, a cut connection) and downloads resumed;
//! - `commands.rs`: tasks, task, watch, cancel, retry, delete, whoami, logout, scopes;
//! - `output.rs`: a progress bar on a terminal, plain text when piped, NDJSON, NO_COLOR,
//!   completions, and options refused before anything is sent.

mod commands;
mod output;
mod resume;
mod submit;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reelforge_testkit::app::TestApp;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const REELFORGE: &str = env!("CARGO_BIN_EXE_reelforge");

/// The test user's password (`TestApp::user`).
const PASSWORD: &str = "Secret123";

/// A user's machine: a home with its own config and cache dirs.
pub struct Cli {
    pub home: tempfile::TempDir,
}

impl Default for Cli {
    fn default() -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
        }
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The NDJSON events of `--json`, every line parsed.
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }
}

impl Cli {
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache/reelforge")
    }

    /// `reelforge ARGS…` with this home, no inherited client settings.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.program(REELFORGE, args)
    }

    /// `PROGRAM ARGS…` in this home's environment.
    pub fn program(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env_remove("REELFORGE_SERVER")
            .env_remove("REELFORGE_TOKEN")
            .env_remove("NO_COLOR")
            .current_dir(self.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args), None).await
    }

    pub async fn run_with(&self, mut cmd: tokio::process::Command, stdin: Option<&str>) -> Run {
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            child.wait_with_output(),
        )
        .await
        .expect("the command did not end within 300 s")
        .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `reelforge login --server SERVER --username NAME --password-stdin`.
    pub async fn login(&self, server: &str, username: &str) -> Run {
        let cmd = self.command(&[
            "login",
            "--server",
            server,
            "--username",
            username,
            "--password-stdin",
        ]);
        let r = self.run_with(cmd, Some(&format!("{PASSWORD}\n"))).await;
        assert_eq!(r.code, 0, "login: {r:?}");
        r
    }
}

/// A file of `len` pseudo-random bytes (not media) in `dir`.
pub fn junk_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut bytes = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The bytes of a task's output, fetched as its owner.
pub async fn output_bytes(app: &TestApp, token: &str, url: &str) -> Vec<u8> {
    let r = app.get(url, token).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
