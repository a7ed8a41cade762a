//! Workers: claim a job with a lease, keep the lease alive, run the job, and record the
//! outcome with a write that is conditional on still holding the lease.
//!
//! `run_one` is a single step (claim → run → finish) that tests call to drive the queue
//! deterministically; `worker_loop` repeats it until told to stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::{ClaimedJob, Db};
use crate::domain::{Stage, TaskError, TaskStatus};
use crate::jobs::{self, JobEnv, JobError};
use crate::storage::{Storage, keys};

/// Running tasks of this process, so an API call here can stop them at once. Other
/// processes notice within a heartbeat tick (one second).
#[derive(Default)]
pub struct CancelRegistry {
    running: Mutex<HashMap<Uuid, CancellationToken>>,
}

impl CancelRegistry {
    fn register(&self, task: Uuid, token: CancellationToken) {
        if let Ok(mut m) = self.running.lock() {
            m.insert(task, token);
        }
    }
    fn unregister(&self, task: Uuid) {
        if let Ok(mut m) = self.running.lock() {
            m.remove(&task);
        }
    }
    pub fn cancel(&self, task: Uuid) {
        if let Ok(m) = self.running.lock()
            && let Some(t) = m.get(&task)
        {
            t.cancel();
        }
    }
}

/// Everything a worker needs, shared by all workers of a process.
pub struct WorkerContext {
    pub db: Db,
    pub storage: Storage,
    pub env: JobEnv,
    pub lease: Duration,
    /// First retry delay; doubles per attempt up to five minutes.
    pub retry_base: Duration,
    pub cancels: Arc<CancelRegistry>,
    /// Task ids whose state changed (for SSE streams in this process).
    pub events: broadcast::Sender<Uuid>,
    /// Woken when a job is queued in this process.
    pub wake: Arc<Notify>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// A job ran and ended like this (`None`: its result was dropped because the lease was
    /// lost, or the task was cancelled or deleted meanwhile).
    Ran {
        task: Uuid,
        status: Option<TaskStatus>,
    },
    /// Shutdown stopped the job; its lease was released for another worker.
    Released { task: Uuid },
}

/// Progress as the job reports it; persisted by the job's ticker at most once a second
/// (and at once on a change of stage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    pub percent: f64,
    pub eta_seconds: Option<f64>,
}

/// Claim one due job and run it to the end.
pub async fn run_one(
    ctx: &WorkerContext,
    owner: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let Some(job) = ctx.db.claim(owner, ctx.lease).await? else {
        return Ok(Outcome::Idle);
    };
    let span = tracing::info_span!("job", task = %job.task_id, attempt = job.attempt);
    let started = Instant::now();
    let outcome = run_claimed(ctx, owner, &job, shutdown)
        .instrument(span)
        .await;
    let label = match &outcome {
        Ok(Outcome::Ran {
            status: Some(s), ..
        }) => s.as_str(),
        Ok(Outcome::Ran { status: None, .. }) => "dropped",
        Ok(Outcome::Released { .. }) => "released",
        Ok(Outcome::Idle) => "idle",
        Err(_) => "error",
    };
    metrics::counter!(crate::telemetry::JOBS_FINISHED, "outcome" => label).increment(1);
    metrics::histogram!(crate::telemetry::JOB_DURATION, "outcome" => label)
        .record(started.elapsed().as_secs_f64());
    let _ = ctx.events.send(job.task_id);
    outcome
}

async fn run_claimed(
    ctx: &WorkerContext,
    owner: &str,
    job: &ClaimedJob,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let task_id = job.task_id;
    let Some(task) = ctx.db.task_for_job(task_id).await? else {
        // Deleted between claim and load.
        return Ok(Outcome::Ran {
            task: task_id,
            status: None,
        });
    };
    tracing::info!(task = %task_id, attempt = job.attempt, run = job.run, "job claimed");
    let _ = ctx.events.send(task_id);
    if job.attempt > job.max_attempts {
        // A job whose earlier holders all died: stop retrying it.
        let err = TaskError {
            code: "too_many_attempts".into(),
            message: format!("gave up after {} attempts", job.max_attempts),
        };
        let ok = ctx.db.fail(job, owner, &err).await?;
        return Ok(Outcome::Ran {
            task: task_id,
            status: ok.then_some(TaskStatus::Failed),
        });
    }

    // `stop` ends the run: user cancel or delete, lost lease, or shutdown past its grace.
    let stop = CancellationToken::new();
    let lost = CancellationToken::new();
    ctx.cancels.register(task_id, stop.clone());
    let (progress_tx, progress_rx) = watch::channel(Progress {
        stage: Stage::Fetching,
        percent: 0.0,
        eta_seconds: None,
    });
    let ticker = tokio::spawn(lease_and_progress(
        ctx.db.clone(),
        job.clone(),
        owner.to_string(),
        ctx.lease,
        progress_rx,
        stop.clone(),
        lost.clone(),
        ctx.events.clone(),
    ));
    let forward_shutdown = {
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        })
    };

    let result = jobs::execute(ctx, owner, job, &task, &stop, &progress_tx).await;

    forward_shutdown.abort();
    ticker.abort();
    ctx.cancels.unregister(task_id);

    let run_prefix = keys::run_prefix(task_id, job.run);
    let status = match result {
        Ok(jobs::JobOutput { outputs, result }) => {
            if ctx
                .db
                .complete(job, owner, &outputs, result.as_ref())
                .await?
            {
                ctx.storage.prune_runs(task_id, job.run).await?;
                tracing::info!(task = %task_id, outputs = outputs.len(), "task succeeded");
                Some(TaskStatus::Succeeded)
            } else {
                None
            }
        }
        Err(JobError::Abort(e)) => {
            tracing::info!(task = %task_id, code = %e.code, "task failed: {}", e.message);
            ctx.db
                .fail(job, owner, &e)
                .await?
                .then_some(TaskStatus::Failed)
        }
        Err(JobError::Retry(e)) if job.attempt < job.max_attempts => {
            let delay = backoff(ctx.retry_base, job.attempt);
            tracing::warn!(task = %task_id, code = %e.code, ?delay, "attempt failed, will retry: {}", e.message);
            ctx.db
                .retry_later(job, owner, &e, delay)
                .await?
                .then_some(TaskStatus::Queued)
        }
        Err(JobError::Retry(e)) => {
            tracing::warn!(task = %task_id, code = %e.code, "last attempt failed: {}", e.message);
            ctx.db
                .fail(job, owner, &e)
                .await?
                .then_some(TaskStatus::Failed)
        }
        Err(JobError::Cancelled) if shutdown.is_cancelled() && !lost.is_cancelled() => {
            ctx.storage.delete_prefix(&run_prefix).await?;
            ctx.db.release(job, owner).await?;
            tracing::info!(task = %task_id, "released at shutdown");
            return Ok(Outcome::Released { task: task_id });
        }
        Err(JobError::Cancelled) => None,
    };
    if status.is_none() {
        // Cancelled, deleted or lease lost: nothing of this run may remain. A deleted
        // task may also have had its input stored by this run after the API removed its
        // files: then everything under the task goes.
        if ctx.db.task_for_job(task_id).await?.is_none() {
            ctx.storage
                .delete_prefix(&keys::task_prefix(task_id))
                .await?;
        } else {
            ctx.storage.delete_prefix(&run_prefix).await?;
        }
        tracing::info!(task = %task_id, "run stopped; its result was dropped");
    } else if status != Some(TaskStatus::Succeeded) {
        ctx.storage.delete_prefix(&run_prefix).await?;
    }
    Ok(Outcome::Ran {
        task: task_id,
        status,
    })
}

pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// Every second: renew the lease (a renewal that matches nothing means the lease is lost,
/// or the task was cancelled or deleted: stop the run) and persist progress if it moved.
#[allow(clippy::too_many_arguments)]
async fn lease_and_progress(
    db: Db,
    job: ClaimedJob,
    owner: String,
    lease: Duration,
    mut progress: watch::Receiver<Progress>,
    stop: CancellationToken,
    lost: CancellationToken,
    events: broadcast::Sender<Uuid>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: Option<Progress> = None;
    let mut last_write = Instant::now() - Duration::from_secs(2);
    loop {
        let stage_changed = tokio::select! {
            _ = tick.tick() => {
                match db.heartbeat(job.job_id, &owner, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(task = %job.task_id, "lease lost or task stopped; stopping the run");
                        lost.cancel();
                        stop.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
                false
            }
            changed = progress.changed() => {
                if changed.is_err() { return; }
                let p = *progress.borrow();
                written.map(|w| w.stage) != Some(p.stage)
            }
        };
        let p = *progress.borrow();
        if written != Some(p) && (stage_changed || last_write.elapsed() >= Duration::from_secs(1)) {
            match db
                .set_progress(&job, &owner, p.stage, p.percent, p.eta_seconds)
                .await
            {
                Ok(_) => {
                    written = Some(p);
                    last_write = Instant::now();
                    let _ = events.send(job.task_id);
                }
                Err(e) => tracing::warn!(error = %e, "could not save progress"),
            }
        }
    }
}

/// Claim and run jobs until `stop_claiming` fires; `shutdown` stops running jobs.
pub async fn worker_loop(
    ctx: Arc<WorkerContext>,
    owner: String,
    stop_claiming: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    while !stop_claiming.is_cancelled() {
        match run_one(&ctx, &owner, &shutdown).await {
            Ok(Outcome::Idle) => {
                failures = 0;
                let due = ctx
                    .db
                    .next_due_in()
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(10), Duration::from_secs(1));
                // Woken by an enqueue in this process (`wake`), by one in any process
                // (`wait_for_job`: LISTEN/NOTIFY on PostgreSQL), or by the timeout, which is
                // also the polling fallback for notifications that were lost.
                tokio::select! {
                    _ = ctx.wake.notified() => {}
                    _ = ctx.db.wait_for_job(due) => {}
                    _ = stop_claiming.cancelled() => {}
                }
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                let wait = backoff(Duration::from_millis(200), failures);
                tracing::error!(error = ?e, ?wait, "worker step failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_claiming.cancelled() => {}
                }
            }
        }
    }
    tracing::debug!(worker = %owner, "worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(5);
        assert_eq!(backoff(b, 1), Duration::from_secs(5));
        assert_eq!(backoff(b, 2), Duration::from_secs(10));
        assert_eq!(backoff(b, 3), Duration::from_secs(20));
        assert_eq!(backoff(b, 30), Duration::from_secs(300));
    }
}
