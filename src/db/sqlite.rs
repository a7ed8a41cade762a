//! SQLite backend (embedded mode): one file in WAL mode. Claims are a single
//! `UPDATE … RETURNING` inside a short `BEGIN IMMEDIATE` transaction.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteRepo {
    pool: SqlitePool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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

const TASK_COLUMNS: &str = "id, user_id, status, profile, source, input, input_key, stage, percent, \
     eta_seconds, outputs, error_code, error_message, attempts, commands, result, created_at, started_at, \
     finished_at";

fn task_from_row(row: &sqlx::sqlite::SqliteRow) -> RepoResult<TaskRecord> {
    let status: String = row.try_get("status")?;
    let stage: Option<String> = row.try_get("stage")?;
    let input: Option<String> = row.try_get("input")?;
    let error_code: Option<String> = row.try_get("error_code")?;
    let error_message: Option<String> = row.try_get("error_message")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(TaskRecord {
        id: uuid(&row.try_get::<String, _>("id")?)?,
        user_id: uuid(&row.try_get::<String, _>("user_id")?)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| RepoError::Corrupt(format!("status {status:?}")))?,
        profile: json("profile", &row.try_get::<String, _>("profile")?)?,
        source: json("source", &row.try_get::<String, _>("source")?)?,
        input: input.as_deref().map(|s| json("input", s)).transpose()?,
        input_key: row.try_get("input_key")?,
        stage: stage.as_deref().and_then(Stage::parse),
        percent: row.try_get("percent")?,
        eta_seconds: row.try_get("eta_seconds")?,
        outputs: json("outputs", &row.try_get::<String, _>("outputs")?)?,
        error: error_code.map(|code| TaskError {
            code,
            message: error_message.unwrap_or_default(),
        }),
        attempts: u32::try_from(attempts).unwrap_or(0),
        commands: json("commands", &row.try_get::<String, _>("commands")?)?,
        result: row
            .try_get::<Option<String>, _>("result")?
            .as_deref()
            .map(|s| json("result", s))
            .transpose()?,
        created_at: time(row.try_get("created_at")?)?,
        started_at: opt_time(row.try_get("started_at")?)?,
        finished_at: opt_time(row.try_get("finished_at")?)?,
    })
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> RepoResult<User> {
    Ok(User {
        id: uuid(&row.try_get::<String, _>("id")?)?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: time(row.try_get("created_at")?)?,
    })
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
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    async fn task_by_id(&self, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
        )))
        .bind(id.to_string())
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
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, \
             last_error = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(error.map(|e| e.message.clone()))
        .bind(job.job_id.to_string())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let outputs_json = outputs.map(|o| to_json(&o)).transpose()?;
        sqlx::query(
            "UPDATE tasks SET status = ?, stage = NULL, eta_seconds = NULL, \
             percent = CASE WHEN ? = 'succeeded' THEN 100 ELSE percent END, \
             outputs = COALESCE(?, outputs), result = ?, error_code = ?, error_message = ?, \
             finished_at = ? \
             WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(status.as_str())
        .bind(outputs_json)
        .bind(result.map(|r| r.to_string()))
        .bind(error.map(|e| e.code.clone()))
        .bind(error.map(|e| e.message.clone()))
        .bind(now)
        .bind(job.task_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl SqliteRepo {
    /// Put a running job held by `owner` back in the queue, due after `delay`; the task
    /// shows `queued` again. `last_error` replaces the job's note when given.
    async fn requeue(
        &self,
        job: &ClaimedJob,
        owner: &str,
        delay: Duration,
        last_error: Option<&str>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = ?, lease_owner = NULL, \
             lease_expires_at = NULL, last_error = COALESCE(?, last_error) \
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(now_ms() + ms(delay))
        .bind(last_error)
        .bind(job.job_id.to_string())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL WHERE id = ?",
        )
        .bind(job.task_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
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
            created_at: time(now_ms())?,
        };
        let r = sqlx::query(
            "INSERT INTO users (id, username, email, email_lower, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(new.email.normalized())
        .bind(&new.password_hash)
        .bind(user.created_at.timestamp_millis())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(user),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if e.message().contains("email") {
                    Err(RepoError::Conflict("email"))
                } else {
                    Err(RepoError::Conflict("username"))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn user_for_login(&self, login: &str) -> RepoResult<Option<UserWithHash>> {
        let row = if login.contains('@') {
            sqlx::query("SELECT * FROM users WHERE email_lower = ? OR username = ? LIMIT 1")
                .bind(login.to_lowercase())
                .bind(login)
                .fetch_optional(&self.pool)
                .await?
        } else {
            sqlx::query("SELECT * FROM users WHERE username = ?")
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
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.to_string())
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
        let r = sqlx::query("UPDATE users SET disabled = ? WHERE username = ?")
            .bind(i64::from(disabled))
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl TaskRepo for SqliteRepo {
    #[tracing::instrument(skip_all, fields(task_id = %new.id))]
    async fn create_task(&self, new: NewTask, max_attempts: u32) -> RepoResult<TaskRecord> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tasks (id, user_id, status, profile, source, input_key, created_at) \
             VALUES (?, ?, 'queued', ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(new.user_id.to_string())
        .bind(to_json(&new.profile)?)
        .bind(to_json(&new.source)?)
        .bind(&new.input_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (id, task_id, kind, state, run_at, max_attempts, created_at) \
             VALUES (?, ?, 'process', 'queued', ?, ?, ?)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(new.id.to_string())
        .bind(now)
        .bind(i64::from(max_attempts))
        .bind(now)
        .execute(&mut *tx)
        .await?;
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
            created_at: time(now)?,
            started_at: None,
            finished_at: None,
        })
    }

    async fn get_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND user_id = ?"
        )))
        .bind(id.to_string())
        .bind(user.to_string())
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
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = ?");
        if q.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if q.after.is_some() {
            sql.push_str(&format!(" AND id {cmp} ?"));
        }
        sql.push_str(&format!(" ORDER BY id {order} LIMIT ?"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.to_string());
        if let Some(s) = q.status {
            query = query.bind(s.as_str());
        }
        if let Some(after) = q.after {
            query = query.bind(after.to_string());
        }
        let rows = query.bind(i64::from(q.limit)).fetch_all(&self.pool).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn task_with_file(&self, user: Uuid, name: &str) -> RepoResult<Option<TaskRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks t WHERE user_id = ? AND ( \
               EXISTS (SELECT 1 FROM json_each(t.outputs) WHERE json_extract(value, '$.name') = ?) \
               OR json_extract(t.source, '$.filename') = ?) \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(user.to_string())
        .bind(name)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.first().map(task_from_row).transpose()
    }

    async fn cancel_task(&self, user: Uuid, id: Uuid) -> RepoResult<Option<(TaskRecord, bool)>> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', stage = NULL, eta_seconds = NULL, \
             finished_at = ? WHERE id = ? AND user_id = ? AND status IN ('queued', 'running')",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            sqlx::query(
                "UPDATE jobs SET state = 'done', cancel_requested = 1, lease_owner = NULL, \
                 lease_expires_at = NULL WHERE task_id = ?",
            )
            .bind(id.to_string())
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
             WHERE id = ? AND user_id = ? AND status IN ('failed', 'cancelled')",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', run_at = ?, attempts = 0, max_attempts = ?, \
                 cancel_requested = 0, lease_owner = NULL, lease_expires_at = NULL, \
                 last_error = NULL WHERE task_id = ?",
            )
            .bind(now_ms())
            .bind(i64::from(max_attempts))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
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
            "DELETE FROM tasks WHERE id = ? AND user_id = ? RETURNING {TASK_COLUMNS}"
        )))
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            // ON DELETE CASCADE covers this; explicit so it holds without foreign keys too.
            sqlx::query("DELETE FROM jobs WHERE task_id = ?")
                .bind(id.to_string())
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
impl JobQueue for SqliteRepo {
    async fn claim(&self, owner: &str, lease: Duration) -> RepoResult<Option<ClaimedJob>> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at = ?, \
               attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs \
                          WHERE (state = 'queued' AND run_at <= ?) \
                             OR (state = 'running' AND lease_expires_at < ?) \
                          ORDER BY run_at, id LIMIT 1) \
             RETURNING id, task_id, attempts, max_attempts",
        )
        .bind(owner)
        .bind(now + ms(lease))
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job_id = uuid(&row.try_get::<String, _>("id")?)?;
        let task_id: Option<String> = row.try_get("task_id")?;
        let task_id = uuid(&task_id.unwrap_or_default())?;
        let run: i64 = sqlx::query_scalar(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, \
               started_at = COALESCE(started_at, ?), stage = NULL, percent = 0, eta_seconds = NULL \
             WHERE id = ? RETURNING attempts",
        )
        .bind(now)
        .bind(task_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ClaimedJob {
            job_id,
            task_id,
            attempt: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(row.try_get::<i64, _>("max_attempts")?).unwrap_or(1),
            run: u32::try_from(run).unwrap_or(u32::MAX),
        }))
    }

    async fn task_for_job(&self, task_id: Uuid) -> RepoResult<Option<TaskRecord>> {
        self.task_by_id(task_id).await
    }

    async fn heartbeat(&self, job: Uuid, owner: &str, lease: Duration) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ? \
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(now_ms() + ms(lease))
        .bind(job.to_string())
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
            "UPDATE tasks SET stage = ?, percent = MAX(COALESCE(percent, 0), ?), eta_seconds = ? \
             WHERE id = ? AND status = 'running' AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = ? AND lease_owner = ? AND state = 'running')",
        )
        .bind(stage.as_str())
        .bind(percent.clamp(0.0, 100.0))
        .bind(eta_seconds)
        .bind(job.task_id.to_string())
        .bind(job.job_id.to_string())
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
            "UPDATE tasks SET input = ?, input_key = ? \
             WHERE id = ? AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = ? AND lease_owner = ? AND state = 'running')",
        )
        .bind(to_json(info)?)
        .bind(input_key)
        .bind(job.task_id.to_string())
        .bind(job.job_id.to_string())
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
            "UPDATE tasks SET commands = ? \
             WHERE id = ? AND EXISTS (SELECT 1 FROM jobs \
               WHERE id = ? AND lease_owner = ? AND state = 'running')",
        )
        .bind(to_json(&commands)?)
        .bind(job.task_id.to_string())
        .bind(job.job_id.to_string())
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

    async fn recover_running(&self) -> RepoResult<u64> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = ?, lease_owner = NULL, \
             lease_expires_at = NULL WHERE state = 'running'",
        )
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tasks SET status = 'queued', stage = NULL, eta_seconds = NULL \
             WHERE status = 'running'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn next_due_in(&self) -> RepoResult<Option<Duration>> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.pool)
                .await?;
        Ok(next.map(|t| Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))))
    }
}
