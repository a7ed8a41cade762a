//! Extractors: the authenticated user, and a JSON body that accepts any content type and
//! reports bad input in the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::limits::{BodyLimit, JSON_BODY_LIMIT, is_over_limit};
use super::observe::RequestUser;
use crate::auth::{API_KEY_PREFIX, TokenError, token_hash};
use crate::db::User;
use crate::domain::field_error::{describe, json_kind, whole_numbers};
use crate::domain::{ErrorCode, KeyScope};

/// The caller, from `Authorization: Bearer <jwt>` or else the browser session's cookie
/// (`session::request_session`: CSRF-checked on unsafe methods). An `Authorization` header
/// decides alone: a bad one is refused even next to a good cookie. A disabled or deleted
/// user is refused either way.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    /// The session's id when the cookie authenticated the request.
    pub session: Option<Uuid>,
    /// The API key when one (`Bearer rf_…`) authenticated the request.
    pub key: Option<KeyGrant>,
}

/// The API key a request was made with: which one, and what it may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyGrant {
    pub id: Uuid,
    pub scope: KeyScope,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(authenticate(parts, state).await?.0)
    }
}

/// The caller, and their account when checking the credential read it (a JWT's does; a
/// session's or an API key's query checks the account without returning it).
async fn authenticate(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(AuthUser, Option<User>), ApiError> {
    let (user, account) = if parts.headers.contains_key(header::AUTHORIZATION) {
        bearer_user(&parts.headers, &parts.method, state).await?
    } else {
        let session = super::session::request_session(state, &parts.method, &parts.headers)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let user = AuthUser {
            id: session.user_id,
            session: Some(session.id),
            key: None,
        };
        (user, None)
    };
    if let Some(slot) = parts.extensions.get::<RequestUser>() {
        slot.set(user.id);
    }
    Ok((user, account))
}

/// A signed-in admin; anyone else is refused with `403 admin_only`. What an admin may
/// change still follows the credential (a `read` API key may only read).
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (user, account) = authenticate(parts, state).await?;
        let account = match account {
            Some(account) => Some(account),
            None => state.db.user_by_id(user.id).await?,
        };
        if !account.is_some_and(|u| u.admin) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AdminOnly,
                "only an admin may see or change this",
            ));
        }
        Ok(Admin(user))
    }
}

async fn bearer_user(
    headers: &HeaderMap,
    method: &Method,
    state: &AppState,
) -> Result<(AuthUser, Option<User>), ApiError> {
    {
        let token = bearer_token(headers).ok_or_else(ApiError::unauthorized)?;
        if token.starts_with(API_KEY_PREFIX) {
            return Ok((key_user(token, method, state).await?, None));
        }
        let claims = state.tokens.verify_claims(token).map_err(|e| match e {
            TokenError::Expired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::TokenExpired,
                "the token has expired; log in again for a new one",
            ),
            TokenError::Invalid => invalid_token("the token is not valid"),
        })?;
        let id = claims.sub;
        let account = state.signals.reads().user(&state.db, id).await?;
        let Some(user) = account.filter(|u| !u.disabled) else {
            return Err(invalid_token("the token's account is disabled or deleted"));
        };
        if claims.pwv != user.password_version {
            return Err(invalid_token(
                "the password changed after this token was issued; log in again",
            ));
        }
        let caller = AuthUser {
            id,
            session: None,
            key: None,
        };
        Ok((caller, Some(user)))
    }
}

/// A request with an API key: the key must be live (read through the read cache, so a
/// revocation holds at once in this process and within its change feed's delay, at most
/// `cache::MAX_AGE`, in every other), and a `read` key only reads.
async fn key_user(token: &str, method: &Method, state: &AppState) -> Result<AuthUser, ApiError> {
    let key = state
        .signals
        .reads()
        .api_key(&state.db, &token_hash(token))
        .await?
        .ok_or_else(|| invalid_token("the API key is unknown, revoked or expired"))?;
    let safe = [Method::GET, Method::HEAD, Method::OPTIONS].contains(method);
    if key.scope == KeyScope::Read && !safe {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            "this API key may only read; use a read-write key",
        ));
    }
    Ok(AuthUser {
        id: key.user_id,
        session: None,
        key: Some(KeyGrant {
            id: key.id,
            scope: key.scope,
        }),
    })
}

fn invalid_token(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidToken, message)
}

/// The token of `Authorization: Bearer <token>`; the scheme name is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work too.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// JSON body parsed whatever the `Content-Type` says (legacy clients often send none or the wrong one), with
/// malformed JSON and wrong types answered as 400 naming the field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let bytes = body_bytes(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The whole body, at most the route's bound (`limits::BodyLimit`) or 1 MiB: 413 past it.
pub async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(JSON_BODY_LIMIT, |l| l.0);
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    axum::body::to_bytes(req.into_body(), cap)
        .await
        .map_err(|e| {
            if is_over_limit(&e) {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(ErrorCode::InvalidBody, "could not read the body")
            }
        })
}

/// Parse a JSON object body into `T`. Anything but an object is refused (serde would
/// otherwise fill a struct from an array, field by position); wrong fields are answered
/// in words naming the field ([`describe`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            "the body is empty; send a JSON object",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON ({e})"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("the body must be a JSON object, not {}", json_kind(&value)),
        ));
    }
    serde_path_to_error::deserialize(whole_numbers(value)).map_err(|e| {
        let path = e.path().to_string();
        let code = if e.inner().to_string().starts_with("missing field") {
            ErrorCode::MissingField
        } else {
            ErrorCode::InvalidField
        };
        ApiError::bad_request(code, describe(&path, e.inner()))
    })
}
