//! Real `reelforge` processes for the tests that start the built binary: a [`Server`] killed
//! when dropped, whose log is kept and searched, and the HTTP calls those tests make to it
//! (sign-up and log-in, upload, poll a task until a condition holds).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::{id_of, walk};

/// A running `reelforge` process; killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://addr` it listens on (a `worker` serves only health and metrics there).
    pub base: String,
    /// Every line the process wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Whether a line of the process's log contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    /// The lines of the process's log so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|line| line.contains(needle))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The process's resident set size in KiB (`VmRSS` of `/proc/PID/status`), or `None`
    /// where there is no such file (not Linux, or the process is gone).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `reelforge` binary the processes run. Cargo names it only to the root package's
/// integration tests, so they pass it in: `Bin(env!("CARGO_BIN_EXE_reelforge"))`.
#[derive(Debug, Clone, Copy)]
pub struct Bin(pub &'static str);

impl Bin {
    /// Start `reelforge ROLE` (`serve`, `api` or `worker`) on its own data dir and wait until
    /// it logs the address it listens on (a worker's health listener).
    pub fn start_role(self, role: &str, data: &Path, extra_env: &[(&str, &str)]) -> Server {
        let data = data.to_string_lossy();
        let listen = match role {
            "worker" => "REELFORGE_WORKER_LISTEN",
            _ => "REELFORGE_LISTEN",
        };
        let mut env = vec![
            ("REELFORGE_DATA_DIR", data.as_ref()),
            (listen, "127.0.0.1:0"),
            ("REELFORGE_WORKERS", "1"),
        ];
        env.extend_from_slice(extra_env);
        self.start_in(role, Path::new("."), &env, "http://")
    }

    /// Start `reelforge ROLE` in the folder `cwd` with `env` on top of the test's
    /// environment, and wait until a line of its log contains `ready` (the listen line
    /// carries `http://`). `Server::base` is the first `http://…` word logged, if any.
    fn start_in(self, role: &str, cwd: &Path, env: &[(&str, &str)], ready: &str) -> Server {
        let mut cmd = Command::new(self.0);
        cmd.arg(role).current_dir(cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        spawn_logged(cmd, ready)
    }
}

/// Spawn `cmd` (logging at `info`, stderr captured) and wait until a line of its log
/// contains `ready`; the process is killed if it exits first or takes over 60 s.
pub fn spawn_logged(mut cmd: Command, ready: &str) -> Server {
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(vec![]));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    let wanted = ready.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                let addr = line
                    .find("http://")
                    .and_then(|i| line[i..].split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(addr);
                sent = true;
            }
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
    let Ok(base) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        panic!("{cmd:?} did not log {ready:?} within 60 s; its log:\n{log}");
    };
    Server { child, base, log }
}

pub async fn login(c: &reqwest::Client, base: &str, first: bool) -> String {
    if first {
        let r = c
            .post(format!("{base}/api/auth/signup"))
            .json(&json!({"username": "vic", "email": "vic@example.com", "password1": "Secret123", "password2": "Secret123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r: Value = c
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "vic", "password": "Secret123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

pub async fn task(c: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    c.get(format!("{base}/api/tasks/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn wait_for(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = task(c, base, token, id).await;
        if pred(&v) {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting; last state {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Upload `path` as `name` (plus text `fields`) and return the new task's id.
pub async fn submit_file(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    path: &Path,
    name: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(path).unwrap()).file_name(name.to_string()),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let r = c
        .post(format!("{base}/api/tasks"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    id_of(r).await
}

pub fn objects_of(data: &Path, id: &str) -> Vec<String> {
    let mut files = vec![];
    walk(&data.join("objects").join("tasks").join(id), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(data.join("objects"))
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    names.sort();
    names
}
