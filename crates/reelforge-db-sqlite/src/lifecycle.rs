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

/// Bytes `user_id` has stored at `now_ms` (see the `stored_bytes` view).
pub async fn stored_bytes_of_user(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    now_ms: i64,
) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(SUM(bytes), 0) AS "bytes!: i64" FROM stored_bytes
           WHERE user_id = ? AND (live_until IS NULL OR live_until > ?)"#,
        user_id,
        now_ms,
    )
    .fetch_one(db)
    .await
}

/// A user's stored bytes, with their name.
#[derive(Debug)]
pub struct UserBytesRow {
    pub id: String,
    pub username: String,
    pub bytes: i64,
}

/// Every user's stored bytes at `now_ms`, most first (users storing nothing left out).
pub async fn stored_bytes_by_user(
    db: impl SqliteExecutor<'_>,
    now_ms: i64,
) -> Result<Vec<UserBytesRow>> {
    sqlx::query_as!(
        UserBytesRow,
        r#"SELECT u.id AS "id!", u.username AS "username!",
                  COALESCE(SUM(s.bytes), 0) AS "bytes!: i64"
           FROM stored_bytes s JOIN users u ON u.id = s.user_id
           WHERE s.live_until IS NULL OR s.live_until > ?
           GROUP BY u.id, u.username HAVING SUM(s.bytes) > 0 ORDER BY 3 DESC, 2"#,
        now_ms,
    )
    .fetch_all(db)
    .await
}

/// The job a claim at `now_ms` would take next, with what its run needs to know to size its
/// scratch space: the profile (the JSON document) and the input's bytes when known.
#[derive(Debug)]
pub struct NextJobRow {
    pub task_id: String,
    pub profile: String,
    pub input_bytes: Option<i64>,
}

pub async fn next_job(db: impl SqliteExecutor<'_>, now_ms: i64) -> Result<Option<NextJobRow>> {
    sqlx::query_as!(
        NextJobRow,
        r#"SELECT t.id AS "task_id!", t.profile AS "profile!",
                  COALESCE(json_extract(t.source, '$.size'), json_extract(t.input, '$.size'))
                    AS "input_bytes?: i64"
           FROM jobs j JOIN tasks t ON t.id = j.task_id
           WHERE (j.state = 'queued' AND j.run_at <= ?1)
              OR (j.state = 'running' AND j.lease_expires_at < ?1)
           ORDER BY j.run_at, j.id LIMIT 1"#,
        now_ms,
    )
    .fetch_optional(db)
    .await
}
