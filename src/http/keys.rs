//! API keys (personal access tokens): `/api/keys`. A key is shown once, when made; the
//! database keeps its SHA-256. Keys are managed with a log-in (session or login token),
//! never with a key: a leaked key cannot mint more.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, body_bytes, parse_json};
use super::tasks::task_id;
use crate::auth::{api_key_prefix, new_api_key, token_hash};
use crate::db::cache::Change;
use crate::db::{ApiKey, NewApiKey};
use crate::domain::{ErrorCode, KeyScope};

/// Keys per user.
pub const MAX_KEYS: usize = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for (e.g. `nightly backup job`); not blank.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// `read` (GET only) or `read-write` (default).
    pub scope: Option<KeyScope>,
    /// Days until it stops working (1–3650); none: until revoked.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: uuid::Uuid,
    pub name: String,
    /// `rf_` and the key's first 8 characters.
    pub prefix: String,
    pub scope: KeyScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new key: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    /// `Authorization: Bearer rf_…` on any API route.
    pub token: String,
}

pub(super) fn view(k: &ApiKey) -> KeyView {
    KeyView {
        id: k.id,
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scope: k.scope,
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
    }
}

/// Keys are managed with a log-in, not with a key.
fn logged_in(user: AuthUser) -> ApiResult<AuthUser> {
    match user.key {
        None => Ok(user),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            "API keys are managed with a log-in (the web UI or a login token), not with a key",
        )),
    }
}

/// Make an API key.
#[utoipa::path(post, path = "/api/keys", tag = "accounts",
    request_body = CreateKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 400, body = ErrorBody, description = "a bad name, scope or expiry"),
        (status = 403, body = ErrorBody, description = "`insufficient_scope`: asked with an API key"),
        (status = 409, body = ErrorBody, description = "`too_many_keys`: 50 already"),
    ),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    let user = logged_in(user)?;
    let body: CreateKey = parse_json(&body_bytes(req).await?)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "name: give the key a name of 1 to 100 characters",
        ));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(Utc::now() + chrono::Duration::days(i64::from(days))),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                "expires_in_days: between 1 and 3650, or leave it out for no expiry",
            ));
        }
    };
    if state.db.api_keys(user.id).await?.len() >= MAX_KEYS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TooManyKeys,
            format!("you have {MAX_KEYS} API keys already; revoke one first"),
        ));
    }
    let token = new_api_key();
    let key = state
        .db
        .create_api_key(NewApiKey {
            user_id: user.id,
            name: name.to_string(),
            prefix: api_key_prefix(&token),
            key_hash: token_hash(&token),
            scope: body.scope.unwrap_or(KeyScope::ReadWrite),
            expires_at,
        })
        .await?;
    let body = CreatedKey {
        key: view(&key),
        token,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The caller's API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/keys", tag = "accounts",
    responses((status = 200, body = [KeyView]),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`: asked with an API key")),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<KeyView>>> {
    let user = logged_in(user)?;
    let keys = state.db.api_keys(user.id).await?;
    Ok(Json(keys.iter().map(view).collect()))
}

/// Revoke an API key: it stops working at once on this API process, and within 0.5 s
/// (milliseconds on PostgreSQL) on every other. A key may revoke
/// itself (what `reelforge logout` does), but no other key.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`: asked with another API key, or a read-only one")),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = task_id(&id)?;
    let user = match &user.key {
        Some(own) if own.id == id => user,
        _ => logged_in(user)?,
    };
    if state.db.revoke_api_key(user.id, id).await? {
        state.signals.changed(Change::Keys(user.id));
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
