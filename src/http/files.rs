//! Downloads: outputs, the original input, and the conversion tool's legacy
//! `/api/files/{filename}`.
//!
//! With local storage the API streams the bytes with `Content-Length`, `Accept-Ranges` and
//! single-range `Range` support. With S3 or GCS it never proxies them: it answers `302 Found`
//! with a presigned GET URL of the object (valid for `storage::SIGNED_URL_TTL`, at most
//! 15 minutes) that names the download and its type; the client repeats any `Range` there.
//! HLS playlists are the exception: always served by the API, so that a player's relative
//! segment requests come back here and each gets its own presigned URL.
//!
//! [`serve_object`] is the one way a stored file leaves the API, for downloads here and for
//! playback and share links (`playback.rs`). Whatever the route, a file is never rendered as
//! a page of this origin: its `Content-Type` comes from its extension and is never HTML or
//! SVG (`storage::content_type`), with `X-Content-Type-Options: nosniff` so that browsers do
//! not guess otherwise, `Content-Security-Policy: sandbox` in case one renders it anyway,
//! and `Content-Disposition: attachment` except for media a player opens ([`Purpose`]).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::AuthUser;
use super::tasks::task_id;
use crate::domain::ErrorCode;
use crate::domain::{OutputFile, Source, TaskRecord};
use crate::storage::{StorageError, content_type};

/// A parsed `Range` header against an object of `size` bytes.
#[derive(Debug, PartialEq)]
pub enum RangeRequest {
    Whole,
    Part(std::ops::Range<u64>),
    Unsatisfiable,
}

/// Parse one `bytes=` range (`a-b`, `a-`, `-n`). Several ranges or other units fall back
/// to the whole body, as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeRequest::Whole,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size)),
            Err(_) => None,
        },
        (false, true) => a.parse::<u64>().ok().map(|start| (start, size)),
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(start), Ok(end)) if end >= start => Some((start, end.saturating_add(1).min(size))),
            _ => None,
        },
    };
    match parsed {
        None => RangeRequest::Whole,
        Some((start, end)) if start >= size || start >= end => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Part(start..end),
    }
}

/// Why a file is served: a download is always an attachment; playback (a media element, an
/// HLS player) gets audio, video, images and HLS playlists and segments inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Download,
    Playback,
}

/// Whether a file of this type is opened in place by a player rather than saved. Every
/// `video/`, `audio/` and `image/` type `content_type` gives qualifies (it gives no SVG), as
/// do HLS playlists (`application/vnd.apple.mpegurl`; segments are `video/mp2t`).
fn plays_inline(content_type: &str) -> bool {
    ["video/", "audio/", "image/"]
        .iter()
        .any(|p| content_type.starts_with(p))
        && content_type != "image/svg+xml"
        || content_type == "application/vnd.apple.mpegurl"
}

/// `Content-Disposition` of the file named `name`, served for `purpose`.
fn disposition(name: &str, purpose: Purpose) -> String {
    let kind = match purpose {
        Purpose::Playback if plays_inline(content_type(name)) => "inline",
        _ => "attachment",
    };
    format!(
        "{kind}; filename=\"{}\"",
        name.replace(['"', '\\', '\r', '\n'], "")
    )
}

/// The headers that keep a served file from being rendered as a page of this origin (see
/// the module comment).
fn no_render(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
}

/// HLS playlists name their segments and media playlists by relative URI. Served from the
/// API, those resolve to sibling download routes (each of which redirects to its own
/// presigned URL); served from a presigned URL they would resolve to unsigned object URLs.
/// So playlists (small text files) are never redirected.
fn is_playlist(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".m3u8")
}

/// Serve `key` as `name`: a redirect to a presigned URL when the store signs them (but for
/// playlists, see [`is_playlist`]), otherwise the bytes, honouring `Range`.
pub(super) async fn serve_object(
    state: &AppState,
    key: &str,
    name: &str,
    purpose: Purpose,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let size = match state.storage.size(key).await {
        Ok(s) => s,
        Err(StorageError::NotFound) => return Err(ApiError::not_found()),
        Err(e) => return Err(e.into()),
    };
    if !is_playlist(name)
        && let Some(url) = state
            .storage
            .signed_url(key, &disposition(name, purpose), content_type(name))
            .await?
    {
        return redirect(url.as_str());
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match parse_range(range_header, size) {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Part(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeRequest::Unsatisfiable => return Ok(unsatisfiable(size)),
    };
    let body = if size == 0 {
        Body::empty()
    } else {
        let object = state
            .storage
            .read(key, range.clone())
            .await
            .map_err(|e| match e {
                StorageError::NotFound => ApiError::not_found(),
                other => ApiError::Internal(other.into()),
            })?;
        Body::from_stream(object.body)
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    let len = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(r) = &range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition(name, purpose)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    no_render(h);
    Ok(resp)
}

/// `302` to `location` (a presigned URL of the object on S3/GCS, so the bytes never pass
/// through the API; or a fresh playback URL), never cached.
pub(super) fn redirect(location: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(location)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("redirect location: {e}")))?;
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    no_render(resp.headers_mut());
    Ok(resp)
}

fn unsatisfiable(size: u64) -> Response {
    let mut r = super::error::error_response(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::RangeNotSatisfiable,
        "the requested range is outside the file",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// What every download route answers, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; never built
enum DownloadResponses {
    #[response(status = 200, description = "the file (local storage)")]
    Whole,
    #[response(status = 206, description = "a range (local storage)")]
    Range,
    #[response(
        status = 302,
        description = "S3 or GCS storage: the file is at the presigned URL in `Location`, \
            valid for at most 15 minutes (send any `Range` there); the API does not proxy \
            the bytes. HLS playlists (`.m3u8`) are the exception: always 200 from the API, \
            so that their relative segment names come back here",
        headers(("Location" = String, description = "presigned GET URL of the file"))
    )]
    Redirect,
    #[response(status = 404, description = "no such task or file")]
    NotFound(ErrorBody),
    #[response(
        status = 410,
        description = "`files_expired`: the task's files were removed after its retention \
            period (`REELFORGE_RETENTION` or the task's `expires_in`); its record is kept"
    )]
    Gone(ErrorBody),
}

/// Nothing when the task's files are kept; `410 files_expired` once retention removed them.
pub(super) fn files_kept(task: &TaskRecord) -> ApiResult<()> {
    match task.files_expired_at {
        None => Ok(()),
        Some(at) => Err(ApiError::new(
            StatusCode::GONE,
            ErrorCode::FilesExpired,
            format!(
                "the files of this task were removed on {}, at the end of their retention \
                 period; the task's record is kept",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )),
    }
}

/// The output of `task` named `name`: 404 when it has none of that name, 410 when its files
/// were removed.
pub(super) fn output<'a>(task: &'a TaskRecord, name: &str) -> ApiResult<&'a OutputFile> {
    files_kept(task)?;
    task.outputs
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn owned_task(
    state: &AppState,
    user: AuthUser,
    id: &str,
) -> ApiResult<TaskRecord> {
    state
        .db
        .get_task(user.id, task_id(id)?)
        .await?
        .ok_or_else(ApiError::not_found)
}

fn input_name(task: &TaskRecord) -> String {
    match &task.source {
        Source::Upload { filename, .. } => filename.clone(),
        Source::Url { .. } => task
            .input_key
            .as_deref()
            .and_then(|k| k.rsplit('/').next())
            .unwrap_or("input")
            .to_string(),
    }
}

/// Download one output of a task.
#[utoipa::path(get, path = "/api/tasks/{id}/outputs/{name}", tag = "files",
    params(("id" = String, Path), ("name" = String, Path),
           ("Range" = Option<String>, Header, description = "bytes=START-END")),
    responses(DownloadResponses, (status = 416, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn download_output(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let task = owned_task(&state, user, &id).await?;
    let out = output(&task, &name)?;
    serve_object(&state, &out.key, &out.name, Purpose::Download, &headers).await
}

/// Download the task's original input.
#[utoipa::path(get, path = "/api/tasks/{id}/input", tag = "files",
    params(("id" = String, Path), ("Range" = Option<String>, Header)),
    responses(DownloadResponses),
    security(("bearer" = [])))]
pub async fn download_input(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let task = owned_task(&state, user, &id).await?;
    files_kept(&task)?;
    let key = task.input_key.clone().ok_or_else(ApiError::not_found)?;
    serve_object(
        &state,
        &key,
        &input_name(&task),
        Purpose::Download,
        &headers,
    )
    .await
}

/// Legacy conversion-tool route: the caller's original or output file with this name
/// (newest task first).
#[utoipa::path(get, path = "/api/files/{filename}", tag = "files",
    params(("filename" = String, Path), ("Range" = Option<String>, Header)),
    responses(DownloadResponses),
    security(("bearer" = [])))]
pub async fn download_file(
    State(state): State<AppState>,
    user: AuthUser,
    Path(filename): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let task = state
        .db
        .task_with_file(user.id, &filename)
        .await?
        .ok_or_else(ApiError::not_found)?;
    files_kept(&task)?;
    if let Some(out) = task.outputs.iter().find(|o| o.name == filename) {
        return serve_object(&state, &out.key, &out.name, Purpose::Download, &headers).await;
    }
    let key = task.input_key.clone().ok_or_else(ApiError::not_found)?;
    serve_object(&state, &key, &filename, Purpose::Download, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_plays_inline_and_only_on_playback() {
        for name in [
            "a.mp4",
            "a.webm",
            "a.mp3",
            "a.png",
            "master.m3u8",
            "s_001.ts",
        ] {
            assert!(
                disposition(name, Purpose::Playback).starts_with("inline;"),
                "{name}"
            );
            assert!(
                disposition(name, Purpose::Download).starts_with("attachment;"),
                "{name}"
            );
        }
        for name in [
            "x.html", "x.svg", "x.htm", "x.xhtml", "x.zip", "x", "x.json",
        ] {
            assert!(
                disposition(name, Purpose::Playback).starts_with("attachment;"),
                "{name}"
            );
            let ct = content_type(name);
            assert!(
                !ct.contains("html") && !ct.contains("svg") && !ct.contains("xml"),
                "{ct}"
            );
        }
        assert!(!plays_inline("image/svg+xml"));
        assert_eq!(
            disposition("a\"b\r\n.mp4", Purpose::Download),
            "attachment; filename=\"ab.mp4\""
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeRequest::Part(0..10)
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeRequest::Part(90..100)
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeRequest::Part(90..100)
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            RangeRequest::Part(50..100)
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeRequest::Whole);
    }
}
