-- Notifications (issue 11): an outbox written in the transaction that ends a task (or starts
-- it, for `task.started`), delivered by workers with leases and retries like jobs.

-- E-mail preferences (on unless turned off; e-mail is sent only when SMTP is configured),
-- and the default webhook secret that signs a task's own `webhook_url`. A rotated secret
-- stays valid (deliveries are signed with both) until `webhook_secret_old_until`.
ALTER TABLE users ADD COLUMN email_on_success INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN email_on_failure INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN webhook_secret TEXT;
ALTER TABLE users ADD COLUMN webhook_secret_old TEXT;
ALTER TABLE users ADD COLUMN webhook_secret_old_until INTEGER;
-- Counts password changes (by the user or a reset); a login token carries the count it was
-- issued under, so the tokens of an older password stop working, like its browser sessions.
ALTER TABLE users ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;

-- A task's own webhook URL (checked against the fetch policy when submitted).
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;

-- A user's webhook endpoint. `events` is a JSON array of event types.
CREATE TABLE webhook_endpoints (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    events            TEXT NOT NULL,
    enabled           INTEGER NOT NULL DEFAULT 1,
    disabled_reason   TEXT,
    secret            TEXT NOT NULL,
    secret_old        TEXT,
    secret_old_until  INTEGER,
    -- The first failed delivery since the last success (an endpoint failing for five days
    -- is disabled).
    failing_since     INTEGER,
    created_at        INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_user ON webhook_endpoints(user_id, id);

-- The outbox, and the queue of deliveries. One row per message owed: an e-mail to an
-- address, or an event to a webhook URL. `id` is the message id (the webhook-id, the
-- Message-ID), the same on every attempt. No foreign key to tasks: a message owed outlives
-- the task's deletion. `endpoint_id` NULL on a webhook: the task's own URL.
CREATE TABLE notifications (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    task_id           TEXT,
    channel           TEXT NOT NULL,   -- email | webhook
    event             TEXT NOT NULL,   -- task.succeeded, account.password_reset, …
    target            TEXT NOT NULL,   -- the address or URL
    endpoint_id       TEXT,
    payload           TEXT NOT NULL,   -- JSON; a webhook's exact body
    state             TEXT NOT NULL,   -- queued | running | sent | failed | cancelled
    run_at            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    last_error        TEXT,
    sent_at           INTEGER,
    created_at        INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications(state, run_at);
CREATE INDEX notifications_by_task ON notifications(task_id);
CREATE INDEX notifications_by_endpoint ON notifications(endpoint_id, id);

-- Every webhook delivery attempt (the endpoint's delivery log).
CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY NOT NULL,
    notification_id  TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    endpoint_id      TEXT,
    attempt          INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    latency_ms       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, id);
CREATE INDEX webhook_attempts_by_notification ON webhook_attempts(notification_id, id);

-- A password reset asked for by e-mail: single use, short-lived; only the token's SHA-256
-- (hex) is kept.
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX password_resets_by_user ON password_resets(user_id, created_at);
