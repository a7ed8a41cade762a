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
//! Queries are checked at run time (`sqlx::query`), like the SQLite backend.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The LISTEN/NOTIFY channel of the queue.
pub const CHANNEL: &str = "reelforge_jobs";

/// Names of the unique constraints in `migrations/postgres/0001_init.sql`.
const USERNAME_UNIQUE: &str = "users_username_unique";
const EMAIL_UNIQUE: &str = "users_email_unique";

pub struct PgRepo {
    pool: PgPool,
    options: PgConnectOptions,
    /// Woken (one waiter per notification) by the listener task once it runs.
    wakeups: OnceCell<Arc<Notify>>,
    /// Stops the listener task when the repository is dropped.
    stop: CancellationToken,
}

impl Drop for PgRepo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> RepoResult<T> {
    serde_json::from_value(v).map_err(|e| RepoError::Corrupt(format!("{what}: {e}")))
}

fn count(what: &str, n: i32) -> RepoResult<u32> {
    u32::try_from(n).map_err(|_| RepoError::Corrupt(format!("{what} {n}")))
}

const TASK_COLUMNS: &str = "id, user_id, status, profile, source, input, input_key, stage, percent, \
     eta_seconds, outputs, error_code, error_message, attempts, commands, result, created_at, \
     started_at, finished_at";

fn task_from_row(row: &PgRow) -> RepoResult<TaskRecord> {
    let status: String = row.try_get("status")?;
    let stage: Option<String> = row.try_get("stage")?;
    let input: Option<serde_json::Value> = row.try_get("input")?;
    let error_code: Option<String> = row.try_get("error_code")?;
    let error_message: Option<String> = row.try_get("error_message")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(TaskRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| RepoError::Corrupt(format!("status {status:?}")))?,
        profile: json("profile", row.try_get("profile")?)?,
        source: json("source", row.try_get("source")?)?,
        input: input.map(|v| json("input", v)).transpose()?,
        input_key: row.try_get("input_key")?,
        stage: stage.as_deref().and_then(Stage::parse),
        percent: row.try_get("percent")?,
        eta_seconds: row.try_get("eta_seconds")?,
        outputs: json("outputs", row.try_get("outputs")?)?,
        error: error_code.map(|code| TaskError {
            code,
            message: error_message.unwrap_or_default(),
        }),
        // Like SQLite: a negative count reads as 0.
        attempts: u32::try_from(attempts).unwrap_or(0),
        commands: json("commands", row.try_get("commands")?)?,
        result: row.try_get("result")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn user_from_row(row: &PgRow) -> RepoResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Queue a wake-up for idle workers; delivered when the surrounding transaction commits.
async fn notify_job(tx: &mut sqlx::PgConnection, job: Uuid) -> RepoResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(job.to_string())
        .execute(tx)
        .await?;
    Ok(())
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
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            options,
            wakeups: OnceCell::new(),
            stop: CancellationToken::new(),
        })
    }

    /// Open the LISTEN connection (its own one-connection pool, so it never takes one of
    /// the queries') and forward every notification to one waiting worker.
    async fn start_listener(&self) -> Result<Arc<Notify>, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(self.options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(CHANNEL).await?;
        let notify = Arc::new(Notify::new());
        let wake = notify.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = listener.try_recv() => match r {
                        Ok(Some(_)) => wake.notify_one(),
                        // The connection dropped and was re-established: notifications may
                        // have been missed, so let a worker look.
                        Ok(None) => wake.notify_one(),
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
        Ok(notify)
    }

    async fn task_by_id(&self, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// End a running job held by `owner` and set the task's final fields, in one transaction.
    async fn finish(
        &self,
        job: &ClaimedJob,
        owner: &str,
        status: TaskStatus,
        outputs: Option<&[OutputFile]>,
        result: Option<&serde_json::Value>,
        error: Option<&TaskError>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, \
             last_error = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(error.map(|e| e.message.clone()))
        .bind(job.job_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE tasks SET status = $1, stage = NULL, eta_seconds = NULL, \
             percent = CASE WHEN $1 = 'succeeded' THEN 100 ELSE percent END, \
             outputs = COALESCE($2, outputs), result = $3, error_code = $4, error_message = $5, \
             finished_at = reelforge_now() \
             WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(outputs.map(Json))
        .bind(result.map(Json))
        .bind(error.map(|e| e.code.clone()))
        .bind(error.map(|e| e.message.clone()))
        .bind(job.task_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Put a running job held by `owner` back in the queue, due after `delay`; the task
    /// shows `queued` again. `last_error` replaces the job's note when given. A job due at
    /// once wakes idle workers.
    async fn requeue(
        &self,
        job: &ClaimedJob,
        owner: &str,
        delay: Duration,
        last_error: Option<&str>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', \
             run_at = reelforge_now() + $1 * interval '1 millisecond', lease_owner = NULL, \
             lease_expires_at = NULL, last_error = COALESCE($2, last_error) \
             WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(ms(delay))
        .bind(last_error)
        .bind(job.job_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL WHERE id = $1",
        )
        .bind(job.task_id)
        .execute(&mut *tx)
        .await?;
        if delay.is_zero() {
            notify_job(&mut tx, job.job_id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl UserRepo for PgRepo {
    #[tracing::instrument(skip_all, fields(username = %new.username))]
    async fn create_user(&self, new: NewUser) -> RepoResult<User> {
        let id = Uuid::now_v7();
        let r = sqlx::query(
            "INSERT INTO users (id, username, email, email_lower, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, reelforge_now()) RETURNING created_at",
        )
        .bind(id)
        .bind(new.username.as_str())
        .bind(new.email.as_str())
        .bind(new.email.normalized())
        .bind(&new.password_hash)
        .fetch_one(&self.pool)
        .await;
        match r {
            Ok(row) => Ok(User {
                id,
                username: new.username.as_str().to_string(),
                email: new.email.as_str().to_string(),
                disabled: false,
                created_at: row.try_get("created_at")?,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => match e.constraint() {
                Some(EMAIL_UNIQUE) => Err(RepoError::Conflict("email")),
                Some(USERNAME_UNIQUE) => Err(RepoError::Conflict("username")),
                _ => Err(sqlx::Error::Database(e).into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn user_for_login(&self, login: &str) -> RepoResult<Option<UserWithHash>> {
        let row = if login.contains('@') {
            sqlx::query("SELECT * FROM users WHERE email_lower = $1 OR username = $2 LIMIT 1")
                .bind(login.to_lowercase())
                .bind(login)
                .fetch_optional(&self.pool)
                .await?
        } else {
            sqlx::query("SELECT * FROM users WHERE username = $1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await?
        };
        row.map(|r| {
            Ok(UserWithHash {
                user: user_from_row(&r)?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> RepoResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> RepoResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_disabled(&self, username: &str, disabled: bool) -> RepoResult<bool> {
        let r = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(disabled)
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl TaskRepo for PgRepo {
    #[tracing::instrument(skip_all, fields(task_id = %new.id))]
    async fn create_task(&self, new: NewTask, max_attempts: u32) -> RepoResult<TaskRecord> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let job_id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        let created_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO tasks (id, user_id, status, profile, source, input_key, created_at) \
             VALUES ($1, $2, 'queued', $3, $4, $5, reelforge_now()) RETURNING created_at",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(Json(&new.profile))
        .bind(Json(&new.source))
        .bind(&new.input_key)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (id, task_id, kind, state, run_at, max_attempts, created_at) \
             VALUES ($1, $2, 'process', 'queued', $3, $4, $3)",
        )
        .bind(job_id)
        .bind(new.id)
        .bind(created_at)
        .bind(max_attempts)
        .execute(&mut *tx)
        .await?;
        notify_job(&mut tx, job_id).await?;
        tx.commit().await?;
        Ok(TaskRecord {
            id: new.id,
            user_id: new.user_id,
            status: TaskStatus::Queued,
            profile: new.profile,
            source: new.source,
            input: None,
            input_key: new.input_key,
            stage: None,
            percent: None,
            eta_seconds: None,
            outputs: vec![],
            error: None,
            attempts: 0,
            commands: vec![],
            result: None,
            created_at,
            started_at: None,
            finished_at: None,
        })
    }

    async fn get_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2"
        )))
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn list_tasks(&self, user: Uuid, q: &ListQuery) -> RepoResult<Vec<TaskRecord>> {
        let (cmp, order) = if q.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut n = 1;
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1");
        if q.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if q.after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id {cmp} ${n}"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY id {order} LIMIT ${n}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user);
        if let Some(s) = q.status {
            query = query.bind(s.as_str());
        }
        if let Some(after) = q.after {
            query = query.bind(after);
        }
        let rows = query.bind(i64::from(q.limit)).fetch_all(&self.pool).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn task_with_file(&self, user: Uuid, name: &str) -> RepoResult<Option<TaskRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t WHERE user_id = $1 AND ( \
               EXISTS (SELECT 1 FROM jsonb_array_elements(t.outputs) o WHERE o->>'name' = $2) \
               OR t.source->>'filename' = $2) \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(user)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn cancel_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<(TaskRecord, bool)>> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', stage = NULL, eta_seconds = NULL, \
             finished_at = reelforge_now() \
             WHERE id = $1 AND user_id = $2 AND status IN ('queued', 'running')",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            sqlx::query(
                "UPDATE jobs SET state = 'done', cancel_requested = true, lease_owner = NULL, \
                 lease_expires_at = NULL WHERE task_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let changed = updated.rows_affected() == 1;
        Ok(self.get_task(user, id).await?.map(|t| (t, changed)))
    }

    async fn retry_task(
        &self,
        user: Uuid,
        id: Uuid,
        max_attempts: u32,
    ) -> RepoResult<RetryOutcome> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET status = 'queued', stage = NULL, percent = NULL, eta_seconds = NULL, \
             error_code = NULL, error_message = NULL, finished_at = NULL, outputs = '[]', \
             result = NULL \
             WHERE id = $1 AND user_id = $2 AND status IN ('failed', 'cancelled')",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            let job: Option<Uuid> = sqlx::query_scalar(
                "UPDATE jobs SET state = 'queued', run_at = reelforge_now(), attempts = 0, \
                 max_attempts = $1, cancel_requested = false, lease_owner = NULL, \
                 lease_expires_at = NULL, last_error = NULL WHERE task_id = $2 RETURNING id",
            )
            .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(job) = job {
                notify_job(&mut tx, job).await?;
            }
        }
        tx.commit().await?;
        match self.get_task(user, id).await? {
            None => Ok(RetryOutcome::NotFound),
            Some(t) if updated.rows_affected() == 1 => Ok(RetryOutcome::Requeued(Box::new(t))),
            Some(t) => Ok(RetryOutcome::NotRetryable(t.status)),
        }
    }

    async fn delete_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING {TASK_COLUMNS}"
        )))
        .bind(id)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            // ON DELETE CASCADE covers this; explicit, like the SQLite backend.
            sqlx::query("DELETE FROM jobs WHERE task_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn count_by_status(&self) -> RepoResult<Vec<(TaskStatus, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(TaskStatus, i64)> = TaskStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for r in rows {
            let s: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            if let Some(slot) = out.iter_mut().find(|(st, _)| st.as_str() == s) {
                slot.1 = n;
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> RepoResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for PgRepo {
    async fn claim(&self, owner: &str, lease: Duration) -> RepoResult<Option<ClaimedJob>> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: a row another claimer is taking right now is passed over, never
        // waited on and never handed out twice.
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_owner = $1, \
               lease_expires_at = reelforge_now() + $2 * interval '1 millisecond', \
               attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs \
                          WHERE (state = 'queued' AND run_at <= reelforge_now()) \
                             OR (state = 'running' AND lease_expires_at < reelforge_now()) \
                          ORDER BY run_at, id \
                          FOR UPDATE SKIP LOCKED LIMIT 1) \
             RETURNING id, task_id, attempts, max_attempts",
        )
        .bind(owner)
        .bind(ms(lease))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job_id: Uuid = row.try_get("id")?;
        let task_id: Uuid = row
            .try_get::<Option<Uuid>, _>("task_id")?
            .ok_or_else(|| RepoError::Corrupt(format!("job {job_id} has no task")))?;
        let run: i32 = sqlx::query_scalar(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, \
               started_at = COALESCE(started_at, reelforge_now()), stage = NULL, percent = 0, \
               eta_seconds = NULL \
             WHERE id = $1 RETURNING attempts",
        )
        .bind(task_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ClaimedJob {
            job_id,
            task_id,
            attempt: count("attempts", row.try_get("attempts")?)?,
            max_attempts: count("max_attempts", row.try_get("max_attempts")?)?,
            run: count("run", run)?,
        }))
    }

    async fn task_for_job(&self, task_id: Uuid) -> RepoResult<Option<TaskRecord>> {
        self.task_by_id(task_id).await
    }

    async fn heartbeat(&self, job: Uuid, owner: &str, lease: Duration) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_expires_at = reelforge_now() + $1 * interval '1 millisecond' \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(ms(lease))
        .bind(job)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_progress(
        &self,
        job: &ClaimedJob,
        owner: &str,
        stage: Stage,
        percent: f64,
        eta_seconds: Option<f64>,
    ) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE tasks SET stage = $1, percent = GREATEST(COALESCE(percent, 0), $2), \
             eta_seconds = $3 \
             WHERE id = $4 AND status = 'running' AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = $5 AND lease_owner = $6 AND state = 'running')",
        )
        .bind(stage.as_str())
        .bind(percent.clamp(0.0, 100.0))
        .bind(eta_seconds)
        .bind(job.task_id)
        .bind(job.job_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_input(
        &self,
        job: &ClaimedJob,
        owner: &str,
        info: &MediaInfo,
        input_key: &str,
    ) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE tasks SET input = $1, input_key = $2 \
             WHERE id = $3 AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = $4 AND lease_owner = $5 AND state = 'running')",
        )
        .bind(Json(info))
        .bind(input_key)
        .bind(job.task_id)
        .bind(job.job_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_commands(
        &self,
        job: &ClaimedJob,
        owner: &str,
        commands: &[String],
    ) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE tasks SET commands = $1 \
             WHERE id = $2 AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = $3 AND lease_owner = $4 AND state = 'running')",
        )
        .bind(Json(commands))
        .bind(job.task_id)
        .bind(job.job_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn complete(
        &self,
        job: &ClaimedJob,
        owner: &str,
        outputs: &[OutputFile],
        result: Option<&serde_json::Value>,
    ) -> RepoResult<bool> {
        self.finish(
            job,
            owner,
            TaskStatus::Succeeded,
            Some(outputs),
            result,
            None,
        )
        .await
    }

    async fn retry_later(
        &self,
        job: &ClaimedJob,
        owner: &str,
        error: &TaskError,
        delay: Duration,
    ) -> RepoResult<bool> {
        let last_error = format!("{}: {}", error.code, error.message);
        self.requeue(job, owner, delay, Some(&last_error)).await
    }

    async fn fail(&self, job: &ClaimedJob, owner: &str, error: &TaskError) -> RepoResult<bool> {
        self.finish(job, owner, TaskStatus::Failed, None, None, Some(error))
            .await
    }

    async fn release(&self, job: &ClaimedJob, owner: &str) -> RepoResult<bool> {
        self.requeue(job, owner, Duration::ZERO, None).await
    }

    /// Unlike SQLite, other live processes may hold leases here: only jobs whose lease has
    /// EXPIRED are re-queued (they were claimable anyway; this makes their tasks read
    /// `queued` again at once).
    async fn recover_running(&self) -> RepoResult<u64> {
        let mut tx = self.pool.begin().await?;
        let jobs: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE jobs SET state = 'queued', run_at = reelforge_now(), lease_owner = NULL, \
             lease_expires_at = NULL \
             WHERE state = 'running' AND lease_expires_at < reelforge_now() \
             RETURNING id, task_id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let tasks: Vec<Uuid> = jobs.iter().filter_map(|(_, t)| *t).collect();
        sqlx::query(
            "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL \
             WHERE status = 'running' AND id = ANY($1)",
        )
        .bind(&tasks)
        .execute(&mut *tx)
        .await?;
        for (job, _) in &jobs {
            notify_job(&mut tx, *job).await?;
        }
        tx.commit().await?;
        Ok(jobs.len() as u64)
    }

    async fn next_due_in(&self) -> RepoResult<Option<Duration>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM MIN(run_at) - reelforge_now()) * 1000)::bigint \
             FROM jobs WHERE state = 'queued'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(|t| Duration::from_millis(u64::try_from(t).unwrap_or(0))))
    }

    async fn wait_for_job(&self, timeout: Duration) -> bool {
        let mut fresh = false;
        tokio::time::timeout(timeout, async {
            let init = self.wakeups.get_or_try_init(|| {
                fresh = true;
                self.start_listener()
            });
            match init.await {
                // Notifications sent before LISTEN took effect were missed: look now.
                Ok(_) if fresh => {}
                Ok(notify) => notify.notified().await,
                Err(e) => {
                    tracing::debug!(error = %e, "queue listener unavailable; polling");
                    std::future::pending::<()>().await
                }
            }
        })
        .await
        .is_ok()
    }
}
