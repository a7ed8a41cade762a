//! What a user has stored against `REELFORGE_USER_QUOTA` (checked before a new task stores
//! anything), how long a task asks its files to be kept (`expires_in`), and `GET /api/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::accounts::UserInfo;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::AuthUser;
use crate::domain::ErrorCode;

/// The shortest and longest `expires_in` a task may ask for.
const KEEP_MIN: u64 = 60;
const KEEP_MAX: u64 = 3650 * 24 * 3600;

/// A task's `expires_in` (a duration such as `90m` or `7d`, or a number of seconds) as
/// seconds; `None` when not given.
pub(super) fn expires_in(text: Option<&str>) -> ApiResult<Option<u64>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let seconds = match text.parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => crate::config::parse_duration(text)
            .ok()
            .map(|d| d.as_secs()),
    };
    match seconds {
        Some(s @ KEEP_MIN..=KEEP_MAX) => Ok(Some(s)),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            format!(
                "expires_in: how long to keep the task's files after it finishes, from 1m to \
                 3650d (e.g. `7d`, or a number of seconds); {text:?} is not"
            ),
        )),
    }
}

/// `expires_in` of a JSON body: a string, or a number of seconds.
pub(super) fn expires_in_json(value: Option<&serde_json::Value>) -> ApiResult<Option<u64>> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => expires_in(Some(s)),
        Some(serde_json::Value::Number(n)) => expires_in(Some(&n.to_string())),
        Some(other) => expires_in(Some(&other.to_string())),
    }
}

/// A user's room under `REELFORGE_USER_QUOTA`.
#[derive(Debug, Clone, Copy)]
pub(super) struct QuotaRoom {
    pub used: u64,
    pub quota: u64,
}

impl QuotaRoom {
    pub fn left(&self) -> u64 {
        self.quota.saturating_sub(self.used)
    }

    /// `quota_exceeded`, with what is left; `incoming` is the new task's size when known.
    pub fn refuse(&self, incoming: Option<u64>) -> ApiError {
        let need = incoming.map_or_else(String::new, |n| format!("this task needs {n} bytes and "));
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::QuotaExceeded,
            format!(
                "{need}you have {} of your {} bytes left ({} stored); delete tasks you no \
                 longer need, or ask an admin for more room",
                self.left(),
                self.quota,
                self.used
            ),
        )
    }
}

/// The user's room, when a quota is set.
pub(super) async fn quota_room(state: &AppState, user: Uuid) -> ApiResult<Option<QuotaRoom>> {
    let Some(quota) = state.user_quota else {
        return Ok(None);
    };
    let used = state.db.stored_bytes(user).await?;
    Ok(Some(QuotaRoom { used, quota }))
}

/// Refuse a new task that would take `user` over the quota with `incoming` more bytes
/// (`None` when its size is not known yet: a URL to fetch), before it stores anything.
pub(super) async fn check_quota(
    state: &AppState,
    user: Uuid,
    incoming: Option<u64>,
) -> ApiResult<()> {
    match quota_room(state, user).await? {
        Some(room) if room.left() == 0 || incoming.is_some_and(|n| n > room.left()) => {
            Err(room.refuse(incoming))
        }
        _ => Ok(()),
    }
}

/// What the caller stores and may store.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Bytes of inputs and outputs of tasks whose files are kept, and of resumable uploads
    /// not yet made into tasks.
    pub stored_bytes: u64,
    /// `REELFORGE_USER_QUOTA`; `null`: no limit.
    pub quota_bytes: Option<u64>,
    /// `REELFORGE_RETENTION`: seconds a finished task's files are kept; `null`: until the
    /// task is deleted (or its own `expires_in`).
    pub retention_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserInfo,
    pub usage: Usage,
}

/// The caller's account and storage: bytes stored against the quota, and how long files are
/// kept.
#[utoipa::path(get, path = "/api/me", tag = "accounts",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Me>> {
    let account = state
        .db
        .user_by_id(user.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Json(Me {
        user: UserInfo::of(account),
        usage: Usage {
            stored_bytes: state.db.stored_bytes(user.id).await?,
            quota_bytes: state.user_quota,
            retention_seconds: state.retention.map(|d| d.as_secs()),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_takes_durations_or_seconds_within_bounds() {
        assert_eq!(expires_in(None).unwrap(), None);
        assert_eq!(expires_in(Some(" ")).unwrap(), None);
        assert_eq!(expires_in(Some("7d")).unwrap(), Some(7 * 24 * 3600));
        assert_eq!(expires_in(Some("90m")).unwrap(), Some(5400));
        assert_eq!(expires_in(Some("3600")).unwrap(), Some(3600));
        for bad in ["59", "30s", "3651d", "soon", "-5"] {
            assert!(expires_in(Some(bad)).is_err(), "{bad}");
        }
        let json = |v| expires_in_json(Some(&v));
        assert_eq!(json(serde_json::json!(120)).unwrap(), Some(120));
        assert_eq!(json(serde_json::json!("2h")).unwrap(), Some(7200));
        assert!(json(serde_json::json!(1.5)).is_err());
        assert!(json(serde_json::json!(true)).is_err());
    }
}
