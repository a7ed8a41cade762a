-- Same as migrations/sqlite/0010_admins_invites_workers.sql.
-- Operations (issue 13): an admin role, invite codes for `REELFORGE_SIGNUP=invite`, and the
-- worker processes that are alive (each beats every few seconds; the admin view lists them).
ALTER TABLE users ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- Only the code's SHA-256 (hex) is stored; the code is shown once, to the admin who made it.
-- A code is spent by the signup that used it (used_by, used_at), in that signup's transaction.
CREATE TABLE invites (
    id          uuid PRIMARY KEY,
    code_hash   text NOT NULL UNIQUE,
    note        text NOT NULL DEFAULT '',
    created_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    used_by     uuid REFERENCES users(id) ON DELETE SET NULL,
    used_at     timestamptz
);

-- One row per worker process start (`id`: the prefix of its lease owners, host:pid:uuid).
CREATE TABLE workers (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    slots       integer NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL
);
CREATE INDEX workers_seen ON workers(seen_at);
