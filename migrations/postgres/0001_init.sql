-- PostgreSQL schema: the same tables as migrations/sqlite (0001–0003 folded in), with native
-- types. Ids are UUIDv7 (they sort by creation time, byte order = text order, so keyset
-- pagination matches SQLite). Times are timestamptz taken from the database server's clock
-- and truncated to milliseconds (reelforge_now()), so every process agrees on lease expiry
-- and the records read back are the same as SQLite's millisecond integers. It is the
-- transaction's start time (now()): every transaction of the service is short, and a STABLE
-- function can be compared against an index (a volatile one, clock_timestamp(), cannot).

CREATE FUNCTION reelforge_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$ SELECT date_trunc('milliseconds', now()) $$;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    email         text NOT NULL,
    email_lower   text NOT NULL,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    -- RepoError::Conflict is chosen by these names (src/db/postgres.rs).
    CONSTRAINT users_username_unique UNIQUE (username),
    CONSTRAINT users_email_unique UNIQUE (email_lower)
);

CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id),
    status           text NOT NULL,
    profile          jsonb NOT NULL,   -- {"profile": …, "options": …}
    source           jsonb NOT NULL,
    input            jsonb,            -- MediaInfo, after probing
    input_key        text,             -- storage key of the input
    stage            text,
    percent          double precision,
    eta_seconds      double precision,
    outputs          jsonb NOT NULL DEFAULT '[]',
    error_code       text,
    error_message    text,
    attempts         integer NOT NULL DEFAULT 0,
    -- The planned ffmpeg command lines of the latest run (array of strings).
    commands         jsonb NOT NULL DEFAULT '[]',
    -- A profile's summary of a finished run.
    result           jsonb,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX tasks_by_user ON tasks(user_id, id);
CREATE INDEX tasks_by_user_status ON tasks(user_id, status, id);
CREATE INDEX tasks_by_status ON tasks(status);

-- The queue. One row per unit of work; a task's processing job has task_id set.
CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    task_id           uuid UNIQUE REFERENCES tasks(id) ON DELETE CASCADE,
    kind              text NOT NULL,
    state             text NOT NULL,   -- queued | running | done
    run_at            timestamptz NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL,
    lease_owner       text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    last_error        text,
    created_at        timestamptz NOT NULL
);
-- Claims look only at queued and running rows; finished jobs pile up and must not slow
-- them down.
CREATE INDEX jobs_claimable ON jobs(run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE state = 'running';
