//! Removing finished tasks' files when their time is up: `REELFORGE_RETENTION` after they
//! finish, or sooner when the task asked so (`expires_in`). The task's record stays, marked
//! (`files_expired_at`); its downloads answer `410 files_expired`.
//!
//! Many processes may sweep at once: the mark is a conditional update, so one process wins
//! each task, and only the winner deletes. The mark comes first, so a retry can no longer
//! start on a task whose input is being deleted; a process that dies between the two
//! leaves the task's objects behind under its prefix, for the orphan sweep.
//!
//! The orphan sweep (hourly) removes what no task accounts for: objects of a task that has
//! no row (its deletion or its creation was cut short), of a task whose files expired, and
//! outputs of runs that never committed (a worker that died mid-run) once the task is
//! finished. Objects written in the last hour are left alone: a task stores its input
//! before its row exists. Every removal is idempotent, so sweepers may overlap.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use crate::db::{Db, RepoResult};
use crate::domain::TaskStatus;
use crate::signals::Signals;
use crate::storage::{Storage, keys};

/// How often an API process sweeps expired files, and orphans (every that many sweeps).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
const ORPHAN_SWEEP_EVERY: u32 = 60;
/// Objects younger than this are never orphans (a task stores its input before its row).
pub const ORPHAN_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Tasks taken per query.
const BATCH: u32 = 100;

/// Remove the files of every task due at `now`; how many tasks' files were removed. Each
/// task's change is signalled (its `files_expired_at` shows at once).
pub async fn sweep_expired_files(
    db: &Db,
    storage: &Storage,
    signals: &Signals,
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
            signals.task_changed(task);
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

/// Remove the objects under `tasks/` that no task accounts for (see the module comment),
/// at `now`; how many objects were removed.
pub async fn sweep_orphaned_objects(
    db: &Db,
    storage: &Storage,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut by_task: BTreeMap<Uuid, Vec<(String, DateTime<Utc>)>> = BTreeMap::new();
    for (key, written) in storage.list_dated("tasks").await? {
        let id = key.split('/').nth(1).and_then(|s| Uuid::parse_str(s).ok());
        if let Some(id) = id {
            by_task.entry(id).or_default().push((key, written));
        }
    }
    let mut removed = 0;
    for (id, objects) in by_task {
        if objects
            .iter()
            .any(|(_, written)| *written > now - ORPHAN_GRACE)
        {
            continue;
        }
        let orphans: Vec<&String> = match db.task_for_job(id).await? {
            None => objects.iter().map(|(k, _)| k).collect(),
            Some(t) if t.files_expired_at.is_some() => objects.iter().map(|(k, _)| k).collect(),
            Some(t)
                if matches!(
                    t.status,
                    TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
                ) =>
            {
                let kept: HashSet<&str> = t.outputs.iter().map(|o| o.key.as_str()).collect();
                let outputs = format!("{}/", keys::outputs_prefix(id));
                objects
                    .iter()
                    .map(|(k, _)| k)
                    .filter(|k| k.starts_with(&outputs) && !kept.contains(k.as_str()))
                    .collect()
            }
            // Queued or running: a run may be writing.
            Some(_) => continue,
        };
        for key in orphans {
            storage.delete(key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Sweep every [`SWEEP_EVERY`] until `stopping` fires.
pub async fn retention_loop(
    db: Db,
    storage: Storage,
    signals: Signals,
    retention: Option<Duration>,
    stopping: CancellationToken,
) {
    for round in 0u32.. {
        match sweep_expired_files(&db, &storage, &signals, retention, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "files past their retention removed"),
            Err(e) => tracing::warn!(error = %e, "could not sweep files past their retention"),
        }
        if round % ORPHAN_SWEEP_EVERY == 0 {
            match sweep_orphaned_objects(&db, &storage, Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(objects = n, "orphaned objects removed"),
                Err(e) => tracing::warn!(error = %e, "could not sweep orphaned objects"),
            }
        }
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
