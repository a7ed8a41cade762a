//! `POST /api/auth/signup` and `POST /api/auth/login` (and their legacy routes without
//! `/api`).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, JsonBody};
use crate::auth::AccountKey;
use crate::config::SignupMode;
use crate::db::{NewUser, RepoError, User, UserWithHash};
use crate::domain::ErrorCode;
use crate::domain::{EmailAddress, Password, Username};

/// Both legacy spellings: `password` + `password_2` (the video platform) or `password1` +
/// `password2` (the conversion tool).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub password_2: Option<String>,
    pub password1: Option<String>,
    pub password2: Option<String>,
    /// An invite code from an admin; required when the server's signup is `invite`.
    pub invite: Option<String>,
}

/// Who may sign up here, for a signup form to show (or not) its invite field.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupPolicy {
    pub mode: crate::config::SignupMode,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub message: String,
}

/// `password` and either `email` (the video platform's clients) or `username`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// Sees the admin view.
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub user: UserInfo,
}

pub(super) fn missing(field: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::MissingField, format!("{field} is required"))
}

fn invalid(field: &str, why: String) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidField, format!("{field}: {why}"))
}

/// Whether anyone may sign up (`open`), with an invite code (`invite`), or nobody (`closed`).
#[utoipa::path(get, path = "/api/auth/signup", tag = "accounts",
    responses((status = 200, body = SignupPolicy)))]
pub async fn signup_policy(State(state): State<AppState>) -> Json<SignupPolicy> {
    Json(SignupPolicy { mode: state.signup })
}

/// The invite a signup must spend, by the server's `REELFORGE_SIGNUP`: `Ok(None)` when none
/// is needed.
fn required_invite(mode: SignupMode, invite: Option<&str>) -> ApiResult<Option<String>> {
    match (mode, invite.map(str::trim).filter(|c| !c.is_empty())) {
        (SignupMode::Open, _) => Ok(None),
        (SignupMode::Closed, _) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::SignupClosed,
            "signing up is closed on this server; ask its admin for an account",
        )),
        (SignupMode::Invite, None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InviteRequired,
            "signing up here needs an invite code (field `invite`); ask an admin for one",
        )),
        (SignupMode::Invite, Some(code)) => Ok(Some(crate::auth::token_hash(code))),
    }
}

fn invalid_invite() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::InvalidInvite,
        "the invite code is unknown, used already or expired; ask an admin for a new one",
    )
}

/// Create an account.
#[utoipa::path(post, path = "/api/auth/signup", tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, body = SignupResponse),
        (status = 400, body = ErrorBody, description = "missing field; a user name or e-mail address that is not valid (e.g. with invisible or control characters); weak password; mismatch"),
        (status = 403, body = ErrorBody, description = "`signup_closed` (REELFORGE_SIGNUP=closed); `invite_required` or `invalid_invite` (REELFORGE_SIGNUP=invite)"),
        (status = 409, body = ErrorBody, description = "username (in any case) or e-mail taken"),
        (status = 413, body = ErrorBody, description = "the body is over 64 KiB"),
        (status = 429, body = ErrorBody, description = "too many signups from this address; see Retry-After"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SignupRequest>,
) -> ApiResult<(StatusCode, Json<SignupResponse>)> {
    let invite_hash = required_invite(state.signup, req.invite.as_deref())?;
    let username = req.username.as_deref().ok_or_else(|| missing("username"))?;
    let email = req.email.as_deref().ok_or_else(|| missing("email"))?;
    let (p1, p2) = match (
        &req.password,
        &req.password_2,
        &req.password1,
        &req.password2,
    ) {
        (Some(a), Some(b), _, _) => (a, b),
        (_, _, Some(a), Some(b)) => (a, b),
        (Some(_), None, _, _) => return Err(missing("password_2")),
        (None, _, Some(_), None) => return Err(missing("password2")),
        _ => return Err(missing("password")),
    };
    let username = Username::parse(username).map_err(|e| invalid("username", e))?;
    let email = EmailAddress::parse(email).map_err(|e| invalid("email", e))?;
    if p1 != p2 {
        return Err(ApiError::bad_request(
            ErrorCode::PasswordMismatch,
            "the two passwords are not equal",
        ));
    }
    let password =
        Password::parse(p1).map_err(|e| ApiError::bad_request(ErrorCode::WeakPassword, e))?;
    // Counted once the request is valid: what the limit guards is the hash that follows.
    let client = state.trusted_proxies.client_ip(peer.ip(), &headers);
    state
        .signup_limiter
        .check(&client)
        .map_err(ApiError::rate_limited)?;
    let hash = state.hashing.hash(password.expose().to_string()).await?;
    let user = state
        .db
        .create_user(NewUser {
            username,
            email,
            password_hash: hash,
            admin: false,
            invite_hash,
        })
        .await
        .map_err(|e| match e {
            RepoError::InviteNotLive => invalid_invite(),
            RepoError::Conflict(field) => ApiError::new(
                StatusCode::CONFLICT,
                if field == "email" {
                    ErrorCode::EmailTaken
                } else {
                    ErrorCode::UsernameTaken
                },
                format!("that {field} is already registered"),
            ),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            id: user.id,
            username: user.username,
            email: user.email,
            message: "user created".into(),
        }),
    ))
}

/// The account `login` (a user name or an e-mail address) names, if the client's and the
/// account's login limits allow one more attempt.
pub(super) async fn limited_lookup(
    state: &AppState,
    client: IpAddr,
    login: &str,
) -> ApiResult<Option<UserWithHash>> {
    let limiter = &state.login_limiter;
    limiter
        .check_address(client)
        .map_err(ApiError::rate_limited)?;
    let found = account_named(state, login).await?;
    // One bucket per account, whichever of its names (in whatever case) was typed.
    let account = match &found {
        Some(u) => AccountKey::User(u.user.id),
        None => AccountKey::typed(login),
    };
    limiter
        .check_account(&account)
        .map_err(ApiError::rate_limited)?;
    Ok(found)
}

/// A name longer than any account can have is not looked up.
async fn account_named(state: &AppState, login: &str) -> ApiResult<Option<UserWithHash>> {
    if login.chars().count() > AccountKey::MAX_TYPED {
        return Ok(None);
    }
    Ok(state.db.user_for_login(login).await?)
}

/// Exchange credentials for a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = ErrorBody, description = "not a JSON object, or a missing field"),
        (status = 401, body = ErrorBody, description = "same body for unknown user and wrong password"),
        (status = 413, body = ErrorBody, description = "the body is over 64 KiB"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let user = authenticate(&state, peer, &headers, req).await?;
    let token = state.tokens.issue(user.id, user.password_version)?;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer".into(),
        expires_in: state.tokens.ttl.as_secs(),
        user: UserInfo::of(user),
    }))
}

/// How the request was authenticated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A browser session cookie.
    Session,
    /// A login token from `/api/auth/login`.
    Token,
    /// An API key (`Bearer rf_…`).
    ApiKey,
}

/// The caller: the account, and the credential the request carried.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub user: UserInfo,
    pub credential: CredentialKind,
    /// The API key, when one authenticated the request.
    pub key: Option<super::keys::KeyView>,
}

/// Who the caller is (`reelforge whoami`): any credential may ask, a read-only key too.
#[utoipa::path(get, path = "/api/account", tag = "accounts",
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<AccountView>> {
    let account = state
        .db
        .user_by_id(user.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let key = match user.key {
        Some(grant) => (state.db.api_keys(user.id).await?)
            .into_iter()
            .find(|k| k.id == grant.id)
            .map(|k| super::keys::view(&k)),
        None => None,
    };
    let credential = match (user.key, user.session) {
        (Some(_), _) => CredentialKind::ApiKey,
        (None, Some(_)) => CredentialKind::Session,
        (None, None) => CredentialKind::Token,
    };
    Ok(Json(AccountView {
        user: UserInfo::of(account),
        credential,
        key,
    }))
}

impl UserInfo {
    pub fn of(user: User) -> Self {
        UserInfo {
            id: user.id,
            username: user.username,
            email: user.email,
            admin: user.admin,
        }
    }
}

/// The account a log-in body names, if its password is right and it is not disabled: the
/// one check behind both bearer tokens (`/api/auth/login`) and sessions (`/api/session`),
/// with the same rate limits and the same answer for an unknown user and a wrong password.
pub(super) async fn authenticate(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    req: LoginRequest,
) -> ApiResult<User> {
    let login = req
        .email
        .as_deref()
        .or(req.username.as_deref())
        .ok_or_else(|| missing("email or username"))?
        .trim()
        .to_string();
    let password = req.password.ok_or_else(|| missing("password"))?;
    // Behind a load balancer the peer is the proxy; see `REELFORGE_TRUSTED_PROXIES`.
    let client = state.trusted_proxies.client_ip(peer.ip(), headers);
    let (user, hash) = match limited_lookup(state, client, &login).await? {
        Some(u) if !u.user.disabled => (Some(u.user), u.password_hash),
        _ => (None, (*state.dummy_hash).clone()),
    };
    let ok = state.hashing.verify(password, hash).await?;
    match (ok, user) {
        (true, Some(u)) => Ok(u),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "wrong user name, e-mail or password",
        )),
    }
}
