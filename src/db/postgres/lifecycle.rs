//! [`LifecycleRepo`] on PostgreSQL.

use super::*;
use crate::db::{count, duration_ms};

#[async_trait]
impl LifecycleRepo for PgRepo {
    async fn files_due_to_expire(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        retention: Option<Duration>,
        limit: u32,
    ) -> RepoResult<Vec<Uuid>> {
        Ok(sql::files_due_to_expire(
            &self.pool,
            now,
            retention.map(duration_ms),
            i64::from(limit),
        )
        .await?)
    }

    async fn mark_files_expired(
        &self,
        task: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> RepoResult<bool> {
        Ok(sql::mark_files_expired(&self.pool, task, now).await? == 1)
    }

    async fn stored_bytes(&self, user: Uuid) -> RepoResult<u64> {
        Ok(count(sql::stored_bytes_of_user(&self.pool, user).await?))
    }

    async fn stored_bytes_by_user(&self) -> RepoResult<Vec<UserBytes>> {
        let rows = sql::stored_bytes_by_user(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| UserBytes {
                id: r.id,
                username: r.username,
                bytes: count(r.bytes),
            })
            .collect())
    }
}
