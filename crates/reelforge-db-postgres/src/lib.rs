//! Every SQL statement of Reelforge's PostgreSQL backend, checked at compile time.
//!
//! One function per statement; each takes an executor (the pool, or `&mut *tx` of a
//! transaction the caller holds) and returns plain rows in the database's native types
//! (uuid, timestamptz, jsonb as `serde_json::Value`). Times the database sets come from
//! `reelforge_now()` (the server's clock, truncated to milliseconds). The `reelforge` crate
//! (`src/db/postgres.rs`) composes these into the repository's transactions and maps rows
//! to domain types; this crate knows no domain type and makes no decision of its own.
//!
//! The `query!` macros check each statement against a database built from
//! `migrations/postgres` (`PG_DATABASE_URL`, see `sqlx.toml`) when one is given, and
//! otherwise against the committed cache in `.sqlx/`; `scripts/sqlx-prepare.sh` rewrites it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

/// The schema; applied by `reelforge::db::postgres::PgRepo::connect`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The LISTEN/NOTIFY channel of the queue.
pub const CHANNEL: &str = "reelforge_jobs";

/// The channel the triggers of `migrations/postgres/0012_change_feed.sql` announce changes
/// on, for read caches.
pub const CHANGES_CHANNEL: &str = "reelforge_changes";

/// Names of the unique constraints of `users` (`migrations/postgres/0001_init.sql`; since
/// 0003 the username's is a unique index on `lower(username)`).
pub const USERNAME_UNIQUE: &str = "users_username_unique";
pub const EMAIL_UNIQUE: &str = "users_email_unique";

pub type Result<T> = std::result::Result<T, sqlx::Error>;

mod admin;
mod api_keys;
mod lifecycle;
mod notifications;
pub use admin::*;
pub use api_keys::*;
pub use lifecycle::*;
pub use notifications::*;

/// A row of `users`.
#[derive(Debug)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    /// Password changes so far (login tokens of an older count are void).
    pub password_version: i32,
}

/// A row of `tasks`.
#[derive(Debug)]
pub struct TaskRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub profile: Value,
    pub source: Value,
    pub input: Option<Value>,
    pub input_key: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub outputs: Value,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub commands: Value,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a task waiting to retry is due again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The task's own webhook URL.
    pub webhook_url: Option<String>,
    /// Seconds its files are kept after it finishes (the owner's `expires_in`).
    pub keep_seconds: Option<i64>,
    /// When its files were removed.
    pub files_expired_at: Option<DateTime<Utc>>,
}

/// The job a `claim_job` took.
#[derive(Debug)]
pub struct ClaimedJobRow {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// The job `owner` holds already (its lease still running), with its task's run count: a
/// claim whose reply was lost (each worker loop runs one job at a time, so a live lease under
/// its name is one). An expired lease is claimed anew, with an attempt.
#[derive(Debug)]
pub struct HeldJobRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub attempts: i32,
    pub max_attempts: i32,
    pub runs: i32,
}

pub async fn held_job(db: impl PgExecutor<'_>, owner: &str) -> Result<Option<HeldJobRow>> {
    sqlx::query_as!(
        HeldJobRow,
        "SELECT j.id, t.id AS task_id, j.attempts, j.max_attempts, t.runs
         FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE j.state = 'running' AND j.lease_owner = $1
           AND j.lease_expires_at > reelforge_now()
         LIMIT 1",
        owner,
    )
    .fetch_optional(db)
    .await
}

/// A job `requeue_expired_jobs` put back.
#[derive(Debug)]
pub struct RequeuedJob {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
}

/// One line of `count_by_status`.
#[derive(Debug)]
pub struct StatusCount {
    pub status: String,
    pub n: i64,
}

/// Queue a wake-up for idle workers (`LISTEN` on [`CHANNEL`]); delivered when the
/// surrounding transaction commits.
pub async fn notify_job(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<()> {
    sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, job_id.to_string())
        .execute(db)
        .await?;
    Ok(())
}

// --- users ---------------------------------------------------------------------------------

/// A new user; returns its creation time. A clash is a unique violation naming
/// [`USERNAME_UNIQUE`] or [`EMAIL_UNIQUE`].
pub async fn insert_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    username: &str,
    email: &str,
    email_lower: &str,
    password_hash: &str,
    admin: bool,
) -> Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "INSERT INTO users (id, username, email, email_lower, password_hash, admin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, reelforge_now()) RETURNING created_at",
        id,
        username,
        email,
        email_lower,
        password_hash,
        admin,
    )
    .fetch_one(db)
    .await
}

/// By lower-cased e-mail, or by username in any case.
pub async fn user_by_email_or_username(
    db: impl PgExecutor<'_>,
    email_lower: &str,
    username: &str,
) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, disabled, admin, created_at, password_version \
         FROM users WHERE email_lower = $1 OR lower(username) = lower($2) LIMIT 1",
        email_lower,
        username,
    )
    .fetch_optional(db)
    .await
}

/// By username, in any case.
pub async fn user_by_username(db: impl PgExecutor<'_>, username: &str) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, disabled, admin, created_at, password_version \
         FROM users WHERE lower(username) = lower($1)",
        username,
    )
    .fetch_optional(db)
    .await
}

pub async fn user_by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, disabled, admin, created_at, password_version \
         FROM users WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn list_users(db: impl PgExecutor<'_>) -> Result<Vec<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, disabled, admin, created_at, password_version \
         FROM users ORDER BY id",
    )
    .fetch_all(db)
    .await
}

/// Rows changed (0: no such user); the username in any case.
pub async fn set_user_disabled(
    db: impl PgExecutor<'_>,
    username: &str,
    disabled: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET disabled = $1 WHERE lower(username) = lower($2)",
        disabled,
        username,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- tasks as the API sees them ----------------------------------------------------------------

/// A new task, `queued`; returns its creation time.
#[allow(clippy::too_many_arguments)]
pub async fn insert_task(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    profile: &(impl Serialize + Sync),
    source: &(impl Serialize + Sync),
    input_key: Option<&str>,
    webhook_url: Option<&str>,
    keep_seconds: Option<i64>,
) -> Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "INSERT INTO tasks (id, user_id, status, profile, source, input_key, webhook_url, \
         keep_seconds, created_at) \
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, reelforge_now()) \
         RETURNING created_at",
        id,
        user_id,
        Json(profile) as _,
        Json(source) as _,
        input_key,
        webhook_url,
        keep_seconds,
    )
    .fetch_one(db)
    .await
}

/// The processing job of a new task, due at `run_at`.
pub async fn insert_job(
    db: impl PgExecutor<'_>,
    id: Uuid,
    task_id: Uuid,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO jobs (id, task_id, kind, state, run_at, max_attempts, created_at) \
         VALUES ($1, $2, 'process', 'queued', $3, $4, $3)",
        id,
        task_id,
        run_at,
        max_attempts,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Any user's task (workers).
pub async fn task_by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "SELECT id, user_id, status, profile, source, input, input_key, stage, percent, \
                eta_seconds, outputs, error_code, error_message, attempts, commands, result, \
                created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                keep_seconds, files_expired_at \
         FROM tasks WHERE id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// The task if `user_id` owns it.
pub async fn task_of_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "SELECT id, user_id, status, profile, source, input, input_key, stage, percent, \
                eta_seconds, outputs, error_code, error_message, attempts, commands, result, \
                created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                keep_seconds, files_expired_at \
         FROM tasks WHERE id = $1 AND user_id = $2",
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// One page of a user's tasks by ascending id: `status` filters when given, `after` is the
/// keyset cursor (`Uuid::nil()` when there is none: no UUIDv7 sorts before it).
pub async fn tasks_ascending(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    status: Option<&str>,
    after: Uuid,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "SELECT id, user_id, status, profile, source, input, input_key, stage, percent, \
                eta_seconds, outputs, error_code, error_message, attempts, commands, result, \
                created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                keep_seconds, files_expired_at \
         FROM tasks \
         WHERE user_id = $1 AND ($2::text IS NULL OR status = $2) AND id > $3 \
         ORDER BY id ASC LIMIT $4",
        user_id,
        status,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// One page by descending id; `before` is the cursor (`Uuid::max()` when there is none: no
/// UUIDv7 sorts after it).
pub async fn tasks_descending(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    status: Option<&str>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "SELECT id, user_id, status, profile, source, input, input_key, stage, percent, \
                eta_seconds, outputs, error_code, error_message, attempts, commands, result, \
                created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                keep_seconds, files_expired_at \
         FROM tasks \
         WHERE user_id = $1 AND ($2::text IS NULL OR status = $2) AND id < $3 \
         ORDER BY id DESC LIMIT $4",
        user_id,
        status,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The user's newest task with an output, or an upload, named `name`.
pub async fn task_with_file(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    name: &str,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "SELECT id, user_id, status, profile, source, input, input_key, stage, percent, \
                eta_seconds, outputs, error_code, error_message, attempts, commands, result, \
                created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                keep_seconds, files_expired_at \
         FROM tasks t \
         WHERE user_id = $1 AND ( \
               EXISTS (SELECT 1 FROM jsonb_array_elements(t.outputs) o WHERE o->>'name' = $2) \
               OR t.source->>'filename' = $2) \
         ORDER BY id DESC LIMIT 1",
        user_id,
        name,
    )
    .fetch_optional(db)
    .await
}

/// Queued or running → cancelled, with the error of an attempt that was waiting to be
/// retried cleared. Rows changed.
pub async fn cancel_task(db: impl PgExecutor<'_>, id: Uuid, user_id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'cancelled', stage = NULL, eta_seconds = NULL, \
         error_code = NULL, error_message = NULL, next_attempt_at = NULL, \
         finished_at = reelforge_now() \
         WHERE id = $1 AND user_id = $2 AND status IN ('queued', 'running')",
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// End the task's job for good, marking it cancelled.
pub async fn cancel_job_of_task(db: impl PgExecutor<'_>, task_id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'done', cancel_requested = true, lease_owner = NULL, \
         lease_expires_at = NULL WHERE task_id = $1",
        task_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Failed or cancelled → queued, with the last run's results cleared and no attempt used
/// yet. Rows changed.
pub async fn requeue_task_for_retry(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, percent = NULL, eta_seconds = NULL, \
         error_code = NULL, error_message = NULL, finished_at = NULL, outputs = '[]', \
         result = NULL, attempts = 0, next_attempt_at = NULL \
         WHERE id = $1 AND user_id = $2 AND status IN ('failed', 'cancelled') \
           AND files_expired_at IS NULL",
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task's job back to the queue with fresh attempts, due now; returns the job's id.
pub async fn reset_job_of_task(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    max_attempts: i32,
) -> Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE jobs SET state = 'queued', run_at = reelforge_now(), attempts = 0, \
         max_attempts = $1, cancel_requested = false, lease_owner = NULL, \
         lease_expires_at = NULL, last_error = NULL WHERE task_id = $2 RETURNING id",
        max_attempts,
        task_id,
    )
    .fetch_optional(db)
    .await
}

/// Lock the job of the user's task (`FOR UPDATE`); returns how many rows were locked (0: not
/// the user's task, or it has no job). A transaction that writes a task and its job must take
/// this first, before touching the task: workers lock the job row first and the task second
/// (`claim_job` then `start_task`; `finish_job`, `requeue_job`, `release_job` likewise), so
/// a transaction locking the task first and the job second (a `DELETE FROM tasks` cascading
/// to `jobs`, a cancel) could deadlock with them. Taken in the workers' order, it waits for
/// a worker's transaction to end, or makes a claim pass over the job (`SKIP LOCKED`).
pub async fn lock_job_of_task(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    user_id: Uuid,
) -> Result<u64> {
    let locked = sqlx::query_scalar!(
        "SELECT id FROM jobs \
         WHERE task_id = $1 AND task_id IN (SELECT id FROM tasks WHERE id = $1 AND user_id = $2) \
         FOR UPDATE",
        task_id,
        user_id,
    )
    .fetch_all(db)
    .await?;
    Ok(locked.len() as u64)
}

/// Removes the user's task; returns what was removed.
pub async fn delete_task(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        "DELETE FROM tasks WHERE id = $1 AND user_id = $2 \
         RETURNING id, user_id, status, profile, source, input, input_key, stage, percent, \
                   eta_seconds, outputs, error_code, error_message, attempts, commands, \
                   result, created_at, started_at, finished_at, next_attempt_at, webhook_url, \
                   keep_seconds, files_expired_at",
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_job_of_task(db: impl PgExecutor<'_>, task_id: Uuid) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM jobs WHERE task_id = $1", task_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Task counts of the statuses that have tasks.
pub async fn count_by_status(db: impl PgExecutor<'_>) -> Result<Vec<StatusCount>> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT status, COUNT(*) AS "n!" FROM tasks GROUP BY status"#,
    )
    .fetch_all(db)
    .await
}

/// `run_at` of the queued job due longest at `now`, if any.
pub async fn oldest_due_job(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT MIN(run_at) AS oldest FROM jobs WHERE state = 'queued' AND run_at <= $1",
        now
    )
    .fetch_one(db)
    .await
}

pub async fn ping(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query!("SELECT 1 AS one").fetch_one(db).await?;
    Ok(())
}

// --- the queue as workers see it ---------------------------------------------------------------

/// Lease the next due job (queued and due, or running with an expired lease) to `owner`
/// for `lease_ms`. `SKIP LOCKED`: a row another claimer is taking right now is passed over,
/// never waited on and never handed out twice.
pub async fn claim_job(
    db: impl PgExecutor<'_>,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<ClaimedJobRow>> {
    sqlx::query_as!(
        ClaimedJobRow,
        "UPDATE jobs SET state = 'running', lease_owner = $1, \
           lease_expires_at = reelforge_now() + $2::bigint * interval '1 millisecond', \
           attempts = attempts + 1 \
         WHERE id = (SELECT id FROM jobs \
                      WHERE (state = 'queued' AND run_at <= reelforge_now()) \
                         OR (state = 'running' AND lease_expires_at < reelforge_now()) \
                      ORDER BY run_at, id \
                      FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING id, task_id, attempts, max_attempts",
        owner,
        lease_ms,
    )
    .fetch_optional(db)
    .await
}

/// The claimed job's task → running, showing `attempts` used, with the error and due time
/// of a waiting retry cleared; returns its run count (one more than before).
pub async fn start_task(db: impl PgExecutor<'_>, id: Uuid, attempts: i32) -> Result<i32> {
    sqlx::query_scalar!(
        "UPDATE tasks SET status = 'running', attempts = $1, runs = runs + 1, \
           started_at = COALESCE(started_at, reelforge_now()), stage = NULL, percent = 0, \
           eta_seconds = NULL, error_code = NULL, error_message = NULL, \
           next_attempt_at = NULL \
         WHERE id = $2 RETURNING runs",
        attempts,
        id,
    )
    .fetch_one(db)
    .await
}

/// Extend the lease of a running job held by `owner` to `lease_ms` from now. Rows changed.
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    owner: &str,
    lease_ms: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET lease_expires_at = reelforge_now() + $1::bigint * interval '1 millisecond' \
         WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        lease_ms,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Progress of a running task whose job `owner` holds; `percent` never goes down.
pub async fn set_progress(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    job_id: Uuid,
    owner: &str,
    stage: &str,
    percent: f64,
    eta_seconds: Option<f64>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET stage = $1, percent = GREATEST(COALESCE(percent, 0), $2), \
         eta_seconds = $3 \
         WHERE id = $4 AND status = 'running' AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = $5 AND lease_owner = $6 AND state = 'running')",
        stage,
        percent,
        eta_seconds,
        task_id,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The probed input and its storage key, if `owner` holds the job.
pub async fn set_input(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    job_id: Uuid,
    owner: &str,
    input: &(impl Serialize + Sync),
    input_key: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET input = $1, input_key = $2 \
         WHERE id = $3 AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = $4 AND lease_owner = $5 AND state = 'running')",
        Json(input) as _,
        input_key,
        task_id,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The planned command lines, if `owner` holds the job.
pub async fn set_commands(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    job_id: Uuid,
    owner: &str,
    commands: &[String],
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET commands = $1 \
         WHERE id = $2 AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = $3 AND lease_owner = $4 AND state = 'running')",
        Json(commands) as _,
        task_id,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// End a running job held by `owner`, noting `last_error`. Rows changed.
pub async fn finish_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    owner: &str,
    last_error: Option<&str>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, \
         last_error = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        last_error,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A task's final fields: `outputs` replaces the old ones when given; a `succeeded` task
/// reads 100 %.
pub async fn finish_task(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
    outputs: Option<&(impl Serialize + Sync)>,
    result: Option<&Value>,
    error_code: Option<&str>,
    error_message: Option<&str>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = $1, stage = NULL, eta_seconds = NULL, \
         percent = CASE WHEN $1 = 'succeeded' THEN 100 ELSE percent END, \
         outputs = COALESCE($2, outputs), result = $3, error_code = $4, error_message = $5, \
         finished_at = reelforge_now() \
         WHERE id = $6",
        status,
        outputs.map(Json) as _,
        result,
        error_code,
        error_message,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A running job held by `owner` back to the queue, due `delay_ms` from now; `last_error`
/// replaces the job's note when given. Rows changed.
pub async fn requeue_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    owner: &str,
    delay_ms: i64,
    last_error: Option<&str>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', \
         run_at = reelforge_now() + $1::bigint * interval '1 millisecond', lease_owner = NULL, \
         lease_expires_at = NULL, last_error = COALESCE($2, last_error) \
         WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        delay_ms,
        last_error,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A running job held by `owner` back to the queue, due now, giving its attempt back
/// (shutdown: the run was stopped, it did not fail). Rows changed.
pub async fn release_job(db: impl PgExecutor<'_>, job_id: Uuid, owner: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', run_at = reelforge_now(), lease_owner = NULL, \
         lease_expires_at = NULL, attempts = GREATEST(attempts - 1, 0) \
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task of a released job reads `queued` again, showing `attempts` used.
pub async fn release_task(db: impl PgExecutor<'_>, id: Uuid, attempts: i32) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL, attempts = $1 \
         WHERE id = $2",
        attempts,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task of a job that will be retried reads `queued` again, keeping the failed
/// attempt's error and when the next one is due (`delay_ms` from now, as the job's run_at).
pub async fn task_waits_for_retry(
    db: impl PgExecutor<'_>,
    id: Uuid,
    error_code: &str,
    error_message: &str,
    delay_ms: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL, \
         error_code = $1, error_message = $2, \
         next_attempt_at = reelforge_now() + $3::bigint * interval '1 millisecond' \
         WHERE id = $4",
        error_code,
        error_message,
        delay_ms,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Running jobs whose lease has expired back to the queue, due now.
pub async fn requeue_expired_jobs(db: impl PgExecutor<'_>) -> Result<Vec<RequeuedJob>> {
    sqlx::query_as!(
        RequeuedJob,
        "UPDATE jobs SET state = 'queued', run_at = reelforge_now(), lease_owner = NULL, \
         lease_expires_at = NULL \
         WHERE state = 'running' AND lease_expires_at < reelforge_now() \
         RETURNING id, task_id",
    )
    .fetch_all(db)
    .await
}

/// Those of `ids` that are running read `queued` again.
pub async fn requeue_running_tasks(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL \
         WHERE status = 'running' AND id = ANY($1)",
        ids,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Milliseconds until the next queued job is due (negative when overdue), if any is queued.
pub async fn next_due_in_ms(db: impl PgExecutor<'_>) -> Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT (EXTRACT(EPOCH FROM MIN(run_at) - reelforge_now()) * 1000)::bigint \
         FROM jobs WHERE state = 'queued'"
    )
    .fetch_one(db)
    .await
}

// --- resumable uploads -----------------------------------------------------------------------

/// A row of `uploads`. Its times come from the API process (`now` arguments), like the
/// expiry the client is told.
#[derive(Debug)]
pub struct UploadRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub length: i64,
    pub offset_bytes: i64,
    pub metadata: Value,
    pub storage_key: String,
    pub part_size: i64,
    pub multipart_id: Option<String>,
    pub parts: Value,
    pub staged_bytes: i64,
    pub task_id: Option<Uuid>,
    pub lock_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A new upload with nothing stored yet.
#[allow(clippy::too_many_arguments)]
pub async fn insert_upload(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    length: i64,
    metadata: &(impl Serialize + Sync),
    storage_key: &str,
    part_size: i64,
    multipart_id: Option<&str>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO uploads (id, user_id, length, metadata, storage_key, part_size, \
                              multipart_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        user_id,
        length,
        Json(metadata) as _,
        storage_key,
        part_size,
        multipart_id,
        created_at,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The upload if `user_id` made it.
pub async fn upload_of_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        "SELECT id, user_id, length, offset_bytes, metadata, storage_key, part_size, \
                multipart_id, parts, staged_bytes, task_id, lock_until, created_at, expires_at, \
                completed_at \
         FROM uploads WHERE id = $1 AND user_id = $2",
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// Take the upload for `owner` until `lock_until` when no one holds it (or the holder's
/// lock ran out before `now`); returns the row as locked, `None` when another holds it or
/// it does not exist.
pub async fn lock_upload(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
    lock_until: DateTime<Utc>,
) -> Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        "UPDATE uploads SET lock_owner = $1, lock_until = $2 \
         WHERE id = $3 AND (lock_owner IS NULL OR lock_until < $4) \
         RETURNING id, user_id, length, offset_bytes, metadata, storage_key, part_size, \
                   multipart_id, parts, staged_bytes, task_id, lock_until, created_at, expires_at, \
                   completed_at",
        owner,
        lock_until,
        id,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Extend `owner`'s lock; 0 rows: the lock was lost.
pub async fn renew_upload_lock(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    lock_until: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET lock_until = $1 WHERE id = $2 AND lock_owner = $3",
        lock_until,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Record what a PATCH stored, if `owner` still holds the upload.
#[allow(clippy::too_many_arguments)]
pub async fn save_upload(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    offset_bytes: i64,
    multipart_id: Option<&str>,
    parts: &(impl Serialize + Sync),
    staged_bytes: i64,
    expires_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET offset_bytes = $1, multipart_id = $2, parts = $3, \
                            staged_bytes = $4, expires_at = $5, completed_at = $6 \
         WHERE id = $7 AND lock_owner = $8",
        offset_bytes,
        multipart_id,
        Json(parts) as _,
        staged_bytes,
        expires_at,
        completed_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

pub async fn unlock_upload(db: impl PgExecutor<'_>, id: Uuid, owner: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET lock_owner = NULL, lock_until = NULL \
         WHERE id = $1 AND lock_owner = $2",
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Remove the upload `owner` holds.
pub async fn delete_locked_upload(db: impl PgExecutor<'_>, id: Uuid, owner: &str) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM uploads WHERE id = $1 AND lock_owner = $2",
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Mark a finished upload of `user_id` as made into the task of the same id; 0 rows when
/// it is not finished, already used, or not the user's.
pub async fn use_upload_for_task(db: impl PgExecutor<'_>, id: Uuid, user_id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET task_id = id \
         WHERE id = $1 AND user_id = $2 AND completed_at IS NOT NULL AND task_id IS NULL",
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Uploads whose time ran out before `now` and that no one holds, oldest first.
pub async fn expired_uploads(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        "SELECT id, user_id, length, offset_bytes, metadata, storage_key, part_size, \
                multipart_id, parts, staged_bytes, task_id, lock_until, created_at, expires_at, \
                completed_at \
         FROM uploads WHERE expires_at < $1 AND (lock_owner IS NULL OR lock_until < $1) \
         ORDER BY expires_at LIMIT $2",
        now,
        limit,
    )
    .fetch_all(db)
    .await
}

// --- browser sessions ------------------------------------------------------------------------

/// A row of `sessions` (without its token hash: the caller already holds the token).
#[derive(Debug)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A new session, seen now and ending `lifetime_ms` from now at the latest.
pub async fn insert_session(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    token_hash: &str,
    csrf_token: &str,
    lifetime_ms: i64,
) -> Result<SessionRow> {
    sqlx::query_as!(
        SessionRow,
        "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, last_seen_at, \
         expires_at) VALUES ($1, $2, $3, $4, reelforge_now(), reelforge_now(), \
         reelforge_now() + $5::bigint * interval '1 millisecond') \
         RETURNING id, user_id, csrf_token, created_at, last_seen_at, expires_at",
        id,
        user_id,
        token_hash,
        csrf_token,
        lifetime_ms,
    )
    .fetch_one(db)
    .await
}

/// The session of `token_hash` if it is alive (before its absolute expiry, seen within the
/// last `idle_ms`) and its user is not disabled.
pub async fn live_session(
    db: impl PgExecutor<'_>,
    token_hash: &str,
    idle_ms: i64,
) -> Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "SELECT s.id, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > reelforge_now() \
           AND s.last_seen_at > reelforge_now() - $2::bigint * interval '1 millisecond' \
           AND NOT u.disabled",
        token_hash,
        idle_ms,
    )
    .fetch_optional(db)
    .await
}

/// Mark the session seen now, when it was last marked more than `stale_ms` ago (so a page's
/// burst of requests writes once). The new time, if it was written.
pub async fn touch_session(
    db: impl PgExecutor<'_>,
    id: Uuid,
    stale_ms: i64,
) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET last_seen_at = reelforge_now() WHERE id = $1 \
         AND last_seen_at < reelforge_now() - $2::bigint * interval '1 millisecond' \
         RETURNING last_seen_at",
        id,
        stale_ms,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_session(db: impl PgExecutor<'_>, token_hash: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM sessions WHERE token_hash = $1", token_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

pub async fn delete_sessions_of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM sessions WHERE user_id = $1", user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Sessions past their absolute expiry, or idle for `idle_ms`. Rows deleted.
pub async fn delete_expired_sessions(db: impl PgExecutor<'_>, idle_ms: i64) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM sessions WHERE expires_at <= reelforge_now() \
         OR last_seen_at <= reelforge_now() - $1::bigint * interval '1 millisecond'",
        idle_ms,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Rows changed (0: no such user).
pub async fn set_password_hash(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    password_hash: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET password_hash = $1, password_version = password_version + 1 \
         WHERE id = $2",
        password_hash,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- share links -----------------------------------------------------------------------------

/// A row of `shares` as its owner lists it.
#[derive(Debug)]
pub struct ShareRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a live share link opens.
#[derive(Debug)]
pub struct SharedTaskRow {
    pub task_id: Uuid,
    pub user_id: Uuid,
}

/// A share of the task `task_id` ending `lifetime_ms` from now, if `user_id` owns the task
/// (`None`: not their task).
pub async fn insert_share(
    db: impl PgExecutor<'_>,
    id: Uuid,
    token_hash: &str,
    lifetime_ms: i64,
    task_id: Uuid,
    user_id: Uuid,
) -> Result<Option<ShareRow>> {
    sqlx::query_as!(
        ShareRow,
        "INSERT INTO shares (id, task_id, user_id, token_hash, created_at, expires_at) \
         SELECT $1, id, user_id, $2, reelforge_now(), \
                reelforge_now() + $3::bigint * interval '1 millisecond' \
         FROM tasks WHERE id = $4 AND user_id = $5 \
         RETURNING id, created_at, expires_at",
        id,
        token_hash,
        lifetime_ms,
        task_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// The live shares of the user's task, oldest first.
pub async fn shares_of_task(
    db: impl PgExecutor<'_>,
    task_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<ShareRow>> {
    sqlx::query_as!(
        ShareRow,
        "SELECT id, created_at, expires_at FROM shares \
         WHERE task_id = $1 AND user_id = $2 AND expires_at > reelforge_now() ORDER BY id",
        task_id,
        user_id,
    )
    .fetch_all(db)
    .await
}

/// Rows deleted (0: no such share of the user's task).
pub async fn delete_share(
    db: impl PgExecutor<'_>,
    id: Uuid,
    task_id: Uuid,
    user_id: Uuid,
) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM shares WHERE id = $1 AND task_id = $2 AND user_id = $3",
        id,
        task_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task a live share link opens, if its owner is not disabled.
pub async fn live_share(
    db: impl PgExecutor<'_>,
    token_hash: &str,
) -> Result<Option<SharedTaskRow>> {
    sqlx::query_as!(
        SharedTaskRow,
        "SELECT s.task_id, s.user_id FROM shares s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > reelforge_now() AND NOT u.disabled",
        token_hash,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_shares_of_task(db: impl PgExecutor<'_>, task_id: Uuid) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM shares WHERE task_id = $1", task_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

pub async fn delete_expired_shares(db: impl PgExecutor<'_>) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM shares WHERE expires_at <= reelforge_now()")
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}
