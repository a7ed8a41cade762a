//! [`LifecycleRepo`] on SQLite.

use super::*;
use crate::db::{count, duration_ms};

#[async_trait]
impl LifecycleRepo for SqliteRepo {
    async fn files_due_to_expire(
        &self,
        now: DateTime<Utc>,
        retention: Option<Duration>,
        limit: u32,
    ) -> RepoResult<Vec<Uuid>> {
        let ids = sql::files_due_to_expire(
            &self.pool,
            now.timestamp_millis(),
            retention.map(duration_ms),
            i64::from(limit),
        )
        .await?;
        ids.iter().map(|id| uuid(id)).collect()
    }

    async fn mark_files_expired(&self, task: Uuid, now: DateTime<Utc>) -> RepoResult<bool> {
        let n =
            sql::mark_files_expired(&self.pool, &task.to_string(), now.timestamp_millis()).await?;
        Ok(n == 1)
    }

    async fn stored_bytes(&self, user: Uuid) -> RepoResult<u64> {
        Ok(count(
            sql::stored_bytes_of_user(&self.pool, &user.to_string(), now_ms()).await?,
        ))
    }

    async fn stored_bytes_by_user(&self) -> RepoResult<Vec<UserBytes>> {
        let rows = sql::stored_bytes_by_user(&self.pool, now_ms()).await?;
        rows.into_iter()
            .map(|r| {
                Ok(UserBytes {
                    id: uuid(&r.id)?,
                    username: r.username,
                    bytes: count(r.bytes),
                })
            })
            .collect()
    }
}
