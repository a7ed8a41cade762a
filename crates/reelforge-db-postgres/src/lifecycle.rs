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

/// Bytes `user_id` has stored: each task's input (an upload's size, or the fetched file's
/// as probed) and outputs while its files are kept, and every resumable upload not yet made
/// into a task and not expired.
pub async fn stored_bytes_of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT
             (SELECT COALESCE(SUM(COALESCE((source->>'size')::bigint, (input->>'size')::bigint, 0)
                                  + (SELECT COALESCE(SUM((o->>'size')::bigint), 0)
                                     FROM jsonb_array_elements(outputs) AS o)), 0)::bigint
              FROM tasks WHERE user_id = $1 AND files_expired_at IS NULL)
           + (SELECT COALESCE(SUM(length), 0)::bigint FROM uploads
              WHERE user_id = $1 AND task_id IS NULL AND expires_at > reelforge_now())
           AS "bytes!""#,
        user_id,
    )
    .fetch_one(db)
    .await
}
