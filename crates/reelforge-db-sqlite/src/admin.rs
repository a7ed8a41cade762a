//! The statements of the admin view: roles, invite codes, the workers that are alive, and
//! what the queue holds across every user.

use sqlx::SqliteExecutor;

use crate::Result;

/// Rows changed (0: no such user); the username in any case.
pub async fn set_user_admin(
    db: impl SqliteExecutor<'_>,
    username: &str,
    admin: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET admin = ? WHERE lower(username) = lower(?)",
        admin,
        username,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Rows changed (0: no such user).
pub async fn set_user_disabled_by_id(
    db: impl SqliteExecutor<'_>,
    id: &str,
    disabled: bool,
) -> Result<u64> {
    let r = sqlx::query!("UPDATE users SET disabled = ? WHERE id = ?", disabled, id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// A row of `invites`, with the names of the accounts it refers to.
#[derive(Debug)]
pub struct InviteRow {
    pub id: String,
    pub note: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub used_by: Option<String>,
    pub used_at: Option<i64>,
}

pub async fn insert_invite(
    db: impl SqliteExecutor<'_>,
    id: &str,
    code_hash: &str,
    note: &str,
    created_by: Option<&str>,
    created_at: i64,
    expires_at: Option<i64>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO invites (id, code_hash, note, created_by, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        id,
        code_hash,
        note,
        created_by,
        created_at,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Every invite, oldest first.
pub async fn list_invites(db: impl SqliteExecutor<'_>) -> Result<Vec<InviteRow>> {
    sqlx::query_as!(
        InviteRow,
        r#"SELECT i.id AS "id!", i.note AS "note!", c.username AS "created_by?",
                  i.created_at AS "created_at!", i.expires_at, u.username AS "used_by?",
                  i.used_at
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
pub async fn delete_unused_invite(db: impl SqliteExecutor<'_>, id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM invites WHERE id = ? AND used_at IS NULL", id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Rows changed: 1 when the code was live (not used, not expired) and is now spent by
/// `user_id`; 0 otherwise.
pub async fn spend_invite(
    db: impl SqliteExecutor<'_>,
    code_hash: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE invites SET used_by = ?, used_at = ?
         WHERE code_hash = ? AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        user_id,
        now_ms,
        code_hash,
        now_ms,
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
    pub pid: i64,
    pub slots: i64,
    pub started_at: i64,
    pub seen_at: i64,
}

/// Insert the worker process's row, or mark it seen now.
pub async fn beat_worker(db: impl SqliteExecutor<'_>, w: &WorkerRow) -> Result<()> {
    sqlx::query!(
        "INSERT INTO workers (id, host, pid, slots, started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, slots = excluded.slots",
        w.id,
        w.host,
        w.pid,
        w.slots,
        w.started_at,
        w.seen_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forget workers not seen since `before_ms` (stopped or dead).
pub async fn forget_stale_workers(db: impl SqliteExecutor<'_>, before_ms: i64) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM workers WHERE seen_at < ?", before_ms)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// A worker that stops says so.
pub async fn forget_worker(db: impl SqliteExecutor<'_>, id: &str) -> Result<u64> {
    let r = sqlx::query!("DELETE FROM workers WHERE id = ?", id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Workers seen since `since_ms`, oldest start first.
pub async fn live_workers(db: impl SqliteExecutor<'_>, since_ms: i64) -> Result<Vec<WorkerRow>> {
    sqlx::query_as!(
        WorkerRow,
        "SELECT id, host, pid, slots, started_at, seen_at FROM workers
         WHERE seen_at >= ? ORDER BY started_at, id",
        since_ms
    )
    .fetch_all(db)
    .await
}

/// A job being run, with its task's progress.
#[derive(Debug)]
pub struct RunningRow {
    pub lease_owner: Option<String>,
    pub task_id: String,
    pub username: String,
    pub profile: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub duration: Option<f64>,
    pub started_at: Option<i64>,
}

pub async fn running_jobs(db: impl SqliteExecutor<'_>) -> Result<Vec<RunningRow>> {
    sqlx::query_as!(
        RunningRow,
        r#"SELECT j.lease_owner, t.id AS "task_id!", u.username AS "username!",
                  json_extract(t.profile, '$.profile') AS "profile?: String",
                  t.stage, t.percent, t.eta_seconds,
                  json_extract(t.input, '$.duration') AS "duration?: f64", t.started_at
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

pub async fn queue_counts(db: impl SqliteExecutor<'_>, now_ms: i64) -> Result<QueueCounts> {
    sqlx::query_as!(
        QueueCounts,
        r#"SELECT COALESCE(SUM(state = 'queued' AND run_at <= ?), 0) AS "due!: i64",
                  COALESCE(SUM(state = 'queued' AND run_at > ?), 0) AS "waiting!: i64",
                  COALESCE(SUM(state = 'running'), 0) AS "running!: i64"
           FROM jobs"#,
        now_ms,
        now_ms,
    )
    .fetch_one(db)
    .await
}

/// Failed tasks per error code since `since_ms`, most frequent first.
#[derive(Debug)]
pub struct FailureCount {
    pub code: String,
    pub count: i64,
    pub last_at: i64,
}

pub async fn failures_since(
    db: impl SqliteExecutor<'_>,
    since_ms: i64,
) -> Result<Vec<FailureCount>> {
    sqlx::query_as!(
        FailureCount,
        r#"SELECT COALESCE(error_code, 'internal') AS "code!: String", COUNT(*) AS "count!: i64",
                  MAX(finished_at) AS "last_at!: i64"
           FROM tasks WHERE status = 'failed' AND finished_at >= ?
           GROUP BY 1 ORDER BY 2 DESC, 1"#,
        since_ms
    )
    .fetch_all(db)
    .await
}
