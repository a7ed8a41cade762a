-- Times are integer milliseconds since the Unix epoch (UTC); ids are UUIDv7 text, so they
-- sort by creation time.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    email_lower   TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users(id),
    status           TEXT NOT NULL,
    profile          TEXT NOT NULL,   -- JSON {"profile": …, "options": …}
    source           TEXT NOT NULL,   -- JSON
    input            TEXT,            -- JSON MediaInfo, after probing
    input_key        TEXT,            -- storage key of the input
    stage            TEXT,
    percent          REAL,
    eta_seconds      REAL,
    outputs          TEXT NOT NULL DEFAULT '[]',
    error_code       TEXT,
    error_message    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX tasks_by_user ON tasks(user_id, id);
CREATE INDEX tasks_by_user_status ON tasks(user_id, status, id);
CREATE INDEX tasks_by_status ON tasks(status);

-- The queue. One row per unit of work; a task's processing job has task_id set.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    task_id           TEXT UNIQUE REFERENCES tasks(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,   -- queued | running | done
    run_at            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX jobs_claimable ON jobs(state, run_at);
CREATE INDEX jobs_leases ON jobs(state, lease_expires_at);
