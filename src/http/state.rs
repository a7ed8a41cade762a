//! What every request handler shares. Built once by `startup`; cloning is cheap.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use uuid::Uuid;

use crate::auth::{LoginLimiter, PasswordHashing, SignupLimiter, Tokens};
use crate::db::Db;
use crate::fetch::FetchPolicy;
use crate::net::TrustedProxies;
use crate::notify::links::{LinkKey, Links};
use crate::playback::PlaybackKey;
use crate::signals::Signals;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub tokens: Tokens,
    /// Signs and checks playback URLs (a key derived from the JWT secret).
    pub playback: PlaybackKey,
    pub login_limiter: Arc<LoginLimiter>,
    pub signup_limiter: Arc<SignupLimiter>,
    /// Who may sign up (`REELFORGE_SIGNUP`).
    pub signup: crate::config::SignupMode,
    /// How long finished tasks' files are kept (`REELFORGE_RETENTION`).
    pub retention: Option<std::time::Duration>,
    /// Most bytes a user may store (`REELFORGE_USER_QUOTA`).
    pub user_quota: Option<u64>,
    /// Every argon2 run of a request goes through it (capped in number at once).
    pub hashing: PasswordHashing,
    /// Whose `X-Forwarded-For` names the client (for the rate limiters).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Verified against for unknown users, so they cost as much as a wrong password.
    pub dummy_hash: Arc<String>,
    pub fetch_policy: Arc<FetchPolicy>,
    pub max_upload: u64,
    pub max_attempts: u32,
    /// One INFO line per request (`REELFORGE_ACCESS_LOG`).
    pub access_log: bool,
    /// Wakes this process's workers and event streams, and stops its runs.
    pub signals: Signals,
    pub metrics: PrometheusHandle,
    /// E-mail is configured (finished tasks are e-mailed; password resets work).
    pub email_available: bool,
    /// Signs and checks the tokens of e-mailed links (password reset, unsubscribe).
    pub link_key: LinkKey,
    /// The service's public address (`REELFORGE_PUBLIC_URL`) and its pages.
    pub links: Links,
    /// The scratch dir of a process that runs jobs (its free space is a metric).
    pub scratch_dir: Option<std::path::PathBuf>,
}

impl AppState {
    pub async fn user_active(&self, id: Uuid) -> anyhow::Result<bool> {
        Ok(self.db.user_by_id(id).await?.is_some_and(|u| !u.disabled))
    }
}
