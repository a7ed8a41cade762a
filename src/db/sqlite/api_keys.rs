//! [`ApiKeyRepo`] on SQLite.

use super::*;
use crate::db::notify::millis;

fn api_key_from_row(r: sql::ApiKeyRow) -> RepoResult<ApiKey> {
    Ok(ApiKey {
        id: uuid(&r.id)?,
        user_id: uuid(&r.user_id)?,
        name: r.name,
        prefix: r.prefix,
        scope: crate::db::api_keys::scope(&r.scope)?,
        created_at: time(r.created_at)?,
        expires_at: opt_time(r.expires_at)?,
        last_used_at: opt_time(r.last_used_at)?,
    })
}

#[async_trait]
impl ApiKeyRepo for SqliteRepo {
    async fn create_api_key(&self, new: NewApiKey) -> RepoResult<ApiKey> {
        let id = Uuid::now_v7();
        let now = now_ms();
        sql::insert_api_key(
            &self.pool,
            &id.to_string(),
            &new.user_id.to_string(),
            &new.name,
            &new.prefix,
            &new.key_hash,
            new.scope.as_str(),
            now,
            new.expires_at.map(millis),
        )
        .await?;
        Ok(ApiKey {
            id,
            user_id: new.user_id,
            name: new.name,
            prefix: new.prefix,
            scope: new.scope,
            created_at: time(now)?,
            expires_at: new.expires_at,
            last_used_at: None,
        })
    }

    async fn api_keys(&self, user: Uuid) -> RepoResult<Vec<ApiKey>> {
        sql::api_keys_of_user(&self.pool, &user.to_string())
            .await?
            .into_iter()
            .map(api_key_from_row)
            .collect()
    }

    async fn revoke_api_key(&self, user: Uuid, id: Uuid) -> RepoResult<bool> {
        let n =
            sql::revoke_api_key(&self.pool, &id.to_string(), &user.to_string(), now_ms()).await?;
        Ok(n == 1)
    }

    async fn live_api_key(&self, key_hash: &str) -> RepoResult<Option<ApiKey>> {
        let now = Utc::now();
        let Some(row) = sql::live_api_key(&self.pool, key_hash, millis(now)).await? else {
            return Ok(None);
        };
        let mut key = api_key_from_row(row)?;
        if crate::db::api_keys::due_for_touch(key.last_used_at, now) {
            sql::touch_api_key(&self.pool, &key.id.to_string(), millis(now)).await?;
            key.last_used_at = Some(now);
        }
        Ok(Some(key))
    }
}
