//! The admin view (`/api/admin/…`): every user and their tasks (read-only), disabling and
//! enabling accounts, invite codes, and what the service is doing — the workers that are
//! alive with their jobs, the queue and recent failures. It reads the database only, so it
//! works in the embedded mode with no Prometheus.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Admin, JsonBody};
use super::tasks::{ListParams, task_id, task_page};
use crate::config::SignupMode;
use crate::db::cache::Change;
use crate::db::{FailureCount, Invite, LiveWorker, NewInvite, RunningJob, User};
use crate::domain::{ErrorCode, TaskView};
use crate::queue::ALIVE_FOR;

/// An account as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Bytes of inputs and outputs the user stores (as their `GET /api/me`).
    pub stored_bytes: u64,
}

impl AdminUserView {
    fn of(u: User, stored_bytes: u64) -> Self {
        AdminUserView {
            id: u.id,
            username: u.username,
            email: u.email,
            admin: u.admin,
            disabled: u.disabled,
            created_at: u.created_at,
            stored_bytes,
        }
    }
}

/// A job being run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunningJobView {
    pub task_id: Uuid,
    /// The task's owner.
    pub username: String,
    pub profile: Option<String>,
    pub stage: Option<String>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// Seconds of input processed per second of wall time, estimated from the progress
    /// and the time left (`null` until both are known).
    pub speed: Option<f64>,
    pub started_at: Option<DateTime<Utc>>,
}

impl From<&RunningJob> for RunningJobView {
    fn from(j: &RunningJob) -> Self {
        RunningJobView {
            task_id: j.task_id,
            username: j.username.clone(),
            profile: j.profile.clone(),
            stage: j.stage.clone(),
            percent: j.percent,
            eta_seconds: j.eta_seconds,
            speed: speed(j),
            started_at: j.started_at,
        }
    }
}

/// The input seconds left, over the seconds the run expects to take for them.
fn speed(j: &RunningJob) -> Option<f64> {
    let (duration, percent, eta) = (j.duration?, j.percent?, j.eta_seconds?);
    let left = duration * (100.0 - percent).max(0.0) / 100.0;
    (eta > 0.0 && left > 0.0).then(|| left / eta)
}

/// A worker process that beat within the last 20 seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    /// `host:pid:uuid`, the prefix of its jobs' lease owners.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Jobs it runs at once (`REELFORGE_WORKERS`).
    pub slots: u32,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub jobs: Vec<RunningJobView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// Jobs waiting for a free worker.
    pub due: u64,
    /// Jobs waiting for their retry time.
    pub waiting: u64,
    pub running: u64,
    /// How long the job that has waited longest for a worker has waited.
    pub oldest_due_seconds: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureView {
    pub code: String,
    pub count: u64,
    pub last_at: DateTime<Utc>,
}

impl From<FailureCount> for FailureView {
    fn from(f: FailureCount) -> Self {
        FailureView {
            code: f.code,
            count: f.count,
            last_at: f.last_at,
        }
    }
}

/// What the service is doing now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub signup: SignupMode,
    pub workers: Vec<WorkerView>,
    /// Running jobs whose worker is not alive: its lease runs out and another worker takes
    /// the job over.
    pub orphaned_jobs: Vec<RunningJobView>,
    pub queue: QueueView,
    /// Failed tasks of the last 24 hours by error code, most frequent first.
    pub failures_24h: Vec<FailureView>,
}

/// The jobs of each live worker, and those of no live worker.
fn by_worker(
    workers: Vec<LiveWorker>,
    jobs: &[RunningJob],
) -> (Vec<WorkerView>, Vec<RunningJobView>) {
    // A lease owner is the worker's id, `:`, and the number of its loop.
    let worker_of = |j: &RunningJob| {
        j.owner
            .as_deref()
            .and_then(|o| o.rsplit_once(':'))
            .map(|(id, _)| id.to_string())
    };
    let views = workers
        .into_iter()
        .map(|w| WorkerView {
            jobs: jobs
                .iter()
                .filter(|j| worker_of(j).as_deref() == Some(w.id.as_str()))
                .map(RunningJobView::from)
                .collect(),
            id: w.id,
            host: w.host,
            pid: w.pid,
            slots: w.slots,
            started_at: w.started_at,
            seen_at: w.seen_at,
        })
        .collect::<Vec<_>>();
    let orphaned = jobs
        .iter()
        .filter(|j| {
            let owner = worker_of(j);
            !views
                .iter()
                .any(|w| owner.as_deref() == Some(w.id.as_str()))
        })
        .map(RunningJobView::from)
        .collect();
    (views, orphaned)
}

/// The workers that are alive and their jobs, the queue, and the last day's failures.
#[utoipa::path(get, path = "/api/admin/overview", tag = "admin",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "`admin_only`")),
    security(("bearer" = [])))]
pub async fn overview(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Overview>> {
    let db = &state.db;
    let now = Utc::now();
    let workers = db.live_workers(ALIVE_FOR).await?;
    let jobs = db.running_jobs().await?;
    let counts = db.queue_counts().await?;
    let oldest = db.oldest_due_job(now).await?;
    let failures = db.failures_since(now - chrono::Duration::hours(24)).await?;
    let (workers, orphaned_jobs) = by_worker(workers, &jobs);
    Ok(Json(Overview {
        signup: state.signup,
        workers,
        orphaned_jobs,
        queue: QueueView {
            due: counts.due,
            waiting: counts.waiting,
            running: counts.running,
            oldest_due_seconds: oldest.map(|t| (now - t).as_seconds_f64().max(0.0)),
        },
        failures_24h: failures.into_iter().map(FailureView::from).collect(),
    }))
}

/// Every account, oldest first.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    responses((status = 200, body = [AdminUserView]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
) -> ApiResult<Json<Vec<AdminUserView>>> {
    let users = state.db.list_users().await?;
    let stored: std::collections::HashMap<Uuid, u64> = (state.db.stored_bytes_by_user().await?)
        .into_iter()
        .map(|u| (u.id, u.bytes))
        .collect();
    Ok(Json(
        users
            .into_iter()
            .map(|u| {
                let bytes = stored.get(&u.id).copied().unwrap_or(0);
                AdminUserView::of(u, bytes)
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChange {
    /// `true`: the account's sessions, tokens and keys stop working and it cannot log in.
    pub disabled: bool,
}

/// Disable or enable an account (not one's own).
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    request_body = UserChange,
    responses((status = 200, body = AdminUserView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "`admin_only`, `insufficient_scope`, or `own_account`"),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<UserChange>,
) -> ApiResult<Json<AdminUserView>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    if id == admin.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OwnAccount,
            "you cannot disable your own account; another admin or `reelforge user disable` can",
        ));
    }
    if !state
        .db
        .set_user_disabled_by_id(id, change.disabled)
        .await?
    {
        return Err(ApiError::not_found());
    }
    state.signals.changed(Change::User(id));
    let user = state
        .db
        .user_by_id(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(user = %id, disabled = change.disabled, by = %admin.id, "account changed by an admin");
    let bytes = state.db.stored_bytes(id).await?;
    Ok(Json(AdminUserView::of(user, bytes)))
}

/// A user's tasks, like their own `GET /api/tasks` (same parameters and paging).
#[utoipa::path(get, path = "/api/admin/users/{id}/tasks", tag = "admin",
    params(("id" = String, Path, description = "user id"), ListParams),
    responses((status = 200, body = [TaskView]), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn user_tasks(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let user = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    if state.db.user_by_id(user).await?.is_none() {
        return Err(ApiError::not_found());
    }
    task_page(&state, user, &p, &format!("/api/admin/users/{user}/tasks")).await
}

/// One task of a user.
#[utoipa::path(get, path = "/api/admin/users/{id}/tasks/{task}", tag = "admin",
    params(("id" = String, Path, description = "user id"),
           ("task" = String, Path, description = "task id")),
    responses((status = 200, body = TaskView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn user_task(
    State(state): State<AppState>,
    _: Admin,
    Path((id, task)): Path<(String, String)>,
) -> ApiResult<Json<TaskView>> {
    let user = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    let task = state
        .db
        .get_task(user, task_id(&task)?)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(task.view()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct NewInviteRequest {
    /// Who it is for, as a reminder (at most 200 characters).
    #[schema(max_length = 200)]
    pub note: String,
    /// 1–365 (default 7).
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

/// A new invite and its code: shown this once, only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvite {
    pub code: String,
    pub invite: Invite,
}

/// Make an invite code for `REELFORGE_SIGNUP=invite` (one signup each).
#[utoipa::path(post, path = "/api/admin/invites", tag = "admin",
    request_body = NewInviteRequest,
    responses((status = 201, body = CreatedInvite), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_invite(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(req): JsonBody<NewInviteRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvite>)> {
    let (code, new) = NewInvite::generate(&req.note, Some(admin.id), req.expires_in_days)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e))?;
    let invite = state.db.create_invite(new).await?;
    Ok((StatusCode::CREATED, Json(CreatedInvite { code, invite })))
}

/// Every invite code, used or not, oldest first.
#[utoipa::path(get, path = "/api/admin/invites", tag = "admin",
    responses((status = 200, body = [Invite]), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_invites(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<Invite>>> {
    Ok(Json(state.db.invites().await?))
}

/// Withdraw an invite code that has not been used.
#[utoipa::path(delete, path = "/api/admin/invites/{id}", tag = "admin",
    params(("id" = String, Path, description = "invite id")),
    responses((status = 204), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such unused invite")),
    security(("bearer" = [])))]
pub async fn delete_invite(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    if !state.db.delete_invite(id).await? {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(owner: &str, duration: Option<f64>, percent: f64, eta: f64) -> RunningJob {
        RunningJob {
            owner: Some(owner.into()),
            task_id: Uuid::now_v7(),
            username: "alice".into(),
            profile: Some("compress".into()),
            stage: Some("encoding".into()),
            percent: Some(percent),
            eta_seconds: Some(eta),
            duration,
            started_at: None,
        }
    }

    #[test]
    fn speed_is_input_seconds_left_over_seconds_left() {
        // 60 s of input, 25 % done, 15 s to go: 45 s of input in 15 s.
        assert_eq!(speed(&job("w:0", Some(60.0), 25.0, 15.0)), Some(3.0));
        assert_eq!(speed(&job("w:0", None, 25.0, 15.0)), None);
        assert_eq!(speed(&job("w:0", Some(60.0), 100.0, 0.0)), None);
    }

    #[test]
    fn jobs_go_to_their_worker_and_the_rest_are_orphaned() {
        let now = Utc::now();
        let worker = |id: &str| LiveWorker {
            id: id.into(),
            host: "h".into(),
            pid: 1,
            slots: 2,
            started_at: now,
            seen_at: now,
        };
        let jobs = [
            job("h:1:aaa:0", None, 1.0, 1.0),
            job("h:1:aaa:1", None, 1.0, 1.0),
            job("h:2:bbb:0", None, 1.0, 1.0),
        ];
        let (workers, orphaned) = by_worker(vec![worker("h:1:aaa"), worker("h:3:ccc")], &jobs);
        assert_eq!(workers[0].jobs.len(), 2);
        assert_eq!(workers[1].jobs.len(), 0);
        assert_eq!(orphaned.len(), 1);
        assert_eq!(orphaned[0].task_id, jobs[2].task_id);
    }
}
