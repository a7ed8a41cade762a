//! [`AdminRepo`] on SQLite.

use super::*;
use crate::db::{count, duration_ms};

fn invite_from_row(r: sql::InviteRow) -> RepoResult<Invite> {
    Ok(Invite {
        id: uuid(&r.id)?,
        note: r.note,
        created_by: r.created_by,
        created_at: time(r.created_at)?,
        expires_at: opt_time(r.expires_at)?,
        used_by: r.used_by,
        used_at: opt_time(r.used_at)?,
    })
}

fn worker_from_row(r: sql::WorkerRow) -> RepoResult<LiveWorker> {
    Ok(LiveWorker {
        id: r.id,
        host: r.host,
        pid: u32::try_from(r.pid).unwrap_or(0),
        slots: u32::try_from(r.slots).unwrap_or(0),
        started_at: time(r.started_at)?,
        seen_at: time(r.seen_at)?,
    })
}

fn running_from_row(r: sql::RunningRow) -> RepoResult<RunningJob> {
    Ok(RunningJob {
        owner: r.lease_owner,
        task_id: uuid(&r.task_id)?,
        username: r.username,
        profile: r.profile,
        stage: r.stage,
        percent: r.percent,
        eta_seconds: r.eta_seconds,
        duration: r.duration,
        started_at: opt_time(r.started_at)?,
    })
}

#[async_trait]
impl AdminRepo for SqliteRepo {
    async fn set_user_admin(&self, username: &str, admin: bool) -> RepoResult<bool> {
        Ok(sql::set_user_admin(&self.pool, username, admin).await? == 1)
    }

    async fn set_user_disabled_by_id(&self, id: Uuid, disabled: bool) -> RepoResult<bool> {
        Ok(sql::set_user_disabled_by_id(&self.pool, &id.to_string(), disabled).await? == 1)
    }

    async fn create_invite(&self, new: NewInvite) -> RepoResult<Invite> {
        let id = Uuid::now_v7();
        let now = now_ms();
        let by = new.created_by.map(|u| u.to_string());
        let expires = new.expires_at.map(|t| t.timestamp_millis());
        sql::insert_invite(
            &self.pool,
            &id.to_string(),
            &new.code_hash,
            &new.note,
            by.as_deref(),
            now,
            expires,
        )
        .await?;
        let created_by = match new.created_by {
            Some(u) => self.user_by_id(u).await?.map(|u| u.username),
            None => None,
        };
        Ok(Invite {
            id,
            note: new.note,
            created_by,
            created_at: time(now)?,
            expires_at: opt_time(expires)?,
            used_by: None,
            used_at: None,
        })
    }

    async fn invites(&self) -> RepoResult<Vec<Invite>> {
        let rows = sql::list_invites(&self.pool).await?;
        rows.into_iter().map(invite_from_row).collect()
    }

    async fn delete_invite(&self, id: Uuid) -> RepoResult<bool> {
        Ok(sql::delete_unused_invite(&self.pool, &id.to_string()).await? == 1)
    }

    async fn beat_worker(&self, beat: &WorkerBeat, stale: Duration) -> RepoResult<()> {
        let now = now_ms();
        let row = sql::WorkerRow {
            id: beat.id.clone(),
            host: beat.host.clone(),
            pid: i64::from(beat.pid),
            slots: i64::from(beat.slots),
            started_at: now,
            seen_at: now,
        };
        sql::beat_worker(&self.pool, &row).await?;
        sql::forget_stale_workers(&self.pool, now - duration_ms(stale)).await?;
        Ok(())
    }

    async fn forget_worker(&self, id: &str) -> RepoResult<()> {
        sql::forget_worker(&self.pool, id).await?;
        Ok(())
    }

    async fn live_workers(&self, within: Duration) -> RepoResult<Vec<LiveWorker>> {
        let rows = sql::live_workers(&self.pool, now_ms() - duration_ms(within)).await?;
        rows.into_iter().map(worker_from_row).collect()
    }

    async fn running_jobs(&self) -> RepoResult<Vec<RunningJob>> {
        let rows = sql::running_jobs(&self.pool).await?;
        rows.into_iter().map(running_from_row).collect()
    }

    async fn queue_counts(&self) -> RepoResult<QueueCounts> {
        let c = sql::queue_counts(&self.pool, now_ms()).await?;
        Ok(QueueCounts {
            due: count(c.due),
            waiting: count(c.waiting),
            running: count(c.running),
        })
    }

    async fn failures_since(&self, since: DateTime<Utc>) -> RepoResult<Vec<FailureCount>> {
        let rows = sql::failures_since(&self.pool, since.timestamp_millis()).await?;
        rows.into_iter()
            .map(|r| {
                Ok(FailureCount {
                    code: r.code,
                    count: count(r.count),
                    last_at: time(r.last_at)?,
                })
            })
            .collect()
    }
}
