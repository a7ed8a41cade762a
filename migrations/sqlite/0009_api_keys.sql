-- API keys (personal access tokens, issue 12): `Authorization: Bearer rf_…` for scripts and
-- services. Only the key's SHA-256 (hex) is stored; `prefix` (its first characters) is
-- what the owner sees in a list. A key is live while not revoked and not past expires_at.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    scope         TEXT NOT NULL,   -- read | read-write
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, id);
