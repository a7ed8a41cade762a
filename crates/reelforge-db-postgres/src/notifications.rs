//! The statements of notifications: e-mail preferences and the default webhook secret,
//! webhook endpoints, the outbox (`notifications`, also the queue of deliveries), the
//! delivery log and password resets. Times here are the caller's (`now` parameters), so a
//! test can drive the retry schedule; the rest of the schema uses `reelforge_now()`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Result;

/// The LISTEN/NOTIFY channel of the deliveries.
pub const NOTIFICATIONS_CHANNEL: &str = "reelforge_notifications";

/// What a user's notifications need to know about the user.
#[derive(Debug)]
pub struct NotifySettingsRow {
    pub username: String,
    pub email: String,
    pub disabled: bool,
    pub email_on_success: bool,
    pub email_on_failure: bool,
    pub webhook_secret: Option<String>,
    pub webhook_secret_old: Option<String>,
    pub webhook_secret_old_until: Option<DateTime<Utc>>,
}

/// A row of `webhook_endpoints`; `events` is a JSON array.
#[derive(Debug)]
pub struct EndpointRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub events: Value,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub secret_old: Option<String>,
    pub secret_old_until: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A row of `notifications`.
#[derive(Debug)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub task_id: Option<Uuid>,
    pub channel: String,
    pub event: String,
    pub target: String,
    pub endpoint_id: Option<Uuid>,
    pub payload: String,
    pub state: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One line of an endpoint's delivery log.
#[derive(Debug)]
pub struct AttemptRow {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub created_at: DateTime<Utc>,
}

/// Wake idle deliverers (`LISTEN` on [`NOTIFICATIONS_CHANNEL`]) when the transaction commits.
pub async fn notify_notification(db: impl PgExecutor<'_>, id: Uuid) -> Result<()> {
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        NOTIFICATIONS_CHANNEL,
        id.to_string()
    )
    .execute(db)
    .await?;
    Ok(())
}

// --- users -------------------------------------------------------------------------------

pub async fn notify_settings(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<NotifySettingsRow>> {
    sqlx::query_as!(
        NotifySettingsRow,
        "SELECT username, email, disabled, email_on_success, email_on_failure,
                webhook_secret, webhook_secret_old, webhook_secret_old_until
         FROM users WHERE id = $1",
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// Rows changed (0: no such user).
pub async fn set_email_preferences(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    on_success: bool,
    on_failure: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET email_on_success = $1, email_on_failure = $2 WHERE id = $3",
        on_success,
        on_failure,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The user's default webhook secret, if there is none yet. Rows changed.
pub async fn create_webhook_secret(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    secret: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET webhook_secret = $1 WHERE id = $2 AND webhook_secret IS NULL",
        secret,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A new default secret; the current one stays valid until `old_until`. Rows changed.
pub async fn rotate_webhook_secret(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    secret: &str,
    old_until: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET webhook_secret_old = webhook_secret,
                webhook_secret_old_until =
                    CASE WHEN webhook_secret IS NULL THEN NULL ELSE $1::timestamptz END,
                webhook_secret = $2
         WHERE id = $3",
        old_until,
        secret,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- webhook endpoints -------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_endpoint(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    url: &str,
    events: &Value,
    enabled: bool,
    secret: &str,
    created_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, user_id, url, events, enabled, secret, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        user_id,
        url,
        events,
        enabled,
        secret,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// `SELECT <every EndpointRow column> FROM webhook_endpoints <tail>`.
macro_rules! select_endpoints {
    ($tail:tt, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            EndpointRow,
            "SELECT id, user_id, url, events, enabled, disabled_reason, secret, secret_old,
                    secret_old_until, failing_since, created_at
             FROM webhook_endpoints " + $tail,
            $($arg),*
        )
    };
}

pub async fn endpoints_of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<Vec<EndpointRow>> {
    select_endpoints!("WHERE user_id = $1 ORDER BY id", user_id)
        .fetch_all(db)
        .await
}

pub async fn endpoint_of_user(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<EndpointRow>> {
    select_endpoints!("WHERE id = $1 AND user_id = $2", id, user_id)
        .fetch_optional(db)
        .await
}

/// Any user's endpoint (deliveries).
pub async fn endpoint_by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<EndpointRow>> {
    select_endpoints!("WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// The user's enabled endpoints subscribed to `event`.
pub async fn subscribed_endpoints(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    event: &str,
) -> Result<Vec<EndpointRow>> {
    select_endpoints!(
        "WHERE user_id = $1 AND enabled AND events ? $2 ORDER BY id",
        user_id,
        event,
    )
    .fetch_all(db)
    .await
}

/// Rows changed. Re-enabling clears the reason and the failure streak.
pub async fn update_endpoint(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    url: &str,
    events: &Value,
    enabled: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET url = $1, events = $2,
                disabled_reason = CASE WHEN $3 THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN $3 AND NOT enabled THEN NULL ELSE failing_since END,
                enabled = $3
         WHERE id = $4 AND user_id = $5",
        url,
        events,
        enabled,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

pub async fn delete_endpoint(db: impl PgExecutor<'_>, id: Uuid, user_id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2",
        id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A new secret; the current one stays valid until `old_until`. Rows changed.
pub async fn rotate_endpoint_secret(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    secret: &str,
    old_until: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET secret_old = secret, secret_old_until = $1, secret = $2
         WHERE id = $3 AND user_id = $4",
        old_until,
        secret,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A delivery to the endpoint failed at `now`: the streak starts unless it runs already.
/// Returns when the streak began.
pub async fn endpoint_failed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1)
           WHERE id = $2 RETURNING failing_since AS "failing_since!""#,
        now,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn endpoint_succeeded(db: impl PgExecutor<'_>, id: Uuid) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET failing_since = NULL
         WHERE id = $1 AND failing_since IS NOT NULL",
        id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Enabled → disabled with `reason`. Rows changed (0: already disabled, or gone).
pub async fn disable_endpoint(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $1
         WHERE id = $2 AND enabled",
        reason,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- the outbox --------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_notification(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    task_id: Option<Uuid>,
    channel: &str,
    event: &str,
    target: &str,
    endpoint_id: Option<Uuid>,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO notifications (id, user_id, task_id, channel, event, target, endpoint_id,
                                    payload, state, run_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $9)",
        id,
        user_id,
        task_id,
        channel,
        event,
        target,
        endpoint_id,
        payload,
        now,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Take the next due delivery (queued and due, or running with an expired lease) for
/// `owner` until `lease_expires_at`, counting an attempt.
pub async fn claim_notification(
    db: impl PgExecutor<'_>,
    owner: &str,
    lease_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<NotificationRow>> {
    sqlx::query_as!(
        NotificationRow,
        "UPDATE notifications SET state = 'running', lease_owner = $1, lease_expires_at = $2,
                attempts = attempts + 1
         WHERE id = (SELECT id FROM notifications
                      WHERE (state = 'queued' AND run_at <= $3)
                         OR (state = 'running' AND lease_expires_at < $3)
                      ORDER BY run_at, id
                      FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING id, user_id, task_id, channel, event, target, endpoint_id, payload, state,
                   run_at, attempts, last_error, sent_at, created_at",
        owner,
        lease_expires_at,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Extend the lease of a delivery `owner` holds. Rows changed.
pub async fn renew_notification(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    lease_expires_at: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET lease_expires_at = $1
         WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        lease_expires_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The end of a delivery held by `owner`: `sent`, `failed` or `cancelled`. Rows changed.
pub async fn end_notification(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    state: &str,
    last_error: Option<&str>,
    sent_at: Option<DateTime<Utc>>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = $1, last_error = $2, sent_at = $3,
                lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        state,
        last_error,
        sent_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Back to the queue, due at `run_at`. Rows changed.
pub async fn retry_notification(
    db: impl PgExecutor<'_>,
    id: Uuid,
    owner: &str,
    last_error: &str,
    run_at: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'queued', last_error = $1, run_at = $2,
                lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        last_error,
        run_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A finished webhook delivery of the user's endpoint, queued again with fresh attempts
/// (same id). Rows changed.
pub async fn redeliver_notification(
    db: impl PgExecutor<'_>,
    id: Uuid,
    endpoint_id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'queued', run_at = $1, attempts = 0, last_error = NULL,
                sent_at = NULL
         WHERE id = $2 AND endpoint_id = $3 AND user_id = $4
           AND state IN ('sent', 'failed', 'cancelled')",
        now,
        id,
        endpoint_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// When the next delivery is due (a queued one's `run_at`, a running one's lease expiry).
pub async fn next_notification_at(db: impl PgExecutor<'_>) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "SELECT LEAST(
            (SELECT MIN(run_at) FROM notifications WHERE state = 'queued'),
            (SELECT MIN(lease_expires_at) FROM notifications WHERE state = 'running'))"
    )
    .fetch_one(db)
    .await
}

/// `SELECT <every NotificationRow column> FROM notifications <tail>`.
macro_rules! select_notifications {
    ($tail:tt, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            NotificationRow,
            "SELECT id, user_id, task_id, channel, event, target, endpoint_id, payload, state,
                    run_at, attempts, last_error, sent_at, created_at
             FROM notifications " + $tail,
            $($arg),*
        )
    };
}

/// The notifications of the tasks `task_ids`, oldest first.
pub async fn notifications_of_tasks(
    db: impl PgExecutor<'_>,
    task_ids: &[Uuid],
) -> Result<Vec<NotificationRow>> {
    select_notifications!("WHERE task_id = ANY($1) ORDER BY id", task_ids)
        .fetch_all(db)
        .await
}

pub async fn notification_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<NotificationRow>> {
    select_notifications!("WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// Queued deliveries to the endpoint end as `cancelled` with `reason`. Rows changed.
pub async fn cancel_queued_of_endpoint(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    reason: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'cancelled', last_error = $1
         WHERE endpoint_id = $2 AND state = 'queued'",
        reason,
        endpoint_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- the delivery log --------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_attempt(
    db: impl PgExecutor<'_>,
    id: Uuid,
    notification_id: Uuid,
    endpoint_id: Option<Uuid>,
    attempt: i32,
    status_code: Option<i32>,
    error: Option<&str>,
    latency_ms: i64,
    created_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_attempts (id, notification_id, endpoint_id, attempt, status_code,
                                       error, latency_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        notification_id,
        endpoint_id,
        attempt,
        status_code,
        error,
        latency_ms,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The endpoint's latest attempts, newest first.
pub async fn attempts_of_endpoint(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        "SELECT a.id, a.notification_id, n.event, a.attempt, a.status_code, a.error,
                a.latency_ms, a.created_at
         FROM webhook_attempts a JOIN notifications n ON n.id = a.notification_id
         WHERE a.endpoint_id = $1 ORDER BY a.id DESC LIMIT $2",
        endpoint_id,
        limit,
    )
    .fetch_all(db)
    .await
}

// --- password resets ---------------------------------------------------------------------

pub async fn insert_password_reset(
    db: impl PgExecutor<'_>,
    id: Uuid,
    user_id: Uuid,
    token_hash: &str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        user_id,
        token_hash,
        created_at,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Resets asked for the user since `since`.
pub async fn resets_since(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    since: DateTime<Utc>,
) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "n!" FROM password_resets WHERE user_id = $1 AND created_at >= $2"#,
        user_id,
        since,
    )
    .fetch_one(db)
    .await
}

/// Use the live reset of `token_hash`: its user, or `None` (unknown, used or expired).
pub async fn use_password_reset(
    db: impl PgExecutor<'_>,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE password_resets SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING user_id",
        now,
        token_hash,
    )
    .fetch_optional(db)
    .await
}

/// Every other reset of the user ends too (one reset ends them all). Rows changed.
pub async fn end_password_resets(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        now,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
