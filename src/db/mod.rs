//! Persistence: the repository traits every backend implements, and the records they return.
//!
//! The queue lives in the same database as the tasks: creating a task writes its job in the
//! same transaction, and every state change of a job is a single conditional statement on
//! the lease owner. No transaction is held while a job runs.
//!
//! Each backend's SQL lives in its own workspace crate (`crates/reelforge-db-sqlite`,
//! `crates/reelforge-db-postgres`), checked at compile time; `sqlite.rs` and `postgres.rs`
//! implement the traits here with it.

mod admin;
mod api_keys;
pub mod cache;
mod lifecycle;
mod notify;
pub mod postgres;
mod retry;
pub mod sqlite;

pub use admin::*;
pub use api_keys::*;
pub use lifecycle::*;
pub use notify::*;
pub use retry::retry_transient;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{OutputFile, Profile, Source, Stage, TaskError, TaskRecord, TaskStatus};
use crate::media::probe::MediaInfo;
pub use crate::storage::resumable::PartsState;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A unique constraint: the field that clashed (`username`, `email`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The invite code of a signup is unknown, used already or expired.
    #[error("the invite code is not valid")]
    InviteNotLive,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type RepoResult<T> = Result<T, RepoError>;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub disabled: bool,
    /// Sees every user's tasks, the workers and the queue; manages users and invites.
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    /// Password changes so far: a login token issued under an older count no longer works.
    pub password_version: u32,
}

#[derive(Debug, Clone)]
pub struct UserWithHash {
    pub user: User,
    pub password_hash: String,
}

pub struct NewUser {
    pub username: crate::domain::Username,
    pub email: crate::domain::EmailAddress,
    pub password_hash: String,
    pub admin: bool,
    /// SHA-256 (hex) of the invite code the signup gave: the account is made only if that
    /// code is live, and the code is spent with it.
    pub invite_hash: Option<String>,
}

pub struct NewTask {
    pub id: Uuid,
    pub user_id: Uuid,
    pub profile: Profile,
    pub source: Source,
    pub input_key: Option<String>,
    /// The task's own webhook URL, already checked against the fetch policy.
    pub webhook_url: Option<String>,
    /// Seconds its files are kept after it finishes (the owner's `expires_in`).
    pub keep_seconds: Option<u64>,
}

impl NewTask {
    /// The task as it reads once written: queued, nothing run yet.
    pub fn queued(self, created_at: DateTime<Utc>) -> TaskRecord {
        TaskRecord {
            id: self.id,
            user_id: self.user_id,
            status: TaskStatus::Queued,
            profile: self.profile,
            source: self.source,
            input: None,
            input_key: self.input_key,
            stage: None,
            percent: None,
            eta_seconds: None,
            outputs: vec![],
            error: None,
            attempts: 0,
            commands: vec![],
            result: None,
            created_at,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            webhook_url: self.webhook_url,
            notifications: vec![],
            keep_seconds: self.keep_seconds,
            files_expired_at: None,
        }
    }
}

/// Seconds as the databases' signed integers (no kept-for value comes near the limit).
pub(crate) fn seconds_i64(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// Milliseconds as the databases' signed integers (saturating, like [`seconds_i64`]).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count or sum of bytes as the databases return it (signed), as the unsigned it is.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Listing parameters; `after` is the keyset cursor (the last id of the previous page).
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: u32,
    pub descending: bool,
    pub status: Option<TaskStatus>,
    pub after: Option<Uuid>,
}

/// A job claimed by a worker, and who holds it. Every write after `claim` goes through a
/// lease and takes effect only while `owner` still holds the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub task_id: Uuid,
    /// The worker holding the job (unique per worker loop and process).
    pub owner: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The task's total run count, used in output keys so a re-run never collides.
    pub run: u32,
}

/// What a worker knows of a job before it claims it.
#[derive(Debug, Clone, PartialEq)]
pub struct NextJob {
    pub task_id: Uuid,
    pub profile: Profile,
    /// The input's bytes: an upload's size, or a fetched file's once probed.
    pub input_bytes: Option<u64>,
}

/// What `retry` found.
#[derive(Debug)]
pub enum RetryOutcome {
    Requeued(Box<TaskRecord>),
    NotRetryable(TaskStatus),
    NotFound,
}

/// Users and their credentials.
#[async_trait]
pub trait UserRepo: Send + Sync {
    async fn create_user(&self, new: NewUser) -> RepoResult<User>;
    /// By username or, when `login` contains `@`, by e-mail; both case-insensitive.
    async fn user_for_login(&self, login: &str) -> RepoResult<Option<UserWithHash>>;
    async fn user_by_id(&self, id: Uuid) -> RepoResult<Option<User>>;
    async fn list_users(&self) -> RepoResult<Vec<User>>;
    /// `username` in any case.
    async fn set_user_disabled(&self, username: &str, disabled: bool) -> RepoResult<bool>;
}

/// Tasks as the API sees them. Every call is scoped to the owner.
#[async_trait]
pub trait TaskRepo: Send + Sync {
    /// Writes the task and its job in one transaction.
    async fn create_task(&self, new: NewTask, max_attempts: u32) -> RepoResult<TaskRecord>;
    async fn get_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>>;
    async fn list_tasks(&self, user: Uuid, q: &ListQuery) -> RepoResult<Vec<TaskRecord>>;
    /// Newest task of `user` whose upload name or an output is `name`.
    async fn task_with_file(&self, user: Uuid, name: &str) -> RepoResult<Option<TaskRecord>>;
    /// Queued or running → cancelled (the job is ended, so a worker holding it stops).
    /// Returns the task and whether this call cancelled it.
    async fn cancel_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<(TaskRecord, bool)>>;
    async fn retry_task(&self, user: Uuid, id: Uuid, max_attempts: u32)
    -> RepoResult<RetryOutcome>;
    /// Removes the task and its job; returns what was removed.
    async fn delete_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>>;
    /// Task counts by status (for metrics).
    async fn count_by_status(&self) -> RepoResult<Vec<(TaskStatus, i64)>>;
    /// When the job that has waited longest became due (queued, due at or before `now`).
    async fn oldest_due_job(&self, now: DateTime<Utc>) -> RepoResult<Option<DateTime<Utc>>>;
    async fn ping(&self) -> RepoResult<()>;
    /// Changes committed by any process, as the database announces them (read caches
    /// follow it). `None`: this backend announces none (SQLite, where the serving process
    /// makes the changes and [`cache::MAX_AGE`] bounds what others do).
    async fn changes(&self) -> RepoResult<Option<tokio::sync::broadcast::Receiver<cache::Change>>> {
        Ok(None)
    }
}

/// The queue as workers see it. Every write after `claim` is conditional on the lease owner
/// and on the job still running (a [`Lease`]); `false` means the lease was lost (or the task cancelled or
/// deleted) and the caller must drop its result.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// The next due job (or one whose lease ran out), leased to `owner`. Idempotent per
    /// owner: while `owner` holds a live lease (a claim whose reply was lost), that job is
    /// returned again, with its lease renewed and no attempt spent.
    async fn claim(&self, owner: &str, lease: Duration) -> RepoResult<Option<Lease>>;
    async fn task_for_job(&self, task_id: Uuid) -> RepoResult<Option<TaskRecord>>;
    /// Extend the lease to `duration` from now.
    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> RepoResult<bool>;
    async fn set_progress(
        &self,
        lease: &Lease,
        stage: Stage,
        percent: f64,
        eta_seconds: Option<f64>,
    ) -> RepoResult<bool>;
    async fn set_input(&self, lease: &Lease, info: &MediaInfo, input_key: &str)
    -> RepoResult<bool>;
    /// Record the planned command lines of this run.
    async fn set_commands(&self, lease: &Lease, commands: &[String]) -> RepoResult<bool>;
    /// End a running job held by `owner` and set the task's final fields (`status`, and
    /// the outputs, result or error that go with it), in one transaction.
    async fn finish(
        &self,
        lease: &Lease,
        status: TaskStatus,
        outputs: Option<&[OutputFile]>,
        result: Option<&serde_json::Value>,
        error: Option<&TaskError>,
    ) -> RepoResult<bool>;
    async fn complete(
        &self,
        lease: &Lease,
        outputs: &[OutputFile],
        result: Option<&serde_json::Value>,
    ) -> RepoResult<bool> {
        self.finish(lease, TaskStatus::Succeeded, Some(outputs), result, None)
            .await
    }
    /// Back to the queue after `delay`: the attempt failed and counts. The task shows
    /// `queued` with the attempt's error and when the next one is due, until it runs again.
    async fn retry_later(
        &self,
        lease: &Lease,
        error: &TaskError,
        delay: Duration,
    ) -> RepoResult<bool>;
    async fn fail(&self, lease: &Lease, error: &TaskError) -> RepoResult<bool> {
        self.finish(lease, TaskStatus::Failed, None, None, Some(error))
            .await
    }
    /// Give the job back (shutdown): claimable again at once, and the attempt does not
    /// count, since the run was stopped rather than failed (rolling restarts would otherwise
    /// use up a long job's attempts).
    async fn release(&self, lease: &Lease) -> RepoResult<bool>;
    /// At start-up of `serve`: jobs left `running` by a dead process go back to the queue.
    /// SQLite (embedded, one process) re-queues every running job; PostgreSQL, where other
    /// live processes may hold leases, re-queues only jobs whose lease has expired.
    async fn recover_running(&self) -> RepoResult<u64>;
    /// Milliseconds until the next queued job becomes due, if any.
    async fn next_due_in(&self) -> RepoResult<Option<Duration>>;
    /// The job a claim now would most likely take (another process may take it first), to
    /// size its scratch space before claiming.
    async fn next_job(&self) -> RepoResult<Option<NextJob>>;
    /// An idle worker waits here for a job to be queued, at most `timeout`; `true` when it
    /// was woken before the timeout (a hint: the caller claims to find out). The default
    /// just sleeps: in embedded mode every enqueue happens in this process, which wakes its
    /// workers itself. PostgreSQL wakes on `NOTIFY` from any process.
    async fn wait_for_job(&self, timeout: Duration) -> bool {
        tokio::time::sleep(timeout).await;
        false
    }
}

/// A resumable upload (tus): its size, what is stored so far, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `Upload-Length`: the size the upload will have.
    pub length: u64,
    /// `Upload-Offset`: the bytes stored so far.
    pub offset: u64,
    /// The sanitised `Upload-Metadata`, key → text.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Where the finished bytes live: the input key of the task made from the upload.
    pub storage_key: String,
    /// The multipart state on object storage (empty on local storage).
    pub parts: PartsState,
    /// The task made from the upload (it has the upload's id).
    pub task_id: Option<Uuid>,
    /// Until when a request holds the upload (its lock), if one does.
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

pub struct NewUpload {
    pub id: Uuid,
    pub user_id: Uuid,
    pub length: u64,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub storage_key: String,
    pub parts: PartsState,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a PATCH leaves behind, written only while its lock holds.
#[derive(Debug, Clone)]
pub struct UploadProgress {
    pub offset: u64,
    pub parts: PartsState,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Resumable uploads. One request at a time holds an upload (`lock_upload`): PATCH,
/// DELETE and the expiry sweep change it only under its lock, so two requests can never
/// write its bytes at once, on any API process.
#[async_trait]
pub trait UploadRepo: Send + Sync {
    async fn create_upload(&self, new: NewUpload) -> RepoResult<UploadRecord>;
    async fn get_upload(&self, user: Uuid, id: Uuid) -> RepoResult<Option<UploadRecord>>;
    /// Hold the upload for `owner` until `until`, unless someone holds it (or it is gone):
    /// `None`. A lock that ran out before `now` is taken over.
    async fn lock_upload(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<Option<UploadRecord>>;
    /// `false`: the lock was lost (the caller must stop writing).
    async fn renew_upload_lock(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool>;
    async fn save_upload(&self, id: Uuid, owner: &str, p: &UploadProgress) -> RepoResult<bool>;
    async fn unlock_upload(&self, id: Uuid, owner: &str) -> RepoResult<()>;
    async fn delete_locked_upload(&self, id: Uuid, owner: &str) -> RepoResult<bool>;
    /// Make the finished upload `new.id` of `new.user_id` into its task (same id) and
    /// queue its job, in one transaction. `None`: the upload is unfinished, already used,
    /// or not the user's; nothing was written.
    async fn create_task_from_upload(
        &self,
        new: NewTask,
        max_attempts: u32,
    ) -> RepoResult<Option<TaskRecord>>;
    /// Uploads past their expiry that no one holds, at most `limit`, oldest first.
    async fn expired_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> RepoResult<Vec<UploadRecord>>;
}

/// A browser session: the row behind a session cookie (which only the browser holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    /// Sent back by the page in `X-CSRF-Token` on every unsafe request.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

/// How long a session lives: `idle` after it was last seen, `absolute` after it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Session {
    /// When the session ends unless it is used again: the idle end, capped by the absolute one.
    pub fn ends_at(&self, idle: Duration) -> DateTime<Utc> {
        let idle_end = chrono::Duration::from_std(idle)
            .ok()
            .and_then(|d| self.last_seen_at.checked_add_signed(d))
            .unwrap_or(self.expires_at);
        idle_end.min(self.expires_at)
    }
}

/// A session's `last_seen_at` is written at most this often: a page loading ten files writes
/// once, and the idle timeout (days) does not need better.
pub const SESSION_TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Browser sessions. Tokens reach the repository only as their SHA-256.
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// A new session of `user`; sessions already expired are deleted on the way (the sweep
    /// runs at each log-in, so the table holds live sessions and those expired since).
    async fn create_session(
        &self,
        user: Uuid,
        token_hash: &str,
        csrf_token: &str,
        timeouts: SessionTimeouts,
    ) -> RepoResult<Session>;
    /// The live session of `token_hash` whose user is not disabled, marked as seen now.
    async fn live_session(&self, token_hash: &str, idle: Duration) -> RepoResult<Option<Session>>;
    /// Log-out; `false` when there was no such session.
    async fn delete_session(&self, token_hash: &str) -> RepoResult<bool>;
    /// A new password hash, and every session of the user ended, in one transaction;
    /// `false` when there is no such user.
    async fn change_password(&self, user: Uuid, password_hash: &str) -> RepoResult<bool>;
    /// Sessions past either timeout; how many were deleted.
    async fn delete_expired_sessions(&self, idle: Duration) -> RepoResult<u64>;
}

/// A share link of a task, as its owner lists it (the token is shown once, at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Share links. Every call but [`ShareRepo::shared_task`] is scoped to the task's owner.
#[async_trait]
pub trait ShareRepo: Send + Sync {
    /// `None` when the task is not the user's. Expired shares are deleted on the way.
    async fn create_share(
        &self,
        user: Uuid,
        task: Uuid,
        token_hash: &str,
        lifetime: Duration,
    ) -> RepoResult<Option<Share>>;
    /// The task's live shares, oldest first.
    async fn list_shares(&self, user: Uuid, task: Uuid) -> RepoResult<Vec<Share>>;
    /// Revoke; `false` when there is no such share of the user's task.
    async fn delete_share(&self, user: Uuid, task: Uuid, share: Uuid) -> RepoResult<bool>;
    /// The task a live share link opens, if its owner is not disabled.
    async fn shared_task(&self, token_hash: &str) -> RepoResult<Option<TaskRecord>>;
}

/// Everything a backend provides.
pub trait Repo:
    UserRepo
    + TaskRepo
    + JobQueue
    + UploadRepo
    + SessionRepo
    + ShareRepo
    + NotificationRepo
    + ApiKeyRepo
    + AdminRepo
    + LifecycleRepo
    + 'static
{
}
impl<T> Repo for T where
    T: UserRepo
        + TaskRepo
        + JobQueue
        + UploadRepo
        + SessionRepo
        + ShareRepo
        + NotificationRepo
        + ApiKeyRepo
        + AdminRepo
        + LifecycleRepo
        + 'static
{
}

pub type Db = std::sync::Arc<dyn Repo>;

/// The job's note of a failed attempt.
fn job_note(error: &TaskError) -> String {
    format!("{}: {}", error.code, error.message)
}

/// The attempts a task shows: those used of `max_attempts`, never more. A job whose
/// holders all died is claimed once more than its maximum, only to be failed
/// (`too_many_attempts`); a released job has given its attempt back.
fn shown_attempts(attempt: u32, max_attempts: u32) -> u32 {
    attempt.min(max_attempts)
}

/// A duration in whole milliseconds (saturating).
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Task counts for every status, from `(status, count)` rows of the statuses that have tasks.
fn counts(rows: impl IntoIterator<Item = (String, i64)>) -> Vec<(TaskStatus, i64)> {
    let mut out: Vec<(TaskStatus, i64)> = TaskStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for (status, n) in rows {
        if let Some(slot) = out.iter_mut().find(|(s, _)| s.as_str() == status) {
            slot.1 = n;
        }
    }
    out
}

/// The database backends, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite:…` or `postgres://…` / `postgresql://…`.
    pub fn of_url(database_url: &str) -> Option<Backend> {
        let scheme = database_url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

/// Open the backend named by the URL and apply its migrations (e-mail off: see
/// [`connect_with`]).
pub async fn connect(database_url: &str) -> anyhow::Result<Db> {
    connect_with(database_url, OutboxOptions::default()).await
}

/// [`connect`], with what the outbox writes when a task's event happens.
pub async fn connect_with(database_url: &str, outbox: OutboxOptions) -> anyhow::Result<Db> {
    match Backend::of_url(database_url) {
        Some(Backend::Sqlite) => Ok(std::sync::Arc::new(
            sqlite::SqliteRepo::connect(database_url)
                .await?
                .with_outbox(outbox),
        )),
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(
            postgres::PgRepo::connect(database_url)
                .await?
                .with_outbox(outbox),
        )),
        None => anyhow::bail!(
            "unsupported database URL scheme (sqlite:// and postgres:// are supported)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn backend_by_scheme() {
        assert_eq!(Backend::of_url("sqlite://data/r.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgres://u:p@db:5432/reelforge"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("PostgreSQL://db/reelforge"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://db/x"), None);
        assert_eq!(Backend::of_url("reelforge.db"), None);
    }
}
