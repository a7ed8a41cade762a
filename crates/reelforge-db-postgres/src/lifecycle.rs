//! The statements of the data lifecycle: which finished tasks' files are due to be removed,
//! marking them removed, and the bytes a user has stored.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Result;

/// Finished tasks whose files are still kept but due to go at `now`: past the owner's
/// `keep_seconds`, or past `retention_ms` (when set) after finishing; oldest first.
pub async fn files_due_to_expire(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    retention_ms: Option<i64>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM tasks
         WHERE files_expired_at IS NULL AND finished_at IS NOT NULL
           AND status IN ('succeeded', 'failed', 'cancelled')
           AND ((keep_seconds IS NOT NULL
                 AND finished_at + make_interval(secs => keep_seconds) <= $1)
                OR ($2::bigint IS NOT NULL
                    AND finished_at <= $1 - make_interval(secs => $2 / 1000.0)))
         ORDER BY finished_at LIMIT $3",
        now,
        retention_ms,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Rows changed: 1 when the task was finished with its files kept, and now says they are
/// gone (a retry or a new run cannot start on it any more); 0 otherwise.
pub async fn mark_files_expired(
    db: impl PgExecutor<'_>,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET files_expired_at = $2
         WHERE id = $1 AND files_expired_at IS NULL
           AND status IN ('succeeded', 'failed', 'cancelled')",
        id,
        now,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Bytes `user_id` has stored (see the `stored_bytes` view).
pub async fn stored_bytes_of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(SUM(bytes), 0)::bigint AS "bytes!" FROM stored_bytes
           WHERE user_id = $1 AND (live_until IS NULL OR live_until > reelforge_now())"#,
        user_id,
    )
    .fetch_one(db)
    .await
}

/// A user's stored bytes, with their name.
#[derive(Debug)]
pub struct UserBytesRow {
    pub id: Uuid,
    pub username: String,
    pub bytes: i64,
}

/// Every user's stored bytes, most first (users storing nothing left out).
pub async fn stored_bytes_by_user(db: impl PgExecutor<'_>) -> Result<Vec<UserBytesRow>> {
    sqlx::query_as!(
        UserBytesRow,
        r#"SELECT u.id, u.username, COALESCE(SUM(s.bytes), 0)::bigint AS "bytes!"
           FROM stored_bytes s JOIN users u ON u.id = s.user_id
           WHERE s.live_until IS NULL OR s.live_until > reelforge_now()
           GROUP BY u.id, u.username HAVING SUM(s.bytes) > 0 ORDER BY 3 DESC, 2"#,
    )
    .fetch_all(db)
    .await
}

/// The job a claim now would take next, with what its run needs to know to size its
/// scratch space: the profile (the JSON document) and the input's bytes when known.
#[derive(Debug)]
pub struct NextJobRow {
    pub task_id: Uuid,
    pub profile: serde_json::Value,
    pub input_bytes: Option<i64>,
}

pub async fn next_job(db: impl PgExecutor<'_>) -> Result<Option<NextJobRow>> {
    sqlx::query_as!(
        NextJobRow,
        r#"SELECT t.id AS task_id, t.profile,
                  COALESCE((t.source->>'size')::bigint, (t.input->>'size')::bigint) AS input_bytes
           FROM jobs j JOIN tasks t ON t.id = j.task_id
           WHERE (j.state = 'queued' AND j.run_at <= reelforge_now())
              OR (j.state = 'running' AND j.lease_expires_at < reelforge_now())
           ORDER BY j.run_at, j.id LIMIT 1"#,
    )
    .fetch_optional(db)
    .await
}
