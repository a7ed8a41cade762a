//! Browser sessions: `POST/GET/DELETE /api/session` and `POST /api/account/password`, and
//! the cookie and CSRF rules every cookie-authenticated request follows.
//!
//! The cookie holds an opaque random token (`auth::random_token`, 256 bits); the database
//! keeps only its SHA-256, so the cookie is the only copy of the secret and JavaScript never
//! sees it (`HttpOnly`). It is `SameSite=Lax` (a cross-site subrequest or form POST does not
//! carry it) and `Secure` when the client reached us over https, which for this plain-HTTP
//! service means a trusted proxy said so (`X-Forwarded-Proto`, `REELFORGE_TRUSTED_PROXIES`).
//! A session ends [`SESSION_TIMEOUTS`]`.idle` after it was last used, or
//! [`SESSION_TIMEOUTS`]`.absolute` after log-in, whichever comes first; log-out and a
//! password change delete it server-side, so a copied cookie stops working at once.
//!
//! CSRF: `SameSite=Lax` alone is not enough (same-site siblings, old browsers), so a request
//! authenticated by the cookie with an unsafe method must also carry `X-CSRF-Token` equal to
//! the session's token (which a page gets from `GET /api/session`; another site cannot read
//! it), and must not come from another origin (`Origin`, or `Sec-Fetch-Site: cross-site`).
//! Bearer requests carry no ambient credential and are not checked.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::accounts::{LoginRequest, UserInfo, authenticate, missing};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, JsonBody};
use crate::auth::{AccountKey, random_token, same_secret, token_hash};
use crate::db::cache::Change;
use crate::db::{Session, SessionTimeouts};
use crate::domain::{ErrorCode, Password};

/// The session cookie's name.
pub const COOKIE: &str = "reelforge_session";
/// The header an unsafe cookie-authenticated request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// 7 days after the last request, 30 days after log-in at the latest.
pub const SESSION_TIMEOUTS: SessionTimeouts = SessionTimeouts {
    idle: Duration::from_secs(7 * 24 * 3600),
    absolute: Duration::from_secs(30 * 24 * 3600),
};

/// What the page knows of its session (never the cookie's token).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub user: UserInfo,
    /// Send it back in `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// When the session ends unless it is used again (it is extended by use, up to 30 days
    /// after log-in).
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangeRequest {
    pub current_password: Option<String>,
    pub new_password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    pub message: String,
    /// The caller's new session, when it was authenticated by the session cookie (which
    /// is replaced); `null` for a bearer token.
    pub session: Option<SessionResponse>,
}

// --- the rules every cookie-authenticated request follows ----------------------------------

/// The live session the request's cookie names, if any. For an unsafe method the CSRF
/// rules are checked too (403 `csrf_failed`).
pub async fn request_session(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Option<Session>> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    let Some(session) = state
        .db
        .live_session(&token_hash(token), SESSION_TIMEOUTS.idle)
        .await?
    else {
        return Ok(None);
    };
    if !is_safe(method) {
        check_origin(headers)?;
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|t| same_secret(t.trim(), &session.csrf_token)) {
            return Err(csrf_failed(
                "this request needs the session's `X-CSRF-Token` header (see GET /api/session)",
            ));
        }
    }
    Ok(Some(session))
}

fn is_safe(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

fn csrf_failed(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::CsrfFailed, message)
}

/// The session token of the `Cookie` header(s), if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.trim_matches('"'))
}

/// Refuse a request a browser marked as coming from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` (`null` included) whose host is not the `Host` the request
/// was sent to. Ports are compared when `Host` names one (a proxy may strip it: nginx's
/// `$host`); schemes are not, as the scheme the client used is only known behind a trusted
/// proxy. No `Origin` (old browsers on same-origin requests, non-browser clients) passes:
/// the CSRF token is what protects those.
pub fn check_origin(headers: &HeaderMap) -> ApiResult<()> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(csrf_failed("cross-site requests are refused"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) if same_origin(origin, host) => Ok(()),
        _ => Err(csrf_failed(
            "the request's Origin is not this site; cross-origin requests are refused",
        )),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the `host` header's host (and its port,
/// when it has one).
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let (Some(origin_host), Some(origin_port)) = (url.host_str(), url.port_or_known_default())
    else {
        return false;
    };
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let same_host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .eq_ignore_ascii_case(origin_host.trim_start_matches('[').trim_end_matches(']'));
    same_host && authority.port_u16().is_none_or(|p| p == origin_port)
}

// --- the cookie ----------------------------------------------------------------------------

/// A new session of `user`: the cookie's token (shown to nobody but the browser) and its row.
async fn start_session(state: &AppState, user: uuid::Uuid) -> ApiResult<(String, Session)> {
    let token = random_token();
    let session = state
        .db
        .create_session(user, &token_hash(&token), &random_token(), SESSION_TIMEOUTS)
        .await?;
    Ok((token, session))
}

fn cookie(value: &str, max_age: u64, secure: bool) -> ApiResult<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("session cookie: {e}")))
}

fn session_cookie(token: &str, session: &Session, secure: bool) -> ApiResult<HeaderValue> {
    let left = (session.expires_at - Utc::now()).num_seconds().max(0);
    cookie(token, u64::try_from(left).unwrap_or(0), secure)
}

/// Whether the response's cookie gets `Secure` (see the module comment).
fn over_https(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    state.trusted_proxies.forwarded_https(peer.ip(), headers)
}

pub(super) async fn session_body(
    state: &AppState,
    session: &Session,
) -> ApiResult<SessionResponse> {
    let user = state
        .db
        .user_by_id(session.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(SessionResponse {
        user: UserInfo::of(user),
        csrf_token: session.csrf_token.clone(),
        expires_at: session.ends_at(SESSION_TIMEOUTS.idle),
    })
}

fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

// --- routes ------------------------------------------------------------------------------------

/// Log in to a browser session: the body of `/api/auth/login`, answered with a session
/// cookie instead of a token.
#[utoipa::path(post, path = "/api/session", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = SessionResponse, description = "logged in; the session is in the `Set-Cookie` cookie `reelforge_session` (HttpOnly, SameSite=Lax, Secure behind a trusted https proxy)",
            headers(("Set-Cookie" = String))),
        (status = 400, body = ErrorBody, description = "not a JSON object, or a missing field"),
        (status = 401, body = ErrorBody, description = "same body for unknown user and wrong password"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`: sent from another site"),
        (status = 413, body = ErrorBody, description = "the body is over 64 KiB"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    // Login CSRF: another site must not log the browser into an account of its choosing.
    check_origin(&headers)?;
    let user = authenticate(&state, peer, &headers, req).await?;
    // A session the browser already had is replaced, not left behind.
    if let Some(old) = cookie_token(&headers) {
        state.db.delete_session(&token_hash(old)).await?;
    }
    let (token, session) = start_session(&state, user.id).await?;
    let body = SessionResponse {
        user: UserInfo::of(user),
        csrf_token: session.csrf_token.clone(),
        expires_at: session.ends_at(SESSION_TIMEOUTS.idle),
    };
    let mut resp = Json(body).into_response();
    let set = session_cookie(&token, &session, over_https(&state, peer, &headers))?;
    resp.headers_mut().insert(header::SET_COOKIE, set);
    no_store(&mut resp);
    Ok(resp)
}

/// The current browser session: its user and CSRF token (a page calls it when it loads).
#[utoipa::path(get, path = "/api/session", tag = "accounts",
    responses(
        (status = 200, body = SessionResponse),
        (status = 401, body = ErrorBody, description = "no live session (`unauthorized`)"),
    ))]
pub async fn get_session(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let session = request_session(&state, &Method::GET, &headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let mut resp = Json(session_body(&state, &session).await?).into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// Log out: the session is deleted server-side (its cookie no longer works anywhere) and the
/// cookie cleared. Idempotent: without a live session it only clears the cookie.
#[utoipa::path(delete, path = "/api/session", tag = "accounts",
    params(("X-CSRF-Token" = Option<String>, Header, description = "the session's CSRF token (required with a live session)")),
    responses(
        (status = 204, description = "logged out; `Set-Cookie` clears the cookie"),
        (status = 403, body = ErrorBody, description = "`csrf_failed`: no or a wrong `X-CSRF-Token`, or another origin"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if request_session(&state, &method, &headers).await?.is_some()
        && let Some(token) = cookie_token(&headers)
    {
        state.db.delete_session(&token_hash(token)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let clear = cookie("", 0, over_https(&state, peer, &headers))?;
    resp.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(resp)
}

/// Change the caller's password. Every browser session of the account ends; a caller
/// authenticated by the session cookie gets a new session (cookie and CSRF token) in the
/// answer. Login (bearer) tokens issued before the change stop working too.
#[utoipa::path(post, path = "/api/account/password", tag = "accounts",
    request_body = PasswordChangeRequest,
    params(("X-CSRF-Token" = Option<String>, Header, description = "with the session cookie: the session's CSRF token")),
    responses(
        (status = 200, body = PasswordChanged),
        (status = 400, body = ErrorBody, description = "a missing field, or a weak new password (`weak_password`)"),
        (status = 403, body = ErrorBody, description = "the current password is wrong (`invalid_credentials`), or `csrf_failed`"),
        (status = 413, body = ErrorBody, description = "the body is over 64 KiB"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    user: AuthUser,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PasswordChangeRequest>,
) -> ApiResult<Response> {
    let current = req
        .current_password
        .ok_or_else(|| missing("currentPassword"))?;
    let new = req.new_password.ok_or_else(|| missing("newPassword"))?;
    let new =
        Password::parse(&new).map_err(|e| ApiError::bad_request(ErrorCode::WeakPassword, e))?;
    // The argon2 run below is guarded like a log-in's.
    let client = state.trusted_proxies.client_ip(peer.ip(), &headers);
    let limiter = &state.login_limiter;
    limiter
        .check_address(client)
        .map_err(ApiError::rate_limited)?;
    limiter
        .check_account(&AccountKey::User(user.id))
        .map_err(ApiError::rate_limited)?;
    let account = state
        .db
        .user_by_id(user.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let stored = state
        .db
        .user_for_login(&account.username)
        .await?
        .filter(|u| u.user.id == user.id)
        .ok_or_else(ApiError::unauthorized)?;
    if !state.hashing.verify(current, stored.password_hash).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InvalidCredentials,
            "the current password is wrong",
        ));
    }
    let hash = state.hashing.hash(new.expose().to_string()).await?;
    if !state.db.change_password(user.id, &hash).await? {
        return Err(ApiError::unauthorized());
    }
    state.signals.changed(Change::User(user.id));
    let mut cookie_header = None;
    let session = match user.session {
        Some(_) => {
            let (token, session) = start_session(&state, user.id).await?;
            let secure = over_https(&state, peer, &headers);
            cookie_header = Some(session_cookie(&token, &session, secure)?);
            Some(session_body(&state, &session).await?)
        }
        None => None,
    };
    let mut resp = Json(PasswordChanged {
        message: "password changed; every session of the account has ended".into(),
        session,
    })
    .into_response();
    if let Some(c) = cookie_header {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    no_store(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_match_the_host_header() {
        assert!(same_origin("http://localhost:8080", "localhost:8080"));
        assert!(same_origin(
            "https://Media.Example.com",
            "media.example.com"
        ));
        assert!(same_origin(
            "https://media.example.com",
            "media.example.com:443"
        ));
        // A proxy that strips the port (nginx's `$host`).
        assert!(same_origin("http://localhost:8080", "localhost"));
        assert!(same_origin("http://[::1]:3000", "[::1]:3000"));
        assert!(!same_origin("http://localhost:8081", "localhost:8080"));
        assert!(!same_origin("https://evil.example", "media.example.com"));
        assert!(!same_origin(
            "https://media.example.com.evil.example",
            "media.example.com"
        ));
        assert!(!same_origin("null", "media.example.com"));
        assert!(!same_origin("", "media.example.com"));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(check_origin(&headers(&[("host", "a.test")])).is_ok());
        assert!(check_origin(&headers(&[("host", "a.test"), ("origin", "http://a.test")])).is_ok());
        assert!(
            check_origin(&headers(&[("host", "a.test"), ("origin", "http://b.test")])).is_err()
        );
        assert!(check_origin(&headers(&[("host", "a.test"), ("origin", "null")])).is_err());
        assert!(check_origin(&headers(&[("origin", "http://a.test")])).is_err());
        assert!(
            check_origin(&headers(&[
                ("host", "a.test"),
                ("sec-fetch-site", "cross-site")
            ]))
            .is_err()
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; reelforge_session=tok; b=2")]);
        assert_eq!(cookie_token(&h), Some("tok"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "reelforge_session=x")]);
        assert_eq!(cookie_token(&h), Some("x"));
        assert_eq!(
            cookie_token(&headers(&[("cookie", "reelforge_session=")])),
            None
        );
        assert_eq!(
            cookie_token(&headers(&[("cookie", "xreelforge_session=a")])),
            None
        );
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_flags() {
        let c = cookie("tok", 60, false).unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "reelforge_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert!(
            cookie("tok", 60, true)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
