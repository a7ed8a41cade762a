//! Resumable uploads: tus 1.0 at `/api/uploads` (core, `creation`,
//! `creation-with-upload`, `termination`, `expiration`, `checksum`).
//!
//! An upload's state is its database row and its bytes are in storage
//! ([`crate::storage::resumable`]), so any API process can take the next `PATCH`. A request
//! that writes holds the row's lock ([`UploadLock`]); a second writer meanwhile gets 423.
//! The locked write runs in a task of its own, so a client that goes away does not stop it
//! half-way (between storage and the row).
//! The upload's id is also the id of the task made from it: when its metadata names a
//! `profile` (or `options`, `format`) the task is queued as the last byte is stored;
//! otherwise `POST /api/tasks` with `{"upload": id}` makes it.

mod headers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use uuid::Uuid;

use self::headers::*;
use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::AuthUser;
use crate::db::{Db, NewTask, NewUpload, UploadProgress, UploadRecord};
use crate::domain::{ErrorCode, Profile, Source, TaskRecord, safe_filename};
use crate::storage::resumable::{Append, AppendEnd, Appended};
use crate::storage::{Storage, keys};

/// An upload not written to for this long expires; its bytes are removed.
pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a writer's lock lasts without renewal (a dead process's lock runs out).
const LOCK_TTL: Duration = Duration::from_secs(60);
/// How often a writer renews its lock.
const LOCK_RENEW: Duration = Duration::from_secs(15);
/// Metadata keys that describe the task to make (the same fields as `POST /api/tasks`).
const TASK_KEYS: [&str; 3] = ["profile", "options", "format"];
/// Metadata key of the task's own webhook URL (as `webhook_url` of `POST /api/tasks`).
const WEBHOOK_KEY: &str = "webhook_url";
/// Metadata key of how long the task keeps its files (as `expires_in` of `POST /api/tasks`).
const EXPIRES_KEY: &str = "expires_in";

/// `Tus-Resumable` on every response of the upload routes, errors included.
pub async fn tus_resumable(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(TUS_RESUMABLE.clone(), HeaderValue::from_static(VERSION));
    if response.status() == StatusCode::PRECONDITION_FAILED {
        let headers = response.headers_mut();
        headers.insert(TUS_VERSION.clone(), HeaderValue::from_static(VERSION));
    }
    response
}

/// What the server supports.
#[utoipa::path(options, path = "/api/uploads", tag = "uploads",
    responses((status = 204, description = "The tus versions, extensions, the largest upload and the checksum algorithms",
        headers(("Tus-Resumable" = String), ("Tus-Version" = String), ("Tus-Extension" = String),
                ("Tus-Max-Size" = u64), ("Tus-Checksum-Algorithm" = String)))))]
pub async fn options(State(state): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(TUS_VERSION.clone(), HeaderValue::from_static(VERSION));
    h.insert(TUS_EXTENSION.clone(), HeaderValue::from_static(EXTENSIONS));
    h.insert(TUS_MAX_SIZE.clone(), HeaderValue::from(state.max_upload));
    h.insert(
        TUS_CHECKSUM_ALGORITHM.clone(),
        HeaderValue::from_static(crate::storage::resumable::ChecksumAlgorithm::NAMES),
    );
    r
}

/// Start an upload (`creation`), with its first bytes if the body has them
/// (`creation-with-upload`, `Content-Type: application/offset+octet-stream`).
///
/// `Upload-Metadata` may carry `filename`, and `profile`, `options` (a JSON object) or
/// `format` as `POST /api/tasks` takes them: with any of those, the task is queued as the
/// last byte arrives, with the upload's id (its URL is in the `Reelforge-Task` header of
/// that response); without, the finished upload waits for `POST /api/tasks`
/// `{"upload": id}`.
#[utoipa::path(post, path = "/api/uploads", tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = u64, Header, description = "The upload's size in bytes (≥ 1, ≤ Tus-Max-Size)"),
        ("Upload-Metadata" = Option<String>, Header, description = "`key base64value` pairs, comma-separated: filename, profile, options, format"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream",
        description = "Optional: the first bytes (creation-with-upload)"),
    responses(
        (status = 201, description = "Created", headers(("Location" = String), ("Upload-Offset" = u64),
            ("Upload-Expires" = String), ("Tus-Resumable" = String))),
        (status = 400, body = ErrorBody, description = "A missing or malformed header, an empty upload, or invalid task metadata"),
        (status = 401, body = ErrorBody),
        (status = 412, body = ErrorBody, description = "Tus-Resumable is not 1.0.0"),
        (status = 413, body = ErrorBody, description = "Upload-Length is over REELFORGE_MAX_UPLOAD"),
        (status = 415, body = ErrorBody, description = "A body that is not application/offset+octet-stream"),
        (status = 460, body = ErrorBody, description = "The first bytes do not match Upload-Checksum"),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    let headers = req.headers().clone();
    check_version(&headers)?;
    if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidHeader,
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = size(&headers, &UPLOAD_LENGTH)?.ok_or_else(|| {
        ApiError::bad_request(ErrorCode::InvalidHeader, "Upload-Length is required")
    })?;
    if length == 0 {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyFile,
            "Upload-Length is 0: there is nothing to process",
        ));
    }
    if length > state.max_upload {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "Upload-Length {length} is over the limit of {} bytes",
                state.max_upload
            ),
        ));
    }
    super::usage::check_quota(&state, user.id, Some(length)).await?;
    let has_body = declared_body(&headers);
    if has_body && !is_offset_stream(&headers) {
        return Err(unsupported_content_type());
    }
    let checksum = checksum(&headers)?;
    let metadata = parse_metadata(&headers)?;
    task_profile(&metadata)?; // bad task metadata is refused now, not at the end
    metadata_webhook_url(&state, &metadata).await?;
    metadata_expires_in(&metadata)?;
    let id = Uuid::now_v7();
    let filename = metadata
        .get("filename")
        .or_else(|| metadata.get("name"))
        .map_or_else(|| "upload.bin".to_string(), |n| safe_filename(n));
    let key = keys::input(id, &filename);
    let parts = state.storage.begin_resumable(&key, length).await?;
    let now = Utc::now();
    let new = NewUpload {
        id,
        user_id: user.id,
        length,
        metadata,
        storage_key: key.clone(),
        parts: parts.clone(),
        created_at: now,
        expires_at: now + UPLOAD_EXPIRY,
    };
    let upload = match state.db.create_upload(new).await {
        Ok(upload) => upload,
        Err(e) => {
            if let Err(e) = state
                .storage
                .discard_resumable(id, &key, &parts, false, false)
                .await
            {
                tracing::warn!(upload = %id, error = %e, "could not abort a refused upload");
            }
            return Err(e.into());
        }
    };
    let mut response = if has_body {
        // The upload exists whatever becomes of its first bytes: the client resumes it.
        match write(&state, user, upload, 0, checksum, req.into_body()).await {
            Ok(mut r) => {
                *r.status_mut() = StatusCode::CREATED;
                r
            }
            Err(e) => e.into_response(),
        }
    } else {
        upload_headers(StatusCode::CREATED, &upload)
    };
    if let Ok(location) = HeaderValue::from_str(&format!("/api/uploads/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// How far an upload is.
#[utoipa::path(head, path = "/api/uploads/{id}", tag = "uploads",
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 200, description = "The upload's offset, length, metadata and expiry",
            headers(("Upload-Offset" = u64), ("Upload-Length" = u64), ("Upload-Metadata" = String),
                    ("Upload-Expires" = String), ("Cache-Control" = String),
                    ("Reelforge-Task" = String, description = "The task made from the upload, once there is one"))),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such upload, or not yours"),
        (status = 410, body = ErrorBody, description = "The upload expired"),
        (status = 412, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn head(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let upload = find(&state.db, user, &id).await?;
    let mut r = upload_headers(StatusCode::OK, &upload);
    let h = r.headers_mut();
    h.insert(UPLOAD_LENGTH.clone(), HeaderValue::from(upload.length));
    if let Some(metadata) = encode_metadata(&upload.metadata) {
        h.insert(UPLOAD_METADATA.clone(), metadata);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Append bytes at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/uploads/{id}", tag = "uploads",
    params(
        ("id" = Uuid, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes start: the offset HEAD reports"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64 digest>` (or sha256) of this body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Stored", headers(("Upload-Offset" = u64), ("Upload-Expires" = String),
            ("Reelforge-Task" = String, description = "The task queued from the finished upload"))),
        (status = 400, body = ErrorBody, description = "A missing or malformed header"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such upload, or not yours"),
        (status = 409, body = ErrorBody, description = "Upload-Offset is not the upload's offset"),
        (status = 410, body = ErrorBody, description = "The upload expired"),
        (status = 412, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "The bytes go past Upload-Length"),
        (status = 415, body = ErrorBody, description = "Content-Type is not application/offset+octet-stream"),
        (status = 423, body = ErrorBody, description = "Another request is writing this upload"),
        (status = 460, body = ErrorBody, description = "The body does not match Upload-Checksum; nothing of it was kept"),
    ),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let headers = req.headers();
    check_version(headers)?;
    if !is_offset_stream(headers) {
        return Err(unsupported_content_type());
    }
    let offset = size(headers, &UPLOAD_OFFSET)?.ok_or_else(|| {
        ApiError::bad_request(ErrorCode::InvalidHeader, "Upload-Offset is required")
    })?;
    let checksum = checksum(headers)?;
    let upload = find(&state.db, user, &id).await?;
    write(&state, user, upload, offset, checksum, req.into_body()).await
}

/// Stop an upload and remove its bytes (`termination`). The task made from a finished
/// upload keeps its input.
#[utoipa::path(delete, path = "/api/uploads/{id}", tag = "uploads",
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such upload, or not yours"),
        (status = 412, body = ErrorBody),
        (status = 423, body = ErrorBody, description = "Another request is writing this upload"),
    ),
    security(("bearer" = [])))]
pub async fn terminate(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let upload = owned(&state.db, user, &id).await?;
    let lock = UploadLock::take(&state.db, upload.id).await?;
    remove(&state.db, &state.storage, &lock, &lock.upload).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The caller's upload, unexpired.
async fn find(db: &Db, user: AuthUser, id: &str) -> ApiResult<UploadRecord> {
    let upload = owned(db, user, id).await?;
    if upload.expires_at < Utc::now() {
        return Err(expired());
    }
    Ok(upload)
}

async fn owned(db: &Db, user: AuthUser, id: &str) -> ApiResult<UploadRecord> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found())?;
    db.get_upload(user.id, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        ErrorCode::UploadExpired,
        "the upload expired; start a new one",
    )
}

/// Whether a request declares a body (a length above 0, or chunked).
fn declared_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// `Upload-Offset` and `Upload-Expires` (and the task, once made).
fn upload_headers(status: StatusCode, upload: &UploadRecord) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    h.insert(UPLOAD_OFFSET.clone(), HeaderValue::from(upload.offset));
    if upload.completed_at.is_none() {
        h.insert(UPLOAD_EXPIRES.clone(), http_date(upload.expires_at));
    }
    if let Some(task) = upload.task_id
        && let Ok(v) = HeaderValue::from_str(&format!("/api/tasks/{task}"))
    {
        h.insert(REELFORGE_TASK.clone(), v);
    }
    r
}

/// Store one request's bytes under the upload's lock and record them; queue the task when
/// the upload is finished and its metadata describes one. Runs to its end even if the
/// client goes away.
async fn write(
    state: &AppState,
    user: AuthUser,
    upload: UploadRecord,
    offset: u64,
    checksum: Option<crate::storage::resumable::Checksum>,
    body: Body,
) -> ApiResult<Response> {
    if offset != upload.offset {
        return Err(offset_mismatch(upload.offset));
    }
    // hyper drops this future when the client goes away, even after its last byte came:
    // cancelled there, a finishing upload would be left half-made (a completed multipart
    // upload, or a moved file, that the row does not record; no task). So the locked part
    // runs in its own task, which dropping the handle does not cancel: whatever it starts
    // it finishes, and it releases the lock.
    let (state, id) = (state.clone(), upload.id);
    let writing = tokio::spawn(async move {
        let lock = UploadLock::take(&state.db, id).await?;
        let outcome = write_locked(&state, user, &lock, offset, checksum, body).await;
        lock.release(&state.db).await;
        outcome
    });
    let (upload, end) = writing.await.context("an upload's write failed")??;
    match end {
        AppendEnd::Done | AppendEnd::Interrupted(_) => {
            Ok(upload_headers(StatusCode::NO_CONTENT, &upload))
        }
        AppendEnd::ChecksumMismatch => Err(ApiError::new(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorCode::ChecksumMismatch,
            "the body does not match Upload-Checksum; nothing of it was kept, send it again",
        )),
        AppendEnd::TooLong => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the body goes past Upload-Length {}; nothing of it was kept",
                upload.length
            ),
        )),
        AppendEnd::LockLost => Err(locked()),
    }
}

fn offset_mismatch(actual: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::OffsetMismatch,
        format!("Upload-Offset must be {actual}, where the upload stands"),
    )
}

fn locked() -> ApiError {
    ApiError::new(
        StatusCode::LOCKED,
        ErrorCode::UploadLocked,
        "another request is writing this upload; retry when it has finished",
    )
}

async fn write_locked(
    state: &AppState,
    user: AuthUser,
    lock: &UploadLock,
    offset: u64,
    checksum: Option<crate::storage::resumable::Checksum>,
    body: Body,
) -> ApiResult<(UploadRecord, AppendEnd)> {
    let mut upload = lock.upload.clone();
    // Another request may have written between the caller's read and the lock.
    if upload.offset != offset {
        return Err(offset_mismatch(upload.offset));
    }
    if upload.completed_at.is_none() {
        let appended = append(state, lock, &upload, offset, checksum, body).await?;
        if appended.end == AppendEnd::LockLost {
            return Ok((upload, appended.end));
        }
        upload = record(state, lock, upload, &appended).await?;
        if !matches!(appended.end, AppendEnd::Done | AppendEnd::Interrupted(_)) {
            return Ok((upload, appended.end));
        }
    } else if !body_is_empty(body).await {
        return Ok((upload, AppendEnd::TooLong));
    }
    // Finished: queue the task its metadata describes (again, if the request that stored
    // the last byte could not).
    if upload.completed_at.is_some()
        && upload.task_id.is_none()
        && task_profile(&upload.metadata)?.is_some()
    {
        let task = make_task(state, user, &upload, None, None, None).await?;
        upload.task_id = Some(task.id);
    }
    Ok((upload, AppendEnd::Done))
}

async fn append(
    state: &AppState,
    lock: &UploadLock,
    upload: &UploadRecord,
    offset: u64,
    checksum: Option<crate::storage::resumable::Checksum>,
    body: Body,
) -> ApiResult<Appended> {
    let append = Append {
        id: upload.id,
        key: &upload.storage_key,
        length: upload.length,
        offset,
        checksum,
        lost: &lock.lost,
    };
    let received = metrics::counter!(crate::telemetry::UPLOAD_RECEIVED);
    let stream = body
        .into_data_stream()
        .inspect_ok(move |chunk| received.increment(chunk.len() as u64))
        .map_err(|e| e.to_string());
    Ok(state
        .storage
        .append_resumable(append, &upload.parts, stream)
        .await?)
}

/// Record what a request stored (the upload as it now stands), while the lock holds.
async fn record(
    state: &AppState,
    lock: &UploadLock,
    mut upload: UploadRecord,
    appended: &Appended,
) -> ApiResult<UploadRecord> {
    let now = Utc::now();
    let before = std::mem::replace(&mut upload.parts, appended.parts.clone());
    upload.offset += appended.kept;
    upload.expires_at = now + UPLOAD_EXPIRY;
    if appended.finished {
        upload.completed_at = Some(now);
    }
    let progress = UploadProgress {
        offset: upload.offset,
        parts: upload.parts.clone(),
        expires_at: upload.expires_at,
        completed_at: upload.completed_at,
    };
    if !state
        .db
        .save_upload(upload.id, &lock.owner, &progress)
        .await?
    {
        return Err(locked());
    }
    state
        .storage
        .drop_old_tail(upload.id, &before, &upload.parts)
        .await;
    Ok(upload)
}

/// Whether a body has no bytes (a repeated final request); reads at most one chunk.
async fn body_is_empty(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    loop {
        match futures::StreamExt::next(&mut stream).await {
            None | Some(Err(_)) => return true,
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(_)) => return false,
        }
    }
}

/// The profile an upload's metadata asks for (`profile`, `options`, `format`, as the JSON
/// body of `POST /api/tasks` has them); `None` when it names none.
fn task_profile(metadata: &BTreeMap<String, String>) -> ApiResult<Option<Profile>> {
    let field = |key: &str| metadata.get(key).map(String::as_str);
    if TASK_KEYS.iter().all(|key| field(key).is_none()) {
        return Ok(None);
    }
    let options = match field("options").filter(|o| !o.trim().is_empty()) {
        None => None,
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidOptions,
                format!("the `options` metadata must be a JSON object ({e})"),
            )
        })?),
    };
    let format = field("format").map(|f| ("format", f));
    super::tasks::resolve_profile(field("profile"), options, format).map(Some)
}

/// Queue the task of a finished upload (same id), with `profile` or the one its metadata
/// names (the default profile when neither does).
async fn make_task(
    state: &AppState,
    user: AuthUser,
    upload: &UploadRecord,
    profile: Option<Profile>,
    webhook_url: Option<String>,
    keep_seconds: Option<u64>,
) -> ApiResult<TaskRecord> {
    let keep_seconds = match keep_seconds {
        Some(s) => Some(s),
        None => metadata_expires_in(&upload.metadata)?,
    };
    let webhook_url = match webhook_url {
        Some(url) => Some(url),
        None => metadata_webhook_url(state, &upload.metadata).await?,
    };
    let profile = match profile {
        Some(p) => p,
        None => task_profile(&upload.metadata)?
            .map_or_else(|| super::tasks::resolve_profile(None, None, None), Ok)?,
    };
    let filename = upload
        .storage_key
        .rsplit('/')
        .next()
        .unwrap_or("upload.bin")
        .to_string();
    let new = NewTask {
        id: upload.id,
        user_id: user.id,
        profile,
        source: Source::Upload {
            filename,
            size: upload.length,
        },
        input_key: Some(upload.storage_key.clone()),
        webhook_url,
        keep_seconds,
    };
    let task = state
        .db
        .create_task_from_upload(new, state.max_attempts)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::UploadUsed,
                "a task was already made from this upload",
            )
        })?;
    state.signals.task_created(task.id, task.user_id);
    Ok(task)
}

/// `POST /api/tasks` with `{"upload": …}`: the finished upload (its id or URL) becomes a
/// task, with `profile` (from the request) or else the one its metadata names.
pub(super) async fn task_from_upload(
    state: &AppState,
    user: AuthUser,
    reference: &str,
    profile: Option<Profile>,
    webhook_url: Option<String>,
    keep_seconds: Option<u64>,
) -> ApiResult<TaskRecord> {
    let id = reference
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let upload = find(&state.db, user, id).await?;
    if upload.completed_at.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::UploadIncomplete,
            format!(
                "the upload has {} of its {} bytes; finish it first",
                upload.offset, upload.length
            ),
        ));
    }
    if upload.task_id.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::UploadUsed,
            "a task was already made from this upload",
        ));
    }
    make_task(state, user, &upload, profile, webhook_url, keep_seconds).await
}

/// The `expires_in` an upload's metadata names, checked.
fn metadata_expires_in(metadata: &BTreeMap<String, String>) -> ApiResult<Option<u64>> {
    super::usage::expires_in(metadata.get(EXPIRES_KEY).map(String::as_str))
}

/// The `webhook_url` an upload's metadata names, checked.
async fn metadata_webhook_url(
    state: &AppState,
    metadata: &BTreeMap<String, String>,
) -> ApiResult<Option<String>> {
    super::tasks::optional_webhook_url(state, metadata.get(WEBHOOK_KEY).map(String::as_str)).await
}

/// Remove an upload held by `lock`: its row, and its bytes unless a task owns them.
async fn remove(
    db: &Db,
    storage: &Storage,
    lock: &UploadLock,
    upload: &UploadRecord,
) -> ApiResult<()> {
    let finished = upload.completed_at.is_some();
    storage
        .discard_resumable(
            upload.id,
            &upload.storage_key,
            &upload.parts,
            finished,
            upload.task_id.is_none(),
        )
        .await?;
    db.delete_locked_upload(upload.id, &lock.owner).await?;
    Ok(())
}

/// Remove uploads whose time ran out before `now` (their staged bytes, unfinished
/// multipart uploads, and finished bytes no task took); returns how many.
pub async fn sweep_expired(
    db: &Db,
    storage: &Storage,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    const BATCH: u32 = 100;
    let mut removed = 0;
    // Bounded: an upload that cannot be removed now is left for the next sweep.
    for _ in 0..100 {
        let batch = db.expired_uploads(now, BATCH).await?;
        let last = batch.len() < BATCH as usize;
        for upload in batch {
            let Some(lock) = UploadLock::try_take(db, upload.id, now).await? else {
                continue;
            };
            let result = remove(db, storage, &lock, &lock.upload).await;
            lock.release(db).await;
            match result {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(upload = %upload.id, error = ?e, "could not remove an expired upload");
                    return Ok(removed); // try again at the next sweep
                }
            }
        }
        if last {
            break;
        }
    }
    Ok(removed)
}

/// A request's hold on an upload, renewed in the background while it lives. `lost` is set
/// when a renewal finds the lock gone (the writer must stop).
struct UploadLock {
    owner: String,
    upload: UploadRecord,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl UploadLock {
    async fn take(db: &Db, id: Uuid) -> ApiResult<UploadLock> {
        UploadLock::try_take(db, id, Utc::now())
            .await?
            .ok_or_else(locked)
    }

    async fn try_take(db: &Db, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<Option<UploadLock>> {
        let owner = Uuid::now_v7().to_string();
        let Some(upload) = db.lock_upload(id, &owner, now, now + LOCK_TTL).await? else {
            return Ok(None);
        };
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(db.clone(), id, owner.clone(), lost.clone()));
        Ok(Some(UploadLock {
            owner,
            upload,
            lost,
            renewer,
        }))
    }

    async fn release(self, db: &Db) {
        self.renewer.abort();
        if let Err(e) = db.unlock_upload(self.upload.id, &self.owner).await {
            // The lock runs out by itself after LOCK_TTL.
            tracing::warn!(upload = %self.upload.id, error = %e, "could not release an upload lock");
        }
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew(db: Db, id: Uuid, owner: String, lost: Arc<AtomicBool>) {
    let mut held_until = tokio::time::Instant::now() + LOCK_TTL;
    loop {
        tokio::time::sleep(LOCK_RENEW).await;
        match db
            .renew_upload_lock(id, &owner, Utc::now() + LOCK_TTL)
            .await
        {
            Ok(true) => held_until = tokio::time::Instant::now() + LOCK_TTL,
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(upload = %id, error = %e, "could not renew an upload lock");
                // Past its last expiry (with a renewal period to spare) another
                // request may take the upload: stop writing before that.
                if tokio::time::Instant::now() + LOCK_RENEW >= held_until {
                    break;
                }
            }
        }
    }
    lost.store(true, Ordering::SeqCst);
}
