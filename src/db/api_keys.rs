//! API keys in the repository: made, listed and revoked by their owner, looked up by hash
//! (through the read cache, `cache.rs`, so a revocation holds within `cache::MAX_AGE` in
//! every process).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;
use crate::domain::KeyScope;

/// A key as its owner lists it (never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// `rf_` and the key's first characters, to tell keys apart.
    pub prefix: String,
    pub scope: KeyScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub struct NewApiKey {
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    /// SHA-256 (hex) of the key.
    pub key_hash: String,
    pub scope: KeyScope,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `last_used_at` is written at most this often per key.
pub const KEY_TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    async fn create_api_key(&self, new: NewApiKey) -> RepoResult<ApiKey>;
    /// The user's keys, not revoked, oldest first.
    async fn api_keys(&self, user: Uuid) -> RepoResult<Vec<ApiKey>>;
    /// `false`: no such key of the user (or revoked already).
    async fn revoke_api_key(&self, user: Uuid, id: Uuid) -> RepoResult<bool>;
    /// The live key of `key_hash` (not revoked, not expired, its user not disabled), marked
    /// as used now (at most once a minute).
    async fn live_api_key(&self, key_hash: &str) -> RepoResult<Option<ApiKey>>;
}

/// Whether a key last used at `last` should be marked used again at `now`.
pub(super) fn due_for_touch(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last.is_none_or(|t| now - t >= KEY_TOUCH_EVERY)
}

pub(super) fn scope(s: &str) -> RepoResult<KeyScope> {
    KeyScope::parse(s).ok_or_else(|| super::RepoError::Corrupt(format!("key scope {s:?}")))
}
