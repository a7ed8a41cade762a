//! The statements of the admin view: roles, invite codes, the workers that are alive, and
//! what the queue holds across every user.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Result;

/// Rows changed (0: no such user); the username in any case.
pub async fn set_user_admin(db: impl PgExecutor<'_>, username: &str, admin: bool) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET admin = $1 WHERE lower(username) = lower($2)",
        admin,
        username,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Rows changed (0: no such user).
pub async fn set_user_disabled_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
    disabled: bool,
) -> Result<u64> {
    let r = sqlx::query!("UPDATE users SET disabled = $1 WHERE id = $2", disabled, id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// A row of `invites`, with the names of the accounts it refers to.
#[derive(Debug)]
pub struct InviteRow {
    pub id: Uuid,
    pub note: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub used_by: Option<String>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert_invite(
    db: impl PgExecutor<'_>,
    id: Uuid,
    code_hash: &str,
    note: &str,
    created_by: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "INSERT INTO invites (id, code_hash, note, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, reelforge_now(), $5) RETURNING created_at",
        id,
        code_hash,
        note,
        created_by,
        expires_at,
    )
    .fetch_one(db)
    .await
}

/// Every invite, oldest first.
pub async fn list_invites(db: impl PgExecutor<'_>) -> Result<Vec<InviteRow>> {
    sqlx::query_as!(
        InviteRow,
        r#"SELECT i.id, i.note, c.username AS "created_by?", i.created_at, i.expires_at,
                  u.username AS "used_by?", i.used_at
           FROM invites i
           LEFT JOIN users c ON c.id = i.created_by
           LEFT JOIN users u ON u.id = i.used_by
           ORDER BY i.id"#,
    )
    .fetch_all(db)
    .await
}

/// Rows deleted: only a code not used yet can be withdrawn (a used one is the record of how
/// its account came in).
pub async fn delete_unused_invite(db: impl PgExecutor<'_>, id: Uuid) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM invites WHERE id = $1 AND used_at IS NULL", id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Rows changed: 1 when the code was live (not used, not expired) and is now spent by
/// `user_id`; 0 otherwise.
pub async fn spend_invite(db: impl PgExecutor<'_>, code_hash: &str, user_id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE invites SET used_by = $1, used_at = reelforge_now()
         WHERE code_hash = $2 AND used_at IS NULL
           AND (expires_at IS NULL OR expires_at > reelforge_now())",
        user_id,
        code_hash,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A row of `workers`.
#[derive(Debug)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub slots: i32,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Insert the worker process's row, or mark it seen now (the database's clock: every process
/// agrees on who is alive).
pub async fn beat_worker(
    db: impl PgExecutor<'_>,
    id: &str,
    host: &str,
    pid: i32,
    slots: i32,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO workers (id, host, pid, slots, started_at, seen_at)
         VALUES ($1, $2, $3, $4, reelforge_now(), reelforge_now())
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, slots = excluded.slots",
        id,
        host,
        pid,
        slots,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forget workers not seen for `stale_ms` (stopped or dead).
pub async fn forget_stale_workers(db: impl PgExecutor<'_>, stale_ms: i64) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM workers
         WHERE seen_at < reelforge_now() - make_interval(secs => $1::bigint / 1000.0)",
        stale_ms
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A worker that stops says so.
pub async fn forget_worker(db: impl PgExecutor<'_>, id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM workers WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Workers seen in the last `within_ms`, oldest start first.
pub async fn live_workers(db: impl PgExecutor<'_>, within_ms: i64) -> Result<Vec<WorkerRow>> {
    sqlx::query_as!(
        WorkerRow,
        "SELECT id, host, pid, slots, started_at, seen_at FROM workers
         WHERE seen_at >= reelforge_now() - make_interval(secs => $1::bigint / 1000.0)
         ORDER BY started_at, id",
        within_ms
    )
    .fetch_all(db)
    .await
}

/// A job being run, with its task's progress.
#[derive(Debug)]
pub struct RunningRow {
    pub lease_owner: Option<String>,
    pub task_id: Uuid,
    pub username: String,
    pub profile: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub duration: Option<f64>,
    pub started_at: Option<DateTime<Utc>>,
}

pub async fn running_jobs(db: impl PgExecutor<'_>) -> Result<Vec<RunningRow>> {
    sqlx::query_as!(
        RunningRow,
        r#"SELECT j.lease_owner, t.id AS task_id, u.username,
                  t.profile->>'profile' AS profile, t.stage, t.percent, t.eta_seconds,
                  (t.input->>'duration')::float8 AS duration, t.started_at
           FROM jobs j JOIN tasks t ON t.id = j.task_id JOIN users u ON u.id = t.user_id
           WHERE j.state = 'running' ORDER BY t.started_at, t.id"#,
    )
    .fetch_all(db)
    .await
}

/// Jobs queued and due, queued waiting for a retry, and running.
#[derive(Debug)]
pub struct QueueCounts {
    pub due: i64,
    pub waiting: i64,
    pub running: i64,
}

pub async fn queue_counts(db: impl PgExecutor<'_>) -> Result<QueueCounts> {
    sqlx::query_as!(
        QueueCounts,
        r#"SELECT COUNT(*) FILTER (WHERE state = 'queued' AND run_at <= reelforge_now()) AS "due!",
                  COUNT(*) FILTER (WHERE state = 'queued' AND run_at > reelforge_now()) AS "waiting!",
                  COUNT(*) FILTER (WHERE state = 'running') AS "running!"
           FROM jobs"#,
    )
    .fetch_one(db)
    .await
}

/// Failed tasks per error code since `since`, most frequent first.
#[derive(Debug)]
pub struct FailureCount {
    pub code: String,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

pub async fn failures_since(
    db: impl PgExecutor<'_>,
    since: DateTime<Utc>,
) -> Result<Vec<FailureCount>> {
    sqlx::query_as!(
        FailureCount,
        r#"SELECT COALESCE(error_code, 'internal') AS "code!", COUNT(*) AS "count!",
                  MAX(finished_at) AS "last_at!"
           FROM tasks WHERE status = 'failed' AND finished_at >= $1
           GROUP BY 1 ORDER BY 2 DESC, 1"#,
        since
    )
    .fetch_all(db)
    .await
}
