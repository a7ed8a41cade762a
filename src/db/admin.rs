//! What the admin view reads and changes across every user: roles, invite codes, the worker
//! processes that are alive, the queue and recent failures.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;

/// An invite code as admins list it (never the code itself).
// The admin API answers with it as it is, under the schema name clients already know.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = InviteView)]
pub struct Invite {
    pub id: Uuid,
    pub note: String,
    /// The admin who made it (`null`: made with `reelforge user invite`, or that admin is gone).
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The account that signed up with it.
    pub used_by: Option<String>,
    pub used_at: Option<DateTime<Utc>>,
}

pub struct NewInvite {
    /// SHA-256 (hex) of the code.
    pub code_hash: String,
    pub note: String,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewInvite {
    /// Days an invite is valid for when none is given, and at most.
    pub const DEFAULT_DAYS: u32 = 7;
    pub const MAX_DAYS: u32 = 365;

    /// A fresh code (shown once) and what is stored of it; `Err` says what is wrong with the
    /// note or the lifetime, in words for the admin.
    pub fn generate(
        note: &str,
        created_by: Option<Uuid>,
        expires_in_days: Option<u32>,
    ) -> Result<(String, NewInvite), String> {
        let note = note.trim();
        if note.chars().count() > 200 {
            return Err("note: at most 200 characters".into());
        }
        let days = match expires_in_days.unwrap_or(Self::DEFAULT_DAYS) {
            d @ 1..=Self::MAX_DAYS => d,
            _ => return Err(format!("expires_in_days: between 1 and {}", Self::MAX_DAYS)),
        };
        let code = crate::auth::random_token();
        let invite = NewInvite {
            code_hash: crate::auth::token_hash(&code),
            note: note.to_string(),
            created_by,
            expires_at: Some(Utc::now() + chrono::Duration::days(i64::from(days))),
        };
        Ok((code, invite))
    }
}

/// A worker process says it is alive.
#[derive(Debug, Clone)]
pub struct WorkerBeat {
    /// The prefix of its lease owners: `host:pid:uuid`.
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub slots: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveWorker {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub slots: u32,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// A job being run, with its task's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// The lease owner: a worker's id, `:` and its loop's number.
    pub owner: Option<String>,
    pub task_id: Uuid,
    pub username: String,
    pub profile: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// Seconds of the input, once probed.
    pub duration: Option<f64>,
    pub started_at: Option<DateTime<Utc>>,
}

/// Jobs queued and due, queued waiting for a retry, and running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub due: u64,
    pub waiting: u64,
    pub running: u64,
}

/// Failed tasks of one error code.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureCount {
    pub code: String,
    pub count: u64,
    pub last_at: DateTime<Utc>,
}

#[async_trait]
pub trait AdminRepo: Send + Sync {
    /// `username` in any case; `false`: no such user.
    async fn set_user_admin(&self, username: &str, admin: bool) -> RepoResult<bool>;
    /// `false`: no such user.
    async fn set_user_disabled_by_id(&self, id: Uuid, disabled: bool) -> RepoResult<bool>;
    async fn create_invite(&self, new: NewInvite) -> RepoResult<Invite>;
    /// Every invite, oldest first.
    async fn invites(&self) -> RepoResult<Vec<Invite>>;
    /// Withdraw a code not used yet; `false`: no such unused code.
    async fn delete_invite(&self, id: Uuid) -> RepoResult<bool>;
    /// Mark the worker alive now, and forget workers not seen for `stale`.
    async fn beat_worker(&self, beat: &WorkerBeat, stale: Duration) -> RepoResult<()>;
    /// A worker that stops says so.
    async fn forget_worker(&self, id: &str) -> RepoResult<()>;
    /// Workers seen within the last `within`, oldest start first.
    async fn live_workers(&self, within: Duration) -> RepoResult<Vec<LiveWorker>>;
    /// Every job being run, oldest task start first.
    async fn running_jobs(&self) -> RepoResult<Vec<RunningJob>>;
    async fn queue_counts(&self) -> RepoResult<QueueCounts>;
    /// Failed tasks per error code that finished at or after `since`, most frequent first.
    async fn failures_since(&self, since: DateTime<Utc>) -> RepoResult<Vec<FailureCount>>;
}
