-- Same as migrations/sqlite/0009_api_keys.sql.
-- API keys (personal access tokens, issue 12): `Authorization: Bearer rf_…` for scripts and
-- services. Only the key's SHA-256 (hex) is stored; `prefix` (its first characters) is
-- what the owner sees in a list. A key is live while not revoked and not past expires_at.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    key_hash      text NOT NULL UNIQUE,
    scope         text NOT NULL,   -- read | read-write
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, id);
