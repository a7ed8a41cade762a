//! The statements of the data lifecycle: which finished tasks' files are due to be removed,
//! marking them removed, and the bytes a user has stored.

use sqlx::SqliteExecutor;

use crate::Result;

/// Finished tasks whose files are still kept but due to go at `now_ms`: past the owner's
/// `keep_seconds`, or past `retention_ms` (when set) after finishing; oldest first.
pub async fn files_due_to_expire(
    db: impl SqliteExecutor<'_>,
    now_ms: i64,
    retention_ms: Option<i64>,
    limit: i64,
) -> Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM tasks
           WHERE files_expired_at IS NULL AND finished_at IS NOT NULL
             AND status IN ('succeeded', 'failed', 'cancelled')
             AND ((keep_seconds IS NOT NULL AND finished_at + keep_seconds * 1000 <= ?1)
                  OR (?2 IS NOT NULL AND finished_at <= ?1 - ?2))
           ORDER BY finished_at LIMIT ?3"#,
        now_ms,
        retention_ms,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Rows changed: 1 when the task was finished with its files kept, and now says they are
/// gone (a retry or a new run cannot start on it any more); 0 otherwise.
pub async fn mark_files_expired(db: impl SqliteExecutor<'_>, id: &str, now_ms: i64) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE tasks SET files_expired_at = ?
         WHERE id = ? AND files_expired_at IS NULL
           AND status IN ('succeeded', 'failed', 'cancelled')",
        now_ms,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Bytes `user_id` has stored: each task's input (an upload's size, or the fetched file's
/// as probed) and outputs while its files are kept, and every resumable upload not yet made
/// into a task and not expired at `now_ms`.
pub async fn stored_bytes_of_user(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    now_ms: i64,
) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT
             (SELECT COALESCE(SUM(COALESCE(json_extract(source, '$.size'),
                                           json_extract(input, '$.size'), 0)
                                  + (SELECT COALESCE(SUM(json_extract(o.value, '$.size')), 0)
                                     FROM json_each(tasks.outputs) AS o)), 0)
              FROM tasks WHERE user_id = ?1 AND files_expired_at IS NULL)
           + (SELECT COALESCE(SUM(length), 0) FROM uploads
              WHERE user_id = ?1 AND task_id IS NULL AND expires_at > ?2)
           AS "bytes!: i64""#,
        user_id,
        now_ms,
    )
    .fetch_one(db)
    .await
}
