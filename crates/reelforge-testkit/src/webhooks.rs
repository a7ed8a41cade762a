//! A webhook receiver that verifies signatures with the `standardwebhooks` package
//! (`tests/webhooks/receiver.py`, in the venv `scripts/test.sh` makes: `need_webhooks`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Where the receiver listens: a loopback address the tests allow webhooks to reach
/// (`REELFORGE_FETCH_ALLOW=127.0.0.3`), while 127.0.0.1 and `localhost` stay refused.
pub const HOST: &str = "127.0.0.3";

/// The receiver's Python (`REELFORGE_TEST_WEBHOOK_PY`); `None` (the test skips) outside CI
/// when it is not set.
pub fn receiver_python(test: &str) -> Option<String> {
    match std::env::var("REELFORGE_TEST_WEBHOOK_PY") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if crate::in_ci() => {
            panic!("REELFORGE_TEST_WEBHOOK_PY is not set under CI: scripts/test.sh need_webhooks")
        }
        _ => {
            eprintln!(
                "SKIPPED: {test}: REELFORGE_TEST_WEBHOOK_PY is not set (bash scripts/test.sh \
                 sets it up)"
            );
            None
        }
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub hook: String,
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub content_type: String,
    pub body: Value,
    /// A known secret of the hook signs it (Standard Webhooks, checked by the package).
    pub verified: bool,
    /// Which of the hook's secrets (by index) sign it.
    pub verified_with: Vec<usize>,
    /// What the receiver answered.
    pub status: u16,
}

pub struct Receiver {
    child: Child,
    host: String,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Start one on [`HOST`] and a free port; `None` when the test should skip.
    pub fn start(test: &str) -> Option<Receiver> {
        Self::start_on(test, HOST)
    }

    /// Start one on `host` (a loopback address) and a free port.
    pub fn start_on(test: &str, host: &str) -> Option<Receiver> {
        let python = receiver_python(test)?;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/webhooks/receiver.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(&log)
            .arg(host)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Some(Receiver {
            child,
            host: host.to_string(),
            port,
            log,
            _dir: dir,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        })
    }

    /// The URL of hook `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}:{}/hook/{name}", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn control(&self, what: &str, body: Value) {
        let r = self
            .client
            .post(format!(
                "http://{}:{}/_control/{what}",
                self.host, self.port
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "receiver control {what}");
    }

    /// The secrets a hook verifies with (index 0 first).
    pub async fn set_secrets(&self, hook: &str, secrets: &[&str]) {
        self.control("secrets", json!({"hook": hook, "secrets": secrets}))
            .await;
    }

    /// Answer the hook's next requests with these statuses and headers, then 200.
    pub async fn script(&self, hook: &str, answers: &[(u16, &[(&str, &str)])]) {
        let answers: Vec<Value> = answers
            .iter()
            .map(|(status, headers)| {
                let h: serde_json::Map<String, Value> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                json!([status, h])
            })
            .collect();
        self.control("script", json!({"hook": hook, "answers": answers}))
            .await;
    }

    /// Hold the hook's next answer for `seconds`.
    pub async fn hang(&self, hook: &str, seconds: u64) {
        self.control("hang", json!({"hook": hook, "seconds": seconds}))
            .await;
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| Received {
                hook: v["hook"].as_str().unwrap_or_default().to_string(),
                id: v["id"].as_str().unwrap_or_default().to_string(),
                timestamp: v["timestamp"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default(),
                signature: v["signature"].as_str().unwrap_or_default().to_string(),
                content_type: v["content_type"].as_str().unwrap_or_default().to_string(),
                body: serde_json::from_str(v["body"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null),
                verified: v["verified"].as_bool().unwrap_or(false),
                verified_with: v["verified_with"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.as_u64().map(|i| i as usize))
                            .collect()
                    })
                    .unwrap_or_default(),
                status: v["status"].as_u64().unwrap_or_default() as u16,
            })
            .collect()
    }

    /// What hook `name` received.
    pub fn received_by(&self, name: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.hook == name)
            .collect()
    }

    /// Wait (polling, up to `timeout`) until hook `name` has received `n` requests.
    pub async fn wait_for(&self, name: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received_by(name);
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
