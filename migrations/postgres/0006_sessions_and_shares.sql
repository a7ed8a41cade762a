-- Same as migrations/sqlite/0007_sessions_and_shares.sql. Numbered 0006: 0005 belongs to the
-- resumable uploads built in parallel; sqlx applies whichever version a database lacks, in
-- order, so the gap is harmless.
--
-- A session cookie and a share link are opaque random tokens; only their SHA-256 (hex) is
-- stored, so a copy of the database opens no session and plays no share.

-- A browser's log-in. Alive while expires_at (absolute) is ahead and last_seen_at is within
-- the idle timeout (src/http/session.rs). The CSRF token is kept as is: the page reads it
-- back (GET /api/session), and on its own it authorizes nothing.
CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    text NOT NULL UNIQUE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

-- A revocable link to a task's outputs. Gone with its task.
CREATE TABLE shares (
    id            uuid PRIMARY KEY,
    task_id       uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX shares_by_task ON shares(task_id, id);
