//! [`ApiKeyRepo`] on PostgreSQL.

use super::*;

fn api_key_from_row(r: sql::ApiKeyRow) -> RepoResult<ApiKey> {
    Ok(ApiKey {
        id: r.id,
        user_id: r.user_id,
        name: r.name,
        prefix: r.prefix,
        scope: crate::db::api_keys::scope(&r.scope)?,
        created_at: r.created_at,
        expires_at: r.expires_at,
        last_used_at: r.last_used_at,
    })
}

#[async_trait]
impl ApiKeyRepo for PgRepo {
    async fn create_api_key(&self, new: NewApiKey) -> RepoResult<ApiKey> {
        let id = Uuid::now_v7();
        // Milliseconds, as every time the repositories hand out.
        let now =
            DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_else(Utc::now);
        sql::insert_api_key(
            &self.pool,
            id,
            new.user_id,
            &new.name,
            &new.prefix,
            &new.key_hash,
            new.scope.as_str(),
            now,
            new.expires_at,
        )
        .await?;
        Ok(ApiKey {
            id,
            user_id: new.user_id,
            name: new.name,
            prefix: new.prefix,
            scope: new.scope,
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
        })
    }

    async fn api_keys(&self, user: Uuid) -> RepoResult<Vec<ApiKey>> {
        sql::api_keys_of_user(&self.pool, user)
            .await?
            .into_iter()
            .map(api_key_from_row)
            .collect()
    }

    async fn revoke_api_key(&self, user: Uuid, id: Uuid) -> RepoResult<bool> {
        Ok(sql::revoke_api_key(&self.pool, id, user, Utc::now()).await? == 1)
    }

    async fn live_api_key(&self, key_hash: &str) -> RepoResult<Option<ApiKey>> {
        let now = Utc::now();
        let Some(row) = sql::live_api_key(&self.pool, key_hash, now).await? else {
            return Ok(None);
        };
        let mut key = api_key_from_row(row)?;
        if crate::db::api_keys::due_for_touch(key.last_used_at, now) {
            sql::touch_api_key(&self.pool, key.id, now).await?;
            key.last_used_at = Some(now);
        }
        Ok(Some(key))
    }
}
