//! "Forgot password": `POST /api/password-reset` e-mails a link, `POST
//! /api/password-reset/confirm` uses it.
//!
//! The answer to a request is the same whether or not the address has an account (202, one
//! sentence), so the route tells nobody which addresses are registered. A reset is single
//! use and lives [`RESET_TTL`]; its token is an HMAC of its id (`notify::links::LinkKey`),
//! recomputed for each e-mail attempt, and the database keeps only the token's SHA-256. Using
//! one sets the password, ends every browser session and every other reset of the account,
//! and makes the login tokens issued before it invalid, in one transaction.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::accounts::missing;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::JsonBody;
use crate::auth::{AccountKey, token_hash};
use crate::db::{NewMessage, NewPasswordReset};
use crate::domain::notification::{Channel, Event, event_body};
use crate::domain::{ErrorCode, Password};

/// How long a reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(30 * 60);
/// Resets an account may ask for in [`RESET_WINDOW`]; past it, requests are answered alike
/// and send nothing.
pub const RESETS_PER_WINDOW: u32 = 3;
pub const RESET_WINDOW: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The account's e-mail address (a user name works too).
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetAccepted {
    pub message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetConfirm {
    /// From the e-mailed link (`…/#/reset/{token}`).
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new password: 8 to 1024 characters with an upper-case letter, a lower-case
    /// letter and a digit.
    #[serde(alias = "password1")]
    // Its schema is the sign-up's password (set in `http::openapi`).
    pub password: String,
    /// The new password again (must be equal).
    #[serde(alias = "password2")]
    pub password_confirmation: String,
}

/// Ask for a reset link by e-mail.
#[utoipa::path(post, path = "/api/password-reset", tag = "accounts",
    request_body = ResetRequest,
    responses(
        (status = 202, body = ResetAccepted, description = "the same answer whether or not the address has an account"),
        (status = 400, body = ErrorBody, description = "`email` is missing"),
        (status = 429, body = ErrorBody, description = "too many requests from this address; see Retry-After"),
        (status = 503, body = ErrorBody, description = "`email_unavailable`: this service sends no e-mail"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn request_reset(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ResetRequest>,
) -> ApiResult<Response> {
    if !state.email_available {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EmailUnavailable,
            "this service sends no e-mail, so it cannot reset passwords: ask its operator \
             (`reelforge user …`)",
        ));
    }
    if req.email.trim().is_empty() {
        return Err(missing("email"));
    }
    let login = req.email;
    let client = state.trusted_proxies.client_ip(peer.ip(), &headers);
    let limiter = &state.login_limiter;
    limiter
        .check_address(client)
        .map_err(ApiError::rate_limited)?;
    let login = login.trim();
    let user = if login.chars().count() <= AccountKey::MAX_TYPED {
        state.db.user_for_login(login).await?
    } else {
        None
    };
    if let Some(user) = user.filter(|u| !u.user.disabled) {
        queue_reset(&state, user.user.id, &user.user.email).await?;
    }
    let body = ResetAccepted {
        message: "if that address belongs to an account, a link to set a new password is on \
                  its way; it works for 30 minutes"
            .into(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Record a reset and queue its e-mail, unless the account asked too often lately.
async fn queue_reset(state: &AppState, user: Uuid, email: &str) -> ApiResult<()> {
    let now = Utc::now();
    let window = chrono::Duration::from_std(RESET_WINDOW).map_err(anyhow::Error::from)?;
    if state.db.resets_since(user, now - window).await? >= RESETS_PER_WINDOW {
        tracing::info!(%user, "password reset not sent: too many lately");
        return Ok(());
    }
    let id = Uuid::now_v7();
    let token = state.link_key.reset_token(id);
    let ttl = chrono::Duration::from_std(RESET_TTL).map_err(anyhow::Error::from)?;
    let data = serde_json::json!({"reset_id": id, "expires_at": now + ttl});
    state
        .db
        .create_password_reset(
            NewPasswordReset {
                id,
                user_id: user,
                token_hash: token_hash(&token),
                expires_at: now + ttl,
                message: Some(NewMessage {
                    id: Uuid::now_v7(),
                    user_id: user,
                    task_id: None,
                    channel: Channel::Email,
                    event: Event::PasswordReset,
                    target: email.to_string(),
                    endpoint_id: None,
                    payload: event_body(Event::PasswordReset, now, &data),
                }),
            },
            now,
        )
        .await?;
    state.signals.message_queued();
    Ok(())
}

/// Set a new password with the token of a reset link. Every session of the account ends.
#[utoipa::path(post, path = "/api/password-reset/confirm", tag = "accounts",
    request_body = ResetConfirm,
    responses(
        (status = 200, body = ResetAccepted),
        (status = 400, body = ErrorBody, description = "a missing field, `password_mismatch` or `weak_password`"),
        (status = 404, body = ErrorBody, description = "`invalid_reset_token`: the link is unknown, used or expired"),
        (status = 429, body = ErrorBody, description = "too many attempts from this address; see Retry-After"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn confirm_reset(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ResetConfirm>,
) -> ApiResult<Json<ResetAccepted>> {
    let (token, p1, p2) = (req.token, req.password, req.password_confirmation);
    if p1 != p2 {
        return Err(ApiError::bad_request(
            ErrorCode::PasswordMismatch,
            "the two passwords are not equal",
        ));
    }
    let password =
        Password::parse(&p1).map_err(|e| ApiError::bad_request(ErrorCode::WeakPassword, e))?;
    let client = state.trusted_proxies.client_ip(peer.ip(), &headers);
    state
        .login_limiter
        .check_address(client)
        .map_err(ApiError::rate_limited)?;
    let hash = state.hashing.hash(password.expose().to_string()).await?;
    let user = state
        .db
        .reset_password(&token_hash(token.trim()), &hash, Utc::now())
        .await?;
    if user.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::InvalidResetToken,
            "this reset link is unknown, used or expired: ask for a new one",
        ));
    }
    Ok(Json(ResetAccepted {
        message: "your password is changed: log in with it".into(),
    }))
}
