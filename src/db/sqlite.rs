//! SQLite backend (embedded mode): one file in WAL mode. Claims are a single
//! `UPDATE … RETURNING` inside a short `BEGIN IMMEDIATE` transaction.
//!
//! The statements themselves live in the `reelforge-db-sqlite` crate (`crates/`), checked
//! at compile time against `migrations/sqlite`; this module holds the transactions and
//! maps their rows (text ids and JSON, integer millisecond times) to domain types.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reelforge_db_sqlite as sql;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use uuid::Uuid;

use super::*;
use crate::domain::notification::Event;

mod admin;
mod api_keys;
mod lifecycle;
mod notify;

pub struct SqliteRepo {
    pool: SqlitePool,
    outbox: OutboxOptions,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn time(ms: i64) -> RepoResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| RepoError::Corrupt(format!("timestamp {ms}")))
}

fn opt_time(ms: Option<i64>) -> RepoResult<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

fn uuid(s: &str) -> RepoResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| RepoError::Corrupt(format!("id {s:?}")))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> RepoResult<T> {
    serde_json::from_str(s).map_err(|e| RepoError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> RepoResult<String> {
    serde_json::to_string(v).map_err(|e| RepoError::Corrupt(e.to_string()))
}

fn task_from_row(row: sql::TaskRow) -> RepoResult<TaskRecord> {
    Ok(TaskRecord {
        id: uuid(&row.id)?,
        user_id: uuid(&row.user_id)?,
        status: TaskStatus::parse(&row.status)
            .ok_or_else(|| RepoError::Corrupt(format!("status {:?}", row.status)))?,
        profile: json("profile", &row.profile)?,
        source: json("source", &row.source)?,
        input: row.input.as_deref().map(|s| json("input", s)).transpose()?,
        input_key: row.input_key,
        stage: row.stage.as_deref().and_then(Stage::parse),
        percent: row.percent,
        eta_seconds: row.eta_seconds,
        outputs: json("outputs", &row.outputs)?,
        error: row.error_code.map(|code| TaskError {
            code,
            message: row.error_message.unwrap_or_default(),
        }),
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        commands: json("commands", &row.commands)?,
        result: row
            .result
            .as_deref()
            .map(|s| json("result", s))
            .transpose()?,
        created_at: time(row.created_at)?,
        started_at: opt_time(row.started_at)?,
        finished_at: opt_time(row.finished_at)?,
        next_attempt_at: opt_time(row.next_attempt_at)?,
        webhook_url: row.webhook_url,
        notifications: vec![],
        keep_seconds: row.keep_seconds.and_then(|s| u64::try_from(s).ok()),
        files_expired_at: opt_time(row.files_expired_at)?,
    })
}

fn opt_task(row: Option<sql::TaskRow>) -> RepoResult<Option<TaskRecord>> {
    row.map(task_from_row).transpose()
}

fn user_from_row(row: sql::UserRow) -> RepoResult<UserWithHash> {
    Ok(UserWithHash {
        user: User {
            id: uuid(&row.id)?,
            username: row.username,
            email: row.email,
            disabled: row.disabled,
            admin: row.admin,
            created_at: time(row.created_at)?,
            password_version: u32::try_from(row.password_version).unwrap_or(u32::MAX),
        },
        password_hash: row.password_hash,
    })
}

/// The task and its queued job, inside the caller's transaction.
async fn insert_task_and_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    new: NewTask,
    max_attempts: u32,
) -> RepoResult<TaskRecord> {
    let now = now_ms();
    let id = new.id.to_string();
    sql::insert_task(
        &mut **tx,
        &id,
        &new.user_id.to_string(),
        &to_json(&new.profile)?,
        &to_json(&new.source)?,
        new.input_key.as_deref(),
        new.webhook_url.as_deref(),
        new.keep_seconds.map(seconds_i64),
        now,
    )
    .await?;
    let job_id = Uuid::now_v7().to_string();
    sql::insert_job(&mut **tx, &job_id, &id, now, i64::from(max_attempts)).await?;
    Ok(new.queued(time(now)?))
}

impl SqliteRepo {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sql::MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            outbox: OutboxOptions::default(),
        })
    }

    pub fn with_outbox(self, outbox: OutboxOptions) -> Self {
        Self { outbox, ..self }
    }
}

#[async_trait]
impl UserRepo for SqliteRepo {
    #[tracing::instrument(skip_all, fields(username = %new.username))]
    async fn create_user(&self, new: NewUser) -> RepoResult<User> {
        let user = User {
            id: Uuid::now_v7(),
            username: new.username.as_str().to_string(),
            email: new.email.as_str().to_string(),
            disabled: false,
            admin: new.admin,
            created_at: time(now_ms())?,
            password_version: 0,
        };
        let id = user.id.to_string();
        let mut tx = self.pool.begin().await?;
        let r = sql::insert_user(
            &mut *tx,
            &id,
            &user.username,
            &user.email,
            &new.email.normalized(),
            &new.password_hash,
            new.admin,
            user.created_at.timestamp_millis(),
        )
        .await;
        match r {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // SQLite names no constraint, only the columns ("UNIQUE constraint failed:
                // users.email_lower") or the index ("… failed: index 'users_username_lower'");
                // PostgreSQL maps by constraint name instead.
                return Err(RepoError::Conflict(if e.message().contains("email") {
                    "email"
                } else {
                    "username"
                }));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(code_hash) = &new.invite_hash
            && sql::spend_invite(&mut *tx, code_hash, &id, now_ms()).await? != 1
        {
            return Err(RepoError::InviteNotLive);
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn user_for_login(&self, login: &str) -> RepoResult<Option<UserWithHash>> {
        let row = if login.contains('@') {
            sql::user_by_email_or_username(&self.pool, &login.to_lowercase(), login).await?
        } else {
            sql::user_by_username(&self.pool, login).await?
        };
        row.map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> RepoResult<Option<User>> {
        let row = sql::user_by_id(&self.pool, &id.to_string()).await?;
        Ok(row.map(user_from_row).transpose()?.map(|u| u.user))
    }

    async fn list_users(&self) -> RepoResult<Vec<User>> {
        let rows = sql::list_users(&self.pool).await?;
        rows.into_iter()
            .map(|r| Ok(user_from_row(r)?.user))
            .collect()
    }

    async fn set_user_disabled(&self, username: &str, disabled: bool) -> RepoResult<bool> {
        Ok(sql::set_user_disabled(&self.pool, username, disabled).await? == 1)
    }
}

#[async_trait]
impl TaskRepo for SqliteRepo {
    #[tracing::instrument(skip_all, fields(task_id = %new.id))]
    async fn create_task(&self, new: NewTask, max_attempts: u32) -> RepoResult<TaskRecord> {
        let mut tx = self.pool.begin().await?;
        let task = insert_task_and_job(&mut tx, new, max_attempts).await?;
        tx.commit().await?;
        Ok(task)
    }

    async fn get_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let task =
            opt_task(sql::task_of_user(&self.pool, &id.to_string(), &user.to_string()).await?)?;
        Ok(self
            .with_notifications(task.into_iter().collect())
            .await?
            .pop())
    }

    async fn list_tasks(&self, user: Uuid, q: &ListQuery) -> RepoResult<Vec<TaskRecord>> {
        let user = user.to_string();
        let status = q.status.map(|s| s.as_str());
        let cursor = q.after.map(|id| id.to_string());
        let limit = i64::from(q.limit);
        let (db, user) = (&self.pool, user.as_str());
        let rows = match (q.descending, status) {
            (true, None) => {
                let before = cursor.as_deref().unwrap_or(sql::AFTER_EVERY_ID);
                sql::tasks_descending(db, user, before, limit).await?
            }
            (true, Some(status)) => {
                let before = cursor.as_deref().unwrap_or(sql::AFTER_EVERY_ID);
                sql::tasks_descending_with_status(db, user, status, before, limit).await?
            }
            (false, None) => {
                let after = cursor.as_deref().unwrap_or("");
                sql::tasks_ascending(db, user, after, limit).await?
            }
            (false, Some(status)) => {
                let after = cursor.as_deref().unwrap_or("");
                sql::tasks_ascending_with_status(db, user, status, after, limit).await?
            }
        };
        let tasks = rows
            .into_iter()
            .map(task_from_row)
            .collect::<RepoResult<_>>()?;
        self.with_notifications(tasks).await
    }

    async fn task_with_file(&self, user: Uuid, name: &str) -> RepoResult<Option<TaskRecord>> {
        opt_task(sql::task_with_file(&self.pool, &user.to_string(), name).await?)
    }

    async fn cancel_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<(TaskRecord, bool)>> {
        let task_id = id.to_string();
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let changed = sql::cancel_task(&mut *tx, &task_id, &user.to_string(), now).await? == 1;
        if changed {
            sql::cancel_job_of_task(&mut *tx, &task_id).await?;
            notify::write_outbox(&mut tx, self.outbox, &task_id, Event::TaskCancelled, now).await?;
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
        let task_id = id.to_string();
        let mut tx = self.pool.begin().await?;
        let requeued =
            sql::requeue_task_for_retry(&mut *tx, &task_id, &user.to_string()).await? == 1;
        if requeued {
            sql::reset_job_of_task(&mut *tx, &task_id, now_ms(), i64::from(max_attempts)).await?;
        }
        tx.commit().await?;
        match self.get_task(user, id).await? {
            None => Ok(RetryOutcome::NotFound),
            Some(t) if requeued => Ok(RetryOutcome::Requeued(Box::new(t))),
            Some(t) => Ok(RetryOutcome::NotRetryable(t.status)),
        }
    }

    async fn delete_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let task_id = id.to_string();
        let mut tx = self.pool.begin().await?;
        let row = sql::delete_task(&mut *tx, &task_id, &user.to_string()).await?;
        if row.is_some() {
            // ON DELETE CASCADE covers these; explicit so it holds without foreign keys too.
            sql::delete_job_of_task(&mut *tx, &task_id).await?;
            sql::delete_shares_of_task(&mut *tx, &task_id).await?;
        }
        tx.commit().await?;
        opt_task(row)
    }

    async fn count_by_status(&self) -> RepoResult<Vec<(TaskStatus, i64)>> {
        let rows = sql::count_by_status(&self.pool).await?;
        Ok(counts(rows.into_iter().map(|r| (r.status, r.n))))
    }

    async fn oldest_due_job(&self, now: DateTime<Utc>) -> RepoResult<Option<DateTime<Utc>>> {
        let oldest = sql::oldest_due_job(&self.pool, now.timestamp_millis()).await?;
        Ok(oldest.and_then(DateTime::from_timestamp_millis))
    }

    async fn ping(&self) -> RepoResult<()> {
        Ok(sql::ping(&self.pool).await?)
    }
}

#[async_trait]
impl JobQueue for SqliteRepo {
    async fn finish(
        &self,
        lease: &Lease,
        status: TaskStatus,
        outputs: Option<&[OutputFile]>,
        result: Option<&serde_json::Value>,
        error: Option<&TaskError>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let job_id = lease.job_id.to_string();
        let message = error.map(|e| e.message.as_str());
        if sql::finish_job(&mut *tx, &job_id, &lease.owner, message).await? != 1 {
            return Ok(false);
        }
        let outputs = outputs.map(|o| to_json(&o)).transpose()?;
        let result = result.map(|r| r.to_string());
        sql::finish_task(
            &mut *tx,
            &lease.task_id.to_string(),
            status.as_str(),
            outputs.as_deref(),
            result.as_deref(),
            error.map(|e| e.code.as_str()),
            message,
            now,
        )
        .await?;
        if let Some(event) = Event::of_status(status) {
            let task_id = lease.task_id.to_string();
            notify::write_outbox(&mut tx, self.outbox, &task_id, event, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn retry_later(
        &self,
        lease: &Lease,
        error: &TaskError,
        delay: Duration,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let job_id = lease.job_id.to_string();
        let run_at = now_ms() + ms(delay);
        let note = job_note(error);
        if sql::requeue_job(&mut *tx, &job_id, &lease.owner, run_at, Some(&note)).await? != 1 {
            return Ok(false);
        }
        let task_id = lease.task_id.to_string();
        sql::task_waits_for_retry(&mut *tx, &task_id, &error.code, &error.message, run_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release(&self, lease: &Lease) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let job_id = lease.job_id.to_string();
        if sql::release_job(&mut *tx, &job_id, &lease.owner, now_ms()).await? != 1 {
            return Ok(false);
        }
        let attempts = shown_attempts(lease.attempt.saturating_sub(1), lease.max_attempts);
        sql::release_task(&mut *tx, &lease.task_id.to_string(), i64::from(attempts)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim(&self, owner: &str, lease: Duration) -> RepoResult<Option<Lease>> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(held) = sql::held_job(&mut *tx, owner, now).await? {
            // This claim's reply was lost before: the same job, the same attempt.
            sql::heartbeat(&mut *tx, &held.id, owner, now + ms(lease)).await?;
            tx.commit().await?;
            return Ok(Some(Lease {
                job_id: uuid(&held.id)?,
                task_id: uuid(&held.task_id)?,
                owner: owner.to_string(),
                attempt: u32::try_from(held.attempts).unwrap_or(u32::MAX),
                max_attempts: u32::try_from(held.max_attempts).unwrap_or(1),
                run: u32::try_from(held.runs).unwrap_or(u32::MAX),
            }));
        }
        let Some(row) = sql::claim_job(&mut *tx, owner, now + ms(lease), now).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job_id = uuid(&row.id)?;
        let task_id = uuid(row.task_id.as_deref().unwrap_or_default())?;
        let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        let max_attempts = u32::try_from(row.max_attempts).unwrap_or(1);
        let shown = i64::from(shown_attempts(attempt, max_attempts));
        let run = sql::start_task(&mut *tx, &task_id.to_string(), now, shown).await?;
        notify::write_outbox(
            &mut tx,
            self.outbox,
            &task_id.to_string(),
            Event::TaskStarted,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            job_id,
            task_id,
            owner: owner.to_string(),
            attempt,
            max_attempts,
            run: u32::try_from(run).unwrap_or(u32::MAX),
        }))
    }

    async fn task_for_job(&self, task_id: Uuid) -> RepoResult<Option<TaskRecord>> {
        opt_task(sql::task_by_id(&self.pool, &task_id.to_string()).await?)
    }

    async fn heartbeat(&self, lease: &Lease, duration: Duration) -> RepoResult<bool> {
        let expires = now_ms() + ms(duration);
        let job = lease.job_id.to_string();
        Ok(sql::heartbeat(&self.pool, &job, &lease.owner, expires).await? == 1)
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
            &lease.task_id.to_string(),
            &lease.job_id.to_string(),
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
            &lease.task_id.to_string(),
            &lease.job_id.to_string(),
            &lease.owner,
            &to_json(info)?,
            input_key,
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_commands(&self, lease: &Lease, commands: &[String]) -> RepoResult<bool> {
        let n = sql::set_commands(
            &self.pool,
            &lease.task_id.to_string(),
            &lease.job_id.to_string(),
            &lease.owner,
            &to_json(&commands)?,
        )
        .await?;
        Ok(n == 1)
    }

    async fn recover_running(&self) -> RepoResult<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sql::requeue_running_jobs(&mut *tx, now_ms()).await?;
        sql::requeue_running_tasks(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn next_due_in(&self) -> RepoResult<Option<Duration>> {
        let next = sql::next_run_at(&self.pool).await?;
        Ok(next.map(|t| Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))))
    }

    async fn next_job(&self) -> RepoResult<Option<NextJob>> {
        let Some(row) = sql::next_job(&self.pool, now_ms()).await? else {
            return Ok(None);
        };
        Ok(Some(NextJob {
            task_id: uuid(&row.task_id)?,
            profile: json("profile", &row.profile)?,
            input_bytes: row.input_bytes.and_then(|n| u64::try_from(n).ok()),
        }))
    }
}

fn upload_from_row(row: sql::UploadRow) -> RepoResult<UploadRecord> {
    let size = |what: &str, n: i64| {
        u64::try_from(n).map_err(|_| RepoError::Corrupt(format!("upload {what} {n}")))
    };
    Ok(UploadRecord {
        id: uuid(&row.id)?,
        user_id: uuid(&row.user_id)?,
        length: size("length", row.length)?,
        offset: size("offset", row.offset_bytes)?,
        metadata: json("upload metadata", &row.metadata)?,
        storage_key: row.storage_key,
        parts: PartsState {
            part_size: size("part size", row.part_size)?,
            multipart_id: row.multipart_id,
            etags: json("upload parts", &row.parts)?,
            staged: size("staged bytes", row.staged_bytes)?,
        },
        task_id: row.task_id.as_deref().map(uuid).transpose()?,
        locked_until: opt_time(row.lock_until)?,
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
        completed_at: opt_time(row.completed_at)?,
    })
}

/// A byte count as SQLite stores it.
fn int(n: u64) -> RepoResult<i64> {
    i64::try_from(n).map_err(|_| RepoError::Corrupt(format!("size {n} out of range")))
}

#[async_trait]
impl UploadRepo for SqliteRepo {
    async fn create_upload(&self, new: NewUpload) -> RepoResult<UploadRecord> {
        sql::insert_upload(
            &self.pool,
            &new.id.to_string(),
            &new.user_id.to_string(),
            int(new.length)?,
            &to_json(&new.metadata)?,
            &new.storage_key,
            int(new.parts.part_size)?,
            new.parts.multipart_id.as_deref(),
            new.created_at.timestamp_millis(),
            new.expires_at.timestamp_millis(),
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
        let row = sql::upload_of_user(&self.pool, &id.to_string(), &user.to_string()).await?;
        row.map(upload_from_row).transpose()
    }

    async fn lock_upload(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<Option<UploadRecord>> {
        let row = sql::lock_upload(
            &self.pool,
            &id.to_string(),
            owner,
            now.timestamp_millis(),
            until.timestamp_millis(),
        )
        .await?;
        row.map(upload_from_row).transpose()
    }

    async fn renew_upload_lock(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let n =
            sql::renew_upload_lock(&self.pool, &id.to_string(), owner, until.timestamp_millis())
                .await?;
        Ok(n == 1)
    }

    async fn save_upload(&self, id: Uuid, owner: &str, p: &UploadProgress) -> RepoResult<bool> {
        let n = sql::save_upload(
            &self.pool,
            &id.to_string(),
            owner,
            int(p.offset)?,
            p.parts.multipart_id.as_deref(),
            &to_json(&p.parts.etags)?,
            int(p.parts.staged)?,
            p.expires_at.timestamp_millis(),
            p.completed_at.map(|t| t.timestamp_millis()),
        )
        .await?;
        Ok(n == 1)
    }

    async fn unlock_upload(&self, id: Uuid, owner: &str) -> RepoResult<()> {
        sql::unlock_upload(&self.pool, &id.to_string(), owner).await?;
        Ok(())
    }

    async fn delete_locked_upload(&self, id: Uuid, owner: &str) -> RepoResult<bool> {
        Ok(sql::delete_locked_upload(&self.pool, &id.to_string(), owner).await? == 1)
    }

    async fn create_task_from_upload(
        &self,
        new: NewTask,
        max_attempts: u32,
    ) -> RepoResult<Option<TaskRecord>> {
        let mut tx = self.pool.begin().await?;
        let used =
            sql::use_upload_for_task(&mut *tx, &new.id.to_string(), &new.user_id.to_string())
                .await?;
        if used != 1 {
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
        let rows =
            sql::expired_uploads(&self.pool, now.timestamp_millis(), i64::from(limit)).await?;
        rows.into_iter().map(upload_from_row).collect()
    }
}

fn session_from_row(row: sql::SessionRow) -> RepoResult<Session> {
    Ok(Session {
        id: uuid(&row.id)?,
        user_id: uuid(&row.user_id)?,
        csrf_token: row.csrf_token,
        created_at: time(row.created_at)?,
        last_seen_at: time(row.last_seen_at)?,
        expires_at: time(row.expires_at)?,
    })
}

fn share_from_row(row: sql::ShareRow) -> RepoResult<Share> {
    Ok(Share {
        id: uuid(&row.id)?,
        created_at: time(row.created_at)?,
        expires_at: time(row.expires_at)?,
    })
}

#[async_trait]
impl SessionRepo for SqliteRepo {
    async fn create_session(
        &self,
        user: Uuid,
        token_hash: &str,
        csrf_token: &str,
        timeouts: SessionTimeouts,
    ) -> RepoResult<Session> {
        let now = now_ms();
        sql::delete_expired_sessions(&self.pool, now, now - ms(timeouts.idle)).await?;
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user,
            csrf_token: csrf_token.to_string(),
            created_at: time(now)?,
            last_seen_at: time(now)?,
            expires_at: time(now.saturating_add(ms(timeouts.absolute)))?,
        };
        sql::insert_session(
            &self.pool,
            &session.id.to_string(),
            &user.to_string(),
            token_hash,
            csrf_token,
            now,
            session.expires_at.timestamp_millis(),
        )
        .await?;
        Ok(session)
    }

    async fn live_session(&self, token_hash: &str, idle: Duration) -> RepoResult<Option<Session>> {
        let now = now_ms();
        let Some(row) = sql::live_session(&self.pool, token_hash, now, now - ms(idle)).await?
        else {
            return Ok(None);
        };
        let mut session = session_from_row(row)?;
        let stale = now - ms(SESSION_TOUCH_EVERY);
        if sql::touch_session(&self.pool, &session.id.to_string(), now, stale).await? == 1 {
            session.last_seen_at = time(now)?;
        }
        Ok(Some(session))
    }

    async fn delete_session(&self, token_hash: &str) -> RepoResult<bool> {
        Ok(sql::delete_session(&self.pool, token_hash).await? == 1)
    }

    async fn change_password(&self, user: Uuid, password_hash: &str) -> RepoResult<bool> {
        let id = user.to_string();
        let mut tx = self.pool.begin().await?;
        if sql::set_password_hash(&mut *tx, &id, password_hash).await? != 1 {
            return Ok(false);
        }
        sql::delete_sessions_of_user(&mut *tx, &id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_expired_sessions(&self, idle: Duration) -> RepoResult<u64> {
        let now = now_ms();
        Ok(sql::delete_expired_sessions(&self.pool, now, now - ms(idle)).await?)
    }
}

#[async_trait]
impl ShareRepo for SqliteRepo {
    async fn create_share(
        &self,
        user: Uuid,
        task: Uuid,
        token_hash: &str,
        lifetime: Duration,
    ) -> RepoResult<Option<Share>> {
        let now = now_ms();
        sql::delete_expired_shares(&self.pool, now).await?;
        let share = Share {
            id: Uuid::now_v7(),
            created_at: time(now)?,
            expires_at: time(now.saturating_add(ms(lifetime)))?,
        };
        let n = sql::insert_share(
            &self.pool,
            &share.id.to_string(),
            token_hash,
            now,
            share.expires_at.timestamp_millis(),
            &task.to_string(),
            &user.to_string(),
        )
        .await?;
        Ok((n == 1).then_some(share))
    }

    async fn list_shares(&self, user: Uuid, task: Uuid) -> RepoResult<Vec<Share>> {
        let rows =
            sql::shares_of_task(&self.pool, &task.to_string(), &user.to_string(), now_ms()).await?;
        rows.into_iter().map(share_from_row).collect()
    }

    async fn delete_share(&self, user: Uuid, task: Uuid, share: Uuid) -> RepoResult<bool> {
        let n = sql::delete_share(
            &self.pool,
            &share.to_string(),
            &task.to_string(),
            &user.to_string(),
        )
        .await?;
        Ok(n == 1)
    }

    async fn shared_task(&self, token_hash: &str) -> RepoResult<Option<TaskRecord>> {
        let Some(row) = sql::live_share(&self.pool, token_hash, now_ms()).await? else {
            return Ok(None);
        };
        self.get_task(uuid(&row.user_id)?, uuid(&row.task_id)?)
            .await
    }
}
