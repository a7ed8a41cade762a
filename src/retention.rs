//! Removing finished tasks' files when their time is up: `REELFORGE_RETENTION` after they
//! finish, or sooner when the task asked so (`expires_in`). The task's record stays, marked
//! (`files_expired_at`); its downloads answer `410 files_expired`.
//!
//! Many processes may sweep at once: the mark is a conditional update, so one process wins
//! each task, and only the winner deletes. The mark comes first, so a retry can no longer
//! start on a task whose input is being deleted; a process that dies between the two
//! leaves the task's objects behind under its prefix.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::db::{Db, RepoResult};
use crate::storage::{Storage, keys};

/// How often an API process sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Tasks taken per query.
const BATCH: u32 = 100;

/// Remove the files of every task due at `now`; how many tasks' files were removed.
pub async fn sweep_expired_files(
    db: &Db,
    storage: &Storage,
    retention: Option<Duration>,
    now: DateTime<Utc>,
) -> RepoResult<usize> {
    let mut removed = 0;
    loop {
        let due = db.files_due_to_expire(now, retention, BATCH).await?;
        let full = due.len() == BATCH as usize;
        for task in due {
            // Another process took it, or its owner retried or deleted it meanwhile.
            if !db.mark_files_expired(task, now).await? {
                continue;
            }
            if let Err(e) = storage.delete_prefix(&keys::task_prefix(task)).await {
                tracing::warn!(task = %task, error = %e, "could not remove an expired task's files");
            }
            metrics::counter!(crate::telemetry::FILES_EXPIRED).increment(1);
            removed += 1;
        }
        if !full {
            return Ok(removed);
        }
    }
}

/// Sweep every [`SWEEP_EVERY`] until `stopping` fires.
pub async fn retention_loop(
    db: Db,
    storage: Storage,
    retention: Option<Duration>,
    stopping: CancellationToken,
) {
    loop {
        match sweep_expired_files(&db, &storage, retention, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "files past their retention removed"),
            Err(e) => tracing::warn!(error = %e, "could not sweep files past their retention"),
        }
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
