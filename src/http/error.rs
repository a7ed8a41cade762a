//! The one place errors become HTTP responses: `{"error": code, "message": sentence}`.
//! Unexpected errors are logged with their whole chain and answered with a bare 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::ErrorCode;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code.
    #[schema(example = "not_found")]
    pub error: String,
    /// A human sentence.
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// A client error with its status, code and message.
    Client {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource",
        )
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "this route needs `Authorization: Bearer <token>` or a session cookie (log in for either)",
        )
    }
    /// 429 with `Retry-After`: the wait in whole seconds, rounded up.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        }
    }
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds the limit of {limit} bytes"),
        )
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Internal(e.into())
    }
}

pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(ErrorBody {
            error: code.to_string(),
            message: message.to_string(),
        }),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, www_authenticate(code));
    }
    response
}

/// The challenge every 401 carries (RFC 9110 §11.6.1): the scheme, and for a refused
/// token the RFC 6750 error so that generic OAuth clients know to fetch a new one.
fn www_authenticate(code: ErrorCode) -> HeaderValue {
    HeaderValue::from_static(match code {
        ErrorCode::InvalidToken | ErrorCode::TokenExpired => {
            r#"Bearer realm="reelforge", error="invalid_token""#
        }
        _ => r#"Bearer realm="reelforge""#,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client {
                status,
                code,
                message,
            } => error_response(status, code, &message),
            ApiError::RateLimited { retry_after_secs } => {
                let mut r = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    &format!("too many attempts; retry in {retry_after_secs} s"),
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "an internal error occurred",
                )
            }
        }
    }
}
