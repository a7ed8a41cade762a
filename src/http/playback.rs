//! Playback URLs (`GET /api/tasks/{id}/playback` issues them, `/api/play/{token}/{name}`
//! serves them) and share links (`/api/tasks/{id}/shares` manages them, `/s/{token}/{name}`
//! serves them): a task's outputs readable without an `Authorization` header, by a
//! `<video>` element, an HLS player or `ffprobe`.
//!
//! Both put the credential in the path, before the file name, so that the relative URIs of
//! an HLS playlist (`stream_0.m3u8`, `stream_0_000.ts`) resolve to siblings under the same
//! credential. A playback token is signed and self-contained (`crate::playback`: short-lived,
//! not revocable, nothing stored); a share token is random, stored as its SHA-256, and
//! revocable. Files are served by `files::serve_object` for [`Purpose::Playback`]: bytes with
//! `Range` on local storage; on S3/GCS a 302 to a presigned URL, except playlists, which are
//! served from here so that their relative URIs stay on this signed path.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, body_bytes, parse_json};
use super::files::{Purpose, output, owned_task, redirect, serve_object};
use super::tasks::task_id;
use crate::auth::{random_token, token_hash};
use crate::domain::{ErrorCode, TaskRecord};
use crate::playback::{Grant, PLAYBACK_TTL, PlaybackError, unix_now};

/// Where playback URLs live; the token follows.
pub const PLAY_PREFIX: &str = "/api/play/";
/// Where share links live; the token follows.
pub const SHARE_PREFIX: &str = "/s/";
/// A share link's lifetime when the request names none, and the longest it may ask for.
pub const SHARE_DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const SHARE_MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// One output's URL under a playback or share token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedOutput {
    pub name: String,
    /// Absolute path (no host): works in `<video src>`, hls.js, Safari and ffprobe, with no
    /// header.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackLinks {
    /// The prefix every output's URL shares (`/api/play/{token}/`): relative references in
    /// HLS playlists resolve under it.
    pub base_url: String,
    pub outputs: Vec<LinkedOutput>,
    /// One hour from now.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateShareRequest {
    /// Lifetime in seconds, 1 to 7 776 000 (90 days); default 604 800 (7 days).
    #[schema(minimum = 1, maximum = 7776000)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A new share link: the only time its URL is shown (only its hash is stored).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedShare {
    pub id: Uuid,
    /// The link's prefix (`/s/{token}/`); an output is `url` + its name.
    pub url: String,
    pub outputs: Vec<LinkedOutput>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn linked(base: &str, task: &TaskRecord) -> Vec<LinkedOutput> {
    task.outputs
        .iter()
        .map(|o| LinkedOutput {
            name: o.name.clone(),
            url: format!("{base}{}", o.name),
        })
        .collect()
}

fn at(unix_secs: u64) -> DateTime<Utc> {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Signed playback URLs of the task's outputs, valid for one hour.
#[utoipa::path(get, path = "/api/tasks/{id}/playback", tag = "files",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = PlaybackLinks),
        (status = 404, body = ErrorBody, description = "no such task"),
    ),
    security(("bearer" = [])))]
pub async fn playback_links(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let task = owned_task(&state, user, &id).await?;
    let expires = unix_now().saturating_add(PLAYBACK_TTL.as_secs());
    let token = state.playback.sign(Grant {
        user: user.id,
        task: task.id,
        expires,
    });
    let base_url = format!("{PLAY_PREFIX}{token}/");
    let mut resp = Json(PlaybackLinks {
        outputs: linked(&base_url, &task),
        base_url,
        expires_at: at(expires),
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// What every playback and share route answers, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; never built
enum LinkResponses {
    #[response(
        status = 200,
        description = "the file (local storage, or an HLS playlist); \
        media and playlists inline, anything else as an attachment"
    )]
    Whole,
    #[response(status = 206, description = "a range (local storage)")]
    Range,
    #[response(
        status = 302,
        description = "S3 or GCS storage, but for HLS playlists: the file is at the presigned \
            URL in `Location`",
        headers(("Location" = String))
    )]
    Redirect,
    #[response(
        status = 404,
        description = "no such file, or a revoked or expired share"
    )]
    NotFound(ErrorBody),
    #[response(
        status = 410,
        description = "`files_expired`: the task's files were removed after its retention period"
    )]
    Gone(ErrorBody),
}

/// An output through a signed playback URL (no `Authorization` needed).
#[utoipa::path(get, path = "/api/play/{token}/{name}", tag = "files",
    params(("token" = String, Path, description = "from GET /api/tasks/{id}/playback"),
           ("name" = String, Path, description = "an output's name"),
           ("Range" = Option<String>, Header)),
    responses(LinkResponses,
        (status = 403, body = ErrorBody, description = "`invalid_link`: a tampered or expired token"),
        (status = 416, body = ErrorBody)))]
pub async fn play(
    State(state): State<AppState>,
    Path((token, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let grant = state.playback.verify(&token, unix_now()).map_err(|e| {
        let message = match e {
            PlaybackError::Expired => "this playback link has expired; ask for a new one",
            PlaybackError::Invalid => "this playback link is not valid",
        };
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::InvalidLink, message)
    })?;
    if !state.user_active(grant.user).await? {
        return Err(ApiError::not_found());
    }
    let task = state
        .db
        .get_task(grant.user, grant.task)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let out = output(&task, &name)?;
    serve_object(&state, &out.key, &out.name, Purpose::Playback, &headers).await
}

/// An output through a share link (no `Authorization` needed).
#[utoipa::path(get, path = "/s/{token}/{name}", tag = "files",
    params(("token" = String, Path, description = "from POST /api/tasks/{id}/shares"),
           ("name" = String, Path, description = "an output's name"),
           ("Range" = Option<String>, Header)),
    responses(LinkResponses, (status = 416, body = ErrorBody)))]
pub async fn shared(
    State(state): State<AppState>,
    Path((token, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let task = state
        .db
        .shared_task(&token_hash(&token))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let out = output(&task, &name)?;
    serve_object(&state, &out.key, &out.name, Purpose::Playback, &headers).await
}

/// Create a share link to the task's outputs.
#[utoipa::path(post, path = "/api/tasks/{id}/shares", tag = "files",
    params(("id" = String, Path)),
    request_body(content = Option<CreateShareRequest>, description = "optional; an empty body takes the default lifetime"),
    responses(
        (status = 201, body = CreatedShare),
        (status = 400, body = ErrorBody, description = "`expiresIn` out of range"),
        (status = 404, body = ErrorBody, description = "no such task"),
    ),
    security(("bearer" = [])))]
pub async fn create_share(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let task = owned_task(&state, user, &id).await?;
    let body = body_bytes(req).await?;
    // No body, or JSON `null` (the body is optional), asks for the defaults.
    let text = body.trim_ascii();
    let lifetime = if text.is_empty() || text == b"null" {
        SHARE_DEFAULT_TTL
    } else {
        let req: CreateShareRequest = parse_json(&body)?;
        share_lifetime(req.expires_in)?
    };
    let token = random_token();
    let share = state
        .db
        .create_share(user.id, task.id, &token_hash(&token), lifetime)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let url = format!("{SHARE_PREFIX}{token}/");
    let mut resp = (
        StatusCode::CREATED,
        Json(CreatedShare {
            id: share.id,
            outputs: linked(&url, &task),
            url,
            created_at: share.created_at,
            expires_at: share.expires_at,
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn share_lifetime(expires_in: Option<u64>) -> ApiResult<Duration> {
    match expires_in {
        None => Ok(SHARE_DEFAULT_TTL),
        Some(s) if (1..=SHARE_MAX_TTL.as_secs()).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            format!(
                "expiresIn: must be 1 to {} seconds (90 days)",
                SHARE_MAX_TTL.as_secs()
            ),
        )),
    }
}

/// The task's live share links (their URLs are not kept, so not shown).
#[utoipa::path(get, path = "/api/tasks/{id}/shares", tag = "files",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = Vec<ShareView>),
        (status = 404, body = ErrorBody, description = "no such task"),
    ),
    security(("bearer" = [])))]
pub async fn list_shares(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ShareView>>> {
    let task = owned_task(&state, user, &id).await?;
    let shares = state.db.list_shares(user.id, task.id).await?;
    Ok(Json(
        shares
            .into_iter()
            .map(|s| ShareView {
                id: s.id,
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect(),
    ))
}

/// Revoke a share link: it answers 404 from now on.
#[utoipa::path(delete, path = "/api/tasks/{id}/shares/{share_id}", tag = "files",
    params(("id" = String, Path), ("share_id" = String, Path)),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, body = ErrorBody, description = "no such task or share"),
    ),
    security(("bearer" = [])))]
pub async fn delete_share(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, share_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let task = task_id(&id)?;
    let share = Uuid::parse_str(&share_id).map_err(|_| ApiError::not_found())?;
    if state.db.delete_share(user.id, task, share).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// The path as logged: the token of a playback or share URL replaced, since it is a
/// credential (a share token for up to 90 days).
pub fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in [PLAY_PREFIX, SHARE_PREFIX] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let name = rest.split_once('/').map_or("", |(_, name)| name);
            return format!("{prefix}{{token}}/{name}").into();
        }
    }
    path.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_not_logged() {
        assert_eq!(
            logged_path("/api/play/SECRET/master.m3u8"),
            "/api/play/{token}/master.m3u8"
        );
        assert_eq!(logged_path("/s/SECRET/a/b.ts"), "/s/{token}/a/b.ts");
        assert_eq!(logged_path("/s/SECRET"), "/s/{token}/");
        assert_eq!(logged_path("/api/tasks/1"), "/api/tasks/1");
    }

    #[test]
    fn share_lifetimes() {
        assert_eq!(share_lifetime(None).ok(), Some(SHARE_DEFAULT_TTL));
        assert_eq!(share_lifetime(Some(60)).ok(), Some(Duration::from_secs(60)));
        assert_eq!(share_lifetime(Some(7_776_000)).ok(), Some(SHARE_MAX_TTL));
        assert!(share_lifetime(Some(0)).is_err());
        assert!(share_lifetime(Some(7_776_001)).is_err());
    }
}

/// Where the links in e-mails lead: an output of the caller's task, through the browser's
/// session. Logged in: a 302 to a fresh playback URL of the output (one hour). Not logged
/// in: a 302 to the log-in page, which comes back here afterwards. The link itself carries
/// no credential, so it works whenever it is clicked and for nobody else.
#[utoipa::path(get, path = "/go/outputs/{id}/{name}", tag = "files",
    params(("id" = String, Path, description = "task id"), ("name" = String, Path, description = "an output's name")),
    responses(
        (status = 302, description = "to a fresh playback URL of the output, or to the log-in page", headers(("Location" = String))),
        (status = 404, body = ErrorBody, description = "no such output of the logged-in user's task"),
    ))]
pub async fn go_output(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let here = format!("/go/outputs/{}/{}", urlencode(&id), urlencode(&name));
    let session =
        super::session::request_session(&state, &axum::http::Method::GET, &headers).await?;
    let Some(session) = session else {
        return redirect(&format!("/?next={}#/login", urlencode(&here)));
    };
    let user = AuthUser {
        id: session.user_id,
        session: Some(session.id),
        key: None,
    };
    let task = owned_task(&state, user, &id).await?;
    let out = output(&task, &name)?;
    let expires = unix_now().saturating_add(PLAYBACK_TTL.as_secs());
    let token = state.playback.sign(Grant {
        user: user.id,
        task: task.id,
        expires,
    });
    redirect(&format!("{PLAY_PREFIX}{token}/{}", urlencode(&out.name)))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
