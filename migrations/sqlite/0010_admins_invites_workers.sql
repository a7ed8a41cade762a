-- Operations (issue 13): an admin role, invite codes for `REELFORGE_SIGNUP=invite`, and the
-- worker processes that are alive (each beats every few seconds; the admin view lists them).
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;

-- Only the code's SHA-256 (hex) is stored; the code is shown once, to the admin who made it.
-- A code is spent by the signup that used it (used_by, used_at), in that signup's transaction.
CREATE TABLE invites (
    id          TEXT PRIMARY KEY NOT NULL,
    code_hash   TEXT NOT NULL UNIQUE,
    note        TEXT NOT NULL DEFAULT '',
    created_by  TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    used_by     TEXT REFERENCES users(id) ON DELETE SET NULL,
    used_at     INTEGER
);

-- One row per worker process start (`id`: the prefix of its lease owners, host:pid:uuid).
CREATE TABLE workers (
    id          TEXT PRIMARY KEY NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    slots       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
CREATE INDEX workers_seen ON workers(seen_at);
