//! [`AdminRepo`] on PostgreSQL.

use super::*;
use crate::db::{count, duration_ms};

fn invite_from_row(r: sql::InviteRow) -> Invite {
    Invite {
        id: r.id,
        note: r.note,
        created_by: r.created_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        used_by: r.used_by,
        used_at: r.used_at,
    }
}

fn worker_from_row(r: sql::WorkerRow) -> LiveWorker {
    LiveWorker {
        id: r.id,
        host: r.host,
        pid: u32::try_from(r.pid).unwrap_or(0),
        slots: u32::try_from(r.slots).unwrap_or(0),
        started_at: r.started_at,
        seen_at: r.seen_at,
    }
}

fn running_from_row(r: sql::RunningRow) -> RunningJob {
    RunningJob {
        owner: r.lease_owner,
        task_id: r.task_id,
        username: r.username,
        profile: r.profile,
        stage: r.stage,
        percent: r.percent,
        eta_seconds: r.eta_seconds,
        duration: r.duration,
        started_at: r.started_at,
    }
}

#[async_trait]
impl AdminRepo for PgRepo {
    async fn set_user_admin(&self, username: &str, admin: bool) -> RepoResult<bool> {
        Ok(sql::set_user_admin(&self.pool, username, admin).await? == 1)
    }

    async fn set_user_disabled_by_id(&self, id: Uuid, disabled: bool) -> RepoResult<bool> {
        Ok(sql::set_user_disabled_by_id(&self.pool, id, disabled).await? == 1)
    }

    async fn create_invite(&self, new: NewInvite) -> RepoResult<Invite> {
        let id = Uuid::now_v7();
        let created_at = sql::insert_invite(
            &self.pool,
            id,
            &new.code_hash,
            &new.note,
            new.created_by,
            new.expires_at,
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
            created_at,
            expires_at: new.expires_at,
            used_by: None,
            used_at: None,
        })
    }

    async fn invites(&self) -> RepoResult<Vec<Invite>> {
        let rows = sql::list_invites(&self.pool).await?;
        Ok(rows.into_iter().map(invite_from_row).collect())
    }

    async fn delete_invite(&self, id: Uuid) -> RepoResult<bool> {
        Ok(sql::delete_unused_invite(&self.pool, id).await? == 1)
    }

    async fn beat_worker(&self, beat: &WorkerBeat, stale: Duration) -> RepoResult<()> {
        let pid = i32::try_from(beat.pid).unwrap_or(i32::MAX);
        let slots = i32::try_from(beat.slots).unwrap_or(i32::MAX);
        sql::beat_worker(&self.pool, &beat.id, &beat.host, pid, slots).await?;
        sql::forget_stale_workers(&self.pool, duration_ms(stale)).await?;
        Ok(())
    }

    async fn forget_worker(&self, id: &str) -> RepoResult<()> {
        sql::forget_worker(&self.pool, id).await?;
        Ok(())
    }

    async fn live_workers(&self, within: Duration) -> RepoResult<Vec<LiveWorker>> {
        let rows = sql::live_workers(&self.pool, duration_ms(within)).await?;
        Ok(rows.into_iter().map(worker_from_row).collect())
    }

    async fn running_jobs(&self) -> RepoResult<Vec<RunningJob>> {
        let rows = sql::running_jobs(&self.pool).await?;
        Ok(rows.into_iter().map(running_from_row).collect())
    }

    async fn queue_counts(&self) -> RepoResult<QueueCounts> {
        let c = sql::queue_counts(&self.pool).await?;
        Ok(QueueCounts {
            due: count(c.due),
            waiting: count(c.waiting),
            running: count(c.running),
        })
    }

    async fn failures_since(&self, since: DateTime<Utc>) -> RepoResult<Vec<FailureCount>> {
        let rows = sql::failures_since(&self.pool, since).await?;
        Ok(rows
            .into_iter()
            .map(|r| FailureCount {
                code: r.code,
                count: count(r.count),
                last_at: r.last_at,
            })
            .collect())
    }
}
