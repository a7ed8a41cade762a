//! Wiring: build the shared state, bind the listener, start workers, and stop gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::{LoginLimiter, PasswordHashing, SignupLimiter, Tokens};
use crate::config::Settings;
use crate::db::{Db, OutboxOptions};
use crate::fetch::{FetchPolicy, Fetcher};
use crate::http::AppState;
use crate::http::serve::ConnectionTimeouts;
use crate::jobs::JobEnv;
use crate::notify::links::{LinkKey, Links};
use crate::notify::{Notifier, deliverer_loop};
use crate::queue::{WorkerContext, heartbeat_loop, worker_loop};
use crate::signals::Signals;
use crate::storage::Storage;

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API + workers; recovers jobs left running by a previous process at start.
    Serve,
    Api,
    Worker,
}

pub struct Application {
    /// `None` for a worker with no `REELFORGE_WORKER_LISTEN`.
    listener: Option<TcpListener>,
    role: Role,
    state: AppState,
    workers: Vec<tokio::task::JoinHandle<()>>,
    /// Says this process's workers are alive until they have all stopped.
    heartbeat: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    stop_claiming: CancellationToken,
    shutdown_jobs: CancellationToken,
    grace: Duration,
    timeouts: ConnectionTimeouts,
    worker_ctx: Arc<WorkerContext>,
    notifier: Arc<Notifier>,
}

/// Open the database and storage named by the settings.
pub async fn open_backends(settings: &Settings) -> anyhow::Result<(Db, Storage)> {
    let db = crate::db::connect_with(&settings.database_url, outbox_options(settings)).await?;
    let storage = Storage::from_url(&settings.storage_url, &settings.storage_options)
        .map_err(|e| anyhow::anyhow!("REELFORGE_STORAGE_URL: {e}"))?;
    Ok((db, storage))
}

impl Application {
    /// Build everything and bind the listener (port 0 picks a free port).
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Application> {
        let (db, storage) = open_backends(&settings).await?;
        let fetch_policy = FetchPolicy {
            allow: settings.fetch_allow.clone(),
            max_bytes: settings.max_upload,
            ..FetchPolicy::default()
        };
        let signals = Signals::default();
        let mut state = app_state(&settings, &db, &storage, &fetch_policy, &signals).await?;
        if role != Role::Api && settings.workers > 0 {
            state.scratch_dir = Some(settings.scratch_dir.clone());
        }
        let notifier = Arc::new(Notifier {
            db: db.clone(),
            fetcher: Arc::new(Fetcher::new(fetch_policy.clone())?),
            mailer: settings.mailer()?.map(Arc::new),
            lease: settings.lease,
            signals: signals.clone(),
            link_key: state.link_key.clone(),
            links: state.links.clone(),
        });
        let worker_ctx = Arc::new(WorkerContext {
            db: db.clone(),
            storage,
            env: JobEnv {
                fetcher: Fetcher::new(fetch_policy)?,
                scratch_dir: settings.scratch_dir.clone(),
                ffmpeg: settings.ffmpeg.clone(),
                ffprobe: settings.ffprobe.clone(),
                limits: settings.probe_limits.clone(),
                extract_limits: settings.extract_limits.clone(),
                stall_timeout: settings.stall_timeout,
            },
            lease: settings.lease,
            retry_base: settings.retry_base,
            signals,
            scratch: crate::admission::ScratchGate::new(settings.scratch_dir.clone()),
            max_fetch: settings.max_upload,
        });
        if role == Role::Serve {
            recover_after_previous_process(&db, &settings).await?;
        }
        if settings.smtp_url.is_some() && settings.public_url.is_none() {
            tracing::warn!(
                base = %notifier.links.base(),
                "REELFORGE_PUBLIC_URL is not set: links in e-mails point to the listen address"
            );
        }
        let listener = match listen_address(&settings, role) {
            Some(addr) => Some(bind(addr, role).await?),
            None => None,
        };
        let mut app = Application {
            listener,
            role,
            state,
            workers: vec![],
            heartbeat: None,
            stop_claiming: CancellationToken::new(),
            shutdown_jobs: CancellationToken::new(),
            grace: settings.shutdown_grace,
            timeouts: ConnectionTimeouts {
                header: settings.header_timeout,
                idle: settings.idle_timeout,
            },
            worker_ctx,
            notifier,
        };
        if role != Role::Api {
            app.start_workers(settings.workers);
            app.start_deliverers(settings.deliverers);
        }
        Ok(app)
    }

    /// Deliverers of notifications; they stop claiming with the workers, and finish the
    /// attempt they are making.
    fn start_deliverers(&mut self, n: usize) {
        for i in 0..n {
            let owner = format!("{}:notify:{i}", worker_owner_prefix());
            self.workers.push(tokio::spawn(deliverer_loop(
                self.notifier.clone(),
                owner,
                self.stop_claiming.clone(),
            )));
        }
    }

    fn start_workers(&mut self, n: usize) {
        if n > 0 {
            metrics::gauge!(crate::telemetry::WORKER_SLOTS).set(n as f64);
            // Shown (as 0) before the first job: a busy ratio needs both.
            metrics::gauge!(crate::telemetry::JOBS_RUNNING).increment(0.0);
        }
        if n == 0 {
            return;
        }
        let id = worker_owner_prefix();
        let beat = crate::db::WorkerBeat {
            id: id.clone(),
            host: host_name(),
            pid: std::process::id(),
            slots: u32::try_from(n).unwrap_or(u32::MAX),
        };
        let stop = CancellationToken::new();
        let db = self.state.db.clone();
        self.heartbeat = Some((stop.clone(), tokio::spawn(heartbeat_loop(db, beat, stop))));
        for i in 0..n {
            let owner = format!("{id}:{i}");
            self.workers.push(tokio::spawn(worker_loop(
                self.worker_ctx.clone(),
                owner,
                self.stop_claiming.clone(),
                self.shutdown_jobs.clone(),
            )));
        }
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound address; `None` for a worker that does not listen.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref()?.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn worker_context(&self) -> Arc<WorkerContext> {
        self.worker_ctx.clone()
    }

    pub fn notifier(&self) -> Arc<Notifier> {
        self.notifier.clone()
    }

    /// Serve until `stop` fires, then: stop accepting and claiming, let running jobs finish
    /// for the grace period, then stop them and release their leases.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop_claiming = self.stop_claiming.clone();
        let shutdown_jobs = self.shutdown_jobs.clone();
        let stopping = CancellationToken::new();
        let app = match self.role {
            Role::Worker => crate::http::service_router(self.state.clone()),
            Role::Serve | Role::Api => crate::http::router(self.state.clone()),
        };
        let timeouts = self.timeouts;
        let server = self.listener.map(|listener| {
            let stopping = stopping.clone();
            tokio::spawn(crate::http::serve::serve(listener, app, timeouts, stopping))
        });
        if self.role != Role::Worker {
            tokio::spawn(crate::db::cache::follow_changes(
                self.state.db.clone(),
                self.state.signals.reads().clone(),
                stopping.clone(),
            ));
            tokio::spawn(sweep_uploads(
                self.state.db.clone(),
                self.state.storage.clone(),
                stopping.clone(),
            ));
            tokio::spawn(crate::retention::retention_loop(
                self.state.db.clone(),
                self.state.storage.clone(),
                self.state.signals.clone(),
                self.state.retention,
                stopping.clone(),
            ));
        }
        stop.await;
        tracing::info!("shutting down: no new requests or jobs");
        stopping.cancel();
        stop_claiming.cancel();
        let workers = futures::future::join_all(self.workers);
        tokio::pin!(workers);
        tokio::select! {
            _ = &mut workers => {}
            _ = tokio::time::sleep(self.grace) => {
                tracing::warn!("grace period over: stopping running jobs and releasing their leases");
                shutdown_jobs.cancel();
                workers.await;
            }
        }
        if let Some((stop, beating)) = self.heartbeat {
            stop.cancel();
            let _ = beating.await;
        }
        // Open streams (SSE) end with the process; don't wait on them forever.
        if let Some(server) = server {
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(joined) => joined?,
                Err(_) => tracing::warn!("some connections were still open at exit"),
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Unique per process start: host, pid and a fresh id (a lease owner adds its loop's number).
fn worker_owner_prefix() -> String {
    format!("{}:{}:{}", host_name(), std::process::id(), Uuid::now_v7())
}

/// `HOSTNAME` (a container's name), else the kernel's host name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// Where e-mailed links point: `REELFORGE_PUBLIC_URL`, else the address this process
/// listens on (a wildcard address read as `localhost`).
pub fn public_links(settings: &Settings) -> anyhow::Result<Links> {
    let base = match &settings.public_url {
        Some(url) => url.clone(),
        None => {
            let host = match settings.listen.ip() {
                ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_string(),
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            url::Url::parse(&format!("http://{host}:{}/", settings.listen.port()))?
        }
    };
    Ok(Links::new(base))
}

/// What task transitions write to the outbox with these settings.
pub fn outbox_options(settings: &Settings) -> OutboxOptions {
    OutboxOptions {
        email: settings.smtp_url.is_some(),
    }
}

/// How often an API process removes expired uploads (any process may: each upload is
/// removed under its lock).
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

async fn sweep_uploads(db: Db, storage: Storage, stopping: CancellationToken) {
    loop {
        match crate::http::tus::sweep_expired(&db, &storage, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired uploads removed"),
            Err(e) => tracing::warn!(error = ?e, "could not sweep expired uploads"),
        }
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(UPLOAD_SWEEP_EVERY) => {}
        }
    }
}

async fn app_state(
    settings: &Settings,
    db: &Db,
    storage: &Storage,
    fetch_policy: &FetchPolicy,
    signals: &Signals,
) -> anyhow::Result<AppState> {
    let secret = settings
        .jwt_secret
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("JWT secret missing: call Settings::prepare first"))?;
    let dummy_hash = tokio::task::spawn_blocking(crate::auth::dummy_hash).await?;
    Ok(AppState {
        db: db.clone(),
        storage: storage.clone(),
        tokens: Tokens::new(secret.expose(), settings.token_ttl),
        playback: crate::playback::PlaybackKey::derive(secret.expose()),
        login_limiter: Arc::new(LoginLimiter::default()),
        signup_limiter: Arc::new(SignupLimiter::new(settings.signup_limit)),
        signup: settings.signup,
        retention: settings.retention,
        user_quota: settings.user_quota,
        hashing: PasswordHashing::new(settings.hash_concurrency),
        trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        dummy_hash: Arc::new(dummy_hash),
        fetch_policy: Arc::new(fetch_policy.clone()),
        max_upload: settings.max_upload,
        max_attempts: settings.max_attempts,
        access_log: settings.access_log,
        signals: signals.clone(),
        metrics: crate::telemetry::metrics_handle(),
        email_available: outbox_options(settings).email,
        link_key: LinkKey::derive(secret.expose()),
        links: public_links(settings)?,
        scratch_dir: None,
    })
}

/// `serve` is the only process of its installation on SQLite: jobs left running and
/// scratch left behind belong to a previous process that died.
async fn recover_after_previous_process(db: &Db, settings: &Settings) -> anyhow::Result<()> {
    let recovered = db.recover_running().await?;
    if recovered > 0 {
        tracing::warn!(
            jobs = recovered,
            "re-queued jobs left running by a previous process"
        );
    }
    let swept = crate::jobs::sweep_scratch(&settings.scratch_dir)?;
    if swept > 0 {
        tracing::info!(
            folders = swept,
            "removed scratch left by a previous process"
        );
    }
    Ok(())
}

/// What this role binds: the API address, or for a worker its optional health listener
/// (workers are many per host, so they do not take the API's address by default).
fn listen_address(settings: &Settings, role: Role) -> Option<SocketAddr> {
    match role {
        Role::Serve | Role::Api => Some(settings.listen),
        Role::Worker => settings.worker_listen,
    }
}

async fn bind(addr: SocketAddr, role: Role) -> anyhow::Result<TcpListener> {
    let setting = match role {
        Role::Worker => "REELFORGE_WORKER_LISTEN",
        Role::Serve | Role::Api => "REELFORGE_LISTEN",
    };
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{setting}: cannot listen on {addr}: {e}"))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
