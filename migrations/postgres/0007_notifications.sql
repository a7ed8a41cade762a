-- Same as migrations/sqlite/0008_notifications.sql, with native types.
-- Notifications (issue 11): an outbox written in the transaction that ends a task (or starts
-- it, for `task.started`), delivered by workers with leases and retries like jobs.

-- E-mail preferences (on unless turned off; e-mail is sent only when SMTP is configured),
-- and the default webhook secret that signs a task's own `webhook_url`. A rotated secret
-- stays valid (deliveries are signed with both) until `webhook_secret_old_until`.
ALTER TABLE users ADD COLUMN email_on_success boolean NOT NULL DEFAULT true;
ALTER TABLE users ADD COLUMN email_on_failure boolean NOT NULL DEFAULT true;
ALTER TABLE users ADD COLUMN webhook_secret text;
ALTER TABLE users ADD COLUMN webhook_secret_old text;
ALTER TABLE users ADD COLUMN webhook_secret_old_until timestamptz;
-- Counts password changes (by the user or a reset); a login token carries the count it was
-- issued under, so the tokens of an older password stop working, like its browser sessions.
ALTER TABLE users ADD COLUMN password_version integer NOT NULL DEFAULT 0;

-- A task's own webhook URL (checked against the fetch policy when submitted).
ALTER TABLE tasks ADD COLUMN webhook_url text;

-- A user's webhook endpoint. `events` is a JSON array of event types.
CREATE TABLE webhook_endpoints (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url               text NOT NULL,
    events            jsonb NOT NULL,
    enabled           boolean NOT NULL DEFAULT true,
    disabled_reason   text,
    secret            text NOT NULL,
    secret_old        text,
    secret_old_until  timestamptz,
    -- The first failed delivery since the last success (an endpoint failing for five days
    -- is disabled).
    failing_since     timestamptz,
    created_at        timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_by_user ON webhook_endpoints(user_id, id);

-- The outbox, and the queue of deliveries. One row per message owed: an e-mail to an
-- address, or an event to a webhook URL. `id` is the message id (the webhook-id, the
-- Message-ID), the same on every attempt. No foreign key to tasks: a message owed outlives
-- the task's deletion. `endpoint_id` NULL on a webhook: the task's own URL.
CREATE TABLE notifications (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    task_id           uuid,
    channel           text NOT NULL,   -- email | webhook
    event             text NOT NULL,   -- task.succeeded, account.password_reset, …
    target            text NOT NULL,   -- the address or URL
    endpoint_id       uuid,
    payload           text NOT NULL,   -- JSON text; a webhook's exact body, byte for byte
    state             text NOT NULL,   -- queued | running | sent | failed | cancelled
    run_at            timestamptz NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_error        text,
    sent_at           timestamptz,
    created_at        timestamptz NOT NULL
);
CREATE INDEX notifications_due ON notifications(run_at, id) WHERE state = 'queued';
CREATE INDEX notifications_leases ON notifications(lease_expires_at) WHERE state = 'running';
CREATE INDEX notifications_by_task ON notifications(task_id);
CREATE INDEX notifications_by_endpoint ON notifications(endpoint_id, id);

-- Every webhook delivery attempt (the endpoint's delivery log).
CREATE TABLE webhook_attempts (
    id               uuid PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    endpoint_id      uuid,
    attempt          integer NOT NULL,
    status_code      integer,
    error            text,
    latency_ms       bigint NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, id);
CREATE INDEX webhook_attempts_by_notification ON webhook_attempts(notification_id, id);

-- A password reset asked for by e-mail: single use, short-lived; only the token's SHA-256
-- (hex) is kept.
CREATE TABLE password_resets (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX password_resets_by_user ON password_resets(user_id, created_at);
