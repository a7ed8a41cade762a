//! The tasks API: create (URL or streamed upload), list, get, cancel, retry, delete.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, body_bytes, parse_json};
use crate::db::{ListQuery, NewTask, RetryOutcome, retry_transient};
use crate::domain::ErrorCode;
use crate::domain::task::parse_profile;
use crate::domain::{Profile, Source, TaskStatus, TaskView};
use crate::media::convert::ConvertOptions;
use crate::storage::keys;

/// JSON submission: a URL to fetch, or a finished resumable upload. `format` is shorthand
/// for the `convert` profile.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTaskRequest {
    /// http(s) URL of the media to fetch.
    pub url: Option<String>,
    /// A finished resumable upload (`/api/uploads`), by id or URL: the task gets the
    /// upload's id, and the profile of the upload's metadata unless this request names one.
    pub upload: Option<String>,
    /// Processing profile (default `idrl`).
    pub profile: Option<String>,
    /// Profile options.
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Value>,
    /// Target format: implies `{"profile": "convert", "options": {"format": …}}`.
    pub format: Option<String>,
    /// Where to POST this task's events (`task.started`, `task.succeeded`, `task.failed`,
    /// `task.cancelled`), signed with your default webhook secret
    /// (`GET /api/account/webhook-secret`). Same address rules as `url`.
    pub webhook_url: Option<String>,
    /// How long to keep the task's files (input and outputs) after it finishes: a duration
    /// (`90m`, `7d`) or a number of seconds, from 1m to 3650d. Then they are removed, the
    /// task stays, and its downloads answer `410 files_expired`. `REELFORGE_RETENTION`, when
    /// shorter, applies anyway.
    #[schema(value_type = Option<String>, example = "7d")]
    pub expires_in: Option<serde_json::Value>,
}

/// Multipart submission (documented for OpenAPI; parsed by hand so the file streams).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The media (also accepted as part `video` or a file part named `fileName`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Original file name.
    #[schema(rename = "fileName")]
    file_name: Option<String>,
    /// Target format (legacy form field of the conversion tool): implies profile `convert`.
    #[schema(rename = "newFormat")]
    new_format: Option<String>,
    profile: Option<String>,
    /// Options as a JSON object.
    options: Option<String>,
    /// Where to POST this task's events (see the JSON body's `webhook_url`).
    webhook_url: Option<String>,
    /// How long to keep the task's files after it finishes (see the JSON body's `expires_in`).
    expires_in: Option<String>,
}

fn profile_error((code, message): (ErrorCode, String)) -> ApiError {
    ApiError::bad_request(code, message)
}

/// `format`/`newFormat` (`field`, as the client spelled it) is shorthand for the convert
/// profile with that format; with another profile, or another `options.format`, the
/// request contradicts itself and is refused rather than guessed at.
pub(super) fn resolve_profile(
    profile: Option<&str>,
    options: Option<serde_json::Value>,
    format: Option<(&str, &str)>,
) -> Result<Profile, ApiError> {
    let Some((field, format)) = format else {
        return parse_profile(profile, options).map_err(profile_error);
    };
    if let Some(other) = profile.filter(|p| *p != ConvertOptions::NAME) {
        return Err(conflict(format!(
            "`{field}` asks for the convert profile but `profile` is {other:?}; \
             drop `{field}`, or set the format in `options` of that profile"
        )));
    }
    let mut opts = match options {
        Some(serde_json::Value::Object(m)) => m,
        None | Some(serde_json::Value::Null) => Default::default(),
        Some(_) => return parse_profile(profile, options).map_err(profile_error),
    };
    if let Some(given) = opts.get("format").filter(|f| f.as_str() != Some(format)) {
        return Err(conflict(format!(
            "`{field}` is {format:?} but `options.format` is {given}; give the format once"
        )));
    }
    opts.insert(
        "format".into(),
        serde_json::Value::String(format.to_string()),
    );
    parse_profile(
        Some(ConvertOptions::NAME),
        Some(serde_json::Value::Object(opts)),
    )
    .map_err(profile_error)
}

fn conflict(message: String) -> ApiError {
    ApiError::bad_request(ErrorCode::ConflictingFields, message)
}

pub(super) fn created(task: &TaskView) -> Response {
    let mut r = (StatusCode::CREATED, Json(task)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/tasks/{}", task.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Submit a task: JSON with a URL, or a multipart upload.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks",
    request_body(content(
        (CreateTaskRequest = "application/json"),
        (UploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 201, body = TaskView, headers(("Location" = String))),
        (status = 400, body = ErrorBody, description = "bad input: the body, a field, a profile or its options (`invalid_options`), or fields that contradict each other (`conflicting_fields`)"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`upload` names no upload of yours"),
        (status = 409, body = ErrorBody, description = "`upload` is not finished (`upload_incomplete`) or already made into a task (`upload_used`)"),
        (status = 410, body = ErrorBody, description = "`upload` expired"),
        (status = 413, body = ErrorBody, description = "an upload over REELFORGE_MAX_UPLOAD, a text part over its cap, or a JSON body over 1 MiB (`payload_too_large`); or the task would take your stored bytes over REELFORGE_USER_QUOTA (`quota_exceeded`: nothing is stored)"),
        (status = 415, body = ErrorBody, description = "the `logo` part is not a PNG image (`unsupported_logo`)"),
        (status = 422, body = ErrorBody, description = "a well-formed URL that may not or cannot be fetched: `url_not_allowed` (private, loopback or reserved address), or a host name that does not resolve"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn create_task(
    State(state): State<AppState>,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    if super::limits::is_multipart(req.headers()) {
        return super::upload::create_from_upload(state, user, req).await;
    }
    let bytes = body_bytes(req).await?;
    let body: CreateTaskRequest = parse_json(&bytes)?;
    let keep_seconds = super::usage::expires_in_json(body.expires_in.as_ref())?;
    if let Some(upload) = body.upload.as_deref() {
        if body.url.is_some() {
            return Err(conflict(
                "give `url` or `upload`, not both: a task has one input".to_string(),
            ));
        }
        let names_profile =
            body.profile.is_some() || body.options.is_some() || body.format.is_some();
        let profile = if names_profile {
            let format = body.format.as_deref().map(|f| ("format", f));
            Some(resolve_profile(
                body.profile.as_deref(),
                body.options,
                format,
            )?)
        } else {
            None
        };
        let webhook_url = optional_webhook_url(&state, body.webhook_url.as_deref()).await?;
        let task =
            super::tus::task_from_upload(&state, user, upload, profile, webhook_url, keep_seconds)
                .await?;
        return Ok(created(&task.view()));
    }
    let raw_url = body.url.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::MissingField,
            "url is required (or `upload` with a finished resumable upload, or a file as \
             multipart/form-data)",
        )
    })?;
    let url = crate::fetch::check_url(raw_url, &state.fetch_policy)
        .await
        .map_err(fetch_error)?;
    let format = body.format.as_deref().map(|f| ("format", f));
    let profile = resolve_profile(body.profile.as_deref(), body.options, format)?;
    let webhook_url = optional_webhook_url(&state, body.webhook_url.as_deref()).await?;
    super::usage::check_quota(&state, user.id, None).await?;
    let task = state
        .db
        .create_task(
            NewTask {
                id: Uuid::now_v7(),
                user_id: user.id,
                profile,
                source: Source::Url {
                    url: url.to_string(),
                },
                input_key: None,
                webhook_url,
                keep_seconds,
            },
            state.max_attempts,
        )
        .await?;
    state.signals.task_created(task.id, task.user_id);
    Ok(created(&task.view()))
}

/// The processing profiles and their options' JSON Schemas: the same schemas the API
/// validates with and the OpenAPI document shows (the UI builds its forms from them).
#[utoipa::path(get, path = "/api/profiles", tag = "tasks",
    responses((status = 200, description = "`{\"profiles\": [{\"name\", \"options\": <JSON Schema>}]}`, \
        the default profile first")))]
pub async fn profiles() -> Response {
    let profiles: Vec<serde_json::Value> = crate::domain::task::option_schemas()
        .into_iter()
        .map(|(name, schema)| serde_json::json!({"name": name, "options": schema}))
        .collect();
    Json(serde_json::json!({ "profiles": profiles })).into_response()
}

/// A URL that is not one is bad input (400); a well-formed URL the service may not or
/// cannot fetch (policy, unknown host, timeout) is unprocessable (422).
/// A destination of webhook calls, as given by a user: checked against the fetch policy
/// (the deliverer checks it again at every attempt), normalised.
/// `field` names it in an error.
pub async fn checked_webhook_url(state: &AppState, field: &str, raw: &str) -> ApiResult<String> {
    crate::fetch::check_url(raw, &state.fetch_policy)
        .await
        .map(|u| u.to_string())
        .map_err(|e| {
            let e = fetch_error(e);
            match e {
                ApiError::Client {
                    status,
                    code,
                    message,
                } => ApiError::new(status, code, format!("{field}: {message}")),
                other => other,
            }
        })
}

/// [`checked_webhook_url`] of an optional, possibly blank, value.
pub async fn optional_webhook_url(
    state: &AppState,
    raw: Option<&str>,
) -> ApiResult<Option<String>> {
    match raw.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(raw) => checked_webhook_url(state, "webhook_url", raw)
            .await
            .map(Some),
    }
}

pub fn fetch_error(e: crate::fetch::FetchError) -> ApiError {
    let status = match e {
        crate::fetch::FetchError::InvalidUrl(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// How many tasks per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub max: Option<String>,
    /// `0` (or `asc`) ascending, `1` (or `desc`) descending by creation (default 1).
    #[param(value_type = Option<String>, pattern = "^(0|1|asc|desc)$")]
    pub order: Option<String>,
    /// Only tasks with this status.
    #[param(value_type = Option<TaskStatus>)]
    pub status: Option<String>,
    /// From the previous page's `Link` header.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
    /// `false` (or `0`) leaves each task's `commands` (ffmpeg command lines, the bulk of
    /// a task object) out of the list; default `true`.
    #[param(value_type = Option<bool>)]
    pub commands: Option<String>,
}

/// List the caller's tasks (a JSON array; `Link: rel="next"` when more remain).
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(ListParams),
    responses((status = 200, body = [TaskView]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn list_tasks(
    State(state): State<AppState>,
    user: AuthUser,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    task_page(&state, user.id, &p, "/api/tasks").await
}

/// One page of `owner`'s tasks; the `Link` to the next page starts with `path`.
pub(super) async fn task_page(
    state: &AppState,
    owner: Uuid,
    p: &ListParams,
    path: &str,
) -> ApiResult<Response> {
    let page = p.query()?;
    let with_commands = p.with_commands()?;
    let limit = page.limit;
    let q = ListQuery {
        limit: limit + 1,
        ..page.clone()
    };
    let mut tasks = state.signals.reads().tasks(&state.db, owner, &q).await?;
    let more = tasks.len() > limit as usize;
    tasks.truncate(limit as usize);
    let mut views: Vec<TaskView> = tasks.iter().map(|t| t.view()).collect();
    if !with_commands {
        views.iter_mut().for_each(|v| v.commands = None);
    }
    let mut resp = Json(views).into_response();
    if more && let Some(last) = tasks.last() {
        let mut link = format!(
            "{path}?max={limit}&order={}&cursor={}",
            u8::from(page.descending),
            last.id
        );
        if let Some(s) = page.status {
            link.push_str(&format!("&status={}", s.as_str()));
        }
        if !with_commands {
            link.push_str("&commands=false");
        }
        if let Ok(v) = HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

impl ListParams {
    /// Whether the list shows each task's `commands`.
    fn with_commands(&self) -> ApiResult<bool> {
        match self.commands.as_deref() {
            None | Some("") | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(_) => Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                "commands must be true or false",
            )),
        }
    }

    /// The page asked for, checked; `limit` is the page size.
    fn query(&self) -> ApiResult<ListQuery> {
        let bad = |message: &str| ApiError::bad_request(ErrorCode::InvalidQuery, message);
        let limit = match self.max.as_deref() {
            None | Some("") => 100,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| bad("max must be an integer from 1 to 1000"))?,
        };
        let descending = match self.order.as_deref() {
            None | Some("") | Some("1") | Some("desc") => true,
            Some("0") | Some("asc") => false,
            Some(_) => return Err(bad("order must be 0 (ascending) or 1 (descending)")),
        };
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
                bad("status must be one of queued, running, succeeded, failed, cancelled")
            })?),
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Uuid::parse_str(c).map_err(|_| bad("cursor is not valid"))?),
        };
        Ok(ListQuery {
            limit,
            descending,
            status,
            after,
        })
    }
}

/// Unknown and malformed ids answer the same 404 as another user's task.
pub fn task_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// One task, with live progress.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = TaskView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    let id = task_id(&id)?;
    let task = state
        .signals
        .reads()
        .task(&state.db, user.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(task.view()))
}

/// How long a delete is tried again through transient database errors: a user waits for it.
const DELETE_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Stop a task and delete it with its files (a running ffmpeg is killed).
#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user = %user.id, task = %id))]
pub async fn delete_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = task_id(&id)?;
    // A delete that lost a race (a deadlock or serialization failure rolls it back) or met a
    // dropped connection is made again rather than answered 500. If a commit's reply was
    // lost, the second call finds nothing: 404, as the client's own retry would get, and the
    // orphan sweep removes the files.
    let removed = retry_transient(DELETE_RETRY_WINDOW, "delete_task", || {
        state.db.delete_task(user.id, id)
    })
    .await?
    .ok_or_else(ApiError::not_found)?;
    state.signals.cancel_task(removed.id);
    state.storage.delete_prefix(&keys::task_prefix(id)).await?;
    state.signals.task_changed(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Stop a queued or running task and keep its record (`cancelled`).
#[utoipa::path(post, path = "/api/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "already finished")),
    security(("bearer" = [])))]
pub async fn cancel_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    let id = task_id(&id)?;
    let (task, changed) = state
        .db
        .cancel_task(user.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !changed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotCancellable,
            format!("the task is already {}", task.status.as_str()),
        ));
    }
    state.signals.cancel_task(id);
    state.signals.task_changed(id);
    state.signals.message_queued(); // `task.cancelled`, if anyone is told
    Ok(Json(task.view()))
}

/// Queue a failed or cancelled task again.
#[utoipa::path(post, path = "/api/tasks/{id}/retry", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not failed or cancelled"),
              (status = 410, body = ErrorBody, description = "`files_expired`: its input was removed after the retention period")),
    security(("bearer" = [])))]
pub async fn retry_task(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    let id = task_id(&id)?;
    match state.db.retry_task(user.id, id, state.max_attempts).await? {
        RetryOutcome::Requeued(task) => {
            // Earlier runs' objects need no removal here: a failed or cancelled run deletes
            // its own, and the next success prunes every other run.
            state.signals.job_queued();
            state.signals.task_changed(id);
            Ok(Json(task.view()))
        }
        RetryOutcome::NotRetryable(status) => {
            // A finished task whose files are gone has no input left to run on.
            if let Some(task) = state.db.get_task(user.id, id).await? {
                super::files::files_kept(&task)?;
            }
            Err(not_retryable(status))
        }
        RetryOutcome::NotFound => Err(ApiError::not_found()),
    }
}

fn not_retryable(status: TaskStatus) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::NotRetryable,
        format!(
            "only failed or cancelled tasks can be retried; this one is {}",
            status.as_str()
        ),
    )
}
