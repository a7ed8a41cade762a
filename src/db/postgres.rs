//! PostgreSQL backend (scale-out mode): many API and worker processes share one database.
//!
//! Same rules as the SQLite backend (`sqlite.rs`), with native types: uuid ids, timestamptz
//! times (from the server's clock, truncated to milliseconds by `reelforge_now()` so records
//! read back exactly like SQLite's), jsonb documents. Claims lock one due row with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on or share a job. Enqueues
//! (create, retry, release, recovery) `NOTIFY reelforge_jobs` inside their transaction, and
//! `wait_for_job` wakes on it through one `LISTEN` connection per process (started by the
//! first idle worker); the worker loop's timeout stays the polling fallback, since
//! notifications sent while the listener is reconnecting are lost.
//!
//! Lock order: a transaction that writes a task and its job locks the job row first, then
//! the task. Workers do so by their nature (a claim locks the job it picks, then starts its
//! task; finish, retry_later and release write the job, then the task); the API's cancel,
//! retry and delete take the job's lock first on purpose (`lock_job_of_task`), because in the
//! other order a worker and the API each wait for the other until the deadlock detector
//! aborts one (after `deadlock_timeout`: a delete answered 500 after more than a second).
//!
//! The statements themselves live in the `reelforge-db-postgres` crate (`crates/`), checked
//! at compile time against `migrations/postgres`; this module holds the transactions, the
//! listener, and maps rows to domain types.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reelforge_db_postgres::{self as sql, CHANNEL};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, OnceCell, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cache::Change;
use super::*;
use crate::domain::notification::Event;

mod admin;
mod api_keys;
mod lifecycle;
mod notify;

pub struct PgRepo {
    pool: PgPool,
    options: PgConnectOptions,
    outbox: OutboxOptions,
    /// Woken (one waiter per notification) by the listener task once it runs.
    wakeups: OnceCell<Arc<Wakeups>>,
    /// Stops the listener task when the repository is dropped.
    stop: CancellationToken,
}

impl Drop for PgRepo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the listener wakes: idle workers (a job was queued), idle deliverers (a message),
/// and the read caches that follow the change feed.
struct Wakeups {
    jobs: Notify,
    notifications: Notify,
    changes: broadcast::Sender<Change>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            jobs: Notify::new(),
            notifications: Notify::new(),
            // A cache that falls this far behind drops everything (`Lagged`).
            changes: broadcast::channel(1024).0,
        }
    }
}

/// A change feed payload (`0012_change_feed.sql`): `task <id> <user>`, `user <id>`,
/// `keys <user>`. Anything else reads as "something changed".
fn parse_change(payload: &str) -> Change {
    let words: Vec<&str> = payload.split(' ').collect();
    let id = |i: usize| words.get(i).and_then(|w| Uuid::parse_str(w).ok());
    match (words.first().copied(), id(1)) {
        (Some("task"), Some(task)) => Change::Task {
            id: task,
            user: id(2),
        },
        (Some("user"), Some(user)) => Change::User(user),
        (Some("keys"), Some(user)) => Change::Keys(user),
        _ => Change::Everything,
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> RepoResult<T> {
    serde_json::from_value(v).map_err(|e| RepoError::Corrupt(format!("{what}: {e}")))
}

fn count(what: &str, n: i32) -> RepoResult<u32> {
    u32::try_from(n).map_err(|_| RepoError::Corrupt(format!("{what} {n}")))
}

/// The task and its queued job (with its `NOTIFY`), inside the caller's transaction.
async fn insert_task_and_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    new: NewTask,
    max_attempts: u32,
) -> RepoResult<TaskRecord> {
    let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
    let job_id = Uuid::now_v7();
    let created_at = sql::insert_task(
        &mut **tx,
        new.id,
        new.user_id,
        &new.profile,
        &new.source,
        new.input_key.as_deref(),
        new.webhook_url.as_deref(),
        new.keep_seconds.map(seconds_i64),
    )
    .await?;
    sql::insert_job(&mut **tx, job_id, new.id, created_at, max_attempts).await?;
    sql::notify_job(&mut **tx, job_id).await?;
    Ok(new.queued(created_at))
}

fn task_from_row(row: sql::TaskRow) -> RepoResult<TaskRecord> {
    Ok(TaskRecord {
        id: row.id,
        user_id: row.user_id,
        status: TaskStatus::parse(&row.status)
            .ok_or_else(|| RepoError::Corrupt(format!("status {:?}", row.status)))?,
        profile: json("profile", row.profile)?,
        source: json("source", row.source)?,
        input: row.input.map(|v| json("input", v)).transpose()?,
        input_key: row.input_key,
        stage: row.stage.as_deref().and_then(Stage::parse),
        percent: row.percent,
        eta_seconds: row.eta_seconds,
        outputs: json("outputs", row.outputs)?,
        error: row.error_code.map(|code| TaskError {
            code,
            message: row.error_message.unwrap_or_default(),
        }),
        // Like SQLite: a negative count reads as 0.
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        commands: json("commands", row.commands)?,
        result: row.result,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        next_attempt_at: row.next_attempt_at,
        webhook_url: row.webhook_url,
        notifications: vec![],
        keep_seconds: row.keep_seconds.and_then(|s| u64::try_from(s).ok()),
        files_expired_at: row.files_expired_at,
    })
}

fn opt_task(row: Option<sql::TaskRow>) -> RepoResult<Option<TaskRecord>> {
    row.map(task_from_row).transpose()
}

fn user_from_row(row: sql::UserRow) -> UserWithHash {
    UserWithHash {
        user: User {
            id: row.id,
            username: row.username,
            email: row.email,
            disabled: row.disabled,
            admin: row.admin,
            created_at: row.created_at,
            password_version: u32::try_from(row.password_version).unwrap_or(u32::MAX),
        },
        password_hash: row.password_hash,
    }
}

impl PgRepo {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("reelforge");
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        // The migrator holds an advisory lock, so processes starting together apply each
        // migration once.
        sql::MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            options,
            outbox: OutboxOptions::default(),
            wakeups: OnceCell::new(),
            stop: CancellationToken::new(),
        })
    }

    pub fn with_outbox(mut self, outbox: OutboxOptions) -> Self {
        self.outbox = outbox;
        self
    }

    /// Wait at most `timeout` for the listener to wake `which`; `true` when woken.
    async fn wait_for(&self, timeout: Duration, which: fn(&Wakeups) -> &Notify) -> bool {
        let mut fresh = false;
        tokio::time::timeout(timeout, async {
            let init = self.wakeups.get_or_try_init(|| {
                fresh = true;
                self.start_listener()
            });
            match init.await {
                // Notifications sent before LISTEN took effect were missed: look now.
                Ok(_) if fresh => {}
                Ok(wakeups) => which(wakeups).notified().await,
                Err(e) => {
                    tracing::debug!(error = %e, "queue listener unavailable; polling");
                    std::future::pending::<()>().await
                }
            }
        })
        .await
        .is_ok()
    }

    /// Open the LISTEN connection (its own one-connection pool, so it never takes one of
    /// the queries') and forward every notification to one waiting worker or deliverer.
    async fn start_listener(&self) -> Result<Arc<Wakeups>, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(self.options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener
            .listen_all([CHANNEL, sql::NOTIFICATIONS_CHANNEL, sql::CHANGES_CHANNEL])
            .await?;
        let wakeups = Arc::new(Wakeups::default());
        let wake = wakeups.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = listener.try_recv() => match r {
                        Ok(Some(n)) if n.channel() == CHANNEL => wake.jobs.notify_one(),
                        Ok(Some(n)) if n.channel() == sql::CHANGES_CHANNEL => {
                            // No cache listening: nothing to do.
                            let _ = wake.changes.send(parse_change(n.payload()));
                        }
                        Ok(Some(_)) => wake.notifications.notify_one(),
                        // The connection dropped and was re-established: notifications may
                        // have been missed, so let a worker and a deliverer look, and the
                        // caches forget.
                        Ok(None) => {
                            wake.jobs.notify_one();
                            wake.notifications.notify_one();
                            let _ = wake.changes.send(Change::Everything);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "queue listener failed; retrying");
                            tokio::select! {
                                _ = stop.cancelled() => break,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    },
                }
            }
            drop(listener);
            pool.close().await;
        });
        Ok(wakeups)
    }
}

#[async_trait]
impl UserRepo for PgRepo {
    #[tracing::instrument(skip_all, fields(username = %new.username))]
    async fn create_user(&self, new: NewUser) -> RepoResult<User> {
        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        let r = sql::insert_user(
            &mut *tx,
            id,
            new.username.as_str(),
            new.email.as_str(),
            &new.email.normalized(),
            &new.password_hash,
            new.admin,
        )
        .await;
        let created_at = match r {
            Ok(created_at) => created_at,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(match e.constraint() {
                    Some(sql::EMAIL_UNIQUE) => RepoError::Conflict("email"),
                    Some(sql::USERNAME_UNIQUE) => RepoError::Conflict("username"),
                    _ => sqlx::Error::Database(e).into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(code_hash) = &new.invite_hash
            && sql::spend_invite(&mut *tx, code_hash, id).await? != 1
        {
            return Err(RepoError::InviteNotLive);
        }
        tx.commit().await?;
        Ok(User {
            id,
            username: new.username.as_str().to_string(),
            email: new.email.as_str().to_string(),
            disabled: false,
            admin: new.admin,
            created_at,
            password_version: 0,
        })
    }

    async fn user_for_login(&self, login: &str) -> RepoResult<Option<UserWithHash>> {
        let row = if login.contains('@') {
            sql::user_by_email_or_username(&self.pool, &login.to_lowercase(), login).await?
        } else {
            sql::user_by_username(&self.pool, login).await?
        };
        Ok(row.map(user_from_row))
    }

    async fn user_by_id(&self, id: Uuid) -> RepoResult<Option<User>> {
        let row = sql::user_by_id(&self.pool, id).await?;
        Ok(row.map(|r| user_from_row(r).user))
    }

    async fn list_users(&self) -> RepoResult<Vec<User>> {
        let rows = sql::list_users(&self.pool).await?;
        Ok(rows.into_iter().map(|r| user_from_row(r).user).collect())
    }

    async fn set_user_disabled(&self, username: &str, disabled: bool) -> RepoResult<bool> {
        Ok(sql::set_user_disabled(&self.pool, username, disabled).await? == 1)
    }
}

#[async_trait]
impl TaskRepo for PgRepo {
    #[tracing::instrument(skip_all, fields(task_id = %new.id))]
    async fn create_task(&self, new: NewTask, max_attempts: u32) -> RepoResult<TaskRecord> {
        let mut tx = self.pool.begin().await?;
        let task = insert_task_and_job(&mut tx, new, max_attempts).await?;
        tx.commit().await?;
        Ok(task)
    }

    async fn get_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let task = opt_task(sql::task_of_user(&self.pool, id, user).await?)?;
        Ok(self
            .with_notifications(task.into_iter().collect())
            .await?
            .pop())
    }

    async fn list_tasks(&self, user: Uuid, q: &ListQuery) -> RepoResult<Vec<TaskRecord>> {
        let status = q.status.map(|s| s.as_str());
        let limit = i64::from(q.limit);
        let rows = if q.descending {
            let before = q.after.unwrap_or(Uuid::max());
            sql::tasks_descending(&self.pool, user, status, before, limit).await?
        } else {
            let after = q.after.unwrap_or(Uuid::nil());
            sql::tasks_ascending(&self.pool, user, status, after, limit).await?
        };
        let tasks = rows
            .into_iter()
            .map(task_from_row)
            .collect::<RepoResult<_>>()?;
        self.with_notifications(tasks).await
    }

    async fn task_with_file(&self, user: Uuid, name: &str) -> RepoResult<Option<TaskRecord>> {
        opt_task(sql::task_with_file(&self.pool, user, name).await?)
    }

    async fn cancel_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<(TaskRecord, bool)>> {
        let mut tx = self.pool.begin().await?;
        // The job before the task, as workers lock them (see the module's comment).
        sql::lock_job_of_task(&mut *tx, id, user).await?;
        let changed = sql::cancel_task(&mut *tx, id, user).await? == 1;
        if changed {
            sql::cancel_job_of_task(&mut *tx, id).await?;
            notify::write_outbox(&mut tx, self.outbox, id, Event::TaskCancelled).await?;
        }
        tx.commit().await?;
        Ok(self.get_task(user, id).await?.map(|t| (t, changed)))
    }

    async fn retry_task(
        &self,
        user: Uuid,
        id: Uuid,
        max_attempts: u32,
    ) -> RepoResult<RetryOutcome> {
        let mut tx = self.pool.begin().await?;
        // The job before the task: a worker cannot hold the job of a failed or cancelled
        // task, but a delete of it can (see the module's comment).
        sql::lock_job_of_task(&mut *tx, id, user).await?;
        let requeued = sql::requeue_task_for_retry(&mut *tx, id, user).await? == 1;
        if requeued {
            let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
            if let Some(job) = sql::reset_job_of_task(&mut *tx, id, max_attempts).await? {
                sql::notify_job(&mut *tx, job).await?;
            }
        }
        tx.commit().await?;
        match self.get_task(user, id).await? {
            None => Ok(RetryOutcome::NotFound),
            Some(t) if requeued => Ok(RetryOutcome::Requeued(Box::new(t))),
            Some(t) => Ok(RetryOutcome::NotRetryable(t.status)),
        }
    }

    async fn delete_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let mut tx = self.pool.begin().await?;
        // The job before the task (the delete cascades to it; see the module's comment): a
        // claim under way is waited for, and a claim after this passes the job over.
        sql::lock_job_of_task(&mut *tx, id, user).await?;
        let row = sql::delete_task(&mut *tx, id, user).await?;
        if row.is_some() {
            // ON DELETE CASCADE covers these; explicit, like the SQLite backend.
            sql::delete_job_of_task(&mut *tx, id).await?;
            sql::delete_shares_of_task(&mut *tx, id).await?;
        }
        tx.commit().await?;
        opt_task(row)
    }

    async fn count_by_status(&self) -> RepoResult<Vec<(TaskStatus, i64)>> {
        let rows = sql::count_by_status(&self.pool).await?;
        Ok(counts(rows.into_iter().map(|r| (r.status, r.n))))
    }

    async fn oldest_due_job(&self, now: DateTime<Utc>) -> RepoResult<Option<DateTime<Utc>>> {
        Ok(sql::oldest_due_job(&self.pool, now).await?)
    }

    async fn ping(&self) -> RepoResult<()> {
        Ok(sql::ping(&self.pool).await?)
    }

    async fn changes(&self) -> RepoResult<Option<broadcast::Receiver<Change>>> {
        let wakeups = self
            .wakeups
            .get_or_try_init(|| self.start_listener())
            .await?;
        Ok(Some(wakeups.changes.subscribe()))
    }
}

#[async_trait]
impl JobQueue for PgRepo {
    async fn finish(
        &self,
        lease: &Lease,
        status: TaskStatus,
        outputs: Option<&[OutputFile]>,
        result: Option<&serde_json::Value>,
        error: Option<&TaskError>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let message = error.map(|e| e.message.as_str());
        if sql::finish_job(&mut *tx, lease.job_id, &lease.owner, message).await? != 1 {
            return Ok(false);
        }
        sql::finish_task(
            &mut *tx,
            lease.task_id,
            status.as_str(),
            outputs.as_ref(),
            result,
            error.map(|e| e.code.as_str()),
            message,
        )
        .await?;
        if let Some(event) = Event::of_status(status) {
            notify::write_outbox(&mut tx, self.outbox, lease.task_id, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A job due at once is announced with `NOTIFY` to idle workers of every process.
    async fn retry_later(
        &self,
        lease: &Lease,
        error: &TaskError,
        delay: Duration,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let (job_id, delay_ms, note) = (lease.job_id, ms(delay), job_note(error));
        if sql::requeue_job(&mut *tx, job_id, &lease.owner, delay_ms, Some(&note)).await? != 1 {
            return Ok(false);
        }
        sql::task_waits_for_retry(
            &mut *tx,
            lease.task_id,
            &error.code,
            &error.message,
            delay_ms,
        )
        .await?;
        if delay.is_zero() {
            sql::notify_job(&mut *tx, job_id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self, lease: &Lease) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        if sql::release_job(&mut *tx, lease.job_id, &lease.owner).await? != 1 {
            return Ok(false);
        }
        let attempts = shown_attempts(lease.attempt.saturating_sub(1), lease.max_attempts);
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        sql::release_task(&mut *tx, lease.task_id, attempts).await?;
        sql::notify_job(&mut *tx, lease.job_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim(&self, owner: &str, lease: Duration) -> RepoResult<Option<Lease>> {
        let mut tx = self.pool.begin().await?;
        if let Some(held) = sql::held_job(&mut *tx, owner).await? {
            // This claim's reply was lost before: the same job, the same attempt.
            sql::heartbeat(&mut *tx, held.id, owner, ms(lease)).await?;
            tx.commit().await?;
            return Ok(Some(Lease {
                job_id: held.id,
                task_id: held.task_id,
                owner: owner.to_string(),
                attempt: count("attempts", held.attempts)?,
                max_attempts: count("max_attempts", held.max_attempts)?,
                run: count("run", held.runs)?,
            }));
        }
        let Some(row) = sql::claim_job(&mut *tx, owner, ms(lease)).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let task_id = row
            .task_id
            .ok_or_else(|| RepoError::Corrupt(format!("job {} has no task", row.id)))?;
        let attempt = count("attempts", row.attempts)?;
        let max_attempts = count("max_attempts", row.max_attempts)?;
        let shown = i32::try_from(shown_attempts(attempt, max_attempts)).unwrap_or(i32::MAX);
        let run = sql::start_task(&mut *tx, task_id, shown).await?;
        notify::write_outbox(&mut tx, self.outbox, task_id, Event::TaskStarted).await?;
        tx.commit().await?;
        Ok(Some(Lease {
            job_id: row.id,
            task_id,
            owner: owner.to_string(),
            attempt,
            max_attempts,
            run: count("run", run)?,
        }))
    }

    async fn task_for_job(&self, task_id: Uuid) -> RepoResult<Option<TaskRecord>> {
        opt_task(sql::task_by_id(&self.pool, task_id).await?)
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> RepoResult<bool> {
        let n = sql::heartbeat(&self.pool, lease.job_id, &lease.owner, ms(duration)).await?;
        Ok(n == 1)
    }

    async fn set_progress(
        &self,
        lease: &Lease,
        stage: Stage,
        percent: f64,
        eta_seconds: Option<f64>,
    ) -> RepoResult<bool> {
        let n = sql::set_progress(
            &self.pool,
            lease.task_id,
            lease.job_id,
            &lease.owner,
            stage.as_str(),
            percent.clamp(0.0, 100.0),
            eta_seconds,
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_input(
        &self,
        lease: &Lease,
        info: &MediaInfo,
        input_key: &str,
    ) -> RepoResult<bool> {
        let n = sql::set_input(
            &self.pool,
            lease.task_id,
            lease.job_id,
            &lease.owner,
            info,
            input_key,
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_commands(&self, lease: &Lease, commands: &[String]) -> RepoResult<bool> {
        let n = sql::set_commands(
            &self.pool,
            lease.task_id,
            lease.job_id,
            &lease.owner,
            commands,
        )
        .await?;
        Ok(n == 1)
    }

    /// Unlike SQLite, other live processes may hold leases here: only jobs whose lease has
    /// EXPIRED are re-queued (they were claimable anyway; this makes their tasks read
    /// `queued` again at once).
    async fn recover_running(&self) -> RepoResult<u64> {
        let mut tx = self.pool.begin().await?;
        let jobs = sql::requeue_expired_jobs(&mut *tx).await?;
        let tasks: Vec<Uuid> = jobs.iter().filter_map(|j| j.task_id).collect();
        sql::requeue_running_tasks(&mut *tx, &tasks).await?;
        for job in &jobs {
            sql::notify_job(&mut *tx, job.id).await?;
        }
        tx.commit().await?;
        Ok(jobs.len() as u64)
    }

    async fn next_due_in(&self) -> RepoResult<Option<Duration>> {
        let next = sql::next_due_in_ms(&self.pool).await?;
        Ok(next.map(|t| Duration::from_millis(u64::try_from(t).unwrap_or(0))))
    }

    async fn next_job(&self) -> RepoResult<Option<NextJob>> {
        let Some(row) = sql::next_job(&self.pool).await? else {
            return Ok(None);
        };
        Ok(Some(NextJob {
            task_id: row.task_id,
            profile: json("profile", row.profile)?,
            input_bytes: row.input_bytes.and_then(|n| u64::try_from(n).ok()),
        }))
    }

    async fn wait_for_job(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |w| &w.jobs).await
    }
}

fn upload_from_row(row: sql::UploadRow) -> RepoResult<UploadRecord> {
    let size = |what: &str, n: i64| {
        u64::try_from(n).map_err(|_| RepoError::Corrupt(format!("upload {what} {n}")))
    };
    Ok(UploadRecord {
        id: row.id,
        user_id: row.user_id,
        length: size("length", row.length)?,
        offset: size("offset", row.offset_bytes)?,
        metadata: json("upload metadata", row.metadata)?,
        storage_key: row.storage_key,
        parts: PartsState {
            part_size: size("part size", row.part_size)?,
            multipart_id: row.multipart_id,
            etags: json("upload parts", row.parts)?,
            staged: size("staged bytes", row.staged_bytes)?,
        },
        task_id: row.task_id,
        locked_until: row.lock_until,
        created_at: row.created_at,
        expires_at: row.expires_at,
        completed_at: row.completed_at,
    })
}

/// A byte count as PostgreSQL stores it (`bigint`).
fn int(n: u64) -> RepoResult<i64> {
    i64::try_from(n).map_err(|_| RepoError::Corrupt(format!("size {n} out of range")))
}

#[async_trait]
impl UploadRepo for PgRepo {
    async fn create_upload(&self, new: NewUpload) -> RepoResult<UploadRecord> {
        sql::insert_upload(
            &self.pool,
            new.id,
            new.user_id,
            int(new.length)?,
            &new.metadata,
            &new.storage_key,
            int(new.parts.part_size)?,
            new.parts.multipart_id.as_deref(),
            new.created_at,
            new.expires_at,
        )
        .await?;
        Ok(UploadRecord {
            id: new.id,
            user_id: new.user_id,
            length: new.length,
            offset: 0,
            metadata: new.metadata,
            storage_key: new.storage_key,
            parts: new.parts,
            task_id: None,
            locked_until: None,
            created_at: new.created_at,
            expires_at: new.expires_at,
            completed_at: None,
        })
    }

    async fn get_upload(&self, user: Uuid, id: Uuid) -> RepoResult<Option<UploadRecord>> {
        let row = sql::upload_of_user(&self.pool, id, user).await?;
        row.map(upload_from_row).transpose()
    }

    async fn lock_upload(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<Option<UploadRecord>> {
        let row = sql::lock_upload(&self.pool, id, owner, now, until).await?;
        row.map(upload_from_row).transpose()
    }

    async fn renew_upload_lock(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Ok(sql::renew_upload_lock(&self.pool, id, owner, until).await? == 1)
    }

    async fn save_upload(&self, id: Uuid, owner: &str, p: &UploadProgress) -> RepoResult<bool> {
        let n = sql::save_upload(
            &self.pool,
            id,
            owner,
            int(p.offset)?,
            p.parts.multipart_id.as_deref(),
            &p.parts.etags,
            int(p.parts.staged)?,
            p.expires_at,
            p.completed_at,
        )
        .await?;
        Ok(n == 1)
    }

    async fn unlock_upload(&self, id: Uuid, owner: &str) -> RepoResult<()> {
        sql::unlock_upload(&self.pool, id, owner).await?;
        Ok(())
    }

    async fn delete_locked_upload(&self, id: Uuid, owner: &str) -> RepoResult<bool> {
        Ok(sql::delete_locked_upload(&self.pool, id, owner).await? == 1)
    }

    async fn create_task_from_upload(
        &self,
        new: NewTask,
        max_attempts: u32,
    ) -> RepoResult<Option<TaskRecord>> {
        let mut tx = self.pool.begin().await?;
        if sql::use_upload_for_task(&mut *tx, new.id, new.user_id).await? != 1 {
            return Ok(None); // dropping `tx` rolls back
        }
        let task = insert_task_and_job(&mut tx, new, max_attempts).await?;
        tx.commit().await?;
        Ok(Some(task))
    }

    async fn expired_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> RepoResult<Vec<UploadRecord>> {
        let rows = sql::expired_uploads(&self.pool, now, i64::from(limit)).await?;
        rows.into_iter().map(upload_from_row).collect()
    }
}

fn session_from_row(row: sql::SessionRow) -> Session {
    Session {
        id: row.id,
        user_id: row.user_id,
        csrf_token: row.csrf_token,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        expires_at: row.expires_at,
    }
}

fn share_from_row(row: sql::ShareRow) -> Share {
    Share {
        id: row.id,
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

#[async_trait]
impl SessionRepo for PgRepo {
    async fn create_session(
        &self,
        user: Uuid,
        token_hash: &str,
        csrf_token: &str,
        timeouts: SessionTimeouts,
    ) -> RepoResult<Session> {
        sql::delete_expired_sessions(&self.pool, ms(timeouts.idle)).await?;
        let id = Uuid::now_v7();
        let row = sql::insert_session(
            &self.pool,
            id,
            user,
            token_hash,
            csrf_token,
            ms(timeouts.absolute),
        )
        .await?;
        Ok(session_from_row(row))
    }

    async fn live_session(&self, token_hash: &str, idle: Duration) -> RepoResult<Option<Session>> {
        let Some(row) = sql::live_session(&self.pool, token_hash, ms(idle)).await? else {
            return Ok(None);
        };
        let mut session = session_from_row(row);
        if let Some(seen) =
            sql::touch_session(&self.pool, session.id, ms(SESSION_TOUCH_EVERY)).await?
        {
            session.last_seen_at = seen;
        }
        Ok(Some(session))
    }

    async fn delete_session(&self, token_hash: &str) -> RepoResult<bool> {
        Ok(sql::delete_session(&self.pool, token_hash).await? == 1)
    }

    async fn change_password(&self, user: Uuid, password_hash: &str) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        if sql::set_password_hash(&mut *tx, user, password_hash).await? != 1 {
            return Ok(false);
        }
        sql::delete_sessions_of_user(&mut *tx, user).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_expired_sessions(&self, idle: Duration) -> RepoResult<u64> {
        Ok(sql::delete_expired_sessions(&self.pool, ms(idle)).await?)
    }
}

#[async_trait]
impl ShareRepo for PgRepo {
    async fn create_share(
        &self,
        user: Uuid,
        task: Uuid,
        token_hash: &str,
        lifetime: Duration,
    ) -> RepoResult<Option<Share>> {
        sql::delete_expired_shares(&self.pool).await?;
        let row = sql::insert_share(
            &self.pool,
            Uuid::now_v7(),
            token_hash,
            ms(lifetime),
            task,
            user,
        )
        .await?;
        Ok(row.map(share_from_row))
    }

    async fn list_shares(&self, user: Uuid, task: Uuid) -> RepoResult<Vec<Share>> {
        let rows = sql::shares_of_task(&self.pool, task, user).await?;
        Ok(rows.into_iter().map(share_from_row).collect())
    }

    async fn delete_share(&self, user: Uuid, task: Uuid, share: Uuid) -> RepoResult<bool> {
        Ok(sql::delete_share(&self.pool, share, task, user).await? == 1)
    }

    async fn shared_task(&self, token_hash: &str) -> RepoResult<Option<TaskRecord>> {
        let Some(row) = sql::live_share(&self.pool, token_hash).await? else {
            return Ok(None);
        };
        self.get_task(row.user_id, row.task_id).await
    }
}
