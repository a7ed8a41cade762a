//! Workers: claim a job with a lease, keep the lease alive, run the job, and record the
//! outcome with a write that is conditional on still holding the lease.
//!
//! `run_one` is a single step (claim → run → finish) that tests call to drive the queue
//! deterministically; `worker_loop` repeats it until told to stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::{Db, Lease};
use crate::domain::{ErrorCode, TaskError, TaskRecord, TaskStatus};
use crate::jobs::{self, JobEnv, JobError, JobOutput, Progress};
use crate::signals::Signals;
use crate::storage::{Storage, keys};

/// Everything a worker needs, shared by all workers of a process.
pub struct WorkerContext {
    pub db: Db,
    pub storage: Storage,
    pub env: JobEnv,
    pub lease: Duration,
    /// First retry delay; doubles per attempt up to five minutes.
    pub retry_base: Duration,
    /// Wake-ups from this process's API; task changes and cancels to and from it.
    pub signals: Signals,
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

/// Claim one due job and run it to the end.
pub async fn run_one(
    ctx: &WorkerContext,
    owner: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let Some(lease) = ctx.db.claim(owner, ctx.lease).await? else {
        return Ok(Outcome::Idle);
    };
    let span = tracing::info_span!("job", task = %lease.task_id, attempt = lease.attempt);
    let started = Instant::now();
    let outcome = run_claimed(ctx, &lease, shutdown).instrument(span).await;
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
    ctx.signals.task_changed(lease.task_id);
    ctx.signals.message_queued(); // the final event's messages
    outcome
}

async fn run_claimed(
    ctx: &WorkerContext,
    lease: &Lease,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let task_id = lease.task_id;
    let Some(task) = ctx.db.task_for_job(task_id).await? else {
        // Deleted between claim and load.
        return Ok(Outcome::Ran {
            task: task_id,
            status: None,
        });
    };
    tracing::info!(task = %task_id, attempt = lease.attempt, run = lease.run, "job claimed");
    ctx.signals.task_changed(task_id);
    ctx.signals.message_queued(); // `task.started`, if anyone listens

    if lease.attempt > lease.max_attempts {
        // A job whose earlier holders all died: stop retrying it.
        let err = TaskError::new(
            ErrorCode::TooManyAttempts,
            format!("gave up after {} attempts", lease.max_attempts),
        );
        let ok = ctx.db.fail(lease, &err).await?;
        return Ok(Outcome::Ran {
            task: task_id,
            status: ok.then_some(TaskStatus::Failed),
        });
    }
    let (result, lost) = execute_watched(ctx, lease, &task, shutdown).await;
    if let Err(JobError::Cancelled) = &result
        && shutdown.is_cancelled()
        && !lost
    {
        ctx.storage
            .delete_prefix(&keys::run_prefix(task_id, lease.run))
            .await?;
        ctx.db.release(lease).await?;
        tracing::info!(task = %task_id, "released at shutdown");
        return Ok(Outcome::Released { task: task_id });
    }
    let status = record(ctx, lease, result).await?;
    clean_up(ctx, lease, status).await?;
    Ok(Outcome::Ran {
        task: task_id,
        status,
    })
}

/// Run the pipeline while a ticker keeps the lease and saves progress. The run stops on a
/// user's cancel or delete (through [`Signals`] here, the heartbeat elsewhere), a lost
/// lease, or shutdown past its grace. The flag says whether the lease was lost.
async fn execute_watched(
    ctx: &WorkerContext,
    lease: &Lease,
    task: &TaskRecord,
    shutdown: &CancellationToken,
) -> (Result<JobOutput, JobError>, bool) {
    let stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let _registration = ctx.signals.register_run(lease.task_id, stop.clone());
    let (progress_tx, progress_rx) = watch::channel(Progress::START);
    let ticker = tokio::spawn(lease_and_progress(
        Ticker {
            db: ctx.db.clone(),
            lease: lease.clone(),
            duration: ctx.lease,
            stop: stop.clone(),
            lost: lost.clone(),
            signals: ctx.signals.clone(),
        },
        progress_rx,
    ));
    let forward_shutdown = {
        let (stop, shutdown) = (stop.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        })
    };
    let run = jobs::Run {
        env: &ctx.env,
        db: &ctx.db,
        storage: &ctx.storage,
        lease,
        task,
        cancel: &stop,
        progress: &progress_tx,
    };
    let result = jobs::execute(&run).await;
    forward_shutdown.abort();
    ticker.abort();
    (result, lost.is_cancelled())
}

/// Write the run's outcome, conditional on the lease; `None` when it no longer counts
/// (lease lost, task cancelled or deleted).
async fn record(
    ctx: &WorkerContext,
    lease: &Lease,
    result: Result<JobOutput, JobError>,
) -> anyhow::Result<Option<TaskStatus>> {
    let task_id = lease.task_id;
    Ok(match result {
        Ok(JobOutput { outputs, result }) => {
            let done = ctx.db.complete(lease, &outputs, result.as_ref()).await?;
            if done {
                ctx.storage.prune_runs(task_id, lease.run).await?;
                tracing::info!(task = %task_id, outputs = outputs.len(), "task succeeded");
            }
            done.then_some(TaskStatus::Succeeded)
        }
        Err(JobError::Abort(e)) => {
            tracing::info!(task = %task_id, code = %e.code, "task failed: {}", e.message);
            ctx.db.fail(lease, &e).await?.then_some(TaskStatus::Failed)
        }
        Err(JobError::Retry(e)) if lease.attempt < lease.max_attempts => {
            let delay = backoff(ctx.retry_base, lease.attempt);
            tracing::warn!(task = %task_id, code = %e.code, ?delay, "attempt failed, will retry: {}", e.message);
            let queued = ctx.db.retry_later(lease, &e, delay).await?;
            queued.then_some(TaskStatus::Queued)
        }
        Err(JobError::Retry(e)) => {
            tracing::warn!(task = %task_id, code = %e.code, "last attempt failed: {}", e.message);
            ctx.db.fail(lease, &e).await?.then_some(TaskStatus::Failed)
        }
        Err(JobError::Cancelled) => None,
    })
}

/// Only a success keeps this run's files. A run whose result was dropped (cancelled,
/// deleted, lease lost) leaves nothing; a deleted task may also have had its input stored
/// by this run after the API removed its files, so then everything under the task goes.
async fn clean_up(
    ctx: &WorkerContext,
    lease: &Lease,
    status: Option<TaskStatus>,
) -> anyhow::Result<()> {
    let task_id = lease.task_id;
    if status == Some(TaskStatus::Succeeded) {
        return Ok(());
    }
    let deleted = status.is_none() && ctx.db.task_for_job(task_id).await?.is_none();
    let prefix = if deleted {
        keys::task_prefix(task_id)
    } else {
        keys::run_prefix(task_id, lease.run)
    };
    ctx.storage.delete_prefix(&prefix).await?;
    if status.is_none() {
        tracing::info!(task = %task_id, "run stopped; its result was dropped");
    }
    Ok(())
}

pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// What the lease-and-progress ticker of one run holds.
struct Ticker {
    db: Db,
    lease: Lease,
    duration: Duration,
    /// Stops the run.
    stop: CancellationToken,
    /// Set (with `stop`) when a renewal matched nothing.
    lost: CancellationToken,
    signals: Signals,
}

/// Every second: renew the lease (a renewal that matches nothing means the lease is lost,
/// or the task was cancelled or deleted: stop the run) and persist progress if it moved.
async fn lease_and_progress(t: Ticker, mut progress: watch::Receiver<Progress>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: Option<Progress> = None;
    let mut last_write = Instant::now() - Duration::from_secs(2);
    loop {
        let stage_changed = tokio::select! {
            _ = tick.tick() => {
                match t.db.heartbeat(&t.lease, t.duration).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(task = %t.lease.task_id, "lease lost or task stopped; stopping the run");
                        t.lost.cancel();
                        t.stop.cancel();
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
            match t
                .db
                .set_progress(&t.lease, p.stage, p.percent, p.eta_seconds)
                .await
            {
                Ok(_) => {
                    written = Some(p);
                    last_write = Instant::now();
                    t.signals.task_changed(t.lease.task_id);
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
                // Woken by an enqueue in this process (`signals`), by one in any process
                // (`wait_for_job`: LISTEN/NOTIFY on PostgreSQL), or by the timeout, which is
                // also the polling fallback for notifications that were lost.
                tokio::select! {
                    _ = ctx.signals.wait_for_job() => {}
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
