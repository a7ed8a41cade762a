//! `spawn_app()`: a real server on a random port with a temporary data dir, and helpers
//! to drive its queue one step at a time.
//!
//! The database is SQLite in the data dir, or a fresh PostgreSQL database (see [`crate::pg`])
//! when `Options::postgres` is set or `REELFORGE_TEST_APP_DB=postgres` is in the
//! environment (`scripts/test.sh` runs the API suite a second time that way).

use std::path::PathBuf;
use std::sync::Arc;

use reelforge::config::{Settings, SettingsArgs};
use reelforge::notify::{Notifier, Step};
use reelforge::queue::{Outcome, WorkerContext, run_one};
use reelforge::startup::{Application, Role};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::pg::{PG_URL_VAR, PgDatabase};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub worker: Arc<WorkerContext>,
    /// The app's notification deliverers' context (step them with `deliver_one`).
    pub notifier: Arc<Notifier>,
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The PostgreSQL database, dropped after the app (fields drop in order).
    _pg: Option<PgDatabase>,
}

/// Which database `spawn_app` uses when the test does not say.
pub const APP_DB_VAR: &str = "REELFORGE_TEST_APP_DB";

fn postgres_by_default() -> bool {
    match std::env::var(APP_DB_VAR).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{APP_DB_VAR}={other:?}: expected sqlite or postgres"),
    }
}

#[derive(Default)]
pub struct Options {
    pub max_upload: Option<&'static str>,
    pub token_ttl: Option<&'static str>,
    pub fetch_allow: Option<String>,
    pub trusted_proxies: Option<&'static str>,
    pub workers: usize,
    /// Notification deliverer loops (0: tests step them with `TestApp::deliver_one`).
    pub deliverers: usize,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    pub max_duration: Option<&'static str>,
    pub max_extract: Option<&'static str>,
    pub stall_timeout: Option<&'static str>,
    /// `REELFORGE_HEADER_TIMEOUT`, `REELFORGE_IDLE_TIMEOUT`.
    pub header_timeout: Option<&'static str>,
    pub idle_timeout: Option<&'static str>,
    pub retry_base: Option<std::time::Duration>,
    /// Run on a fresh PostgreSQL database (needs `REELFORGE_TEST_PG_URL`).
    pub postgres: bool,
    /// Run on this database, made by someone else (a second API process on the same one).
    pub database_url: Option<String>,
    /// `None` = `Role::Serve`.
    pub role: Option<Role>,
    /// `REELFORGE_STORAGE_URL` (default: `file://` in the data dir).
    pub storage_url: Option<String>,
    /// `REELFORGE_S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
    /// `REELFORGE_S3_PUBLIC_ENDPOINT`.
    pub s3_public_endpoint: Option<String>,
    /// Extra `object_store` keys (credentials of a test S3 server).
    pub storage_extra: Vec<(String, String)>,
    /// E-mail through this test SMTP server, sent as `reelforge@example.com`.
    pub smtp: Option<SmtpSettings>,
    /// `REELFORGE_SIGNUP` (default `open`).
    pub signup: Option<&'static str>,
    /// `REELFORGE_USER_QUOTA` (default `off`).
    pub user_quota: Option<&'static str>,
}

/// `REELFORGE_SMTP_URL`, `REELFORGE_SMTP_CA_FILE` and `REELFORGE_PUBLIC_URL` of a test app.
pub struct SmtpSettings {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub public_url: String,
}

impl SmtpSettings {
    /// The settings that send through `server`, with links on `public_url`.
    pub fn of(server: &crate::smtp::SmtpServer, public_url: &str) -> Self {
        SmtpSettings {
            url: server.url(),
            ca_file: server.ca_file(),
            public_url: public_url.to_string(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(o: Options) -> TestApp {
    reelforge::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pg = if o.database_url.is_none() && (o.postgres || postgres_by_default()) {
        Some(
            PgDatabase::create()
                .await
                .unwrap_or_else(|| panic!("this test asks for PostgreSQL: set {PG_URL_VAR}")),
        )
    } else {
        None
    };
    let args = SettingsArgs {
        listen: Some("127.0.0.1:0".into()),
        // A `worker` app listens (for probes and metrics) only when told where.
        worker_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_path_buf()),
        database_url: o
            .database_url
            .or_else(|| pg.as_ref().map(|p| p.url.clone())),
        workers: Some(o.workers),
        max_upload: o.max_upload.map(str::to_string),
        token_ttl: o.token_ttl.map(str::to_string),
        fetch_allow: o.fetch_allow,
        trusted_proxies: o.trusted_proxies.map(str::to_string),
        ffmpeg: o.ffmpeg,
        ffprobe: o.ffprobe,
        max_duration: o.max_duration.map(str::to_string),
        max_extract: o.max_extract.map(str::to_string),
        stall_timeout: o.stall_timeout.map(str::to_string),
        header_timeout: o.header_timeout.map(str::to_string),
        idle_timeout: o.idle_timeout.map(str::to_string),
        storage_url: o.storage_url,
        s3_endpoint: o.s3_endpoint,
        s3_public_endpoint: o.s3_public_endpoint,
        smtp_url: o.smtp.as_ref().map(|s| s.url.clone()),
        mail_from: o
            .smtp
            .as_ref()
            .map(|_| "Reelforge <reelforge@example.com>".into()),
        smtp_ca_file: o.smtp.as_ref().and_then(|s| s.ca_file.clone()),
        public_url: o.smtp.as_ref().map(|s| s.public_url.clone()),
        signup: o.signup.map(str::to_string),
        user_quota: o.user_quota.map(str::to_string),
        ..Default::default()
    };
    let mut settings = Settings::resolve(args, SettingsArgs::default()).unwrap();
    if let Some(b) = o.retry_base {
        settings.retry_base = b;
    }
    settings.deliverers = o.deliverers;
    settings.storage_options.extra = o.storage_extra;
    settings.prepare(false).unwrap();
    let app = Application::build(settings, o.role.unwrap_or(Role::Serve))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let worker = app.worker_context();
    let notifier = app.notifier();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        worker,
        notifier,
        data_dir: dir,
        stop: Some(tx),
        _pg: pg,
    }
}

/// The `id` of a created task from its response body.
pub async fn id_of(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST a JSON body as the user of `token`.
    pub async fn post_json_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.post(path, token).json(body).send().await.unwrap()
    }

    pub async fn signup(&self, username: &str) -> Value {
        let r = self
            .post_json(
                "/api/auth/signup",
                &json!({"username": username, "email": format!("{username}@example.com"),
                        "password1": "Secret123", "password2": "Secret123"}),
            )
            .await;
        assert_eq!(r.status(), 201, "signup {username}");
        r.json().await.unwrap()
    }

    /// Sign up and log in; returns the bearer token.
    pub async fn user(&self, username: &str) -> String {
        self.signup(username).await;
        let r = self
            .post_json(
                "/api/auth/login",
                &json!({"username": username, "password": "Secret123"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// An admin: signed up (with signups open), promoted, logged in; its bearer token.
    pub async fn admin(&self, username: &str) -> String {
        let token = self.user(username).await;
        assert!(self.worker.db.set_user_admin(username, true).await.unwrap());
        token
    }

    /// Log `username` (made by [`TestApp::user`]) in as a browser: the session cookie's
    /// `name=value`.
    pub async fn session_cookie(&self, username: &str) -> String {
        let r = self
            .post_json(
                "/api/session",
                &json!({"username": username, "password": "Secret123"}),
            )
            .await;
        assert_eq!(r.status(), 200, "session of {username}");
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    /// The task object, as its owner sees it.
    pub async fn task(&self, token: &str, id: &str) -> Value {
        self.get(&format!("/api/tasks/{id}"), token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    /// GET `path` as the user of `token`: its status and JSON body (`null` when none).
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.get(path, token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/tasks/{id}/{action}` (`cancel`, `retry`) as `token`.
    pub async fn task_action(&self, token: &str, id: &str, action: &str) -> reqwest::Response {
        let path = format!("/api/tasks/{id}/{action}");
        self.post(&path, token).send().await.unwrap()
    }

    /// `DELETE /api/tasks/{id}` as `token`.
    pub async fn delete_task(&self, token: &str, id: &str) -> reqwest::Response {
        let path = format!("/api/tasks/{id}");
        self.delete(&path, token).send().await.unwrap()
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }

    /// Upload bytes as multipart part `file`.
    pub async fn upload(
        &self,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        for (k, v) in extra {
            form = form.text(k.to_string(), v.to_string());
        }
        self.post("/api/tasks", token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Upload `chunks` × `chunk_size` bytes as `big.mp4` with no Content-Length (chunked), so
    /// the server only learns the size while streaming.
    pub async fn upload_chunked(
        &self,
        token: &str,
        chunks: usize,
        chunk_size: usize,
    ) -> reqwest::Response {
        let body = reqwest::Body::wrap_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![7u8; chunk_size])),
        ));
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::stream(body).file_name("big.mp4"),
        );
        self.post("/api/tasks", token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Run queued jobs in this test's task until none is due.
    pub async fn drain(&self) -> Vec<Outcome> {
        let mut outcomes = vec![];
        loop {
            let o = run_one(&self.worker, "test-worker", &CancellationToken::new())
                .await
                .unwrap();
            if o == Outcome::Idle {
                return outcomes;
            }
            outcomes.push(o);
        }
    }

    /// One notification delivery step at `now` (the test's clock).
    pub async fn deliver_one(&self, now: chrono::DateTime<chrono::Utc>) -> Step {
        reelforge::notify::run_one(&self.notifier, "test-deliverer", now)
            .await
            .unwrap()
    }

    /// Deliver every message due at `now`; the steps taken.
    pub async fn deliver_due(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Step> {
        let mut steps = vec![];
        loop {
            match self.deliver_one(now).await {
                Step::Idle => return steps,
                s => steps.push(s),
            }
        }
    }

    /// Every file under the data dir's objects and scratch folders.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        for sub in ["objects", "scratch"] {
            walk(&self.data_dir.path().join(sub), &mut out);
        }
        out
    }
}

pub fn walk(p: &std::path::Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

/// Polls `check` until it holds; fails if that takes a second or more (what the read cache
/// promises for changes it is not told of: another process's, the CLI's).
pub async fn within_a_second<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{what}: still not seen after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
