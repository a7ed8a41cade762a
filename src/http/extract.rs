//! Extractors: the authenticated user, and a JSON body that accepts any content type and
//! reports bad input in the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::limits::{BodyLimit, JSON_BODY_LIMIT, is_over_limit};
use super::observe::RequestUser;
use crate::domain::ErrorCode;

/// The caller, from `Authorization: Bearer <jwt>`. A disabled or deleted user is refused.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(ApiError::unauthorized)?
            .trim();
        let id = state
            .tokens
            .verify(token)
            .ok_or_else(ApiError::unauthorized)?;
        if !state.user_active(id).await? {
            return Err(ApiError::unauthorized());
        }
        if let Some(slot) = parts.extensions.get::<RequestUser>() {
            slot.set(id);
        }
        Ok(AuthUser { id })
    }
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

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            "the body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(ErrorCode::InvalidJson, format!("malformed JSON: {inner}"))
        } else if path.is_empty() || path == "." {
            ApiError::bad_request(ErrorCode::InvalidField, inner.to_string())
        } else {
            ApiError::bad_request(ErrorCode::InvalidField, format!("{path}: {inner}"))
        }
    })
}
