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

use crate::admission::{ScratchGate, Shortfall, scratch_need};
use crate::db::{Db, Lease, retry_transient};
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
    /// The scratch space promised to this process's running jobs.
    pub scratch: Arc<ScratchGate>,
    /// The most bytes a fetch may bring (`REELFORGE_MAX_UPLOAD`): the size assumed for an
    /// input not fetched yet.
    pub max_fetch: u64,
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
    /// The next job's estimated need does not fit in the scratch space left: nothing was
    /// claimed.
    WaitingForScratch(Shortfall),
}

/// Claim one due job and run it to the end.
pub async fn run_one(
    ctx: &WorkerContext,
    owner: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let Some(next) = ctx.db.next_job().await? else {
        return Ok(Outcome::Idle);
    };
    let need = scratch_need(&next.profile, next.input_bytes, ctx.max_fetch);
    // Held until the run ends (another process may claim `next` first; then this promise
    // stands for the job claimed instead).
    let _space = match ctx.scratch.try_reserve(need) {
        Ok(space) => space,
        Err(short) => return Ok(Outcome::WaitingForScratch(short)),
    };
    // Made again through a short database outage: a claim whose reply was lost returns the
    // job it took (`claim` is idempotent per owner), so the outage costs no attempt.
    let claimed = retry_transient(ctx.lease / 2, "claim", || ctx.db.claim(owner, ctx.lease));
    let Some(lease) = claimed.await? else {
        return Ok(Outcome::Idle);
    };
    let _running = RunningJob::start();
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
        Ok(Outcome::WaitingForScratch(_)) => "waiting",
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
    let loaded = retry_transient(ctx.lease / 2, "task_for_job", || {
        ctx.db.task_for_job(task_id)
    })
    .await?;
    let Some(task) = loaded else {
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
    let began = Instant::now();
    let (result, lost) = execute_watched(ctx, lease, &task, shutdown).await;
    let figures = RunFigures::of(task.profile.name(), &result, began.elapsed());
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
    figures.count(status);
    clean_up(ctx, lease, status).await?;
    Ok(Outcome::Ran {
        task: task_id,
        status,
    })
}

/// `reelforge_jobs_running` counts this job while the value lives (whatever way the run
/// ends: a panic or a cancelled future too).
struct RunningJob;

impl RunningJob {
    fn start() -> RunningJob {
        metrics::gauge!(crate::telemetry::JOBS_RUNNING).increment(1.0);
        RunningJob
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::JOBS_RUNNING).decrement(1.0);
    }
}

/// What a finished run adds to the task metrics, taken before its result is recorded.
struct RunFigures {
    profile: &'static str,
    code: Option<String>,
    input_seconds: Option<f64>,
    wall: Duration,
}

impl RunFigures {
    fn of(profile: &'static str, result: &Result<JobOutput, JobError>, wall: Duration) -> Self {
        let (code, input_seconds) = match result {
            Ok(out) => (None, out.input_seconds),
            Err(JobError::Abort(e) | JobError::Retry(e)) => (Some(e.code.clone()), None),
            Err(JobError::Cancelled) => (None, None),
        };
        RunFigures {
            profile,
            code,
            input_seconds,
            wall,
        }
    }

    /// Count the run by the status it ended the task with (a run whose result no longer
    /// counted, or that queued a retry, ends no task).
    fn count(self, status: Option<TaskStatus>) {
        use crate::telemetry::{MEDIA_MILLISECONDS, PROCESSING_MILLISECONDS, TASKS_FINISHED};
        let Some(status) = status.filter(|s| s.is_final()) else {
            return;
        };
        let code = match status {
            TaskStatus::Failed => self.code.unwrap_or_default(),
            _ => String::new(),
        };
        metrics::counter!(TASKS_FINISHED, "profile" => self.profile,
            "outcome" => status.as_str(), "code" => code)
        .increment(1);
        if let (TaskStatus::Succeeded, Some(seconds)) = (status, self.input_seconds) {
            // Counters are whole numbers: milliseconds keep a 2-second clip visible.
            metrics::counter!(MEDIA_MILLISECONDS, "profile" => self.profile)
                .increment((seconds.max(0.0) * 1000.0).round() as u64);
            metrics::counter!(PROCESSING_MILLISECONDS, "profile" => self.profile)
                .increment(self.wall.as_millis() as u64);
        }
    }
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
        lease_duration: ctx.lease,
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
/// (lease lost, task cancelled or deleted). A database outage shorter than half the lease
/// is waited out ([`retry_transient`]): it costs the job no attempt.
async fn record(
    ctx: &WorkerContext,
    lease: &Lease,
    result: Result<JobOutput, JobError>,
) -> anyhow::Result<Option<TaskStatus>> {
    let task_id = lease.task_id;
    let within = ctx.lease / 2;
    Ok(match result {
        Ok(JobOutput {
            outputs, result, ..
        }) => {
            let done = retry_transient(within, "complete", || {
                ctx.db.complete(lease, &outputs, result.as_ref())
            })
            .await?
                || completed_already(ctx, lease, &outputs).await?;
            if done {
                ctx.storage.prune_runs(task_id, lease.run).await?;
                tracing::info!(task = %task_id, outputs = outputs.len(), "task succeeded");
            }
            done.then_some(TaskStatus::Succeeded)
        }
        Err(JobError::Abort(e)) => {
            tracing::info!(task = %task_id, code = %e.code, "task failed: {}", e.message);
            let failed = retry_transient(within, "fail", || ctx.db.fail(lease, &e)).await?;
            failed.then_some(TaskStatus::Failed)
        }
        Err(JobError::Retry(e)) if lease.attempt < lease.max_attempts => {
            let delay = backoff(ctx.retry_base, lease.attempt);
            tracing::warn!(task = %task_id, code = %e.code, ?delay, "attempt failed, will retry: {}", e.message);
            let queued = retry_transient(within, "retry_later", || {
                ctx.db.retry_later(lease, &e, delay)
            })
            .await?;
            queued.then_some(TaskStatus::Queued)
        }
        Err(JobError::Retry(e)) => {
            tracing::warn!(task = %task_id, code = %e.code, "last attempt failed: {}", e.message);
            let failed = retry_transient(within, "fail", || ctx.db.fail(lease, &e)).await?;
            failed.then_some(TaskStatus::Failed)
        }
        Err(JobError::Cancelled) => None,
    })
}

/// Whether this run's success is already recorded: a `complete` whose reply was lost (the
/// connection broke after the commit) is answered "not held" when made again, and its
/// outputs must then be kept, not cleaned up as a dropped run's. Output keys name the run,
/// so equal outputs are this run's.
async fn completed_already(
    ctx: &WorkerContext,
    lease: &Lease,
    outputs: &[crate::domain::OutputFile],
) -> anyhow::Result<bool> {
    let task = retry_transient(ctx.lease / 2, "task_for_job", || {
        ctx.db.task_for_job(lease.task_id)
    })
    .await?;
    Ok(task.is_some_and(|t| t.status == TaskStatus::Succeeded && t.outputs == outputs))
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

/// How long a worker waiting for scratch space waits before it looks again, unless a job of
/// its process ends first (space freed by other processes shows only in the free space).
const SCRATCH_RECHECK: Duration = Duration::from_secs(5);

/// Counts a worker in `reelforge_scratch_waiting` while it lives.
struct WaitingForScratch;

impl WaitingForScratch {
    fn start() -> Self {
        metrics::gauge!(crate::telemetry::SCRATCH_WAITING).increment(1.0);
        WaitingForScratch
    }
}

impl Drop for WaitingForScratch {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::SCRATCH_WAITING).decrement(1.0);
    }
}

/// How often a worker process says it is alive ([`heartbeat_loop`]), and how long after its
/// last beat it still counts as alive (a few beats may be late or lost).
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
pub const ALIVE_FOR: Duration = Duration::from_secs(20);
/// A worker not seen for this long is forgotten (it crashed; one that stops says so).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Say every [`BEAT_EVERY`] that this process's workers are alive, for the admin view;
/// when `stop` fires, say they are gone.
pub async fn heartbeat_loop(db: Db, beat: crate::db::WorkerBeat, stop: CancellationToken) {
    loop {
        if let Err(e) = db.beat_worker(&beat, FORGET_AFTER).await {
            tracing::warn!(error = %e, "could not record that this worker is alive");
        }
        tokio::select! {
            _ = tokio::time::sleep(BEAT_EVERY) => {}
            _ = stop.cancelled() => break,
        }
    }
    if let Err(e) = db.forget_worker(&beat.id).await {
        tracing::warn!(error = %e, "could not record that this worker stopped");
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
            Ok(Outcome::WaitingForScratch(short)) => {
                failures = 0;
                tracing::info!(
                    need = short.need,
                    free = short.free,
                    promised = short.promised,
                    "waiting for scratch space before claiming the next job"
                );
                let _waiting = WaitingForScratch::start();
                tokio::select! {
                    _ = ctx.scratch.wait_for_release(SCRATCH_RECHECK) => {}
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

    /// What `f` records, rendered as Prometheus text, through a recorder of its own (the
    /// process-wide one is shared by every test).
    fn recorded(f: impl FnOnce()) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, f);
        handle.render()
    }

    #[test]
    fn a_running_job_is_counted_until_it_ends_whatever_way() {
        let text = recorded(|| {
            let a = RunningJob::start();
            let b = RunningJob::start();
            drop(a);
            let _ = std::panic::catch_unwind(move || {
                let _b = b;
                panic!("a job that panics");
            });
            let _c = RunningJob::start();
        });
        // Three started, and each ended (one by a panic): none runs.
        assert!(text.contains("reelforge_jobs_running 0"), "{text}");
        let text = recorded(|| {
            let still = RunningJob::start();
            std::mem::forget(still);
        });
        assert!(text.contains("reelforge_jobs_running 1"), "{text}");
    }

    #[test]
    fn finished_runs_are_counted_by_profile_outcome_and_code() {
        let ok = || {
            Ok(JobOutput {
                outputs: vec![],
                result: None,
                input_seconds: Some(2.5),
            })
        };
        let failed = || {
            Err(JobError::Abort(TaskError::new(
                ErrorCode::InvalidMedia,
                "not a video",
            )))
        };
        let wall = Duration::from_millis(1250);
        let text = recorded(|| {
            RunFigures::of("convert", &ok(), wall).count(Some(TaskStatus::Succeeded));
            RunFigures::of("convert", &ok(), wall).count(Some(TaskStatus::Succeeded));
            RunFigures::of("convert", &failed(), wall).count(Some(TaskStatus::Failed));
            // A retry ends no task; a result that no longer counts is not counted.
            RunFigures::of("convert", &failed(), wall).count(Some(TaskStatus::Queued));
            RunFigures::of("idrl", &ok(), wall).count(None);
            RunFigures::of("idrl", &Err(JobError::Cancelled), wall)
                .count(Some(TaskStatus::Cancelled));
        });
        for line in [
            r#"reelforge_tasks_finished_total{profile="convert",outcome="succeeded",code=""} 2"#,
            r#"reelforge_tasks_finished_total{profile="convert",outcome="failed",code="invalid_media"} 1"#,
            r#"reelforge_tasks_finished_total{profile="idrl",outcome="cancelled",code=""} 1"#,
            r#"reelforge_media_milliseconds_total{profile="convert"} 5000"#,
            r#"reelforge_processing_milliseconds_total{profile="convert"} 2500"#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert_eq!(
            text.matches("reelforge_tasks_finished_total{").count(),
            3,
            "{text}"
        );
        assert!(
            !text.contains(r#"profile="idrl",outcome="succeeded""#),
            "{text}"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(5);
        assert_eq!(backoff(b, 1), Duration::from_secs(5));
        assert_eq!(backoff(b, 2), Duration::from_secs(10));
        assert_eq!(backoff(b, 3), Duration::from_secs(20));
        assert_eq!(backoff(b, 30), Duration::from_secs(300));
    }
}
