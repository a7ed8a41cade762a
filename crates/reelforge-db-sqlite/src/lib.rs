//! Every SQL statement of Reelforge's SQLite backend, checked at compile time.
//!
//! One function per statement; each takes an executor (the pool, or `&mut *tx` of a
//! transaction the caller holds) and returns plain rows in the database's own types: ids
//! and JSON documents as text, times as integer milliseconds since the Unix epoch. The
//! `reelforge` crate (`src/db/sqlite.rs`) composes these into the repository's
//! transactions and maps rows to domain types; this crate knows no domain type and makes
//! no decision of its own.
//!
//! The `query!` macros check each statement against a database built from
//! `migrations/sqlite` (`SQLITE_DATABASE_URL`, see `sqlx.toml`) when one is given, and
//! otherwise against the committed cache in `.sqlx/`; `scripts/sqlx-prepare.sh` rewrites it.

use sqlx::SqliteExecutor;

/// The schema; applied by `reelforge::db::sqlite::SqliteRepo::connect`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

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
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    pub admin: bool,
    pub created_at: i64,
    /// Password changes so far (login tokens of an older count are void).
    pub password_version: i64,
}

/// A row of `tasks`; `profile`, `source`, `input`, `outputs`, `commands` and `result` are
/// JSON text.
#[derive(Debug)]
pub struct TaskRow {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub profile: String,
    pub source: String,
    pub input: Option<String>,
    pub input_key: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub outputs: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i64,
    pub commands: String,
    pub result: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When a task waiting to retry is due again.
    pub next_attempt_at: Option<i64>,
    /// The task's own webhook URL.
    pub webhook_url: Option<String>,
    /// Seconds its files are kept after it finishes (the owner's `expires_in`).
    pub keep_seconds: Option<i64>,
    /// When its files were removed.
    pub files_expired_at: Option<i64>,
}

/// The job a `claim_job` took.
#[derive(Debug)]
pub struct ClaimedJobRow {
    pub id: String,
    pub task_id: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
}

/// One line of `count_by_status`.
#[derive(Debug)]
pub struct StatusCount {
    pub status: String,
    pub n: i64,
}

// --- users ---------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_user(
    db: impl SqliteExecutor<'_>,
    id: &str,
    username: &str,
    email: &str,
    email_lower: &str,
    password_hash: &str,
    admin: bool,
    created_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO users (id, username, email, email_lower, password_hash, admin, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        id,
        username,
        email,
        email_lower,
        password_hash,
        admin,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// By lower-cased e-mail, or by username in any case.
pub async fn user_by_email_or_username(
    db: impl SqliteExecutor<'_>,
    email_lower: &str,
    username: &str,
) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, password_hash, disabled AS "disabled: bool", admin AS "admin: bool", created_at,
                  password_version
           FROM users WHERE email_lower = ? OR lower(username) = lower(?) LIMIT 1"#,
        email_lower,
        username,
    )
    .fetch_optional(db)
    .await
}

/// By username, in any case.
pub async fn user_by_username(
    db: impl SqliteExecutor<'_>,
    username: &str,
) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, password_hash, disabled AS "disabled: bool", admin AS "admin: bool", created_at,
                  password_version
           FROM users WHERE lower(username) = lower(?)"#,
        username,
    )
    .fetch_optional(db)
    .await
}

pub async fn user_by_id(db: impl SqliteExecutor<'_>, id: &str) -> Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, password_hash, disabled AS "disabled: bool", admin AS "admin: bool", created_at,
                  password_version
           FROM users WHERE id = ?"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn list_users(db: impl SqliteExecutor<'_>) -> Result<Vec<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, password_hash, disabled AS "disabled: bool", admin AS "admin: bool", created_at,
                  password_version
           FROM users ORDER BY id"#,
    )
    .fetch_all(db)
    .await
}

/// Rows changed (0: no such user); the username in any case.
pub async fn set_user_disabled(
    db: impl SqliteExecutor<'_>,
    username: &str,
    disabled: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET disabled = ? WHERE lower(username) = lower(?)",
        disabled,
        username,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- tasks as the API sees them ----------------------------------------------------------------

/// A new task, `queued`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    profile: &str,
    source: &str,
    input_key: Option<&str>,
    webhook_url: Option<&str>,
    keep_seconds: Option<i64>,
    created_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO tasks (id, user_id, status, profile, source, input_key, webhook_url, \
         keep_seconds, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
        id,
        user_id,
        profile,
        source,
        input_key,
        webhook_url,
        keep_seconds,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The processing job of a new task, due at `run_at`.
pub async fn insert_job(
    db: impl SqliteExecutor<'_>,
    id: &str,
    task_id: &str,
    run_at: i64,
    max_attempts: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO jobs (id, task_id, kind, state, run_at, max_attempts, created_at) \
         VALUES (?1, ?2, 'process', 'queued', ?3, ?4, ?3)",
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
pub async fn task_by_id(db: impl SqliteExecutor<'_>, id: &str) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        r#"SELECT id, user_id, status, profile, source, input, input_key, stage, percent,
                  eta_seconds, outputs, error_code, error_message, attempts, commands, result,
                  created_at, started_at, finished_at, next_attempt_at, webhook_url, keep_seconds,
                  files_expired_at
           FROM tasks WHERE id = ?"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The task if `user_id` owns it.
pub async fn task_of_user(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        r#"SELECT id, user_id, status, profile, source, input, input_key, stage, percent,
                  eta_seconds, outputs, error_code, error_message, attempts, commands, result,
                  created_at, started_at, finished_at, next_attempt_at, webhook_url, keep_seconds,
                  files_expired_at
           FROM tasks WHERE id = ? AND user_id = ?"#,
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// `SELECT <every TaskRow column> FROM tasks <tail>`, checked like any other query (the
/// tail must be a string literal: the macros only accept literals joined with `+`).
macro_rules! select_tasks {
    ($tail:tt, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            TaskRow,
            "SELECT id, user_id, status, profile, source, input, input_key, stage, percent,
                    eta_seconds, outputs, error_code, error_message, attempts, commands,
                    result, created_at, started_at, finished_at, next_attempt_at, webhook_url, keep_seconds,
                  files_expired_at
             FROM tasks " + $tail,
            $($arg),*
        )
    };
}

/// One page of a user's tasks by ascending id; `after` is the keyset cursor (`""` when
/// there is none: every id sorts after it). Walks `tasks_by_user`.
pub async fn tasks_ascending(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    select_tasks!(
        "WHERE user_id = ?1 AND id > ?2
         ORDER BY id ASC LIMIT ?3",
        user_id,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// One page by descending id; `before` is the cursor (`AFTER_EVERY_ID` when there is none).
pub async fn tasks_descending(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    before: &str,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    select_tasks!(
        "WHERE user_id = ?1 AND id < ?2
         ORDER BY id DESC LIMIT ?3",
        user_id,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// [`tasks_ascending`] with one status: separate statements so that SQLite walks
/// `tasks_by_user_status` (an `?2 IS NULL OR status = ?2` filter cannot use it).
pub async fn tasks_ascending_with_status(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    status: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    select_tasks!(
        "WHERE user_id = ?1 AND status = ?2 AND id > ?3
         ORDER BY id ASC LIMIT ?4",
        user_id,
        status,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// [`tasks_descending`] with one status.
pub async fn tasks_descending_with_status(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    status: &str,
    before: &str,
    limit: i64,
) -> Result<Vec<TaskRow>> {
    select_tasks!(
        "WHERE user_id = ?1 AND status = ?2 AND id < ?3
         ORDER BY id DESC LIMIT ?4",
        user_id,
        status,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Sorts after every id (ids are lower-case hexadecimal UUID text): the cursor of a first
/// descending page.
pub const AFTER_EVERY_ID: &str = "~";

/// The user's newest task with an output, or an upload, named `name`.
pub async fn task_with_file(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    name: &str,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        r#"SELECT id, user_id, status, profile, source, input, input_key, stage, percent,
                  eta_seconds, outputs, error_code, error_message, attempts, commands, result,
                  created_at, started_at, finished_at, next_attempt_at, webhook_url, keep_seconds,
                  files_expired_at
           FROM tasks t
           WHERE user_id = ?1 AND (
                 EXISTS (SELECT 1 FROM json_each(t.outputs)
                         WHERE json_extract(value, '$.name') = ?2)
                 OR json_extract(t.source, '$.filename') = ?2)
           ORDER BY id DESC LIMIT 1"#,
        user_id,
        name,
    )
    .fetch_optional(db)
    .await
}

/// Queued or running → cancelled, with the error of an attempt that was waiting to be
/// retried cleared. Rows changed.
pub async fn cancel_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    finished_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'cancelled', stage = NULL, eta_seconds = NULL, \
         error_code = NULL, error_message = NULL, next_attempt_at = NULL, finished_at = ? \
         WHERE id = ? AND user_id = ? AND status IN ('queued', 'running')",
        finished_at,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// End the task's job for good, marking it cancelled.
pub async fn cancel_job_of_task(db: impl SqliteExecutor<'_>, task_id: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'done', cancel_requested = 1, lease_owner = NULL, \
         lease_expires_at = NULL WHERE task_id = ?",
        task_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Failed or cancelled → queued, with the last run's results cleared and no attempt used
/// yet. Rows changed.
pub async fn requeue_task_for_retry(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, percent = NULL, eta_seconds = NULL, \
         error_code = NULL, error_message = NULL, finished_at = NULL, outputs = '[]', \
         result = NULL, attempts = 0, next_attempt_at = NULL \
         WHERE id = ? AND user_id = ? AND status IN ('failed', 'cancelled') \
           AND files_expired_at IS NULL",
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task's job back to the queue with fresh attempts, due at `run_at`.
pub async fn reset_job_of_task(
    db: impl SqliteExecutor<'_>,
    task_id: &str,
    run_at: i64,
    max_attempts: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', run_at = ?, attempts = 0, max_attempts = ?, \
         cancel_requested = 0, lease_owner = NULL, lease_expires_at = NULL, \
         last_error = NULL WHERE task_id = ?",
        run_at,
        max_attempts,
        task_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Removes the user's task; returns what was removed.
pub async fn delete_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<Option<TaskRow>> {
    sqlx::query_as!(
        TaskRow,
        r#"DELETE FROM tasks WHERE id = ? AND user_id = ?
           RETURNING id AS "id!", user_id AS "user_id!", status AS "status!",
                     profile AS "profile!", source AS "source!", input, input_key, stage,
                     percent, eta_seconds, outputs AS "outputs!", error_code, error_message,
                     attempts AS "attempts!", commands AS "commands!", result,
                     created_at AS "created_at!", started_at, finished_at,
                     next_attempt_at, webhook_url, keep_seconds, files_expired_at"#,
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_job_of_task(db: impl SqliteExecutor<'_>, task_id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM jobs WHERE task_id = ?", task_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Task counts of the statuses that have tasks.
pub async fn count_by_status(db: impl SqliteExecutor<'_>) -> Result<Vec<StatusCount>> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT status, COUNT(*) AS "n!: i64" FROM tasks GROUP BY status"#,
    )
    .fetch_all(db)
    .await
}

/// `run_at` (ms) of the queued job due longest at `now_ms`, if any.
pub async fn oldest_due_job(db: impl SqliteExecutor<'_>, now_ms: i64) -> Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT MIN(run_at) AS "oldest: i64" FROM jobs WHERE state = 'queued' AND run_at <= ?"#,
        now_ms
    )
    .fetch_one(db)
    .await
}

pub async fn ping(db: impl SqliteExecutor<'_>) -> Result<()> {
    sqlx::query!("SELECT 1 AS one").fetch_one(db).await?;
    Ok(())
}

// --- the queue as workers see it ---------------------------------------------------------------

/// Lease the next due job (queued and due at `now`, or running with an expired lease) to
/// `owner` until `lease_expires_at`. Run in a `BEGIN IMMEDIATE` transaction.
pub async fn claim_job(
    db: impl SqliteExecutor<'_>,
    owner: &str,
    lease_expires_at: i64,
    now: i64,
) -> Result<Option<ClaimedJobRow>> {
    sqlx::query_as!(
        ClaimedJobRow,
        r#"UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires_at = ?2,
                  attempts = attempts + 1
           WHERE id = (SELECT id FROM jobs
                        WHERE (state = 'queued' AND run_at <= ?3)
                           OR (state = 'running' AND lease_expires_at < ?3)
                        ORDER BY run_at, id LIMIT 1)
           RETURNING id AS "id!", task_id, attempts AS "attempts!",
                     max_attempts AS "max_attempts!""#,
        owner,
        lease_expires_at,
        now,
    )
    .fetch_optional(db)
    .await
}

/// The job `owner` holds already (its lease still running at `now`), with its task's run
/// count: a claim whose reply was lost (each worker loop runs one job at a time, so a live
/// lease under its name is one). An expired lease is claimed anew, with an attempt.
#[derive(Debug)]
pub struct HeldJobRow {
    pub id: String,
    pub task_id: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub runs: i64,
}

pub async fn held_job(
    db: impl SqliteExecutor<'_>,
    owner: &str,
    now: i64,
) -> Result<Option<HeldJobRow>> {
    sqlx::query_as!(
        HeldJobRow,
        r#"SELECT j.id AS "id!", t.id AS "task_id!", j.attempts AS "attempts!",
                  j.max_attempts AS "max_attempts!", t.runs AS "runs!"
           FROM jobs j JOIN tasks t ON t.id = j.task_id
           WHERE j.state = 'running' AND j.lease_owner = ? AND j.lease_expires_at > ?
           LIMIT 1"#,
        owner,
        now,
    )
    .fetch_optional(db)
    .await
}

/// The claimed job's task → running, showing `attempts` used, with the error and due time
/// of a waiting retry cleared; returns its run count (one more than before).
pub async fn start_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    now: i64,
    attempts: i64,
) -> Result<i64> {
    sqlx::query_scalar!(
        r#"UPDATE tasks SET status = 'running', attempts = ?, runs = runs + 1,
                  started_at = COALESCE(started_at, ?), stage = NULL, percent = 0,
                  eta_seconds = NULL, error_code = NULL, error_message = NULL,
                  next_attempt_at = NULL
           WHERE id = ? RETURNING runs AS "runs!""#,
        attempts,
        now,
        id,
    )
    .fetch_one(db)
    .await
}

/// Extend the lease of a running job held by `owner`. Rows changed.
pub async fn heartbeat(
    db: impl SqliteExecutor<'_>,
    job_id: &str,
    owner: &str,
    lease_expires_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET lease_expires_at = ? \
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        lease_expires_at,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Progress of a running task whose job `owner` holds; `percent` never goes down.
pub async fn set_progress(
    db: impl SqliteExecutor<'_>,
    task_id: &str,
    job_id: &str,
    owner: &str,
    stage: &str,
    percent: f64,
    eta_seconds: Option<f64>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET stage = ?, percent = MAX(COALESCE(percent, 0), ?), eta_seconds = ? \
         WHERE id = ? AND status = 'running' AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = ? AND lease_owner = ? AND state = 'running')",
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

/// The probed input (JSON) and its storage key, if `owner` holds the job.
pub async fn set_input(
    db: impl SqliteExecutor<'_>,
    task_id: &str,
    job_id: &str,
    owner: &str,
    input: &str,
    input_key: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET input = ?, input_key = ? \
         WHERE id = ? AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = ? AND lease_owner = ? AND state = 'running')",
        input,
        input_key,
        task_id,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The planned command lines (JSON array), if `owner` holds the job.
pub async fn set_commands(
    db: impl SqliteExecutor<'_>,
    task_id: &str,
    job_id: &str,
    owner: &str,
    commands: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET commands = ? \
         WHERE id = ? AND EXISTS (SELECT 1 FROM jobs \
           WHERE id = ? AND lease_owner = ? AND state = 'running')",
        commands,
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
    db: impl SqliteExecutor<'_>,
    job_id: &str,
    owner: &str,
    last_error: Option<&str>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, \
         last_error = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
        last_error,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A task's final fields: `outputs` (JSON) replaces the old ones when given; a `succeeded`
/// task reads 100 %.
#[allow(clippy::too_many_arguments)]
pub async fn finish_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    status: &str,
    outputs: Option<&str>,
    result: Option<&str>,
    error_code: Option<&str>,
    error_message: Option<&str>,
    finished_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = ?1, stage = NULL, eta_seconds = NULL, \
         percent = CASE WHEN ?1 = 'succeeded' THEN 100 ELSE percent END, \
         outputs = COALESCE(?2, outputs), result = ?3, error_code = ?4, error_message = ?5, \
         finished_at = ?6 \
         WHERE id = ?7",
        status,
        outputs,
        result,
        error_code,
        error_message,
        finished_at,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A running job held by `owner` back to the queue, due at `run_at`; `last_error` replaces
/// the job's note when given. Rows changed.
pub async fn requeue_job(
    db: impl SqliteExecutor<'_>,
    job_id: &str,
    owner: &str,
    run_at: i64,
    last_error: Option<&str>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', run_at = ?, lease_owner = NULL, \
         lease_expires_at = NULL, last_error = COALESCE(?, last_error) \
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        run_at,
        last_error,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A running job held by `owner` back to the queue, due at `run_at`, giving its attempt
/// back (shutdown: the run was stopped, it did not fail). Rows changed.
pub async fn release_job(
    db: impl SqliteExecutor<'_>,
    job_id: &str,
    owner: &str,
    run_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', run_at = ?, lease_owner = NULL, \
         lease_expires_at = NULL, attempts = MAX(attempts - 1, 0) \
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        run_at,
        job_id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task of a released job reads `queued` again, showing `attempts` used.
pub async fn release_task(db: impl SqliteExecutor<'_>, id: &str, attempts: i64) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL, attempts = ? \
         WHERE id = ?",
        attempts,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The task of a job that will be retried reads `queued` again, keeping the failed
/// attempt's error and when the next one is due.
pub async fn task_waits_for_retry(
    db: impl SqliteExecutor<'_>,
    id: &str,
    error_code: &str,
    error_message: &str,
    next_attempt_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL, \
         error_code = ?, error_message = ?, next_attempt_at = ? WHERE id = ?",
        error_code,
        error_message,
        next_attempt_at,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Every running job back to the queue, due at `run_at`. Rows changed.
pub async fn requeue_running_jobs(db: impl SqliteExecutor<'_>, run_at: i64) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE jobs SET state = 'queued', run_at = ?, lease_owner = NULL, \
         lease_expires_at = NULL WHERE state = 'running'",
        run_at,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Every running task reads `queued` again.
pub async fn requeue_running_tasks(db: impl SqliteExecutor<'_>) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL \
         WHERE status = 'running'",
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// When the next queued job is due (milliseconds), if any is queued.
pub async fn next_run_at(db: impl SqliteExecutor<'_>) -> Result<Option<i64>> {
    sqlx::query_scalar!(r#"SELECT MIN(run_at) AS "next: i64" FROM jobs WHERE state = 'queued'"#)
        .fetch_one(db)
        .await
}

// --- resumable uploads -----------------------------------------------------------------------

/// A row of `uploads`; `metadata` and `parts` are JSON text.
#[derive(Debug)]
pub struct UploadRow {
    pub id: String,
    pub user_id: String,
    pub length: i64,
    pub offset_bytes: i64,
    pub metadata: String,
    pub storage_key: String,
    pub part_size: i64,
    pub multipart_id: Option<String>,
    pub parts: String,
    pub staged_bytes: i64,
    pub task_id: Option<String>,
    pub lock_until: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
}

/// A new upload with nothing stored yet.
#[allow(clippy::too_many_arguments)]
pub async fn insert_upload(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    length: i64,
    metadata: &str,
    storage_key: &str,
    part_size: i64,
    multipart_id: Option<&str>,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO uploads (id, user_id, length, metadata, storage_key, part_size, \
                              multipart_id, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        id,
        user_id,
        length,
        metadata,
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
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"SELECT id AS "id!", user_id, length, offset_bytes, metadata, storage_key, part_size,
                  multipart_id, parts, staged_bytes, task_id, lock_until, created_at, expires_at,
                  completed_at
           FROM uploads WHERE id = ? AND user_id = ?"#,
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
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    now: i64,
    lock_until: i64,
) -> Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"UPDATE uploads SET lock_owner = ?, lock_until = ?
           WHERE id = ? AND (lock_owner IS NULL OR lock_until < ?)
           RETURNING id AS "id!", user_id AS "user_id!", length AS "length!",
                     offset_bytes AS "offset_bytes!", metadata AS "metadata!",
                     storage_key AS "storage_key!", part_size AS "part_size!", multipart_id,
                     parts AS "parts!", staged_bytes AS "staged_bytes!", task_id, lock_until,
                     created_at AS "created_at!", expires_at AS "expires_at!", completed_at"#,
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
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    lock_until: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET lock_until = ? WHERE id = ? AND lock_owner = ?",
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
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    offset_bytes: i64,
    multipart_id: Option<&str>,
    parts: &str,
    staged_bytes: i64,
    expires_at: i64,
    completed_at: Option<i64>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET offset_bytes = ?, multipart_id = ?, parts = ?, staged_bytes = ?, \
                            expires_at = ?, completed_at = ? \
         WHERE id = ? AND lock_owner = ?",
        offset_bytes,
        multipart_id,
        parts,
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

pub async fn unlock_upload(db: impl SqliteExecutor<'_>, id: &str, owner: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET lock_owner = NULL, lock_until = NULL \
         WHERE id = ? AND lock_owner = ?",
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Remove the upload `owner` holds.
pub async fn delete_locked_upload(
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM uploads WHERE id = ? AND lock_owner = ?",
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Mark a finished upload of `user_id` as made into the task of the same id; 0 rows when
/// it is not finished, already used, or not the user's.
pub async fn use_upload_for_task(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE uploads SET task_id = id \
         WHERE id = ? AND user_id = ? AND completed_at IS NOT NULL AND task_id IS NULL",
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Uploads whose time ran out before `now` and that no one holds, oldest first.
pub async fn expired_uploads(
    db: impl SqliteExecutor<'_>,
    now: i64,
    limit: i64,
) -> Result<Vec<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"SELECT id AS "id!", user_id, length, offset_bytes, metadata, storage_key, part_size,
                  multipart_id, parts, staged_bytes, task_id, lock_until, created_at, expires_at,
                  completed_at
           FROM uploads WHERE expires_at < ?1 AND (lock_owner IS NULL OR lock_until < ?1)
           ORDER BY expires_at LIMIT ?2"#,
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
    pub id: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_session(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    token_hash: &str,
    csrf_token: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, last_seen_at, \
         expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        id,
        user_id,
        token_hash,
        csrf_token,
        now,
        now,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The session of `token_hash` if it is alive at `now` (before its absolute expiry, seen
/// after `idle_cutoff`) and its user is not disabled.
pub async fn live_session(
    db: impl SqliteExecutor<'_>,
    token_hash: &str,
    now: i64,
    idle_cutoff: i64,
) -> Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "SELECT s.id, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ? AND u.disabled = 0",
        token_hash,
        now,
        idle_cutoff,
    )
    .fetch_optional(db)
    .await
}

/// Mark the session seen at `now`, when it was last marked before `stale` (so a page's burst
/// of requests writes once). Rows changed.
pub async fn touch_session(
    db: impl SqliteExecutor<'_>,
    id: &str,
    now: i64,
    stale: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
        now,
        id,
        stale,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

pub async fn delete_session(db: impl SqliteExecutor<'_>, token_hash: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM sessions WHERE token_hash = ?", token_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

pub async fn delete_sessions_of_user(db: impl SqliteExecutor<'_>, user_id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM sessions WHERE user_id = ?", user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Sessions past their absolute expiry, or idle since `idle_cutoff`. Rows deleted.
pub async fn delete_expired_sessions(
    db: impl SqliteExecutor<'_>,
    now: i64,
    idle_cutoff: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
        now,
        idle_cutoff,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Rows changed (0: no such user).
pub async fn set_password_hash(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    password_hash: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET password_hash = ?, password_version = password_version + 1 \
         WHERE id = ?",
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
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a live share link opens.
#[derive(Debug)]
pub struct SharedTaskRow {
    pub task_id: String,
    pub user_id: String,
}

/// A share of the task `task_id` if `user_id` owns it. Rows inserted (0: not their task).
#[allow(clippy::too_many_arguments)]
pub async fn insert_share(
    db: impl SqliteExecutor<'_>,
    id: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
    task_id: &str,
    user_id: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "INSERT INTO shares (id, task_id, user_id, token_hash, created_at, expires_at) \
         SELECT ?, id, user_id, ?, ?, ? FROM tasks WHERE id = ? AND user_id = ?",
        id,
        token_hash,
        now,
        expires_at,
        task_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The live shares of the user's task, oldest first.
pub async fn shares_of_task(
    db: impl SqliteExecutor<'_>,
    task_id: &str,
    user_id: &str,
    now: i64,
) -> Result<Vec<ShareRow>> {
    sqlx::query_as!(
        ShareRow,
        "SELECT id, created_at, expires_at FROM shares \
         WHERE task_id = ? AND user_id = ? AND expires_at > ? ORDER BY id",
        task_id,
        user_id,
        now,
    )
    .fetch_all(db)
    .await
}

/// Rows deleted (0: no such share of the user's task).
pub async fn delete_share(
    db: impl SqliteExecutor<'_>,
    id: &str,
    task_id: &str,
    user_id: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM shares WHERE id = ? AND task_id = ? AND user_id = ?",
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
    db: impl SqliteExecutor<'_>,
    token_hash: &str,
    now: i64,
) -> Result<Option<SharedTaskRow>> {
    sqlx::query_as!(
        SharedTaskRow,
        "SELECT s.task_id, s.user_id FROM shares s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = 0",
        token_hash,
        now,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_shares_of_task(db: impl SqliteExecutor<'_>, task_id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM shares WHERE task_id = ?", task_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

pub async fn delete_expired_shares(db: impl SqliteExecutor<'_>, now: i64) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM shares WHERE expires_at <= ?", now)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}
