//! A real SMTP server for the tests: `tests/mail/smtp_server.py` (aiosmtpd) on a free
//! loopback port, in one of three modes, with or without AUTH, keeping every message it
//! receives. `REELFORGE_TEST_SMTP_PY` names the Python of a virtual environment with
//! aiosmtpd (`scripts/test.sh` need_smtp makes it); the `openssl` command makes the
//! throw-away certificates.
//!
//! Messages are read back as the server parsed them with Python's e-mail package
//! ([`ReceivedMail`]), an implementation independent of the one under test, plus the raw
//! bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// How clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// STARTTLS required before AUTH or MAIL.
    StartTls,
    /// TLS from the first byte.
    Tls,
    /// No TLS (loopback).
    Plain,
}

impl SmtpMode {
    fn arg(self) -> &'static str {
        match self {
            SmtpMode::StartTls => "starttls",
            SmtpMode::Tls => "tls",
            SmtpMode::Plain => "plain",
        }
    }
}

/// A running SMTP server; killed when dropped.
pub struct SmtpServer {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub mode: SmtpMode,
    auth: Option<(String, String)>,
}

/// A message as the server received and parsed it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope: `MAIL FROM` and `RCPT TO`.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Whether the session was encrypted (implicit TLS, or upgraded by STARTTLS).
    pub tls: bool,
    /// Who authenticated, if anyone.
    pub auth_user: Option<String>,
    /// Every header in order, values decoded (RFC 2047) and unfolded.
    pub headers: Vec<(String, String)>,
    /// The top-level `Content-Type` without parameters, e.g. `multipart/alternative`.
    pub content_type: String,
    /// The content types of the leaf parts, in order.
    pub parts: Vec<String>,
    /// The first `text/plain` part, decoded, with `\n` line ends.
    pub text: Option<String>,
    /// The first `text/html` part, decoded, with `\n` line ends.
    pub html: Option<String>,
    /// The message exactly as received.
    pub raw: String,
}

impl ReceivedMail {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header line called `name` as it was on the wire (folded lines joined).
    pub fn raw_header(&self, name: &str) -> Vec<String> {
        let head = self
            .raw
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.split("\r\n")
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .collect()
    }
}

/// The Python with aiosmtpd (`REELFORGE_TEST_SMTP_PY`); `None` (said on stderr) when unset
/// outside CI, a failure under CI.
pub fn smtp_python(test: &str) -> Option<String> {
    match std::env::var("REELFORGE_TEST_SMTP_PY") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if crate::in_ci() => {
            panic!("REELFORGE_TEST_SMTP_PY is not set under CI: scripts/test.sh need_smtp")
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: mail case {test}: REELFORGE_TEST_SMTP_PY is not set (bash \
                 scripts/test.sh makes a venv with aiosmtpd and sets it)"
            );
            None
        }
    }
}

impl SmtpServer {
    /// Start a server in `mode`, requiring AUTH with `auth` (user, password) when given, and
    /// wait until it accepts connections. `None` when the test is to be skipped (see
    /// [`smtp_python`]).
    pub async fn start(test: &str, mode: SmtpMode, auth: Option<(&str, &str)>) -> Option<Self> {
        let python = smtp_python(test)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mail/smtp_server.py");
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(&script)
            .arg("--dir")
            .arg(dir.path())
            .args(["--mode", mode.arg()]);
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("REELFORGE_TEST_SMTP_PY={python}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{script:?} did not say it was ready within 30 s"))
            .unwrap();
        let addr = match ready.as_deref().and_then(|l| l.strip_prefix("ready ")) {
            Some(addr) => addr.trim().to_string(),
            None => {
                let status = child.wait().await;
                panic!("{script:?} did not start ({ready:?}, {status:?}); see its stderr above")
            }
        };
        Some(SmtpServer {
            child,
            dir,
            addr,
            mode,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap()
    }

    /// The `REELFORGE_SMTP_URL` that reaches this server with its credentials.
    pub fn url(&self) -> String {
        match &self.auth {
            Some((user, password)) => self.url_with(user, password),
            None => self.url_for(""),
        }
    }

    /// The `REELFORGE_SMTP_URL` of this server with other credentials (percent-encoded
    /// here).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        self.url_for(&format!("{}:{}@", encode(user), encode(password)))
    }

    fn url_for(&self, userinfo: &str) -> String {
        let port = self.port();
        match self.mode {
            SmtpMode::StartTls => format!("smtp://{userinfo}127.0.0.1:{port}"),
            SmtpMode::Tls => format!("smtps://{userinfo}127.0.0.1:{port}"),
            SmtpMode::Plain => format!("smtp://{userinfo}127.0.0.1:{port}?tls=none"),
        }
    }

    /// The throw-away CA that signed the server's certificate (`REELFORGE_SMTP_CA_FILE`);
    /// `None` in plain mode.
    pub fn ca_file(&self) -> Option<PathBuf> {
        let ca = self.dir.path().join("certs").join("ca.pem");
        ca.exists().then_some(ca)
    }

    /// The `REELFORGE_*` variables that make `reelforge` send through this server as `from`.
    pub fn env(&self, from: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("REELFORGE_SMTP_URL".to_string(), self.url()),
            ("REELFORGE_MAIL_FROM".to_string(), from.to_string()),
        ];
        if let Some(ca) = self.ca_file() {
            env.push((
                "REELFORGE_SMTP_CA_FILE".to_string(),
                ca.to_string_lossy().into_owned(),
            ));
        }
        env
    }

    /// Every message received so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let folder = self.dir.path().join("messages");
        let mut views: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        views.sort();
        views.iter().map(|p| read_view(&folder, p)).collect()
    }

    /// The messages once there are at least `n` (polling, without blocking the runtime);
    /// panics after `limit`.
    pub async fn wait_for_messages(&self, n: usize, limit: Duration) -> Vec<ReceivedMail> {
        let start = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                start.elapsed() < limit,
                "{} message(s) after {limit:?}, expected {n}: {messages:#?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn read_view(folder: &Path, path: &Path) -> ReceivedMail {
    let text = std::fs::read_to_string(path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let string = |key: &str| v[key].as_str().map(str::to_string);
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let raw = std::fs::read(folder.join(string("eml").unwrap())).unwrap();
    ReceivedMail {
        mail_from: string("mail_from").unwrap_or_default(),
        rcpt_to: strings("rcpt_to"),
        tls: v["tls"].as_bool().unwrap_or(false),
        auth_user: string("auth_user"),
        headers: v["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap_or_default().to_string(),
                            h[1].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        content_type: string("content_type").unwrap_or_default(),
        parts: strings("parts"),
        text: string("text"),
        html: string("html"),
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986), for URL user info.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
