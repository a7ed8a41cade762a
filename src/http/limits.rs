//! How many bytes a request body may have, decided in one place for every route: 64 KiB on
//! the account routes, 1 MiB for the other JSON bodies, `REELFORGE_MAX_UPLOAD` plus the
//! multipart envelope for an upload, and `REELFORGE_MAX_UPLOAD` for the bytes of a resumable
//! upload (tus). A declared `Content-Length` over the bound is refused before a byte is read; a chunked body is cut off at the bound while it streams. Nothing is
//! ever buffered past the bound, so no client can make the process hold more than that per
//! request.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{LengthLimitError, Limited};

use super::AppState;
use super::error::ApiError;

/// Sign-up and log-in bodies: a few short strings.
pub const AUTH_BODY_LIMIT: u64 = 64 * 1024;
/// Every other JSON body (a task submission with its options).
pub const JSON_BODY_LIMIT: u64 = 1024 * 1024;

/// The account routes, canonical and legacy.
const AUTH_ROUTES: [&str; 6] = [
    "/api/auth/signup",
    "/api/auth/login",
    "/auth/signup",
    "/auth/login",
    "/api/session",
    "/api/account/password",
];
/// The routes that take a multipart upload.
const UPLOAD_ROUTES: [&str; 2] = ["/api/tasks", "/tasks"];
/// The routes that take the bytes of a resumable upload (tus `POST` and `PATCH`).
const TUS_ROUTES: [&str; 2] = ["/api/uploads", "/api/uploads/{id}"];

/// The bound the middleware set for this request, for handlers to quote in their 413.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub u64);

/// Refuse a declared length over the route's bound, and cap whatever streams.
pub(super) async fn limit_body(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let limit = body_limit(&req, state.max_upload);
    if declared_length(req.headers()).is_some_and(|n| n > limit) {
        return ApiError::too_large(quoted_limit(&req, limit, state.max_upload)).into_response();
    }
    req.extensions_mut().insert(BodyLimit(limit));
    let req = req.map(|body| Body::new(Limited::new(body, usize_limit(limit))));
    next.run(req).await
}

/// The route's bound (see the module comment).
fn body_limit(req: &Request, max_upload: u64) -> u64 {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    match route {
        Some(r) if AUTH_ROUTES.contains(&r) => AUTH_BODY_LIMIT,
        Some(r) if is_upload(req, r) => super::upload::body_limit(max_upload),
        Some(r) if TUS_ROUTES.contains(&r) => max_upload,
        _ => JSON_BODY_LIMIT,
    }
}

fn is_upload(req: &Request, route: &str) -> bool {
    req.method() == Method::POST && UPLOAD_ROUTES.contains(&route) && is_multipart(req.headers())
}

/// An upload is refused with the limit its sender configured, not the envelope's.
fn quoted_limit(req: &Request, limit: u64, max_upload: u64) -> u64 {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    match route {
        Some(r) if is_upload(req, r) => max_upload,
        _ => limit,
    }
}

pub(super) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
}

pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn usize_limit(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Whether a body error (at any depth of its chain) is the cap being reached.
pub fn is_over_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_error_is_found_at_any_depth() {
        // Capped twice, as a handler's own `to_bytes` cap does over the middleware's.
        let capped = Body::new(Limited::new(Body::from("0123456789"), 4));
        let e = axum::body::to_bytes(capped, 100).await.err();
        assert!(e.is_some_and(|e| is_over_limit(&e)));
        let other = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_over_limit(&other));
    }
}
