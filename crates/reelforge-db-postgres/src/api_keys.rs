//! The statements of API keys.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Result;

/// A row of `api_keys`.
#[derive(Debug)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_api_key(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    name: &str,
    prefix: &str,
    key_hash: &str,
    scope: &str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scope, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        user_id,
        name,
        prefix,
        key_hash,
        scope,
        created_at,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The user's keys not revoked, oldest first (expired ones too: the owner sees they ran out).
pub async fn api_keys_of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<Vec<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        "SELECT id, user_id, name, prefix, scope, created_at, expires_at, last_used_at
         FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        user_id,
    )
    .fetch_all(db)
    .await
}

/// Rows changed (0: no such live key of the user).
pub async fn revoke_api_key(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE api_keys SET revoked_at = $1
         WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        now,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The live key of `key_hash` whose user is not disabled.
pub async fn live_api_key(
    db: impl PgExecutor<'_>,
    key_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        "SELECT k.id, k.user_id, k.name, k.prefix, k.scope, k.created_at, k.expires_at,
                k.last_used_at
         FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > $2) AND NOT u.disabled",
        key_hash,
        now,
    )
    .fetch_optional(db)
    .await
}

pub async fn touch_api_key(db: impl PgExecutor<'_>, id: Uuid, now: DateTime<Utc>) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE api_keys SET last_used_at = $1 WHERE id = $2",
        now,
        id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
