//! The statements of API keys.

use sqlx::SqliteExecutor;

use crate::Result;

/// A row of `api_keys`.
#[derive(Debug)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_api_key(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    name: &str,
    prefix: &str,
    key_hash: &str,
    scope: &str,
    created_at: i64,
    expires_at: Option<i64>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scope, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
pub async fn api_keys_of_user(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
) -> Result<Vec<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT id AS "id!", user_id AS "user_id!", name, prefix, scope, created_at,
                  expires_at, last_used_at
           FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY id"#,
        user_id,
    )
    .fetch_all(db)
    .await
}

/// Rows changed (0: no such live key of the user).
pub async fn revoke_api_key(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    now: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
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
    db: impl SqliteExecutor<'_>,
    key_hash: &str,
    now: i64,
) -> Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT k.id AS "id!", k.user_id AS "user_id!", k.name, k.prefix, k.scope,
                  k.created_at, k.expires_at, k.last_used_at
           FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE k.key_hash = ?1 AND k.revoked_at IS NULL
             AND (k.expires_at IS NULL OR k.expires_at > ?2) AND u.disabled = 0"#,
        key_hash,
        now,
    )
    .fetch_optional(db)
    .await
}

pub async fn touch_api_key(db: impl SqliteExecutor<'_>, id: &str, now: i64) -> Result<u64> {
    let r = sqlx::query!("UPDATE api_keys SET last_used_at = ? WHERE id = ?", now, id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}
