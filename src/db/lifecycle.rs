//! The data lifecycle in the repository: finished tasks whose files are due to be removed
//! (the owner's `expires_in`, `REELFORGE_RETENTION`), and the bytes a user has stored (for
//! `REELFORGE_USER_QUOTA`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;

#[async_trait]
pub trait LifecycleRepo: Send + Sync {
    /// Finished tasks whose files are still kept and due to go at `now`: past their own
    /// `expires_in`, or `retention` after finishing; oldest first, at most `limit`.
    async fn files_due_to_expire(
        &self,
        now: DateTime<Utc>,
        retention: Option<Duration>,
        limit: u32,
    ) -> RepoResult<Vec<Uuid>>;
    /// Record that the task's files are gone; `false` when it is not finished with its files
    /// kept (another process took it, or the owner retried it meanwhile).
    async fn mark_files_expired(&self, task: Uuid, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Bytes the user has stored: inputs and outputs of tasks whose files are kept, and
    /// resumable uploads not yet made into tasks.
    async fn stored_bytes(&self, user: Uuid) -> RepoResult<u64>;
    /// Every user storing anything, most bytes first.
    async fn stored_bytes_by_user(&self) -> RepoResult<Vec<UserBytes>>;
}

/// What one user stores.
#[derive(Debug, Clone, PartialEq)]
pub struct UserBytes {
    pub id: Uuid,
    pub username: String,
    pub bytes: u64,
}
